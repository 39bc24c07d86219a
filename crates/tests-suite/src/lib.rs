//! `tests_suite`: the kvmtest test catalogue, the runner, results and housekeeping.
//!
//! What it is: test types registered by their `type` name ([`Registry`], [`TestSpec`]); a
//! runner ([`run`]) that expands a [`params::Config`], selects a [`Shard`], runs each variant's
//! test with pre/post-processing on `--jobs N` workers and writes `results/<job-id>/`
//! (`results.json`, `junit.xml`, `events.jsonl`, per-test directories); `kvmtest.toml`
//! [`Settings`]; `gc` for what interrupted runs left; and the clap structs of
//! `kvmtest run | merge | gc` ([`cli`]).
//!
//! What it is not: a VM layer. Tests reach VMs only through the [`VmEnv`] / [`GuestVm`]
//! traits; [`vm_env`] implements them with the `vm` crate (real QEMU guests, handed to the
//! runner as [`VmLayerFactory`]), and [`NoVmEnv`] answers "VM layer not available in this
//! build" for runs that must not start guests.
//!
//! ```
//! use tests_suite::{run, ProgressMode, RunOptions, VerdictKind};
//!
//! let dir = tempfile::tempdir()?;
//! let mut p = params::Parser::new(params::ParserOptions::default());
//! p.parse_str("type = noop\nvariants:\n    - a:\n    - b:\n        noop_verdict = skip\n")?;
//! let config = p.finish();
//! let mut options = RunOptions::new(dir.path());
//! options.progress = ProgressMode::Quiet;
//! let summary = run(&config, &options)?;
//! assert_eq!(summary.report.counts.pass, 1);
//! assert_eq!(summary.report.tests[1].verdict, VerdictKind::Skip);
//! assert!(summary.job_dir.join("junit.xml").is_file());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod catalogue;
pub mod cli;
pub mod command;
pub mod env;
pub mod error;
pub mod fsutil;
pub mod future;
pub mod gc;
pub mod lint;
pub mod merge;
pub mod progress;
pub mod registry;
pub mod report;
pub mod results;
pub mod runner;
pub mod settings;
pub mod shell;
pub mod state;
pub mod time;
pub mod trace;
pub mod verdict;
pub mod vm_env;

pub use cli::{
    cli_catalogue, cli_gc, cli_lint, cli_merge, cli_report, cli_run, ConfigArgs, GcArgs, LintArgs,
    MergeArgs, ReportArgs, RunArgs,
};
pub use env::{
    EnvError, EnvFactory, GuestVm, Hotplugged, LoginVia, MigrationMode, MigrationOutcome,
    MigrationProtocol, MigrationRequest, NetRemote, NoVmEnv, NoVmFactory, RebootMethod,
    RemoteHosts, ShutdownMethod, Teardown, VmEnv, VmStart, WorkerSlot, VM_UNAVAILABLE,
};
pub use error::error_chain;
pub use future::BoxFuture;
pub use lint::{lint, LintReport, UnreadKey};
pub use progress::ProgressMode;
pub use registry::{read_params, Registry, TestContext, TestFn, TestLog, TestSpec};
pub use results::{RunReport, TestRecord};
pub use runner::{run, RunError, RunOptions, RunSummary, Shard};
pub use settings::{Settings, SettingsError};
pub use shell::{RemoteShell, ShellConfig, ShellError, TcpShell};
pub use spec::KeyDoc;
pub use verdict::{Counts, ExitStatus, TestError, TestResult, Verdict, VerdictKind};
pub use vm_env::{VmLayerEnv, VmLayerFactory};
