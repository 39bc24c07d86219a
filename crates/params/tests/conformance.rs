//! Conformance with the reference parser: every case of `../shared/conformance/cases` must give
//! byte-identical JSON dumps, or an error at the same file and line as the reference.

use std::path::{Path, PathBuf};

mod support;

use support::run_case;

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance/cases")
}

#[test]
fn reference_conformance_cases() {
    let dir = cases_dir();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("conformance cases missing at {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "cfg"))
        .collect();
    entries.sort();
    assert!(
        entries.len() >= 141,
        "expected at least 141 cases, found {}",
        entries.len()
    );
    // cases are parsed by relative name from their folder, as check.sh does
    std::env::set_current_dir(&dir).unwrap_or_else(|e| panic!("cd {}: {e}", dir.display()));
    let mut failures = Vec::new();
    for cfg in &entries {
        let stem = cfg
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let rel = PathBuf::from(format!("{stem}.cfg"));
        let args: Vec<String> = std::fs::read_to_string(dir.join(format!("{stem}.args")))
            .map(|s| s.lines().map(str::to_string).collect())
            .unwrap_or_default();
        let expected =
            std::fs::read_to_string(dir.join(format!("{stem}.expected"))).unwrap_or_default();
        let got = run_case(&rel, &args);
        match expected.lines().find(|l| l.starts_with("ERROR ")) {
            None => match got {
                Ok(out) if out == expected => {}
                Ok(_) => failures.push(format!("{stem}: output differs")),
                Err(e) => failures.push(format!("{stem}: unexpected error {e}")),
            },
            Some(err) => {
                // the reference's location, `(FILE.cfg:N)`
                let loc = err
                    .rsplit_once(" (")
                    .and_then(|(_, l)| l.strip_suffix(')'))
                    .filter(|l| l.contains(".cfg:"));
                match (got, loc) {
                    (Ok(_), _) => failures.push(format!("{stem}: expected an error: {err}")),
                    (Err(_), None) => {}
                    (Err(e), Some(loc)) => {
                        let (file, line) = loc.rsplit_once(':').unwrap_or((loc, ""));
                        let line: i64 = line.parse().unwrap_or(0);
                        let ok = e.location.as_ref().is_some_and(|l| {
                            l.file.ends_with(file) && (line <= 0 || l.line == Some(line as u32))
                        });
                        if !ok {
                            failures.push(format!(
                                "{stem}: error at {:?}, reference says {loc}: {e}",
                                e.location
                            ));
                        }
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases fail:\n{}",
        failures.len(),
        entries.len(),
        failures.join("\n")
    );
}
