//! Shared test support: the real test guest, its params (`guest.cfg`), the `qemu-cmd` argv
//! source, leak checks.
//!
//! The guest comes from `KVMTEST_GUEST_DIR`, else `target/guest/` at the workspace root (what
//! `cargo xtask fixtures guest` writes). If it is missing the tests build it by running that
//! command, and fail (never skip) with the command named if that does not work.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use params::{Params, Parser, ParserOptions};
use qemu_cmd::probe::probe_cached;
use vm::{QemuCmdArgv, VmSpec};

/// The built guest.
pub struct Guest {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
}

fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.ancestors().nth(2).unwrap_or(here).to_path_buf()
}

/// The test guest, built once per test process if it is missing.
pub fn guest() -> &'static Guest {
    static GUEST: OnceLock<Guest> = OnceLock::new();
    GUEST.get_or_init(|| {
        let dir = match std::env::var_os("KVMTEST_GUEST_DIR") {
            Some(d) if !d.is_empty() => PathBuf::from(d),
            _ => workspace_root().join("target").join("guest"),
        };
        let ready = |d: &Path| {
            ["manifest.json", "vmlinuz", "initrd.gz"]
                .iter()
                .all(|f| d.join(f).exists())
        };
        if !ready(&dir) {
            eprintln!(
                "test guest missing in {}: running `cargo xtask fixtures guest`",
                dir.display()
            );
            // A separate target dir: the outer `cargo test` may hold the lock on its own.
            let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .current_dir(workspace_root())
                .args(["run", "--quiet", "--package", "xtask", "--target-dir"])
                .arg(workspace_root().join("target").join("xtask-for-tests"))
                .args(["--", "fixtures", "guest"])
                .status();
            match status {
                Ok(s) if s.success() && ready(&dir) => {}
                other => panic!(
                    "the test guest is missing in {} and building it failed ({other:?}).\n\
                     Build it with `cargo xtask fixtures guest` (or point KVMTEST_GUEST_DIR at a \
                     built guest) and rerun.",
                    dir.display()
                ),
            }
        }
        Guest {
            kernel: dir.join("vmlinuz"),
            initrd: dir.join("initrd.gz"),
        }
    })
}

/// Params of the one-VM variant of `guest.cfg` (next to this file), as a user's cfg gives them.
/// When `KVMTEST_GUEST_DIR` points elsewhere, `kernel` and `initrd` are that guest's.
pub fn guest_params() -> Params {
    let cfg = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/guest.cfg");
    let mut parser = Parser::new(ParserOptions::default());
    parser
        .parse_file(&cfg)
        .unwrap_or_else(|e| panic!("{}: {e}", cfg.display()));
    let variants = parser
        .finish()
        .collect()
        .unwrap_or_else(|e| panic!("{}: {e}", cfg.display()));
    assert_eq!(variants.len(), 1, "{} has one variant", cfg.display());
    let mut p = variants[0].params.clone();
    let g = guest();
    let root = workspace_root();
    for (key, path) in [("kernel", &g.kernel), ("initrd", &g.initrd)] {
        let in_cfg = root.join(p.get(key).unwrap_or_default());
        if in_cfg != *path {
            p.insert(key, path.to_string_lossy().into_owned());
        }
    }
    p
}

/// The real argv source: `qemu-cmd` for the installed `qemu-system-x86_64` (capabilities probed
/// once per test process, cached under `target/`), accelerator from [`vm::probe_accel`].
pub fn argv_source() -> Arc<QemuCmdArgv> {
    static SOURCE: OnceLock<Arc<QemuCmdArgv>> = OnceLock::new();
    SOURCE
        .get_or_init(|| {
            let binary = Path::new("qemu-system-x86_64");
            let cache = workspace_root().join("target").join("qemu-caps-cache");
            let caps = probe_cached(binary, &cache)
                .unwrap_or_else(|e| panic!("probing {}: {e}", binary.display()));
            let source = QemuCmdArgv::new(binary, caps);
            eprintln!("accelerator: {}", vm::probe_accel());
            Arc::new(source)
        })
        .clone()
}

/// A spec for `params`, logging under `logs`, relative cfg paths from the workspace root.
pub fn spec(params: Params, logs: &Path) -> VmSpec {
    let mut s = VmSpec::new("vm1", params, logs);
    s.root_dir = workspace_root();
    s.timeouts.connect = Duration::from_secs(30);
    s
}

/// Whether a process still exists and is not a zombie.
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(s) => s
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X'])),
    }
}

/// Asserts QEMU `pid` is gone and `run_dir` (with its sockets) removed.
pub fn assert_no_leftovers(pid: u32, run_dir: &Path) {
    assert!(!process_alive(pid), "QEMU pid {pid} still runs");
    assert!(
        !run_dir.exists(),
        "run dir {} (sockets) still exists",
        run_dir.display()
    );
}

/// Logs for a test, in a tempdir that is removed afterwards; under `KVMTEST_TEST_LOGS` (kept)
/// when that is set, for looking at them after a run.
pub fn logs() -> tempfile::TempDir {
    let mut b = tempfile::Builder::new();
    b.prefix("kvmtest-vm-test-logs.");
    match std::env::var_os("KVMTEST_TEST_LOGS") {
        Some(d) if !d.is_empty() => {
            std::fs::create_dir_all(&d).expect("creating KVMTEST_TEST_LOGS");
            b.disable_cleanup(true);
            b.tempdir_in(d).expect("creating a log dir")
        }
        _ => b.tempdir().expect("creating a log dir"),
    }
}
