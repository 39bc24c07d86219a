//! Running host commands from tests: argv vectors only, logged before spawning, killed when the
//! test is cancelled or dropped.

use std::ffi::OsString;
use std::process::Stdio;

use crate::registry::TestContext;
use crate::verdict::TestError;

/// What a finished command produced.
#[derive(Debug, Clone)]
pub struct CmdOutput {
    /// The argv, rendered for messages.
    pub display: String,
    /// The exit code (`None` when killed by a signal).
    pub code: Option<i32>,
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Standard error, lossily decoded.
    pub stderr: String,
}

impl CmdOutput {
    /// Whether it exited with 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// A one-paragraph description for failure messages: argv, status and stderr.
    pub fn describe(&self) -> String {
        let code = self
            .code
            .map_or_else(|| "a signal".to_string(), |c| c.to_string());
        format!(
            "`{}` exited with {code}: {}",
            self.display,
            self.stderr.trim()
        )
    }
}

/// Run `argv` in `ctx.dir`, log it and its result, and return its output. Failing to spawn
/// (binary missing) is a [`TestError::Error`]; a non-zero exit is returned for the caller to
/// judge. The child is killed if the test is cancelled.
pub async fn run(ctx: &TestContext, argv: &[OsString]) -> Result<CmdOutput, TestError> {
    let (display, child) = spawn(ctx, argv)?;
    let out = tokio::select! {
        r = child.wait_with_output() => r
            .map_err(|e| TestError::error(format!("waiting for `{display}`: {e}")))?,
        () = ctx.cancel.cancelled() => return Err(TestError::Cancelled),
    };
    Ok(finish(ctx, display, out))
}

/// Like [`run`], and once the child has installed a handler for `signal` (its `SigCgt` in
/// `/proc/PID/status`: before that the signal's default action would kill it) the signal is
/// sent to it by its pid, and again every 5 ms during its first second — `qemu-img` prints
/// its progress on `SIGUSR1`. Logged, as is a child that exits before it handles the signal.
pub async fn run_signalled(
    ctx: &TestContext,
    argv: &[OsString],
    signal: rustix::process::Signal,
) -> Result<CmdOutput, TestError> {
    use tokio::io::AsyncReadExt;
    let (display, mut child) = spawn(ctx, argv)?;
    let read = |pipe: Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>| {
        tokio::spawn(async move {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf).await;
            }
            buf
        })
    };
    let stdout = read(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = read(child.stderr.take().map(|p| Box::new(p) as _));
    let waited = |e: std::io::Error| TestError::error(format!("waiting for `{display}`: {e}"));
    // The signal goes as soon as the child handles it, and again every 5 ms for its first
    // second: a small image converts in a few milliseconds, and one signal that lands before
    // qemu-img reaches its first progress report (or a scheduler that delays this loop) would
    // leave nothing printed. A long run gets no more signals after that second.
    let mut sent = 0u32;
    let mut first: Option<std::time::Instant> = None;
    let status = loop {
        let resend = first.is_none_or(|t| t.elapsed() < std::time::Duration::from_secs(1));
        if resend {
            if let Some(pid) = child.id().filter(|&p| handles(p, signal)) {
                if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
                    match rustix::process::kill_process(p, signal) {
                        Ok(()) => {
                            if first.is_none() {
                                ctx.log.info(format_args!(
                                    "sending signal {} to pid {pid}",
                                    signal.as_raw()
                                ));
                                first = Some(std::time::Instant::now());
                            }
                            sent += 1;
                        }
                        Err(e) => ctx.log.warn(format_args!(
                            "sending signal {} to pid {pid}: {e}",
                            signal.as_raw()
                        )),
                    }
                }
            }
        }
        let poll = std::time::Duration::from_millis(match (first, resend) {
            (None, _) => 1,
            (Some(_), true) => 5,
            (Some(_), false) => 200,
        });
        tokio::select! {
            r = child.wait() => break r.map_err(waited)?,
            () = tokio::time::sleep(poll) => {}
            () = ctx.cancel.cancelled() => return Err(TestError::Cancelled),
        }
    };
    if sent == 0 {
        ctx.log.warn(format_args!(
            "`{display}` exited before it handled signal {}: none sent",
            signal.as_raw()
        ));
    } else {
        ctx.log.info(format_args!(
            "signal {} sent {sent} time(s)",
            signal.as_raw()
        ));
    }
    let (stdout, stderr) = (stdout.await, stderr.await);
    let out = std::process::Output {
        status,
        stdout: stdout.unwrap_or_default(),
        stderr: stderr.unwrap_or_default(),
    };
    Ok(finish(ctx, display, out))
}

/// Whether process `pid` has a handler for `signal` (`SigCgt` of `/proc/PID/status`).
fn handles(pid: u32, signal: rustix::process::Signal) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    let bit = signal.as_raw() - 1;
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
        .is_some_and(|mask| (0..64).contains(&bit) && mask & (1 << bit) != 0)
}

/// Logs `argv` and spawns it in `ctx.dir`, its output piped; returns its rendering too.
fn spawn(
    ctx: &TestContext,
    argv: &[OsString],
) -> Result<(String, tokio::process::Child), TestError> {
    let display = vm::render_argv(argv);
    let Some((prog, args)) = argv.split_first() else {
        return Err(TestError::error("empty command"));
    };
    ctx.log.info(format_args!("run: {display}"));
    // This module is the runner's one way to run a program.
    #[allow(clippy::disallowed_methods)]
    let child = tokio::process::Command::new(prog)
        .args(args)
        .current_dir(&ctx.dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| TestError::error(format!("cannot run `{display}`: {e}")))?;
    Ok((display, child))
}

/// The output of a finished command, logged.
fn finish(ctx: &TestContext, display: String, out: std::process::Output) -> CmdOutput {
    let out = CmdOutput {
        display,
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    ctx.log.info(format_args!(
        "exit {:?}; stdout: {}; stderr: {}",
        out.code,
        out.stdout.trim(),
        out.stderr.trim()
    ));
    out
}
