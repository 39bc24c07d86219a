//! [`OwnedProcess`]: a child in its own process group that is killed and reaped, never leaked.
//!
//! The child is reaped only under a lock, and its process group is signalled only before the
//! leader is reaped: while the leader exists (even as a zombie) its pid, which is also the group
//! id, cannot be reused, so a signal can never reach an unrelated process. Exit is awaited by
//! polling `try_wait` every 10–50 ms: a pidfd would wake at once, but registering one with tokio
//! is `unsafe` in current tokio, and the poll costs nothing measurable next to QEMU's own
//! start-up and teardown (the monitors see QEMU's exit at once anyway, as their sockets close).

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};

use crate::spawn;

/// How QEMU ended, or that it still runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessState {
    /// Still running (or exited but not yet noticed).
    Running,
    /// Exited and reaped.
    Exited(ExitStatus),
}

#[derive(Debug)]
struct Inner {
    child: Option<Child>,
    status: Option<ExitStatus>,
}

/// A spawned child (QEMU) in its own process group, dying with kvmtest (see the `spawn` module),
/// SIGKILLed with its group and reaped when dropped.
#[derive(Debug)]
pub struct OwnedProcess {
    pid: u32,
    inner: Arc<Mutex<Inner>>,
    output_log: PathBuf,
}

impl OwnedProcess {
    /// Spawns `argv` (program first; no shell), with stdout and stderr appended to `output_log`
    /// and stdin from `/dev/null`.
    pub(crate) fn spawn(argv: &[OsString], output_log: &Path) -> io::Result<OwnedProcess> {
        OwnedProcess::spawn_inheriting(argv, output_log, &[])
    }

    /// [`OwnedProcess::spawn`], with the fds `inherit` left open in the child (QEMU's tap and
    /// vhost-net fds; every other fd of kvmtest is close-on-exec).
    pub(crate) fn spawn_inheriting(
        argv: &[OsString],
        output_log: &Path,
        inherit: &[RawFd],
    ) -> io::Result<OwnedProcess> {
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty argv"))?;
        // The one place QEMU is spawned from.
        #[allow(clippy::disallowed_methods)]
        let mut cmd = Command::new(program);
        cmd.args(args);
        OwnedProcess::spawn_command(cmd, output_log, inherit)
    }

    /// Spawns `cmd` as [`OwnedProcess::spawn_inheriting`] does (its own arguments and
    /// `pre_exec` hooks kept; stdin, stdout and stderr set here).
    pub(crate) fn spawn_command(
        mut cmd: Command,
        output_log: &Path,
        inherit: &[RawFd],
    ) -> io::Result<OwnedProcess> {
        let out = File::options().create(true).append(true).open(output_log)?;
        let err = out.try_clone()?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        let child = spawn::spawn(cmd, inherit)?;
        let pid = child.id();
        Ok(OwnedProcess {
            pid,
            inner: Arc::new(Mutex::new(Inner {
                child: Some(child),
                status: None,
            })),
            output_log: output_log.to_path_buf(),
        })
    }

    /// The process id (also its process group id).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Where stdout and stderr go.
    pub fn output_log(&self) -> &Path {
        &self.output_log
    }

    /// Reaps the process if it has exited (killing what is left of its group first).
    pub fn state(&self) -> ProcessState {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        poll_exit(&mut inner, self.pid)
    }

    /// SIGKILLs the whole process group unless the leader was already reaped. Does not wait.
    pub fn kill(&self) {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.status.is_none() {
            kill_group(self.pid);
        }
    }

    /// Sends SIGTERM to the leader only (QEMU then shuts down as if `quit` had been given).
    pub fn terminate(&self) {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.status.is_none() {
            if let Some(pid) = i32::try_from(self.pid).ok().and_then(Pid::from_raw) {
                let _ = rustix::process::kill_process(pid, Signal::TERM);
            }
        }
    }

    /// Waits up to `timeout` for the process to exit; `None` if it still runs.
    pub async fn wait_timeout(&self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        let mut poll = Duration::from_millis(10);
        loop {
            if let ProcessState::Exited(s) = self.state() {
                return Some(s);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            tokio::time::sleep(left.min(poll)).await;
            poll = (poll * 2).min(Duration::from_millis(50));
        }
    }
}

fn kill_group(pid: u32) {
    if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
        let _ = rustix::process::kill_process_group(pid, Signal::KILL);
    }
}

/// Under the lock: if the leader has exited, kill the rest of its group, then reap it.
fn poll_exit(inner: &mut Inner, pid: u32) -> ProcessState {
    if let Some(s) = inner.status {
        return ProcessState::Exited(s);
    }
    let Some(child) = inner.child.as_mut() else {
        return ProcessState::Running;
    };
    // `waitid(WNOWAIT)` is not in std; peek at /proc instead so that the group is still ours
    // when we kill its stragglers: a zombie leader shows state `Z`.
    if is_zombie(pid) {
        kill_group(pid);
    }
    match child.try_wait() {
        Ok(Some(status)) => {
            inner.status = Some(status);
            ProcessState::Exited(status)
        }
        _ => ProcessState::Running,
    }
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with(['Z', 'X']))
        })
        .unwrap_or(false)
}

impl Drop for OwnedProcess {
    /// The safety net: SIGKILL the group if the leader has not been reaped, and reap it on a
    /// detached thread so that dropping never blocks.
    fn drop(&mut self) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.status.is_some() {
            return;
        }
        kill_group(self.pid);
        if let Some(mut child) = inner.child.take() {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            let spawned = std::thread::Builder::new()
                .name("kvmtest-reaper".into())
                .spawn(move || {
                    let _ = child.wait();
                });
            // If no thread can be started, the zombie is reaped by init when kvmtest exits;
            // the process itself is already dead.
            drop(spawned);
        }
    }
}
