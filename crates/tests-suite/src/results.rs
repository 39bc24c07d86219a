//! Result files: `results.json`, `junit.xml`, the `events.jsonl` stream, the `latest` link, and
//! merging several result directories into one report.
//!
//! Layout of one job (see the crate README):
//!
//! ```text
//! <results>/latest -> <job-id>
//! <results>/<job-id>/results.json   the report (RunReport)
//! <results>/<job-id>/junit.xml      one <testsuite> per test type
//! <results>/<job-id>/events.jsonl   run/test start and finish events, one JSON object a line
//! <results>/<job-id>/state.json     key/value state kept between tests
//! <results>/<job-id>/tests/<NNNNN>-<shortname>/params.json, test.log, (QEMU artifacts)
//! ```

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
use serde::{Deserialize, Serialize};

use sha1::{Digest, Sha1};

use crate::fsutil::write_atomic;
use crate::verdict::{Counts, VerdictKind};

/// Why writing or reading results failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResultsError {
    /// A file operation failed.
    #[error("{what} {path}")]
    Io {
        /// The operation.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A `results.json` could not be read.
    #[error("{path} is not a kvmtest results.json")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// JUnit serialisation failed.
    #[error("writing JUnit XML")]
    Junit(#[source] quick_junit::SerializeError),
    /// The merged directories are not the shards of one config and selection.
    #[error("{dir} cannot be merged with {first}: {why}")]
    Mismatch {
        /// The directory that does not fit.
        dir: PathBuf,
        /// The first directory, which the others are compared with.
        first: PathBuf,
        /// What differs.
        why: String,
    },
    /// Some shards of the merged run are not among the directories.
    #[error(
        "shards {} of {count} are missing, so the merged result would lack their variants \
         (give --partial to merge what there is)",
        missing.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    )]
    MissingShards {
        /// The missing shards' `K`.
        missing: Vec<usize>,
        /// `N`.
        count: usize,
    },
    /// Two merged directories both hold the same variant.
    #[error("variant {index} ({name}) is in more than one of the merged directories")]
    Overlap {
        /// The variant index.
        index: usize,
        /// Its name.
        name: String,
    },
}

pub(crate) fn io_err<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> ResultsError + 'a {
    move |source| ResultsError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// One test's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestRecord {
    /// The variant's 0-based position in the full enumeration (before sharding).
    pub index: usize,
    /// Full variant name.
    pub name: String,
    /// Short name.
    pub shortname: String,
    /// The `type` parameter, when set.
    pub test_type: Option<String>,
    /// The verdict.
    pub verdict: VerdictKind,
    /// The verdict's message.
    pub message: Option<String>,
    /// When it started (RFC 3339).
    pub started: String,
    /// How long it took, in seconds.
    pub duration_s: f64,
    /// Its directory, relative to the job directory.
    pub dir: String,
    /// The QEMU of the environment it ran in, `<path> (<version>)`; absent without a VM layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qemu: Option<String>,
    /// The attempts that failed before the one recorded (`--retries`), oldest first; each
    /// one's files are in `<dir>/attempt-N/`. A test that passed after such attempts is
    /// *flaky*.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retried: Vec<Attempt>,
    /// The worker that ran it (`w0`, `w1`…; `<job id>/w0` in a merged report): the report's
    /// timeline has a lane per worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
}

impl TestRecord {
    /// Passed, but only after failed attempts.
    pub fn flaky(&self) -> bool {
        self.verdict == VerdictKind::Pass && !self.retried.is_empty()
    }
}

/// One failed attempt of a test that was run again (`--retries`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// Its verdict (fail or error).
    pub verdict: VerdictKind,
    /// The verdict's message.
    pub message: Option<String>,
    /// How long it took, in seconds.
    pub duration_s: f64,
    /// Its directory, relative to the job directory (`<test dir>/attempt-N`).
    pub dir: String,
}

/// The content of `results.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// The kvmtest version that wrote it.
    pub kvmtest_version: String,
    /// The job id.
    pub job_id: String,
    /// Start time (RFC 3339).
    pub started: String,
    /// End time (RFC 3339).
    pub finished: String,
    /// Whether the run was interrupted.
    pub interrupted: bool,
    /// `K/N` when the run was a shard.
    pub shard: Option<String>,
    /// Where the shard came from: `--shard K/N`, or the engine and its variables
    /// (`--shard auto`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard_source: Option<String>,
    /// The SHA-1 of every variant name of the whole enumeration (before sharding), one per
    /// line: the shards of one config and selection have the same, so `kvmtest merge` can
    /// tell them from the results of another (absent in results of kvmtest before 0.x).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variants_digest: Option<String>,
    /// Parallel workers.
    pub jobs: usize,
    /// Variants in the whole config (before sharding).
    pub variants_total: usize,
    /// Variants selected for this run (after sharding).
    pub variants_selected: usize,
    /// Verdict counts.
    pub counts: Counts,
    /// Every test that ran, by variant index.
    pub tests: Vec<TestRecord>,
    /// For a merged report: the job ids merged.
    #[serde(default)]
    pub merged_from: Vec<String>,
    /// For a report merged with `--partial`: the shards (`K/N`) that were not there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_shards: Vec<String>,
    /// Every QEMU the run's tests ran on (`<path> (<version>)`), sorted.
    #[serde(default)]
    pub qemu: Vec<String>,
    /// The host the run ran on (every input's, for a merged report).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
}

impl RunReport {
    /// Sets [`RunReport::qemu`] from the tests' records.
    pub fn collect_qemu(&mut self) {
        let all: std::collections::BTreeSet<&String> =
            self.tests.iter().filter_map(|t| t.qemu.as_ref()).collect();
        self.qemu = all.into_iter().cloned().collect();
    }
}

impl RunReport {
    /// Write `results.json` and `junit.xml` into `job_dir`.
    pub fn write(&self, job_dir: &Path) -> Result<(), ResultsError> {
        let path = job_dir.join("results.json");
        let text = serde_json::to_string_pretty(self).unwrap_or_default();
        write_atomic(&path, text.as_bytes()).map_err(io_err("writing", &path))?;
        let path = job_dir.join("junit.xml");
        let xml = self.junit().to_string().map_err(ResultsError::Junit)?;
        write_atomic(&path, xml.as_bytes()).map_err(io_err("writing", &path))
    }

    /// Read `results.json` of `job_dir`.
    pub fn read(job_dir: &Path) -> Result<Self, ResultsError> {
        let path = job_dir.join("results.json");
        let text = fs::read_to_string(&path).map_err(io_err("reading", &path))?;
        serde_json::from_str(&text).map_err(|source| ResultsError::Parse { path, source })
    }

    /// The JUnit report: one `<testsuite>` per test type, a `<testcase>` per variant.
    pub fn junit(&self) -> Report {
        let mut report = Report::new(format!("kvmtest {}", self.job_id));
        let mut suites: BTreeMap<String, TestSuite> = BTreeMap::new();
        for t in &self.tests {
            let ty = t.test_type.clone().unwrap_or_else(|| "unknown".into());
            let mut status = match t.verdict {
                VerdictKind::Pass => TestCaseStatus::Success {
                    // Surefire's rerun format: each failed attempt of a flaky test.
                    flaky_runs: t
                        .retried
                        .iter()
                        .map(|a| {
                            let kind = match a.verdict {
                                VerdictKind::Error => NonSuccessKind::Error,
                                _ => NonSuccessKind::Failure,
                            };
                            let mut run = quick_junit::TestRerun::new(kind);
                            if let Some(m) = &a.message {
                                run.set_message(m.as_str());
                            }
                            run.set_time(Duration::from_secs_f64(a.duration_s.max(0.0)));
                            run
                        })
                        .collect(),
                },
                VerdictKind::Fail => TestCaseStatus::non_success(NonSuccessKind::Failure),
                VerdictKind::Error => TestCaseStatus::non_success(NonSuccessKind::Error),
                VerdictKind::Cancel => {
                    let mut s = TestCaseStatus::non_success(NonSuccessKind::Error);
                    s.set_type("cancelled");
                    s
                }
                VerdictKind::Skip => TestCaseStatus::skipped(),
            };
            if let Some(m) = &t.message {
                status.set_message(m.as_str());
            } else if t.verdict == VerdictKind::Cancel {
                status.set_message("cancelled by an interruption");
            }
            let mut case = TestCase::new(t.name.as_str(), status);
            case.set_classname(ty.as_str());
            case.set_time(Duration::from_secs_f64(t.duration_s.max(0.0)));
            case.add_property(quick_junit::Property::new("dir", t.dir.as_str()));
            if let Some(q) = &t.qemu {
                case.add_property(quick_junit::Property::new("qemu", q.as_str()));
            }
            suites
                .entry(ty.clone())
                .or_insert_with(|| TestSuite::new(ty.as_str()))
                .add_test_case(case);
        }
        report.add_test_suites(suites.into_values());
        report
    }
}

/// The `events.jsonl` writer: one JSON object per line, flushed at once, with a `time` field.
#[derive(Debug)]
pub struct EventLog {
    file: Mutex<File>,
}

impl EventLog {
    /// Create (append to) `path`.
    pub fn create(path: &Path) -> Result<Self, ResultsError> {
        let file = File::options()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io_err("creating", path))?;
        Ok(EventLog {
            file: Mutex::new(file),
        })
    }

    /// Append `event` (an object; `time` is added). Write errors are dropped: the event stream
    /// is a convenience, `results.json` is the record.
    pub fn emit(&self, event: &str, mut fields: serde_json::Value) {
        if let Some(obj) = fields.as_object_mut() {
            obj.insert("event".into(), event.into());
            obj.insert("time".into(), crate::time::now_rfc3339().into());
        }
        let mut line = fields.to_string();
        line.push('\n');
        if let Ok(mut f) = self.file.lock() {
            let _ = f.write_all(line.as_bytes());
        }
    }
}

/// Point `<results>/latest` at `job_id` (replaced atomically). The temporary link's name is
/// random as well as the pid's: shards on several machines may share one results volume.
pub fn update_latest(results_dir: &Path, job_id: &str) -> Result<(), ResultsError> {
    let link = results_dir.join("latest");
    let tmp = results_dir.join(format!(
        ".latest.tmp-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    let _ = fs::remove_file(&tmp);
    std::os::unix::fs::symlink(job_id, &tmp).map_err(io_err("linking", &tmp))?;
    fs::rename(&tmp, &link).map_err(io_err("renaming", &link))
}

pub(crate) fn copy_dir(from: &Path, to: &Path) -> Result<(), ResultsError> {
    fs::create_dir_all(to).map_err(io_err("creating", to))?;
    for entry in fs::read_dir(from).map_err(io_err("reading", from))? {
        let entry = entry.map_err(io_err("reading", from))?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let ty = entry.file_type().map_err(io_err("reading", &src))?;
        if ty.is_dir() {
            copy_dir(&src, &dst)?;
        } else if ty.is_file() {
            fs::copy(&src, &dst).map_err(io_err("copying", &src))?;
        }
        // Sockets and other special files are not results: skipped.
    }
    Ok(())
}

/// Builds [`RunReport::variants_digest`]: the SHA-1 of the variant names in enumeration order,
/// each ended by a newline.
#[derive(Default)]
pub struct VariantsDigest(Sha1);

impl VariantsDigest {
    /// Add the next variant's name.
    pub fn add(&mut self, name: &str) {
        self.0.update(name.as_bytes());
        self.0.update(b"\n");
    }

    /// The digest, as lowercase hex.
    pub fn finish(self) -> String {
        self.0
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

pub use crate::merge::merge;
