//! avocado-vt conformance of the command lines: one trial per reference record of
//! `fixtures/avocado/qemu-X.Y/` (avocado-vt's own command line for a variant, or its refusal,
//! written by `cargo xtask compare-avocado --regenerate`), snapshotting the differences from the
//! command line kvmtest builds from the same params with the matching capabilities fixture
//! (`fixtures/qemu-caps/qemu-X.Y.json`).
//!
//! Where both sides build a command line, every difference must be explained by the table of
//! `README.md` (`## Deliberate differences from avocado-vt`): an unexplained one fails the
//! trial. Refusals (by one side or both) are recorded in the snapshots; a change to a command
//! line shows as a snapshot diff either way.

mod common;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use libtest_mimic::{Arguments, Failed, Trial};
use qemu_cmd::argv_diff::{compare_reference, Explanations};

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let root = common::fixtures().join("avocado");
    let readme = std::fs::read_to_string("README.md").unwrap_or_default();
    let explanations = Explanations::from_markdown(&readme);
    let mut records: Vec<(String, PathBuf)> = Vec::new();
    for qemu in ["qemu-7.2", "qemu-10.0"] {
        for f in common::files(&root.join(qemu), "json") {
            records.push((qemu.to_string(), f));
        }
    }
    let mut trials = vec![Trial::test("fixtures_are_present", {
        let (n, rows) = (records.len(), explanations.rows.len());
        move || {
            if n < 40 || rows == 0 {
                return Err(format!("{n} reference records, {rows} explanations").into());
            }
            Ok(())
        }
    })];
    for (qemu, file) in records {
        let name = format!("{}@{qemu}", common::stem(&file));
        let explanations = explanations.clone();
        trials.push(Trial::test(name.clone(), move || {
            snapshot(&file, &qemu, &explanations, &name)
        }));
    }
    libtest_mimic::run(&args, trials).exit_code()
}

fn snapshot(
    file: &Path,
    qemu: &str,
    explanations: &Explanations,
    name: &str,
) -> Result<(), Failed> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let record: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
    let caps = common::caps(qemu);
    let outcome = compare_reference(&record, &caps, explanations);
    let variant = record["name"].as_str().unwrap_or_default();
    let report = format!("{variant}\n{}", outcome.report());
    // Where both sides build a command line, every difference must be a deliberate one (a row
    // of the README's table): a new gap fails here, not only as a snapshot diff.
    if let qemu_cmd::argv_diff::Outcome::Compared(_) = &outcome {
        if outcome.unexplained() > 0 {
            return Err(format!("unexplained differences from avocado-vt:\n{report}").into());
        }
    }
    let mut s = insta::Settings::clone_current();
    s.set_snapshot_path("snapshots");
    s.set_prepend_module_to_snapshot(true);
    s.set_description(format!("{} vs kvmtest", file.display()));
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        s.bind(|| insta::assert_snapshot!(name.to_string(), report));
    }))
    .map_err(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_string()))
            .unwrap_or_else(|| "snapshot assertion failed".into())
            .into()
    })
}
