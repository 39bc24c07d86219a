//! `cargo xtask check-install [a|b|c|all] [--keep]`: proves `cargo xtask deps` in throw-away roots.
//!
//! Each state is a fresh Debian root of the host's release, made by `mmdebstrap` (variant `apt`,
//! the host's mirror) under `<target>/check-install/STATE/`:
//!
//! * `a`: no QEMU at all;
//! * `b`: a new machine of this kind: `qemu-utils` from `<codename>-backports` (10.x) installed
//!   first, then the backports source removed again, so apt knows only the release itself, and
//!   `/etc/apt/sources.list.d/debian.sources` is the host's own file;
//! * `c`: the release's QEMU (7.2 on bookworm) already installed.
//!
//! In each, this very `xtask` binary is copied in and runs `deps` twice under `chroot` (with
//! `/proc` mounted). The first run must end in one consistent QEMU (`qemu-system-x86_64` and
//! `qemu-img` report the same `major.minor`, `apt-get check` passes, no QEMU package of another
//! version is left); the second must change nothing (apt's summary: nothing upgraded, installed,
//! downgraded or removed). Then `fixtures qemu 10.0` runs in the root, so the other QEMU is
//! shown to unpack and start on a fresh machine too. The host's `debian.sources` is only read.
//! Default state: `b`; `all` runs the three. `--keep` leaves the roots for inspection.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};

use crate::deps::{major_minor, os_release};
use crate::host::{run, stdout_of};

/// A mounted `/proc` in a root, unmounted (and the root removed unless kept) when dropped.
struct Root {
    dir: PathBuf,
    proc_mounted: bool,
    keep: bool,
}

impl Root {
    fn mount_proc(&mut self) -> Result<()> {
        let mut m = Command::new("mount");
        m.args(["-t", "proc", "proc"]).arg(self.dir.join("proc"));
        run(&mut m)?;
        self.proc_mounted = true;
        Ok(())
    }

    /// `chroot ROOT ARGV…`, with a clean environment.
    fn chroot(&self, argv: &[&str]) -> Command {
        let mut c = Command::new("chroot");
        c.arg(&self.dir)
            .args(argv)
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("HOME", "/root")
            .env("LC_ALL", "C")
            .env("DEBIAN_FRONTEND", "noninteractive");
        c
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        if self.proc_mounted {
            let _ = Command::new("umount")
                .arg("--lazy")
                .arg(self.dir.join("proc"))
                .status();
        }
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The apt summary line of an `apt-get install` output.
fn apt_summary(text: &str) -> Option<&str> {
    text.lines()
        .find(|l| l.contains(" upgraded, ") && l.contains(" newly installed"))
}

/// Whether an apt summary says nothing was changed.
pub fn changes_nothing(summary: &str) -> bool {
    summary
        .split(',')
        .map(str::trim)
        .filter(|part| !part.contains("not upgraded"))
        .all(|part| part.starts_with("0 ") || part.starts_with("and 0 ") || part.is_empty())
}

/// The installed `qemu` source packages and their versions, in a root.
fn qemu_packages(root: &Root) -> Result<Vec<(String, String)>> {
    let text = stdout_of(&mut root.chroot(&[
        "dpkg-query",
        "-W",
        "-f",
        "${db:Status-Abbrev} ${Package} ${Version} ${source:Package}\n",
    ]))?;
    Ok(text
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.len() == 4 && w[0].starts_with("ii") && w[3] == "qemu")
                .then(|| (w[1].to_string(), w[2].to_string()))
        })
        .collect())
}

fn check_state(state: char, keep: bool) -> Result<()> {
    let (_, codename) = os_release()?;
    let mirror = crate::deps::mirror_of(&codename)?;
    let dir = crate::bench::target_dir()
        .join("check-install")
        .join(state.to_string());
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir.parent().unwrap_or(Path::new("/")))?;
    let mut root = Root {
        dir: dir.clone(),
        proc_mounted: false,
        keep,
    };
    eprintln!(
        "== check-install {state}: a fresh {codename} root in {}",
        dir.display()
    );
    let mut mm = Command::new("mmdebstrap");
    mm.args(["--mode=root", "--variant=apt", "--quiet"])
        .arg("--include=ca-certificates")
        .arg(&codename)
        .arg(&dir);
    for (uri, suite) in crate::deps::host_suites(&codename)? {
        mm.arg(format!("deb {uri} {suite} main"));
    }
    mm.arg(format!("deb {mirror} {codename}-backports main"));
    run(&mut mm)?;
    std::fs::copy("/etc/resolv.conf", dir.join("etc/resolv.conf")).ok();
    root.mount_proc()?;
    let apt = |args: &[&str]| {
        let mut argv = vec!["apt-get", "-y", "-q", "--no-install-recommends"];
        argv.extend_from_slice(args);
        root.chroot(&argv)
    };
    run(&mut apt(&["update"]))?;
    match state {
        'a' => {}
        'b' => {
            run(&mut apt(&[
                "install",
                "-t",
                &format!("{codename}-backports"),
                "qemu-utils",
            ]))?;
        }
        'c' => run(&mut apt(&["install", "qemu-system-x86", "qemu-utils"]))?,
        other => bail!("unknown state {other:?}"),
    }
    // The machine's own sources: the host's files, nothing else (no backports).
    std::fs::remove_file(dir.join("etc/apt/sources.list")).ok();
    let host_sources = Path::new("/etc/apt/sources.list.d/debian.sources");
    if host_sources.is_file() {
        std::fs::copy(
            host_sources,
            dir.join("etc/apt/sources.list.d/debian.sources"),
        )?;
    } else {
        std::fs::write(
            dir.join("etc/apt/sources.list"),
            format!("deb {mirror} {codename} main\ndeb {mirror} {codename}-updates main\n"),
        )?;
    }
    run(&mut apt(&["update"]))?;
    let before = qemu_packages(&root)?;
    eprintln!("check-install {state}: QEMU packages before: {before:?}");
    let xtask = std::env::current_exe().context("this xtask binary")?;
    std::fs::copy(&xtask, dir.join("usr/local/bin/xtask"))
        .with_context(|| format!("copying {} into the root", xtask.display()))?;
    run(&mut root.chroot(&["/usr/local/bin/xtask", "deps"]))?;
    let after = qemu_packages(&root)?;
    let versions: std::collections::BTreeSet<&str> = after
        .iter()
        .map(|(_, v)| v.split('+').next().unwrap_or(v))
        .collect();
    ensure!(
        versions.len() == 1,
        "state {state}: QEMU packages of several versions after deps: {after:?}"
    );
    let sys = stdout_of(&mut root.chroot(&["qemu-system-x86_64", "-version"]))?;
    let img = stdout_of(&mut root.chroot(&["qemu-img", "--version"]))?;
    ensure!(
        major_minor(&sys).is_some() && major_minor(&sys) == major_minor(&img),
        "state {state}: qemu-system-x86_64 says {sys:?}, qemu-img {img:?}"
    );
    let second = root.chroot(&["/usr/local/bin/xtask", "deps", "--no-update"]);
    let text = {
        let mut c = second;
        let out = c.output().context("running deps again")?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        ensure!(
            out.status.success(),
            "state {state}: deps failed the second time:\n{text}"
        );
        text
    };
    let summary = apt_summary(&text).unwrap_or_default().to_string();
    ensure!(
        changes_nothing(&summary),
        "state {state}: the second deps run changed something: {summary:?}"
    );
    // The other QEMU unpacks and starts on this fresh machine too.
    let mut fetch = root.chroot(&[
        "/usr/local/bin/xtask",
        "fixtures",
        "qemu",
        crate::qemu_fixture::OTHER_QEMU,
    ]);
    fetch.env("CARGO_TARGET_DIR", "/root/target");
    let launcher = stdout_of(&mut fetch)?;
    let launcher = launcher
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_string();
    let other = stdout_of(&mut root.chroot(&[&launcher, "-version"]))?;
    eprintln!(
        "check-install {state}: ok: after deps {after:?}; {}; {}; second run: {summary}; {} in the root: {}",
        sys.lines().next().unwrap_or_default(),
        img.lines().next().unwrap_or_default(),
        crate::qemu_fixture::OTHER_QEMU,
        other.lines().next().unwrap_or_default()
    );
    Ok(())
}

/// `cargo xtask check-install [a|b|c|all] [--keep]`.
pub fn main(args: &[String]) -> Result<()> {
    let mut states = Vec::new();
    let mut keep = false;
    for a in args {
        match a.as_str() {
            "--keep" => keep = true,
            "all" => states.extend(['a', 'b', 'c']),
            s if s.len() == 1 && "abc".contains(s) => states.extend(s.chars()),
            other => bail!("usage: cargo xtask check-install [a|b|c|all] [--keep] (got {other:?})"),
        }
    }
    if states.is_empty() {
        states.push('b');
    }
    if Command::new("mmdebstrap")
        .arg("--version")
        .output()
        .is_err()
    {
        let mut c = crate::deps::as_root("apt-get");
        c.args([
            "install",
            "-y",
            "-q",
            "--no-install-recommends",
            "mmdebstrap",
        ]);
        run(&mut c)?;
    }
    for s in states {
        check_state(s, keep).with_context(|| format!("check-install state {s}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apt_summaries_are_read() {
        assert!(changes_nothing(
            "0 upgraded, 0 newly installed, 0 to remove and 137 not upgraded."
        ));
        assert!(!changes_nothing(
            "0 upgraded, 0 newly installed, 1 downgraded, 0 to remove and 0 not upgraded."
        ));
        assert!(!changes_nothing(
            "0 upgraded, 3 newly installed, 0 to remove and 0 not upgraded."
        ));
    }
}
