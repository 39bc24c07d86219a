//! Helpers shared by the integration tests: configs from text, quiet run options, and the test
//! guest (its directory, the suite's base config, QEMU liveness).

#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};

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

/// The test guest: `KVMTEST_GUEST_DIR`, else `target/guest/` at the workspace root (built by
/// `cargo xtask fixtures guest`). Panics naming that command when it is missing.
pub fn guest_dir() -> PathBuf {
    let dir = match std::env::var_os("KVMTEST_GUEST_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => workspace_root().join("target").join("guest"),
    };
    for f in ["vmlinux", "initrd.gz"] {
        assert!(
            dir.join(f).is_file(),
            "the test guest is missing ({} has no {f}): build it with \
             `cargo xtask fixtures guest` (or set KVMTEST_GUEST_DIR)",
            dir.display()
        );
    }
    dir
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
