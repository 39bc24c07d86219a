//! Conformance with the reference parser (avocado-vt 113.0's `cartesian_config`), on the data
//! vendored in `fixtures/conformance` (see its README). One test per case, named after it:
//!
//! * `cases::NNN_name`: `cases/NNN_name.cfg` (with the extra arguments of `NNN_name.args`) must
//!   give byte-identical JSON lines to `NNN_name.expected`; or, where that holds an `ERROR …`
//!   line, fail, and where the reference names `FILE.cfg:N` with N > 0, at the same file and
//!   line (N <= 0: at end of file, the same file).
//! * `huge::test1`: `huge/test1.cfg` (465 variants) must equal `huge/test1.expected.jsonl.gz`.
//! * `huge::tests_40665_md5`: `huge/tests.cfg` with five `only` statements gives 40,665 variants
//!   whose JSON dump (as `kvmtest show --json` writes it, built on worker threads) must have the
//!   reference's md5.
//!
//! Cases are parsed by absolute path, so no test changes the working directory: the outputs do
//! not depend on it (`_name_map_file` keys are basenames; error locations are compared by file
//! name and line).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use libtest_mimic::{Arguments, Failed, Trial};
use md5::{Digest, Md5};
use params::{Parser, ParserOptions};

mod support;

use support::{case_files, run_case, stem};

/// Cases the vendored set holds (at least: more may be added).
const MIN_CASES: usize = 141;

/// The statements parsed after `huge/tests.cfg`, and what they select in the reference.
const HUGE_STATEMENTS: [&str; 5] = [
    "only pc-0.14",
    "only smp2",
    "only virtio_net",
    "only qcow2",
    "only virtio_scsi",
];
const HUGE_VARIANTS: u64 = 40_665;
const HUGE_MD5: &str = "0d045f2fbef534ac9788da4aad62b488";

/// `fixtures/conformance`.
fn conformance_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/conformance");
    dir.canonicalize().unwrap_or(dir)
}

/// The cases: the `*.cfg` files of `cases/`, sorted.
/// Where two texts first differ, for a readable failure message: the line, and a window of
/// each around the first differing character.
fn first_difference(expected: &str, got: &str) -> String {
    let (exp_n, got_n) = (expected.lines().count(), got.lines().count());
    for (i, (e, g)) in expected.lines().zip(got.lines()).enumerate() {
        if e != g {
            let at = e.chars().zip(g.chars()).take_while(|(a, b)| a == b).count();
            let cut = |s: &str| {
                let from = at.saturating_sub(150);
                let window: String = s.chars().skip(from).take(300).collect();
                if from > 0 {
                    format!("…{window}")
                } else {
                    window
                }
            };
            return format!(
                "{exp_n} vs {got_n} variants; line {} differs at character {}:\n  expected {}\n  got      {}",
                i + 1,
                at + 1,
                cut(e),
                cut(g)
            );
        }
    }
    format!("{exp_n} variants expected, {got_n} produced")
}

/// The location the reference names in its error line, as `check.sh` finds it: the last
/// `(FILE.cfg:N)` in the line (`ParserError` ends with it, `MissingIncludeError` has it before
/// its final message). Python-level crashes name none.
fn reference_location(line: &str) -> Option<(&str, i64)> {
    let mut found = None;
    let mut rest = line;
    while let Some(open) = rest.find('(') {
        rest = &rest[open + 1..];
        let Some(close) = rest.find([')', '(']) else {
            break;
        };
        if rest[close..].starts_with(')') {
            let inner = &rest[..close];
            if let Some((file, num)) = inner.rsplit_once(':') {
                if let (true, Ok(num)) = (file.ends_with(".cfg"), num.parse::<i64>()) {
                    found = Some((file, num));
                }
            }
        }
    }
    found
}

/// One case of `cases/`.
fn check_case(cfg: &Path) -> Result<(), Failed> {
    let args: Vec<String> = std::fs::read_to_string(cfg.with_extension("args"))
        .map(|s| s.lines().map(str::to_string).collect())
        .unwrap_or_default();
    let expected = std::fs::read_to_string(cfg.with_extension("expected"))
        .map_err(|e| format!("reading {}: {e}", cfg.with_extension("expected").display()))?;
    let got = run_case(cfg, &args);
    let Some(err) = expected.lines().find(|l| l.starts_with("ERROR ")) else {
        return match got {
            Ok(out) if out == expected => Ok(()),
            Ok(out) => Err(format!("output differs: {}", first_difference(&expected, &out)).into()),
            Err(e) => Err(format!("unexpected error: {e}").into()),
        };
    };
    let loc = reference_location(err);
    match (got, loc) {
        (Ok(_), _) => Err(format!("parsed without error; the reference says {err}").into()),
        (Err(_), None) => Ok(()),
        (Err(e), Some((file, line))) => {
            let ok = e.location.as_ref().is_some_and(|l| {
                let f: &str = &l.file;
                let same_file = f == file || f.ends_with(&format!("/{file}"));
                same_file && (line <= 0 || l.line.map(i64::from) == Some(line))
            });
            if ok {
                Ok(())
            } else {
                Err(format!(
                    "error at {:?}, the reference says {file}:{line}: {e}",
                    e.location
                )
                .into())
            }
        }
    }
}

/// `huge/test1.cfg` against the gzipped reference output.
fn check_huge_test1(huge: &Path) -> Result<(), Failed> {
    let gz = huge.join("test1.expected.jsonl.gz");
    let file = std::fs::File::open(&gz).map_err(|e| format!("opening {}: {e}", gz.display()))?;
    let mut expected = String::new();
    flate2::read::GzDecoder::new(file)
        .read_to_string(&mut expected)
        .map_err(|e| format!("gunzipping {}: {e}", gz.display()))?;
    let got = run_case(&huge.join("test1.cfg"), &[]).map_err(|e| format!("error: {e}"))?;
    if got == expected {
        Ok(())
    } else {
        Err(format!("output differs: {}", first_difference(&expected, &got)).into())
    }
}

/// The 40,665-variant selection of `huge/tests.cfg`: its JSON dump, built the way
/// `kvmtest show --json` builds it (`Config::write_json_parallel`), streamed into md5.
fn check_huge_tests_md5(huge: &Path) -> Result<(), Failed> {
    let mut p = Parser::new(ParserOptions::default());
    p.parse_file(huge.join("tests.cfg"))
        .map_err(|e| format!("{e}"))?;
    for s in HUGE_STATEMENTS {
        p.parse_str(s).map_err(|e| format!("{s}: {e}"))?;
    }
    let config = p.finish();
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut md5 = Md5::new();
    let n = config
        .write_json_parallel(workers, &mut |bytes| {
            md5.update(bytes);
            Ok(())
        })
        .map_err(|e| format!("error: {e}"))?;
    let sum: String = md5.finalize().iter().map(|b| format!("{b:02x}")).collect();
    if n != HUGE_VARIANTS {
        return Err(format!("{n} variants, the reference gives {HUGE_VARIANTS}").into());
    }
    if sum != HUGE_MD5 {
        return Err(format!("JSON dump md5 {sum}, the reference's is {HUGE_MD5}").into());
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let dir = conformance_dir();
    let cases_dir = dir.join("cases");
    let huge = dir.join("huge");
    let mut trials = Vec::new();
    match case_files(&cases_dir) {
        Ok(cases) => {
            let n = cases.len();
            trials.push(Trial::test("cases::all_present", move || {
                if n >= MIN_CASES {
                    Ok(())
                } else {
                    Err(format!("expected at least {MIN_CASES} cases, found {n}").into())
                }
            }));
            trials.extend(cases.into_iter().map(|cfg| {
                Trial::test(format!("cases::{}", stem(&cfg)), move || check_case(&cfg))
            }));
        }
        Err(e) => trials.push(Trial::test("cases::all_present", move || Err(e.into()))),
    }
    let h = huge.clone();
    trials.push(Trial::test("huge::test1", move || check_huge_test1(&h)));
    trials.push(Trial::test("huge::tests_40665_md5", move || {
        check_huge_tests_md5(&huge)
    }));
    libtest_mimic::run(&args, trials).exit_code()
}
