//! `cargo xtask bench suite [--runs N] [--jobs LIST]`: throughput of the bundled suite
//! (`fixtures/suite/tests.cfg`, without `fail_demo`) on the test guest with `--jobs 1` and
//! `--jobs 2` (or LIST, comma separated).
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
            other => bail!("unknown argument `{other}` (expected --runs N, --jobs LIST)"),
        }
    }
    if runs == 0 || jobs.is_empty() || jobs.contains(&0) {
        bail!("--runs and every --jobs value must be at least 1");
    }
    Ok((runs, jobs))
}

/// Counts files named `name` under `dir`.
fn count_files(dir: &Path, name: &str) -> usize {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|f| f == name) {
                n += 1;
            }
        }
    }
    n
}

struct Run {
    wall: Duration,
    tests: u64,
    qemu_starts: usize,
}

fn one_run(p: &run_suite::Prepared, jobs: usize, results: &Path, id: &str) -> Result<Run> {
    let args: Vec<String> = [
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
    })
}

/// `cargo xtask bench suite`.
pub fn main(args: &[String]) -> Result<()> {
    let (runs, jobs) = parse(args)?;
    let p = run_suite::prepare()?;
    let tmp = tempfile::Builder::new()
        .prefix("kvmtest-bench-suite.")
        .tempdir()?;
    let mut results: Vec<Vec<Run>> = jobs.iter().map(|_| Vec::new()).collect();
    for round in 0..runs {
        for (i, &j) in jobs.iter().enumerate() {
            eprintln!("bench suite: run {}/{runs}, --jobs {j}", round + 1);
            let r = one_run(&p, j, tmp.path(), &format!("j{j}-r{round}"))?;
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
    }
}
