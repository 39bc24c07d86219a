//! `kvmtest`: the command-line front end.
//!
//! Verbs: `list` (variant names), `show` (full dicts; `--json` is the reference dump format),
//! `explain` (why a variant exists and where each key's value came from).

use std::io::{self, Write};
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser as ClapParser, Subcommand};
use params::{Config, Parser, ParserOptions};
use tests_suite::error_chain;

mod explain;

/// The default for `--threads`: the number of CPUs.
fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// mimalloc: the enumeration allocates and frees many small strings per variant; glibc's
/// allocator spends a large share of `show --count` in `free`.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// QEMU/KVM virtualization tests driven by Cartesian configs.
#[derive(ClapParser, Debug)]
#[command(name = "kvmtest", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// More log on stderr: -v info (VM stages, test steps), -vv debug (QMP commands and
    /// replies, guest commands), -vvv trace. `KVMTEST_LOG` takes a filter instead (e.g.
    /// `KVMTEST_LOG=kvmtest::qmp=debug`). Each test's debug.log has its debug events whatever
    /// this says.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// The format of the log on stderr.
    #[arg(long, value_enum, default_value_t = tests_suite::trace::LogFormat::Text, global = true)]
    log_format: tests_suite::trace::LogFormat,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the tests of a config; results go to results/<job-id>/ (exit 0/1/2/130).
    Run(tests_suite::RunArgs),
    /// Merge result directories (e.g. CI shards) into one report.
    Merge(tests_suite::MergeArgs),
    /// Build the HTML report (index.html) of job directories: summary, sortable table,
    /// timeline, and per test its logs, command lines and screendumps.
    Report(tests_suite::ReportArgs),
    /// Clean up what interrupted runs left: their QEMU processes, sockets, scratch dirs.
    Gc(tests_suite::GcArgs),
    /// List the test types and their parameters.
    Tests,
    /// List the keys of a config that kvmtest does not read (typos get a did-you-mean); exit 1
    /// when there are any.
    Lint(tests_suite::LintArgs),
    /// List the variants of a config (names, or shortnames with --short); the count goes to
    /// stderr.
    List {
        #[command(flatten)]
        cfg: CfgArgs,
        /// Print shortnames instead of full names.
        #[arg(long)]
        short: bool,
    },
    /// Show the full dict of every variant.
    Show {
        #[command(flatten)]
        cfg: CfgArgs,
        /// One JSON object per variant, exactly the reference dump format (keys sorted).
        #[arg(long, conflicts_with = "count")]
        json: bool,
        /// Only count the variants (every dict is still fully built).
        #[arg(long)]
        count: bool,
        /// Threads that build variants for `--json` and `--count`, plus one that walks the
        /// tree when N > 1 (output order and errors are those of one thread);
        /// default: the number of CPUs.
        #[arg(long, value_name = "N")]
        threads: Option<usize>,
    },
    /// Explain the variants FILTER selects: the entries, filters and conditions that made
    /// them, and for each KEY the statements that produced its value.
    Explain {
        /// The config file.
        cfg: PathBuf,
        /// A filter, as after `only` (e.g. `qcow2..smp2`).
        filter: String,
        /// Keys to trace (all keys when none are given).
        keys: Vec<String>,
        /// Stop after this many variants.
        #[arg(long, default_value_t = 5)]
        limit: usize,
    },
    /// Print the QEMU command line of every selected variant (a dry run: nothing is started).
    /// Run-specific parts (socket dir, MACs, ports, UUIDs) are shown as @PLACEHOLDERS@; a
    /// variant this QEMU cannot run shows `# error:` lines naming each bad key and its cfg line.
    Cmdline {
        #[command(flatten)]
        cfg: CfgArgs,
        /// Probe this QEMU binary for its capabilities (cached per binary path, size and mtime).
        /// Default: $KVMTEST_QEMU, else qemu-system-x86_64 on PATH.
        #[arg(long, value_name = "PATH", conflicts_with = "caps")]
        qemu: Option<PathBuf>,
        /// Use a capabilities file (e.g. fixtures/qemu-caps/qemu-10.0.json) instead of probing.
        #[arg(long, value_name = "FIXTURE")]
        caps: Option<PathBuf>,
        /// Threads that build variants and command lines, plus one that walks the tree when
        /// N > 1 (output order is kept);
        /// default: the number of CPUs.
        #[arg(long, value_name = "N")]
        threads: Option<usize>,
    },
}

/// How to read a config: the file, extra statements, filters and assignments.
#[derive(Args, Debug)]
struct CfgArgs {
    /// The config file.
    cfg: PathBuf,
    /// Extra statements parsed after the file, in order (e.g. "only qcow2" "no Windows").
    statements: Vec<String>,
    /// Append `only F` after the statements (repeatable).
    #[arg(long = "only", value_name = "F")]
    only: Vec<String>,
    /// Append `no F` (repeatable).
    #[arg(long = "no", value_name = "F")]
    no: Vec<String>,
    /// Append `K = V` (repeatable).
    #[arg(long = "assign", value_name = "K=V")]
    assign: Vec<String>,
    /// Defaults mode: only the default entry of each block (unless it yields nothing).
    #[arg(long)]
    defaults: bool,
    /// Blocks expanded fully in defaults mode (comma-separated `variants NAME` names).
    #[arg(long, value_name = "A,B", value_delimiter = ',')]
    expand: Vec<String>,
    /// Keep suffixed keys whose value equals the unsuffixed one (the reference CLI's -s).
    #[arg(long)]
    keep_dups: bool,
}

impl CfgArgs {
    fn load(&self) -> Result<Config, Failure> {
        let options = ParserOptions {
            defaults: self.defaults,
            expand_defaults: self
                .expand
                .iter()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            keep_dups: self.keep_dups,
        };
        let mut p = Parser::new(options);
        p.parse_file(&self.cfg)?;
        for s in &self.statements {
            p.parse_str(s)?;
        }
        for f in &self.only {
            p.only_filter(f)?;
        }
        for f in &self.no {
            p.no_filter(f)?;
        }
        for kv in &self.assign {
            let Some((k, v)) = kv.split_once('=') else {
                return Err(Failure::Usage(format!("--assign expects K=V, got `{kv}`")));
            };
            p.assign(k.trim(), v.trim())?;
        }
        Ok(p.finish())
    }
}

/// Why a command failed, mapped to the exit code.
enum Failure {
    Config(params::Error),
    Usage(String),
    Io(io::Error),
}

impl From<params::Error> for Failure {
    fn from(e: params::Error) -> Self {
        Failure::Config(e)
    }
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Failure::Io(e)
    }
}

fn io_err(e: io::Error) -> params::Error {
    params::Error::new(params::ErrorKind::Io, format!("writing output: {e}"))
}

fn run(cli: Cli) -> Result<(), Failure> {
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(1 << 16, stdout.lock());
    match cli.command {
        // Handled in `main`: they print and choose their own exit status.
        Command::Run(_)
        | Command::Merge(_)
        | Command::Report(_)
        | Command::Gc(_)
        | Command::Tests
        | Command::Lint(_) => {}
        Command::List { cfg, short } => {
            let config = cfg.load()?;
            let mut n = 0u64;
            config.for_each(|v| {
                n += 1;
                let s = if short { v.shortname() } else { v.name() };
                writeln!(out, "{s}").map_err(io_err)?;
                Ok(ControlFlow::Continue(()))
            })?;
            out.flush()?;
            eprintln!("{n} variants");
        }
        Command::Show {
            cfg,
            json,
            count,
            threads,
        } => {
            let config = cfg.load()?;
            let threads = threads.unwrap_or_else(default_threads).max(1);
            if count {
                let n = config.count_parallel(threads)?;
                writeln!(out, "{n}")?;
            } else if json {
                config.write_json_parallel(threads, &mut |bytes| {
                    out.write_all(bytes).map_err(io_err)
                })?;
            } else {
                let mut buf = Vec::with_capacity(1 << 14);
                let mut n = 0u64;
                config.for_each(|v| {
                    n += 1;
                    buf.clear();
                    if json {
                        v.write_json(&mut buf);
                    } else {
                        let name = v.name();
                        buf.extend_from_slice(format!("dict {n:4}:  {name}\n").as_bytes());
                        let mut entries = v.entries();
                        entries.sort_by(|a, b| a.0.cmp(&b.0));
                        for (k, val, _) in entries {
                            let shown = val.to_python_string();
                            buf.extend_from_slice(format!("    {k} = {shown}\n").as_bytes());
                        }
                    }
                    out.write_all(&buf).map_err(io_err)?;
                    Ok(ControlFlow::Continue(()))
                })?;
            }
            out.flush()?;
        }
        Command::Cmdline {
            cfg,
            qemu,
            caps,
            threads,
        } => {
            let caps = match (caps, qemu) {
                (Some(file), _) => qemu_cmd::Capabilities::load(&file)
                    .map_err(|e| Failure::Usage(error_chain(&e)))?,
                (None, binary) => {
                    let binary = binary.unwrap_or_else(qemu_cmd::probe::default_binary);
                    qemu_cmd::probe::probe_cached(&binary, &qemu_cmd::probe::default_cache_dir())
                        .map_err(|e| Failure::Usage(error_chain(&e)))?
                }
            };
            let config = cfg.load()?;
            let threads = threads.unwrap_or_else(default_threads).max(1);
            let sum =
                qemu_cmd::render_matrix(&config, &caps, threads, &mut out).map_err(
                    |e| match e {
                        qemu_cmd::MatrixError::Config(e) => Failure::Config(e),
                        qemu_cmd::MatrixError::Io(e) => Failure::Io(e),
                    },
                )?;
            out.flush()?;
            eprintln!(
                "{} variants: {} command lines, {} with problems (QEMU {})",
                sum.variants, sum.ok, sum.errors, caps.version
            );
            if sum.errors > 0 {
                return Err(Failure::Usage(format!(
                    "{} variant(s) cannot run on this QEMU (see the `# error:` lines)",
                    sum.errors
                )));
            }
        }
        Command::Explain {
            cfg,
            filter,
            keys,
            limit,
        } => {
            explain::run(&cfg, &filter, &keys, limit, &mut out)?;
            out.flush()?;
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tests_suite::trace::init(cli.verbose, cli.log_format);
    match &cli.command {
        Command::Run(args) => return tests_suite::cli_run(args).into(),
        Command::Merge(args) => return tests_suite::cli_merge(args).into(),
        Command::Report(args) => return tests_suite::cli_report(args).into(),
        Command::Gc(args) => return tests_suite::cli_gc(args).into(),
        Command::Tests => return tests_suite::cli_catalogue().into(),
        Command::Lint(args) => return tests_suite::cli_lint(args).into(),
        _ => {}
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Config(e)) => {
            eprint!("{}", e.render_as(tests_suite::cli::color_stderr()));
            ExitCode::from(2)
        }
        Err(Failure::Usage(m)) => {
            eprintln!("error: {m}");
            ExitCode::from(2)
        }
        Err(Failure::Io(e)) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(Failure::Io(e)) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
