//! QMP events: the bounded history every event lands in, and listeners.
//!
//! The event values themselves ([`Event`], [`EventCursor`], [`EventTimestamp`]) and
//! [`EventFilter`] live in `filter.rs`, which depends on nothing else of the crate, so
//! that [`Error`] can name a filter; they are re-exported here under their old paths.
//!
//! The design is one log, many readers. The reader task appends every event
//! (known to this crate or not) with a sequence number; waiters and
//! listeners are just cursors into that log. So any number of listeners see
//! every event, a wait can look at events that arrived before it began, and
//! a slow listener costs nothing until it falls off the end of the history,
//! which is reported as [`Error::EventsLost`] rather than silently skipped.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::error::{Disconnect, Error};
pub use crate::filter::{subset_matches, Event, EventCursor, EventFilter, EventTimestamp};

struct LogState {
    events: VecDeque<Arc<Event>>,
    next_seq: u64,
    capacity: usize,
    ended: Option<Arc<Disconnect>>,
}

impl LogState {
    fn oldest_seq(&self) -> u64 {
        self.next_seq - self.events.len() as u64
    }
}

/// The bounded event history shared by the reader task, waiters and listeners.
pub(crate) struct EventLog {
    state: Mutex<LogState>,
    notify: watch::Sender<u64>,
}

impl EventLog {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::new(LogState {
                events: VecDeque::with_capacity(capacity.min(1024)),
                next_seq: 0,
                capacity: capacity.max(1),
                ended: None,
            }),
            notify: watch::channel(0).0,
        }
    }

    fn lock(&self) -> MutexGuard<'_, LogState> {
        // A panic while holding this lock cannot leave the log inconsistent
        // (every critical section is a push or a read), so poisoning is ignored.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn next_seq(&self) -> u64 {
        self.lock().next_seq
    }

    /// Appends an event parsed from the wire; returns it.
    pub(crate) fn push(&self, obj: &mut serde_json::Map<String, Value>) -> Option<Arc<Event>> {
        let mut st = self.lock();
        let ev = Arc::new(Event::from_wire(st.next_seq, obj)?);
        st.next_seq += 1;
        if st.events.len() == st.capacity {
            st.events.pop_front();
        }
        st.events.push_back(ev.clone());
        let seq = st.next_seq;
        drop(st);
        self.notify.send_replace(seq);
        Some(ev)
    }

    /// Marks the log as ended: waiters fail once they have seen everything.
    pub(crate) fn end(&self, cause: Arc<Disconnect>) {
        let mut st = self.lock();
        if st.ended.is_none() {
            st.ended = Some(cause);
        }
        let seq = st.next_seq;
        drop(st);
        self.notify.send_replace(seq);
    }

    /// A snapshot of the retained events at or after `since`.
    pub(crate) fn snapshot(&self, since: EventCursor) -> Vec<Arc<Event>> {
        let st = self.lock();
        let skip = since.0.saturating_sub(st.oldest_seq()) as usize;
        st.events.iter().skip(skip).cloned().collect()
    }

    /// Waits for the first event matching `filter`.
    pub(crate) async fn wait(
        &self,
        filter: &EventFilter,
        timeout: Duration,
    ) -> Result<Arc<Event>, Error> {
        let deadline = Instant::now() + timeout;
        // Subscribe before the first scan so nothing pushed after it is missed.
        let mut rx = self.notify.subscribe();
        let mut pos = filter.since.0;
        let mut seen = 0u64;
        loop {
            {
                let st = self.lock();
                let oldest = st.oldest_seq();
                let skip = pos.saturating_sub(oldest) as usize;
                for ev in st.events.iter().skip(skip) {
                    if filter.matches(ev) {
                        return Ok(ev.clone());
                    }
                    seen += 1;
                }
                if pos < oldest {
                    return Err(Error::EventsLost {
                        filter: filter.clone(),
                        lost: oldest - pos,
                    });
                }
                pos = st.next_seq;
                if let Some(cause) = &st.ended {
                    return Err(Error::EventStreamEnded {
                        filter: filter.clone(),
                        cause: cause.clone(),
                    });
                }
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                // The sender lives as long as the log, so this cannot happen
                // while we hold `&self`; treat it like a change and rescan.
                Ok(Err(_)) => {}
                Err(_) => {
                    return Err(Error::EventTimeout {
                        filter: filter.clone(),
                        timeout,
                        seen,
                    })
                }
            }
        }
    }

    pub(crate) fn listen(self: &Arc<Self>, since: EventCursor) -> EventListener {
        EventListener {
            rx: self.notify.subscribe(),
            log: self.clone(),
            pos: since.0,
        }
    }
}

/// A listener that yields every event, in order, from a starting cursor.
///
/// Listeners are independent: each keeps its own cursor into the shared
/// history, so adding one costs nothing and none can starve another.
pub struct EventListener {
    log: Arc<EventLog>,
    rx: watch::Receiver<u64>,
    pos: u64,
}

impl fmt::Debug for EventListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventListener")
            .field("pos", &self.pos)
            .finish()
    }
}

impl EventListener {
    /// The next event, waiting for it if needed.
    ///
    /// Returns `Ok(None)` once the connection has ended and every event was
    /// delivered, and [`Error::EventsLost`] (once, then continues with the
    /// oldest retained event) if this listener fell behind the history.
    pub async fn next(&mut self) -> Result<Option<Arc<Event>>, Error> {
        loop {
            {
                let st = self.log.lock();
                let oldest = st.oldest_seq();
                if self.pos < oldest {
                    let lost = oldest - self.pos;
                    self.pos = oldest;
                    return Err(Error::EventsLost {
                        filter: EventFilter::new("*"),
                        lost,
                    });
                }
                if self.pos < st.next_seq {
                    let idx = (self.pos - oldest) as usize;
                    if let Some(ev) = st.events.get(idx) {
                        self.pos += 1;
                        return Ok(Some(ev.clone()));
                    }
                }
                if st.ended.is_some() {
                    return Ok(None);
                }
            }
            if self.rx.changed().await.is_err() {
                return Ok(None);
            }
        }
    }

    /// The cursor of the next event this listener will yield.
    pub fn cursor(&self) -> EventCursor {
        EventCursor(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn history_is_bounded_and_loss_is_reported() {
        let log = Arc::new(EventLog::new(2));
        let mut listener = log.listen(EventCursor::ORIGIN);
        for i in 0..3 {
            log.push(
                json!({"event": "E", "data": {"i": i}})
                    .as_object_mut()
                    .expect("object"),
            );
        }
        assert!(matches!(
            listener.next().await,
            Err(Error::EventsLost { lost: 1, .. })
        ));
        let ev = listener.next().await.expect("ok").expect("some");
        assert_eq!(ev.data, json!({"i": 1}));
        let filt = EventFilter::new("E").data(json!({"i": 0}));
        let err = log.wait(&filt, Duration::from_millis(10)).await;
        assert!(matches!(err, Err(Error::EventsLost { .. })), "{err:?}");
        let ok = log
            .wait(
                &EventFilter::new("E").data(json!({"i": 2})),
                Duration::from_millis(10),
            )
            .await;
        assert_eq!(ok.expect("found").seq, 2);
    }
}
