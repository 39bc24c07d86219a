//! `cargo xtask bench suite [--runs N] [--jobs LIST]`: throughput of the bundled suite
//! (`fixtures/suite/tests.cfg`, without `fail_demo`) on the test guest with `--jobs 1` and
//! `--jobs 2` (or LIST, comma separated).
//!
//! `cargo xtask bench suite --restore [--runs N] [--only FILTER]`: guests restored from a saved
//! state vs booted. FILTER's variants (default [`RESTORE_ONLY`], the disk guest's 13 guest-agent
//! tests) each get a fresh VM (`kill_vm = yes`, as many tp-qemu cfgs have), once with
//! `restore_from_snapshot = no` (every test boots its guest) and once with `yes` (the first
//! boots and is saved, the others are restored); the two alternate per round. It ends with one
//! line: the best wall time of each and their ratio.
//!
//! Each run goes to a fresh results directory in a temporary directory; a run whose tests do
//! not all pass is an error (a fast failing suite proves nothing). Reported per job count: the
//! wall time of each run, tests per minute of the best run, the speedup over the first job
//! count, and the QEMU processes started (`qemu-argv.json` files: VMs and migration
//! destinations).
//! Runs of different job counts alternate, so load changes on the machine hit them alike.
//!
//! What to expect: with one worker the suite reuses one VM for most tests (two QEMU starts);
//! with N workers each worker boots its own VMs, so a guest boot (6–15 s under TCG) is paid
//! more often, and on a 2-core machine two TCG guests compete for the CPUs.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::run_suite;

/// The variants `--restore` runs by default.
pub const RESTORE_ONLY: &str = "disk_guest.qemu_guest_agent";

/// `--restore` and its `--only`, taken out of `args` (the rest is [`parse`]'s).
fn restore_mode(args: &[String]) -> (Option<String>, Vec<String>) {
    let mut rest = Vec::new();
    let mut restore = false;
    let mut only = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--restore" => restore = true,
            "--only" => only = it.next().cloned(),
            _ => rest.push(a.clone()),
        }
    }
    let only = (restore || only.is_some()).then(|| only.unwrap_or_else(|| RESTORE_ONLY.into()));
    (only, rest)
}

fn parse(args: &[String]) -> Result<(usize, Vec<usize>)> {
    let mut runs = 1;
    let mut jobs = vec![1, 2];
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--runs" => {
                runs = it
                    .next()
                    .context("--runs needs a number")?
                    .parse()
                    .context("--runs needs a number")?;
            }
            "--jobs" => {
                let list = it.next().context("--jobs needs a list such as 1,2")?;
                jobs = list
                    .split(',')
                    .map(|j| j.trim().parse::<usize>())
                    .collect::<Result<_, _>>()
                    .context("--jobs needs a list such as 1,2")?;
            }
            other => bail!(
                "unknown argument `{other}` (expected --runs N, --jobs LIST, --restore, --only F)"
            ),
        }
    }
    if runs == 0 || jobs.is_empty() || jobs.contains(&0) {
        bail!("--runs and every --jobs value must be at least 1");
    }
    Ok((runs, jobs))
}

/// The files named `name` under `dir`.
fn files_named(dir: &Path, name: &str) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|f| f == name) {
                found.push(p);
            }
        }
    }
    found
}

/// Counts files named `name` under `dir`.
fn count_files(dir: &Path, name: &str) -> usize {
    files_named(dir, name).len()
}

struct Run {
    wall: Duration,
    tests: u64,
    qemu_starts: usize,
    /// Tests whose VM was restored from a saved state (their `test.log` says so).
    restores: usize,
}

/// Lines containing `needle` in the files named `name` under `dir`.
fn count_lines(dir: &Path, name: &str, needle: &str) -> usize {
    files_named(dir, name)
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).unwrap_or_default();
            text.lines().filter(|l| l.contains(needle)).count()
        })
        .sum()
}

fn one_run(
    p: &run_suite::Prepared,
    jobs: usize,
    results: &Path,
    id: &str,
    extra: &[String],
) -> Result<Run> {
    let mut args: Vec<String> = [
        "--results-dir",
        &results.to_string_lossy(),
        "--job-id",
        id,
        "--progress",
        "quiet",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    args.extend(extra.iter().cloned());
    let argv = run_suite::suite_argv(p, Some(jobs), &args);
    let (program, rest) = argv.split_first().context("empty argv")?;
    let started = Instant::now();
    let status = Command::new(program)
        .args(rest)
        .current_dir(&p.root)
        .status()
        .with_context(|| format!("running {}", program.to_string_lossy()))?;
    let wall = started.elapsed();
    let job = results.join(id);
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(job.join("results.json"))
            .with_context(|| format!("reading {}/results.json", job.display()))?,
    )?;
    let counts = &report["counts"];
    let tests = counts["pass"].as_u64().unwrap_or(0);
    if !status.success() {
        bail!(
            "the suite with --jobs {jobs} did not pass ({status}): {counts}; see {}",
            job.display()
        );
    }
    // A reused VM's test also gets a copy of the argv files, next to a REUSED.txt.
    let starts = count_files(&job, "qemu-argv.json") - count_files(&job, "REUSED.txt");
    Ok(Run {
        wall,
        tests,
        qemu_starts: starts,
        restores: count_lines(&job, "test.log", "restored from a saved state"),
    })
}

/// `cargo xtask bench suite --restore`: see the module docs.
fn restore_bench(runs: usize, only: &str) -> Result<()> {
    let p = run_suite::prepare()?;
    let tmp = tempfile::Builder::new()
        .prefix("kvmtest-bench-suite.")
        .tempdir()?;
    let modes = [("cold", "no"), ("restored", "yes")];
    let mut best = [f64::INFINITY; 2];
    let mut last: [Option<Run>; 2] = [None, None];
    for round in 0..runs {
        for (i, (mode, value)) in modes.iter().enumerate() {
            eprintln!("bench suite: run {}/{runs}, {mode}", round + 1);
            let extra: Vec<String> = [
                "--only",
                only,
                "--assign",
                "kill_vm=yes",
                "--assign",
                &format!("restore_from_snapshot={value}"),
            ]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
            let r = one_run(&p, 1, tmp.path(), &format!("{mode}-r{round}"), &extra)?;
            eprintln!(
                "  {:.1} s, {} tests, {} QEMU starts, {} restored",
                r.wall.as_secs_f64(),
                r.tests,
                r.qemu_starts,
                r.restores
            );
            best[i] = best[i].min(r.wall.as_secs_f64());
            last[i] = Some(r);
        }
    }
    let (Some(cold), Some(restored)) = (&last[0], &last[1]) else {
        bail!("no runs");
    };
    if restored.restores == 0 {
        bail!("with restore_from_snapshot = yes no VM was restored: nothing was measured");
    }
    println!(
        "suite --only {only}, every test on a fresh VM (kill_vm = yes), {} tests: cold {:.1} s \
         ({} guest boots), restored {:.1} s ({} boot(s), {} restores): {:.2}x faster",
        cold.tests,
        best[0],
        cold.qemu_starts,
        best[1],
        restored.qemu_starts - restored.restores,
        restored.restores,
        best[0] / best[1]
    );
    Ok(())
}

/// `cargo xtask bench suite`.
pub fn main(args: &[String]) -> Result<()> {
    let (only, args) = restore_mode(args);
    let (runs, jobs) = parse(&args)?;
    if let Some(only) = only {
        return restore_bench(runs, &only);
    }
    let p = run_suite::prepare()?;
    let tmp = tempfile::Builder::new()
        .prefix("kvmtest-bench-suite.")
        .tempdir()?;
    let mut results: Vec<Vec<Run>> = jobs.iter().map(|_| Vec::new()).collect();
    for round in 0..runs {
        for (i, &j) in jobs.iter().enumerate() {
            eprintln!("bench suite: run {}/{runs}, --jobs {j}", round + 1);
            let r = one_run(&p, j, tmp.path(), &format!("j{j}-r{round}"), &[])?;
            eprintln!(
                "  {:.1} s, {} tests, {} QEMU starts",
                r.wall.as_secs_f64(),
                r.tests,
                r.qemu_starts
            );
            if let Some(v) = results.get_mut(i) {
                v.push(r);
            }
        }
    }
    println!(
        "{:>5}  {:>28}  {:>6}  {:>12}  {:>8}  {:>11}",
        "jobs", "wall s (each run)", "tests", "tests/min", "speedup", "QEMU starts"
    );
    let best = |v: &[Run]| {
        v.iter()
            .map(|r| r.wall.as_secs_f64())
            .fold(f64::INFINITY, f64::min)
    };
    let base = results.first().map(|v| best(v)).unwrap_or(f64::NAN);
    for (j, v) in jobs.iter().zip(&results) {
        let b = best(v);
        let tests = v.first().map_or(0, |r| r.tests);
        let walls = v
            .iter()
            .map(|r| format!("{:.1}", r.wall.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(" ");
        let starts = v
            .iter()
            .map(|r| r.qemu_starts.to_string())
            .collect::<Vec<_>>()
            .join(" ");
        println!(
            "{j:>5}  {walls:>28}  {tests:>6}  {:>12.1}  {:>7.2}x  {starts:>11}",
            tests as f64 * 60.0 / b,
            base / b
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options() {
        let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        assert_eq!(parse(&[]).ok(), Some((1, vec![1, 2])));
        assert_eq!(
            parse(&s(&["--runs", "3", "--jobs", "1,2,4"])).ok(),
            Some((3, vec![1, 2, 4]))
        );
        assert!(parse(&s(&["--jobs", "0"])).is_err());
        assert_eq!(
            restore_mode(&s(&["--restore", "--runs", "2"])),
            (Some(RESTORE_ONLY.to_owned()), s(&["--runs", "2"]))
        );
        assert_eq!(
            restore_mode(&s(&["--only", "disk_guest.migrate"])).0,
            Some("disk_guest.migrate".to_owned())
        );
        assert_eq!(restore_mode(&s(&["--runs", "2"])).0, None);
    }
}
