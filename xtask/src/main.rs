//! `cargo xtask`: the one automation entry point (ci, tidy, bench, fixtures).
//!
//! Subcommands:
//! - `ci`: rustfmt check, clippy (warnings denied), the whole test suite, tidy checks.
//! - `tidy`: repository rules (every Rust file starts with `//!`; no ignored tests; no debug macros).
//! - `bench NAME`: benchmarks (`cargo xtask bench` lists them), see `bench.rs`.
//! - `fuzz [SECONDS]`: run the `parse` fuzz target of `fuzz/` (cargo-fuzz, nightly).
//! - `run-suite [ARGS…]`: build the guest if needed and run the bundled suite
//!   (`fixtures/suite/tests.cfg`) with `kvmtest run` on real guests.
//! - `fixtures guest [--out DIR] [--check]`: build (and boot-check) the test guest, see
//!   `fixtures/guest/README.md`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

mod bench;
mod guest;
mod run_suite;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn run(mut cmd: Command) -> Result<()> {
    eprintln!("$ {cmd:?}");
    let status = cmd
        .current_dir(root())
        .status()
        .with_context(|| format!("spawning {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

fn tidy() -> Result<()> {
    let mut problems = Vec::new();
    let mut stack = vec![root().join("crates"), root().join("xtask")];
    while let Some(dir) = stack.pop() {
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?
        {
            let path = entry?.path();
            if path.is_dir() {
                if path
                    .file_name()
                    .is_some_and(|n| n == "target" || n == "snapshots")
                {
                    continue;
                }
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path)?;
                let rel = path
                    .strip_prefix(root())
                    .unwrap_or(&path)
                    .display()
                    .to_string();
                if !text.starts_with("//!") && !text.starts_with("#![") {
                    problems.push(format!("{rel}: does not start with a `//!` module doc"));
                }
                let ignore = ["#[", "ignore]"].concat();
                let dbg = ["dbg", "!("].concat();
                for (i, line) in text.lines().enumerate() {
                    if line.contains(&ignore) {
                        problems.push(format!(
                            "{rel}:{}: ignored test (tests run or are deleted)",
                            i + 1
                        ));
                    }
                    if line.contains(&dbg) {
                        problems.push(format!("{rel}:{}: leftover debug macro", i + 1));
                    }
                }
            }
        }
    }
    if problems.is_empty() {
        eprintln!("tidy: ok");
        Ok(())
    } else {
        for p in &problems {
            eprintln!("tidy: {p}");
        }
        bail!("tidy: {} problem(s)", problems.len())
    }
}

fn ci() -> Result<()> {
    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--", "--check"]);
    run(fmt)?;
    let mut clippy = cargo();
    clippy.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]);
    run(clippy)?;
    let mut test = cargo();
    test.args(["test", "--workspace"]);
    run(test)?;
    tidy()
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("tidy") => tidy(),
        Some("bench") => bench::main(&args[1..]),
        Some("fuzz") => bench::fuzz(&args[1..]),
        Some("fixtures") => guest::main(&args[1..]),
        Some("run-suite") => run_suite::main(&args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask <ci|tidy|run-suite [ARGS]|bench NAME|fuzz [SECONDS]|fixtures guest [--check]>"
            );
            eprint!("{}", bench::usage());
            bail!("unknown or missing subcommand")
        }
    }
}
