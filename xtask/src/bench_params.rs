//! `cargo xtask bench params [--runs N] [--ref-runs N]`: kvmtest against the reference parser
//! on the huge avocado-vt config tree.
//!
//! In one run: build `kvmtest` in release mode, find (or install) the reference parser, check
//! that `kvmtest show --json` is byte-identical to the reference dump (by the md5 of its 240 MB,
//! the only form in which the reference output is kept), then time both programs on
//! `huge/tests.cfg` with five `only` statements (40,665 variants) in two modes:
//!
//! * count: `kvmtest show --count` vs `xtask/reference/dump.py --count` (the reference builds
//!   every dict and prints none; kvmtest builds them only where one can fail to build —
//!   `Config::build_can_fail` — and otherwise counts by walking the tree, which decides alone
//!   which variants exist, as for this tree);
//! * json: `kvmtest show --json` vs `xtask/reference/dump.py`, standard output to `/dev/null`.
//!
//! kvmtest is run N times (default 5) and the reference N' times (default 1: it needs ~7 s a
//! run); the best wall time of each gives the speed-up. Peak RSS is each process's own
//! (`wait4`), the largest over kvmtest's runs against the smallest of the reference's. The
//! targets (issue 17: ≥200× count, ≥100× json; RSS below the reference's) are printed beside
//! the results, not enforced: on a shared 2-core machine timings drift; the md5 and the counts
//! are enforced.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, ensure, Context, Result};

use super::{
    build_kvmtest, conformance_dir, measure, numeric_options, ratio, reference_dump,
    reference_python, repeat, Mib, Out, Runs, Sample, Secs,
};

/// The statements parsed after `tests.cfg`, as avocado-vt's CLI arguments.
const STATEMENTS: [&str; 5] = [
    "only pc-0.14",
    "only smp2",
    "only virtio_net",
    "only qcow2",
    "only virtio_scsi",
];
/// Variants they select (reference).
const VARIANTS: u64 = 40_665;
/// md5 of the reference's JSON dump for that selection (`fixtures/conformance/README.md`).
const JSON_MD5: &str = "0d045f2fbef534ac9788da4aad62b488";
/// Speed-up targets (reference wall time / kvmtest wall time), from issue 17.
const COUNT_TARGET: f64 = 200.0;
const JSON_TARGET: f64 = 100.0;

/// The two modes measured.
#[derive(Clone, Copy)]
enum Mode {
    Count,
    Json,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Count => "count",
            Mode::Json => "json",
        }
    }
}

/// `cargo xtask bench params`.
pub fn main(args: &[String]) -> Result<()> {
    let [runs, ref_runs] = numeric_options(args, &["runs", "ref-runs"])?[..] else {
        bail!("internal: option count");
    };
    let runs = runs.unwrap_or(5);
    let ref_runs = ref_runs.unwrap_or(1);

    let exe = build_kvmtest()?;
    let python = reference_python()?;
    let cfg = conformance_dir().join("huge/tests.cfg");
    ensure!(cfg.is_file(), "{} not found", cfg.display());
    let dump = reference_dump()?;
    let cfg = cfg.to_string_lossy().into_owned();
    let dump = dump.to_string_lossy().into_owned();
    let kvmtest_args = |mode: Mode| {
        let mut a = vec!["show".to_string(), cfg.clone()];
        a.extend(STATEMENTS.iter().map(|s| s.to_string()));
        a.push(
            match mode {
                Mode::Count => "--count",
                Mode::Json => "--json",
            }
            .to_string(),
        );
        a
    };
    let reference_args = |mode: Mode| {
        let mut a = vec![dump.clone(), cfg.clone()];
        a.extend(STATEMENTS.iter().map(|s| s.to_string()));
        if let Mode::Count = mode {
            a.push("--count".to_string());
        }
        a
    };

    eprintln!("bench params: checking kvmtest's JSON against the reference md5");
    let md5 = md5_of_stdout(&exe, &kvmtest_args(Mode::Json))?;
    if md5 != JSON_MD5 {
        bail!(
            "kvmtest show --json on huge/tests.cfg has md5 {md5}, the reference's is {JSON_MD5}: \
             the output differs from avocado-vt (run cargo test -p kvmtest-params --test conformance)"
        );
    }

    let mut results = Vec::new();
    for mode in [Mode::Count, Mode::Json] {
        let out = || match mode {
            Mode::Count => Out::Capture,
            Mode::Json => Out::Null,
        };
        let checked = |s: Sample| -> Result<Sample> {
            if let Mode::Count = mode {
                let n: u64 = s
                    .stdout
                    .trim()
                    .parse()
                    .with_context(|| format!("reading a count from {:?}", s.stdout))?;
                ensure!(n == VARIANTS, "counted {n} variants, expected {VARIANTS}");
            }
            Ok(s)
        };
        eprintln!("bench params: {} mode", mode.name());
        let ours = repeat(&format!("kvmtest {}", mode.name()), runs, || {
            checked(measure(&exe, &kvmtest_args(mode), out())?)
        })?;
        let theirs = repeat(&format!("reference {}", mode.name()), ref_runs, || {
            checked(measure(&python, &reference_args(mode), out())?)
        })?;
        results.push((mode, ours, theirs));
    }

    println!(
        "bench params: huge/tests.cfg + {} statements = {VARIANTS} variants; kvmtest best of \
         {runs}, reference best of {ref_runs}; json md5 {JSON_MD5} verified",
        STATEMENTS.len()
    );
    println!(
        "{:<6} {:<10} {:>11} {:>11} {:>10} {:>10}",
        "mode", "program", "best wall", "median", "best cpu", "peak RSS"
    );
    let row = |mode: Mode, who: &str, r: &Runs| {
        println!(
            "{:<6} {:<10} {:>11} {:>11} {:>10} {:>10}",
            mode.name(),
            who,
            Secs(r.best_wall()).to_string(),
            Secs(r.median_wall()).to_string(),
            Secs(r.best_cpu()).to_string(),
            Mib(r.max_rss_kib()).to_string(),
        );
    };
    let mut speedups = Vec::new();
    let mut rss_ours = 0;
    let mut rss_theirs = u64::MAX;
    for (mode, ours, theirs) in &results {
        row(*mode, "kvmtest", ours);
        row(*mode, "reference", theirs);
        let x = ratio(theirs.best_wall(), ours.best_wall());
        let target = match mode {
            Mode::Count => COUNT_TARGET,
            Mode::Json => JSON_TARGET,
        };
        // CPU time is less sensitive than wall time to other work on the machine.
        let cpu_x = ratio(theirs.best_cpu(), ours.best_cpu());
        println!(
            "{:<6} speed-up   {x:.1}x wall, {cpu_x:.1}x cpu (target >= {target:.0}x wall: {})",
            mode.name(),
            verdict(x >= target)
        );
        speedups.push((x, target));
        rss_ours = rss_ours.max(ours.max_rss_kib());
        rss_theirs = rss_theirs.min(theirs.0.iter().map(|s| s.maxrss_kib).min().unwrap_or(0));
    }
    println!(
        "rss    kvmtest {} (largest run) vs reference {} (smallest run): target below the \
         reference's: {}",
        Mib(rss_ours),
        Mib(rss_theirs),
        verdict(rss_ours < rss_theirs)
    );
    let [(count_x, count_t), (json_x, json_t)] = speedups[..] else {
        bail!("internal: mode count");
    };
    println!(
        "bench params: count {count_x:.1}x (target {count_t:.0}x), json {json_x:.1}x (target \
         {json_t:.0}x), rss kvmtest {} vs reference {}",
        Mib(rss_ours),
        Mib(rss_theirs)
    );
    Ok(())
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "MISSED"
    }
}

/// Run `exe args…` with its standard output piped into `md5sum`; return the hex digest.
fn md5_of_stdout(exe: &Path, args: &[String]) -> Result<String> {
    let mut producer = Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawning {}", exe.display()))?;
    let pipe = producer
        .stdout
        .take()
        .context("no stdout pipe from kvmtest")?;
    let hashed = Command::new("md5sum")
        .stdin(Stdio::from(pipe))
        .stderr(Stdio::inherit())
        .output()
        .context("running md5sum")?;
    let status = producer.wait()?;
    ensure!(
        status.success(),
        "{} {args:?} failed: {status}",
        exe.display()
    );
    ensure!(hashed.status.success(), "md5sum failed: {}", hashed.status);
    let text = String::from_utf8_lossy(&hashed.stdout);
    text.split_whitespace()
        .next()
        .map(str::to_string)
        .context("md5sum printed nothing")
}
