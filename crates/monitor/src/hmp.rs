//! The human monitor (HMP): one trait, two transports.
//!
//! [`HumanMonitor`] is what tests written against HMP text use (`info pci`,
//! `device_add …`). It is implemented by [`QmpClient`] (through QMP's
//! `human-monitor-command`) and by [`HmpClient`], which speaks the `(qemu) `
//! prompt protocol on a separate `-monitor` socket. Both return the output
//! with `\n` line endings and no prompt, so the same assertions work on either.
//!
//! The prompt protocol: QEMU's readline echoes what is typed (redrawing the
//! line with escape sequences after every character), answers `\r\n`, prints
//! the output and ends with a fresh `(qemu) ` prompt. So a reply is the text
//! between the first `\r\n` after the command and the next prompt.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::error::{Disconnect, Error};
use crate::qmp::QmpClient;
use crate::transcript::{Direction, Transcript};

const PROMPT: &[u8] = b"(qemu) ";

/// Text commands against QEMU's human monitor, whatever carries them.
pub trait HumanMonitor: Sync {
    /// Runs one HMP command line and returns its output (`\n` line endings,
    /// no prompt, no echo). HMP reports most failures as output text, so an
    /// `Ok` is no proof the command succeeded: check the text.
    fn cmd(&self, command_line: &str) -> impl Future<Output = Result<String, Error>> + Send;

    /// `info <what>`, e.g. `info("pci")`.
    fn info(&self, what: &str) -> impl Future<Output = Result<String, Error>> + Send {
        let line = format!("info {what}");
        async move { self.cmd(&line).await }
    }
}

fn check_line(command_line: &str) -> Result<(), Error> {
    if command_line.contains(['\n', '\r']) {
        return Err(Error::InvalidCommandLine {
            command: command_line.to_owned(),
        });
    }
    Ok(())
}

fn normalize(text: &str) -> String {
    text.replace("\r\n", "\n")
}

impl HumanMonitor for QmpClient {
    fn cmd(&self, command_line: &str) -> impl Future<Output = Result<String, Error>> + Send {
        let checked = check_line(command_line);
        let args = serde_json::json!({ "command-line": command_line });
        async move {
            checked?;
            let ret = self.execute("human-monitor-command", args).await?;
            match ret {
                serde_json::Value::String(s) => Ok(normalize(&s)),
                other => Err(Error::Decode {
                    command: "human-monitor-command".into(),
                    source: <serde_json::Error as serde::de::Error>::custom(format!(
                        "expected a string, got {other}"
                    )),
                }),
            }
        }
    }
}

/// Settings for an [`HmpClient`].
#[derive(Debug, Clone)]
pub struct HmpConfig {
    /// Default timeout for one command's output.
    pub command_timeout: Duration,
    /// Budget for connecting (retried while the socket does not yet exist)
    /// and reading the banner and first prompt.
    pub connect_timeout: Duration,
    /// Most output accepted for one command, in bytes.
    pub max_output_bytes: usize,
    /// Where to write the JSON-lines transcript, if anywhere.
    pub transcript: Option<PathBuf>,
}

impl Default for HmpConfig {
    fn default() -> Self {
        Self {
            command_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_output_bytes: 16 << 20,
            transcript: None,
        }
    }
}

impl HmpConfig {
    /// Sets [`HmpConfig::transcript`].
    pub fn transcript(mut self, path: impl Into<PathBuf>) -> Self {
        self.transcript = Some(path.into());
        self
    }

    /// Sets [`HmpConfig::command_timeout`].
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// Sets [`HmpConfig::max_output_bytes`].
    pub fn max_output_bytes(mut self, bytes: usize) -> Self {
        self.max_output_bytes = bytes;
        self
    }
}

struct Conn {
    r: OwnedReadHalf,
    w: OwnedWriteHalf,
    buf: Vec<u8>,
    /// Set while a command runs; still set afterwards if it was cut short
    /// (timeout, cancellation), so the next command first skips the rest of
    /// the old output up to its prompt.
    desynced: bool,
    ended: Option<Arc<Disconnect>>,
}

impl Conn {
    /// Reads until the buffer ends with the prompt; returns everything before it.
    async fn read_to_prompt(&mut self, max: usize) -> Result<Vec<u8>, Disconnect> {
        loop {
            if self.buf.ends_with(PROMPT) {
                let n = self.buf.len() - PROMPT.len();
                let out = self.buf[..n].to_vec();
                self.buf.clear();
                return Ok(out);
            }
            if self.buf.len() > max {
                return Err(Disconnect::LineTooLong { limit: max });
            }
            self.buf.reserve(8192);
            match self.r.read_buf(&mut self.buf).await {
                Ok(0) if self.buf.is_empty() => return Err(Disconnect::Eof),
                Ok(0) => {
                    return Err(Disconnect::EofInLine {
                        bytes: self.buf.len(),
                    })
                }
                Ok(_) => {}
                Err(e) => return Err(Disconnect::Io(e)),
            }
        }
    }
}

/// A client for QEMU's human monitor on a unix socket
/// (`-monitor unix:PATH,server=on,wait=off`). Commands run one at a time;
/// concurrent callers queue.
pub struct HmpClient {
    addr: String,
    conn: Mutex<Conn>,
    config: HmpConfig,
    banner: String,
    transcript: Option<Transcript>,
}

impl std::fmt::Debug for HmpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HmpClient")
            .field("addr", &self.addr)
            .finish()
    }
}

impl HmpClient {
    /// Connects (retrying while the socket does not yet exist) and reads the
    /// banner up to the first prompt.
    pub async fn connect_unix(path: impl AsRef<Path>, config: HmpConfig) -> Result<Self, Error> {
        let path = path.as_ref();
        let addr = format!("unix:{}", path.display());
        let start = Instant::now();
        let deadline = start + config.connect_timeout;
        let stream = loop {
            match tokio::net::UnixStream::connect(path).await {
                Ok(s) => break s,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                    ) && Instant::now() + Duration::from_millis(10) < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(source) => {
                    return Err(Error::Connect {
                        addr,
                        waited: start.elapsed(),
                        source,
                    })
                }
            }
        };
        let transcript = config
            .transcript
            .as_deref()
            .map(Transcript::create)
            .transpose()?;
        if let Some(t) = &transcript {
            t.text(Direction::Meta, format!("connected to {addr}"));
        }
        let (r, w) = stream.into_split();
        let mut conn = Conn {
            r,
            w,
            buf: Vec::new(),
            desynced: false,
            ended: None,
        };
        let banner =
            match tokio::time::timeout_at(deadline, conn.read_to_prompt(config.max_output_bytes))
                .await
            {
                Ok(Ok(b)) => normalize(&String::from_utf8_lossy(&b)),
                Ok(Err(cause)) => {
                    return Err(Error::Handshake {
                        addr,
                        detail: format!("reading the banner: {cause}"),
                    })
                }
                Err(_) => {
                    return Err(Error::Handshake {
                        addr,
                        detail: format!("no `(qemu) ` prompt within {:?}", config.connect_timeout),
                    })
                }
            };
        if let Some(t) = &transcript {
            t.text(Direction::In, banner.clone());
        }
        Ok(Self {
            addr,
            conn: Mutex::new(conn),
            config,
            banner,
            transcript,
        })
    }

    /// The banner QEMU printed before the first prompt.
    pub fn banner(&self) -> &str {
        &self.banner
    }

    /// Runs a command with an explicit timeout.
    pub async fn cmd_timeout(
        &self,
        command_line: &str,
        timeout: Duration,
    ) -> Result<String, Error> {
        check_line(command_line)?;
        let deadline = Instant::now() + timeout;
        let mut conn = match tokio::time::timeout_at(deadline, self.conn.lock()).await {
            Ok(conn) => conn,
            Err(_) => return Err(self.timeout_error(command_line, timeout, 0)),
        };
        if let Some(cause) = &conn.ended {
            return Err(match **cause {
                Disconnect::ClosedByClient => Error::Closed {
                    command: command_line.to_owned(),
                },
                _ => Error::ConnectionLost {
                    command: command_line.to_owned(),
                    cause: cause.clone(),
                },
            });
        }
        let max = self.config.max_output_bytes;
        let result = tokio::time::timeout_at(deadline, async {
            if conn.desynced {
                // The previous command was cut short: skip to its prompt.
                conn.read_to_prompt(max).await?;
            }
            conn.desynced = true;
            if let Some(t) = &self.transcript {
                t.text(Direction::Out, command_line);
            }
            let mut line = command_line.as_bytes().to_vec();
            line.push(b'\n');
            conn.w.write_all(&line).await.map_err(Disconnect::Io)?;
            let out = conn.read_to_prompt(max).await?;
            conn.desynced = false;
            Ok::<_, Disconnect>(out)
        })
        .await;
        match result {
            Ok(Ok(raw)) => {
                let text = String::from_utf8_lossy(&raw);
                // Drop the echo: everything up to the first line break.
                let body = match text.find("\r\n") {
                    Some(i) => &text[i + 2..],
                    None => "",
                };
                let out = normalize(body);
                if let Some(t) = &self.transcript {
                    t.text(Direction::In, out.clone());
                }
                Ok(out)
            }
            Ok(Err(cause)) => {
                let cause = Arc::new(cause);
                conn.ended = Some(cause.clone());
                let _ = conn.w.shutdown().await;
                if let Some(t) = &self.transcript {
                    t.text(Direction::Meta, format!("connection ended: {cause}"));
                }
                Err(Error::ConnectionLost {
                    command: command_line.to_owned(),
                    cause,
                })
            }
            Err(_) => {
                let partial = conn.buf.len();
                Err(self.timeout_error(command_line, timeout, partial))
            }
        }
    }

    fn timeout_error(&self, command_line: &str, timeout: Duration, partial_bytes: usize) -> Error {
        if let Some(t) = &self.transcript {
            t.text(
                Direction::Meta,
                format!("`{command_line}` timed out after {timeout:?}"),
            );
        }
        Error::Timeout {
            command: command_line.to_owned(),
            timeout,
            partial_bytes,
        }
    }

    /// Closes the connection. A command in progress holds the connection
    /// until its own timeout; later commands fail with [`Error::Closed`].
    pub async fn close(&self) {
        let mut conn = self.conn.lock().await;
        if conn.ended.is_none() {
            conn.ended = Some(Arc::new(Disconnect::ClosedByClient));
            let _ = conn.w.shutdown().await;
        }
        if let Some(t) = &self.transcript {
            t.flush().await;
        }
    }

    /// Waits until everything recorded in the transcript so far is on disk.
    pub async fn flush_transcript(&self) {
        if let Some(t) = &self.transcript {
            t.flush().await;
        }
    }
}

impl HumanMonitor for HmpClient {
    fn cmd(&self, command_line: &str) -> impl Future<Output = Result<String, Error>> + Send {
        self.cmd_timeout(command_line, self.config.command_timeout)
    }
}
