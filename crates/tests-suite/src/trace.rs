//! Structured logs with `tracing`: what `kvmtest -v/-vv` prints on stderr (text or JSON), and
//! each test's `debug.log` — the events of that test's span, at debug level, whatever `-v`
//! says.
//!
//! Spans: `job{id}` (a run), `worker{n}`, `test{index, name, dir}` (one attempt of a variant);
//! inside them the VM layer's `qmp{cmd}` (one monitor command: the command, the reply and its
//! time), session commands (`$ cmd` and their output at trace level) and VM stages (`vm.log`'s
//! lines). [`TestFileLayer`] finds the innermost `test` span of an event and appends the event,
//! with the spans between, to `<dir>/debug.log`; events outside a test (a worker tearing its VMs
//! down) go to stderr only.
//!
//! The serial console's lines (`kvmtest::serial`) and QEMU's stdout/stderr lines
//! (`kvmtest::qemu`) are events too, interleaved with the rest by time: their readers outlive
//! any one test, so they log into the VM's [`vm::LogSpan`], which the environment points at the
//! test using the VM (and at nothing between tests).

use std::fmt::Write as _;
use std::fs::File;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// The name of the span [`TestFileLayer`] writes a file for; its `dir` field is the test's
/// directory.
pub const TEST_SPAN: &str = "test";

/// The per-test log's file name.
pub const DEBUG_LOG: &str = "debug.log";

/// How stderr logs look.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One readable line per event.
    #[default]
    Text,
    /// One JSON object per event (with its spans), for log collectors.
    Json,
}

/// Installs the global subscriber: stderr at `error` (`-v` info, `-vv` debug, `-vvv` trace;
/// `KVMTEST_LOG` takes an `EnvFilter` directive instead, e.g. `kvmtest::qmp=trace`), plus the
/// per-test `debug.log` files. Does nothing when a subscriber is already installed.
pub fn init(verbosity: u8, format: LogFormat) {
    let level = match verbosity {
        0 => "error",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = std::env::var("KVMTEST_LOG")
        .ok()
        .and_then(|d| EnvFilter::try_new(d).ok())
        .unwrap_or_else(|| EnvFilter::new(level));
    let stderr = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_target(true)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let _ = tracing_subscriber::registry()
        .with(stderr.with_filter(filter))
        .with(TestFileLayer)
        .with(ProgressLayer)
        .try_init();
}

/// Hands `kvmtest::progress` events (`task`, `done`, `total`) to the run's progress display
/// ([`crate::progress::task_progress`]).
#[derive(Debug, Default, Clone, Copy)]
pub struct ProgressLayer;

impl<S: Subscriber> Layer<S> for ProgressLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() != "kvmtest::progress" {
            return;
        }
        #[derive(Default)]
        struct Fields {
            task: Option<String>,
            done: Option<u64>,
            total: Option<u64>,
        }
        impl Visit for Fields {
            fn record_str(&mut self, field: &Field, value: &str) {
                if field.name() == "task" {
                    self.task = Some(value.to_owned());
                }
            }
            fn record_u64(&mut self, field: &Field, value: u64) {
                match field.name() {
                    "done" => self.done = Some(value),
                    "total" => self.total = Some(value),
                    _ => {}
                }
            }
            fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
        }
        let mut f = Fields::default();
        event.record(&mut f);
        if let (Some(task), Some(done), Some(total)) = (f.task, f.done, f.total) {
            crate::progress::task_progress(&task, done, total);
        }
    }
}

/// Writes every debug-or-higher event inside a `test` span to that span's `debug.log`.
#[derive(Debug, Default, Clone, Copy)]
pub struct TestFileLayer;

/// The open `debug.log` of a `test` span (opened at its first event: the directory may not
/// exist yet when the span is created).
struct TestFile {
    path: PathBuf,
    file: Mutex<Option<File>>,
}

/// The fields of a span, as ` k=v` pairs.
struct SpanFields(String);

struct FieldWriter<'a> {
    out: &'a mut String,
    dir: Option<String>,
    message: Option<String>,
}

impl Visit for FieldWriter<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "dir" => self.dir = Some(value.to_owned()),
            "message" => self.message = Some(value.to_owned()),
            name => {
                let _ = write!(self.out, " {name}={value}");
            }
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.message = Some(format!("{value:?}")),
            "dir" => self.dir = Some(format!("{value:?}")),
            name => {
                let _ = write!(self.out, " {name}={value:?}");
            }
        }
    }
}

impl<S> Layer<S> for TestFileLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = String::new();
        let mut w = FieldWriter {
            out: &mut fields,
            dir: None,
            message: None,
        };
        attrs.record(&mut w);
        let dir = w.dir.take();
        let mut ext = span.extensions_mut();
        if attrs.metadata().name() == TEST_SPAN {
            if let Some(dir) = dir {
                ext.insert(TestFile {
                    path: PathBuf::from(dir).join(DEBUG_LOG),
                    file: Mutex::new(None),
                });
            }
        }
        ext.insert(SpanFields(fields));
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if *event.metadata().level() > Level::DEBUG {
            return;
        }
        let Some(scope) = ctx.event_scope(event) else {
            return;
        };
        // Spans from the test outwards are not shown: the file is the test's.
        let mut chain: Vec<(&str, String)> = Vec::new();
        for span in scope {
            let ext = span.extensions();
            if let Some(file) = ext.get::<TestFile>() {
                chain.reverse();
                let mut line = String::new();
                let mut fields = String::new();
                let mut w = FieldWriter {
                    out: &mut fields,
                    dir: None,
                    message: None,
                };
                event.record(&mut w);
                let message = w.message.take().unwrap_or_default();
                let _ = write!(
                    line,
                    "{} {:>5} ",
                    crate::time::now_rfc3339_millis(),
                    event.metadata().level()
                );
                for (name, f) in &chain {
                    let _ = write!(line, "{name}{{{}}}: ", f.trim_start());
                }
                let _ = writeln!(line, "{}: {message}{fields}", event.metadata().target());
                write_line(file, &line);
                return;
            }
            let f = ext
                .get::<SpanFields>()
                .map(|f| f.0.clone())
                .unwrap_or_default();
            chain.push((span.name(), f));
        }
    }
}

fn write_line(file: &TestFile, line: &str) {
    let Ok(mut slot) = file.file.lock() else {
        return;
    };
    if slot.is_none() {
        *slot = File::options()
            .create(true)
            .append(true)
            .open(&file.path)
            .ok();
    }
    if let Some(f) = slot.as_mut() {
        // A log that cannot be written is not a test failure.
        let _ = f.write_all(line.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::subscriber::with_default;

    #[test]
    fn events_inside_a_test_span_go_to_its_debug_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        let subscriber = tracing_subscriber::registry().with(TestFileLayer);
        with_default(subscriber, || {
            tracing::info!("outside: nowhere");
            let test = tracing::info_span!(
                "test",
                index = 3,
                name = "a.b",
                dir = %dir.path().display()
            );
            let _t = test.enter();
            tracing::debug!(target: "kvmtest::vm", vm = "vm1", "started");
            let qmp = tracing::debug_span!("qmp", cmd = "stop");
            let _q = qmp.enter();
            tracing::debug!(target: "kvmtest::qmp", "→ stop");
            tracing::trace!("too fine for the file");
        });
        let log = std::fs::read_to_string(dir.path().join(DEBUG_LOG)).expect("debug.log");
        let lines: Vec<&str> = log.lines().collect();
        assert_eq!(lines.len(), 2, "{log}");
        assert!(
            lines[0].ends_with("DEBUG kvmtest::vm: started vm=vm1"),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].ends_with("DEBUG qmp{cmd=stop}: kvmtest::qmp: → stop"),
            "{}",
            lines[1]
        );
    }
}
