//! `cargo xtask bench qmp`: QMP latency and throughput of `kvmtest-monitor`
//! against the bare-socket floor and PyPI `qemu.qmp`, all against one QEMU.
//!
//! ```text
//! cargo xtask bench qmp [--calls N] [--inflight N] [--rounds R]
//! ```
//!
//! Steps, in one run:
//! 1. build `crates/monitor/examples/qmp_bench.rs` in release mode;
//! 2. find a Python with `qemu.qmp`: `$KVMTEST_QMP_PYTHON` if set, otherwise
//!    the venv `qmp-venv` in the target dir (`vm::fixtures::target_dir`:
//!    `CARGO_TARGET_DIR` or `target/`; created with `python3 -m venv` and filled
//!    with `pip install qemu.qmp` when missing; it lives outside git);
//! 3. start one `qemu-system-x86_64 -S -display none -nodefaults -accel tcg
//!    -machine none` (`$KVMTEST_QEMU` when set) with QMP on a unix socket in a
//!    tempdir; a guard kills and
//!    reaps it on every exit path (success, error, panic);
//! 4. run the example with `--socket` (it measures `kvmtest-monitor` and the
//!    bare `UnixStream` floor in alternating rounds), then
//!    `crates/monitor/bench/qmp_py_bench.py` on the same socket (QEMU serves
//!    one QMP client at a time, so they take turns);
//! 5. parse their JSON lines, print a table and one summary line.
//!
//! The targets in the summary (p50 <= 1.15x the floor, pipelined >= 0.90x)
//! are reported, not enforced: on a shared 2-core machine the run-to-run
//! drift is of the same order as the margins.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// Longest a single benchmark client may run before it is killed.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(600);
/// Longest QEMU may take to create its QMP socket.
const QEMU_START_TIMEOUT: Duration = Duration::from_secs(20);

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// Benchmark sizes, passed on to both clients.
struct Opts {
    calls: usize,
    inflight: usize,
    rounds: usize,
}

fn parse_args(args: &[String]) -> Result<Opts> {
    let mut opts = Opts {
        calls: 10_000,
        inflight: 10_000,
        rounds: 5,
    };
    // Accept both the arguments after `bench qmp` and the full list.
    let args = match args {
        [b, q, rest @ ..] if b == "bench" && q == "qmp" => rest,
        [q, rest @ ..] if q == "qmp" => rest,
        rest => rest,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .with_context(|| format!("{a} needs a value"))?
                .parse::<usize>()
                .with_context(|| format!("{a} needs a positive integer"))
        };
        match a.as_str() {
            "--calls" => opts.calls = value()?.max(1),
            "--inflight" => opts.inflight = value()?.max(1),
            "--rounds" => opts.rounds = value()?.max(1),
            "-h" | "--help" => {
                println!("usage: cargo xtask bench qmp [--calls N] [--inflight N] [--rounds R]");
                std::process::exit(0);
            }
            other => bail!(
                "unknown argument {other:?} (usage: cargo xtask bench qmp \
                 [--calls N] [--inflight N] [--rounds R])"
            ),
        }
    }
    Ok(opts)
}

/// One QEMU with QMP on a unix socket in its own tempdir. Dropping it kills
/// and reaps QEMU, then removes the directory.
struct Qemu {
    child: Child,
    socket: PathBuf,
    stderr_log: PathBuf,
    // Dropped after `Drop::drop` has killed QEMU.
    _dir: tempfile::TempDir,
}

impl Qemu {
    fn start() -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("kvmtest-bench-qmp")
            .tempdir()
            .context("creating a tempdir for QEMU")?;
        let socket = dir.path().join("qmp.sock");
        let stderr_log = dir.path().join("qemu.stderr");
        let stderr = std::fs::File::create(&stderr_log)
            .with_context(|| format!("creating {}", stderr_log.display()))?;
        // The QEMU under test: `KVMTEST_QEMU`, else `qemu-system-x86_64`.
        let binary = qemu_cmd::probe::default_binary();
        let mut cmd = Command::new(&binary);
        cmd.args([
            "-S",
            "-display",
            "none",
            "-nodefaults",
            "-accel",
            "tcg",
            "-machine",
            "none",
            "-qmp",
        ])
        .arg(format!("unix:{},server=on,wait=off", socket.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr);
        eprintln!("$ {cmd:?}");
        let child = cmd.spawn().with_context(|| {
            format!(
                "starting {} (install it with `apt-get install -y qemu-system-x86`, or name one \
                 with KVMTEST_QEMU)",
                binary.display()
            )
        })?;
        let mut qemu = Self {
            child,
            socket,
            stderr_log,
            _dir: dir,
        };
        let end = Instant::now() + QEMU_START_TIMEOUT;
        while !qemu.socket.exists() {
            if let Some(status) = qemu.child.try_wait().context("polling QEMU")? {
                bail!("QEMU exited at startup ({status}): {}", qemu.stderr());
            }
            if Instant::now() > end {
                bail!(
                    "QEMU did not create {} within {QEMU_START_TIMEOUT:?}: {}",
                    qemu.socket.display(),
                    qemu.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(qemu)
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_log)
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    }

    /// Fails if QEMU is no longer running (it must survive every client).
    fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait().context("polling QEMU")? {
            bail!(
                "QEMU exited during the benchmark ({status}): {}",
                self.stderr()
            );
        }
        Ok(())
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        // Errors mean it is already gone; either way it is reaped here.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Kills and reaps a benchmark client unless it finished.
struct ClientGuard(Child);

impl Drop for ClientGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Runs `cmd` (stderr passed through), with a timeout, and returns its stdout.
fn run_client(mut cmd: Command) -> Result<String> {
    eprintln!("$ {cmd:?}");
    cmd.current_dir(root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = ClientGuard(cmd.spawn().with_context(|| format!("spawning {cmd:?}"))?);
    let mut stdout = child.0.stdout.take().context("client stdout not piped")?;
    // Read on a thread so a chatty client cannot block on a full pipe.
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        stdout.read_to_string(&mut out).map(|_| out)
    });
    let end = Instant::now() + CLIENT_TIMEOUT;
    let status = loop {
        if let Some(status) = child.0.try_wait().context("polling a client")? {
            break status;
        }
        if Instant::now() > end {
            // The guard kills it; the reader then sees EOF.
            drop(child);
            bail!("{cmd:?} did not finish within {CLIENT_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = reader
        .join()
        .map_err(|_| anyhow::anyhow!("stdout reader thread panicked"))?
        .with_context(|| format!("reading the output of {cmd:?}"))?;
    if !status.success() {
        let out = out.trim();
        if out.is_empty() {
            bail!("{cmd:?} failed: {status}");
        }
        bail!("{cmd:?} failed: {status}\nits stdout:\n{out}");
    }
    Ok(out)
}

/// One client's results, as printed by the example and the Python script.
struct Metrics {
    client: String,
    p50_us: f64,
    p99_us: f64,
    pipelined_ops_per_s: f64,
}

impl Metrics {
    fn from_json(v: &Value) -> Result<Self> {
        let num = |key: &str| {
            v.get(key)
                .and_then(Value::as_f64)
                .with_context(|| format!("no number {key:?} in {v}"))
        };
        Ok(Self {
            client: v
                .get("client")
                .and_then(Value::as_str)
                .with_context(|| format!("no \"client\" in {v}"))?
                .to_string(),
            p50_us: num("p50_us")?,
            p99_us: num("p99_us")?,
            pipelined_ops_per_s: num("pipelined_ops_per_s")?,
        })
    }
}

/// Every line of `out` that is a JSON object with a `client` key.
fn parse_metrics(out: &str) -> Result<Vec<Metrics>> {
    out.lines()
        .filter(|l| l.trim_start().starts_with('{'))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("client").is_some())
        .map(|v| Metrics::from_json(&v))
        .collect()
}

fn find<'a>(all: &'a [Metrics], client: &str) -> Result<&'a Metrics> {
    all.iter()
        .find(|m| m.client == client)
        .with_context(|| format!("no result line for client {client:?}"))
}

/// Builds the example and returns the path of its executable.
fn build_example() -> Result<PathBuf> {
    let mut cmd = cargo();
    cmd.args([
        "build",
        "--release",
        "-p",
        "kvmtest-monitor",
        "--example",
        "qmp_bench",
        "--message-format=json-render-diagnostics",
    ])
    .current_dir(root())
    .stderr(Stdio::inherit());
    eprintln!("$ {cmd:?}");
    let out = cmd.output().with_context(|| format!("spawning {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", out.status);
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["reason"] == "compiler-artifact" && v["target"]["name"] == "qmp_bench")
        .find_map(|v| v["executable"].as_str().map(PathBuf::from))
        .context("cargo reported no executable for the qmp_bench example")
}

fn has_qemu_qmp(python: &Path) -> bool {
    Command::new(python)
        .args(["-c", "import qemu.qmp"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn run_checked(mut cmd: Command) -> Result<()> {
    eprintln!("$ {cmd:?}");
    let status = cmd
        .stdin(Stdio::null())
        .status()
        .with_context(|| format!("spawning {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

/// A Python interpreter that can `import qemu.qmp`.
fn python_with_qemu_qmp() -> Result<PathBuf> {
    if let Some(python) = std::env::var_os("KVMTEST_QMP_PYTHON") {
        let python = PathBuf::from(python);
        if !has_qemu_qmp(&python) {
            bail!(
                "KVMTEST_QMP_PYTHON={} cannot `import qemu.qmp` (run `{} -m pip install qemu.qmp`, \
                 or unset it to use qmp-venv in the target dir)",
                python.display(),
                python.display()
            );
        }
        return Ok(python);
    }
    let venv = vm::fixtures::target_dir().join("qmp-venv");
    let python = venv.join("bin").join("python3");
    if !python.exists() {
        let mut cmd = Command::new("python3");
        cmd.args(["-m", "venv"]).arg(&venv);
        run_checked(cmd).context(
            "creating the venv for qemu.qmp (needs python3 with venv: \
             `apt-get install -y python3-venv`; or set KVMTEST_QMP_PYTHON)",
        )?;
    }
    if !has_qemu_qmp(&python) {
        let mut cmd = Command::new(&python);
        cmd.args(["-m", "pip", "install", "--quiet", "qemu.qmp"]);
        run_checked(cmd).context("installing qemu.qmp into target/qmp-venv")?;
        if !has_qemu_qmp(&python) {
            bail!("{} still cannot `import qemu.qmp`", python.display());
        }
    }
    Ok(python)
}

/// Entry point of `cargo xtask bench qmp`; `args` are the arguments after
/// `bench qmp` (a leading `bench qmp` is skipped too).
pub fn main(args: &[String]) -> Result<()> {
    let opts = parse_args(args)?;
    let example = build_example()?;
    let python = python_with_qemu_qmp()?;
    let script = root().join("crates/monitor/bench/qmp_py_bench.py");

    let mut qemu = Qemu::start()?;
    let (calls, inflight, rounds) = (
        opts.calls.to_string(),
        opts.inflight.to_string(),
        opts.rounds.to_string(),
    );

    let mut rust = Command::new(&example);
    rust.arg("--socket")
        .arg(&qemu.socket)
        .args(["--calls", &calls, "--inflight", &inflight])
        .args(["--rounds", &rounds]);
    let rust_out = run_client(rust).context("the Rust benchmark (kvmtest-monitor and bare)")?;
    qemu.check_alive()?;

    let mut py = Command::new(&python);
    py.arg(&script)
        .arg(&qemu.socket)
        .args(["--calls", &calls, "--inflight", &inflight]);
    let py_out = run_client(py).context("the Python benchmark (qemu.qmp)")?;
    qemu.check_alive()?;
    drop(qemu);

    let mut all = parse_metrics(&rust_out)?;
    all.extend(parse_metrics(&py_out)?);
    let bare = find(&all, "bare-std-unixstream")?;
    let ours = find(&all, "kvmtest-monitor")?;
    let python = find(&all, "qemu.qmp")?;

    println!();
    println!(
        "{:<22} {:>10} {:>10} {:>18}",
        "client", "p50 µs", "p99 µs", "pipelined ops/s"
    );
    for m in [bare, ours, python] {
        println!(
            "{:<22} {:>10.1} {:>10.1} {:>18.0}",
            m.client, m.p50_us, m.p99_us, m.pipelined_ops_per_s
        );
    }
    println!();
    println!(
        "bench qmp: p50 kvmtest {:.1} µs vs bare {:.1} µs ({:.2}x, target <= 1.15x), \
         vs python {:.1} µs ({:.1}x better); pipelined {:.0}/s vs bare {:.0}/s \
         ({:.2}x, target >= 0.90x), python {:.0}/s",
        ours.p50_us,
        bare.p50_us,
        ours.p50_us / bare.p50_us,
        python.p50_us,
        python.p50_us / ours.p50_us,
        ours.pipelined_ops_per_s,
        bare.pipelined_ops_per_s,
        ours.pipelined_ops_per_s / bare.pipelined_ops_per_s,
        python.pipelined_ops_per_s,
    );
    Ok(())
}
