//! `kvmtest gc` after a run killed with SIGKILL, on the real test guest: this test binary runs
//! itself as a child that runs a suite variant starting a VM (then sleeps); while the child is
//! alive gc must leave its run alone, and after the child is SIGKILLed gc must leave no QEMU,
//! remove the recorded sockets, run directory and scratch directory and the registry entry,
//! keep the results — and a second gc must find nothing to clean.
//!
//! QEMU gets `vm`'s parent-death signal when the child dies, so the process may already be gone
//! when gc looks; what gc must guarantee is that none is left, whichever of the two killed it.
#![allow(clippy::disallowed_methods)] // tests and examples start their own peers
#![allow(clippy::unwrap_used)] // Tests: a panic with the error is the report.

mod common;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{alive, guest_dir, suite_base};
use tests_suite::gc::{
    gc, process_start_time, registry_dir, GcMode, GcReport, Resource, RunRecord,
};
use tests_suite::{run, VmLayerFactory};

/// Set in the child's environment to `<dir>:<job id>`.
const CHILD_ENV: &str = "KVMTEST_SUITE_GC_CHILD";

/// The child's body; a no-op in a normal test run (the variable is not set). Boots the test
/// guest, then sleeps with the VM running until it is killed.
#[test]
fn gc_child() {
    let Some(spec) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let spec = spec.to_str().unwrap().to_owned();
    let (dir, job_id) = spec.rsplit_once(':').unwrap();
    let config = common::config(&format!(
        "include {}\nvariants:\n    - boot:\n        type = boot\n    - wait:\n        \
         type = sleep\n        sleep_time = 600\n",
        suite_base().display()
    ));
    let mut options = common::options(&Path::new(dir).join("results"));
    options.env_factory = Arc::new(VmLayerFactory::with_guest_dir(guest_dir()));
    options.job_id = Some(job_id.to_owned());
    let summary = run(&config, &options).unwrap();
    // Never reached while the parent test works: it kills this process first.
    std::process::exit(i32::from(summary.exit.code()));
}

/// Kills what the test started even when an assertion fails: the child, and every recorded
/// QEMU process group whose start time still matches; then lets gc remove the run's sockets and
/// directories outside the test's temporary directory.
struct Guard {
    child: Child,
    qemus: Vec<(u32, Option<u64>)>,
    results: PathBuf,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for &(pid, start) in &self.qemus {
            if start.is_some() && process_start_time(pid) == start {
                if let Some(p) = rustix::process::Pid::from_raw(i32::try_from(pid).unwrap_or(0)) {
                    let _ = rustix::process::kill_process_group(p, rustix::process::Signal::KILL);
                }
            }
        }
        let _ = gc(&self.results, GcMode::Collect);
    }
}

fn wait_for(what: &str, timeout: Duration, log: &Path, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}; child output:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn read_record(path: &Path) -> RunRecord {
    serde_json::from_str(&common::read(path)).unwrap()
}

#[test]
fn gc_cleans_up_after_a_killed_run_and_leaves_a_live_one_alone() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    // Unique per test process: the run's scratch directory is `$TMPDIR/kvmtest-<job id>`.
    let job_id = format!("gc-victim-{}", std::process::id());
    let log = dir.path().join("child.log");
    let out = File::create(&log).unwrap();
    let child = Command::new(std::env::current_exe().unwrap())
        .args(["gc_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(
            CHILD_ENV,
            format!("{}:{job_id}", dir.path().to_str().unwrap()),
        )
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(out))
        .spawn()
        .unwrap();
    let mut guard = Guard {
        child,
        qemus: Vec::new(),
        results: results.clone(),
    };

    // The VM runs once the second (sleeping) test has started.
    let events = results.join(&job_id).join("events.jsonl");
    wait_for(
        "the boot test to pass and the sleep to start",
        Duration::from_secs(300),
        &log,
        || {
            let text = std::fs::read_to_string(&events).unwrap_or_default();
            text.matches("\"test_started\"").count() >= 2
        },
    );
    let entry = registry_dir(&results).join(format!("{job_id}.json"));
    let record = read_record(&entry);
    for r in &record.resources {
        if let Resource::Process {
            pid, start_time, ..
        } = r
        {
            guard.qemus.push((*pid, *start_time));
        }
    }
    assert_eq!(guard.qemus.len(), 1, "recorded: {:?}", record.resources);
    let (qemu, _) = guard.qemus[0];
    assert!(alive(qemu), "QEMU {qemu} does not run");
    let paths: Vec<PathBuf> = record
        .resources
        .iter()
        .filter_map(|r| match r {
            Resource::Socket { path } | Resource::Dir { path } => Some(path.clone()),
            Resource::Process { .. } => None,
        })
        .collect();
    assert!(
        record
            .resources
            .iter()
            .any(|r| matches!(r, Resource::Socket { .. })),
        "no socket recorded: {:?}",
        record.resources
    );
    assert!(
        record
            .resources
            .iter()
            .any(|r| matches!(r, Resource::Dir { .. })),
        "no run directory recorded: {:?}",
        record.resources
    );
    for p in &paths {
        assert!(p.exists(), "{} missing while the VM runs", p.display());
    }
    assert!(record.scratch_dir.is_dir());

    // A live run is left alone: nothing killed or removed, its entry untouched.
    let before = std::fs::read(&entry).unwrap();
    let r = gc(&results, GcMode::Collect).unwrap();
    assert_eq!(
        r,
        GcReport {
            live_runs: vec![job_id.clone()],
            ..GcReport::default()
        }
    );
    assert_eq!(
        std::fs::read(&entry).unwrap(),
        before,
        "the live entry changed"
    );
    assert!(alive(qemu), "gc killed the live run's QEMU");
    for p in &paths {
        assert!(p.exists(), "gc removed {} of a live run", p.display());
    }

    // SIGKILL: the runner cleans up nothing; its entry stays behind for gc.
    guard.child.kill().unwrap();
    guard.child.wait().unwrap();
    assert!(
        entry.is_file(),
        "a SIGKILLed run removed its registry entry"
    );

    let r = gc(&results, GcMode::Collect).unwrap();
    assert_eq!(r.stale_runs, [job_id.as_str()], "{r:?}");
    assert!(r.live_runs.is_empty() && r.problems.is_empty(), "{r:?}");
    // gc's SIGKILL (or the parent-death signal) takes effect asynchronously.
    wait_for("QEMU to be gone", Duration::from_secs(10), &log, || {
        !alive(qemu)
    });
    for p in &paths {
        assert!(!p.exists(), "{} left after gc", p.display());
    }
    assert!(
        !record.scratch_dir.exists(),
        "scratch directory {} left after gc",
        record.scratch_dir.display()
    );
    assert!(!entry.exists(), "registry entry left after gc");
    // Results are kept.
    assert!(results.join(&job_id).join("events.jsonl").is_file());
    assert!(results.join(&job_id).join("tests").is_dir());

    // Nothing left for a second gc.
    assert_eq!(gc(&results, GcMode::Collect).unwrap(), GcReport::default());
}
