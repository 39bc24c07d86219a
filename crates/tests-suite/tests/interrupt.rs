//! Ctrl-C: this test binary runs itself as a child that runs a slow suite through the CLI
//! entry point; the parent sends SIGINT mid-run and checks exit code 130, that the finished
//! test's result was kept, and that the run cleaned up after itself. The child is held by a
//! [`ChildGuard`], so it is killed even when the parent fails.
#![allow(clippy::disallowed_methods)] // tests and examples start their own peers
#![allow(clippy::unwrap_used)] // Tests: a panic with the error is the report.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use common::{read, ChildGuard};
use tests_suite::{cli_run, RunArgs, RunReport, VerdictKind};

/// Set in the child's environment to the directory it works in.
const CHILD_ENV: &str = "KVMTEST_SUITE_INTERRUPT_CHILD";

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    run: RunArgs,
}

/// The child's body; a no-op in a normal test run (the variable is not set).
#[test]
fn interrupt_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV).map(PathBuf::from) else {
        return;
    };
    let cfg = dir.join("slow.cfg");
    std::fs::write(
        &cfg,
        "type = sleep\nvariants:\n    - quick:\n        sleep_time = 0\n    - slow:\n        sleep_time = 60\n    - never:\n        sleep_time = 0\n",
    )
    .unwrap();
    let results = dir.join("results");
    let args = Cli::try_parse_from([
        "kvmtest-run",
        cfg.to_str().unwrap(),
        "--results-dir",
        results.to_str().unwrap(),
        "--settings",
        dir.join("kvmtest.toml").to_str().unwrap(),
        "--progress",
        "plain",
    ])
    .unwrap()
    .run;
    std::fs::write(dir.join("kvmtest.toml"), "").unwrap();
    let status = cli_run(&args);
    std::process::exit(i32::from(status.code()));
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn events(results: &Path) -> String {
    std::fs::read_to_string(results.join("latest/events.jsonl")).unwrap_or_default()
}

#[test]
fn sigint_stops_the_run_with_130_and_keeps_results() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "interrupt_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = ChildGuard::new(child);
    wait_for("the slow test to start", Duration::from_secs(60), || {
        let e = events(&results);
        e.contains("\"verdict\":\"pass\"") && e.contains("\"name\":\"slow\"")
    });
    let pid = rustix::process::Pid::from_raw(i32::try_from(child.id()).unwrap()).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.child().try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the child did not stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let (mut stdout, mut stderr) = (String::new(), String::new());
    let c = child.child();
    c.stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    c.stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(
        status.code(),
        Some(130),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(stdout.contains("[1/3] PASS   quick"), "{stdout}");

    let report = RunReport::read(&results.join("latest")).unwrap();
    assert!(report.interrupted);
    let v: Vec<_> = report
        .tests
        .iter()
        .map(|t| (t.name.as_str(), t.verdict))
        .collect();
    assert_eq!(
        v,
        [("quick", VerdictKind::Pass), ("slow", VerdictKind::Cancel)]
    );
    assert!(read(&results.join("latest/junit.xml")).contains("name=\"quick\""));
    // Clean end: no registry entry left for gc, scratch directory removed.
    assert_eq!(std::fs::read_dir(results.join(".runs")).unwrap().count(), 0);
    let prefix = format!("kvmtest-{}.", report.job_id);
    let left: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "scratch directories left: {left:?}");
}
