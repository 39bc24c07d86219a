//! `cargo xtask run-suite [ARGS…]`: the bundled suite (`fixtures/suite/tests.cfg`) on the test
//! guest, in one command.
//!
//! 1. Builds the test guest if its files are missing (`cargo xtask fixtures guest`, into the
//!    guest dir of `vm::fixtures`: `KVMTEST_GUEST_DIR`, else `guest/` under the target dir; when
//!    they exist, rebuilding is left to an explicit `cargo xtask fixtures guest`, which needs the
//!    Debian archive).
//! 2. Builds `kvmtest` in release mode.
//!    The same for the disk guest (`cargo xtask fixtures disk-guest`, which needs root).
//! 3. Replaces itself (`exec`) with `kvmtest run fixtures/suite/tests.cfg --guest-cache GUEST
//!    --assign images_base_dir_guest_disk=DISK_GUEST --results-dir results --jobs N
//!    [--no fail_demo] ARGS…`, so Ctrl-C reaches kvmtest directly (it stops the tests,
//!    kills their VMs, writes the results and exits 130) and its exit code is this command's:
//!    0 all passed, 1 some failed, 2 usage or config error, 130 interrupted.
//!
//! `--jobs` defaults to 1 (the fewest guest boots: one worker reuses one VM); ARGS may set it,
//! and any other `kvmtest run` flag. The variant built to fail (`fail_demo`) is excluded unless
//! ARGS mention it (`--only fail_demo`); the slow variants ([`SLOW`]) unless ARGS have `--all`
//! or an `--only`.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The suite's config, relative to the workspace root.
pub const SUITE_CFG: &str = "fixtures/suite/tests.cfg";

/// What a suite run needs: the workspace root, the guest directories and the release `kvmtest`.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The workspace root (the working directory of the run).
    pub root: PathBuf,
    /// The built test guest.
    pub guest_dir: PathBuf,
    /// The built disk guest (its image is the `guest_disk` base of the `disk_guest` variants' chain).
    pub disk_guest_dir: PathBuf,
    /// The release `kvmtest` binary.
    pub kvmtest: PathBuf,
}

/// Builds the guest if needed and `kvmtest` in release mode.
pub fn prepare() -> Result<Prepared> {
    let root = crate::root();
    let guest_dir = crate::guest::guest_dir();
    if vm::fixtures::require_guest_in(&guest_dir).is_err() {
        eprintln!(
            "run-suite: the test guest is missing in {}: building it",
            guest_dir.display()
        );
        crate::guest::main(&["guest".to_owned()])
            .context("building the test guest (`cargo xtask fixtures guest`)")?;
    }
    let disk_guest_dir = vm::fixtures::disk_guest_dir();
    if vm::fixtures::require_disk_guest().is_err() {
        eprintln!(
            "run-suite: the disk guest is missing in {}: building it",
            disk_guest_dir.display()
        );
        crate::guest::main(&["disk-guest".to_owned()])
            .context("building the disk guest (`cargo xtask fixtures disk-guest`)")?;
    }
    let mut build = crate::cargo();
    build.args([
        "build",
        "--release",
        "--package",
        "kvmtest-cli",
        "--bin",
        "kvmtest",
    ]);
    crate::run(build).context("building kvmtest")?;
    let kvmtest = vm::fixtures::target_dir().join("release").join("kvmtest");
    if !kvmtest.is_file() {
        bail!("built kvmtest, but {} does not exist", kvmtest.display());
    }
    Ok(Prepared {
        root,
        guest_dir,
        disk_guest_dir,
        kvmtest,
    })
}

fn has_flag(args: &[String], long: &str, short: Option<&str>) -> bool {
    args.iter().any(|a| {
        a == long
            || a.starts_with(&format!("{long}="))
            || short.is_some_and(|s| a == s || (a.starts_with(s) && a.len() > s.len()))
    })
}

/// The `kvmtest run` argv of the suite (program first), with ARGS after the defaults.
pub fn suite_argv(p: &Prepared, jobs: Option<usize>, args: &[String]) -> Vec<OsString> {
    let mut argv: Vec<OsString> = vec![
        p.kvmtest.clone().into(),
        "run".into(),
        p.root.join(SUITE_CFG).into(),
        "--guest-cache".into(),
        p.guest_dir.clone().into(),
        "--assign".into(),
        {
            let mut a = OsString::from("images_base_dir_guest_disk=");
            a.push(&p.disk_guest_dir);
            a
        },
    ];
    if !has_flag(args, "--results-dir", None) {
        argv.push("--results-dir".into());
        argv.push(p.root.join("results").into());
    }
    if !has_flag(args, "--jobs", Some("-j")) {
        argv.push("--jobs".into());
        argv.push(jobs.unwrap_or(1).to_string().into());
    }
    if !args.iter().any(|a| a.contains("fail_demo")) {
        argv.push("--no".into());
        argv.push("fail_demo".into());
    }
    let all = args.iter().any(|a| a == ALL_FLAG);
    let only = has_flag(args, "--only", None);
    if !all && !only {
        for v in SLOW {
            argv.push("--no".into());
            argv.push((*v).into());
        }
    }
    argv.extend(args.iter().filter(|a| *a != ALL_FLAG).map(OsString::from));
    argv
}

/// `cargo xtask run-suite --all`: the slow variants too.
pub const ALL_FLAG: &str = "--all";

/// Variants left out unless `--all` (or `--only`) is given, each one to four minutes under TCG
/// and covered piece by piece by cheaper ones: three reboot the disk guest twice around a
/// hotplug (the disk guest's reboot tests and the hotplug variants without reboot cover the
/// parts), multi_disk's max_disk formats 24 disks (one_disk_repeat and
/// all_drive_format_types run the same steps on fewer), and tp-qemu's qemu_img convert and
/// rebase boot the disk guest from the images they make, one to three times each (the default
/// suite has qemu_img's commit, which boots twice, and convert and rebase without boots).
pub const SLOW: &[&str] = &[
    "disk_guest.block_hotplug.with_reboot",
    "disk_guest.block_hotplug.data_plane.with_system_reset",
    "disk_guest.tap.nic_hotplug.with_reboot",
    "disk_guest.multi_disk.max_disk",
    "disk_guest.qemu_img.convert",
    "disk_guest.qemu_img.rebase",
];

/// `cargo xtask run-suite [ARGS…]`.
pub fn main(args: &[String]) -> Result<()> {
    let p = prepare()?;
    let argv = suite_argv(&p, None, args);
    let Some((program, rest)) = argv.split_first() else {
        bail!("empty argv");
    };
    eprintln!(
        "run-suite: $ {}",
        argv.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    );
    eprintln!(
        "run-suite: results go to {}/latest/ (results.json, junit.xml, events.jsonl, tests/)",
        results_dir(args, &p.root).display()
    );
    if !args.iter().any(|a| a == ALL_FLAG) && !has_flag(args, "--only", None) {
        eprintln!(
            "run-suite: left out, as slow (`{ALL_FLAG}` runs them): {}",
            SLOW.join(", ")
        );
    }
    // exec: kvmtest takes over this process (signals, exit code); it only returns on failure.
    let err = Command::new(program).args(rest).current_dir(&p.root).exec();
    Err(err).with_context(|| format!("executing {}", Path::new(program).display()))
}

fn results_dir(args: &[String], root: &Path) -> PathBuf {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if let Some(v) = a.strip_prefix("--results-dir=") {
            return root.join(v);
        }
        if a == "--results-dir" {
            if let Some(v) = it.next() {
                return root.join(v);
            }
        }
    }
    root.join("results")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prepared() -> Prepared {
        Prepared {
            root: PathBuf::from("/ws"),
            guest_dir: PathBuf::from("/ws/target/guest"),
            disk_guest_dir: PathBuf::from("/ws/target/disk-guest"),
            kvmtest: PathBuf::from("/ws/target/release/kvmtest"),
        }
    }

    fn strings(v: &[OsString]) -> Vec<String> {
        v.iter().map(|a| a.to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn defaults_exclude_the_failing_demo() {
        let a = strings(&suite_argv(&prepared(), None, &[]));
        assert!(a.windows(2).any(|w| w == ["--no", "fail_demo"]));
        assert!(a.windows(2).any(|w| w == ["--jobs", "1"]));
        assert!(a.windows(2).any(|w| w
            == [
                "--assign",
                "images_base_dir_guest_disk=/ws/target/disk-guest"
            ]));
        assert!(a.windows(2).any(|w| w == ["--results-dir", "/ws/results"]));
    }

    #[test]
    fn the_slow_variants_run_only_when_asked() {
        let a = strings(&suite_argv(&prepared(), None, &[]));
        for v in SLOW {
            assert!(
                a.windows(2).any(|w| w == ["--no", v]),
                "{v} not left out: {a:?}"
            );
        }
        let all = strings(&suite_argv(&prepared(), None, &["--all".to_owned()]));
        assert!(!all.iter().any(|x| SLOW.contains(&x.as_str())), "{all:?}");
        assert!(
            !all.iter().any(|x| x == "--all"),
            "--all is run-suite's: {all:?}"
        );
        let only = strings(&suite_argv(
            &prepared(),
            None,
            &["--only".to_owned(), "disk_guest.block_hotplug".to_owned()],
        ));
        assert!(!only.iter().any(|x| SLOW.contains(&x.as_str())), "{only:?}");
    }

    #[test]
    fn args_override_defaults() {
        let args: Vec<String> = ["--only", "fail_demo", "-j2", "--results-dir", "r"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let a = strings(&suite_argv(&prepared(), None, &args));
        assert!(!a.iter().any(|x| x == "--no"));
        assert!(!a.iter().any(|x| x == "--jobs"));
        assert_eq!(a.iter().filter(|x| *x == "--results-dir").count(), 1);
        assert_eq!(results_dir(&args, Path::new("/ws")), PathBuf::from("/ws/r"));
    }
}
