//! A variant's `qemu_binary` chooses the QEMU that runs it (avocado-vt's default `qemu` means
//! the environment's own); probing only, no VM is started.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use params::Params;
use tests_suite::gc::{ResourceRecorder, RunRecord};
use tests_suite::VmLayerEnv;

fn spec(qemu_binary: Option<&str>) -> spec::VmSpec {
    let mut p = Params::new();
    p.insert("vms", "vm1");
    if let Some(q) = qemu_binary {
        p.insert("qemu_binary", q);
    }
    spec::VmSpec::new(&p, "vm1").unwrap_or_else(|e| panic!("{e}"))
}

fn env(dir: &Path) -> VmLayerEnv {
    let binary = qemu_cmd_default();
    let qemu = vm::Qemu::probe(&binary).unwrap_or_else(|e| panic!("{e}"));
    let record = RunRecord {
        job_id: "t".into(),
        pid: std::process::id(),
        pid_start_time: None,
        started: String::new(),
        job_dir: dir.to_path_buf(),
        scratch_dir: dir.to_path_buf(),
        resources: Vec::new(),
    };
    VmLayerEnv::new(
        Arc::new(qemu),
        dir,
        dir.join("images"),
        ResourceRecorder::detached(record),
    )
}

/// The environment's default QEMU: `$KVMTEST_QEMU`, else the installed one (found on `PATH`).
fn qemu_cmd_default() -> PathBuf {
    let q = vm::fixtures::default_qemu();
    if q.components().count() > 1 {
        return q;
    }
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join(&q))
        .find(|p| p.is_file())
        .unwrap_or(q)
}

#[test]
fn the_default_name_and_the_same_file_are_the_environments_qemu() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let env = env(dir.path());
    let a = env.qemu_for(&spec(None)).unwrap_or_else(|e| panic!("{e}"));
    let b = env
        .qemu_for(&spec(Some("qemu")))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(Arc::ptr_eq(&a, &b));
    let path = a.binary().to_string_lossy().into_owned();
    let c = env
        .qemu_for(&spec(Some(&path)))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(Arc::ptr_eq(&a, &c), "{path} is the environment's QEMU");
}

#[test]
fn another_binary_is_probed_and_kept() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let env = env(dir.path());
    // A copy of the QEMU under another path is another binary as far as the config says.
    let default = env.qemu_for(&spec(None)).unwrap_or_else(|e| panic!("{e}"));
    let link = dir.path().join("other-qemu");
    std::os::unix::fs::symlink(
        std::fs::canonicalize(default.binary()).unwrap_or_else(|e| panic!("{e}")),
        &link,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // A symlink to the same file is the same QEMU.
    let same = env
        .qemu_for(&spec(Some(&link.to_string_lossy())))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(Arc::ptr_eq(&default, &same));
    // A wrapper script is another binary: probed once, then kept.
    let wrapper = dir.path().join("wrapped-qemu");
    std::fs::write(
        &wrapper,
        format!("#!/bin/sh\nexec '{}' \"$@\"\n", default.binary().display()),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let name = wrapper.to_string_lossy().into_owned();
    let other = env
        .qemu_for(&spec(Some(&name)))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!Arc::ptr_eq(&default, &other));
    assert_eq!(other.binary(), wrapper.as_path());
    assert_eq!(other.caps().version, default.caps().version);
    let again = env
        .qemu_for(&spec(Some(&name)))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(Arc::ptr_eq(&other, &again), "probed once");
    let err = env
        .qemu_for(&spec(Some("no-such-qemu-binary")))
        .err()
        .unwrap_or_else(|| panic!("a missing binary was accepted"));
    let text = tests_suite::error_chain(&err);
    assert!(text.contains("no-such-qemu-binary"), "{text}");
}
