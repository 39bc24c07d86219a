//! The config fixtures of `fixtures/params`, checked against the reference parser's outputs.
//!
//! * `ok/NAME.cfg`: real-world style configs (tp-qemu/avocado-vt trees, every operator, suffix,
//!   join, includes, defaults mode, unicode, tabs, CRLF, deep nesting, stress matrices). Each
//!   must give byte-identical JSON lines to `ok/NAME.expected`, produced by avocado-vt's parser
//!   with `fixtures/params/regen.sh` (optional `NAME.args`: extra arguments, one per line).
//! * `err/NAME.cfg`: bad configs. Each must fail; where the reference's error (`NAME.reference`)
//!   names `FILE:LINE` with a line > 0, kvmtest's error must point at the same file and line.
//!   The rendered diagnostic of each is pinned by an insta snapshot, with the fixtures root
//!   replaced by `[fixtures]` so the snapshots do not depend on the checkout's location.
//!
//! Sub-files for includes live in subfolders (`inc/`) and are not cases themselves. Cases where
//! kvmtest still differs from the reference are kept in `pending/` (see `MISMATCHES.md`) and
//! are not run here. Cases are parsed by absolute path (never changing the working directory);
//! `_name_map_file` keys are basenames, so the outputs do not depend on it.

use std::path::{Path, PathBuf};

mod support;

use support::run_case;

/// `fixtures/params`, canonicalized so that the snapshot placeholder replaces it exactly.
fn fixtures_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/params");
    root.canonicalize()
        .unwrap_or_else(|e| panic!("fixtures missing at {}: {e}", root.display()))
}

/// The cases of one fixtures folder: its top-level `*.cfg` files, sorted.
fn cases(kind: &str) -> Vec<PathBuf> {
    let dir = fixtures_root().join(kind);
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "cfg"))
        .collect();
    cases.sort();
    cases
}

fn stem(cfg: &Path) -> String {
    cfg.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A file next to the case with another extension (`expected`, `reference`, `args`).
fn sibling(cfg: &Path, ext: &str) -> PathBuf {
    cfg.with_extension(ext)
}

/// The case's extra arguments (`NAME.args`, one per line), as the reference dump takes them.
fn case_args(cfg: &Path) -> Vec<String> {
    std::fs::read_to_string(sibling(cfg, "args"))
        .map(|s| s.lines().map(str::to_string).collect())
        .unwrap_or_default()
}

/// The location the reference names in its error line: the last `(FILE:LINE)` in it
/// (`ParserError` ends with it, `MissingIncludeError` has it before the final message).
/// Python-level crashes (RecursionError, ValueError…) name none.
fn reference_location(line: &str) -> Option<(String, i64)> {
    let mut found = None;
    let mut rest = line;
    while let Some(open) = rest.find('(') {
        rest = &rest[open + 1..];
        let Some(close) = rest.find(')') else { break };
        let inner = &rest[..close];
        if let Some((file, num)) = inner.rsplit_once(':') {
            let plausible_file = !file.is_empty() && !file.contains(['(', ' ', '\'']);
            if let (true, Ok(num)) = (plausible_file, num.parse::<i64>()) {
                found = Some((file.to_string(), num));
            }
        }
    }
    found
}

/// First lines of two texts where they differ, for a readable failure message.
fn first_difference(expected: &str, got: &str) -> String {
    let (exp_n, got_n) = (expected.lines().count(), got.lines().count());
    for (i, (e, g)) in expected.lines().zip(got.lines()).enumerate() {
        if e != g {
            let cut = |s: &str| s.chars().take(400).collect::<String>();
            return format!(
                "{exp_n} vs {got_n} variants; line {} differs:\n  expected {}\n  got      {}",
                i + 1,
                cut(e),
                cut(g)
            );
        }
    }
    format!("{exp_n} variants expected, {got_n} produced")
}

#[test]
fn ok_fixtures_match_the_reference_output() {
    let cases = cases("ok");
    assert!(
        cases.len() >= 40,
        "expected at least 40 ok/ cases, found {}",
        cases.len()
    );
    let mut failures = Vec::new();
    for cfg in &cases {
        let name = stem(cfg);
        let expected = match std::fs::read_to_string(sibling(cfg, "expected")) {
            Ok(e) => e,
            Err(e) => {
                failures.push(format!("{name}: no ok/{name}.expected ({e})"));
                continue;
            }
        };
        match run_case(cfg, &case_args(cfg)) {
            Ok(got) if got == expected => {}
            Ok(got) => failures.push(format!(
                "{name}: output differs: {}",
                first_difference(&expected, &got)
            )),
            Err(e) => failures.push(format!("{name}: unexpected error: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} ok/ fixtures fail:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn err_fixtures_fail_where_the_reference_fails() {
    let cases = cases("err");
    assert!(
        cases.len() >= 20,
        "expected at least 20 err/ cases, found {}",
        cases.len()
    );
    let mut failures = Vec::new();
    for cfg in &cases {
        let name = stem(cfg);
        let reference = match std::fs::read_to_string(sibling(cfg, "reference")) {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{name}: no err/{name}.reference ({e})"));
                continue;
            }
        };
        let Some(ref_line) = reference.lines().find(|l| l.starts_with("ERROR ")) else {
            failures.push(format!("{name}: err/{name}.reference holds no ERROR line"));
            continue;
        };
        let err = match run_case(cfg, &case_args(cfg)) {
            Ok(_) => {
                failures.push(format!(
                    "{name}: parsed without error; the reference says {ref_line}"
                ));
                continue;
            }
            Err(e) => e,
        };
        let Some((ref_file, ref_num)) = reference_location(ref_line) else {
            continue; // a Python-level crash: any error will do
        };
        let Some(loc) = &err.location else {
            failures.push(format!(
                "{name}: error without location; the reference says {ref_file}:{ref_num}: {err}"
            ));
            continue;
        };
        let file: &str = &loc.file;
        let same_file = file == ref_file || file.ends_with(&format!("/{ref_file}"));
        let same_line = ref_num <= 0 || loc.line.map(i64::from) == Some(ref_num);
        if !(same_file && same_line) {
            failures.push(format!(
                "{name}: error at {loc}, the reference says {ref_file}:{ref_num}: {err}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} err/ fixtures fail:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn err_fixture_diagnostics() {
    let root = fixtures_root();
    let root_text = root.to_string_lossy().into_owned();
    insta::glob!("../../../fixtures/params/err", "*.cfg", |cfg| {
        let reference = std::fs::read_to_string(sibling(cfg, "reference")).unwrap_or_default();
        let rendered = match run_case(cfg, &case_args(cfg)) {
            Ok(_) => "(no error)\n".to_string(),
            Err(e) => e.render().replace(&root_text, "[fixtures]"),
        };
        insta::with_settings!({
            description => format!("reference: {}", reference.trim_end()),
            omit_expression => true,
        }, {
            insta::assert_snapshot!(rendered);
        });
    });
}
