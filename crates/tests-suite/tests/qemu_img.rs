//! `qemu_img` (tp-qemu's subcommands and params) on the real `qemu-img` binary (installed by
//! `.ci/run`; these tests fail, never skip, without it). One test per behaviour; the
//! subcommands that boot are run by their suite variants (`disk_guest.qemu_img.*`), and here
//! without their boots (`qemu_img_boot = no`) or up to the boot (no VM layer).

#![allow(clippy::unwrap_used)] // Tests: a panic with the error is the report.

mod common;

use common::{config, options, read};
use tests_suite::{run, VerdictKind, VM_UNAVAILABLE};

/// tp-qemu's `vms = ''`: the test makes the images of `images` in its directory.
const BASE: &str = "\
type = qemu_img
vms = ''
images = image1
image_name = image1
image_size = 16M
force_create_image = yes
";

/// What one variant left: its verdict, message and test.log.
struct Outcome {
    verdict: VerdictKind,
    message: String,
    log: String,
}

/// Runs `BASE` + `extra` (one variant).
fn run_one(extra: &str) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let s = run(&config(&format!("{BASE}{extra}")), &options(dir.path())).unwrap();
    let t = &s.report.tests[0];
    Outcome {
        verdict: t.verdict,
        message: t.message.clone().unwrap_or_default(),
        log: read(&s.job_dir.join(&t.dir).join("test.log")),
    }
}

fn assert_pass(o: &Outcome) {
    assert_eq!(o.verdict, VerdictKind::Pass, "{}\n{}", o.message, o.log);
}

fn assert_error(o: &Outcome, parts: &[&str]) {
    assert_eq!(o.verdict, VerdictKind::Error, "{}\n{}", o.message, o.log);
    for p in parts {
        assert!(o.message.contains(p), "{p:?} not in {:?}", o.message);
    }
}

#[test]
fn check_runs_the_create_command_as_an_argv_and_checks_each_conversion() {
    let o = run_one(
        "subcommand = check\nimage_name_dd = dd_created_image\n\
         create_image_cmd = \"dd if=/dev/zero of=%s bs=1M count=8\"\n\
         supported_image_formats = qcow2 raw qed\n",
    );
    assert_pass(&o);
    assert!(o.log.contains("run: dd if=/dev/zero of=/"), "{}", o.log);
    assert!(o.log.contains("-O qed"), "{}", o.log);
    // The dd file (raw) cannot be checked: that counts as checked, as in tp-qemu.
    assert!(o.log.contains("does not support checks"), "{}", o.log);
}

#[test]
fn check_refuses_a_create_image_cmd_that_needs_a_shell() {
    let o = run_one(
        "subcommand = check\nimage_name_dd = dd\nsupported_image_formats = raw\n\
         create_image_cmd = \"dd if=/dev/zero of=%s bs=1M count=8 && sync\"\n",
    );
    assert_error(&o, &["create_image_cmd", "needs a shell"]);
    assert!(!o.log.contains("run: dd"), "{}", o.log);
}

#[test]
fn a_key_the_subcommand_needs_is_named() {
    let o = run_one("subcommand = check\nimage_name_dd = dd\n");
    assert_error(
        &o,
        &[
            "create_image_cmd",
            "supported_image_formats",
            "subcommand = check needs it",
        ],
    );
    let o = run_one("subcommand = create\nimage_size_large = 1G\n");
    assert_error(&o, &["image_name_large", "subcommand = create needs it"]);
}

#[test]
fn an_unknown_subcommand_is_named() {
    let o = run_one("subcommand = frobnicate\n");
    assert_error(&o, &["subcommand", "frobnicate", "expected one of check"]);
    let o = run_one("");
    assert_error(&o, &["subcommand"]);
}

#[test]
fn create_applies_the_cluster_size_and_preallocation_asked_for() {
    let o = run_one(
        "subcommand = create\nimage_name_large = large\nimage_size_large = 64M\n\
         image_cluster_size = 2M\npreallocated = metadata\n",
    );
    assert_pass(&o);
    assert!(
        o.log
            .contains("create -f qcow2 -o preallocation=metadata,cluster_size=2M"),
        "{}",
        o.log
    );
    assert!(o.log.contains("cluster size Some(2097152)"), "{}", o.log);
}

#[test]
fn create_refuses_a_cluster_size_that_is_not_a_size() {
    let o = run_one(
        "subcommand = create\nimage_name_large = large\nimage_size_large = 64M\n\
         image_cluster_size = big\n",
    );
    assert_error(&o, &["image_cluster_size"]);
}

#[test]
fn info_shows_the_format_and_the_size_in_bytes() {
    let o = run_one("subcommand = info\n");
    assert_pass(&o);
    assert!(o.log.contains("(16777216 bytes)"), "{}", o.log);
}

#[test]
fn snapshot_creates_lists_and_deletes_two_snapshots() {
    let o = run_one("subcommand = snapshot\n");
    assert_pass(&o);
    for part in [
        "snapshot -c snapshot0",
        "snapshot -l",
        "snapshot -d snapshot1",
    ] {
        assert!(o.log.contains(part), "{part}: {}", o.log);
    }
}

const AMEND: &str = "\
subcommand = amend
images += \" stg\"
image_name_stg = images/stg
force_create_image_stg = yes
qemu_img_options = compat
";

#[test]
fn amend_upgrades_compat_and_info_shows_it() {
    let o = run_one(&format!(
        "{AMEND}image_extra_params_stg = \"compat=0.10,\"\ncompat = 1.1\n"
    ));
    assert_pass(&o);
    assert!(
        o.log.contains("create -f qcow2 -o compat=0.10"),
        "{}",
        o.log
    );
    assert!(o.log.contains("compat is now \"1.1\""), "{}", o.log);
}

#[test]
fn amend_downgrade_with_refcount_bits_32_fails_with_the_expected_stderr() {
    let cfg = format!(
        "{AMEND}image_extra_params_stg = \"compat=1.1,refcount_bits=32,\"\ncompat = 0.10\n\
         check_output = stderr\n"
    );
    let o = run_one(&format!(
        "{cfg}command_result_pattern = \"(compat=0.10 requires refcount_bits=16)\"\n"
    ));
    assert_pass(&o);
    // The same failure judged by its exit status fails the test.
    let o = run_one(&cfg.replace("check_output = stderr", "check_output = exit_status"));
    assert_eq!(o.verdict, VerdictKind::Fail, "{}", o.message);
    assert!(o.message.contains("exited with 1"), "{}", o.message);
    // A pattern that is not in the stream fails, naming what was printed.
    let o = run_one(&format!("{cfg}command_result_pattern = no such text\n"));
    assert_eq!(o.verdict, VerdictKind::Fail, "{}", o.message);
    assert!(
        o.message.contains("does not match command_result_pattern")
            && o.message.contains("requires refcount_bits=16"),
        "{}",
        o.message
    );
}

#[test]
fn amend_needs_the_image_made_for_it() {
    let o = run_one(
        "subcommand = amend\nimage_name_stg = images/stg\nqemu_img_options = compat\n\
         compat = 1.1\n",
    );
    assert_error(&o, &["does not exist", "force_create_image_stg"]);
}

const CONVERT: &str = "\
subcommand = convert
qemu_img_boot = no
dest_image_format = qcow2
command_result_pattern = \"\\(\\d+\\.\\d+/100%\\)\"
";

#[test]
fn convert_show_progress_on_prints_progress_on_stdout() {
    let o = run_one(&format!(
        "{CONVERT}show_progress = on\ncheck_output = stdout\n"
    ));
    assert_pass(&o);
    assert!(
        o.log.contains("run: qemu-img convert -p -f qcow2"),
        "{}",
        o.log
    );
}

#[test]
fn convert_show_progress_off_signals_qemu_img_for_its_progress() {
    let o = run_one(&format!(
        "{CONVERT}show_progress = off\ncheck_output = stderr\n\
         qemu_img_options = cluster_size\ncluster_size = 512\n"
    ));
    assert_pass(&o);
    assert!(o.log.contains("-o cluster_size=512"), "{}", o.log);
    assert!(o.log.contains("sending signal 10 to pid"), "{}", o.log);
}

#[test]
fn an_option_whose_key_is_unset_is_named() {
    let o = run_one(&format!("{CONVERT}qemu_img_options = cluster_size\n"));
    assert_error(&o, &["cluster_size", "qemu_img_options names it"]);
}

#[test]
fn convert_boots_through_the_vm_layer() {
    // Without a VM layer the boot is an error, after the conversion.
    let o = run_one("subcommand = convert\nmain_vm = vm1\ndest_image_format = raw\n");
    assert_error(&o, &[VM_UNAVAILABLE]);
    assert!(o.log.contains("convert -f qcow2 -O raw"), "{}", o.log);
}

#[test]
fn rebase_without_boots_moves_the_backing_file() {
    let o = run_one(
        "subcommand = rebase\nqemu_img_boot = no\nrebase_mode = unsafe\n\
         image_name_snapshot1 = images/sn1\nimage_name_snapshot2 = images/sn2\n",
    );
    assert_pass(&o);
    assert!(o.log.contains("rebase -u -b /"), "{}", o.log);
}

#[test]
fn commit_refuses_to_run_without_its_boots() {
    let o = run_one("subcommand = commit\nqemu_img_boot = no\n");
    assert_error(&o, &["qemu_img_boot", "commit boots"]);
}

#[test]
fn a_missing_binary_is_an_error() {
    let o = run_one("subcommand = info\nqemu_img_binary = /nonexistent/qemu-img\n");
    assert_error(&o, &["cannot run `/nonexistent/qemu-img create"]);
}

#[test]
fn a_relative_results_dir_works_for_commands_run_in_the_test_directory() {
    let dir = tempfile::tempdir().unwrap();
    // The runner is given a relative path; the process's working directory is not changed
    // (tests share it), so the relative path is built from the temporary directory's name.
    let cwd = std::env::current_dir().unwrap();
    let rel = pathdiff(dir.path(), &cwd);
    let s = run(
        &config(&format!("{BASE}subcommand = info\n")),
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
