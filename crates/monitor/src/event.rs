//! QMP events: the bounded history every event lands in, cursors into it,
//! filters that match on a subset of `data`, and listeners.
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

/// A position in the event history: "events from here on".
///
/// Take one with [`crate::QmpClient::cursor`] *before* triggering an action,
/// then wait with [`EventFilter::since`] so an event that arrives before the
/// wait starts is still seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EventCursor(pub u64);

impl EventCursor {
    /// The very first event of the connection.
    pub const ORIGIN: EventCursor = EventCursor(0);
}

/// QEMU's event timestamp (host wall clock when QEMU emitted it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EventTimestamp {
    /// Seconds since the Unix epoch.
    pub seconds: i64,
    /// Microseconds within the second.
    pub microseconds: i64,
}

/// One QMP event as received. Decoding never fails on an event this crate
/// does not know: the name and `data` are kept as JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Position in this connection's event history.
    pub seq: u64,
    /// The event name, e.g. `DEVICE_DELETED`.
    pub name: String,
    /// The `data` member; an empty object when QEMU sent none.
    pub data: Value,
    /// QEMU's timestamp, if it sent a well-formed one.
    pub timestamp: Option<EventTimestamp>,
}

impl Event {
    /// The cursor just after this event, to continue waiting from here.
    pub fn next_cursor(&self) -> EventCursor {
        EventCursor(self.seq + 1)
    }

    /// Decodes `data` as the typed event `E` from the `qapi` crate, if this
    /// event is an `E`. `None` when the name differs.
    ///
    /// ```
    /// # use monitor::Event;
    /// let ev = Event {
    ///     seq: 0,
    ///     name: "DEVICE_DELETED".into(),
    ///     data: serde_json::json!({"device": "nic1", "path": "/machine/peripheral/nic1"}),
    ///     timestamp: None,
    /// };
    /// let typed = ev.decode::<qapi::qmp::DEVICE_DELETED>().unwrap().unwrap();
    /// assert_eq!(typed.device.as_deref(), Some("nic1"));
    /// ```
    pub fn decode<E: qapi::Event>(&self) -> Option<Result<E, serde_json::Error>> {
        (self.name == E::NAME).then(|| E::deserialize(&self.data))
    }

    /// The whole event as `qapi`'s generated enum, or `None` when that enum
    /// does not know the event (or QEMU's shape differs from its schema).
    pub fn typed(&self) -> Option<qapi::qmp::Event> {
        let ts = self.timestamp.unwrap_or(EventTimestamp {
            seconds: 0,
            microseconds: 0,
        });
        let whole = serde_json::json!({
            "event": self.name,
            "data": self.data,
            "timestamp": ts,
        });
        serde_json::from_value(whole).ok()
    }

    /// Parses a QMP event object. Returns `None` if `obj` is not an event.
    pub(crate) fn from_wire(seq: u64, obj: &mut serde_json::Map<String, Value>) -> Option<Self> {
        let name = match obj.remove("event") {
            Some(Value::String(s)) => s,
            _ => return None,
        };
        let data = match obj.remove("data") {
            Some(v) => v,
            None => Value::Object(serde_json::Map::new()),
        };
        let timestamp = obj
            .remove("timestamp")
            .and_then(|t| serde_json::from_value(t).ok());
        Some(Self {
            seq,
            name,
            data,
            timestamp,
        })
    }
}

/// What to wait for: an event name, a subset of its `data`, and where in the
/// history to start looking.
#[derive(Debug, Clone, PartialEq)]
pub struct EventFilter {
    name: String,
    data: Value,
    since: EventCursor,
}

impl EventFilter {
    /// Matches any event called `name`, anywhere in the retained history.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            data: Value::Null,
            since: EventCursor::ORIGIN,
        }
    }

    /// Also requires `data` to contain `pattern`: every key of a pattern
    /// object must be present with a matching value (recursively); arrays and
    /// scalars must be equal. `null` matches anything.
    pub fn data(mut self, pattern: Value) -> Self {
        self.data = pattern;
        self
    }

    /// Only considers events at or after `cursor`.
    pub fn since(mut self, cursor: EventCursor) -> Self {
        self.since = cursor;
        self
    }

    /// The awaited event name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether `event` satisfies the filter (ignoring `since`).
    pub fn matches(&self, event: &Event) -> bool {
        event.name == self.name && subset_matches(&self.data, &event.data)
    }
}

impl From<&str> for EventFilter {
    fn from(name: &str) -> Self {
        Self::new(name)
    }
}

impl fmt::Display for EventFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if !self.data.is_null() {
            write!(f, " with data ⊇ {}", self.data)?;
        }
        if self.since != EventCursor::ORIGIN {
            write!(f, " since event #{}", self.since.0)?;
        }
        Ok(())
    }
}

/// `pattern` ⊆ `value`: see [`EventFilter::data`].
pub fn subset_matches(pattern: &Value, value: &Value) -> bool {
    match (pattern, value) {
        (Value::Null, _) => true,
        (Value::Object(p), Value::Object(v)) => p
            .iter()
            .all(|(k, pv)| v.get(k).is_some_and(|vv| subset_matches(pv, vv))),
        (p, v) => p == v,
    }
}

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

    #[test]
    fn subset_matching() {
        let data =
            json!({"device": "nic1", "path": "/machine/peripheral/nic1", "n": {"a": 1, "b": 2}});
        assert!(subset_matches(&Value::Null, &data));
        assert!(subset_matches(&json!({}), &data));
        assert!(subset_matches(&json!({"device": "nic1"}), &data));
        assert!(subset_matches(&json!({"n": {"a": 1}}), &data));
        assert!(!subset_matches(&json!({"device": "nic2"}), &data));
        assert!(!subset_matches(&json!({"missing": null}), &data));
        assert!(!subset_matches(&json!({"n": {"a": 2}}), &data));
    }

    #[test]
    fn unknown_events_decode() {
        let mut obj = json!({"event": "FROM_THE_FUTURE", "data": {"x": [1]}, "timestamp": {"seconds": 1, "microseconds": 2}});
        let obj = obj.as_object_mut().expect("object");
        let ev = Event::from_wire(7, obj).expect("is an event");
        assert_eq!(ev.name, "FROM_THE_FUTURE");
        assert!(ev.typed().is_none());
        assert!(ev.decode::<qapi::qmp::STOP>().is_none());
    }

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
