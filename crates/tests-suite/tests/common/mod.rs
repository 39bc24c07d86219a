//! Helpers shared by the integration tests: configs from text, quiet run options, the test
//! guest (its directory, the suite's base config, QEMU liveness), and a guard that kills child
//! processes when a test fails.
//!
//! The guest is never built by a test: [`guest_dir`] takes it from [`vm::fixtures`]
//! (`KVMTEST_GUEST_DIR`, else `<target dir>/guest`, built by `cargo xtask fixtures guest`) and
//! panics naming that command when it is missing.

#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Once;

use params::{Config, Parser, ParserOptions};
use tests_suite::{ProgressMode, RunOptions};

/// A config from cfg text (panics on a parse error: tests give valid text).
pub fn config(text: &str) -> Config {
    let mut p = Parser::new(ParserOptions::default());
    if let Err(e) = p.parse_str(text) {
        panic!("bad test config: {}", e.render());
    }
    p.finish()
}

/// Run options writing under `dir`, without progress output.
pub fn options(dir: &Path) -> RunOptions {
    let mut o = RunOptions::new(dir);
    o.progress = ProgressMode::Quiet;
    o
}

/// Read a file to a string (panics with the path).
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap()
        .to_path_buf()
}

/// The test guest directory ([`vm::fixtures::require_guest`]). Panics naming
/// `cargo xtask fixtures guest` and the directory when the guest is missing. Also prints, once,
/// the QEMU the VM layer will run ([`report_qemu`]).
pub fn guest_dir() -> PathBuf {
    let dir = vm::fixtures::require_guest().unwrap_or_else(|e| panic!("{e}"));
    report_qemu();
    dir
}

/// Prints `QEMU under test: <path> (<version>)` once per test process: the QEMU that
/// `VmLayerFactory` runs without `--qemu`/`qemu_binary` ([`vm::fixtures::default_qemu`]:
/// `KVMTEST_QEMU`, else `qemu-system-x86_64`), probed as the factory probes it.
pub fn report_qemu() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let binary = vm::fixtures::default_qemu();
        match vm::Qemu::probe(&binary) {
            Ok(q) => eprintln!(
                "QEMU under test: {}",
                vm::fixtures::describe_qemu(&binary, &q.caps().version)
            ),
            Err(e) => eprintln!(
                "QEMU under test: {} (probing failed: {e})",
                binary.display()
            ),
        }
    });
}

/// The bundled suite's base config (one VM of the test guest).
pub fn suite_base() -> PathBuf {
    workspace_root().join("fixtures/suite/base.cfg")
}

/// Whether `pid` exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X']))
    })
}

/// A child process that is SIGKILLed and reaped when the guard drops, also when the test
/// panics: no process a test started outlives it.
pub struct ChildGuard(Child);

impl ChildGuard {
    /// Guards `child`.
    pub fn new(child: Child) -> ChildGuard {
        ChildGuard(child)
    }

    /// The guarded child.
    pub fn child(&mut self) -> &mut Child {
        &mut self.0
    }

    /// Its pid.
    pub fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
