//! `qemu_img` on the real `qemu-img` binary (installed by `.ci/run`; these tests fail, never
//! skip, without it).

#![allow(clippy::unwrap_used)] // Tests: a panic with the error is the report.

mod common;

use common::{config, options, read};
use tests_suite::{run, VerdictKind};

#[test]
fn qemu_img_variants_on_the_real_binary() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = "\
type = qemu_img
image_size = 16M
variants:
    - qcow2:
        image_format = qcow2
        convert_targets = raw qcow2 vmdk
    - raw:
        image_format = raw
    - raw_snapshot_only:
        image_format = raw
        subcommand = snapshot
    - bad_size:
        image_size = lots
    - no_binary:
        qemu_img_binary = /nonexistent/qemu-img
    - bad_format:
        image_format = nosuchformat
";
    let s = run(&config(cfg), &options(dir.path())).unwrap();
    let by_name = |n: &str| s.report.tests.iter().find(|t| t.name == n).unwrap();
    let qcow2 = by_name("qcow2");
    assert_eq!(qcow2.verdict, VerdictKind::Pass, "{qcow2:?}");
    let tdir = s.job_dir.join(&qcow2.dir);
    for f in [
        "image.qcow2",
        "converted.raw",
        "converted.qcow2",
        "converted.vmdk",
    ] {
        assert!(tdir.join(f).is_file(), "{f} missing");
    }
    let log = read(&tdir.join("test.log"));
    assert!(log.contains("run: qemu-img snapshot -d snap1"), "{log}");
    assert!(log.contains("Snapshot: ok"), "{log}");

    let raw = by_name("raw");
    assert_eq!(raw.verdict, VerdictKind::Pass, "{raw:?}");
    let log = read(&s.job_dir.join(&raw.dir).join("test.log"));
    assert!(log.contains("Check: not applicable"), "{log}");

    let only = by_name("raw_snapshot_only");
    assert_eq!(only.verdict, VerdictKind::Skip);
    assert!(only
        .message
        .as_deref()
        .unwrap()
        .contains("no internal snapshots"));

    let bad = by_name("bad_size");
    assert_eq!(bad.verdict, VerdictKind::Error);
    assert!(
        bad.message.as_deref().unwrap().contains("image_size"),
        "{bad:?}"
    );

    let nob = by_name("no_binary");
    assert_eq!(nob.verdict, VerdictKind::Error);
    assert!(nob
        .message
        .as_deref()
        .unwrap()
        .contains("cannot run `/nonexistent/qemu-img create"));

    // qemu-img itself refuses: a failure with its argv and stderr.
    let fmt = by_name("bad_format");
    assert_eq!(fmt.verdict, VerdictKind::Fail, "{fmt:?}");
    let m = fmt.message.as_deref().unwrap();
    assert!(
        m.contains("qemu-img create -f nosuchformat") && m.contains("exited with 1"),
        "{m}"
    );
}

#[test]
fn a_relative_results_dir_works_for_commands_run_in_the_test_directory() {
    let dir = tempfile::tempdir().unwrap();
    // The runner is given a relative path; the process's working directory is not changed
    // (tests share it), so the relative path is built from the temporary directory's name.
    let cwd = std::env::current_dir().unwrap();
    let rel = pathdiff(dir.path(), &cwd);
    let s = run(
        &config("type = qemu_img\nimage_size = 1M\nsubcommand = info\n"),
        &options(&rel.join("results")),
    )
    .unwrap();
    assert!(s.job_dir.is_absolute());
    assert_eq!(
        s.report.tests[0].verdict,
        VerdictKind::Pass,
        "{:?}",
        s.report.tests[0]
    );
}

/// `path` relative to `base` (both absolute), with `..` components.
fn pathdiff(path: &std::path::Path, base: &std::path::Path) -> std::path::PathBuf {
    let p: Vec<_> = path.components().collect();
    let b: Vec<_> = base.components().collect();
    let common = p.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut out = std::path::PathBuf::new();
    for _ in common..b.len() {
        out.push("..");
    }
    for c in &p[common..] {
        out.push(c);
    }
    out
}
