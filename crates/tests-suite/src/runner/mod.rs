//! The runner: expand a config, select a shard, run each variant's test with pre- and
//! post-processing on `--jobs N` workers, and write the results.
//!
//! Order of work for one variant (one worker, one [`VmEnv`] kept across its tests so a VM
//! can be reused):
//! 1. its directory `tests/<index>-<shortname>/` with `params.json` and `test.log`;
//! 2. `type` selects the test; its required parameters are checked (missing → error);
//! 3. pre-processing: for each VM of `vms`, images with `create_image = yes` are prepared,
//!    `restart_vm = yes` destroys a running VM first, and `start_vm = yes` starts it (the
//!    environment reuses a running VM whose command line is identical);
//! 4. the test, raced against the cancellation token;
//! 5. post-processing with the variant's params — or their `on_error` view when the test
//!    failed or errored: `kill_vm` (gracefully with `kill_vm_gracefully`, `kill_vm_timeout`),
//!    `kill_unresponsive_vms`, `remove_image`. After a cancellation every VM is killed.
//! 6. with `--retries N`, a test that failed or errored is run again (steps 1–5, at most N
//!    more times) after the worker's VMs are killed; the failed attempt's files move to
//!    `attempt-K/` in its directory and its verdict to the record's `retried` list.
//!
//! Sharding rule: variant `i` (0-based, in the config's enumeration order, which is
//! deterministic) belongs to shard `K/N` (1-based `K`) when `i % N == K - 1`. Every variant is
//! in exactly one shard, and every machine computes the same split.

use std::collections::VecDeque;
use std::fmt;
use std::fs;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use params::{Config, Params};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::env::{
    EnvError, EnvFactory, NetRemote, NoVmFactory, RemoteHosts, Teardown, VmEnv, WorkerSlot,
};
use crate::gc::{process_start_time, ResourceRecorder, RunRecord};
use crate::progress::{Progress, ProgressMode};
use crate::registry::Registry;
use crate::results::{self, EventLog, ResultsError, RunReport, TestRecord};
use crate::state::{StateError, StateStore};
use crate::verdict::{Counts, ExitStatus, Verdict};

mod one;
mod screendump;
mod shard;

use one::{record_without_running, run_one};
pub use shard::{shard_indices, ResolvedShard, Shard, ShardArg, ShardError};

/// Why a run could not start or finish writing its results.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The config failed while its variants were enumerated.
    #[error("expanding the config")]
    Config(#[source] params::Error),
    /// The job directory already exists.
    #[error("job directory {0} already exists")]
    JobExists(PathBuf),
    /// A directory could not be created.
    #[error("creating {path}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Result files.
    #[error(transparent)]
    Results(#[from] ResultsError),
    /// The state file.
    #[error(transparent)]
    State(#[from] StateError),
    /// The run registry.
    #[error(transparent)]
    Registry(#[from] crate::gc::GcError),
    /// The async runtime could not start.
    #[error("starting the async runtime")]
    Runtime(#[source] std::io::Error),
}

/// How to run.
#[derive(Clone)]
pub struct RunOptions {
    /// Where job directories go.
    pub results_dir: PathBuf,
    /// The job id (default: start time and pid).
    pub job_id: Option<String>,
    /// Parallel workers (at least 1).
    pub jobs: usize,
    /// Run only this shard.
    pub shard: Option<Shard>,
    /// Where the shard came from (`--shard 2/4`, or an engine's variables with `--shard
    /// auto`), recorded in results.json.
    pub shard_source: Option<String>,
    /// Joins the default job ids of one submission's shards (`slurm17`: see
    /// [`ResolvedShard::tag`]).
    pub shard_tag: Option<String>,
    /// How many times a test that fails or errors is run again (`--retries`), each time
    /// with the worker's VMs destroyed first. One that then passes counts as passed and
    /// *flaky*; the failed attempts' files stay in `attempt-N/` of its directory.
    pub retries: u32,
    /// Sets `qemu_binary` in every variant (overrides the config, like avocado's
    /// `--vt-qemu-bin`) and is the binary the VM layer runs. `None`: the VM layer's default,
    /// `$KVMTEST_QEMU`, else `qemu-system-x86_64` on `PATH`.
    pub qemu_binary: Option<PathBuf>,
    /// The guest image cache, for the environments.
    pub guest_cache: Option<PathBuf>,
    /// Progress display.
    pub progress: ProgressMode,
    /// The test types.
    pub registry: Registry,
    /// Builds each worker's VM environment.
    pub env_factory: Arc<dyn EnvFactory>,
    /// Hosts outside the VMs.
    pub remote: Arc<dyn RemoteHosts>,
    /// Install SIGINT/SIGTERM handlers that cancel the run.
    pub handle_signals: bool,
    /// Cancels the run when fired (the signal handlers fire it too).
    pub cancel: CancellationToken,
}

impl fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunOptions")
            .field("results_dir", &self.results_dir)
            .field("job_id", &self.job_id)
            .field("jobs", &self.jobs)
            .field("shard", &self.shard)
            .field("shard_source", &self.shard_source)
            .field("shard_tag", &self.shard_tag)
            .finish_non_exhaustive()
    }
}

impl RunOptions {
    /// Defaults: one job, no shard, the built-in catalogue, no VM layer, the real network, no
    /// signal handlers, automatic progress.
    pub fn new(results_dir: impl Into<PathBuf>) -> Self {
        RunOptions {
            results_dir: results_dir.into(),
            job_id: None,
            jobs: 1,
            shard: None,
            shard_source: None,
            shard_tag: None,
            retries: 0,
            qemu_binary: None,
            guest_cache: None,
            progress: ProgressMode::Auto,
            registry: crate::catalogue::builtin(),
            env_factory: Arc::new(NoVmFactory),
            remote: Arc::new(NetRemote),
            handle_signals: false,
            cancel: CancellationToken::new(),
        }
    }
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// The job directory.
    pub job_dir: PathBuf,
    /// The report written to `results.json`.
    pub report: RunReport,
    /// The exit status it maps to.
    pub exit: ExitStatus,
}

/// One selected variant.
struct Planned {
    index: usize,
    name: String,
    shortname: String,
    params: Params,
}

/// What a config's enumeration gives the runner.
struct Plan {
    /// The variants of the shard.
    planned: Vec<Planned>,
    /// Variants in the whole enumeration.
    total: usize,
    /// [`RunReport::variants_digest`]: of every variant's name, shard or not.
    digest: String,
}

/// Enumerate `config` and keep the variants of `shard`.
fn plan(
    config: &Config,
    shard: Option<Shard>,
    qemu_binary: Option<&Path>,
) -> Result<Plan, RunError> {
    let mut index = 0usize;
    let mut out = Vec::new();
    let mut digest = results::VariantsDigest::default();
    config
        .for_each(|v| {
            let name = v.name();
            digest.add(&name);
            if shard.is_none_or(|s| s.selects(index)) {
                let mut params = v.params().clone();
                if let Some(q) = qemu_binary {
                    params.insert("qemu_binary", q.to_string_lossy().into_owned());
                }
                out.push(Planned {
                    index,
                    name,
                    shortname: v.shortname(),
                    params,
                });
            }
            index += 1;
            Ok(ControlFlow::Continue(()))
        })
        .map_err(RunError::Config)?;
    Ok(Plan {
        planned: out,
        total: index,
        digest: digest.finish(),
    })
}

/// This host's name, for the report.
fn host_name() -> Option<String> {
    let name = fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_owned())
}

/// The job id of a run not given one: its start time and pid, and for a shard the shard and
/// what ties its submission's shards together (`20261207-044301-1f2a3b-slurm17-shard-2-of-4`),
/// so that the shards of one submission sort together and one glob names them.
fn default_job_id(started_at: SystemTime, options: &RunOptions) -> String {
    let mut id = crate::time::job_id(started_at);
    if let Some(s) = options.shard {
        if let Some(tag) = &options.shard_tag {
            id.push('-');
            id.push_str(tag);
        }
        id.push_str(&format!("-shard-{}-of-{}", s.index(), s.count()));
    }
    id
}

/// What the workers share.
struct Shared {
    registry: Registry,
    remote: Arc<dyn RemoteHosts>,
    queue: Mutex<VecDeque<Planned>>,
    tally: Mutex<Tally>,
    events: EventLog,
    state: StateStore,
    cancel: CancellationToken,
    job_dir: PathBuf,
    retries: u32,
}

struct Tally {
    counts: Counts,
    records: Vec<TestRecord>,
    progress: Progress,
}

/// Run every selected variant of `config`. Blocks until done; builds its own async runtime,
/// so call it from synchronous code (the CLI). The summary's `exit` is the process exit
/// status.
pub fn run(config: &Config, options: &RunOptions) -> Result<RunSummary, RunError> {
    let Plan {
        planned,
        total,
        digest,
    } = plan(config, options.shard, options.qemu_binary.as_deref())?;
    let started_at = SystemTime::now();
    let job_id = options
        .job_id
        .clone()
        .unwrap_or_else(|| default_job_id(started_at, options));
    // Absolute, because tests run commands inside their own directory: a relative path
    // handed to such a command would be resolved twice.
    let results_dir = std::path::absolute(&options.results_dir).map_err(|source| RunError::Io {
        path: options.results_dir.clone(),
        source,
    })?;
    let job_dir = results_dir.join(&job_id);
    if job_dir.exists() {
        return Err(RunError::JobExists(job_dir));
    }
    let mkdir = |p: &Path| {
        fs::create_dir_all(p).map_err(|source| RunError::Io {
            path: p.to_path_buf(),
            source,
        })
    };
    mkdir(&job_dir.join("tests"))?;
    // Unique even when two runs share a job id (two runs started in the same second with
    // different results directories): they must never share images or sockets.
    let scratch_dir = tempfile::Builder::new()
        .prefix(&format!("kvmtest-{job_id}."))
        .tempdir()
        .map_err(|source| RunError::Io {
            path: std::env::temp_dir(),
            source,
        })?
        .keep();
    let recorder = ResourceRecorder::create(
        &results_dir,
        RunRecord {
            job_id: job_id.clone(),
            pid: std::process::id(),
            pid_start_time: process_start_time(std::process::id()),
            started: crate::time::rfc3339(started_at),
            job_dir: job_dir.clone(),
            scratch_dir: scratch_dir.clone(),
            resources: Vec::new(),
        },
    )?;
    results::update_latest(&results_dir, &job_id)?;
    let events = EventLog::create(&job_dir.join("events.jsonl"))?;
    events.emit(
        "run_started",
        json!({"job_id": job_id, "variants_total": total, "variants_selected": planned.len(),
               "shard": options.shard.map(|s| s.to_string()),
               "shard_source": options.shard.and(options.shard_source.clone()), "jobs": options.jobs,
               "retries": options.retries}),
    );
    let state = StateStore::create(&job_dir.join("state.json"))?;
    let selected = planned.len();
    let jobs = options.jobs.max(1);
    let shared = Arc::new(Shared {
        registry: options.registry.clone(),
        remote: options.remote.clone(),
        queue: Mutex::new(planned.into()),
        tally: Mutex::new(Tally {
            counts: Counts::default(),
            records: Vec::new(),
            progress: Progress::new(options.progress, selected),
        }),
        events,
        state,
        cancel: options.cancel.clone(),
        job_dir: job_dir.clone(),
        retries: options.retries,
    });

    let job_span = tracing::info_span!("job", id = %job_id);
    tracing::info!(parent: &job_span, variants = selected, jobs, "run started");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(jobs.clamp(2, 16))
        .enable_all()
        .build()
        .map_err(RunError::Runtime)?;
    runtime.block_on(async {
        if options.handle_signals {
            // Registered before any test starts, so no SIGINT can kill the run uncleanly.
            match Signals::register() {
                Ok(signals) => {
                    tokio::spawn(signals.watch(options.cancel.clone()));
                }
                Err(e) => eprintln!("kvmtest: cannot handle signals: {e}"),
            }
        }
        let mut handles = Vec::new();
        for index in 0..jobs {
            let slot = WorkerSlot {
                index,
                scratch_dir: scratch_dir.join(format!("worker-{index}")),
                qemu_binary: options.qemu_binary.clone(),
                guest_cache: options.guest_cache.clone(),
                recorder: recorder.clone(),
            };
            let env = fs::create_dir_all(&slot.scratch_dir)
                .map_err(|e| EnvError::Unsupported {
                    what: format!("scratch directory {}: {e}", slot.scratch_dir.display()),
                })
                .and_then(|()| options.env_factory.create(&slot));
            let span = tracing::info_span!(parent: &job_span, "worker", n = index);
            handles.push(tokio::spawn(
                worker(shared.clone(), env, index).instrument(span),
            ));
        }
        for h in handles {
            let _ = h.await;
        }
    });
    // Dropping the runtime would wait for the signal task; shut it down instead.
    runtime.shutdown_background();

    let interrupted = shared.cancel.is_cancelled();
    let (counts, mut records) = match shared.tally.lock() {
        Ok(mut t) => {
            let counts = t.counts;
            t.progress.finish(&counts, interrupted);
            (counts, std::mem::take(&mut t.records))
        }
        Err(_) => (Counts::default(), Vec::new()),
    };
    records.sort_by_key(|r| r.index);
    let mut report = RunReport {
        kvmtest_version: env!("CARGO_PKG_VERSION").into(),
        job_id: job_id.clone(),
        started: crate::time::rfc3339(started_at),
        finished: crate::time::now_rfc3339(),
        interrupted,
        shard: options.shard.map(|s| s.to_string()),
        shard_source: options.shard.and(options.shard_source.clone()),
        variants_digest: Some(digest),
        jobs,
        variants_total: total,
        variants_selected: selected,
        counts,
        tests: records,
        merged_from: Vec::new(),
        missing_shards: Vec::new(),
        qemu: Vec::new(),
        hosts: host_name().into_iter().collect(),
    };
    report.collect_qemu();
    report.write(&job_dir)?;
    crate::report::write_index(&job_dir, &report)?;
    shared.state.save()?;
    shared.events.emit(
        "run_finished",
        json!({"job_id": job_id, "counts": counts, "interrupted": interrupted}),
    );
    let _ = fs::remove_dir_all(&scratch_dir);
    recorder.remove()?;
    let exit = if interrupted {
        ExitStatus::Interrupted
    } else if counts.all_ok() {
        ExitStatus::Success
    } else {
        ExitStatus::TestsFailed
    };
    Ok(RunSummary {
        job_dir,
        report,
        exit,
    })
}

/// SIGINT and SIGTERM listeners.
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Signals {
    fn register() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
        })
    }

    async fn next(&mut self) {
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
    }

    /// The first signal cancels the run; a second one exits at once with 130.
    async fn watch(mut self, cancel: CancellationToken) {
        self.next().await;
        eprintln!(
            "kvmtest: interrupted; stopping the current tests and writing results \
             (interrupt again to quit at once)"
        );
        cancel.cancel();
        self.next().await;
        std::process::exit(i32::from(ExitStatus::Interrupted.code()));
    }
}

async fn worker(shared: Arc<Shared>, env: Result<Arc<dyn VmEnv>, EnvError>, index: usize) {
    loop {
        if shared.cancel.is_cancelled() {
            break;
        }
        let next = shared.queue.lock().ok().and_then(|mut q| q.pop_front());
        let Some(planned) = next else {
            break;
        };
        let mut record = match &env {
            Ok(env) => run_one(&shared, env, planned).await,
            Err(e) => {
                // No environment: every variant of this worker is an error, with the reason.
                let msg = crate::error_chain(e);
                record_without_running(&shared, planned, Verdict::Error(msg))
            }
        };
        record.worker = Some(format!("w{index}"));
        if let Ok(mut t) = shared.tally.lock() {
            t.counts.add(record.verdict);
            if record.flaky() {
                t.counts.flaky += 1;
            }
            let counts = t.counts;
            t.progress.finished(&record, &counts);
            t.records.push(record);
        }
        let _ = shared.state.save();
    }
    if let Ok(env) = &env {
        let how = if shared.cancel.is_cancelled() {
            Teardown::Kill
        } else {
            Teardown::Graceful
        };
        for name in env.vm_names() {
            let _ = env.destroy_vm(&name, how).await;
        }
    }
}
