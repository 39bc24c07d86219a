//! The QMP client: greeting, capability negotiation, pipelined commands
//! matched by id, events, and teardown that fails everything pending.
//!
//! Structure: one reader task owns the read half and is the only code that
//! parses QEMU's output. Callers append whole lines to a locked write queue
//! and write them at once when the socket takes them (the common case); a
//! writer task drains whatever is left. Sending never awaits, so a caller
//! cancelled mid-send can never leave half a command on the wire.
//! Both tasks end the connection through [`Shared::end`], which fails every
//! pending command with the one shared [`Disconnect`] cause.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::error::{Disconnect, Error, ErrorClass};
use crate::event::{Event, EventCursor, EventFilter, EventListener, EventLog};
use crate::transcript::{Direction, Transcript};
use crate::wire::LineReader;

/// How many ids of abandoned (timed-out or cancelled) commands are remembered,
/// so their late replies are recognised and dropped instead of being taken
/// for a protocol violation.
const ABANDONED_MEMORY: usize = 4096;

/// How long a write error waits for the reader to see the peer's EOF (see
/// [`writer_task`]).
const WRITE_ERROR_GRACE: Duration = Duration::from_millis(500);

/// Settings for a [`QmpClient`]. `QmpConfig::default()` suits tests.
#[derive(Debug, Clone)]
pub struct QmpConfig {
    /// Default timeout for a command's reply (per command; overridable).
    pub command_timeout: Duration,
    /// Budget for connecting (retried while QEMU has not yet created the
    /// socket), reading the greeting and negotiating capabilities.
    pub connect_timeout: Duration,
    /// Longest line accepted from QEMU, in bytes. `query-qmp-schema` is the
    /// largest reply QEMU sends, a few hundred KiB.
    pub max_line_bytes: usize,
    /// How many events the history keeps.
    pub event_history: usize,
    /// Where to write the JSON-lines transcript, if anywhere.
    pub transcript: Option<PathBuf>,
    /// Enable out-of-band execution when QEMU offers it.
    pub negotiate_oob: bool,
}

impl Default for QmpConfig {
    fn default() -> Self {
        Self {
            command_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_line_bytes: 16 << 20,
            event_history: 10_000,
            transcript: None,
            negotiate_oob: true,
        }
    }
}

impl QmpConfig {
    /// Sets [`QmpConfig::transcript`].
    pub fn transcript(mut self, path: impl Into<PathBuf>) -> Self {
        self.transcript = Some(path.into());
        self
    }

    /// Sets [`QmpConfig::command_timeout`].
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// Sets [`QmpConfig::connect_timeout`].
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets [`QmpConfig::max_line_bytes`].
    pub fn max_line_bytes(mut self, bytes: usize) -> Self {
        self.max_line_bytes = bytes;
        self
    }
}

/// QEMU's QMP greeting.
#[derive(Debug, Clone)]
pub struct Greeting {
    /// QEMU's version, typed by the `qapi` crate.
    pub version: qapi::qmp::VersionInfo,
    /// Capabilities QEMU offered, e.g. `["oob"]`.
    pub capabilities: Vec<String>,
}

impl Greeting {
    fn parse(line: &[u8]) -> Result<Self, String> {
        #[derive(serde::Deserialize)]
        struct Wire {
            #[serde(rename = "QMP")]
            qmp: Inner,
        }
        #[derive(serde::Deserialize)]
        struct Inner {
            version: qapi::qmp::VersionInfo,
            // Parsed as plain strings: qapi's `QmpCapability` is an untagged
            // enum whose `OutOfBand` unit variant never matches `"oob"`.
            #[serde(default)]
            capabilities: Vec<Value>,
        }
        let wire: Wire = serde_json::from_slice(line)
            .map_err(|e| format!("greeting is not a QMP banner ({e}): {:?}", excerpt(line)))?;
        Ok(Self {
            version: wire.qmp.version,
            capabilities: wire
                .qmp
                .capabilities
                .into_iter()
                .map(|c| match c {
                    Value::String(s) => s,
                    other => other.to_string(),
                })
                .collect(),
        })
    }

    /// `(major, minor, micro)`.
    pub fn version_triple(&self) -> (i64, i64, i64) {
        let q = &self.version.qemu;
        (q.major, q.minor, q.micro)
    }
}

pub(crate) fn excerpt(line: &[u8]) -> String {
    const MAX: usize = 120;
    let s = String::from_utf8_lossy(&line[..line.len().min(MAX)]).into_owned();
    if line.len() > MAX {
        s + "…"
    } else {
        s
    }
}

/// What a pending command eventually receives.
enum Outcome {
    Return(Value),
    Failed { class: ErrorClass, desc: String },
    Ended(Arc<Disconnect>),
}

struct PendingEntry {
    command: String,
    tx: oneshot::Sender<Outcome>,
}

struct CmdState {
    next_id: u64,
    pending: HashMap<u64, PendingEntry>,
    abandoned: HashSet<u64>,
    abandoned_order: VecDeque<u64>,
    ended: Option<Arc<Disconnect>>,
}

impl CmdState {
    fn abandon(&mut self, id: u64) {
        if self.pending.remove(&id).is_some() {
            if self.abandoned_order.len() == ABANDONED_MEMORY {
                if let Some(old) = self.abandoned_order.pop_front() {
                    self.abandoned.remove(&old);
                }
            }
            self.abandoned.insert(id);
            self.abandoned_order.push_back(id);
        }
    }
}

/// The write half and the bytes not yet written. Callers append whole lines
/// and, when nothing is queued, write them straight away without waiting
/// (a non-blocking poll); whatever the socket does not take at once is left
/// for the writer task. Every write happens under the lock, so lines never
/// interleave, and none of it awaits, so a cancelled caller cannot leave
/// half a line behind.
struct WriteQueue {
    state: Mutex<WriteState>,
    notify: Notify,
}

struct WriteState {
    out: Pin<Box<dyn AsyncWrite + Send>>,
    queue: Vec<u8>,
}

impl WriteState {
    /// Writes as much of the queue as the socket takes without blocking.
    fn poll_flush_queue(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        while !self.queue.is_empty() {
            match self.out.as_mut().poll_write(cx, &self.queue) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()))
                }
                Poll::Ready(Ok(n)) => {
                    self.queue.drain(..n);
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl WriteQueue {
    fn lock(&self) -> MutexGuard<'_, WriteState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct Shared {
    addr: String,
    state: Mutex<CmdState>,
    log: Arc<EventLog>,
    transcript: Option<Transcript>,
    writes: WriteQueue,
    partial: Arc<AtomicUsize>,
    default_timeout: Duration,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, CmdState> {
        // Critical sections only move map entries; a panic cannot leave the
        // state half-updated, so a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Ends the connection once: fails every pending command and event waiter.
    fn end(&self, cause: Disconnect) {
        let cause = Arc::new(cause);
        let pending = {
            let mut st = self.state();
            if st.ended.is_some() {
                return;
            }
            st.ended = Some(cause.clone());
            std::mem::take(&mut st.pending)
        };
        if let Some(t) = &self.transcript {
            let mut names: Vec<&str> = pending.values().map(|e| e.command.as_str()).collect();
            names.sort_unstable();
            t.text(
                Direction::Meta,
                format!(
                    "connection ended: {}; failing pending: {names:?}",
                    chain(&*cause)
                ),
            );
        }
        for (_, entry) in pending {
            let _ = entry.tx.send(Outcome::Ended(cause.clone()));
        }
        self.log.end(cause);
        // Drop the write half now (shutting the socket's write side) and wake
        // the writer task so it ends.
        {
            let mut st = self.writes.lock();
            st.queue.clear();
            st.out = Box::pin(tokio::io::sink());
        }
        self.writes.notify.notify_one();
    }

    fn is_ended(&self) -> bool {
        self.state().ended.is_some()
    }

    fn dispatch(&self, line: &[u8]) -> Result<(), Disconnect> {
        let garbage = || Disconnect::Garbage {
            excerpt: excerpt(line),
        };
        let mut obj = match serde_json::from_slice::<Value>(line) {
            Ok(Value::Object(obj)) => obj,
            _ => return Err(garbage()),
        };
        if obj.contains_key("event") {
            return match self.log.push(&mut obj) {
                Some(_) => Ok(()),
                None => Err(garbage()),
            };
        }
        let outcome = if let Some(ret) = obj.remove("return") {
            Outcome::Return(ret)
        } else if let Some(err) = obj.remove("error") {
            let class = err
                .get("class")
                .and_then(Value::as_str)
                .map(ErrorClass::from_wire)
                .unwrap_or(ErrorClass::Other("<missing>".into()));
            let desc = err
                .get("desc")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            Outcome::Failed { class, desc }
        } else {
            return Err(garbage());
        };
        let id = obj.get("id");
        let entry = {
            let mut st = self.state();
            match id.and_then(Value::as_u64) {
                Some(n) => match st.pending.remove(&n) {
                    Some(entry) => Some(entry),
                    None if st.abandoned.remove(&n) => None,
                    None => {
                        return Err(Disconnect::UnknownReplyId { id: n.to_string() });
                    }
                },
                None => {
                    return Err(Disconnect::UnknownReplyId {
                        id: id.map_or_else(|| "<none>".to_owned(), Value::to_string),
                    })
                }
            }
        };
        match entry {
            Some(entry) => {
                // The receiver may have been dropped (cancelled caller): fine.
                let _ = entry.tx.send(outcome);
            }
            None => {
                if let Some(t) = &self.transcript {
                    t.text(
                        Direction::Meta,
                        "late reply to an abandoned command dropped",
                    );
                }
            }
        }
        Ok(())
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(src) = cur {
        s.push_str(": ");
        s.push_str(&src.to_string());
        cur = src.source();
    }
    s
}

async fn reader_task<R: AsyncRead + Unpin>(shared: Arc<Shared>, mut lines: LineReader<R>) {
    let cause = loop {
        let line = match lines.next_line().await {
            Ok(line) => line,
            Err(cause) => break cause,
        };
        if let Some(t) = &shared.transcript {
            t.json(Direction::In, &line);
        }
        if let Err(cause) = shared.dispatch(&line) {
            break cause;
        }
        shared.partial.store(0, Ordering::Relaxed);
    };
    shared.end(cause);
}

/// Drains what callers could not write at once; ends with the connection.
async fn writer_task(shared: Arc<Shared>) {
    loop {
        shared.writes.notify.notified().await;
        if shared.is_ended() {
            break;
        }
        let flushed = std::future::poll_fn(|cx| shared.writes.lock().poll_flush_queue(cx)).await;
        if let Err(e) = flushed {
            // The peer is almost surely gone. Its EOF, preceded by any replies
            // and events it sent before closing, reaches the reader shortly
            // and ends the connection with the accurate cause, without losing
            // those messages. Only a peer that stopped reading but keeps the
            // socket open gets here past the grace period.
            tokio::time::sleep(WRITE_ERROR_GRACE).await;
            shared.end(Disconnect::Io(e));
            break;
        }
    }
}

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

struct Inner {
    shared: Arc<Shared>,
    greeting: Greeting,
    oob: bool,
    tasks: Mutex<Vec<JoinHandle<()>>>,
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
    inner: Arc<Inner>,
}

impl std::fmt::Debug for QmpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QmpClient")
            .field("addr", &self.inner.shared.addr)
            .field("oob", &self.inner.oob)
            .finish()
    }
}

async fn connect_retrying<T, F, Fut>(
    addr: &str,
    timeout: Duration,
    mut connect: F,
) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::io::Result<T>>,
{
    let start = Instant::now();
    let deadline = start + timeout;
    loop {
        let err = match tokio::time::timeout_at(deadline, connect()).await {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(e)) => e,
            Err(_) => std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"),
        };
        let retry = matches!(
            err.kind(),
            std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
        );
        if !retry || Instant::now() + Duration::from_millis(10) >= deadline {
            return Err(Error::Connect {
                addr: addr.to_owned(),
                waited: start.elapsed(),
                source: err,
            });
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

impl QmpClient {
    /// Connects to QEMU's QMP unix socket (retrying while it does not yet
    /// exist), reads the greeting and negotiates capabilities.
    pub async fn connect_unix(path: impl AsRef<Path>, config: QmpConfig) -> Result<Self, Error> {
        let path = path.as_ref();
        let addr = format!("unix:{}", path.display());
        let deadline = Instant::now() + config.connect_timeout;
        let stream = connect_retrying(&addr, config.connect_timeout, || {
            tokio::net::UnixStream::connect(path)
        })
        .await?;
        let (r, w) = stream.into_split();
        Self::handshake(addr, r, w, config, deadline).await
    }

    /// Connects to QEMU's QMP TCP socket (`host:port`).
    pub async fn connect_tcp(addr: &str, config: QmpConfig) -> Result<Self, Error> {
        let label = format!("tcp:{addr}");
        let deadline = Instant::now() + config.connect_timeout;
        let stream = connect_retrying(&label, config.connect_timeout, || {
            tokio::net::TcpStream::connect(addr)
        })
        .await?;
        // Latency matters more than packet count on a control channel.
        let _ = stream.set_nodelay(true);
        let (r, w) = stream.into_split();
        Self::handshake(label, r, w, config, deadline).await
    }

    /// Runs the QMP handshake over an already connected stream (any
    /// transport: a socketpair, a pipe pair, a test double).
    pub async fn from_stream<R, W>(
        addr: impl Into<String>,
        reader: R,
        writer: W,
        config: QmpConfig,
    ) -> Result<Self, Error>
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let deadline = Instant::now() + config.connect_timeout;
        Self::handshake(addr.into(), reader, writer, config, deadline).await
    }

    async fn handshake<R, W>(
        addr: String,
        reader: R,
        writer: W,
        config: QmpConfig,
        deadline: Instant,
    ) -> Result<Self, Error>
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let transcript = config
            .transcript
            .as_deref()
            .map(Transcript::create)
            .transpose()?;
        if let Some(t) = &transcript {
            t.text(Direction::Meta, format!("connected to {addr}"));
        }
        let handshake_err = |detail: String| Error::Handshake {
            addr: addr.clone(),
            detail,
        };
        let partial = Arc::new(AtomicUsize::new(0));
        let mut lines = LineReader::new(reader, config.max_line_bytes, partial.clone());
        let line = match tokio::time::timeout_at(deadline, lines.next_line()).await {
            Ok(Ok(line)) => line,
            Ok(Err(cause)) => {
                return Err(handshake_err(format!(
                    "reading the greeting: {}",
                    chain(&cause)
                )))
            }
            Err(_) => {
                return Err(handshake_err(format!(
                    "no greeting within {:?}",
                    config.connect_timeout
                )))
            }
        };
        if let Some(t) = &transcript {
            t.json(Direction::In, &line);
        }
        let greeting = Greeting::parse(&line).map_err(handshake_err)?;
        let shared = Arc::new(Shared {
            addr: addr.clone(),
            state: Mutex::new(CmdState {
                next_id: 0,
                pending: HashMap::new(),
                abandoned: HashSet::new(),
                abandoned_order: VecDeque::new(),
                ended: None,
            }),
            log: Arc::new(EventLog::new(config.event_history)),
            transcript,
            writes: WriteQueue {
                state: Mutex::new(WriteState {
                    out: Box::pin(writer),
                    queue: Vec::new(),
                }),
                notify: Notify::new(),
            },
            partial,
            default_timeout: config.command_timeout,
        });
        let tasks = vec![
            tokio::spawn(reader_task(shared.clone(), lines)),
            tokio::spawn(writer_task(shared.clone())),
        ];
        let oob = config.negotiate_oob && greeting.capabilities.iter().any(|c| c == "oob");
        let client = Self {
            inner: Arc::new(Inner {
                shared,
                greeting,
                oob,
                tasks: Mutex::new(tasks),
            }),
        };
        let args = if oob {
            serde_json::json!({"enable": ["oob"]})
        } else {
            serde_json::json!({})
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        client
            .execute_timeout("qmp_capabilities", args, remaining)
            .await?;
        Ok(client)
    }

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

    fn send_inner(&self, command: &str, args: &Value, oob: bool) -> Result<PendingReply, Error> {
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

    /// Runs any command by name and returns its `return` value. Works for
    /// every command QEMU has, including ones newer than this crate.
    pub async fn execute(&self, command: &str, args: Value) -> Result<Value, Error> {
        self.send(command, args)?.wait().await
    }

    /// [`QmpClient::execute`] with an explicit timeout.
    pub async fn execute_timeout(
        &self,
        command: &str,
        args: Value,
        timeout: Duration,
    ) -> Result<Value, Error> {
        self.send(command, args)?.timeout(timeout).wait().await
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

fn ended_error(command: &str, cause: Arc<Disconnect>) -> Error {
    match *cause {
        Disconnect::ClosedByClient => Error::Closed {
            command: command.to_owned(),
        },
        _ => Error::ConnectionLost {
            command: command.to_owned(),
            cause,
        },
    }
}

/// A command that has been sent and whose reply has not been awaited yet.
///
/// Dropping it abandons the command: its reply, when it comes, is dropped.
#[must_use = "a sent command's reply is only seen through `wait`"]
pub struct PendingReply {
    id: u64,
    command: String,
    rx: Option<oneshot::Receiver<Outcome>>,
    shared: Arc<Shared>,
    timeout: Duration,
}

impl std::fmt::Debug for PendingReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingReply")
            .field("id", &self.id)
            .field("command", &self.command)
            .finish()
    }
}

impl PendingReply {
    /// Overrides the reply timeout (the client's default otherwise).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The command name.
    pub fn command(&self) -> &str {
        &self.command
    }

    /// Waits for the reply.
    pub async fn wait(mut self) -> Result<Value, Error> {
        let Some(rx) = self.rx.take() else {
            return Err(Error::Closed {
                command: self.command.clone(),
            });
        };
        match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(Outcome::Return(v))) => Ok(v),
            Ok(Ok(Outcome::Failed { class, desc })) => Err(Error::Qmp {
                command: self.command.clone(),
                class,
                desc,
            }),
            Ok(Ok(Outcome::Ended(cause))) => Err(ended_error(&self.command, cause)),
            // The sender is only dropped with the client's state.
            Ok(Err(_)) => Err(Error::Closed {
                command: self.command.clone(),
            }),
            Err(_) => {
                self.shared.state().abandon(self.id);
                if let Some(t) = &self.shared.transcript {
                    t.text(
                        Direction::Meta,
                        format!(
                            "`{}` (id {}) timed out after {:?}",
                            self.command, self.id, self.timeout
                        ),
                    );
                }
                Err(Error::Timeout {
                    command: self.command.clone(),
                    timeout: self.timeout,
                    partial_bytes: self.shared.partial.load(Ordering::Relaxed),
                })
            }
        }
    }
}

impl Drop for PendingReply {
    fn drop(&mut self) {
        // `wait` completed: the entry is gone already, abandon() is a no-op.
        // Otherwise remember the id so its late reply is not a violation.
        self.shared.state().abandon(self.id);
    }
}
