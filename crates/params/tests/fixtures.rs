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
//! are not run here. Each case is its own test (`ok::NAME`, `err::NAME`, run by libtest-mimic),
//! so a failing case hides no other. Cases are parsed by absolute path (never changing the
//! working directory); `_name_map_file` keys are basenames, so the outputs do not depend on it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use libtest_mimic::{Arguments, Failed, Trial};

mod support;

use support::{case_files, run_case, stem};

/// `fixtures/params`, canonicalized so that the snapshot placeholder replaces it exactly.
fn fixtures_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/params");
    root.canonicalize()
        .unwrap_or_else(|e| panic!("fixtures missing at {}: {e}", root.display()))
}

/// The cases of one fixtures folder: its top-level `*.cfg` files, sorted.
fn cases(kind: &str) -> Result<Vec<PathBuf>, String> {
    case_files(&fixtures_root().join(kind))
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

/// One `ok/` case: byte-identical output to `ok/NAME.expected`.
fn check_ok(cfg: &Path) -> Result<(), Failed> {
    let name = stem(cfg);
    let expected = std::fs::read_to_string(sibling(cfg, "expected"))
        .map_err(|e| format!("no ok/{name}.expected ({e})"))?;
    match run_case(cfg, &case_args(cfg)) {
        Ok(got) if got == expected => Ok(()),
        Ok(got) => Err(format!("output differs: {}", first_difference(&expected, &got)).into()),
        Err(e) => Err(format!("unexpected error: {e}").into()),
    }
}

/// One `err/` case: it must fail, where the reference names a line at the same file and line.
fn check_err(cfg: &Path) -> Result<(), Failed> {
    let name = stem(cfg);
    let reference = std::fs::read_to_string(sibling(cfg, "reference"))
        .map_err(|e| format!("no err/{name}.reference ({e})"))?;
    let Some(ref_line) = reference.lines().find(|l| l.starts_with("ERROR ")) else {
        return Err(format!("err/{name}.reference holds no ERROR line").into());
    };
    let err = match run_case(cfg, &case_args(cfg)) {
        Ok(_) => {
            return Err(format!("parsed without error; the reference says {ref_line}").into());
        }
        Err(e) => e,
    };
    let Some((ref_file, ref_num)) = reference_location(ref_line) else {
        return Ok(()); // a Python-level crash: any error will do
    };
    let Some(loc) = &err.location else {
        return Err(format!(
            "error without location; the reference says {ref_file}:{ref_num}: {err}"
        )
        .into());
    };
    let file: &str = &loc.file;
    let same_file = file == ref_file || file.ends_with(&format!("/{ref_file}"));
    let same_line = ref_num <= 0 || loc.line.map(i64::from) == Some(ref_num);
    if same_file && same_line {
        Ok(())
    } else {
        Err(format!("error at {loc}, the reference says {ref_file}:{ref_num}: {err}").into())
    }
}

/// The trials of one fixtures folder: `KIND::all_present` (at least `min` cases), then
/// `KIND::NAME` per case.
fn folder_trials(
    kind: &'static str,
    min: usize,
    check: fn(&Path) -> Result<(), Failed>,
) -> Vec<Trial> {
    let cases = match cases(kind) {
        Ok(cases) => cases,
        Err(e) => {
            return vec![Trial::test(format!("{kind}::all_present"), move || {
                Err(e.into())
            })]
        }
    };
    let n = cases.len();
    let mut trials = vec![Trial::test(format!("{kind}::all_present"), move || {
        if n >= min {
            Ok(())
        } else {
            Err(format!("expected at least {min} {kind}/ cases, found {n}").into())
        }
    })];
    trials.extend(
        cases
            .into_iter()
            .map(|cfg| Trial::test(format!("{kind}::{}", stem(&cfg)), move || check(&cfg))),
    );
    trials
}

/// The rendered diagnostic of every `err/` case, pinned by insta snapshots
/// (`snapshots/fixtures__err_fixture_diagnostics@NAME.cfg.snap`: the snapshot names come from
/// this file's and this function's names). One trial, as `insta::glob!` checks every file and
/// then reports all mismatches together.
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

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let mut trials = folder_trials("ok", 40, check_ok);
    trials.extend(folder_trials("err", 20, check_err));
    trials.push(Trial::test("err_fixture_diagnostics", || {
        err_fixture_diagnostics();
        Ok(())
    }));
    libtest_mimic::run(&args, trials).exit_code()
}
