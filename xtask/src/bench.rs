//! `cargo xtask bench NAME`: reproducible benchmarks, and `cargo xtask fuzz` (their sibling: both
//! drive release-built code over large inputs from the command line).
//!
//! Each bench is one row of [`BENCHES`]: a name, its options, a one-line description and a
//! function taking the remaining arguments. Dispatch and usage text come from the table, so a
//! new bench (a `bench_NAME.rs` with `pub fn main(&[String]) -> Result<()>`) is two additions
//! here and nothing in `main.rs`:
//!
//! ```text
//! #[path = "bench_NAME.rs"]
//! mod NAME;
//! Bench { name: "NAME", options: "[--runs N] …", about: "…", run: NAME::main },
//! ```
//!
//! Shared here: [`measure`] (spawn one process, reap it with `wait4` and read *its own* peak
//! RSS and CPU time, not the maximum over every child so far), the release build of `kvmtest`,
//! and locating the reference parser's Python (see [`reference_python`]).

#[path = "bench_boot.rs"]
mod boot;
#[path = "bench_cmdline.rs"]
mod cmdline;
#[path = "bench_fuzz.rs"]
mod fuzz;
#[path = "bench_params.rs"]
mod params;
#[path = "bench_qmp.rs"]
mod qmp;
#[path = "bench_suite.rs"]
mod suite;
#[path = "bench_synthetic.rs"]
mod synthetic;

use std::ffi::OsStr;
use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

pub use fuzz::main as fuzz;

/// A bench: its name on the command line, its options, what it measures, and its entry point
/// (called with the arguments after the name).
struct Bench {
    name: &'static str,
    options: &'static str,
    about: &'static str,
    run: fn(&[String]) -> Result<()>,
}

/// Every bench, in the order `cargo xtask bench` lists them. Add new benches here.
const BENCHES: &[Bench] = &[
    Bench {
        name: "params",
        options: "[--runs N] [--ref-runs N]",
        about: "kvmtest vs the reference parser on the huge avocado-vt tree (count and JSON)",
        run: params::main,
    },
    Bench {
        name: "qmp",
        options: "[--calls N] [--inflight N] [--rounds N]",
        about: "QMP p50/p99 and pipelined ops/s: kvmtest-monitor vs bare socket vs qemu.qmp",
        run: qmp::main,
    },
    Bench {
        name: "cmdline",
        options: "[--runs N] [--caps FILE]",
        about: "QEMU command lines for the 40,665 huge-tree variants (config expansion included)",
        run: cmdline::main,
    },
    Bench {
        name: "params-synthetic",
        options: "[--runs N] [--large-runs N] [--ref-runs N]",
        about: "kvmtest alone on generated 10^5 and 10^6 variant configs (speed, flat RSS)",
        run: synthetic::main,
    },
    Bench {
        name: "suite",
        options: "[--runs N] [--jobs LIST] | --restore [--runs N] [--only F]",
        about: "the bundled suite: --jobs 1 vs --jobs 2 throughput; with --restore, guests \
                restored from a saved state vs booted, every test on a fresh VM",
        run: suite::main,
    },
    Bench {
        name: "boot",
        options: "[--runs N]",
        about: "Vm::create to serial login vs bare QEMU (same argv) to the guest's ready marker",
        run: boot::main,
    },
];

/// `cargo xtask bench NAME [ARGS…]`.
pub fn main(args: &[String]) -> Result<()> {
    let Some(name) = args.first() else {
        eprint!("{}", usage());
        bail!("missing bench name");
    };
    match BENCHES.iter().find(|b| b.name == name) {
        Some(b) => (b.run)(&args[1..]),
        None => {
            eprint!("{}", usage());
            bail!("unknown bench {name:?}")
        }
    }
}

/// The usage text of `cargo xtask bench`, built from [`BENCHES`].
pub fn usage() -> String {
    let mut s = String::from("usage: cargo xtask bench NAME [OPTIONS]\n");
    for b in BENCHES {
        s.push_str(&format!("  {} {}\n      {}\n", b.name, b.options, b.about));
    }
    s
}

/// The workspace root.
pub(crate) fn root() -> PathBuf {
    crate::root()
}

/// The conformance data: `$KVMTEST_CONFORMANCE_DIR`, or the copy vendored in the repository
/// (`fixtures/conformance`: `cases/` and `huge/`, see its README).
pub(crate) fn conformance_dir() -> PathBuf {
    match std::env::var_os("KVMTEST_CONFORMANCE_DIR") {
        Some(d) => PathBuf::from(d),
        None => root().join("fixtures/conformance"),
    }
}

/// The reference dump script: `xtask/reference/dump.py` (ours: avocado-vt's parser, one JSON
/// line per variant or `--count`), run by the reference's Python in the benches that time the
/// reference; `$KVMTEST_REF_DUMP` names another with the same interface.
pub(crate) fn reference_dump() -> Result<PathBuf> {
    let dump = match std::env::var_os("KVMTEST_REF_DUMP") {
        Some(f) => PathBuf::from(f),
        None => root().join("xtask/reference/dump.py"),
    };
    ensure!(
        dump.is_file(),
        "the reference dump script {} was not found",
        dump.display()
    );
    Ok(dump)
}

/// The cargo target directory: `vm::fixtures::target_dir` (`$CARGO_TARGET_DIR`, else the one
/// this xtask binary was built in), the one rule every fixture follows.
pub(crate) fn target_dir() -> PathBuf {
    vm::fixtures::target_dir()
}

/// Build `kvmtest` in release mode (default target directory) and return its path.
pub(crate) fn build_kvmtest() -> Result<PathBuf> {
    let mut cmd = crate::cargo();
    cmd.args(["build", "--release", "-p", "kvmtest-cli"]);
    crate::run(cmd)?;
    let exe = target_dir().join("release/kvmtest");
    ensure!(exe.is_file(), "{} missing after the build", exe.display());
    Ok(exe)
}

/// The Python interpreter that has the reference parser (`virttest.cartesian_config`).
///
/// `$KVMTEST_REF_PYTHON` if set (it must import the module); otherwise the venv
/// `target/ref-venv`, created and filled from PyPI on first use (git-ignored, reused later).
pub(crate) fn reference_python() -> Result<PathBuf> {
    if let Some(py) = std::env::var_os("KVMTEST_REF_PYTHON") {
        let py = PathBuf::from(py);
        ensure!(
            imports_reference(&py),
            "KVMTEST_REF_PYTHON={} cannot import virttest.cartesian_config",
            py.display()
        );
        return Ok(py);
    }
    let venv = target_dir().join("ref-venv");
    let py = venv.join("bin/python");
    if imports_reference(&py) {
        return Ok(py);
    }
    eprintln!(
        "bench: installing the reference parser into {} (set KVMTEST_REF_PYTHON to reuse one)",
        venv.display()
    );
    let mut mk = Command::new("python3");
    mk.arg("-m").arg("venv").arg(&venv);
    crate::run(mk)?;
    let mut pip = Command::new(venv.join("bin/pip"));
    pip.args([
        "install",
        "--quiet",
        "--disable-pip-version-check",
        // The version the conformance data was produced with.
        "avocado-framework-plugin-vt==113.0",
    ]);
    crate::run(pip)?;
    ensure!(
        imports_reference(&py),
        "{} still cannot import virttest.cartesian_config",
        py.display()
    );
    Ok(py)
}

fn imports_reference(py: &Path) -> bool {
    py.exists()
        && Command::new(py)
            .args(["-c", "import virttest.cartesian_config"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

/// Where a measured process's standard output goes.
pub(crate) enum Out {
    /// `/dev/null` (output is produced and written, then discarded by the kernel).
    Null,
    /// Captured (through a temporary file, so the child never blocks on a pipe while it is
    /// being timed) and returned in [`Sample::stdout`].
    Capture,
}

/// One measured run of one process.
pub(crate) struct Sample {
    /// Spawn to reap.
    pub wall: Duration,
    /// User plus system CPU time of the child.
    pub cpu: Duration,
    /// The child's own peak resident set size, in KiB (`ru_maxrss` from `wait4`).
    pub maxrss_kib: u64,
    /// Standard output, if [`Out::Capture`] was asked.
    pub stdout: String,
}

/// Run `program args…` once, with stdin from /dev/null and stderr kept aside (shown if the
/// process fails), and measure it. A non-zero exit is an error.
pub(crate) fn measure<S: AsRef<OsStr>>(program: &Path, args: &[S], out: Out) -> Result<Sample> {
    let mut cmd = Command::new(program);
    cmd.args(args).current_dir(root()).stdin(Stdio::null());
    let err_file = tempfile::tempfile().context("temporary file for stderr")?;
    cmd.stderr(err_file.try_clone()?);
    let out_file = match out {
        Out::Null => {
            cmd.stdout(File::create("/dev/null").context("opening /dev/null")?);
            None
        }
        Out::Capture => {
            let f = tempfile::tempfile().context("temporary file for stdout")?;
            cmd.stdout(f.try_clone()?);
            Some(f)
        }
    };
    let shown = format!("{cmd:?}");
    let start = Instant::now();
    let child = cmd.spawn().with_context(|| format!("spawning {shown}"))?;
    let (status, usage) = wait4(child.id()).with_context(|| format!("waiting for {shown}"))?;
    let wall = start.elapsed();
    // `child` was reaped by `wait4` above: it must not be waited for again (dropping a
    // `Child` does not wait).
    drop(child);
    if !status.success() {
        bail!(
            "{shown} failed ({status}); its stderr:\n{}",
            read_all(err_file)?
        );
    }
    let stdout = match out_file {
        Some(f) => read_all(f)?,
        None => String::new(),
    };
    Ok(Sample {
        wall,
        cpu: usage.cpu,
        maxrss_kib: usage.maxrss_kib,
        stdout,
    })
}

fn read_all(mut f: File) -> Result<String> {
    use std::io::{Read, Seek};
    f.rewind()?;
    let mut s = String::new();
    f.read_to_string(&mut s)?;
    Ok(s)
}

/// What `wait4` reports about one reaped child.
struct Usage {
    cpu: Duration,
    maxrss_kib: u64,
}

/// Reap the child `pid` and return its exit status and its own resource usage.
///
/// `wait4` (unlike `getrusage(RUSAGE_CHILDREN)`, whose `ru_maxrss` is the largest of every
/// child reaped so far) reports the usage of exactly this child, so runs measured one after
/// the other do not contaminate each other. This is the only `unsafe` in xtask: libc has no
/// safe wrapper for it and the std `Child` API does not expose resource usage.
#[allow(unsafe_code)]
fn wait4(pid: u32) -> io::Result<(ExitStatus, Usage)> {
    let pid = libc::pid_t::try_from(pid).map_err(io::Error::other)?;
    let mut status: libc::c_int = 0;
    // SAFETY: `rusage` is a plain C struct of integers, for which all-zero bytes are valid.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `pid` is our own child, not yet reaped (std only reaps on `wait`, which
        // the caller never calls); both pointers are to live, writable locals.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
        if r == pid {
            break;
        }
        let e = io::Error::last_os_error();
        if r == -1 && e.kind() == io::ErrorKind::Interrupted {
            continue;
        }
        return Err(e);
    }
    let tv = |t: libc::timeval| {
        Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
    };
    Ok((
        ExitStatus::from_raw(status),
        Usage {
            cpu: tv(ru.ru_utime) + tv(ru.ru_stime),
            // Linux reports ru_maxrss in KiB.
            maxrss_kib: u64::try_from(ru.ru_maxrss).unwrap_or(0),
        },
    ))
}

/// Runs of one command: the best (fastest) wall time is the figure of merit; peak RSS is the
/// largest seen.
pub(crate) struct Runs(pub Vec<Sample>);

impl Runs {
    pub fn best_wall(&self) -> Duration {
        self.0.iter().map(|s| s.wall).min().unwrap_or_default()
    }
    pub fn median_wall(&self) -> Duration {
        let mut w: Vec<Duration> = self.0.iter().map(|s| s.wall).collect();
        w.sort();
        w.get(w.len() / 2).copied().unwrap_or_default()
    }
    pub fn best_cpu(&self) -> Duration {
        self.0.iter().map(|s| s.cpu).min().unwrap_or_default()
    }
    pub fn max_rss_kib(&self) -> u64 {
        self.0.iter().map(|s| s.maxrss_kib).max().unwrap_or(0)
    }
}

/// Run a measurement `n` times (at least once), logging each run.
pub(crate) fn repeat(label: &str, n: usize, mut f: impl FnMut() -> Result<Sample>) -> Result<Runs> {
    let mut v = Vec::new();
    for i in 1..=n.max(1) {
        let s = f()?;
        eprintln!(
            "  {label} run {i}/{}: {} wall, {} cpu, peak RSS {}",
            n.max(1),
            Secs(s.wall),
            Secs(s.cpu),
            Mib(s.maxrss_kib)
        );
        v.push(s);
    }
    Ok(Runs(v))
}

/// Seconds, three decimals.
pub(crate) struct Secs(pub Duration);

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = format!("{:.3} s", self.0.as_secs_f64());
        f.pad(&s)
    }
}

/// KiB shown as MiB, one decimal.
pub(crate) struct Mib(pub u64);

impl fmt::Display for Mib {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Exact for any RSS a process can have (below 2^53 KiB).
        let s = format!("{:.1} MiB", self.0 as f64 / 1024.0);
        f.pad(&s)
    }
}

/// `a / b` as a float, for speed-up ratios (`inf` if `b` is zero).
pub(crate) fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}

/// Parse `--NAME N` options (all numeric) from `args`, rejecting anything else.
pub(crate) fn numeric_options(args: &[String], names: &[&str]) -> Result<Vec<Option<usize>>> {
    let mut values = vec![None; names.len()];
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let Some(i) = names.iter().position(|n| a.strip_prefix("--") == Some(n)) else {
            bail!(
                "unknown argument {a:?} (accepted: {})",
                names
                    .iter()
                    .map(|n| format!("--{n} N"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        };
        let v = it.next().with_context(|| format!("{a} needs a value"))?;
        values[i] = Some(v.parse().with_context(|| format!("{a} {v:?}"))?);
    }
    Ok(values)
}
