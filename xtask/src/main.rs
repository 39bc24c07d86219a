//! `cargo xtask`: the one automation entry point (ci, tidy, bench, fixtures).
//!
//! Subcommands:
//! - `ci`: rustfmt check, clippy (warnings denied), tidy checks, the slow fixtures (the test guest,
//!   QEMU 10.0 unpacked), the whole test suite on the system QEMU, then the QEMU-facing crates'
//!   tests again with `KVMTEST_QEMU` pointing at the unpacked QEMU, then `qemu-accepts` on both.
//! - `deps`: install the system packages the tests need (apt; see `deps.rs`), from any state.
//! - `check-install [a|b|c|all] [--keep]`: prove `deps` from each starting state in throw-away
//!   mmdebstrap roots (`check_install.rs`).
//! - `tidy`: repository rules (every Rust file starts with `//!`; no ignored tests; no debug macros).
//! - `bench NAME`: benchmarks (`cargo xtask bench` lists them), see `bench.rs`.
//! - `fuzz [SECONDS]`: run the `parse` fuzz target of `fuzz/` (cargo-fuzz, nightly).
//! - `run-suite [ARGS…]`: build the guest if needed and run the bundled suite
//!   (`fixtures/suite/tests.cfg`) with `kvmtest run` on real guests.
//! - `failures RESULTS_DIR…`: each test of a run that did not pass, with the ends of its logs
//!   (`failures.rs`; `.ci/run` prints it when a suite fails).
//! - `fixtures disk-guest [--out DIR] [--check]`: build (and boot-check) the disk guest (Debian
//!   bookworm on a qcow2 disk; `fixtures/guest/README.md`).
//! - `fixtures guest [--out DIR] [--check]`: build (and boot-check) the test guest, see
//!   `fixtures/guest/README.md`.
//! - `compare-avocado [--strict] [--verbose]`: kvmtest's command lines vs avocado-vt's own for
//!   the records of `fixtures/avocado/` (`compare_avocado.rs`); `--regenerate [--qemu PATH]
//!   [--python PATH] [--out DIR] [--filter F]…` remakes the records (needs avocado-vt:
//!   `pip install avocado-framework-plugin-vt`).
//! - `qemu-accepts [--qemu PATH] [--only GLOB]… [--set KEY=VALUE]… [--keep]`: the real QEMU (default the system's)
//!   starts paused and quits over QMP with the command line kvmtest renders for each record of
//!   `fixtures/avocado/qemu-X.Y/` (`qemu_accepts.rs`); fails when QEMU rejects one.
//! - `fixtures qemu X.Y`: unpack QEMU X.Y beside the build (`qemu_fixture.rs`); prints the
//!   launcher to put in `KVMTEST_QEMU`.
#![allow(clippy::disallowed_methods)] // xtask is the automation: running programs is its job

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

mod apt;
mod bench;
mod check_install;
mod compare_avocado;
mod deps;
mod failures;
mod guest;
mod host;
mod qemu_accepts;
mod qemu_fixture;
mod run_suite;
mod slurm;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// Runs `cmd` from the workspace root ([`host::run`]: echoed, failing with its status).
fn run(mut cmd: Command) -> Result<()> {
    host::run(cmd.current_dir(root()))
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

/// The crates whose tests start or probe QEMU: run once per QEMU of the matrix.
const QEMU_FACING: &[&str] = &[
    "kvmtest-monitor",
    "kvmtest-qemu-cmd",
    "kvmtest-vm",
    "kvmtest-tests-suite",
];

/// The first line of `BINARY -version`, for the logs.
fn qemu_version_line(binary: &Path) -> Result<String> {
    Ok(host::stdout_of(Command::new(binary).arg("-version"))?
        .lines()
        .next()
        .unwrap_or_default()
        .to_string())
}

/// `cargo xtask ci`: formatting, lints, fixtures, the whole test suite on the system QEMU, the
/// QEMU-facing crates' tests again on the other QEMU major version, tidy, `qemu-accepts` on
/// both QEMUs.
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
    tidy()?;
    // Slow fixtures first, never inside a test's timeout.
    guest::main(&["guest".to_owned()]).context("building the test guest")?;
    guest::main(&["disk-guest".to_owned()]).context("building the disk guest")?;
    let other = qemu_fixture::fetch(qemu_fixture::OTHER_QEMU).with_context(|| {
        format!(
            "unpacking QEMU {} for the version matrix",
            qemu_fixture::OTHER_QEMU
        )
    })?;
    let system = PathBuf::from(qemu_cmd::probe::DEFAULT_QEMU);
    eprintln!(
        "== tests on the system QEMU: {} ({})",
        system.display(),
        qemu_version_line(&system)?
    );
    let started = std::time::Instant::now();
    let mut test = cargo();
    test.args(["test", "--workspace"])
        .env_remove(qemu_cmd::probe::QEMU_ENV);
    run(test)?;
    eprintln!(
        "== tests on the system QEMU took {:.0} s",
        started.elapsed().as_secs_f64()
    );
    let started = std::time::Instant::now();
    eprintln!(
        "== QEMU-facing tests on {} ({})",
        other.display(),
        qemu_version_line(&other)?
    );
    let mut test = cargo();
    test.arg("test");
    for p in QEMU_FACING {
        test.args(["-p", p]);
    }
    test.env(qemu_cmd::probe::QEMU_ENV, &other);
    run(test)?;
    eprintln!(
        "== QEMU-facing tests on {} took {:.0} s",
        other.display(),
        started.elapsed().as_secs_f64()
    );
    let started = std::time::Instant::now();
    // The real QEMUs accept the command lines of avocado-vt's hardware variants (all 62 records
    // each: about 15 s a QEMU).
    let accepts_system = qemu_accepts::check_all(&system)?;
    let accepts_other = qemu_accepts::check_all(&other)?;
    eprintln!("{accepts_system}\n{accepts_other}");
    eprintln!(
        "== the command lines on both QEMUs took {:.0} s",
        started.elapsed().as_secs_f64()
    );
    eprintln!(
        "ci: ok: system QEMU ({}) and {} ({})",
        qemu_version_line(&system)?,
        other.display(),
        qemu_version_line(&other)?
    );
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("deps") => deps::main(&args[1..]),
        Some("check-install") => check_install::main(&args[1..]),
        Some("tidy") => tidy(),
        Some("bench") => bench::main(&args[1..]),
        Some("fuzz") => bench::fuzz(&args[1..]),
        Some("fixtures") => match args.get(1).map(String::as_str) {
            Some("qemu") => qemu_fixture::main(&args[2..]),
            _ => guest::main(&args[1..]),
        },
        Some("run-suite") => run_suite::main(&args[1..]),
        Some("slurm-check") => slurm::main(&args[1..]),
        Some("failures") => failures::main(&args[1..]),
        Some("compare-avocado") => compare_avocado::main(&args[1..]),
        Some("qemu-accepts") => qemu_accepts::main(&args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask <ci|deps|check-install [STATE]|tidy|run-suite [ARGS]|slurm-check|failures RESULTS_DIR…|compare-avocado [--strict]|qemu-accepts [--qemu PATH] [--only GLOB] [--keep]|bench NAME|fuzz [SECONDS]|fixtures guest [--check]|fixtures disk-guest [--check]|fixtures qemu X.Y>"
            );
            eprint!("{}", bench::usage());
            bail!("unknown or missing subcommand")
        }
    }
}

#[cfg(test)]
mod tests {
    /// The repository rules hold as a test too, so `cargo test` alone catches a file without
    /// its `//!` doc, an ignored test or a leftover debug macro.
    #[test]
    fn the_repository_is_tidy() {
        if let Err(e) = super::tidy() {
            panic!("{e:#}");
        }
    }
}
