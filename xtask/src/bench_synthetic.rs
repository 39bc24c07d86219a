//! `cargo xtask bench params-synthetic [--runs N] [--large-runs N] [--ref-runs N]`: kvmtest
//! on generated matrices of 10^5 and 10^6 variants.
//!
//! The generated config (see [`synthetic_config`]) has a base block of 200 keys (some built
//! with `${…}` substitution) and BLOCKS `variants:` blocks of 10 entries, each entry with a few
//! assignments of every kind, a substitution and two conditions naming another block's entry:
//! 5 blocks give 10^5 variants, 6 give 10^6. Both are written to a temporary directory and
//! counted with `kvmtest show --count` (every dict fully built), best of `--runs` (default 3)
//! for 10^5 and of `--large-runs` (default 1: about half a minute a run) for 10^6.
//!
//! Reported: variants per second, and each run's own peak RSS. The engine enumerates lazily,
//! so memory must not grow with the number of variants: the 10^6 run's peak RSS must stay
//! within 1.5× the 10^5 run's, or the bench fails. `--ref-runs N` also times the reference
//! parser on the 10^5 config (about a minute of CPU a run) for a speed-up ratio.

use std::fmt::Write as _;

use anyhow::{bail, ensure, Context, Result};

use super::{
    build_kvmtest, measure, numeric_options, ratio, reference_dump, reference_python, repeat, Mib,
    Out, Runs, Secs,
};

/// Entries per `variants` block.
const ENTRIES: usize = 10;
/// Keys of the base block.
const BASE_KEYS: usize = 200;
/// Blocks of the smaller and the larger config: 10^5 and 10^6 variants.
const SMALL_BLOCKS: usize = 5;
const LARGE_BLOCKS: usize = 6;
/// Largest allowed growth of peak RSS from the smaller config to the 10× larger one.
const RSS_GROWTH_LIMIT: f64 = 1.5;

/// `cargo xtask bench params-synthetic`.
pub fn main(args: &[String]) -> Result<()> {
    let [runs, large_runs, ref_runs] =
        numeric_options(args, &["runs", "large-runs", "ref-runs"])?[..]
    else {
        bail!("internal: option count");
    };
    let runs = runs.unwrap_or(3);
    let large_runs = large_runs.unwrap_or(1);
    let ref_runs = ref_runs.unwrap_or(0);

    let exe = build_kvmtest()?;
    let dir = tempfile::Builder::new()
        .prefix("kvmtest-bench-synthetic-")
        .tempdir()
        .context("creating a temporary directory")?;

    let mut results: Vec<(u64, Runs)> = Vec::new();
    let mut small_cfg = None;
    for blocks in [SMALL_BLOCKS, LARGE_BLOCKS] {
        let expected = u64::try_from(ENTRIES.pow(u32::try_from(blocks)?))?;
        let path = dir.path().join(format!("synthetic-{blocks}x{ENTRIES}.cfg"));
        std::fs::write(&path, synthetic_config(blocks))
            .with_context(|| format!("writing {}", path.display()))?;
        let path_s = path.to_string_lossy().into_owned();
        eprintln!(
            "bench params-synthetic: {expected} variants ({})",
            path.display()
        );
        let n = if blocks == SMALL_BLOCKS {
            runs
        } else {
            large_runs
        };
        let r = repeat(&format!("kvmtest {expected}"), n, || {
            let s = measure(&exe, &["show", &path_s, "--count"], Out::Capture)?;
            let n: u64 = s
                .stdout
                .trim()
                .parse()
                .with_context(|| format!("reading a count from {:?}", s.stdout))?;
            ensure!(n == expected, "counted {n} variants, expected {expected}");
            Ok(s)
        })?;
        if blocks == SMALL_BLOCKS {
            small_cfg = Some(path_s);
        }
        results.push((expected, r));
    }

    let reference = match (ref_runs, &small_cfg) {
        (0, _) | (_, None) => None,
        (n, Some(cfg)) => {
            let python = reference_python()?;
            let dump = reference_dump()?;
            let dump = dump.to_string_lossy().into_owned();
            let expected = results.first().map_or(0, |(n, _)| *n);
            let r = repeat("reference", n, || {
                let s = measure(&python, &[dump.as_str(), cfg, "--count"], Out::Capture)?;
                ensure!(
                    s.stdout.trim() == expected.to_string(),
                    "reference counted {:?}, expected {expected}",
                    s.stdout.trim()
                );
                Ok(s)
            })?;
            Some(r)
        }
    };

    println!(
        "bench params-synthetic: {BASE_KEYS} base keys, blocks of {ENTRIES} entries; kvmtest \
         best of {runs} (10^{SMALL_BLOCKS}) and {large_runs} (10^{LARGE_BLOCKS})"
    );
    println!(
        "{:<10} {:<10} {:>11} {:>10} {:>14} {:>10}",
        "variants", "program", "best wall", "best cpu", "variants/s", "peak RSS"
    );
    let row = |n: u64, who: &str, r: &Runs| {
        println!(
            "{:<10} {:<10} {:>11} {:>10} {:>14.0} {:>10}",
            n,
            who,
            Secs(r.best_wall()).to_string(),
            Secs(r.best_cpu()).to_string(),
            n as f64 / r.best_wall().as_secs_f64(),
            Mib(r.max_rss_kib()).to_string(),
        );
    };
    for (n, r) in &results {
        row(*n, "kvmtest", r);
    }
    let [(small_n, small), (large_n, large)] = &results[..] else {
        bail!("internal: two sizes expected");
    };
    let mut ref_note = String::new();
    if let Some(r) = &reference {
        row(*small_n, "reference", r);
        let x = ratio(r.best_wall(), small.best_wall());
        let cpu_x = ratio(r.best_cpu(), small.best_cpu());
        println!("{small_n:<10} speed-up   {x:.1}x wall, {cpu_x:.1}x cpu");
        let _ = write!(ref_note, ", {x:.1}x the reference at {small_n}");
    }
    let growth = large.max_rss_kib() as f64 / small.max_rss_kib().max(1) as f64;
    let rate = |n: u64, r: &Runs| n as f64 / r.best_wall().as_secs_f64();
    println!(
        "bench params-synthetic: {small_n} in {} ({:.0} variants/s, {}), {large_n} in {} \
         ({:.0} variants/s, {}), rss growth {growth:.2}x (limit {RSS_GROWTH_LIMIT}x){ref_note}",
        Secs(small.best_wall()),
        rate(*small_n, small),
        Mib(small.max_rss_kib()),
        Secs(large.best_wall()),
        rate(*large_n, large),
        Mib(large.max_rss_kib()),
    );
    ensure!(
        growth <= RSS_GROWTH_LIMIT,
        "peak RSS grew {growth:.2}x from {small_n} to {large_n} variants (limit \
         {RSS_GROWTH_LIMIT}x): enumeration is no longer lazy"
    );
    Ok(())
}

/// A config with `blocks` `variants:` blocks of [`ENTRIES`] entries (10^blocks variants) under a
/// base block of [`BASE_KEYS`] keys. It exercises what real configs do per variant: plain,
/// appending, prepending and optional assignments, `${…}` substitution, and conditions on
/// another block's entries (positive and negated).
pub(crate) fn synthetic_config(blocks: usize) -> String {
    let mut s = String::new();
    // Writing to a String cannot fail; the results are ignored below for that reason.
    let _ = writeln!(
        s,
        "# Generated by `cargo xtask bench params-synthetic`: {blocks} blocks x {ENTRIES} \
         entries.\n"
    );
    for k in 0..BASE_KEYS {
        if k % 10 == 9 {
            let _ = writeln!(s, "base_key_{k:03} = ${{base_key_{:03}}}/sub{k}", k - 9);
        } else {
            let _ = writeln!(s, "base_key_{k:03} = value {k} of the base block");
        }
    }
    s.push_str("image_name = images/guest\nextra_params =\n");
    for b in 0..blocks {
        let other = (b + 1) % blocks;
        let _ = writeln!(s, "\nvariants:");
        for e in 0..ENTRIES {
            let _ = writeln!(s, "    - b{b}_e{e}:");
            let _ = writeln!(s, "        b{b}_value = {e}");
            let _ = writeln!(s, "        b{b}_name = block {b} entry {e}");
            let _ = writeln!(s, "        image_name += _b{b}e{e}");
            let _ = writeln!(s, "        extra_params <= -b{b}e{e},");
            let _ = writeln!(s, "        b{b}_opt ?= maybe {e}");
            let _ = writeln!(
                s,
                "        b{b}_path = ${{image_name}}.${{base_key_{e:03}}}"
            );
            let _ = writeln!(s, "        b{other}_e{e}:");
            let _ = writeln!(s, "            b{b}_paired = yes");
            let _ = writeln!(s, "        !b{other}_e{}:", (e + 1) % ENTRIES);
            let _ = writeln!(s, "            b{b}_unpaired += x");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_config_has_the_announced_shape() {
        let text = synthetic_config(3);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.iter().filter(|l| **l == "variants:").count(), 3);
        let entries = lines.iter().filter(|l| l.starts_with("    - b")).count();
        assert_eq!(entries, 3 * ENTRIES);
        let base = lines.iter().filter(|l| l.starts_with("base_key_")).count();
        assert_eq!(base, BASE_KEYS);
        assert!(text.contains("${base_key_000}"), "base substitution");
        assert!(
            text.contains("        b1_e0:\n"),
            "condition on the next block"
        );
        assert!(
            text.contains("        !b0_e1:\n"),
            "negated condition wraps around"
        );
    }
}
