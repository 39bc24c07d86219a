//! `cargo xtask fuzz [SECONDS] [-- LIBFUZZER_ARGS…]`: run the `parse` fuzz target of `fuzz/`.
//!
//! Installs `cargo-fuzz` from crates.io if it is missing, seeds `fuzz/corpus/parse` (git-ignored)
//! with the conformance cases and a few multi-file inputs, runs libFuzzer on one core for
//! SECONDS (default 60) with the config-language dictionary `fuzz/parse.dict`, and reports how
//! long it ran, how many inputs it executed and what it found. Every new crash, timeout or
//! out-of-memory input is copied to `fixtures/params/fuzz-found/NAME.cfg` (data for the engine
//! owner to turn into a regression test) and the command fails.
//!
//! One job at a time, in fork mode (`-fork=1`): libFuzzer fuzzes in a child process and, with
//! `-ignore_crashes=1` (timeouts and OOMs are ignored by default there), records a finding and
//! goes on, so one long run reports every distinct finding instead of stopping at the first.
//! (`-jobs=1` would also be one job, but stops at the first finding and logs to `fuzz-0.log`.)
//! No sanitizer: `params` has no `unsafe` (the workspace denies it), so AddressSanitizer
//! would only halve the executions; panics, overflows (debug assertions are on), hangs
//! (`-timeout`) and memory blow-ups (`-rss_limit_mb`) are what this target can find.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use super::{conformance_dir, root, target_dir};

/// The fuzz target run by this command.
const TARGET: &str = "parse";

/// Inputs split at NUL into `main.cfg`, `a.cfg`, `b.cfg` by the target: seeds for include
/// handling (relative includes, nesting, a missing file, including itself).
const INCLUDE_SEEDS: &[(&str, &str)] = &[
    (
        "include-nested",
        "mem = 512\ninclude a.cfg\nvariants:\n    - x:\n        include b.cfg\n    - y:\n\0\
         variants:\n    - qcow2:\n        fmt = qcow2\n    - raw:\n\0only qcow2\nmem += 1\n",
    ),
    ("include-self", "include main.cfg\n\0a = 1\n\0b = 2\n"),
    ("include-missing", "a = 1\ninclude c.cfg\n\0\0"),
];

/// `cargo xtask fuzz [SECONDS] [-- LIBFUZZER_ARGS…]`.
pub fn main(args: &[String]) -> Result<()> {
    let (ours, extra) = match args.iter().position(|a| a == "--") {
        Some(i) => (&args[..i], &args[i + 1..]),
        None => (args, &[][..]),
    };
    let seconds: u64 = match ours {
        [] => 60,
        [s] => s
            .parse()
            .with_context(|| format!("SECONDS must be a whole number, not {s:?}"))?,
        _ => bail!("usage: cargo xtask fuzz [SECONDS] [-- LIBFUZZER_ARGS…]"),
    };
    ensure_cargo_fuzz()?;
    let fuzz_dir = root().join("fuzz");
    let corpus = fuzz_dir.join("corpus").join(TARGET);
    let seeded = seed_corpus(&corpus)?;
    eprintln!(
        "fuzz: corpus {} ({seeded} seed file(s) added)",
        corpus.display()
    );
    let artifacts = fuzz_dir.join("artifacts").join(TARGET);
    let before = list_files(&artifacts)?;

    let mut cmd = rustup_cargo();
    cmd.args(["+nightly", "fuzz", "run", "--sanitizer", "none", TARGET])
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .args([
            "-fork=1",
            "-ignore_crashes=1",
            "-max_len=4096",
            "-timeout=10",
            "-rss_limit_mb=2048",
            "-dict=parse.dict",
            "-print_final_stats=1",
        ])
        .args(extra)
        .current_dir(&fuzz_dir)
        .stdin(Stdio::null())
        .stderr(Stdio::piped());
    eprintln!("$ {cmd:?}");
    let log_path = target_dir().join(format!("fuzz-{TARGET}.log"));
    std::fs::create_dir_all(target_dir())?;
    let mut log = std::fs::File::create(&log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    let start = Instant::now();
    let mut child = cmd.spawn().context("spawning cargo fuzz")?;
    let mut stats = Stats::default();
    if let Some(stderr) = child.stderr.take() {
        let mut r = BufReader::new(stderr);
        let mut buf = Vec::new();
        while r.read_until(b'\n', &mut buf)? > 0 {
            let line = String::from_utf8_lossy(&buf);
            eprint!("{line}");
            log.write_all(&buf)?;
            stats.read(&line);
            buf.clear();
        }
    }
    let status = child.wait().context("waiting for cargo fuzz")?;
    let elapsed = start.elapsed();

    let found: Vec<PathBuf> = list_files(&artifacts)?
        .difference(&before)
        .map(|n| artifacts.join(n))
        .collect();
    let mut saved = Vec::new();
    if !found.is_empty() {
        let dest = root().join("fixtures/params/fuzz-found");
        std::fs::create_dir_all(&dest)?;
        for a in &found {
            let name = a
                .file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default();
            let to = dest.join(format!("{name}.cfg"));
            std::fs::copy(a, &to)
                .with_context(|| format!("copying {} to {}", a.display(), to.display()))?;
            saved.push(to);
        }
    }
    let findings = if saved.is_empty() {
        "none".to_string()
    } else {
        saved
            .iter()
            .map(|p| p.strip_prefix(root()).unwrap_or(p).display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let runs = stats.runs.map_or("?".into(), |r| r.to_string());
    let rate = match (stats.runs, stats.seconds) {
        (Some(r), Some(s)) if s > 0 => format!("{}/s", r / s),
        _ => "?/s".into(),
    };
    println!(
        "fuzz {TARGET}: {:.0} s wall (libFuzzer: {} s), {runs} execs ({rate}), corpus {}, \
         coverage {}{}, oom/timeout/crash {}, findings: {findings}; log {}",
        elapsed.as_secs_f64(),
        stats.seconds.map_or("?".into(), |s| s.to_string()),
        stats.corpus.as_deref().unwrap_or("?"),
        stats.cov.as_deref().unwrap_or("?"),
        // Fork mode does not report the children's RSS.
        stats
            .peak_rss_mb
            .map_or(String::new(), |mb| format!(", peak RSS {mb} MB")),
        stats.findings.as_deref().unwrap_or("?"),
        log_path.display()
    );
    if !saved.is_empty() {
        bail!(
            "fuzz {TARGET}: {} finding(s) saved: {findings}",
            saved.len()
        );
    }
    if !status.success() {
        bail!("cargo fuzz failed ({status}); see {}", log_path.display());
    }
    Ok(())
}

/// Figures read from libFuzzer's output.
#[derive(Default)]
struct Stats {
    runs: Option<u64>,
    seconds: Option<u64>,
    corpus: Option<String>,
    cov: Option<String>,
    /// Fork mode's running "oom/timeout/crash" counts.
    findings: Option<String>,
    peak_rss_mb: Option<u64>,
}

impl Stats {
    fn read(&mut self, line: &str) {
        let words: Vec<&str> = line.split_whitespace().collect();
        // Progress lines: "#123 REDUCE cov: 1234 ft: 5678 corp: 321/45Kb … rss: 80Mb" in-process,
        // "#123: cov: 1234 ft: 5678 corp: 321 exec/s 99 oom/timeout/crash: 0/1/0 time: 33s
        // job: 7 dft_time: 0" in fork mode. The number after '#' is the executions so far.
        if let Some(n) = words.first().and_then(|w| w.strip_prefix('#')) {
            if let Ok(n) = n.trim_end_matches(':').parse() {
                self.runs = Some(n);
            }
        }
        let mut it = words.iter();
        while let Some(w) = it.next() {
            let next = it.clone().next().map(|s| (*s).to_string());
            match *w {
                "cov:" => self.cov = next,
                "corp:" => self.corpus = next,
                "time:" => {
                    if let Some(s) = next.and_then(|t| t.trim_end_matches('s').parse().ok()) {
                        self.seconds = Some(s);
                    }
                }
                "oom/timeout/crash:" => self.findings = next,
                "rss:" => {
                    let mb = next.and_then(|t| t.trim_end_matches("Mb").parse::<u64>().ok());
                    self.peak_rss_mb = self.peak_rss_mb.max(mb);
                }
                _ => {}
            }
        }
        // In-process mode's closing lines: "Done 123456 runs in 1201 second(s)" and
        // "stat::number_of_executed_units: 123456".
        if let ["Done", runs, "runs", "in", secs, ..] = words.as_slice() {
            self.runs = runs.parse().ok().or(self.runs);
            self.seconds = secs.parse().ok().or(self.seconds);
        }
        if let ["stat::number_of_executed_units:", n] = words.as_slice() {
            self.runs = n.parse().ok().or(self.runs);
        }
    }
}

/// The rustup proxy `cargo` (which understands `+nightly`), without the variables of the
/// pinned toolchain running xtask.
fn rustup_cargo() -> Command {
    let mut c = Command::new("cargo");
    c.env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO")
        .env_remove("RUSTC")
        .env_remove("RUSTDOC");
    c
}

/// Install cargo-fuzz from crates.io unless `cargo fuzz` already works.
fn ensure_cargo_fuzz() -> Result<()> {
    let present = rustup_cargo()
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if present {
        return Ok(());
    }
    eprintln!("fuzz: installing cargo-fuzz (cargo install cargo-fuzz)");
    let mut c = rustup_cargo();
    c.args(["install", "--locked", "cargo-fuzz"]);
    crate::run(c)
}

/// Copy the conformance configs and the include seeds into `corpus` (only files not already
/// there). Returns how many were added.
fn seed_corpus(corpus: &Path) -> Result<usize> {
    std::fs::create_dir_all(corpus).with_context(|| format!("creating {}", corpus.display()))?;
    let cases = conformance_dir().join("cases");
    let mut added = 0;
    let entries =
        std::fs::read_dir(&cases).with_context(|| format!("reading {}", cases.display()))?;
    for e in entries {
        let path = e?.path();
        let (Some(name), true) = (
            path.file_name(),
            path.extension().is_some_and(|x| x == "cfg"),
        ) else {
            continue;
        };
        let to = corpus.join(name);
        if !to.exists() {
            std::fs::copy(&path, &to)
                .with_context(|| format!("copying {} to {}", path.display(), to.display()))?;
            added += 1;
        }
    }
    for (name, text) in INCLUDE_SEEDS {
        let to = corpus.join(format!("seed-{name}"));
        if !to.exists() {
            std::fs::write(&to, text).with_context(|| format!("writing {}", to.display()))?;
            added += 1;
        }
    }
    Ok(added)
}

/// File names in `dir` (empty if it does not exist yet).
fn list_files(dir: &Path) -> Result<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    match std::fs::read_dir(dir) {
        Ok(rd) => {
            for e in rd {
                out.insert(e?.file_name().to_string_lossy().into_owned());
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    }
    Ok(out)
}
