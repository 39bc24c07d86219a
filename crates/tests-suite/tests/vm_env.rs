//! The VM environment (`tests_suite::vm_env`) on the real test guest under TCG: the suite's
//! failing demo variant fails with a message naming what was expected and what the guest
//! printed (in the verdict, `results.json` and `junit.xml`), with the argv, QEMU output, serial
//! log and QMP transcript in its directory; a VM is reused only while the command line stays
//! identical and `kill_vm` does not forbid it; an interrupted run kills its VMs and keeps
//! finished results; a guest that never comes up fails with ssh's last error and its serial
//! log. Every test checks that no QEMU it started survives.
//!
//! The guest comes from `KVMTEST_GUEST_DIR`, else `<target dir>/guest` (`vm::fixtures`: under
//! `CARGO_TARGET_DIR` when it is set), built beforehand by `cargo xtask fixtures guest`; without
//! it these tests fail at once, naming that command.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{alive, guest_dir, suite_base, workspace_root};
use params::{Parser, ParserOptions};
use tests_suite::{run, ExitStatus, RunOptions, RunReport, VerdictKind, VmLayerFactory};

fn vm_options(results: &Path) -> RunOptions {
    let mut o = common::options(results);
    o.env_factory = Arc::new(VmLayerFactory::with_guest_dir(guest_dir()));
    o
}

/// Every QEMU pid the VMs of a job logged (`vm.log`: "spawned pid N").
fn qemu_pids(job_dir: &Path) -> Vec<u32> {
    let mut pids = Vec::new();
    let mut stack = vec![job_dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|f| f == "vm.log") {
                for line in common::read(&p).lines() {
                    if let Some(rest) = line.split("spawned pid ").nth(1) {
                        let pid: u32 = rest.split_whitespace().next().unwrap().parse().unwrap();
                        if !pids.contains(&pid) {
                            pids.push(pid);
                        }
                    }
                }
            }
        }
    }
    pids
}

fn assert_nothing_left(results: &Path, job_dir: &Path, expected_vms: usize) {
    let pids = qemu_pids(job_dir);
    assert_eq!(pids.len(), expected_vms, "QEMU starts: {pids:?}");
    for pid in pids {
        assert!(!alive(pid), "QEMU {pid} still runs after the run");
    }
    let runs: Vec<_> = std::fs::read_dir(results.join(".runs"))
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    assert!(runs.is_empty(), "run registry entries left: {runs:?}");
}

/// The VM directory (`vm1-…`) of a test directory.
fn vm_dir(test_dir: &Path) -> PathBuf {
    std::fs::read_dir(test_dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.is_dir())
        .unwrap_or_else(|| panic!("no VM directory in {}", test_dir.display()))
}

#[test]
fn fail_demo_names_expected_and_printed_and_keeps_the_logs() {
    let results = tempfile::tempdir().unwrap();
    let mut p = Parser::new(ParserOptions::default());
    p.parse_file(workspace_root().join("fixtures/suite/tests.cfg"))
        .unwrap();
    p.only_filter("fail_demo").unwrap();
    let config = p.finish();
    let summary = run(&config, &vm_options(results.path())).unwrap();
    assert_eq!(summary.exit, ExitStatus::TestsFailed);
    let t = &summary.report.tests[0];
    assert_eq!(t.verdict, VerdictKind::Fail, "{:?}", t.message);
    let msg = t.message.as_deref().unwrap();
    // Expected: the match_string; printed: the guest's lspci, with the NIC it does have.
    assert!(msg.contains("\"dead:beef\""), "{msg}");
    assert!(msg.contains("lspci"), "{msg}");
    assert!(
        msg.contains("the guest printed") && msg.contains("1af4:1000"),
        "{msg}"
    );
    // The result files carry the same message: results.json as written, junit.xml (escaped)
    // in the failed testcase's <failure>.
    let written = RunReport::read(&summary.job_dir).unwrap();
    assert_eq!(written.tests.len(), 1);
    // Which QEMU ran: the default one (`KVMTEST_QEMU`, else on PATH), with its version, in
    // the test's record, the run's list and junit.xml.
    let binary = vm::fixtures::default_qemu();
    let caps = vm::Qemu::probe(&binary).unwrap();
    let qemu = vm::fixtures::describe_qemu(&binary, &caps.caps().version);
    eprintln!("QEMU under test: {qemu}");
    assert_eq!(written.tests[0].qemu.as_deref(), Some(qemu.as_str()));
    assert_eq!(written.qemu, vec![qemu.clone()]);
    assert!(common::read(&summary.job_dir.join("junit.xml")).contains(&qemu));
    assert_eq!(written.tests[0].verdict, VerdictKind::Fail);
    assert_eq!(written.tests[0].message.as_deref(), Some(msg));
    let junit = common::read(&summary.job_dir.join("junit.xml"));
    let case = junit
        .split("<testcase ")
        .find(|c| c.contains(&format!("name=\"{}\"", t.name)))
        .unwrap_or_else(|| panic!("no testcase {} in {junit}", t.name));
    let failure = case
        .split("<failure ")
        .nth(1)
        .unwrap_or_else(|| panic!("no <failure> in {case}"));
    for part in ["dead:beef", "the guest printed", "1af4:1000"] {
        assert!(
            failure.contains(part),
            "{part} missing in junit.xml: {case}"
        );
    }
    let dir = vm_dir(&summary.job_dir.join(&t.dir));
    for f in [
        "serial.log",
        "qmp-qmp1.jsonl",
        "qemu.log",
        "qemu-argv.json",
        "qemu-argv.txt",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing in {}", dir.display());
    }
    assert!(common::read(&dir.join("serial.log")).contains("KVMTEST-GUEST-READY"));
    assert!(common::read(&dir.join("qmp-qmp1.jsonl")).contains("device_add"));
    // The device of the failed test was unplugged anyway.
    assert!(common::read(&dir.join("qmp-qmp1.jsonl")).contains("device_del"));
    assert_nothing_left(results.path(), &summary.job_dir, 1);
}

#[test]
fn a_vm_is_reused_only_with_the_same_command_line_and_without_kill_vm() {
    let results = tempfile::tempdir().unwrap();
    let config = common::config(&format!(
        "include {}\ntype = boot\nvariants:\n    - first:\n    - second:\n        kill_vm = yes\n    \
         - third:\n    - fourth:\n        mem = 320\n",
        suite_base().display()
    ));
    let summary = run(&config, &vm_options(results.path())).unwrap();
    let tests = &summary.report.tests;
    for t in tests {
        assert_eq!(t.verdict, VerdictKind::Pass, "{}: {:?}", t.name, t.message);
    }
    let dir = |i: usize| summary.job_dir.join(&tests[i].dir);
    let reused = |i: usize| vm_dir(&dir(i)).join("REUSED.txt").is_file();
    assert!(!reused(0), "the first test starts the VM");
    assert!(reused(1), "the second test has the same command line");
    assert!(
        !reused(2),
        "kill_vm = yes in the second test forbids reusing its VM"
    );
    assert!(!reused(3), "mem differs: a new VM");
    // Every test directory holds the exact argv of its VM.
    let argv: Vec<String> =
        serde_json::from_str(&common::read(&vm_dir(&dir(3)).join("qemu-argv.json"))).unwrap();
    assert!(
        argv.windows(2).any(|w| w[0] == "-m" && w[1] == "320"),
        "{argv:?}"
    );
    assert!(vm_dir(&dir(1)).join("qemu-argv.json").is_file());
    assert_nothing_left(results.path(), &summary.job_dir, 3);
}

#[test]
fn a_vm_that_lost_a_disk_of_its_command_line_is_not_reused() {
    // tp-qemu's block_hotplug without plug unplugs a disk the command line gave the VM: the
    // next test, with the same command line, must get a new VM that has the disk.
    let results = tempfile::tempdir().unwrap();
    let config = common::config(&format!(
        "include {}\nimages += \" stg0\"\nimage_name_stg0 = stg0\nimage_size_stg0 = 8M\n\
         get_disk_cmd = ls /dev/vd*\nvariants:\n    - unplug:\n        type = block_hotplug\n        \
         need_plug = no\n        repeat_times = 1\n    - after:\n        type = boot\n        \
         boot_command = ls /dev/vdb\n",
        suite_base().display()
    ));
    let summary = run(&config, &vm_options(results.path())).unwrap();
    let tests = &summary.report.tests;
    assert_eq!(tests.len(), 2);
    for t in tests {
        assert_eq!(t.verdict, VerdictKind::Pass, "{}: {:?}", t.name, t.message);
    }
    let unplug_log = common::read(&summary.job_dir.join(&tests[0].dir).join("test.log"));
    assert!(unplug_log.contains("unplugging stg0"), "{unplug_log}");
    assert!(
        !vm_dir(&summary.job_dir.join(&tests[1].dir))
            .join("REUSED.txt")
            .is_file(),
        "the VM that lost stg0 was reused"
    );
    assert_nothing_left(results.path(), &summary.job_dir, 2);
}

#[test]
fn an_interrupted_run_kills_its_vms_and_keeps_finished_results() {
    let results = tempfile::tempdir().unwrap();
    let config = common::config(&format!(
        "include {}\nvariants:\n    - boot:\n        type = boot\n    - wait:\n        \
         type = sleep\n        sleep_time = 600\n",
        suite_base().display()
    ));
    let options = vm_options(results.path());
    let cancel = options.cancel.clone();
    let job_id = "interrupted".to_owned();
    let mut options = options;
    options.job_id = Some(job_id.clone());
    let runner = std::thread::spawn(move || run(&config, &options));
    let events = results.path().join(&job_id).join("events.jsonl");
    let started = Instant::now();
    loop {
        let text = std::fs::read_to_string(&events).unwrap_or_default();
        if text.matches("\"test_started\"").count() >= 2 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "the second test did not start: {text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The VM runs (reused by the sleeping test) when the run is interrupted.
    let pids = qemu_pids(&results.path().join(&job_id));
    assert_eq!(pids.len(), 1);
    assert!(alive(pids[0]));
    cancel.cancel();
    let summary = runner.join().unwrap().unwrap();
    assert_eq!(summary.exit, ExitStatus::Interrupted);
    assert!(summary.report.interrupted);
    let verdicts: Vec<_> = summary.report.tests.iter().map(|t| t.verdict).collect();
    assert_eq!(verdicts, [VerdictKind::Pass, VerdictKind::Cancel]);
    assert!(summary.job_dir.join("junit.xml").is_file());
    assert_nothing_left(results.path(), &summary.job_dir, 1);
}

#[test]
fn a_guest_that_never_comes_up_fails_with_its_serial_log_and_the_last_ssh_error() {
    // The kernel finds no init (it panics and, with panic=0, stays), so the ssh login through
    // the forwarded port never gets a greeting: the boot test fails when login_timeout ends,
    // naming the login over ssh and why its last attempt failed; the test's directory holds
    // the serial log with the panic, the session transcript and the same message.
    let results = tempfile::tempdir().unwrap();
    let config = common::config(&format!(
        "include {}\ntype = boot\nserial_login = no\ndel guest_ready_marker\nkernel_params = console=ttyS0 panic=0 \
         rdinit=/kvmtest-no-such-init\nredirs += \" ssh\"\nguest_port_ssh = 22\n\
         shell_client = ssh\nshell_port = 22\nusername = root\npassword = 123456\n\
         login_timeout = 30\nkill_vm_gracefully = no\n",
        suite_base().display()
    ));
    let summary = run(&config, &vm_options(results.path())).unwrap();
    assert_eq!(summary.exit, ExitStatus::TestsFailed);
    let t = &summary.report.tests[0];
    assert_eq!(t.verdict, VerdictKind::Fail, "{:?}", t.message);
    let msg = t.message.as_deref().unwrap();
    eprintln!("message: {msg}");
    // The login over ssh, retried until login_timeout, and what ssh said last.
    assert!(msg.contains("did not come up"), "{msg}");
    assert!(msg.contains("ssh root@localhost"), "{msg}");
    assert!(msg.contains("banner exchange"), "{msg}");
    let test_dir = summary.job_dir.join(&t.dir);
    let dir = vm_dir(&test_dir);
    let serial = common::read(&dir.join("serial.log"));
    assert!(serial.contains("Kernel panic"), "serial.log: {serial}");
    let log = common::read(&test_dir.join("test.log"));
    assert!(log.contains("banner exchange"), "test.log: {log}");
    assert_nothing_left(results.path(), &summary.job_dir, 1);
}

#[test]
fn restore_from_snapshot_starts_a_later_vm_from_the_first_boots_saved_state() {
    // Each test kills its VM. The first boots, is logged into and saved (then writes a file in
    // the guest's RAM); the second is restored from that state — so the file is not there;
    // the third re-creates its disk image, so it boots afresh rather than get the saved one;
    // the fourth (`save`) boots although a state exists, and saves anew (replacing it); the
    // fifth, another command line, gets a state of its own beside it.
    let results = tempfile::tempdir().unwrap();
    let config = common::config(&format!(
        "include {}\ntype = boot\nrestore_from_snapshot = yes\nkill_vm = yes\nvariants:\n    \
         - first:\n        boot_command = touch /tmp/after-save && echo made\n    \
         - second:\n        boot_command = ls /tmp/after-save 2>&1; echo checked\n        \
         boot_expect = No such file\n    \
         - third:\n        force_create_image = yes\n        boot_command = echo fresh\n    \
         - fourth:\n        restore_from_snapshot = save\n        boot_command = echo saved\n    \
         - fifth:\n        mem = 320\n        boot_command = echo other\n",
        suite_base().display()
    ));
    let summary = run(&config, &vm_options(results.path())).unwrap();
    let tests = &summary.report.tests;
    assert_eq!(tests.len(), 5);
    for t in tests {
        assert_eq!(t.verdict, VerdictKind::Pass, "{}: {:?}", t.name, t.message);
    }
    let log = |i: usize| common::read(&summary.job_dir.join(&tests[i].dir).join("test.log"));
    let first = log(0);
    assert!(
        first.contains("VM vm1: started; logged in, its state saved for restores"),
        "{first}"
    );
    let second = log(1);
    assert!(
        second.contains("VM vm1: restored from a saved state"),
        "{second}"
    );
    let vm_log = common::read(&vm_dir(&summary.job_dir.join(&tests[1].dir)).join("vm.log"));
    assert!(vm_log.contains("restored in"), "{vm_log}");
    // The initramfs guest has no guest agent: its clock is left, and the log says so.
    assert!(vm_log.contains("the guest's clock was not set"), "{vm_log}");
    let third = log(2);
    assert!(
        third.contains("not restored from its saved state: this test created")
            && third.contains("disk1.qcow2"),
        "{third}"
    );
    let fourth = log(3);
    assert!(
        fourth.contains("VM vm1: started; logged in, its state saved for restores"),
        "{fourth}"
    );
    let fifth = log(4);
    assert!(
        fifth.contains("VM vm1: started; logged in, its state saved for restores"),
        "{fifth}"
    );
    assert_nothing_left(results.path(), &summary.job_dir, 5);
}
