//! `kvmtest merge`: several job directories (the shards of one run, from CI machines, a Slurm
//! array or a Kubernetes Indexed Job) into one report.
//!
//! What is merged must be one run split up, and all of it, or the merged report would tell
//! something that is not so. So, before anything is written:
//! - every input enumerates the same variants (the same `variants_digest`: the same config,
//!   statements and filters), and the same number of them;
//! - shards are of one `N`, none twice, and none missing unless `partial` (a shard whose
//!   machine died can still be looked at, and the report lists what is missing);
//! - no variant is in two inputs.
//!
//! Tests are copied (their directories, with their logs) and ordered by variant index; counts
//! are summed; the merged `results.json` records the inputs' job ids and any missing shards.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use crate::results::{copy_dir, io_err, update_latest, ResultsError, RunReport, TestRecord};
use crate::verdict::Counts;

/// Merge the job directories `inputs` into a new job `job_id` under `results_dir`; with
/// `partial`, shards may be missing (they are listed in the report's `missing_shards`).
pub fn merge(
    inputs: &[PathBuf],
    results_dir: &Path,
    job_id: &str,
    partial: bool,
) -> Result<RunReport, ResultsError> {
    let reports: Vec<(PathBuf, RunReport)> = inputs
        .iter()
        .map(|dir| RunReport::read(dir).map(|r| (dir.clone(), r)))
        .collect::<Result<_, _>>()?;
    let missing = check(&reports)?;
    if !missing.is_empty() && !partial {
        return Err(ResultsError::MissingShards {
            count: shard_count(&reports).unwrap_or(0),
            missing,
        });
    }
    let out = results_dir.join(job_id);
    fs::create_dir_all(out.join("tests")).map_err(io_err("creating", &out))?;
    let mut tests: BTreeMap<usize, TestRecord> = BTreeMap::new();
    let mut merged = RunReport {
        kvmtest_version: env!("CARGO_PKG_VERSION").into(),
        job_id: job_id.into(),
        started: String::new(),
        finished: String::new(),
        interrupted: false,
        shard: None,
        shard_source: None,
        variants_digest: reports.first().and_then(|(_, r)| r.variants_digest.clone()),
        jobs: 0,
        variants_total: 0,
        variants_selected: 0,
        counts: Counts::default(),
        tests: Vec::new(),
        merged_from: Vec::new(),
        missing_shards: missing
            .iter()
            .map(|k| format!("{k}/{}", shard_count(&reports).unwrap_or(0)))
            .collect(),
        qemu: Vec::new(),
        hosts: Vec::new(),
    };
    for (input, r) in reports {
        if merged.started.is_empty() || r.started < merged.started {
            merged.started = r.started.clone();
        }
        if r.finished > merged.finished {
            merged.finished = r.finished.clone();
        }
        merged.interrupted |= r.interrupted;
        merged.jobs += r.jobs;
        merged.variants_total = merged.variants_total.max(r.variants_total);
        merged.variants_selected += r.variants_selected;
        merged.merged_from.push(r.job_id.clone());
        for h in &r.hosts {
            if !merged.hosts.contains(h) {
                merged.hosts.push(h.clone());
            }
        }
        for mut t in r.tests {
            // Lanes of the timeline: one per worker of each input.
            if let Some(w) = t.worker.as_mut().filter(|w| !w.contains('/')) {
                *w = format!("{}/{w}", r.job_id);
            }
            if tests.contains_key(&t.index) {
                return Err(ResultsError::Overlap {
                    index: t.index,
                    name: t.name,
                });
            }
            let src = input.join(&t.dir);
            if src.is_dir() {
                copy_dir(&src, &out.join(&t.dir))?;
            }
            tests.insert(t.index, t);
        }
    }
    merged.tests = tests.into_values().collect();
    merged.collect_qemu();
    for t in &merged.tests {
        merged.counts.add(t.verdict);
        if t.flaky() {
            merged.counts.flaky += 1;
        }
    }
    merged.write(&out)?;
    crate::report::write_index(&out, &merged)?;
    update_latest(results_dir, job_id)?;
    Ok(merged)
}

/// `N` of the inputs' shards, when the first is a shard.
fn shard_count(reports: &[(PathBuf, RunReport)]) -> Option<usize> {
    reports
        .first()
        .and_then(|(_, r)| r.shard.as_deref())
        .and_then(parse_shard)
        .map(|(_, n)| n)
}

fn parse_shard(s: &str) -> Option<(usize, usize)> {
    let (k, n) = s.split_once('/')?;
    Some((k.trim().parse().ok()?, n.trim().parse().ok()?))
}

/// Checks that `reports` are pieces of one run; returns the missing shards' `K`s (none when
/// the inputs are not shards).
fn check(reports: &[(PathBuf, RunReport)]) -> Result<Vec<usize>, ResultsError> {
    let Some((first_dir, first)) = reports.first() else {
        return Ok(Vec::new());
    };
    let mismatch = |dir: &Path, why: String| ResultsError::Mismatch {
        dir: dir.to_path_buf(),
        first: first_dir.clone(),
        why,
    };
    let first_shard = first.shard.as_deref().map(|s| (s, parse_shard(s)));
    let mut seen = BTreeSet::new();
    for (dir, r) in reports {
        if let (Some(a), Some(b)) = (&first.variants_digest, &r.variants_digest) {
            if a != b {
                return Err(mismatch(
                    dir,
                    "it enumerates other variants (another config, statements or filters: \
                     its variants_digest differs)"
                        .into(),
                ));
            }
        }
        if r.variants_total != first.variants_total {
            return Err(mismatch(
                dir,
                format!(
                    "its config has {} variants, the first's {}",
                    r.variants_total, first.variants_total
                ),
            ));
        }
        let shard = r.shard.as_deref().map(|s| (s, parse_shard(s)));
        match (first_shard, shard) {
            (None, None) => {}
            (Some((a, Some((_, n0)))), Some((b, Some((k, n))))) => {
                if n != n0 {
                    return Err(mismatch(
                        dir,
                        format!("it is shard {b}, the first is shard {a}: not one split"),
                    ));
                }
                if !seen.insert(k) {
                    return Err(mismatch(dir, format!("shard {b} is given twice")));
                }
            }
            (a, b) => {
                let show = |s: Option<(&str, Option<(usize, usize)>)>| {
                    s.map_or_else(|| "not a shard".to_owned(), |(s, _)| format!("shard {s}"))
                };
                return Err(mismatch(
                    dir,
                    format!("it is {}, the first is {}", show(b), show(a)),
                ));
            }
        }
    }
    Ok(match first_shard {
        Some((_, Some((_, n)))) => (1..=n).filter(|k| !seen.contains(k)).collect(),
        _ => Vec::new(),
    })
}
