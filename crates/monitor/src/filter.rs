//! One QMP event as received ([`Event`], [`EventTimestamp`]), its position in the history
//! ([`EventCursor`]), and [`EventFilter`], what a wait matches events against (a name and a
//! subset of `data`, see [`subset_matches`]).
//!
//! Plain values: nothing here depends on the rest of the crate, so both the errors (which
//! name the filter that failed) and the event history (`event.rs`) can use them.

use std::fmt;

use serde_json::Value;

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
    pub(crate) since: EventCursor,
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
}
