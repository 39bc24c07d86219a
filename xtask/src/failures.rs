//! `cargo xtask failures RESULTS_DIR…`: what a reader of a CI log needs to see of each test that
//! did not pass (and each failed attempt of a test run again with `--retries`), printed from a
//! result directory (`RESULTS_DIR/latest` when it is a `--results-dir`
//! root): its verdict and reason, the end of its `test.log`, and per VM the end of `vm.log`,
//! `serial.log`, QEMU's own output and the last guest session's transcript.
//!
//! CI machines are thrown away with their result directories, so `.ci/run` prints this when a
//! suite fails. Exit 0 whatever the verdicts (it only reports); an unreadable `results.json` is
//! an error.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// How many lines of each file are shown.
const TEST_LOG_LINES: usize = 40;
const VM_FILE_LINES: usize = 25;

/// The result directory a `--results-dir` root or a job directory names.
fn job_dir(dir: &Path) -> PathBuf {
    let latest = dir.join("latest");
    if !dir.join("results.json").is_file() && latest.join("results.json").is_file() {
        latest
    } else {
        dir.to_path_buf()
    }
}

/// The last `n` lines of `path` (lossy UTF-8), or why it could not be read.
fn tail(path: &Path, n: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            let from = lines.len().saturating_sub(n);
            let mut out = String::new();
            if from > 0 {
                out.push_str(&format!("    … ({from} earlier lines)\n"));
            }
            for l in &lines[from..] {
                out.push_str("    ");
                out.push_str(l);
                out.push('\n');
            }
            if lines.is_empty() {
                out.push_str("    (empty)\n");
            }
            out
        }
        Err(e) => format!("    (unreadable: {e})\n"),
    }
}

/// The end of `test.log` in the test (or attempt) directory `tdir`, then per VM directory the
/// ends of `vm.log`, `qemu.log`, `serial.log` and the last guest session.
fn show_dir(out: &mut String, tdir: &Path) {
    out.push_str(&format!("--- {}\n", tdir.join("test.log").display()));
    out.push_str(&tail(&tdir.join("test.log"), TEST_LOG_LINES));
    let mut vms: Vec<PathBuf> = std::fs::read_dir(tdir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_dir())
                .filter(|p| {
                    !p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("attempt-"))
                })
                .collect()
        })
        .unwrap_or_default();
    vms.sort();
    for vm in vms {
        let mut sessions: Vec<PathBuf> = std::fs::read_dir(&vm)
            .map(|rd| {
                rd.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| {
                        p.file_name()
                            .and_then(|n| n.to_str())
                            .is_some_and(|n| n.starts_with("session-"))
                    })
                    .collect()
            })
            .unwrap_or_default();
        // session-N-…: the highest N is the last session opened.
        sessions.sort_by_key(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.split('-').nth(1))
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0)
        });
        let files = ["vm.log", "qemu.log", "serial.log"]
            .iter()
            .map(|f| vm.join(f))
            .filter(|p| p.exists())
            .chain(sessions.last().cloned());
        for f in files {
            out.push_str(&format!("--- {}\n", f.display()));
            out.push_str(&tail(&f, VM_FILE_LINES));
        }
    }
}

/// The report for one job directory.
pub fn report(dir: &Path) -> Result<String> {
    let job = job_dir(dir);
    let path = job.join("results.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let results: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let tests = results
        .get("tests")
        .and_then(serde_json::Value::as_array)
        .with_context(|| format!("{}: no `tests` array", path.display()))?;
    let mut out = String::new();
    let mut shown = 0;
    for t in tests {
        let verdict = t.get("verdict").and_then(|v| v.as_str()).unwrap_or("?");
        let name = t.get("name").and_then(|v| v.as_str()).unwrap_or("?");
        // `--retries`: the failed attempts of a test, flaky or not, each with its files.
        let retried = t
            .get("retried")
            .and_then(serde_json::Value::as_array)
            .cloned()
            .unwrap_or_default();
        for (i, a) in retried.iter().enumerate() {
            shown += 1;
            let v = a.get("verdict").and_then(|v| v.as_str()).unwrap_or("?");
            let message = a.get("message").and_then(|v| v.as_str()).unwrap_or("");
            out.push_str(&format!(
                "=== {v}: {name}, attempt {} of {} (the test ended {verdict})\n    {message}\n",
                i + 1,
                retried.len() + 1
            ));
            match a.get("dir").and_then(|v| v.as_str()) {
                Some(d) => show_dir(&mut out, &job.join(d)),
                None => out.push_str("    (no directory recorded)\n"),
            }
        }
        if matches!(verdict, "pass" | "skip") {
            continue;
        }
        shown += 1;
        let message = t.get("message").and_then(|v| v.as_str()).unwrap_or("");
        out.push_str(&format!("=== {verdict}: {name}\n    {message}\n"));
        match t.get("dir").and_then(|v| v.as_str()) {
            Some(d) => show_dir(&mut out, &job.join(d)),
            None => out.push_str("    (no test directory recorded)\n"),
        }
    }
    if shown == 0 {
        out.push_str(&format!(
            "{}: every test passed (on its first attempt) or was skipped\n",
            job.display()
        ));
    }
    Ok(out)
}

/// `cargo xtask failures DIR…`.
pub fn main(args: &[String]) -> Result<()> {
    if args.is_empty() {
        anyhow::bail!(
            "usage: cargo xtask failures RESULTS_DIR… (a --results-dir root or a job directory)"
        );
    }
    for a in args {
        print!("{}", report(Path::new(a))?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_test_shows_its_reason_log_and_last_session() {
        let root = tempfile::tempdir().expect("tempdir");
        let job = root.path().join("20260101-000000-abc");
        let t = job.join("tests/00001-b");
        let vm = t.join("vm1-1");
        std::fs::create_dir_all(&vm).expect("mkdir");
        std::os::unix::fs::symlink(&job, root.path().join("latest")).expect("symlink");
        std::fs::write(
            job.join("results.json"),
            serde_json::json!({"tests": [
                {"name": "a", "verdict": "pass", "dir": "tests/00000-a"},
                {"name": "b", "verdict": "fail", "message": "no login", "dir": "tests/00001-b"},
            ]})
            .to_string(),
        )
        .expect("write");
        std::fs::write(t.join("test.log"), "line1\nlogging into vm1\n").expect("write");
        std::fs::write(vm.join("serial.log"), "").expect("write");
        std::fs::write(vm.join("session-2-ssh.log"), "second\n").expect("write");
        std::fs::write(vm.join("session-10-ssh.log"), "tenth: No route to host\n").expect("write");
        let out = report(root.path()).expect("report");
        assert!(out.contains("=== fail: b\n    no login"), "{out}");
        assert!(!out.contains("=== pass"), "{out}");
        assert!(out.contains("logging into vm1"), "{out}");
        assert!(out.contains("serial.log\n    (empty)"), "{out}");
        assert!(out.contains("tenth: No route to host"), "{out}");
        assert!(!out.contains("second"), "{out}");
    }

    #[test]
    fn a_flaky_test_shows_its_failed_attempt() {
        let job = tempfile::tempdir().expect("tempdir");
        let t = job.path().join("tests/00000-a");
        std::fs::create_dir_all(t.join("attempt-1/vm1-1")).expect("mkdir");
        std::fs::write(t.join("test.log"), "second try passed\n").expect("write");
        std::fs::write(t.join("attempt-1/test.log"), "first try\n").expect("write");
        std::fs::write(t.join("attempt-1/vm1-1/serial.log"), "Kernel panic\n").expect("write");
        std::fs::write(
            job.path().join("results.json"),
            serde_json::json!({"tests": [{"name": "a", "verdict": "pass", "dir": "tests/00000-a",
                "retried": [{"verdict": "fail", "message": "no login", "duration_s": 1.0,
                             "dir": "tests/00000-a/attempt-1"}]}]})
            .to_string(),
        )
        .expect("write");
        let out = report(job.path()).expect("report");
        assert!(
            out.contains("=== fail: a, attempt 1 of 2 (the test ended pass)\n    no login"),
            "{out}"
        );
        assert!(
            out.contains("first try") && out.contains("Kernel panic"),
            "{out}"
        );
        assert!(!out.contains("second try"), "{out}");
    }

    #[test]
    fn a_run_without_failures_says_so() {
        let job = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            job.path().join("results.json"),
            r#"{"tests": [{"name": "a", "verdict": "pass", "dir": "tests/00000-a"}]}"#,
        )
        .expect("write");
        let out = report(job.path()).expect("report");
        assert!(out.contains("every test passed"), "{out}");
    }

    #[test]
    fn a_missing_results_file_is_an_error_naming_it() {
        let job = tempfile::tempdir().expect("tempdir");
        let err = report(job.path()).expect_err("no results.json");
        assert!(format!("{err:#}").contains("results.json"), "{err:#}");
    }
}
