//! Shared test support: the real test guest, its params (`guest.cfg`), the `qemu-cmd` argv
//! source, leak checks, and a guard that kills child processes when a test fails.
//!
//! The guest is never built here: it comes from [`vm::fixtures::guest_dir`]
//! (`KVMTEST_GUEST_DIR`, else `<target dir>/guest`, where `cargo xtask fixtures guest` puts it;
//! `cargo xtask ci` runs that before `cargo test`). If it is missing, every test that needs it
//! fails at once (never skips) with a message naming that command and the directory looked in.
//! The QEMU under test is [`qemu_cmd::probe::default_binary`] (`KVMTEST_QEMU`, else
//! `qemu-system-x86_64`); its capabilities are cached under the same target dir.

#![allow(dead_code)]

/// Unwraps, printing the VM's QEMU output, serial log and VM log on failure (`ok!(vm, expr)`;
/// `#[macro_use] mod support;` brings it in, and test files that do not need it ignore it).
#[allow(unused_macros)]
macro_rules! ok {
    ($vm:expr, $e:expr $(,)?) => {
        match $e {
            Ok(v) => v,
            Err(e) => panic!("{e}\n{}", $vm.debug_report()),
        }
    };
}

use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use params::{Params, Parser, ParserOptions};
use qemu_cmd::probe::{default_binary, probe_cached};
use vm::fixtures::{self, INITRD, VMLINUZ};
use vm::{Error, PlanOptions, Qemu, Vm, VmSetup};

/// The built guest.
pub struct Guest {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
}

/// The workspace root (relative cfg paths resolve from it).
pub fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.ancestors().nth(2).unwrap_or(here).to_path_buf()
}

/// The test guest; panics naming `cargo xtask fixtures guest` when it is not built.
pub fn guest() -> &'static Guest {
    static GUEST: OnceLock<Guest> = OnceLock::new();
    GUEST.get_or_init(|| {
        let dir = fixtures::require_guest().unwrap_or_else(|e| panic!("{e}"));
        Guest {
            kernel: dir.join(VMLINUZ),
            initrd: dir.join(INITRD),
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

/// The one variant of `support/CFG` (a disk-guest cfg), its `image_name` pointing at the disk
/// guest `cargo xtask fixtures disk-guest` built (panics naming that command when it is not).
pub fn disk_guest_params(cfg: &str) -> Params {
    let dir = fixtures::require_disk_guest().unwrap_or_else(|e| panic!("{e}"));
    let cfg = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/support")
        .join(cfg);
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
    let stem = dir.join(fixtures::DISK_IMAGE).with_extension("");
    p.insert("image_name", stem.to_string_lossy().into_owned());
    p
}

/// The QEMU under test ([`default_binary`]: `KVMTEST_QEMU`, else `qemu-system-x86_64`;
/// capabilities probed once per test process, cached under [`fixtures::caps_cache_dir`]),
/// accelerator from [`vm::probe_accel`]. Prints `QEMU under test: <path> (<version>)` once.
pub fn qemu() -> Arc<Qemu> {
    static QEMU: OnceLock<Arc<Qemu>> = OnceLock::new();
    QEMU.get_or_init(|| {
        let binary = default_binary();
        let caps = probe_cached(&binary, &fixtures::caps_cache_dir())
            .unwrap_or_else(|e| panic!("probing {}: {e}", binary.display()));
        eprintln!(
            "QEMU under test: {}",
            fixtures::describe_qemu(&binary, &caps.version)
        );
        eprintln!("accelerator: {}", vm::probe_accel());
        Arc::new(Qemu::new(&binary, caps))
    })
    .clone()
}

/// The setup of VM `vm1` of `params`, logging under `logs`.
pub fn setup(params: &Params, logs: &Path) -> Result<VmSetup, Error> {
    let mut s = VmSetup::from_params(params, "vm1", logs)?;
    s.timeouts.connect = Duration::from_secs(30);
    Ok(s)
}

/// Starts VM `vm1` of `params` on `qemu`, logging under `logs`, relative cfg paths from the
/// workspace root.
pub async fn start_on(qemu: Arc<Qemu>, params: Params, logs: &Path) -> Result<Vm, Error> {
    let setup = setup(&params, logs)?;
    Vm::start(qemu, setup, &PlanOptions::new(workspace_root())).await
}

/// [`start_on`] the QEMU under test.
pub async fn start(params: Params, logs: &Path) -> Result<Vm, Error> {
    start_on(qemu(), params, logs).await
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

/// The start time of process `pid` (clock ticks since boot, `/proc/PID/stat` field 22), which
/// tells a process from a later one that reuses its pid.
pub fn process_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    // `rest` starts at field 3 (state).
    rest.split_whitespace().nth(19)?.parse().ok()
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

/// A child process that is SIGKILLed and reaped when the guard drops — also when the test
/// panics — so that no process outlives a failing test. If the child is known to run a QEMU
/// ([`ChildGuard::set_qemu`]), that QEMU dies with it through `vm`'s parent-death signal; the
/// guard checks that it did (and kills its process group otherwise), then sweeps the run
/// directories the killed child left ([`vm::sweep_stale`]).
pub struct ChildGuard {
    child: Child,
    /// The child's QEMU: pid and start time (so a reused pid is never killed).
    qemu: Option<(u32, Option<u64>)>,
}

impl ChildGuard {
    /// Guards `child`.
    pub fn new(child: Child) -> ChildGuard {
        ChildGuard { child, qemu: None }
    }

    /// The guarded child.
    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Records that the child started QEMU `pid`.
    pub fn set_qemu(&mut self, pid: u32) {
        self.qemu = Some((pid, process_start_time(pid)));
    }

    /// Waits for the child to exit on its own (it is still killed on drop if it does not).
    pub fn wait(&mut self) -> std::process::ExitStatus {
        self.child.wait().expect("waiting for the child")
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let running = matches!(self.child.try_wait(), Ok(None));
        if running {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        if let Some((pid, start)) = self.qemu {
            let ours = || start.is_some() && process_alive(pid) && process_start_time(pid) == start;
            // The child's QEMU gets SIGKILL from the kernel when the child dies
            // (PR_SET_PDEATHSIG, set by `vm` on every QEMU it spawns).
            let deadline = Instant::now() + Duration::from_secs(5);
            while ours() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if ours() {
                eprintln!("QEMU {pid} outlived its killed parent: killing its process group");
                if let Some(p) = i32::try_from(pid)
                    .ok()
                    .and_then(rustix::process::Pid::from_raw)
                {
                    let _ = rustix::process::kill_process_group(p, rustix::process::Signal::KILL);
                }
            }
        }
        if running {
            // Only after a kill by this guard: a test that ends its child itself checks the run
            // dir it leaves, and a sweep from here must not remove it under that test.
            vm::sweep_stale(&vm::run_base());
        }
    }
}
