//! `cargo xtask bench boot`: time from `Vm::create` to a logged-in serial shell, against a bare
//! QEMU started with the same argv until the guest's ready marker appears on its serial console.
//!
//! ```text
//! cargo xtask bench boot [--runs N]
//! ```
//!
//! In one run, `N` times each (default 3), alternating which goes first:
//! * **kvmtest**: `Vm::create` with the `vm` crate's public API, `Qemu` (probed
//!   capabilities, cached) and the vm tests' guest (`crates/vm/tests/support/guest.cfg`), then
//!   `wait_for_login(Access::Serial)`; the clock runs from before `create` until the shell
//!   answers. The VM is then destroyed (`Teardown::Kill`, not timed).
//! * **bare QEMU**: the argv that VM was started with (`Vm::argv`, its run directory replaced by
//!   a fresh tempdir), spawned directly; the clock runs from spawn until `KVMTEST-GUEST-READY`
//!   is read from the serial console's unix socket. QEMU is then killed. A guard kills and reaps
//!   it on every exit path (error, panic).
//!
//! Both use TCG (`vm_accelerator = tcg`), so the numbers compare on any machine, and the QEMU
//! under test (`KVMTEST_QEMU`, else `qemu-system-x86_64`). The guest must be built
//! (`cargo xtask fixtures guest`; found through `vm::fixtures`, as the tests find it). Output: each sample, both medians, and one summary
//! line with the overhead against the target (< 0.5 s; reported, not enforced).

use std::ffi::OsString;
use std::io::Read;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use params::{Params, Parser, ParserOptions};
use vm::{Access, PlanOptions, Qemu, Teardown, Vm, VmSetup};

/// The marker the test guest prints on its serial console once it is ready.
const READY_MARKER: &[u8] = b"KVMTEST-GUEST-READY";
/// Longest a bare QEMU may take to print the marker.
const BARE_TIMEOUT: Duration = Duration::from_secs(180);
fn root() -> PathBuf {
    let xtask = Path::new(env!("CARGO_MANIFEST_DIR"));
    xtask.parent().unwrap_or(xtask).to_path_buf()
}

/// Entry point: `args` are the arguments after `bench boot`.
pub fn main(args: &[String]) -> Result<()> {
    let mut runs = 3usize;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--runs" => {
                runs = it
                    .next()
                    .context("--runs needs a value")?
                    .parse()
                    .context("--runs: not a number")?;
                ensure!(runs > 0, "--runs must be at least 1");
            }
            other => bail!("bench boot: unknown argument {other:?} (usage: [--runs N])"),
        }
    }
    let params = guest_params()?;
    // The QEMU binary both sides run.
    let qemu = qemu_cmd::probe::default_binary();
    let source = Arc::new(
        Qemu::probe(&qemu)
            .with_context(|| format!("probing {} (is QEMU installed?)", qemu.display()))?,
    );
    let logs = tempfile::Builder::new()
        .prefix("kvmtest-bench-boot.")
        .tempdir()
        .context("creating the log tempdir")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;

    let mut ours = Vec::new();
    let mut bare = Vec::new();
    for i in 0..runs {
        // Alternate the order so page-cache warmth favours neither side.
        let kvmtest_first = i % 2 == 0;
        let mut argv = None;
        if kvmtest_first {
            let (t, a) = rt.block_on(kvmtest_boot(&params, &source, logs.path()))?;
            eprintln!("run {}: kvmtest  {:.3} s", i + 1, t.as_secs_f64());
            ours.push(t);
            argv = Some(a);
        }
        let argv = match argv {
            Some(a) => a,
            // Bare first: the argv of a VM created (and destroyed) just for it, untimed.
            None => rt.block_on(argv_of_fresh_vm(&params, &source, logs.path()))?,
        };
        let t = bare_boot(&argv.0, &argv.1)?;
        eprintln!("run {}: bare QEMU {:.3} s", i + 1, t.as_secs_f64());
        bare.push(t);
        if !kvmtest_first {
            let (t, _) = rt.block_on(kvmtest_boot(&params, &source, logs.path()))?;
            eprintln!("run {}: kvmtest  {:.3} s", i + 1, t.as_secs_f64());
            ours.push(t);
        }
    }
    let ours_med = median(&mut ours);
    let bare_med = median(&mut bare);
    let overhead = ours_med - bare_med;
    println!("kvmtest (Vm::create → serial login), median of {runs}: {ours_med:.3} s");
    println!(
        "bare QEMU (spawn → {}), median of {runs}: {bare_med:.3} s",
        marker()
    );
    println!(
        "bench boot: kvmtest {ours_med:.2} s vs bare QEMU {bare_med:.2} s, overhead {overhead:.2} s \
         (target < 0.5 s)"
    );
    Ok(())
}

fn marker() -> String {
    String::from_utf8_lossy(READY_MARKER).into_owned()
}

fn median(v: &mut [Duration]) -> f64 {
    v.sort_unstable();
    let n = v.len();
    let mid = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2
    };
    mid.as_secs_f64()
}

/// The vm tests' guest params, with this machine's guest and TCG.
fn guest_params() -> Result<Params> {
    let root = root();
    let cfg = root.join("crates/vm/tests/support/guest.cfg");
    let mut parser = Parser::new(ParserOptions::default());
    parser
        .parse_file(&cfg)
        .map_err(|e| anyhow::anyhow!("{}: {e}", cfg.display()))?;
    let variants = parser
        .finish()
        .collect()
        .map_err(|e| anyhow::anyhow!("{}: {e}", cfg.display()))?;
    ensure!(
        variants.len() == 1,
        "{} must have one variant",
        cfg.display()
    );
    let mut p = variants[0].params.clone();
    let guest = vm::fixtures::require_guest()?;
    for (key, file) in [
        ("kernel", vm::fixtures::VMLINUZ),
        ("initrd", vm::fixtures::INITRD),
    ] {
        p.insert(key, guest.join(file).to_string_lossy().into_owned());
    }
    p.insert("vm_accelerator", "tcg");
    Ok(p)
}

/// Starts VM `vm1` of `params` on `qemu`, relative cfg paths from the workspace root.
async fn start(params: &Params, qemu: &Arc<Qemu>, logs: &Path) -> Result<Vm> {
    let setup = VmSetup::from_params(params, "vm1", logs).context("reading the params")?;
    Vm::start(Arc::clone(qemu), setup, &PlanOptions::new(root()))
        .await
        .context("Vm::start")
}

/// One kvmtest boot: `Vm::create` → logged-in serial shell. Returns the time and the VM's argv
/// with its run directory (for the bare run).
async fn kvmtest_boot(
    params: &Params,
    source: &Arc<Qemu>,
    logs: &Path,
) -> Result<(Duration, (Vec<OsString>, PathBuf))> {
    let t0 = Instant::now();
    let mut guest = start(params, source, logs).await?;
    let timeout = guest.login_timeout();
    let login = guest.wait_for_login(Access::Serial, timeout).await;
    let took = t0.elapsed();
    let argv = (guest.argv().to_vec(), guest.run_dir().to_path_buf());
    let result = match login {
        Ok(shell) => {
            drop(shell);
            Ok((took, argv))
        }
        Err(e) => Err(anyhow::anyhow!(
            "serial login failed: {e}\n{}",
            guest.debug_report()
        )),
    };
    guest.destroy(Teardown::Kill).await.context("destroy")?;
    result
}

/// The argv (and run dir) of a VM created and destroyed at once (untimed).
async fn argv_of_fresh_vm(
    params: &Params,
    source: &Arc<Qemu>,
    logs: &Path,
) -> Result<(Vec<OsString>, PathBuf)> {
    let guest = start(params, source, logs).await?;
    let argv = (guest.argv().to_vec(), guest.run_dir().to_path_buf());
    guest.destroy(Teardown::Kill).await.context("destroy")?;
    Ok(argv)
}

/// Kills and reaps the bare QEMU on every exit path.
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One bare boot: `argv` with `old_run_dir` replaced by a fresh tempdir, spawned directly, until
/// the ready marker appears on the serial console's socket.
fn bare_boot(argv: &[OsString], old_run_dir: &Path) -> Result<Duration> {
    let dir = tempfile::Builder::new()
        .prefix("kvmtest-bench-bare.")
        .tempdir()
        .context("creating the bare run dir")?;
    let old = old_run_dir.to_str().context("run dir is not UTF-8")?;
    let new = dir.path().to_str().context("tempdir is not UTF-8")?;
    let argv: Vec<String> = argv
        .iter()
        .map(|a| {
            a.to_str()
                .map(|s| s.replace(old, new))
                .context("argv element is not UTF-8")
        })
        .collect::<Result<_>>()?;
    let serial = argv
        .iter()
        .flat_map(|a| a.split(','))
        .filter_map(|kv| kv.strip_prefix("path="))
        .find(|p| {
            Path::new(p)
                .file_name()
                .and_then(|f| f.to_str())
                .is_some_and(|f| f.starts_with("serial-"))
        })
        .map(PathBuf::from)
        .context("no serial socket (path=…/serial-*.sock) in the argv")?;
    let (program, rest) = argv.split_first().context("empty argv")?;
    let log = std::fs::File::create(dir.path().join("qemu.log")).context("qemu.log")?;
    let t0 = Instant::now();
    let child = Command::new(program)
        .args(rest)
        .stdin(Stdio::null())
        .stdout(log.try_clone().context("qemu.log")?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .with_context(|| format!("spawning {program}"))?;
    let mut qemu = Reaper(child);
    let mut stream = loop {
        match UnixStream::connect(&serial) {
            Ok(s) => break s,
            Err(e) => {
                if let Some(status) = qemu.0.try_wait()? {
                    let out =
                        std::fs::read_to_string(dir.path().join("qemu.log")).unwrap_or_default();
                    bail!("bare QEMU exited ({status}) before its serial socket: {out}");
                }
                ensure!(
                    t0.elapsed() < BARE_TIMEOUT,
                    "bare QEMU: no serial socket {}: {e}",
                    serial.display()
                );
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    };
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .context("serial read timeout")?;
    let mut seen = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => bail!(
                "bare QEMU closed its serial console before {}: {}",
                marker(),
                String::from_utf8_lossy(&seen)
            ),
            Ok(n) => {
                seen.extend_from_slice(&chunk[..n]);
                if seen.windows(READY_MARKER.len()).any(|w| w == READY_MARKER) {
                    let took = t0.elapsed();
                    drop(qemu);
                    return Ok(took);
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e).context("reading the bare QEMU's serial console"),
        }
        ensure!(
            t0.elapsed() < BARE_TIMEOUT,
            "bare QEMU: no {} after {BARE_TIMEOUT:?}",
            marker()
        );
    }
}
