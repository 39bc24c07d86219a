//! One connection's shared state ([`Shared`]): the pending commands by id, the
//! event log, the write queue and the transcript; the reader task (the only
//! parser of QEMU's output, dispatching replies and events) and the writer
//! task; and [`Shared::end`], which fails everything pending at once.

use std::collections::{HashMap, HashSet, VecDeque};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{oneshot, Notify};

use super::greeting::excerpt;
use crate::error::{Disconnect, ErrorClass};
use crate::event::EventLog;
use crate::transcript::{Direction, Transcript};
use crate::wire::LineReader;

/// How many ids of abandoned (timed-out or cancelled) commands are remembered,
/// so their late replies are recognised and dropped instead of being taken
/// for a protocol violation.
const ABANDONED_MEMORY: usize = 4096;

/// How long a write error waits for the reader to see the peer's EOF (see
/// [`writer_task`]).
const WRITE_ERROR_GRACE: Duration = Duration::from_millis(500);

/// What a pending command eventually receives.
pub(super) enum Outcome {
    Return(Value),
    Failed { class: ErrorClass, desc: String },
    Ended(Arc<Disconnect>),
}

pub(super) struct PendingEntry {
    pub(super) command: String,
    pub(super) tx: oneshot::Sender<Outcome>,
}

pub(super) struct CmdState {
    pub(super) next_id: u64,
    pub(super) pending: HashMap<u64, PendingEntry>,
    pub(super) abandoned: HashSet<u64>,
    pub(super) abandoned_order: VecDeque<u64>,
    pub(super) ended: Option<Arc<Disconnect>>,
}

impl CmdState {
    pub(super) fn abandon(&mut self, id: u64) {
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
pub(super) struct WriteQueue {
    pub(super) state: Mutex<WriteState>,
    pub(super) notify: Notify,
}

pub(super) struct WriteState {
    pub(super) out: Pin<Box<dyn AsyncWrite + Send>>,
    pub(super) queue: Vec<u8>,
}

impl WriteState {
    /// Writes as much of the queue as the socket takes without blocking.
    pub(super) fn poll_flush_queue(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
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
    pub(super) fn lock(&self) -> MutexGuard<'_, WriteState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub(super) struct Shared {
    pub(super) addr: String,
    pub(super) state: Mutex<CmdState>,
    pub(super) log: Arc<EventLog>,
    pub(super) transcript: Option<Transcript>,
    pub(super) writes: WriteQueue,
    pub(super) partial: Arc<AtomicUsize>,
    pub(super) default_timeout: Duration,
    /// A second descriptor of a unix socket's connection, for messages that carry file
    /// descriptors (`SCM_RIGHTS`); `None` over TCP or a caller's stream.
    pub(super) fd_socket: Option<std::os::fd::OwnedFd>,
}

impl Shared {
    pub(super) fn state(&self) -> MutexGuard<'_, CmdState> {
        // Critical sections only move map entries; a panic cannot leave the
        // state half-updated, so a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Ends the connection once: fails every pending command and event waiter.
    pub(super) fn end(&self, cause: Disconnect) {
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

    pub(super) fn is_ended(&self) -> bool {
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

pub(super) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(src) = cur {
        s.push_str(": ");
        s.push_str(&src.to_string());
        cur = src.source();
    }
    s
}

pub(super) async fn reader_task<R: AsyncRead + Unpin>(
    shared: Arc<Shared>,
    mut lines: LineReader<R>,
) {
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
pub(super) async fn writer_task(shared: Arc<Shared>) {
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
