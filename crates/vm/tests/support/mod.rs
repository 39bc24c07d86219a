//! Shared test support: the real test guest, a hand-built argv, params, leak checks.
//!
//! The guest comes from `KVMTEST_GUEST_DIR`, else `target/guest/` at the workspace root (what
//! `cargo xtask fixtures guest` writes). If it is missing the tests build it by running that
//! command, and fail (never skip) with the command named if that does not work.

#![allow(dead_code)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use params::Params;
use vm::{qemu_path_opt, ArgvSource, BoxError, MonitorKind, RunLayout, VmSpec};

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

/// Params of a one-VM variant for the test guest.
pub fn guest_params() -> Params {
    let mut p = Params::new();
    for (k, v) in [
        ("vms", "vm1"),
        ("main_vm", "vm1"),
        ("mem", "256"),
        ("monitors", "qmp1 hmp1"),
        ("monitor_type_qmp1", "qmp"),
        ("monitor_type_hmp1", "human"),
        ("serials", "serial0"),
        ("nics", "nic1"),
        ("nic_model", "virtio-net-pci"),
        ("redirs", "telnet nc"),
        ("guest_port_telnet", "23"),
        ("guest_port_nc", "2222"),
        ("shell_prompt", r"^kvmtest#\s*$"),
        ("shell_client", "telnet"),
        ("shell_port", "23"),
        ("login_timeout", "180"),
        ("cmd_timeout", "60"),
        ("uuid", "random"),
        ("shutdown_command", "shutdown"),
    ] {
        p.insert(k, v);
    }
    p
}

/// HAND-BUILT ARGV, until `qemu-cmd` is wired in: the minimum to boot the test guest under TCG
/// with the layout's monitors, serial console, NICs (user mode, hostfwd from port 0) and UUID.
/// `extra_params` (whitespace-separated) is appended, as in avocado-vt.
pub fn hand_built_argv(layout: &RunLayout) -> Result<Vec<OsString>, BoxError> {
    let g = guest();
    let p = &layout.params;
    let mut a: Vec<OsString> = Vec::new();
    let mut push = |s: &str| a.push(s.into());
    for s in [
        "qemu-system-x86_64",
        "-name",
        &layout.vm,
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-accel",
        "tcg",
        "-m",
        p.get("mem").unwrap_or("256"),
        "-smp",
        "1",
    ] {
        push(s);
    }
    for m in &layout.monitors {
        a.push("-chardev".into());
        a.push(qemu_path_opt(
            &format!("socket,id=mon-{},path=", m.name),
            &m.socket,
            ",server=on,wait=off",
        ));
        a.push("-mon".into());
        let mode = match m.kind {
            MonitorKind::Qmp => "control",
            MonitorKind::Human => "readline",
        };
        a.push(format!("chardev=mon-{},mode={mode}", m.name).into());
    }
    for s in &layout.serials {
        a.push("-chardev".into());
        a.push(qemu_path_opt(
            &format!("socket,id=ser-{},path=", s.name),
            &s.socket,
            ",server=on,wait=off",
        ));
        a.push("-serial".into());
        a.push(format!("chardev:ser-{}", s.name).into());
    }
    for (i, n) in layout.nics.iter().enumerate() {
        let np = p.object_params(&n.name);
        let mut netdev = format!("user,id={}", n.netdev_id);
        if i == 0 {
            for f in layout.hostfwds() {
                netdev.push_str(&format!(",hostfwd={f}"));
            }
        }
        a.push("-netdev".into());
        a.push(netdev.into());
        a.push("-device".into());
        a.push(
            format!(
                "{},id=nic-{},netdev={},mac={}",
                np.get("nic_model").unwrap_or("virtio-net-pci"),
                n.name,
                n.netdev_id,
                n.mac
            )
            .into(),
        );
    }
    if let Some(u) = &layout.uuid {
        a.push("-uuid".into());
        a.push(u.into());
    }
    a.push("-kernel".into());
    a.push(g.kernel.clone().into());
    a.push("-initrd".into());
    a.push(g.initrd.clone().into());
    a.push("-append".into());
    a.push("console=ttyS0 quiet panic=-1".into());
    if let Some(extra) = p.get("extra_params") {
        a.extend(extra.split_whitespace().map(OsString::from));
    }
    Ok(a)
}

/// The hand-built argv as an [`ArgvSource`].
pub fn argv_source() -> Arc<dyn ArgvSource> {
    Arc::new(hand_built_argv)
}

/// A spec for `params`, logging under `logs`.
pub fn spec(params: Params, logs: &Path) -> VmSpec {
    let mut s = VmSpec::new("vm1", params, logs);
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
