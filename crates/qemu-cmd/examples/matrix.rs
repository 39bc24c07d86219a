//! Command lines for a whole test matrix, as `kvmtest cmdline` will print them; also the
//! release-built workload of `cargo xtask bench cmdline`.
//!
//! `cargo run --release -p kvmtest-qemu-cmd --example matrix -- CFG [STATEMENT…]
//! [--only F]… [--caps FILE | --qemu PATH] [--threads N] [--bench]`
//!
//! Without `--bench` it prints every variant's stable command line (or its problems). With
//! `--bench` it builds them all (config expansion included), prints nothing per variant, and
//! ends with one line on stdout: `variants=N ok=N errors=N seconds=S threads=N first_error=…`.
//! `--threads` (default: the number of CPUs) sets how many threads expand and build.

use std::io::Write;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::Instant;

use params::{Parser, ParserOptions};

/// The allocator `kvmtest` itself uses (see crates/cli/README.md), so that the bench measures
/// what `kvmtest cmdline` does.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use qemu_cmd::{map_cmdlines, render_matrix, Capabilities, RunPlan};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut cfg: Option<PathBuf> = None;
    let mut statements = Vec::new();
    let mut only = Vec::new();
    let mut caps_file: Option<PathBuf> = None;
    let mut qemu: Option<PathBuf> = None;
    let mut bench = false;
    let mut threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    while let Some(a) = args.next() {
        match a.as_str() {
            "--only" => only.extend(args.next()),
            "--caps" => caps_file = args.next().map(PathBuf::from),
            "--qemu" => qemu = args.next().map(PathBuf::from),
            "--bench" => bench = true,
            "--threads" => {
                threads = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .ok_or("--threads N")?;
            }
            _ if cfg.is_none() => cfg = Some(PathBuf::from(a)),
            _ => statements.push(a),
        }
    }
    let cfg = cfg.ok_or(
        "usage: matrix CFG [STATEMENT…] [--only F]… [--caps FILE | --qemu PATH] [--threads N] [--bench]",
    )?;
    let caps = match (caps_file, qemu) {
        (Some(f), _) => Capabilities::load(f)?,
        (None, Some(q)) => {
            qemu_cmd::probe::probe_cached(&q, &qemu_cmd::probe::default_cache_dir())?
        }
        (None, None) => Capabilities::load(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../fixtures/qemu-caps/qemu-7.2.json"),
        )?,
    };
    let start = Instant::now();
    let mut p = Parser::new(ParserOptions::default());
    p.parse_file(&cfg)?;
    for s in &statements {
        p.parse_str(s)?;
    }
    for f in &only {
        p.only_filter(f)?;
    }
    let config = p.finish();
    if !bench {
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::new(stdout.lock());
        let sum = render_matrix(&config, &caps, threads, &mut out)?;
        out.flush()?;
        eprintln!(
            "{} variants, {} ok, {} with errors",
            sum.variants, sum.ok, sum.errors
        );
        return Ok(());
    }
    let (mut n, mut ok, mut errors, mut words) = (0u64, 0u64, 0u64, 0usize);
    let mut first_error = String::new();
    map_cmdlines(
        &config,
        &caps,
        &RunPlan::dry(),
        threads,
        &|_, r| r.map(|cmd| cmd.options().len()),
        &mut |r| {
            n += 1;
            match r {
                Ok(len) => {
                    ok += 1;
                    words += len;
                }
                Err(e) => {
                    errors += 1;
                    if first_error.is_empty() {
                        first_error = e
                            .problems()
                            .first()
                            .map(|p| p.to_string())
                            .unwrap_or_default();
                    }
                }
            }
            ControlFlow::Continue(())
        },
    )?;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "variants={n} ok={ok} errors={errors} seconds={secs:.6} threads={threads} options={words} first_error={first_error}"
    );
    Ok(())
}
