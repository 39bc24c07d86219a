//! `index.html`: the page a person reads after a run — the summary, a sortable table of the
//! tests, a timeline of the workers, and per test its reason, screendumps, command line,
//! `test.log`, serial console and QMP transcript.
//!
//! Written into the job directory at the end of every run and merge, and rebuilt for any job
//! directory by `kvmtest report DIR`. Everything comes from `results.json` and the tests'
//! directories; nothing else is read, so a merged directory (whose tests were copied in) gets
//! the same page. One file with its style and script inline: it works from `file://` and
//! needs no server; logs and screendumps are linked relative to it, and the logs of tests that
//! did not pass are embedded (their last [`TAIL`] bytes), so the page alone shows why.

mod html;
mod timeline;

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::fsutil::write_atomic;
use crate::results::{io_err, ResultsError, RunReport, TestRecord};
use crate::verdict::VerdictKind;

pub use html::escape;

/// How much of a log the page embeds: its end.
pub const TAIL: u64 = 64 * 1024;

/// The page's file name in a job directory.
pub const INDEX: &str = "index.html";

/// What the page shows of one test's files.
#[derive(Debug, Default)]
pub struct TestFiles {
    /// Embedded logs and images, in the order shown.
    pub artifacts: Vec<Artifact>,
    /// The other files, linked (paths relative to the job directory).
    pub others: Vec<String>,
}

/// One file the page shows.
#[derive(Debug)]
pub struct Artifact {
    /// Its path relative to the job directory (the link).
    pub rel: String,
    /// Its path relative to the test's directory (the label).
    pub label: String,
    /// Shown unfolded.
    pub open: bool,
    /// What it is.
    pub kind: ArtifactKind,
}

/// How a file is shown.
#[derive(Debug)]
pub enum ArtifactKind {
    /// An image (`<img>`): screendumps.
    Image,
    /// Text: its end, `shown` of `total` bytes.
    Text {
        /// The text shown.
        body: String,
        /// Bytes shown.
        shown: u64,
        /// The file's size.
        total: u64,
    },
}

/// Write `index.html` for `report` into `job_dir`; returns its path.
pub fn write_index(job_dir: &Path, report: &RunReport) -> Result<PathBuf, ResultsError> {
    let files: Vec<TestFiles> = report.tests.iter().map(|t| gather(job_dir, t)).collect();
    let timeline = timeline::svg(report);
    let page = html::page(report, &files, timeline.as_deref());
    let path = job_dir.join(INDEX);
    write_atomic(&path, page.as_bytes()).map_err(io_err("writing", &path))?;
    Ok(path)
}

/// Rebuild `index.html` of the job directory `job_dir` from its `results.json`.
pub fn rebuild(job_dir: &Path) -> Result<PathBuf, ResultsError> {
    let report = RunReport::read(job_dir)?;
    write_index(job_dir, &report)
}

/// Whether the page embeds a file of this name, and unfolds it when the test did not pass.
fn embedded(name: &str) -> Option<bool> {
    match name {
        "test.log" | "debug.log" => Some(true),
        "qemu-argv.txt" | "serial.log" | "qemu.log" | "vm.log" => Some(false),
        n if n.ends_with(".jsonl") && (n.starts_with("qmp-") || n.starts_with("hmp-")) => {
            Some(false)
        }
        _ => None,
    }
}

/// The files of test `t` under `job_dir`: screendumps always; the command lines always; the
/// logs of a test that did not pass (or passed only on a retry); links to everything else.
fn gather(job_dir: &Path, t: &TestRecord) -> TestFiles {
    let mut out = TestFiles::default();
    if t.dir.is_empty() {
        return out;
    }
    let root = job_dir.join(&t.dir);
    let mut all = Vec::new();
    walk(&root, 0, &mut all);
    all.sort();
    let passed = t.verdict == VerdictKind::Pass && !t.flaky();
    for path in all {
        let (Ok(label), Ok(rel)) = (path.strip_prefix(&root), path.strip_prefix(job_dir)) else {
            continue;
        };
        let label = label.to_string_lossy().into_owned();
        let rel = rel.to_string_lossy().into_owned();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.ends_with(".png") {
            out.artifacts.push(Artifact {
                rel,
                label,
                open: true,
                kind: ArtifactKind::Image,
            });
            continue;
        }
        let show = match embedded(&name) {
            Some(_) if name == "qemu-argv.txt" => true,
            Some(_) => !passed,
            None => false,
        };
        if !show {
            out.others.push(rel);
            continue;
        }
        match tail(&path, TAIL) {
            Ok((text, shown, total)) => {
                let body = if name.starts_with("qmp-") || name.starts_with("hmp-") {
                    transcript(&text)
                } else {
                    text
                };
                out.artifacts.push(Artifact {
                    rel,
                    label,
                    open: !passed && embedded(&name) == Some(true),
                    kind: ArtifactKind::Text { body, shown, total },
                });
            }
            Err(_) => out.others.push(rel),
        }
    }
    out
}

/// The files under `dir`, three levels deep at most (test dir, VM or attempt dir, VM dir of an
/// attempt).
fn walk(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let Ok(ty) = e.file_type() else { continue };
        if ty.is_dir() && depth < 2 {
            walk(&e.path(), depth + 1, out);
        } else if ty.is_file() {
            out.push(e.path());
        }
    }
}

/// The last `max` bytes of `path` (from a line start when cut), lossily as UTF-8, with the
/// bytes shown and the file's size.
fn tail(path: &Path, max: u64) -> std::io::Result<(String, u64, u64)> {
    let mut f = File::open(path)?;
    let total = f.metadata()?.len();
    let from = total.saturating_sub(max);
    f.seek(SeekFrom::Start(from))?;
    let mut buf = Vec::new();
    f.take(max).read_to_end(&mut buf)?;
    let mut start = 0;
    if from > 0 {
        if let Some(nl) = buf.iter().position(|&b| b == b'\n') {
            start = nl + 1;
        }
    }
    let shown = (buf.len() - start) as u64;
    Ok((
        String::from_utf8_lossy(&buf[start..]).into_owned(),
        shown,
        total,
    ))
}

/// A monitor log (`{"dir": "in"|"out"|"meta", "msg": …, "time": secs}` per line) as a
/// transcript: seconds from its first line, an arrow for the direction, the message.
fn transcript(jsonl: &str) -> String {
    let mut out = String::with_capacity(jsonl.len());
    let mut t0: Option<f64> = None;
    for line in jsonl.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            out.push_str(line);
            out.push('\n');
            continue;
        };
        let time = v["time"].as_f64().unwrap_or(0.0);
        let start = *t0.get_or_insert(time);
        let arrow = match v["dir"].as_str() {
            Some("out") => "→",
            Some("in") => "←",
            _ => "·",
        };
        let msg = match &v["msg"] {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        out.push_str(&format!("+{:8.3} {arrow} {msg}\n", time - start));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monitor_logs_read_as_transcripts() {
        let log = "{\"dir\":\"out\",\"msg\":{\"execute\":\"stop\"},\"time\":10.0}\n\
                   {\"dir\":\"in\",\"msg\":{\"return\":{}},\"time\":10.25}\n\
                   not json\n";
        assert_eq!(
            transcript(log),
            "+   0.000 → {\"execute\":\"stop\"}\n+   0.250 ← {\"return\":{}}\nnot json\n"
        );
    }

    #[test]
    fn tails_start_at_a_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("log");
        fs::write(&p, "first line\nsecond line\nthird\n").expect("write");
        let (text, shown, total) = tail(&p, 14).expect("tail");
        assert_eq!((text.as_str(), shown, total), ("third\n", 6, 29));
        let (text, _, _) = tail(&p, 100).expect("tail");
        assert!(text.starts_with("first"));
    }
}
