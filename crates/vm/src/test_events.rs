//! For unit tests: the tracing events a closure emits, as plain strings.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// One event: its target, its innermost span's name (empty: none), its message and its other
/// fields (numbers in decimal, strings as they are).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Seen {
    pub target: String,
    pub span: String,
    pub message: String,
    pub fields: HashMap<String, String>,
}

struct Record(Arc<Mutex<Vec<Seen>>>);

struct Fields<'a>(&'a mut Seen);

impl Visit for Fields<'_> {
    fn record_str(&mut self, f: &Field, v: &str) {
        self.0.fields.insert(f.name().to_owned(), v.to_owned());
    }
    fn record_u64(&mut self, f: &Field, v: u64) {
        self.0.fields.insert(f.name().to_owned(), v.to_string());
    }
    fn record_debug(&mut self, f: &Field, v: &dyn std::fmt::Debug) {
        if f.name() == "message" {
            self.0.message = format!("{v:?}");
        } else {
            self.0.fields.insert(f.name().to_owned(), format!("{v:?}"));
        }
    }
}

impl<S> tracing_subscriber::Layer<S> for Record
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        let mut seen = Seen {
            target: event.metadata().target().to_owned(),
            span: ctx
                .event_scope(event)
                .and_then(|mut s| s.next().map(|s| s.name().to_owned()))
                .unwrap_or_default(),
            message: String::new(),
            fields: HashMap::new(),
        };
        event.record(&mut Fields(&mut seen));
        self.0.lock().expect("lock").push(seen);
    }
}

/// Runs `f` with a subscriber of its own and returns every event it emitted, in order.
pub(crate) fn record(f: impl FnOnce()) -> Vec<Seen> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let subscriber = tracing_subscriber::registry().with(Record(Arc::clone(&seen)));
    tracing::subscriber::with_default(subscriber, f);
    let events = seen.lock().expect("lock").clone();
    events
}
