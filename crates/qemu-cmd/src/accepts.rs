//! Whether a QEMU accepts a built command line: start it paused, talk QMP, quit.
//!
//! [`start_and_quit`] runs the command (it must hold `-S`, which avocado-vt's default
//! `qemu_stop = on` renders), connects to one of its QMP monitors (a unix socket the command
//! line serves), sends `qmp_capabilities` and `query-status`, then `quit`, and waits for the
//! exit. Everything is bounded by one timeout; the child is killed and reaped on every path
//! ([`Running`]'s drop), so no QEMU outlives the call. Used by the `qemu_accepts` test and by
//! `cargo xtask qemu-accepts`; with [`crate::probe`] it is the only place of this crate that
//! runs a program.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::QemuCommand;

/// Why QEMU did not accept a command line (QEMU's stderr where there is one).
#[derive(Debug, thiserror::Error)]
pub enum Rejected {
    /// The program could not be started.
    #[error("spawning the QEMU binary: {0}")]
    Spawn(#[from] std::io::Error),
    /// QEMU exited before its QMP monitor answered: it refused the command line.
    #[error("QEMU exited ({status})\n--- stderr ---\n{stderr}")]
    Exited {
        /// The exit status.
        status: String,
        /// Its stderr.
        stderr: String,
    },
    /// QEMU ran but QMP went wrong (unexpected reply, closed connection, not paused…).
    #[error("{what}\n--- stderr ---\n{stderr}")]
    Qmp {
        /// What went wrong.
        what: String,
        /// Its stderr.
        stderr: String,
    },
    /// Nothing happened in time (no socket, no reply, no exit after `quit`); QEMU was killed.
    #[error("timed out: {what}\n--- stderr ---\n{stderr}")]
    Timeout {
        /// What did not happen in time.
        what: String,
        /// Its stderr.
        stderr: String,
    },
}

/// A started QEMU: killed and reaped on drop (also on panic), its stderr collected by a thread
/// (so a chatty QEMU never blocks on a full pipe).
pub struct Running {
    child: Child,
    stderr: Option<JoinHandle<String>>,
}

impl Running {
    /// Starts `cmd` with stdin and stdout closed and stderr captured.
    ///
    /// # Errors
    /// The spawn error.
    pub fn start(cmd: &QemuCommand) -> std::io::Result<Running> {
        let mut command = cmd.command();
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn()?;
        let stderr = child.stderr.take().map(|mut e| {
            std::thread::spawn(move || {
                let mut s = Vec::new();
                let _ = e.read_to_end(&mut s);
                String::from_utf8_lossy(&s).into_owned()
            })
        });
        Ok(Running { child, stderr })
    }

    /// The exit status, if it exited.
    fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(s)) => Some(s.to_string()),
            Ok(None) => None,
            Err(e) => Some(format!("unknown ({e})")),
        }
    }

    /// Waits up to `grace` for the exit, kills otherwise, and returns the stderr.
    pub fn finish(&mut self, grace: Duration) -> String {
        self.finish_status(grace).1
    }

    /// [`Running::finish`], with the exit status when QEMU exited by itself within `grace`.
    fn finish_status(&mut self, grace: Duration) -> (Option<String>, String) {
        let deadline = Instant::now() + grace;
        let mut status = self.exited();
        while status.is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
            status = self.exited();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        (status, stderr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn qmp_line(reader: &mut BufReader<UnixStream>) -> Result<String, String> {
    let mut line = String::new();
    match reader.read_line(&mut line) {
        Ok(0) => Err("QMP closed the connection".into()),
        Ok(_) => Ok(line),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            Err("timed out waiting for a QMP reply".into())
        }
        Err(e) => Err(format!("reading QMP: {e}")),
    }
}

/// A QMP reply line that is not an event.
fn qmp_reply(reader: &mut BufReader<UnixStream>) -> Result<String, String> {
    loop {
        let line = qmp_line(reader)?;
        if !line.contains("\"event\"") {
            return Ok(line);
        }
    }
}

/// Starts `cmd`, waits for the QMP monitor on `qmp_socket`, sends `qmp_capabilities` and
/// `query-status`, then `quit`, and waits for QEMU to exit; all within `timeout`. Returns
/// `query-status`'s reply (`prelaunch` under `-S`).
///
/// # Errors
/// [`Rejected`]: QEMU exited early (the command line was refused), QMP misbehaved, or time ran
/// out. QEMU is killed and reaped in every case.
pub fn start_and_quit(
    cmd: &QemuCommand,
    qmp_socket: &Path,
    timeout: Duration,
) -> Result<String, Rejected> {
    let mut qemu = Running::start(cmd)?;
    let deadline = Instant::now() + timeout;
    let grace = Duration::from_secs(2);
    let stream = loop {
        if let Some(status) = qemu.exited() {
            let stderr = qemu.finish(Duration::ZERO);
            return Err(Rejected::Exited { status, stderr });
        }
        if let Ok(s) = UnixStream::connect(qmp_socket) {
            break s;
        }
        if Instant::now() > deadline {
            let stderr = qemu.finish(Duration::ZERO);
            return Err(Rejected::Timeout {
                what: format!("no QMP monitor on {}", qmp_socket.display()),
                stderr,
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let talk = || -> Result<String, String> {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(100));
        stream
            .set_read_timeout(Some(left))
            .map_err(|e| e.to_string())?;
        let mut writer = stream.try_clone().map_err(|e| e.to_string())?;
        let mut reader = BufReader::new(stream.try_clone().map_err(|e| e.to_string())?);
        let greeting = qmp_line(&mut reader)?;
        if !greeting.contains("\"QMP\"") {
            return Err(format!("unexpected QMP greeting: {greeting}"));
        }
        let mut status = String::new();
        for cmd in ["qmp_capabilities", "query-status"] {
            writeln!(writer, "{{\"execute\":\"{cmd}\"}}").map_err(|e| e.to_string())?;
            let reply = qmp_reply(&mut reader)?;
            if !reply.contains("\"return\"") {
                return Err(format!("{cmd}: {}", reply.trim()));
            }
            status = reply.trim().to_string();
        }
        writeln!(writer, "{{\"execute\":\"quit\"}}").map_err(|e| e.to_string())?;
        // Keep the connection until QEMU answers, so the command is not dropped with it.
        qmp_reply(&mut reader).map(|_| status)
    };
    let status = match talk() {
        Ok(s) => s,
        Err(what) => {
            let (status, stderr) = qemu.finish_status(grace);
            return Err(match status {
                // It served QMP (chardevs come first) but refused a later option.
                Some(status) if !what.starts_with("timed out") => {
                    Rejected::Exited { status, stderr }
                }
                _ if what.starts_with("timed out") => Rejected::Timeout { what, stderr },
                _ => Rejected::Qmp { what, stderr },
            });
        }
    };
    while qemu.exited().is_none() {
        if Instant::now() > deadline {
            let stderr = qemu.finish(Duration::ZERO);
            return Err(Rejected::Timeout {
                what: "QEMU did not exit after `quit`".into(),
                stderr,
            });
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = qemu.finish(Duration::ZERO);
    Ok(status)
}
