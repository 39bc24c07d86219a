//! [`QgaClient`]: one guest-agent connection, its commands (untyped, typed by `qapi`, and
//! those without a reply on success), resynchronisation and closing.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::config::QgaConfig;
use super::conn::{Conn, Message, ReadError};
use crate::error::{Disconnect, Error, ErrorClass};
use crate::transcript::{Direction, Transcript};

/// Commands that send no reply when they succeed (`success-response: false` in the agent's
/// schema and in `guest-info`): the guest goes down or to sleep instead.
pub const NO_REPLY_COMMANDS: &[&str] = &[
    "guest-shutdown",
    "guest-suspend-disk",
    "guest-suspend-ram",
    "guest-suspend-hybrid",
];

/// What became of a command that has no reply on success.
#[derive(Debug, Clone, PartialEq)]
pub enum NoReply {
    /// Nothing arrived within [`QgaConfig::no_reply_grace`]: the agent accepted it. The next
    /// command resynchronises first, so a late error reply cannot be taken for its answer.
    Silent,
    /// The agent answered with a `return` after all (an agent that replies on success).
    Returned(Value),
    /// The connection ended within the grace period: QEMU exited (a powered-down guest)
    /// or closed the socket. Later commands fail with [`Error::AgentGone`].
    Disconnected,
}

/// What one call expects after sending its command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// A `return` or an `error`.
    Reply,
    /// Nothing on success; an `error` within the grace period.
    NoReply,
}

/// What one call does under the connection's lock.
#[derive(Clone, Copy)]
enum Op<'a> {
    /// Resynchronise only.
    Sync,
    /// Send a command line and read what it expects.
    Command { line: &'a [u8], expect: Expect },
}

/// The result of an [`Op`].
enum Outcome {
    Synced,
    Reply(Value),
    NoReply(NoReply),
}

/// Why an [`Op`] failed, before it is named.
enum Fail {
    Gone(Disconnect),
    Protocol(String),
    Agent { class: String, desc: String },
}

impl From<Disconnect> for Fail {
    fn from(d: Disconnect) -> Self {
        Fail::Gone(d)
    }
}

impl From<ReadError> for Fail {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Gone(d) => Fail::Gone(d),
            ReadError::TooLong(limit) => {
                Fail::Protocol(format!("a line longer than {limit} bytes"))
            }
        }
    }
}

struct Inner {
    addr: String,
    conn: tokio::sync::Mutex<Conn>,
    config: QgaConfig,
    transcript: Option<Transcript>,
    /// Commands with no reply on success: [`NO_REPLY_COMMANDS`] plus what `guest-info` said.
    no_reply: Mutex<BTreeSet<String>>,
}

/// A connection to a QEMU guest agent (`qemu-ga`) on a unix socket: the host end of the
/// guest's `org.qemu.guest_agent.0` virtio port. Cheap to clone; clones share the
/// connection, and commands run one at a time (the agent answers in order, without ids).
///
/// Every command has a timeout and fails with an error naming it: [`Error::AgentTimeout`]
/// (hung or absent agent), [`Error::AgentGone`] (QEMU gone), [`Error::Agent`] (the agent's
/// own error), [`Error::AgentProtocol`] (garbage; the next command resynchronises).
#[derive(Clone)]
pub struct QgaClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for QgaClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QgaClient")
            .field("addr", &self.inner.addr)
            .finish_non_exhaustive()
    }
}

fn ended_error(command: &str, cause: &Arc<Disconnect>) -> Error {
    match **cause {
        Disconnect::ClosedByClient => Error::Closed {
            command: command.to_owned(),
        },
        _ => Error::AgentGone {
            command: command.to_owned(),
            cause: cause.clone(),
        },
    }
}

impl QgaClient {
    /// Connects to the agent's socket (retrying while it does not exist yet, within
    /// [`QgaConfig::connect_timeout`]) and synchronises with `guest-sync-delimited` within
    /// [`QgaConfig::sync_timeout`].
    ///
    /// # Errors
    /// [`Error::Connect`]; [`Error::Transcript`]; the sync's [`Error::AgentTimeout`] (no
    /// agent answering: not running, guest not up) or [`Error::AgentGone`].
    pub async fn connect_unix(path: impl AsRef<Path>, config: QgaConfig) -> Result<Self, Error> {
        let path = path.as_ref();
        let addr = format!("unix:{}", path.display());
        let start = Instant::now();
        let deadline = start + config.connect_timeout;
        let stream = loop {
            match tokio::time::timeout_at(deadline, tokio::net::UnixStream::connect(path)).await {
                Ok(Ok(s)) => break s,
                Ok(Err(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                    ) && Instant::now() + Duration::from_millis(20) < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Ok(Err(source)) => {
                    return Err(Error::Connect {
                        addr,
                        waited: start.elapsed(),
                        source,
                    })
                }
                Err(_) => {
                    return Err(Error::Connect {
                        addr,
                        waited: start.elapsed(),
                        source: std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "connect timed out",
                        ),
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
        let sync_timeout = config.sync_timeout;
        let client = Self {
            inner: Arc::new(Inner {
                addr,
                conn: tokio::sync::Mutex::new(Conn::new(stream)),
                config,
                transcript,
                no_reply: Mutex::new(NO_REPLY_COMMANDS.iter().map(|&c| c.to_owned()).collect()),
            }),
        };
        client
            .op("guest-sync-delimited (on connect)", Op::Sync, sync_timeout)
            .await?;
        Ok(client)
    }

    /// The address connected to, for messages.
    pub fn addr(&self) -> &str {
        &self.inner.addr
    }

    /// The settings it was connected with.
    pub fn config(&self) -> &QgaConfig {
        &self.inner.config
    }

    /// The transcript path, if one is written.
    pub fn transcript_path(&self) -> Option<&Path> {
        self.inner.transcript.as_ref().map(Transcript::path)
    }

    /// Whether `command` has no reply on success ([`NO_REPLY_COMMANDS`], plus any that
    /// [`QgaClient::info`] reported with `success-response: false`).
    pub fn is_no_reply(&self, command: &str) -> bool {
        self.inner
            .no_reply
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(command)
    }

    /// Records commands the agent says have no reply on success.
    pub(super) fn learn_no_reply(&self, commands: impl IntoIterator<Item = String>) {
        self.inner
            .no_reply
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(commands);
    }

    /// Runs any command by name with the default timeout and returns its `return` value.
    /// `args` of `Value::Null` sends no `arguments`. A command without a reply on success
    /// ([`QgaClient::is_no_reply`]) returns `{}` once accepted (see
    /// [`QgaClient::execute_no_reply`] to tell how).
    ///
    /// # Errors
    /// See [`QgaClient`].
    pub async fn execute(&self, command: &str, args: Value) -> Result<Value, Error> {
        self.execute_timeout(command, args, self.inner.config.command_timeout)
            .await
    }

    /// [`QgaClient::execute`] with an explicit timeout.
    ///
    /// # Errors
    /// See [`QgaClient`].
    pub async fn execute_timeout(
        &self,
        command: &str,
        args: Value,
        timeout: Duration,
    ) -> Result<Value, Error> {
        if self.is_no_reply(command) {
            return match self.no_reply_timeout(command, &args, timeout).await? {
                NoReply::Returned(v) => Ok(v),
                NoReply::Silent | NoReply::Disconnected => Ok(Value::Object(Default::default())),
            };
        }
        let line = encode(command, &args)?;
        match self
            .op(
                command,
                Op::Command {
                    line: &line,
                    expect: Expect::Reply,
                },
                timeout,
            )
            .await?
        {
            Outcome::Reply(v) => Ok(v),
            Outcome::Synced | Outcome::NoReply(_) => Ok(Value::Null),
        }
    }

    /// Sends a command that has no reply on success (`guest-shutdown`, `guest-suspend-*`) and
    /// waits [`QgaConfig::no_reply_grace`] for an error reply, as avocado-vt's `shutdown`
    /// does (it waits and takes no reply as success).
    ///
    /// # Errors
    /// [`Error::Agent`] when the agent refused it; otherwise see [`QgaClient`].
    pub async fn execute_no_reply(&self, command: &str, args: Value) -> Result<NoReply, Error> {
        self.no_reply_timeout(command, &args, self.inner.config.command_timeout)
            .await
    }

    async fn no_reply_timeout(
        &self,
        command: &str,
        args: &Value,
        timeout: Duration,
    ) -> Result<NoReply, Error> {
        let line = encode(command, args)?;
        match self
            .op(
                command,
                Op::Command {
                    line: &line,
                    expect: Expect::NoReply,
                },
                timeout,
            )
            .await?
        {
            Outcome::NoReply(n) => Ok(n),
            Outcome::Reply(v) => Ok(NoReply::Returned(v)),
            Outcome::Synced => Ok(NoReply::Silent),
        }
    }

    /// Runs a typed command of the `qapi` crate's QGA schema (`qapi::qga::guest_info {}`…)
    /// and decodes its result.
    ///
    /// ```no_run
    /// # async fn f(qga: monitor::QgaClient) -> Result<(), monitor::Error> {
    /// let info = qga.run(&qapi::qga::guest_info {}).await?;
    /// println!("agent {}", info.version);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Encode`], [`Error::Decode`] (a reply the schema does not describe; `execute`
    /// still works); otherwise see [`QgaClient`].
    pub async fn run<C: qapi::Command>(&self, command: &C) -> Result<C::Ok, Error> {
        self.run_timeout(command, self.inner.config.command_timeout)
            .await
    }

    /// [`QgaClient::run`] with an explicit timeout.
    ///
    /// # Errors
    /// As [`QgaClient::run`].
    pub async fn run_timeout<C: qapi::Command>(
        &self,
        command: &C,
        timeout: Duration,
    ) -> Result<C::Ok, Error> {
        let args = typed_args(command)?;
        let ret = self.execute_timeout(C::NAME, args, timeout).await?;
        serde_json::from_value(ret).map_err(|source| Error::Decode {
            command: C::NAME.to_owned(),
            source,
        })
    }

    /// Resynchronises now (`guest-sync-delimited` after a 0xFF byte), whether or not the
    /// connection is believed in step. Commands do this by themselves when needed.
    ///
    /// # Errors
    /// [`Error::AgentTimeout`], [`Error::AgentGone`], [`Error::Closed`].
    pub async fn sync(&self) -> Result<(), Error> {
        self.op(
            "guest-sync-delimited",
            Op::Sync,
            self.inner.config.command_timeout,
        )
        .await
        .map(drop)
    }

    /// Whether the connection is known to have ended (QEMU gone, or [`QgaClient::close`]).
    /// `false` while a command is in progress: that command finds out.
    pub fn is_closed(&self) -> bool {
        self.inner
            .conn
            .try_lock()
            .map(|c| c.ended.is_some())
            .unwrap_or(false)
    }

    /// Closes the connection once the command in progress (if any) is done; later commands
    /// fail with [`Error::Closed`]. Waits until the transcript is flushed.
    pub async fn close(&self) {
        {
            let mut conn = self.inner.conn.lock().await;
            if conn.ended.is_none() {
                conn.ended = Some(Arc::new(Disconnect::ClosedByClient));
                conn.shutdown().await;
                self.meta("closed by the client");
            }
        }
        self.flush_transcript().await;
    }

    /// Waits until everything recorded in the transcript so far is on disk.
    pub async fn flush_transcript(&self) {
        if let Some(t) = &self.inner.transcript {
            t.flush().await;
        }
    }

    fn meta(&self, text: impl Into<String>) {
        if let Some(t) = &self.inner.transcript {
            t.text(Direction::Meta, text);
        }
    }

    /// Runs `op` under the connection's lock within `timeout` (waiting for the lock
    /// included), resynchronising first when the connection is not in step, and names
    /// every failure.
    async fn op(&self, label: &str, op: Op<'_>, timeout: Duration) -> Result<Outcome, Error> {
        let deadline = Instant::now() + timeout;
        let Ok(mut conn) = tokio::time::timeout_at(deadline, self.inner.conn.lock()).await else {
            let command = format!("{label} (waiting for the command before it)");
            self.meta(format!("`{command}` timed out after {timeout:?}"));
            return Err(Error::AgentTimeout {
                command,
                timeout,
                partial_bytes: 0,
            });
        };
        if let Some(cause) = &conn.ended {
            return Err(ended_error(label, cause));
        }
        let transcript = self.inner.transcript.as_ref();
        let max = self.inner.config.max_line_bytes;
        let grace = self.inner.config.no_reply_grace;
        conn.doing = label.to_owned();
        let result = tokio::time::timeout_at(deadline, async {
            let stale = conn.has_stale_input()?;
            if stale {
                if let Some(t) = transcript {
                    t.text(
                        Direction::Meta,
                        "unexpected input before the command: resynchronising",
                    );
                }
            }
            let line = match op {
                Op::Sync => {
                    conn.resync(transcript, max).await?;
                    return Ok(Outcome::Synced);
                }
                Op::Command { line, .. } => line,
            };
            if !conn.synced || stale {
                conn.doing = format!("guest-sync-delimited (resync before `{label}`)");
                conn.resync(transcript, max).await?;
                conn.doing = label.to_owned();
            }
            // Out of step until the reply is read: a timeout or cancellation from here on
            // leaves the reply (or half a command) to be cleaned up by the next resync.
            conn.synced = false;
            if let Some(t) = transcript {
                t.json(Direction::Out, line);
            }
            let mut bytes = Vec::with_capacity(line.len() + 1);
            bytes.extend_from_slice(line);
            bytes.push(b'\n');
            conn.write(&bytes).await?;
            let expect = match op {
                Op::Command { expect, .. } => expect,
                Op::Sync => Expect::Reply,
            };
            let read = match expect {
                Expect::Reply => read_reply(&mut conn, transcript, max).await,
                Expect::NoReply => {
                    let grace_end = Instant::now() + grace;
                    match tokio::time::timeout_at(
                        grace_end.min(deadline),
                        read_reply(&mut conn, transcript, max),
                    )
                    .await
                    {
                        Err(_) => return Ok(Outcome::NoReply(NoReply::Silent)),
                        Ok(Err(Fail::Gone(d))) => {
                            if let Some(t) = transcript {
                                t.text(
                                    Direction::Meta,
                                    format!("connection ended after `{label}`: {d}"),
                                );
                            }
                            conn.ended = Some(Arc::new(d));
                            return Ok(Outcome::NoReply(NoReply::Disconnected));
                        }
                        Ok(r) => r,
                    }
                }
            };
            let v = read?;
            conn.synced = true;
            Ok::<Outcome, Fail>(Outcome::Reply(v))
        })
        .await;
        match result {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(Fail::Agent { class, desc })) => {
                // A whole reply was read: still in step.
                conn.synced = true;
                Err(Error::Agent {
                    command: label.to_owned(),
                    class: ErrorClass::from_wire(&class),
                    desc,
                })
            }
            Ok(Err(Fail::Protocol(detail))) => {
                conn.synced = false;
                let command = conn.doing.clone();
                self.meta(format!("bad reply to `{command}`: {detail}"));
                Err(Error::AgentProtocol { command, detail })
            }
            Ok(Err(Fail::Gone(d))) => {
                let cause = Arc::new(d);
                conn.ended = Some(cause.clone());
                let command = conn.doing.clone();
                self.meta(format!("connection ended during `{command}`: {cause}"));
                Err(Error::AgentGone { command, cause })
            }
            Err(_) => {
                conn.synced = false;
                let command = conn.doing.clone();
                let partial_bytes = conn.partial_bytes();
                self.meta(format!("`{command}` timed out after {timeout:?}"));
                Err(Error::AgentTimeout {
                    command,
                    timeout,
                    partial_bytes,
                })
            }
        }
    }
}

/// Reads one reply: blank lines skipped, a leading 0xFF sentinel dropped (as avocado-vt
/// does); a `return` is `Ok`, an `error` is [`Fail::Agent`], anything else
/// [`Fail::Protocol`].
async fn read_reply(
    conn: &mut Conn,
    transcript: Option<&Transcript>,
    max: usize,
) -> Result<Value, Fail> {
    loop {
        let line = conn.next_line(max).await?;
        let start = line
            .iter()
            .position(|&b| b != super::conn::DELIMITER)
            .unwrap_or(line.len());
        let line = &line[start..];
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if let Some(t) = transcript {
            t.json(Direction::In, line);
        }
        return match Message::parse(line) {
            Ok(Message::Return(v)) => Ok(v),
            Ok(Message::Error { class, desc }) => Err(Fail::Agent { class, desc }),
            Err(detail) => Err(Fail::Protocol(detail)),
        };
    }
}

/// The command line `{"execute": …, "arguments": …}` (no `arguments` for `Null` or `{}`).
fn encode(command: &str, args: &Value) -> Result<Vec<u8>, Error> {
    #[derive(serde::Serialize)]
    struct Request<'a> {
        execute: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        arguments: Option<&'a Value>,
    }
    let arguments = match args {
        Value::Null => None,
        Value::Object(o) if o.is_empty() => None,
        Value::Object(_) => Some(args),
        other => {
            return Err(Error::Encode {
                command: command.to_owned(),
                detail: format!("arguments must be a JSON object, got {other}"),
            })
        }
    };
    serde_json::to_vec(&Request {
        execute: command,
        arguments,
    })
    .map_err(|e| Error::Encode {
        command: command.to_owned(),
        detail: e.to_string(),
    })
}

/// A typed command's arguments as a JSON object.
pub(super) fn typed_args<C: qapi::Command>(command: &C) -> Result<Value, Error> {
    let args = serde_json::to_value(command).map_err(|e| Error::Encode {
        command: C::NAME.to_owned(),
        detail: e.to_string(),
    })?;
    if !args.is_object() {
        return Err(Error::Encode {
            command: C::NAME.to_owned(),
            detail: format!("arguments must be a JSON object, got {args}"),
        });
    }
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_encode_without_empty_arguments() {
        let line = encode("guest-ping", &Value::Null).unwrap_or_default();
        assert_eq!(line, br#"{"execute":"guest-ping"}"#);
        let line = encode("guest-ping", &serde_json::json!({})).unwrap_or_default();
        assert_eq!(line, br#"{"execute":"guest-ping"}"#);
        let line =
            encode("guest-file-close", &serde_json::json!({"handle": 3})).unwrap_or_default();
        assert_eq!(
            line,
            br#"{"execute":"guest-file-close","arguments":{"handle":3}}"#
        );
        assert!(matches!(
            encode("guest-ping", &serde_json::json!([1])),
            Err(Error::Encode { .. })
        ));
    }
}
