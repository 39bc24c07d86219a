//! The command-line surface for `kvmtest run | merge | gc | tests`: clap argument structs the
//! `kvmtest` binary flattens, and one function per verb that prints and returns the
//! [`ExitStatus`].

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use clap::Args;
use params::{Config, Parser, ParserOptions};

use crate::catalogue;
use crate::gc::{gc, GcMode};
use crate::progress::ProgressMode;
use crate::runner::{self, RunError, RunOptions, ShardArg};
use crate::settings::Settings;
use crate::verdict::ExitStatus;

/// Settings flags shared by every verb.
#[derive(Args, Debug, Clone, Default)]
pub struct SettingsArgs {
    /// Read settings from this file instead of searching for kvmtest.toml.
    #[arg(long, value_name = "FILE")]
    pub settings: Option<PathBuf>,
    /// Where job directories go (overrides `results_dir`).
    #[arg(long, value_name = "DIR")]
    pub results_dir: Option<PathBuf>,
}

impl SettingsArgs {
    fn load(&self) -> Result<Settings, ExitStatus> {
        let loaded = match &self.settings {
            Some(p) => Settings::load(p),
            None => {
                let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
                Settings::discover(&cwd)
            }
        };
        let mut s = loaded.map_err(|e| {
            eprintln!("error: {}", crate::error::error_chain(&e));
            ExitStatus::Usage
        })?;
        if let Some(d) = &self.results_dir {
            s.results_dir = d.clone();
        }
        Ok(s)
    }
}

/// A config and what the command line adds to it: `CFG [STATEMENT…] [--only F]… [--no F]…
/// [--assign K=V]…`, shared by `run` and `lint`.
#[derive(Args, Debug, Clone)]
pub struct ConfigArgs {
    /// The config file (looked up in `config_dirs` when relative and not found).
    pub cfg: PathBuf,
    /// Extra statements parsed after the file, in order (e.g. "only qcow2").
    pub statements: Vec<String>,
    /// Append `only F` (repeatable).
    #[arg(long = "only", value_name = "F")]
    pub only: Vec<String>,
    /// Append `no F` (repeatable).
    #[arg(long = "no", value_name = "F")]
    pub no: Vec<String>,
    /// Append `K = V` (repeatable).
    #[arg(long = "assign", value_name = "K=V")]
    pub assign: Vec<String>,
}

/// `kvmtest run CFG [STATEMENT…]`: run the tests of a config.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// The config and its command-line additions.
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Parallel workers (overrides `jobs`).
    #[arg(long, short = 'j', value_name = "N")]
    pub jobs: Option<NonZeroUsize>,
    /// Run only shard K of N: variant i (0-based) runs when i % N == K-1. `auto` reads K and
    /// N from the engine that started kvmtest: a Slurm job array (SLURM_ARRAY_TASK_*), GitLab
    /// CI (CI_NODE_INDEX/TOTAL), CircleCI, Buildkite; `auto/N` gives N where the engine does
    /// not (a Kubernetes Indexed Job's JOB_COMPLETION_INDEX) and is checked where it does.
    #[arg(long, value_name = "K/N|auto[/N]")]
    pub shard: Option<ShardArg>,
    /// Run a test that fails or errors again, up to N more times, with the worker's VMs
    /// killed first. One that then passes is reported as passed and FLAKY (results.json
    /// `retried`, junit `flakyFailure`); the failed attempts' files stay in `attempt-K/`.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub retries: u32,
    /// The QEMU binary, set as `qemu_binary` in every variant. Precedence: this flag, then
    /// `qemu_binary` in kvmtest.toml, then $KVMTEST_QEMU, then qemu-system-x86_64 on PATH.
    #[arg(long, value_name = "PATH")]
    pub qemu: Option<PathBuf>,
    /// The guest image cache (overrides `guest_cache`).
    #[arg(long, value_name = "DIR")]
    pub guest_cache: Option<PathBuf>,
    /// Extra directories to find CFG in (added before `config_dirs`).
    #[arg(long = "config-dir", value_name = "DIR")]
    pub config_dirs: Vec<PathBuf>,
    /// The job id (default: start time and pid).
    #[arg(long, value_name = "ID")]
    pub job_id: Option<String>,
    /// Progress display.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
    /// Print the selected variants (index and name) and exit without running.
    #[arg(long)]
    pub list: bool,
    /// Settings.
    #[command(flatten)]
    pub settings: SettingsArgs,
}

/// `kvmtest merge DIR…`: combine job directories (e.g. shards) into one report.
#[derive(Args, Debug, Clone)]
pub struct MergeArgs {
    /// The job directories to merge.
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
    /// The merged job's id (default: a new one).
    #[arg(long, value_name = "ID")]
    pub job_id: Option<String>,
    /// Merge even when some shards are missing (they are listed in results.json's
    /// `missing_shards`); without it, a missing shard is an error.
    #[arg(long)]
    pub partial: bool,
    /// Settings.
    #[command(flatten)]
    pub settings: SettingsArgs,
}

/// `kvmtest report DIR…`: (re)build `index.html` of job directories.
#[derive(Args, Debug, Clone)]
pub struct ReportArgs {
    /// Job directories (a run's, a shard's or a merge's: each has a results.json).
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
}

/// `kvmtest report`: writes each directory's `index.html` and prints its path.
pub fn cli_report(args: &ReportArgs) -> ExitStatus {
    let mut status = ExitStatus::Success;
    for dir in &args.dirs {
        match crate::report::rebuild(dir) {
            Ok(path) => println!("report: {}", path.display()),
            Err(e) => {
                eprintln!("error: {}", crate::error::error_chain(&e));
                status = ExitStatus::Usage;
            }
        }
    }
    status
}

/// `kvmtest gc`: clean up after interrupted runs.
#[derive(Args, Debug, Clone)]
pub struct GcArgs {
    /// Only print what would be removed.
    #[arg(long)]
    pub dry_run: bool,
    /// Settings.
    #[command(flatten)]
    pub settings: SettingsArgs,
}

/// `kvmtest lint CFG [STATEMENT…]`: the keys of a config that kvmtest does not read.
#[derive(Args, Debug, Clone)]
pub struct LintArgs {
    /// The config and its command-line additions.
    #[command(flatten)]
    pub config: ConfigArgs,
    /// One JSON document instead of text.
    #[arg(long)]
    pub json: bool,
    /// Settings.
    #[command(flatten)]
    pub settings: SettingsArgs,
}

fn parse_config(cfg: &Path, args: &ConfigArgs) -> Result<Config, ExitStatus> {
    let fail = |e: params::Error| {
        eprint!("{}", e.render_as(color_stderr()));
        ExitStatus::Usage
    };
    let mut p = Parser::new(ParserOptions::default());
    p.parse_file(cfg).map_err(fail)?;
    for s in &args.statements {
        p.parse_str(s).map_err(fail)?;
    }
    for f in &args.only {
        p.only_filter(f).map_err(fail)?;
    }
    for f in &args.no {
        p.no_filter(f).map_err(fail)?;
    }
    for kv in &args.assign {
        let Some((k, v)) = kv.split_once('=') else {
            eprintln!("error: --assign expects K=V, got `{kv}`");
            return Err(ExitStatus::Usage);
        };
        p.assign(k.trim(), v.trim()).map_err(fail)?;
    }
    Ok(p.finish())
}

/// `kvmtest run`.
pub fn cli_run(args: &RunArgs) -> ExitStatus {
    match cli_run_inner(args) {
        Ok(s) | Err(s) => s,
    }
}

fn cli_run_inner(args: &RunArgs) -> Result<ExitStatus, ExitStatus> {
    let mut settings = args.settings.load()?;
    let mut dirs = args.config_dirs.clone();
    dirs.append(&mut settings.config_dirs);
    settings.config_dirs = dirs;
    let cfg = settings.find_config(&args.config.cfg);
    let config = parse_config(&cfg, &args.config)?;
    let shard = match args.shard.map(|s| s.resolve_from_env()).transpose() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return Err(ExitStatus::Usage);
        }
    };
    if let Some(s) = shard
        .as_ref()
        .filter(|_| matches!(args.shard, Some(ShardArg::Auto { .. })))
    {
        eprintln!("kvmtest: shard {} from {}", s.shard, s.source);
        for other in &s.ignored {
            eprintln!("kvmtest: not used for the shard (an outer engine's): {other}");
        }
    }
    if args.list {
        let mut index = 0usize;
        let r = config.for_each(|v| {
            if shard.as_ref().is_none_or(|s| s.shard.selects(index)) {
                use std::io::Write;
                // a closed pipe ends the listing quietly
                if writeln!(std::io::stdout().lock(), "{index} {}", v.name()).is_err() {
                    return Ok(std::ops::ControlFlow::Break(()));
                }
            }
            index += 1;
            Ok(std::ops::ControlFlow::Continue(()))
        });
        if let Err(e) = r {
            eprint!("{}", e.render_as(color_stderr()));
            return Err(ExitStatus::Usage);
        }
        return Ok(ExitStatus::Success);
    }
    let mut options = RunOptions::new(settings.results_dir.clone());
    options.job_id = args.job_id.clone();
    options.jobs = args.jobs.map_or(settings.jobs, NonZeroUsize::get);
    options.shard = shard.as_ref().map(|s| s.shard);
    options.shard_source = shard.as_ref().map(|s| s.source.clone());
    options.shard_tag = shard.and_then(|s| s.tag);
    options.retries = args.retries;
    // `--qemu` > `qemu_binary` (settings); with neither, the VM layer takes the default of every
    // kvmtest layer, `$KVMTEST_QEMU` else `qemu-system-x86_64` (`qemu_cmd::probe::default_binary`).
    options.qemu_binary = args.qemu.clone().or(settings.qemu_binary);
    options.guest_cache = args.guest_cache.clone().or(settings.guest_cache);
    options.progress = args.progress;
    options.handle_signals = true;
    options.env_factory = std::sync::Arc::new(crate::vm_env::VmLayerFactory::new());
    match runner::run(&config, &options) {
        Ok(summary) => {
            for q in &summary.report.qemu {
                println!("qemu: {q}");
            }
            println!("results: {}", summary.job_dir.display());
            println!(
                "report: {}",
                summary.job_dir.join(crate::report::INDEX).display()
            );
            Ok(summary.exit)
        }
        Err(e) => {
            match &e {
                RunError::Config(c) => eprint!("{}", c.render_as(color_stderr())),
                other => eprintln!("error: {}", crate::error::error_chain(other)),
            }
            Err(match e {
                RunError::Config(_) | RunError::JobExists(_) => ExitStatus::Usage,
                _ => ExitStatus::TestsFailed,
            })
        }
    }
}

/// `kvmtest merge`.
pub fn cli_merge(args: &MergeArgs) -> ExitStatus {
    let settings = match args.settings.load() {
        Ok(s) => s,
        Err(s) => return s,
    };
    let job_id = args.job_id.clone().unwrap_or_else(|| {
        format!(
            "{}-merged",
            crate::time::job_id(std::time::SystemTime::now())
        )
    });
    match crate::merge::merge(&args.dirs, &settings.results_dir, &job_id, args.partial) {
        Ok(report) => {
            println!(
                "merged {} runs, {} tests: {}",
                report.merged_from.len(),
                report.counts.total(),
                report.counts
            );
            if !report.missing_shards.is_empty() {
                println!(
                    "missing shards (--partial): {}",
                    report.missing_shards.join(", ")
                );
            }
            println!("results: {}", settings.results_dir.join(&job_id).display());
            println!(
                "report: {}",
                settings
                    .results_dir
                    .join(&job_id)
                    .join(crate::report::INDEX)
                    .display()
            );
            if report.interrupted {
                ExitStatus::Interrupted
            } else if report.counts.all_ok() {
                ExitStatus::Success
            } else {
                ExitStatus::TestsFailed
            }
        }
        Err(e) => {
            eprintln!("error: {}", crate::error::error_chain(&e));
            ExitStatus::Usage
        }
    }
}

/// `kvmtest gc`.
pub fn cli_gc(args: &GcArgs) -> ExitStatus {
    let settings = match args.settings.load() {
        Ok(s) => s,
        Err(s) => return s,
    };
    let mode = if args.dry_run {
        GcMode::DryRun
    } else {
        GcMode::Collect
    };
    match gc(&settings.results_dir, mode) {
        Ok(r) => {
            let verb = if args.dry_run {
                "would clean"
            } else {
                "cleaned"
            };
            for id in &r.stale_runs {
                println!("{verb} run {id}");
            }
            for pid in &r.killed {
                println!("  killed process {pid}");
            }
            for p in &r.removed {
                println!("  removed {}", p.display());
            }
            for id in &r.live_runs {
                println!("run {id} is still running: left alone");
            }
            for p in &r.problems {
                eprintln!("warning: {p}");
            }
            if r.stale_runs.is_empty() {
                println!("nothing to clean");
            }
            ExitStatus::Success
        }
        Err(e) => {
            eprintln!("error: {}", crate::error::error_chain(&e));
            ExitStatus::TestsFailed
        }
    }
}

/// `kvmtest lint`: exit 0 when kvmtest reads every key, 1 when some key is read by nothing
/// (listed with where it was set and, for a near miss, the key it likely means), 2 for a bad
/// config or usage.
pub fn cli_lint(args: &LintArgs) -> ExitStatus {
    let run = || -> Result<ExitStatus, ExitStatus> {
        let settings = args.settings.load()?;
        let cfg = settings.find_config(&args.config.cfg);
        let config = parse_config(&cfg, &args.config)?;
        let report = crate::lint::lint(&config, &catalogue::builtin()).map_err(|e| {
            eprint!("{}", e.render_as(color_stderr()));
            ExitStatus::Usage
        })?;
        let text = if args.json {
            serde_json::to_string_pretty(&report).unwrap_or_default() + "\n"
        } else {
            report.render()
        };
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            Err(e) => {
                eprintln!("error: writing the report: {e}");
                return Err(ExitStatus::Usage);
            }
        }
        Ok(
            if report.unread.is_empty() && report.unknown_types.is_empty() {
                ExitStatus::Success
            } else {
                ExitStatus::TestsFailed
            },
        )
    };
    match run() {
        Ok(s) | Err(s) => s,
    }
}

/// `kvmtest tests`: print the catalogue with each type's parameters.
pub fn cli_catalogue() -> ExitStatus {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let mut print = || -> std::io::Result<()> {
        for spec in catalogue::builtin().specs() {
            writeln!(out, "{}: {}", spec.name, spec.about)?;
            for p in spec.params {
                let note = match (p.required, p.default) {
                    (true, _) => " (required)".to_string(),
                    (false, Some(d)) => format!(" (default {d:?})"),
                    (false, None) => String::new(),
                };
                writeln!(out, "    {}{note}: {}", p.key, p.meaning)?;
            }
        }
        out.flush()
    };
    match print() {
        // a closed pipe (`kvmtest tests | head`) is not an error
        Ok(()) => ExitStatus::Success,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitStatus::Success,
        Err(e) => {
            eprintln!("error: writing the catalogue: {e}");
            ExitStatus::TestsFailed
        }
    }
}

/// Whether diagnostics on stderr get colours: stderr is a terminal and `NO_COLOR` is unset or
/// empty (<https://no-color.org>).
pub fn color_stderr() -> bool {
    use std::io::IsTerminal;
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
}
