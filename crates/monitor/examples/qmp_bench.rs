//! QMP round-trip latency and pipelined throughput: `kvmtest-monitor`
//! against a bare blocking `std::os::unix::net::UnixStream` client (the
//! floor), on one QEMU process.
//!
//! ```text
//! cargo run --release -p kvmtest-monitor --example qmp_bench -- [--socket PATH] [--calls N] [--inflight N] [--rounds R]
//! ```
//!
//! Without `--socket` it starts its own `qemu-system-x86_64 -machine none -S`
//! (`$KVMTEST_QEMU` when set: see [`qemu_binary`]) in a tempdir and kills it
//! at the end. With `--socket`, it uses that QMP
//! socket (QEMU serves one client at a time, so the clients take turns), which
//! is how the xtask runs it next to `bench/qmp_py_bench.py`.
//!
//! The machine is small and shared (QEMU's main loop and monitor thread
//! compete with the client for two cores), so run-to-run drift is larger than
//! the difference being measured. The clients therefore alternate in
//! `--rounds` rounds (bare, ours, bare, ours, …), each round doing
//! `calls / rounds` sequential calls and one pipelined burst of `--inflight`
//! commands; latencies are pooled, throughput is the median over rounds.
//! Each client prints one JSON line; the last line is the summary.
#![allow(clippy::disallowed_methods)] // tests and examples start their own peers

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use monitor::{QmpClient, QmpConfig};
use serde_json::Value;

type BoxError = Box<dyn std::error::Error>;

struct Args {
    socket: Option<PathBuf>,
    calls: usize,
    inflight: usize,
    rounds: usize,
}

fn parse_args() -> Result<Args, BoxError> {
    let mut args = Args {
        socket: None,
        calls: 10_000,
        inflight: 10_000,
        rounds: 5,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--socket" => args.socket = Some(value()?.into()),
            "--calls" => args.calls = value()?.parse()?,
            "--inflight" => args.inflight = value()?.parse()?,
            "--rounds" => args.rounds = value()?.parse::<usize>()?.max(1),
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    Ok(args)
}

/// The QEMU binary: `$KVMTEST_QEMU` when set and not empty, else
/// `qemu-system-x86_64` — the rule of `qemu_cmd::probe::default_binary`, read
/// here directly because the monitor crate depends on no other kvmtest crate.
fn qemu_binary() -> PathBuf {
    match std::env::var_os("KVMTEST_QEMU") {
        Some(q) if !q.is_empty() => PathBuf::from(q),
        _ => PathBuf::from("qemu-system-x86_64"),
    }
}

/// Kills and reaps the QEMU this benchmark started, even on error.
struct OwnQemu {
    child: Child,
    _dir: tempfile::TempDir,
    socket: PathBuf,
}

impl OwnQemu {
    fn start() -> Result<Self, BoxError> {
        let dir = tempfile::tempdir()?;
        let socket = dir.path().join("qmp.sock");
        let binary = qemu_binary();
        let child = Command::new(&binary)
            .args([
                "-S",
                "-display",
                "none",
                "-nodefaults",
                "-accel",
                "tcg",
                "-machine",
                "none",
            ])
            .arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", socket.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting {}: {e}", binary.display()))?;
        let end = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            if Instant::now() > end {
                return Err("QEMU did not create its QMP socket within 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(Self {
            child,
            _dir: dir,
            socket,
        })
    }
}

impl Drop for OwnQemu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
struct Metrics {
    client: &'static str,
    p50_us: f64,
    p99_us: f64,
    mean_us: f64,
    pipelined_ops_per_s: f64,
}

impl Metrics {
    fn from(client: &'static str, mut lat: Vec<Duration>, mut pipelined: Vec<f64>) -> Self {
        pipelined.sort_by(f64::total_cmp);
        let median_pipe = pipelined[pipelined.len() / 2];
        lat.sort_unstable();
        let pct = |p: f64| lat[((lat.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e6;
        let mean = lat.iter().sum::<Duration>().as_secs_f64() * 1e6 / lat.len() as f64;
        Self {
            client,
            p50_us: pct(0.50),
            p99_us: pct(0.99),
            mean_us: mean,
            pipelined_ops_per_s: median_pipe,
        }
    }

    fn print(&self, args: &Args) {
        println!(
            "{}",
            serde_json::json!({
                "client": self.client,
                "calls": args.calls,
                "inflight": args.inflight,
                "rounds": args.rounds,
                "p50_us": round2(self.p50_us),
                "p99_us": round2(self.p99_us),
                "mean_us": round2(self.mean_us),
                "pipelined_ops_per_s": self.pipelined_ops_per_s.round(),
            })
        );
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

const QUERY: &[u8] = b"{\"execute\":\"query-status\",\"id\":0}\n";

/// The floor: blocking std socket, hand-written lines, no JSON decoding of replies.
/// One round of the floor client: (latencies, pipelined commands per second).
fn bare(socket: &Path, calls: usize, inflight: usize) -> Result<(Vec<Duration>, f64), BoxError> {
    let stream = UnixStream::connect(socket)?;
    let mut w = stream.try_clone()?;
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    r.read_line(&mut line)?; // greeting
    w.write_all(
        b"{\"execute\":\"qmp_capabilities\",\"arguments\":{\"enable\":[\"oob\"]},\"id\":0}\n",
    )?;
    line.clear();
    r.read_line(&mut line)?;
    let mut round_trip = |line: &mut String| -> Result<Duration, BoxError> {
        let t = Instant::now();
        w.write_all(QUERY)?;
        line.clear();
        r.read_line(line)?;
        Ok(t.elapsed())
    };
    for _ in 0..calls / 10 {
        round_trip(&mut line)?; // warm-up
    }
    let lat = (0..calls)
        .map(|_| round_trip(&mut line))
        .collect::<Result<Vec<_>, _>>()?;

    // Pipelined: one thread writes every command, this one reads every reply.
    let batch: Vec<u8> = QUERY.repeat(inflight);
    let t = Instant::now();
    let writer = std::thread::spawn(move || w.write_all(&batch));
    for _ in 0..inflight {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err("QEMU closed the socket".into());
        }
    }
    let pipelined = t.elapsed();
    writer.join().map_err(|_| "writer thread panicked")??;
    Ok((lat, inflight as f64 / pipelined.as_secs_f64()))
}

/// One round of this crate's client: (latencies, pipelined commands per second).
async fn ours(
    socket: &Path,
    calls: usize,
    inflight: usize,
) -> Result<(Vec<Duration>, f64), BoxError> {
    let qmp = QmpClient::connect_unix(socket, QmpConfig::default()).await?;
    for _ in 0..calls / 10 {
        qmp.execute("query-status", Value::Null).await?; // warm-up
    }
    let mut lat = Vec::with_capacity(calls);
    for _ in 0..calls {
        let t = Instant::now();
        qmp.execute("query-status", Value::Null).await?;
        lat.push(t.elapsed());
    }
    let t = Instant::now();
    let pending = (0..inflight)
        .map(|_| qmp.send("query-status", Value::Null))
        .collect::<Result<Vec<_>, _>>()?;
    for p in pending {
        p.wait().await?;
    }
    let pipelined = t.elapsed();
    if std::env::var_os("QMP_BENCH_DEBUG").is_some() {
        let slow: Vec<(usize, u128)> = lat
            .iter()
            .enumerate()
            .filter(|(_, d)| d.as_micros() > 1000)
            .map(|(i, d)| (i, d.as_micros()))
            .collect();
        eprintln!(
            "slow calls (index, µs): {} {:?}",
            slow.len(),
            &slow[..slow.len().min(40)]
        );
    }
    qmp.close().await;
    Ok((lat, inflight as f64 / pipelined.as_secs_f64()))
}

fn main() -> Result<(), BoxError> {
    let args = parse_args()?;
    let own = match &args.socket {
        Some(_) => None,
        None => Some(OwnQemu::start()?),
    };
    let socket = match (&args.socket, &own) {
        (Some(s), _) => s.clone(),
        (None, Some(q)) => q.socket.clone(),
        (None, None) => return Err("no socket".into()),
    };
    eprintln!(
        "QMP socket {}: {} sequential calls and {} in flight per client, in {} alternating rounds",
        socket.display(),
        args.calls,
        args.inflight,
        args.rounds
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;

    let per_round = args.calls.div_ceil(args.rounds);
    let (mut bare_lat, mut bare_pipe, mut our_lat, mut our_pipe) = (vec![], vec![], vec![], vec![]);
    for _ in 0..args.rounds {
        let (lat, pipe) = bare(&socket, per_round, args.inflight)?;
        bare_lat.extend(lat);
        bare_pipe.push(pipe);
        let (lat, pipe) = rt.block_on(ours(&socket, per_round, args.inflight))?;
        our_lat.extend(lat);
        our_pipe.push(pipe);
    }
    let floor = Metrics::from("bare-std-unixstream", bare_lat, bare_pipe);
    floor.print(&args);
    let mine = Metrics::from("kvmtest-monitor", our_lat, our_pipe);
    mine.print(&args);

    let p50 = mine.p50_us / floor.p50_us;
    let pipe = mine.pipelined_ops_per_s / floor.pipelined_ops_per_s;
    println!(
        "SUMMARY kvmtest-monitor vs bare socket: p50 {:.2}x ({:.1} vs {:.1} µs; target <= 1.15x), \
         p99 {:.2}x, pipelined throughput {:.2}x ({:.0} vs {:.0} cmd/s; target >= 0.90x)",
        p50,
        mine.p50_us,
        floor.p50_us,
        mine.p99_us / floor.p99_us,
        pipe,
        mine.pipelined_ops_per_s,
        floor.pipelined_ops_per_s
    );
    Ok(())
}
