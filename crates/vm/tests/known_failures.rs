//! Fault injection for QEMU's known fatal messages: a tiny fake QEMU (a shell script written to
//! a tempdir) is the binary of a real `QemuCmdArgv`; it prints one message to stderr and exits 1.
//! `Vm::create` must turn "Could not initialize KVM" and hugepage allocation failures into
//! their specific errors, and anything else into `QemuExited` with the output.
//!
//! One test on purpose: writing an executable while other test threads fork can make `exec`
//! fail with ETXTBSY, so the scripts are written and run one after another.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use support::{guest_params, logs, start_on};
use vm::{Error, Qemu};

/// A fake QEMU in `dir` that prints `stderr` and exits 1.
fn fake_qemu(dir: &Path, name: &str, stderr: &str) -> PathBuf {
    let path = dir.join(name);
    let quoted = stderr.replace('\'', r"'\''");
    std::fs::write(
        &path,
        format!("#!/bin/sh\nprintf '%s\\n' '{quoted}' >&2\nexit 1\n"),
    )
    .expect("writing the fake QEMU");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

/// A fake's name, what it prints, and whether the error is the expected one.
type Case = (&'static str, &'static str, fn(&Error) -> bool);

async fn create_with_fake(binary: &Path) -> Error {
    let logs = logs();
    let caps = support::qemu().caps().clone();
    let qemu = Arc::new(Qemu::new(binary, caps));
    start_on(qemu, guest_params(), logs.path())
        .await
        .expect_err("the fake QEMU exits at once")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_qemu_failures_are_specific_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases: [Case; 5] = [
        (
            "kvm-old",
            "Could not initialize KVM, will disable KVM support",
            |e| matches!(e, Error::KvmUnavailable { .. }),
        ),
        (
            "kvm-new",
            "Could not access KVM kernel module: Permission denied\n\
             qemu-system-x86_64: failed to initialize kvm: Permission denied",
            |e| matches!(e, Error::KvmUnavailable { .. }),
        ),
        (
            "hugepage-prealloc",
            "qemu-system-x86_64: os_mem_prealloc: Insufficient free host memory pages \
             available to allocate guest RAM",
            |e| matches!(e, Error::HugepageAllocation { .. }),
        ),
        (
            "hugepage-area",
            "qemu-system-x86_64: -mem-path /dev/hugepages: alloc_mem_area: can't mmap RAM pages",
            |e| matches!(e, Error::HugepageAllocation { .. }),
        ),
        (
            "other",
            "qemu-system-x86_64: -device foo: 'foo' is not a valid device model name",
            |e| matches!(e, Error::QemuExited { .. }),
        ),
    ];
    for (name, message, expected) in cases {
        let fake = fake_qemu(dir.path(), name, message);
        let err = create_with_fake(&fake).await;
        assert!(expected(&err), "{name}: unexpected error: {err:?}");
        let text = err.to_string();
        let first = message.lines().last().unwrap_or(message);
        assert!(
            text.contains(first.trim()),
            "{name}: the error shows QEMU's output: {text}"
        );
    }
}
