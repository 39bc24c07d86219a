//! [`QmpClient`]: a cheap-to-clone handle on one QMP connection, and what it
//! offers once connected: sending commands (pipelined, untyped or typed by
//! `qapi`), reading events, closing.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::greeting::Greeting;
use super::reply::{ended_error, PendingReply};
use super::shared::{Outcome, PendingEntry, Shared};
use crate::error::{Disconnect, Error};
use crate::event::{Event, EventCursor, EventFilter, EventListener};
use crate::transcript::{Direction, Transcript};

#[derive(Serialize)]
struct Request<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    execute: Option<&'a str>,
    #[serde(rename = "exec-oob", skip_serializing_if = "Option::is_none")]
    exec_oob: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    arguments: Option<&'a Value>,
    id: u64,
}

pub(super) struct Inner {
    pub(super) shared: Arc<Shared>,
    pub(super) greeting: Greeting,
    pub(super) oob: bool,
    pub(super) tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shared.end(Disconnect::ClosedByClient);
        for task in self
            .tasks
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            task.abort();
        }
    }
}

/// A QMP connection. Cheap to clone; all clones share one connection, so
/// several tasks can have commands in flight at once.
///
/// Dropping the last clone (or calling [`QmpClient::close`]) closes the
/// socket and fails pending commands with [`Error::Closed`].
#[derive(Clone)]
pub struct QmpClient {
    pub(super) inner: Arc<Inner>,
}

impl std::fmt::Debug for QmpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QmpClient")
            .field("addr", &self.inner.shared.addr)
            .field("oob", &self.inner.oob)
            .finish()
    }
}

impl QmpClient {
    /// The greeting QEMU sent.
    pub fn greeting(&self) -> &Greeting {
        &self.inner.greeting
    }

    /// Whether out-of-band execution was negotiated.
    pub fn oob_enabled(&self) -> bool {
        self.inner.oob
    }

    /// The address this client is connected to, for messages.
    pub fn addr(&self) -> &str {
        &self.inner.shared.addr
    }

    /// The transcript path, if one is written.
    pub fn transcript_path(&self) -> Option<&Path> {
        self.inner.shared.transcript.as_ref().map(Transcript::path)
    }

    /// Sends a command and returns a handle to its reply without waiting:
    /// issue many `send`s, then `wait` on each, to pipeline.
    ///
    /// `args` of `Value::Null` sends no `arguments` member.
    pub fn send(&self, command: &str, args: Value) -> Result<PendingReply, Error> {
        self.send_inner(command, &args, false)
    }

    /// Like [`QmpClient::send`] but as `exec-oob`: QEMU runs it even while
    /// an in-band command is blocked. Only for commands that allow OOB, and
    /// only when [`QmpClient::oob_enabled`].
    pub fn send_oob(&self, command: &str, args: Value) -> Result<PendingReply, Error> {
        self.send_inner(command, &args, true)
    }

    /// Registers `command` as pending and encodes its line (newline included).
    fn register(
        &self,
        command: &str,
        args: &Value,
        oob: bool,
    ) -> Result<(u64, Vec<u8>, oneshot::Receiver<Outcome>), Error> {
        let shared = &self.inner.shared;
        let (tx, rx) = oneshot::channel();
        let id = {
            let mut st = shared.state();
            if let Some(cause) = &st.ended {
                return Err(ended_error(command, cause.clone()));
            }
            let id = st.next_id;
            st.next_id += 1;
            st.pending.insert(
                id,
                PendingEntry {
                    command: command.to_owned(),
                    tx,
                },
            );
            id
        };
        let req = Request {
            execute: (!oob).then_some(command),
            exec_oob: oob.then_some(command),
            arguments: (!args.is_null()).then_some(args),
            id,
        };
        let mut line = match serde_json::to_vec(&req) {
            Ok(line) => line,
            Err(e) => {
                shared.state().pending.remove(&id);
                return Err(Error::Encode {
                    command: command.to_owned(),
                    detail: e.to_string(),
                });
            }
        };
        if let Some(t) = &shared.transcript {
            t.json(Direction::Out, &line);
        }
        line.push(b'\n');
        Ok((id, line, rx))
    }

    fn send_inner(&self, command: &str, args: &Value, oob: bool) -> Result<PendingReply, Error> {
        let shared = &self.inner.shared;
        let (id, line, rx) = self.register(command, args, oob)?;
        {
            let mut st = shared.writes.lock();
            let idle = st.queue.is_empty();
            st.queue.extend_from_slice(&line);
            // Fast path: nothing queued ahead of us, so try the socket now;
            // a no-op waker because the writer task, not us, waits for space.
            let direct = idle
                && matches!(
                    st.poll_flush_queue(&mut Context::from_waker(std::task::Waker::noop())),
                    Poll::Ready(Ok(()))
                );
            if !direct {
                // Leftover bytes or an error: the writer task finishes the
                // write or ends the connection with the error.
                shared.writes.notify.notify_one();
            }
        }
        Ok(PendingReply {
            id,
            command: command.to_owned(),
            rx: Some(rx),
            shared: shared.clone(),
            timeout: shared.default_timeout,
        })
    }

    /// Runs `command` with `fds` attached to its message (`SCM_RIGHTS`), as QEMU's `getfd` and
    /// `add-fd` want them: the descriptors arrive with the command's first bytes, after every
    /// command sent before it. Only over a unix socket ([`QmpClient::connect_unix`]); QEMU
    /// keeps its own copies, so the caller may close `fds` once this returns.
    ///
    /// # Errors
    /// [`Error::FdPassing`] without a unix socket or when `sendmsg` fails; otherwise as
    /// [`QmpClient::execute`].
    pub async fn execute_with_fds(
        &self,
        command: &str,
        args: Value,
        fds: &[std::os::fd::BorrowedFd<'_>],
    ) -> Result<Value, Error> {
        use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
        let shared = &self.inner.shared;
        let fd_err = |detail: String| Error::FdPassing {
            command: command.to_owned(),
            detail,
        };
        let Some(socket) = &shared.fd_socket else {
            return Err(fd_err(format!(
                "the monitor {} is not a unix socket: file descriptors cannot be passed",
                shared.addr
            )));
        };
        let (id, line, rx) = self.register(command, &args, false)?;
        // Unregisters the command if it never went out (an error or a cancelled caller).
        struct Unsent<'a>(&'a Shared, u64, bool);
        impl Drop for Unsent<'_> {
            fn drop(&mut self) {
                if !self.2 {
                    self.0.state().pending.remove(&self.1);
                }
            }
        }
        let mut unsent = Unsent(shared, id, false);
        if let Some(t) = &shared.transcript {
            t.text(
                Direction::Meta,
                format!("`{command}` carries {} file descriptor(s)", fds.len()),
            );
        }
        let deadline = tokio::time::Instant::now() + shared.default_timeout;
        loop {
            {
                let mut st = shared.writes.lock();
                if st.queue.is_empty() {
                    let mut space = vec![
                        std::mem::MaybeUninit::<u8>::uninit();
                        rustix::cmsg_space!(ScmRights(fds.len()))
                    ];
                    let mut control = SendAncillaryBuffer::new(&mut space);
                    if !control.push(SendAncillaryMessage::ScmRights(fds)) {
                        return Err(fd_err("too many descriptors for one message".into()));
                    }
                    match rustix::net::sendmsg(
                        socket,
                        &[std::io::IoSlice::new(&line)],
                        &mut control,
                        SendFlags::DONTWAIT | SendFlags::NOSIGNAL,
                    ) {
                        Ok(n) => {
                            // The descriptors went with the first bytes; the writer task
                            // sends whatever the socket did not take.
                            unsent.2 = true;
                            if n < line.len() {
                                st.queue.extend_from_slice(&line[n..]);
                                shared.writes.notify.notify_one();
                            }
                            break;
                        }
                        Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => {}
                        Err(e) => return Err(fd_err(format!("sendmsg: {e}"))),
                    }
                } else {
                    // Lines queued ahead of this one go first.
                    shared.writes.notify.notify_one();
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Timeout {
                    command: command.to_owned(),
                    timeout: shared.default_timeout,
                    partial_bytes: 0,
                });
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        PendingReply {
            id,
            command: command.to_owned(),
            rx: Some(rx),
            shared: shared.clone(),
            timeout: shared.default_timeout,
        }
        .wait()
        .await
    }

    /// Runs any command by name and returns its `return` value. Works for
    /// every command QEMU has, including ones newer than this crate.
    pub async fn execute(&self, command: &str, args: Value) -> Result<Value, Error> {
        traced(command, &args, async {
            self.send(command, args.clone())?.wait().await
        })
        .await
    }

    /// [`QmpClient::execute`] with an explicit timeout.
    pub async fn execute_timeout(
        &self,
        command: &str,
        args: Value,
        timeout: Duration,
    ) -> Result<Value, Error> {
        traced(command, &args, async {
            self.send(command, args.clone())?
                .timeout(timeout)
                .wait()
                .await
        })
        .await
    }

    /// Runs a typed command from the `qapi` crate and decodes its result.
    ///
    /// ```no_run
    /// # async fn f(qmp: monitor::QmpClient) -> Result<(), monitor::Error> {
    /// let status = qmp.run(&qapi::qmp::query_status {}).await?;
    /// println!("running: {}", status.running);
    /// # Ok(()) }
    /// ```
    pub async fn run<C: qapi::Command>(&self, command: &C) -> Result<C::Ok, Error> {
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
        let ret = self.execute(C::NAME, args).await?;
        serde_json::from_value(ret).map_err(|source| Error::Decode {
            command: C::NAME.to_owned(),
            source,
        })
    }

    /// The cursor just after the newest event received so far.
    pub fn cursor(&self) -> EventCursor {
        EventCursor(self.inner.shared.log.next_seq())
    }

    /// Retained events at or after `since`, oldest first.
    pub fn events_since(&self, since: EventCursor) -> Vec<Arc<Event>> {
        self.inner.shared.log.snapshot(since)
    }

    /// Waits for an event matching `filter`, looking first at retained
    /// events from the filter's cursor on (by default the whole history).
    ///
    /// ```no_run
    /// # async fn f(qmp: monitor::QmpClient) -> Result<(), monitor::Error> {
    /// use monitor::EventFilter;
    /// use std::time::Duration;
    /// let mark = qmp.cursor();
    /// qmp.execute("device_del", serde_json::json!({"id": "nic1"})).await?;
    /// let filter = EventFilter::new("DEVICE_DELETED")
    ///     .data(serde_json::json!({"device": "nic1"}))
    ///     .since(mark);
    /// qmp.wait_event(filter, Duration::from_secs(5)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn wait_event(
        &self,
        filter: impl Into<EventFilter>,
        timeout: Duration,
    ) -> Result<Arc<Event>, Error> {
        self.inner.shared.log.wait(&filter.into(), timeout).await
    }

    /// A listener yielding every event from `since` on.
    pub fn listen(&self, since: EventCursor) -> EventListener {
        self.inner.shared.log.listen(since)
    }

    /// Whether the connection has ended (QEMU exited, protocol violation or
    /// [`QmpClient::close`]).
    pub fn is_closed(&self) -> bool {
        self.inner.shared.is_ended()
    }

    /// Closes the connection: pending commands fail at once with
    /// [`Error::Closed`], event waiters with [`Error::EventStreamEnded`].
    /// Waits until the transcript is flushed.
    pub async fn close(&self) {
        self.inner.shared.end(Disconnect::ClosedByClient);
        let tasks: Vec<_> = self
            .inner
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .collect();
        for task in tasks {
            task.abort();
            let _ = task.await;
        }
        if let Some(t) = &self.inner.shared.transcript {
            t.flush().await;
        }
    }

    /// Waits until everything recorded in the transcript so far is on disk.
    pub async fn flush_transcript(&self) {
        if let Some(t) = &self.inner.shared.transcript {
            t.flush().await;
        }
    }
}

/// Runs one command's exchange inside a `qmp` span (its name and the monitor's address are
/// fields), with a debug event for the command and one for the reply or error and its time.
async fn traced<F>(command: &str, args: &Value, exchange: F) -> Result<Value, Error>
where
    F: std::future::Future<Output = Result<Value, Error>>,
{
    use tracing::Instrument;
    let span = tracing::debug_span!("qmp", cmd = command);
    async {
        tracing::debug!(target: "kvmtest::qmp", "→ {command} {args}");
        let started = std::time::Instant::now();
        let r = exchange.await;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        match &r {
            Ok(v) => tracing::debug!(target: "kvmtest::qmp", "← {command}: {v} ({ms:.1} ms)"),
            Err(e) => {
                tracing::debug!(target: "kvmtest::qmp", "← {command} failed: {e} ({ms:.1} ms)")
            }
        }
        r
    }
    .instrument(span)
    .await
}
