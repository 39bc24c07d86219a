//! `cargo xtask compare-avocado`: how far kvmtest's QEMU command lines are from avocado-vt's.
//!
//! Default mode: for every reference record of `fixtures/avocado/qemu-X.Y/` (avocado-vt's own
//! command line for a variant, or its refusal; see `fixtures/avocado/README.md`), builds
//! kvmtest's command line from the same params with `fixtures/qemu-caps/qemu-X.Y.json` and
//! compares the two with `qemu_cmd::argv_diff` (the same comparison as
//! `crates/qemu-cmd/tests/avocado.rs`). Differences matching the table of
//! `crates/qemu-cmd/README.md` (`## Deliberate differences from avocado-vt`) are explained.
//! Prints one summary line per variant, the unexplained differences grouped across variants
//! (most frequent first), and ends with one line:
//!
//! ```text
//! compare-avocado: N variants (QEMU 7.2: a, 10.0: b): X identical, Y only explained
//! differences, Z with unexplained differences (U unexplained differences in all); refused by
//! both: R, refused only by kvmtest: K, only by avocado-vt: V
//! ```
//!
//! (one line in the output). `--strict`: exit non-zero when anything is unexplained.
//! `--verbose`: every variant's full report.
//!
//! `--regenerate [--qemu PATH] [--python PATH] [--out DIR] [--filter F]…`: remakes the records
//! with `xtask/avocado/reference.py --sample` (needs avocado-vt in that Python:
//! `pip install avocado-framework-plugin-vt`). Defaults: `qemu-system-x86_64` on PATH, `python3`,
//! `fixtures/avocado/qemu-X.Y` after the QEMU's version.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use qemu_cmd::argv_diff::{compare_reference, Explanations, Outcome};
use qemu_cmd::Capabilities;

/// The QEMU versions with reference records (directory `fixtures/avocado/qemu-X.Y`, capabilities
/// `fixtures/qemu-caps/qemu-X.Y.json`).
const VERSIONS: &[&str] = &["7.2", "10.0"];

pub fn main(args: &[String]) -> Result<()> {
    let mut strict = false;
    let mut verbose = false;
    let mut regenerate = false;
    let mut qemu = None;
    let mut python = None;
    let mut out = None;
    let mut filters = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .with_context(|| format!("{name} needs a value"))
        };
        match a.as_str() {
            "--strict" => strict = true,
            "--verbose" | "-v" => verbose = true,
            "--regenerate" => regenerate = true,
            "--qemu" => qemu = Some(value("--qemu")?),
            "--python" => python = Some(value("--python")?),
            "--out" => out = Some(value("--out")?),
            "--filter" => filters.push(value("--filter")?),
            _ => bail!(
                "usage: cargo xtask compare-avocado [--strict] [--verbose] | --regenerate \
                 [--qemu PATH] [--python PATH] [--out DIR] [--filter F]…"
            ),
        }
    }
    if regenerate {
        return regenerate_records(qemu, python, out, &filters);
    }
    let (unexplained, line) = compare(verbose)?;
    println!("{line}");
    if strict && unexplained > 0 {
        bail!("{unexplained} unexplained differences from avocado-vt (--strict)");
    }
    Ok(())
}

fn regenerate_records(
    qemu: Option<String>,
    python: Option<String>,
    out: Option<String>,
    filters: &[String],
) -> Result<()> {
    let qemu = qemu.unwrap_or_else(|| "qemu-system-x86_64".into());
    let python = python.unwrap_or_else(|| "python3".into());
    let out = match out {
        Some(o) => PathBuf::from(o),
        None => {
            let v = Command::new(&qemu)
                .arg("-version")
                .output()
                .with_context(|| format!("running {qemu} -version"))?;
            let text = String::from_utf8_lossy(&v.stdout);
            let version = text
                .split_whitespace()
                .skip_while(|w| *w != "version")
                .nth(1)
                .context("no version in `qemu -version`")?;
            let xy: Vec<&str> = version.split('.').take(2).collect();
            crate::root()
                .join("fixtures/avocado")
                .join(format!("qemu-{}", xy.join(".")))
        }
    };
    let mut cmd = Command::new(&python);
    cmd.arg(crate::root().join("xtask/avocado/reference.py"))
        .args(["--sample", "--qemu", &qemu, "--out"])
        .arg(&out);
    for f in filters {
        cmd.args(["--filter", f]);
    }
    crate::run(cmd)
        .context("reference.py (is avocado-vt installed? pip install avocado-framework-plugin-vt)")
}

/// One compared record.
struct Compared {
    version: &'static str,
    label: String,
    outcome: Outcome,
}

/// Compares every record; returns the number of unexplained differences and the summary line.
fn compare(verbose: bool) -> Result<(usize, String)> {
    let root = crate::root();
    let readme = root.join("crates/qemu-cmd/README.md");
    let explanations = Explanations::from_markdown(
        &std::fs::read_to_string(&readme).with_context(|| readme.display().to_string())?,
    );
    let mut all = Vec::new();
    for &version in VERSIONS {
        let caps_file = root.join(format!("fixtures/qemu-caps/qemu-{version}.json"));
        let caps = Capabilities::load(&caps_file)
            .map_err(|e| anyhow::anyhow!("{}: {e}", caps_file.display()))?;
        for file in records(&root.join(format!("fixtures/avocado/qemu-{version}")))? {
            let text = std::fs::read_to_string(&file)?;
            let record: serde_json::Value =
                serde_json::from_str(&text).with_context(|| file.display().to_string())?;
            let label = file
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            all.push(Compared {
                version,
                label,
                outcome: compare_reference(&record, &caps, &explanations),
            });
        }
    }

    // per variant
    let mut groups: BTreeMap<String, (usize, String)> = BTreeMap::new();
    let (mut identical, mut only_explained, mut with_unexplained, mut unexplained) = (0, 0, 0, 0);
    let (mut both, mut only_kvmtest, mut only_avocado) = (0, 0, 0);
    for c in &all {
        let name = format!("{}@qemu-{}", c.label, c.version);
        let summary = match &c.outcome {
            Outcome::Compared(d) => {
                let u = d.iter().filter(|(_, w)| w.is_none()).count();
                if d.is_empty() {
                    identical += 1;
                } else if u == 0 {
                    only_explained += 1;
                } else {
                    with_unexplained += 1;
                    unexplained += u;
                }
                for (diff, why) in d {
                    if why.is_none() {
                        let g = groups.entry(diff.kind()).or_insert((0, diff.key()));
                        g.0 += 1;
                    }
                }
                format!("{} unexplained, {} explained", u, d.len() - u)
            }
            Outcome::BothRefused { .. } => {
                both += 1;
                "refused by both".into()
            }
            Outcome::KvmtestRefused(e) => {
                only_kvmtest += 1;
                let key = format!("refused only by kvmtest: {}", first_line(e));
                groups.entry(key.clone()).or_insert((0, key)).0 += 1;
                format!("refused only by kvmtest: {}", first_line(e))
            }
            Outcome::AvocadoRefused(e) => {
                only_avocado += 1;
                let key = format!("refused only by avocado-vt: {}", first_line(e));
                groups.entry(key.clone()).or_insert((0, key)).0 += 1;
                format!("refused only by avocado-vt: {}", first_line(e))
            }
        };
        println!("{name:<40} {summary}");
        if verbose {
            for line in c.outcome.report().lines() {
                println!("    {line}");
            }
        }
    }

    // unexplained differences across variants, most frequent first
    let mut groups: Vec<(String, (usize, String))> = groups.into_iter().collect();
    groups.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then_with(|| a.0.cmp(&b.0)));
    if !groups.is_empty() {
        println!("\nunexplained differences across variants (how many variants: one example):");
    }
    for (_, (n, example)) in &groups {
        println!("{n:>4}  {example}");
    }

    let count = |v: &str| all.iter().filter(|c| c.version == v).count();
    let line = format!(
        "compare-avocado: {} variants (QEMU 7.2: {}, 10.0: {}): {identical} identical, \
         {only_explained} only explained differences, {with_unexplained} with unexplained \
         differences ({unexplained} unexplained differences in all); refused by both: {both}, \
         refused only by kvmtest: {only_kvmtest}, only by avocado-vt: {only_avocado}",
        all.len(),
        count("7.2"),
        count("10.0"),
    );
    Ok((
        unexplained + only_kvmtest + only_avocado,
        format!("\n{line}"),
    ))
}

/// An error on one line: kvmtest's problem lists are one problem a line after a header.
fn first_line(s: &str) -> String {
    let lines: Vec<&str> = s.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    match lines.as_slice() {
        [one] => (*one).to_string(),
        [head, rest @ ..] if head.ends_with(':') => rest.join("; "),
        _ => lines.join(" "),
    }
}

/// The `.json` files of `dir`, sorted.
fn records(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    v.sort();
    Ok(v)
}
