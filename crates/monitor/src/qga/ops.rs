//! The guest-agent operations tests use, on top of [`QgaClient::run`]: what avocado-vt's
//! `QemuAgent` offers (ping, info, fsfreeze with its status, shutdown and suspend without a
//! reply, network interfaces, OS info, time) and what tp-qemu's tests build from the raw
//! commands: `guest-exec` polled with `guest-exec-status` until the process exits, its
//! base64 output decoded; whole-file reads and writes through `guest-file-open`/`read`/
//! `write`/`close`, the file always closed.

use std::time::Duration;

use qapi::qga;
use serde_json::Value;
use tokio::time::Instant;

use super::client::{typed_args, NoReply, QgaClient};
use crate::error::Error;

/// A process to run in the guest with `guest-exec`.
#[derive(Debug, Clone, Default)]
pub struct ExecRequest {
    /// The program (looked up in the agent's `PATH`) and its arguments.
    pub argv: Vec<String>,
    /// Environment entries `NAME=value` (replacing the agent's environment when given).
    pub env: Vec<String>,
    /// Bytes written to the process's stdin (sent base64-encoded).
    pub input: Option<Vec<u8>>,
    /// How long the process may run; `None`: the client's command timeout.
    pub timeout: Option<Duration>,
}

impl ExecRequest {
    /// `argv[0]` with arguments `argv[1..]`.
    pub fn new<S: Into<String>>(argv: impl IntoIterator<Item = S>) -> Self {
        Self {
            argv: argv.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    /// Adds an environment entry `NAME=value`.
    pub fn env(mut self, entry: impl Into<String>) -> Self {
        self.env.push(entry.into());
        self
    }

    /// Sets the process's stdin.
    pub fn input(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.input = Some(data.into());
        self
    }

    /// Sets how long the process may run.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

/// How a guest process ended and what it printed (decoded from base64).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// Its pid in the guest.
    pub pid: i64,
    /// Its exit code, when it exited normally.
    pub exit_code: Option<i64>,
    /// The signal that ended it, if one did.
    pub signal: Option<i64>,
    /// Its stdout.
    pub stdout: Vec<u8>,
    /// Its stderr.
    pub stderr: Vec<u8>,
    /// The agent cut stdout at its limit (16 MiB).
    pub stdout_truncated: bool,
    /// The agent cut stderr at its limit.
    pub stderr_truncated: bool,
}

impl ExecOutput {
    /// Exit code 0 and no signal.
    pub fn success(&self) -> bool {
        self.exit_code == Some(0) && self.signal.is_none()
    }

    /// Stdout as text (invalid UTF-8 replaced).
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Stderr as text (invalid UTF-8 replaced).
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// How [`QgaClient::suspend`] suspends the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuspendMode {
    /// `guest-suspend-disk` (S4).
    Disk,
    /// `guest-suspend-ram` (S3).
    Ram,
    /// `guest-suspend-hybrid` (both).
    Hybrid,
}

impl SuspendMode {
    /// The agent command.
    pub fn command(self) -> &'static str {
        match self {
            SuspendMode::Disk => "guest-suspend-disk",
            SuspendMode::Ram => "guest-suspend-ram",
            SuspendMode::Hybrid => "guest-suspend-hybrid",
        }
    }
}

/// The first poll interval of `guest-exec-status`; doubled up to [`EXEC_POLL_MAX`].
const EXEC_POLL_MIN: Duration = Duration::from_millis(20);
const EXEC_POLL_MAX: Duration = Duration::from_millis(500);

impl QgaClient {
    /// `guest-ping`: the agent answers.
    ///
    /// # Errors
    /// See [`QgaClient`].
    pub async fn ping(&self) -> Result<(), Error> {
        self.run(&qga::guest_ping {}).await.map(drop)
    }

    /// `guest-info`: the agent's version and commands. Commands listed with
    /// `success-response: false` are remembered as having no reply.
    ///
    /// # Errors
    /// See [`QgaClient`].
    pub async fn info(&self) -> Result<qga::GuestAgentInfo, Error> {
        let info = self.run(&qga::guest_info {}).await?;
        self.learn_no_reply(
            info.supported_commands
                .iter()
                .filter(|c| !c.success_response)
                .map(|c| c.name.clone()),
        );
        Ok(info)
    }

    /// `guest-network-get-interfaces`.
    ///
    /// # Errors
    /// See [`QgaClient`].
    pub async fn network_get_interfaces(&self) -> Result<Vec<qga::GuestNetworkInterface>, Error> {
        self.run(&qga::guest_network_get_interfaces {}).await
    }

    /// `guest-get-osinfo`.
    ///
    /// # Errors
    /// See [`QgaClient`].
    pub async fn get_osinfo(&self) -> Result<qga::GuestOSInfo, Error> {
        self.run(&qga::guest_get_osinfo {}).await
    }

    /// `guest-get-host-name`.
    ///
    /// # Errors
    /// See [`QgaClient`].
    pub async fn get_host_name(&self) -> Result<String, Error> {
        Ok(self.run(&qga::guest_get_host_name {}).await?.host_name)
    }

    /// `guest-get-time`: the guest's clock, nanoseconds since the epoch.
    ///
    /// # Errors
    /// See [`QgaClient`].
    pub async fn get_time(&self) -> Result<i64, Error> {
        self.run(&qga::guest_get_time {}).await
    }

    /// `guest-set-time`: sets the guest's clock to `nanos` since the epoch, or (`None`) from
    /// its hardware clock.
    ///
    /// # Errors
    /// See [`QgaClient`].
    pub async fn set_time(&self, nanos: Option<i64>) -> Result<(), Error> {
        self.run(&qga::guest_set_time { time: nanos })
            .await
            .map(drop)
    }

    /// `guest-fsfreeze-status`.
    ///
    /// # Errors
    /// See [`QgaClient`].
    pub async fn fsfreeze_status(&self) -> Result<qga::GuestFsfreezeStatus, Error> {
        self.run(&qga::guest_fsfreeze_status {}).await
    }

    /// `guest-fsfreeze-freeze` within [`QgaConfig::freeze_timeout`](super::QgaConfig):
    /// the number of filesystems frozen.
    ///
    /// # Errors
    /// See [`QgaClient`].
    pub async fn fsfreeze_freeze(&self) -> Result<i64, Error> {
        self.run_timeout(&qga::guest_fsfreeze_freeze {}, self.config().freeze_timeout)
            .await
    }

    /// `guest-fsfreeze-thaw`: the number of filesystems thawed.
    ///
    /// # Errors
    /// See [`QgaClient`].
    pub async fn fsfreeze_thaw(&self) -> Result<i64, Error> {
        self.run(&qga::guest_fsfreeze_thaw {}).await
    }

    /// `guest-shutdown` in `mode`. The agent replies only on failure, so success is silence
    /// ([`NoReply::Silent`]) or the connection closing as QEMU exits; that the guest really
    /// went down is for the caller to see (QEMU exiting, its `SHUTDOWN` event).
    ///
    /// # Errors
    /// [`Error::Agent`] when the agent refused; otherwise see [`QgaClient`].
    pub async fn shutdown(&self, mode: qga::GuestShutdownMode) -> Result<NoReply, Error> {
        let args = typed_args(&qga::guest_shutdown { mode: Some(mode) })?;
        self.execute_no_reply("guest-shutdown", args).await
    }

    /// `guest-suspend-{disk,ram,hybrid}`: no reply on success, like
    /// [`QgaClient::shutdown`]. avocado-vt syncs first; so does every command here whose
    /// connection is not in step.
    ///
    /// # Errors
    /// As [`QgaClient::shutdown`].
    pub async fn suspend(&self, mode: SuspendMode) -> Result<NoReply, Error> {
        self.execute_no_reply(mode.command(), Value::Null).await
    }

    /// Runs `argv` in the guest ([`QgaClient::exec_with`] without environment or input).
    ///
    /// # Errors
    /// As [`QgaClient::exec_with`].
    pub async fn exec<S: Into<String>>(
        &self,
        argv: impl IntoIterator<Item = S>,
    ) -> Result<ExecOutput, Error> {
        self.exec_with(ExecRequest::new(argv)).await
    }

    /// Runs a process in the guest: `guest-exec` with its output captured, then
    /// `guest-exec-status` polled (20 ms, doubling up to 500 ms) until it exits; stdout and
    /// stderr decoded from base64. A non-zero exit is an `Ok` with that exit code.
    ///
    /// # Errors
    /// [`Error::Encode`] for an empty argv; [`Error::ExecTimeout`] if the process has not
    /// exited within the request's timeout (it keeps running in the guest); otherwise see
    /// [`QgaClient`].
    pub async fn exec_with(&self, req: ExecRequest) -> Result<ExecOutput, Error> {
        let Some((path, args)) = req.argv.split_first() else {
            return Err(Error::Encode {
                command: "guest-exec".into(),
                detail: "the argv is empty".into(),
            });
        };
        let cmd = qga::guest_exec {
            path: path.clone(),
            arg: Some(args.to_vec()),
            env: (!req.env.is_empty()).then(|| req.env.clone()),
            input_data: req.input.clone(),
            // The boolean form: every agent since 2.5 takes it (the mode enum is 8.1's).
            capture_output: Some(qga::GuestExecCaptureOutput::flag(true)),
        };
        let timeout = req.timeout.unwrap_or(self.config().command_timeout);
        let deadline = Instant::now() + timeout;
        let pid = self.run(&cmd).await?.pid;
        let mut pause = EXEC_POLL_MIN;
        loop {
            let status = self.run(&qga::guest_exec_status { pid }).await?;
            if status.exited {
                return Ok(ExecOutput {
                    pid,
                    exit_code: status.exitcode,
                    signal: status.signal,
                    stdout: status.out_data.unwrap_or_default(),
                    stderr: status.err_data.unwrap_or_default(),
                    stdout_truncated: status.out_truncated.unwrap_or(false),
                    stderr_truncated: status.err_truncated.unwrap_or(false),
                });
            }
            if Instant::now() + pause > deadline {
                return Err(Error::ExecTimeout {
                    argv: req.argv.join(" "),
                    pid,
                    timeout,
                });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(EXEC_POLL_MAX);
        }
    }

    /// `guest-file-open`: a handle on `path` opened with `mode` (as `fopen`'s: `r`, `w`,
    /// `a`, `r+`…).
    ///
    /// # Errors
    /// See [`QgaClient`].
    pub async fn file_open(&self, path: &str, mode: &str) -> Result<i64, Error> {
        self.run(&qga::guest_file_open {
            path: path.to_owned(),
            mode: Some(mode.to_owned()),
        })
        .await
    }

    /// `guest-file-read` of at most `count` bytes (decoded from base64).
    ///
    /// # Errors
    /// See [`QgaClient`].
    pub async fn file_read(&self, handle: i64, count: usize) -> Result<qga::GuestFileRead, Error> {
        self.run(&qga::guest_file_read {
            handle,
            count: Some(i64::try_from(count).unwrap_or(i64::MAX)),
        })
        .await
    }

    /// `guest-file-write` of `data` (sent base64-encoded): how many bytes were written.
    ///
    /// # Errors
    /// See [`QgaClient`].
    pub async fn file_write(&self, handle: i64, data: &[u8]) -> Result<i64, Error> {
        Ok(self
            .run(&qga::guest_file_write {
                handle,
                buf_b64: data.to_vec(),
                count: None,
            })
            .await?
            .count)
    }

    /// `guest-file-close`.
    ///
    /// # Errors
    /// See [`QgaClient`].
    pub async fn file_close(&self, handle: i64) -> Result<(), Error> {
        self.run(&qga::guest_file_close { handle }).await.map(drop)
    }

    /// The whole of guest file `path`, read in chunks of
    /// [`QgaConfig::file_chunk_bytes`](super::QgaConfig); the file is closed also when a
    /// read fails.
    ///
    /// # Errors
    /// See [`QgaClient`].
    pub async fn file_read_all(&self, path: &str) -> Result<Vec<u8>, Error> {
        let handle = self.file_open(path, "r").await?;
        let chunk = self.config().file_chunk_bytes.max(1);
        let mut out = Vec::new();
        let read = async {
            loop {
                let r = self.file_read(handle, chunk).await?;
                out.extend_from_slice(&r.buf_b64);
                if r.eof || r.count <= 0 {
                    return Ok::<(), Error>(());
                }
            }
        }
        .await;
        let closed = self.file_close(handle).await;
        read?;
        closed?;
        Ok(out)
    }

    /// Writes `data` to guest file `path` (created or truncated), in chunks of
    /// [`QgaConfig::file_chunk_bytes`](super::QgaConfig), and closes it (also when a write
    /// fails).
    ///
    /// # Errors
    /// [`Error::AgentProtocol`] if the agent reports writing nothing; otherwise see
    /// [`QgaClient`].
    pub async fn file_write_all(&self, path: &str, data: &[u8]) -> Result<(), Error> {
        let handle = self.file_open(path, "w").await?;
        let chunk = self.config().file_chunk_bytes.max(1);
        let write = async {
            let mut rest = data;
            while !rest.is_empty() {
                let part = &rest[..rest.len().min(chunk)];
                let n = self.file_write(handle, part).await?;
                let n = usize::try_from(n).unwrap_or(0).min(part.len());
                if n == 0 {
                    return Err(Error::AgentProtocol {
                        command: "guest-file-write".into(),
                        detail: format!("wrote 0 of {} bytes to {path}", part.len()),
                    });
                }
                rest = &rest[n..];
            }
            Ok(())
        }
        .await;
        let closed = self.file_close(handle).await;
        write?;
        closed
    }
}
