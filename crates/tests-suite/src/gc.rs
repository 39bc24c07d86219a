//! Housekeeping: the run registry and `kvmtest gc`.
//!
//! Every run writes `<results>/.runs/<job-id>.json` when it starts: its pid (with the process
//! start time, so a reused pid is never mistaken for it), its job and scratch directories, and
//! every process, socket and directory its environments record through a
//! [`ResourceRecorder`]. A run that ends — normally or by Ctrl-C — removes its entry. An entry
//! whose run is gone is what an interrupted run (SIGKILL, power loss, OOM) left; [`gc`] kills
//! its recorded processes (only when their start time still matches), removes its sockets and
//! scratch directories and deletes the entry. Results are never touched. Nothing outside the
//! registry is considered, so `gc` only ever acts on kvmtest's own runs.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

/// The registry directory under a results directory.
pub fn registry_dir(results_dir: &Path) -> PathBuf {
    results_dir.join(".runs")
}

/// Something a run owns that must not outlive it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Resource {
    /// A process (a QEMU); killed with its process group when `group` is set.
    Process {
        /// Its pid.
        pid: u32,
        /// Its start time (clock ticks after boot, `/proc/<pid>/stat` field 22).
        start_time: Option<u64>,
        /// Kill the whole process group `pid` leads.
        group: bool,
    },
    /// A unix socket path.
    Socket {
        /// The path.
        path: PathBuf,
    },
    /// A scratch directory, removed recursively.
    Dir {
        /// The path.
        path: PathBuf,
    },
}

/// One run's registry entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The job id.
    pub job_id: String,
    /// The runner's pid.
    pub pid: u32,
    /// The runner's start time, to tell a reused pid apart.
    pub pid_start_time: Option<u64>,
    /// When the run started.
    pub started: String,
    /// The job's results directory (kept by gc).
    pub job_dir: PathBuf,
    /// The run's scratch directory (removed by gc).
    pub scratch_dir: PathBuf,
    /// Recorded resources.
    pub resources: Vec<Resource>,
}

/// Why the registry could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("{what} {path}")]
pub struct GcError {
    /// The operation.
    pub what: &'static str,
    /// The file or directory.
    pub path: PathBuf,
    /// The I/O error.
    #[source]
    pub source: io::Error,
}

/// A process's start time from `/proc/<pid>/stat`, or `None` when it does not exist.
pub fn process_start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    // `rest` starts with field 3 (state); the start time is field 22.
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// The handle environments use to record what they create.
#[derive(Debug, Clone)]
pub struct ResourceRecorder {
    inner: Arc<Mutex<RunRecord>>,
    path: Option<Arc<PathBuf>>,
}

impl ResourceRecorder {
    /// Create the registry entry for `record` under `results_dir`.
    pub fn create(results_dir: &Path, record: RunRecord) -> Result<Self, GcError> {
        let dir = registry_dir(results_dir);
        fs::create_dir_all(&dir).map_err(|source| GcError {
            what: "creating",
            path: dir.clone(),
            source,
        })?;
        let r = ResourceRecorder {
            path: Some(Arc::new(dir.join(format!("{}.json", record.job_id)))),
            inner: Arc::new(Mutex::new(record)),
        };
        r.save()?;
        Ok(r)
    }

    /// A recorder that writes nothing (for tests of environments).
    pub fn detached(record: RunRecord) -> Self {
        ResourceRecorder {
            inner: Arc::new(Mutex::new(record)),
            path: None,
        }
    }

    /// Record `resource`.
    pub fn record(&self, resource: Resource) -> Result<(), GcError> {
        if let Ok(mut r) = self.inner.lock() {
            if !r.resources.contains(&resource) {
                r.resources.push(resource);
            }
        }
        self.save()
    }

    /// Forget `resource` (it was cleaned up normally).
    pub fn forget(&self, resource: &Resource) -> Result<(), GcError> {
        if let Ok(mut r) = self.inner.lock() {
            r.resources.retain(|x| x != resource);
        }
        self.save()
    }

    /// A copy of the entry.
    pub fn snapshot(&self) -> Option<RunRecord> {
        self.inner.lock().ok().map(|r| r.clone())
    }

    fn save(&self) -> Result<(), GcError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let text = match self.inner.lock() {
            Ok(r) => serde_json::to_string_pretty(&*r).unwrap_or_default(),
            Err(_) => return Ok(()),
        };
        crate::fsutil::write_atomic(path, text.as_bytes()).map_err(|source| GcError {
            what: "writing",
            path: path.to_path_buf(),
            source,
        })
    }

    /// Remove the entry: the run ended and cleaned up after itself.
    pub fn remove(&self) -> Result<(), GcError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        match fs::remove_file(path.as_path()) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(GcError {
                what: "removing",
                path: path.to_path_buf(),
                source,
            }),
        }
    }
}

/// Whether gc acts or only reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GcMode {
    /// Kill and remove.
    #[default]
    Collect,
    /// Only report what would be done.
    DryRun,
}

/// What gc found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GcReport {
    /// Runs still alive, left alone.
    pub live_runs: Vec<String>,
    /// Stale runs cleaned up (or that would be, in a dry run).
    pub stale_runs: Vec<String>,
    /// Processes killed.
    pub killed: Vec<u32>,
    /// Paths removed.
    pub removed: Vec<PathBuf>,
    /// Things that could not be done, as messages.
    pub problems: Vec<String>,
}

fn is_alive(pid: u32, start_time: Option<u64>) -> bool {
    match (process_start_time(pid), start_time) {
        (Some(now), Some(then)) => now == then,
        // Without a recorded start time, an existing pid is assumed to be the run.
        (Some(_), None) => true,
        (None, _) => false,
    }
}

fn kill(pid: u32, group: bool) -> Result<(), String> {
    let raw = i32::try_from(pid).map_err(|_| format!("pid {pid} out of range"))?;
    let Some(p) = rustix::process::Pid::from_raw(raw) else {
        return Err(format!("pid {pid} is not a process"));
    };
    let r = if group {
        rustix::process::kill_process_group(p, rustix::process::Signal::KILL)
    } else {
        rustix::process::kill_process(p, rustix::process::Signal::KILL)
    };
    r.map_err(|e| format!("killing {pid}: {e}"))
}

fn remove_path(path: &Path, report: &mut GcReport, mode: GcMode) {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(_) => return,
    };
    if mode == GcMode::DryRun {
        report.removed.push(path.to_path_buf());
        return;
    }
    let r = if meta.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    };
    match r {
        Ok(()) => report.removed.push(path.to_path_buf()),
        Err(e) => report
            .problems
            .push(format!("removing {}: {e}", path.display())),
    }
}

/// Clean up after the runs of `results_dir` that are no longer alive.
pub fn gc(results_dir: &Path, mode: GcMode) -> Result<GcReport, GcError> {
    let dir = registry_dir(results_dir);
    let mut report = GcReport::default();
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(report),
        Err(source) => {
            return Err(GcError {
                what: "reading",
                path: dir,
                source,
            })
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    for file in files {
        let record: RunRecord = match fs::read_to_string(&file)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
        {
            Ok(r) => r,
            Err(e) => {
                report
                    .problems
                    .push(format!("{}: unreadable entry: {e}", file.display()));
                continue;
            }
        };
        if is_alive(record.pid, record.pid_start_time) {
            report.live_runs.push(record.job_id);
            continue;
        }
        for res in &record.resources {
            match res {
                Resource::Process {
                    pid,
                    start_time,
                    group,
                } => {
                    // Only a process whose start time still matches is ours.
                    let ours = start_time.is_some() && process_start_time(*pid) == *start_time;
                    if !ours {
                        continue;
                    }
                    if mode == GcMode::DryRun {
                        report.killed.push(*pid);
                    } else {
                        match kill(*pid, *group) {
                            Ok(()) => report.killed.push(*pid),
                            Err(e) => report.problems.push(e),
                        }
                    }
                }
                Resource::Socket { path } | Resource::Dir { path } => {
                    remove_path(path, &mut report, mode);
                }
            }
        }
        remove_path(&record.scratch_dir, &mut report, mode);
        if mode == GcMode::Collect {
            if let Err(e) = fs::remove_file(&file) {
                report
                    .problems
                    .push(format!("removing {}: {e}", file.display()));
            }
        }
        report.stale_runs.push(record.job_id);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_start_time_is_readable() {
        assert!(process_start_time(std::process::id()).is_some());
        assert!(is_alive(
            std::process::id(),
            process_start_time(std::process::id())
        ));
    }
}
