//! Runner tests with `noop`/`sleep` variants: verdict counting, missing parameters, result
//! files, sharding, merging, `--jobs`, cancellation, VM hooks through a fake environment, gc.
#![allow(clippy::disallowed_methods)] // tests and examples start their own peers
#![allow(clippy::unwrap_used)] // Tests: a panic with the error is the report.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{config, options, read, ChildGuard};
use params::Params;
use spec::ImageProcessing;
use tests_suite::gc::{gc, GcMode, Resource, ResourceRecorder, RunRecord};
use tests_suite::results::merge;
use tests_suite::runner::shard_indices;
use tests_suite::{
    run, BoxFuture, EnvError, EnvFactory, ExitStatus, GuestVm, RunReport, Shard, Teardown,
    VerdictKind, VmEnv, VmStart, WorkerSlot,
};

const MIXED: &str = "\
type = noop
variants:
    - p1:
    - p2:
    - f:
        noop_verdict = fail
        noop_message = expected 3 got 4
    - e:
        noop_verdict = error
    - s:
        noop_verdict = skip
";

#[test]
fn verdicts_are_counted_and_written() {
    let dir = tempfile::tempdir().unwrap();
    let summary = run(&config(MIXED), &options(dir.path())).unwrap();
    let c = summary.report.counts;
    assert_eq!((c.pass, c.fail, c.error, c.skip, c.cancel), (2, 1, 1, 1, 0));
    assert_eq!(summary.exit, ExitStatus::TestsFailed);
    assert_eq!(summary.exit.code(), 1);
    assert!(!summary.report.interrupted);

    // results.json round-trips and names the failure message.
    let report = RunReport::read(&summary.job_dir).unwrap();
    assert_eq!(report, summary.report);
    let f = &report.tests[2];
    assert_eq!((f.name.as_str(), f.verdict), ("f", VerdictKind::Fail));
    assert_eq!(f.message.as_deref(), Some("expected 3 got 4"));

    // junit.xml: one testcase per variant, failure and error and skip marked.
    let junit = read(&summary.job_dir.join("junit.xml"));
    assert_eq!(junit.matches("<testcase ").count(), 5, "{junit}");
    assert!(
        junit.contains("<failure message=\"expected 3 got 4\""),
        "{junit}"
    );
    assert!(junit.contains("<error"), "{junit}");
    assert!(junit.contains("<skipped"), "{junit}");
    assert!(junit.contains("tests=\"5\""), "{junit}");

    // events.jsonl: run start, 5 × (start, finish), run finish; every line is JSON.
    let events: Vec<serde_json::Value> = read(&summary.job_dir.join("events.jsonl"))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 12);
    assert_eq!(events[0]["event"], "run_started");
    assert_eq!(events[11]["event"], "run_finished");
    assert_eq!(
        events
            .iter()
            .filter(|e| e["event"] == "test_finished")
            .count(),
        5
    );

    // Per-test directory: params with origins, and the log.
    let tdir = summary.job_dir.join(&report.tests[0].dir);
    let params: serde_json::Value = serde_json::from_str(&read(&tdir.join("params.json"))).unwrap();
    let ty = params["params"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["key"] == "type")
        .unwrap();
    assert_eq!(ty["value"], "noop");
    assert_eq!(ty["origin"], "<string>:1");
    assert!(read(&tdir.join("test.log")).contains("noop: p1"));
    assert!(summary.job_dir.join("state.json").is_file());

    // `latest` points at the job; the run registry entry is gone after a clean end.
    let latest = std::fs::read_link(dir.path().join("latest")).unwrap();
    assert_eq!(latest, Path::new(&report.job_id));
    let runs = std::fs::read_dir(dir.path().join(".runs")).unwrap().count();
    assert_eq!(runs, 0);
}

#[test]
fn all_passing_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = "type = noop\nvariants:\n    - a:\n    - b:\n        noop_verdict = skip\n";
    let summary = run(&config(cfg), &options(dir.path())).unwrap();
    assert_eq!(summary.exit, ExitStatus::Success);
}

#[test]
fn a_missing_parameter_is_an_error_naming_the_key_never_a_skip() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = "variants:\n    - no_type:\n        x = 1\n    - sleepy:\n        type = sleep\n    - bogus:\n        type = frobnicate\n";
    let summary = run(&config(cfg), &options(dir.path())).unwrap();
    let t = &summary.report.tests;
    assert!(t.iter().all(|t| t.verdict == VerdictKind::Error), "{t:?}");
    let no_type = t[0].message.as_deref().unwrap();
    assert!(no_type.contains("type: missing (required)"), "{no_type}");
    let sleepy = t[1].message.as_deref().unwrap();
    assert!(
        sleepy.contains("sleep_time: missing (required)"),
        "{sleepy}"
    );
    let unknown = t[2].message.as_deref().unwrap();
    assert!(
        unknown.contains("unknown test type 'frobnicate' (set at <string>:7)"),
        "{unknown}"
    );
    assert!(unknown.contains("qemu_img"), "{unknown}");
}

#[test]
fn vm_based_types_error_without_a_vm_layer() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = "main_vm = vm1\nvariants:\n    - boot:\n        type = boot\n    - mig:\n        type = migration\n        migration_protocol = tcp\n    - started:\n        type = noop\n        vms = vm1\n        start_vm = yes\n";
    let summary = run(&config(cfg), &options(dir.path())).unwrap();
    for t in &summary.report.tests {
        assert_eq!(t.verdict, VerdictKind::Error, "{t:?}");
        assert!(
            t.message
                .as_deref()
                .unwrap()
                .contains("VM layer not available in this build"),
            "{t:?}"
        );
    }
    // The noop variant failed in pre-processing, and says so.
    assert!(summary.report.tests[2]
        .message
        .as_deref()
        .unwrap()
        .starts_with("pre-processing:"));
}

/// 3 × 4 = 12 variants.
const MATRIX: &str = "\
type = noop
variants:
    - a:
    - b:
    - c:
variants:
    - w:
    - x:
    - y:
        noop_verdict = skip
    - z:
";

fn indices(r: &RunReport) -> Vec<usize> {
    r.tests.iter().map(|t| t.index).collect()
}

#[test]
fn shards_partition_the_variants_deterministically() {
    for n in 1..=13 {
        let mut seen = BTreeSet::new();
        for k in 1..=n {
            let s = Shard::new(k, n).unwrap();
            for i in shard_indices(12, s) {
                assert!(seen.insert(i), "variant {i} in two shards of {n}");
            }
        }
        assert_eq!(seen, (0..12).collect(), "shards of {n} miss variants");
    }

    let dir = tempfile::tempdir().unwrap();
    let cfg = config(MATRIX);
    let mut shard_dirs = Vec::new();
    let mut union = BTreeSet::new();
    let mut names = Vec::new();
    for k in 1..=3 {
        let mut o = options(dir.path());
        o.shard = Some(Shard::new(k, 3).unwrap());
        o.job_id = Some(format!("shard-{k}"));
        let s = run(&cfg, &o).unwrap();
        assert_eq!(s.report.variants_total, 12);
        assert_eq!(s.report.variants_selected, 4);
        assert_eq!(s.report.shard.as_deref(), Some(format!("{k}/3").as_str()));
        let idx = indices(&s.report);
        assert!(idx.iter().all(|i| i % 3 == k - 1), "{idx:?}");
        // Same selection when run again (deterministic).
        let mut again = options(dir.path());
        again.shard = o.shard;
        again.job_id = Some(format!("shard-{k}-again"));
        assert_eq!(indices(&run(&cfg, &again).unwrap().report), idx);
        union.extend(idx);
        names.extend(s.report.tests.iter().map(|t| (t.index, t.name.clone())));
        shard_dirs.push(s.job_dir);
    }
    assert_eq!(union, (0..12).collect());

    // Merge: 12 tests in enumeration order, the same names as an unsharded run.
    let merged = merge(&shard_dirs, dir.path(), "merged", false).unwrap();
    assert_eq!(indices(&merged), (0..12).collect::<Vec<_>>());
    assert_eq!((merged.counts.pass, merged.counts.skip), (9, 3));
    let full = run(&cfg, &options(dir.path())).unwrap();
    let full_names: Vec<_> = full
        .report
        .tests
        .iter()
        .map(|t| (t.index, t.name.clone()))
        .collect();
    names.sort();
    assert_eq!(names, full_names);
    let merged_dir = dir.path().join("merged");
    assert!(merged_dir.join("junit.xml").is_file());
    for t in &merged.tests {
        assert!(
            merged_dir.join(&t.dir).join("params.json").is_file(),
            "{}",
            t.dir
        );
    }
    // Merging a shard twice is refused.
    let twice = [shard_dirs[0].clone(), shard_dirs[0].clone()];
    assert!(merge(&twice, dir.path(), "bad", false).is_err());
    assert!(
        !dir.path().join("bad").exists(),
        "nothing written for a refused merge"
    );
    // A missing shard is an error naming it, unless --partial, which records it.
    let two = &shard_dirs[..2];
    let e = merge(two, dir.path(), "two", false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("shards 3 of 3 are missing"), "{e}");
    let partial = merge(two, dir.path(), "two", true).unwrap();
    assert_eq!(partial.missing_shards, vec!["3/3".to_owned()]);
    assert_eq!(partial.tests.len(), 8);
    // Shards of another split, an unsharded run, or another selection are refused.
    let mut o = options(dir.path());
    o.shard = Some(Shard::new(1, 2).unwrap());
    o.job_id = Some("other-split".into());
    let other_split = run(&cfg, &o).unwrap().job_dir;
    let e = merge(
        &[shard_dirs[0].clone(), other_split],
        dir.path(),
        "x",
        false,
    )
    .unwrap_err();
    assert!(e.to_string().contains("not one split"), "{e}");
    let e = merge(
        &[shard_dirs[0].clone(), full.job_dir.clone()],
        dir.path(),
        "x",
        false,
    )
    .unwrap_err();
    assert!(e.to_string().contains("not a shard"), "{e}");
    let mut o = options(dir.path());
    o.shard = Some(Shard::new(2, 3).unwrap());
    o.job_id = Some("other-selection".into());
    let other = run(&config(&MATRIX.replace("    - w:", "    - v:")), &o).unwrap();
    assert_ne!(other.report.variants_digest, full.report.variants_digest);
    let e = merge(
        &[shard_dirs[0].clone(), other.job_dir],
        dir.path(),
        "x",
        false,
    )
    .unwrap_err();
    assert!(e.to_string().contains("other variants"), "{e}");
}

#[test]
fn sharded_runs_get_job_ids_that_name_their_shard() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = options(dir.path());
    o.shard = Some(Shard::new(2, 4).unwrap());
    o.shard_source = Some("Slurm job array (SLURM_ARRAY_TASK_ID=1 of 0-3:1, COUNT=4)".into());
    o.shard_tag = Some("slurm17".into());
    let s = run(&config(MATRIX), &o).unwrap();
    let id = s.report.job_id.clone();
    assert!(id.ends_with("-slurm17-shard-2-of-4"), "{id}");
    assert_eq!(s.report.shard_source, o.shard_source);
    assert_eq!(s.job_dir, dir.path().join(&id));
}

#[test]
fn parallel_jobs_isolate_directories_and_overlap() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = "type = sleep\nsleep_time = 0.4\nvariants:\n    - a:\n    - b:\n    - c:\n    - d:\n    - e:\n    - f:\n";
    let mut o = options(dir.path());
    o.jobs = 3;
    let start = Instant::now();
    let s = run(&config(cfg), &o).unwrap();
    let took = start.elapsed();
    assert_eq!(s.report.counts.pass, 6);
    assert!(
        took < Duration::from_millis(2000),
        "took {took:?}: not parallel"
    );
    let dirs: BTreeSet<_> = s.report.tests.iter().map(|t| t.dir.clone()).collect();
    assert_eq!(dirs.len(), 6);
    assert_eq!(s.report.jobs, 3);
}

#[test]
fn cancellation_keeps_finished_results_and_cancels_the_current_test() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = "type = sleep\nvariants:\n    - quick:\n        sleep_time = 0\n    - slow:\n        sleep_time = 30\n    - never:\n        sleep_time = 0\n";
    let o = options(dir.path());
    let cancel = o.cancel.clone();
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        cancel.cancel();
    });
    let start = Instant::now();
    let s = run(&config(cfg), &o).unwrap();
    canceller.join().unwrap();
    assert!(start.elapsed() < Duration::from_secs(10));
    assert_eq!(s.exit, ExitStatus::Interrupted);
    assert_eq!(s.exit.code(), 130);
    assert!(s.report.interrupted);
    let v: Vec<_> = s
        .report
        .tests
        .iter()
        .map(|t| (t.name.as_str(), t.verdict))
        .collect();
    assert_eq!(
        v,
        [("quick", VerdictKind::Pass), ("slow", VerdictKind::Cancel)]
    );
    assert!(read(&s.job_dir.join("junit.xml")).contains("cancelled"));
}

/// A fake environment that records the calls the runner makes.
#[derive(Default)]
struct FakeEnv {
    calls: Arc<Mutex<Vec<String>>>,
    running: Mutex<Vec<String>>,
}

impl VmEnv for FakeEnv {
    fn qemu_version(&self, _params: &Params) -> Option<[u64; 3]> {
        Some([7, 2, 0])
    }
    fn start_vm<'a>(
        &'a self,
        name: &'a str,
        params: &'a Params,
        _dir: &'a Path,
    ) -> BoxFuture<'a, Result<VmStart, EnvError>> {
        Box::pin(async move {
            self.calls.lock().unwrap().push(format!(
                "start {name} mem={}",
                params.object_params(name).get_or("mem", "?")
            ));
            self.running.lock().unwrap().push(name.to_string());
            Ok(VmStart::Booted(None))
        })
    }
    fn vm(&self, name: &str) -> Result<Arc<dyn GuestVm>, EnvError> {
        Err(EnvError::NoSuchVm { name: name.into() })
    }
    fn vm_names(&self) -> Vec<String> {
        self.running.lock().unwrap().clone()
    }
    fn destroy_vm<'a>(
        &'a self,
        name: &'a str,
        how: Teardown,
    ) -> BoxFuture<'a, Result<(), EnvError>> {
        Box::pin(async move {
            let kind: &str = match how {
                Teardown::Graceful => "graceful",
                Teardown::Kill => "kill",
            };
            self.calls
                .lock()
                .unwrap()
                .push(format!("destroy {name} {kind}"));
            self.running.lock().unwrap().retain(|n| n != name);
            Ok(())
        })
    }
    fn prepare_image<'a>(
        &'a self,
        _vm: &'a str,
        image: &'a ImageProcessing,
        _p: &'a Params,
    ) -> BoxFuture<'a, Result<(), EnvError>> {
        Box::pin(async move {
            self.calls
                .lock()
                .unwrap()
                .push(format!("create image {}", image.name));
            Ok(())
        })
    }
    fn remove_image<'a>(
        &'a self,
        _vm: &'a str,
        image: &'a str,
        _p: &'a Params,
    ) -> BoxFuture<'a, Result<(), EnvError>> {
        Box::pin(async move {
            self.calls
                .lock()
                .unwrap()
                .push(format!("remove image {image}"));
            Ok(())
        })
    }
}

struct FakeFactory(Arc<Mutex<Vec<String>>>);

impl EnvFactory for FakeFactory {
    fn create(&self, slot: &WorkerSlot) -> Result<Arc<dyn VmEnv>, EnvError> {
        assert!(slot.scratch_dir.is_dir());
        Ok(Arc::new(FakeEnv {
            calls: self.0.clone(),
            running: Mutex::default(),
        }))
    }
}

#[test]
fn pre_and_post_processing_go_through_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = "\
type = noop
vms = vm1
images = img1
mem = 256
mem_vm1 = 512
start_vm = yes
create_image = yes
remove_image = no
kill_vm_gracefully = yes
kill_vm_timeout = 5
kill_vm_on_error = yes
kill_vm_gracefully_on_error = no
variants:
    - keep:
    - fails:
        noop_verdict = fail
    - last:
        kill_vm = yes
        remove_image = yes
";
    let calls = Arc::new(Mutex::new(Vec::new()));
    let mut o = options(dir.path());
    o.env_factory = Arc::new(FakeFactory(calls.clone()));
    let s = run(&config(cfg), &o).unwrap();
    let v: Vec<_> = s.report.tests.iter().map(|t| t.verdict).collect();
    assert_eq!(v, [VerdictKind::Pass, VerdictKind::Fail, VerdictKind::Pass]);
    let calls = calls.lock().unwrap().clone();
    assert_eq!(
        calls,
        [
            "create image img1",
            "start vm1 mem=512",
            // `fails`: on_error view → kill_vm = yes, not gracefully.
            "create image img1",
            "start vm1 mem=512",
            "destroy vm1 kill",
            // `last`: kill_vm gracefully (the VM is not running: no `kill_vm_timeout` wait),
            // then the image.
            "create image img1",
            "start vm1 mem=512",
            "destroy vm1 graceful",
            "remove image img1",
        ]
    );
}

#[test]
fn a_variant_for_another_qemu_is_skipped_with_the_reason_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = "\
type = noop
vms = vm1
start_vm = yes
variants:
    - new_only:
        required_qemu = [8.0.0, )
    - old_too:
        required_qemu = [4.2, 7.2.0]
";
    let calls = Arc::new(Mutex::new(Vec::new()));
    let mut o = options(dir.path());
    o.env_factory = Arc::new(FakeFactory(calls.clone()));
    let s = run(&config(cfg), &o).unwrap();
    let v: Vec<_> = s.report.tests.iter().map(|t| t.verdict).collect();
    assert_eq!(v, [VerdictKind::Skip, VerdictKind::Pass]);
    let why = s.report.tests[0].message.clone().unwrap_or_default();
    assert!(
        why.contains("required_qemu = [8.0.0, )") && why.contains("QEMU 7.2.0"),
        "{why}"
    );
    // The skipped variant started nothing; the other one did (and the run's end destroys it).
    let starts: Vec<String> = calls
        .lock()
        .unwrap()
        .iter()
        .filter(|c| c.starts_with("start"))
        .cloned()
        .collect();
    assert_eq!(starts, ["start vm1 mem=?"]);
}

#[test]
fn gc_cleans_stale_runs_and_leaves_live_ones() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path();
    // A stale run: its runner pid has exited.
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let gone_pid = gone.id();
    gone.wait().unwrap();
    // Guarded: killed and reaped even if an assertion below fails.
    let mut orphan = ChildGuard::new(
        std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap(),
    );
    let orphan_start = tests_suite::gc::process_start_time(orphan.id());
    let scratch = results.join("scratch");
    std::fs::create_dir_all(scratch.join("w0")).unwrap();
    let sock = results.join("qmp.sock");
    std::fs::write(&sock, "").unwrap();
    let stale = ResourceRecorder::create(
        results,
        RunRecord {
            job_id: "stale".into(),
            pid: gone_pid,
            pid_start_time: Some(1),
            started: String::new(),
            job_dir: results.join("stale"),
            scratch_dir: scratch.clone(),
            resources: Vec::new(),
        },
    )
    .unwrap();
    stale
        .record(Resource::Process {
            pid: orphan.id(),
            start_time: orphan_start,
            group: false,
        })
        .unwrap();
    stale
        .record(Resource::Socket { path: sock.clone() })
        .unwrap();
    // A process whose start time does not match is not ours: never killed.
    let mut stranger = ChildGuard::new(
        std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap(),
    );
    stale
        .record(Resource::Process {
            pid: stranger.id(),
            start_time: Some(1),
            group: false,
        })
        .unwrap();
    // A live run: this process.
    ResourceRecorder::create(
        results,
        RunRecord {
            job_id: "live".into(),
            pid: std::process::id(),
            pid_start_time: tests_suite::gc::process_start_time(std::process::id()),
            started: String::new(),
            job_dir: results.join("live"),
            scratch_dir: results.join("live-scratch"),
            resources: Vec::new(),
        },
    )
    .unwrap();

    let dry = gc(results, GcMode::DryRun).unwrap();
    assert_eq!(dry.stale_runs, ["stale"]);
    assert!(sock.exists() && scratch.exists());

    let r = gc(results, GcMode::Collect).unwrap();
    assert_eq!(r.stale_runs, ["stale"]);
    assert_eq!(r.live_runs, ["live"]);
    assert_eq!(r.killed, [orphan.id()]);
    let status = orphan.child().wait().unwrap();
    assert!(!status.success(), "the orphan was killed");
    assert!(!sock.exists() && !scratch.exists());
    assert!(!results.join(".runs/stale.json").exists());
    assert!(results.join(".runs/live.json").exists());
    assert!(
        stranger.child().try_wait().unwrap().is_none(),
        "a stranger was killed"
    );
}

/// A catalogue test reads its params through their declarations before it touches a VM: every
/// bad value is in the error at once, with the key, the value and its `file:line`.
#[test]
fn a_test_reports_every_bad_param_before_touching_a_vm() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = "type = reboot\nvms = vm1\nreboot_method = bogus\nreboot_count = twice\n";
    let summary = run(&config(cfg), &options(dir.path())).unwrap();
    let t = &summary.report.tests[0];
    assert_eq!(t.verdict, VerdictKind::Error, "{t:?}");
    let msg = t.message.as_deref().unwrap();
    assert!(
        msg.contains("2 problem(s) in the params of test reboot"),
        "{msg}"
    );
    assert!(
        msg.contains("reboot_method = \"bogus\": expected one of shell, system_reset"),
        "{msg}"
    );
    assert!(msg.contains("reboot_count = \"twice\""), "{msg}");
    assert!(msg.contains(":3:"), "the cfg line of reboot_method: {msg}");
}

/// Calls of the `count` test type of [`iterations_repeat_the_body_and_stop_at_the_first_failure`].
static COUNTED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

const COUNT: tests_suite::TestSpec = tests_suite::TestSpec {
    name: "count",
    about: "counts its calls; fails on the call `count_fail_at` names",
    params: &[tests_suite::KeyDoc::optional(
        "count_fail_at",
        "the failing call",
    )],
};

fn run_count(ctx: &tests_suite::TestContext) -> BoxFuture<'_, tests_suite::TestResult> {
    Box::pin(async move {
        let n = COUNTED.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        match ctx.params.get("count_fail_at") {
            Some(at) if at.parse::<u64>().ok() == Some(n) => {
                Err(tests_suite::TestError::Fail(format!("call {n}")))
            }
            _ => Ok(()),
        }
    })
}

#[test]
fn iterations_repeat_the_body_and_stop_at_the_first_failure() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = "\
type = count
iterations = 3
variants:
    - all:
    - second_fails:
        count_fail_at = 5
    - bad:
        iterations = 0
";
    let mut o = options(dir.path());
    o.registry.register(COUNT, run_count).unwrap();
    let s = run(&config(cfg), &o).unwrap();
    let v: Vec<_> = s.report.tests.iter().map(|t| t.verdict).collect();
    assert_eq!(
        v,
        [VerdictKind::Pass, VerdictKind::Fail, VerdictKind::Error]
    );
    // Three calls, then two: the fifth call (the second iteration) failed and ended the test.
    assert_eq!(COUNTED.load(std::sync::atomic::Ordering::SeqCst), 5);
    let why = s.report.tests[1].message.clone().unwrap_or_default();
    assert_eq!(why, "iteration 2 of 3: call 5");
    let bad = s.report.tests[2].message.clone().unwrap_or_default();
    assert!(
        bad.contains("iterations") && bad.contains("at least 1"),
        "{bad}"
    );
}

static FLIPS: Mutex<Vec<String>> = Mutex::new(Vec::new());

const FLIP: tests_suite::TestSpec = tests_suite::TestSpec {
    name: "flip",
    about: "fails until its call number reaches `flip_pass_at` (per variant)",
    params: &[tests_suite::KeyDoc::optional(
        "flip_pass_at",
        "the first passing call; absent: never passes",
    )],
};

/// Fails (leaving `mark.txt` with its call number in its directory) until call
/// `flip_pass_at` of its variant.
fn run_flip(ctx: &tests_suite::TestContext) -> BoxFuture<'_, tests_suite::TestResult> {
    Box::pin(async move {
        let n = {
            let mut calls = FLIPS.lock().unwrap();
            calls.push(ctx.name.clone());
            calls.iter().filter(|c| **c == ctx.name).count()
        };
        std::fs::write(ctx.dir.join("mark.txt"), n.to_string()).unwrap();
        match ctx.params.get("flip_pass_at") {
            Some(at) if at.parse::<usize>().ok() == Some(n) => Ok(()),
            _ => Err(tests_suite::TestError::Fail(format!("call {n}"))),
        }
    })
}

#[test]
fn retries_run_a_failed_test_again_and_report_a_late_pass_as_flaky() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = "\
variants:
    - late:
        type = flip
        flip_pass_at = 2
    - never:
        type = flip
    - skipped:
        type = noop
        noop_verdict = skip
    - fine:
        type = noop
";
    let mut o = options(dir.path());
    o.retries = 2;
    o.registry.register(FLIP, run_flip).unwrap();
    let s = run(&config(cfg), &o).unwrap();
    let t = &s.report.tests;
    let v: Vec<_> = t.iter().map(|t| t.verdict).collect();
    assert_eq!(
        v,
        [
            VerdictKind::Pass,
            VerdictKind::Fail,
            VerdictKind::Skip,
            VerdictKind::Pass
        ]
    );
    // late: one failed attempt, then a pass — flaky, counted as passed.
    assert!(t[0].flaky());
    assert_eq!(t[0].retried.len(), 1);
    assert_eq!(t[0].retried[0].message.as_deref(), Some("call 1"));
    assert_eq!(t[0].retried[0].dir, format!("{}/attempt-1", t[0].dir));
    // never: three attempts (two retries), all failed; the last one is the verdict.
    assert_eq!(t[1].message.as_deref(), Some("call 3"));
    let earlier: Vec<_> = t[1].retried.iter().map(|a| a.message.clone()).collect();
    assert_eq!(earlier, [Some("call 1".into()), Some("call 2".into())]);
    assert!(!t[1].flaky());
    // Skips and passes are never retried.
    assert!(t[2].retried.is_empty() && t[3].retried.is_empty());
    let c = s.report.counts;
    assert_eq!((c.pass, c.flaky, c.fail, c.skip), (2, 1, 1, 1));
    assert_eq!(
        c.to_string(),
        "pass 2 (1 flaky) fail 1 error 0 skip 1 cancel 0"
    );
    assert_eq!(s.exit, ExitStatus::TestsFailed);

    // Each attempt's files are kept apart: the test directory holds the last attempt, and
    // attempt-N/ the earlier ones, each with its own log, params and files.
    let never = s.job_dir.join(&t[1].dir);
    for (sub, mark) in [("", "3"), ("attempt-1/", "1"), ("attempt-2/", "2")] {
        assert_eq!(read(&never.join(format!("{sub}mark.txt"))), mark, "{sub}");
        assert!(never.join(format!("{sub}params.json")).is_file(), "{sub}");
        assert!(never.join(format!("{sub}test.log")).is_file(), "{sub}");
    }
    let log = read(&never.join("test.log"));
    assert!(
        log.contains("attempt 3 of 3 (--retries 2): attempt 2 ended FAIL: call 2"),
        "{log}"
    );
    // No stray directories beside the tests'.
    let names: BTreeSet<String> = std::fs::read_dir(s.job_dir.join("tests"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 4, "{names:?}");

    // results.json round-trips; junit has the flaky run; events name each retry.
    assert_eq!(RunReport::read(&s.job_dir).unwrap(), s.report);
    let junit = read(&s.job_dir.join("junit.xml"));
    assert!(
        junit
            .lines()
            .any(|l| l.contains("<flakyFailure") && l.contains("message=\"call 1\"")),
        "{junit}"
    );
    let retried = read(&s.job_dir.join("events.jsonl"))
        .lines()
        .filter(|l| l.contains("\"test_retried\""))
        .count();
    assert_eq!(retried, 3);
}
