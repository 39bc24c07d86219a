//! The serial console's and QEMU's output lines as `tracing` events of the span a `Vm`'s
//! `LogSpan` holds, on the real test guest.
//!
//! A test binary of its own, with one test: its subscriber is the thread's default
//! (`set_default`), and other tests' threads hitting the same callsites first, with no
//! subscriber of theirs, left tracing's per-callsite interest cache without it.

#[macro_use]
mod support;

use std::time::{Duration, Instant};

use support::{assert_no_leftovers, guest_params, logs, start};
use vm::{Access, Teardown};

/// What a [`Recorder`] saw of one event: its target, its innermost span's name, its message.
type Seen = std::sync::Arc<std::sync::Mutex<Vec<(String, String, String)>>>;

/// A tracing layer recording every event.
struct Recorder(Seen);

impl<S> tracing_subscriber::Layer<S> for Recorder
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_event(&self, event: &tracing::Event<'_>, ctx: tracing_subscriber::layer::Context<'_, S>) {
        struct Message(String);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                if f.name() == "message" {
                    self.0 = format!("{v:?}");
                }
            }
        }
        let mut m = Message(String::new());
        event.record(&mut m);
        let span = ctx
            .event_scope(event)
            .and_then(|mut s| s.next().map(|s| s.name().to_owned()))
            .unwrap_or_default();
        self.0
            .lock()
            .expect("lock")
            .push((event.metadata().target().to_owned(), span, m.0));
    }
}

/// The messages of `target` seen in span `span`.
fn seen_in(seen: &Seen, target: &str, span: &str) -> Vec<String> {
    seen.lock()
        .expect("lock")
        .iter()
        .filter(|(t, s, _)| t == target && s == span)
        .map(|(_, _, m)| m.clone())
        .collect()
}

// One thread: the console reader is a task of this runtime, so it sees this test's subscriber.
#[tokio::test(flavor = "current_thread")]
async fn console_and_qemu_output_lines_are_events_of_the_span_set_last() {
    use tracing::Instrument;
    use tracing_subscriber::layer::SubscriberExt;

    let seen = Seen::default();
    let _default = tracing::subscriber::set_default(
        tracing_subscriber::registry().with(Recorder(std::sync::Arc::clone(&seen))),
    );
    let logs = logs();
    let first = tracing::info_span!("first");
    let mut vm = start(guest_params(), logs.path())
        .instrument(first)
        .await
        .expect("create");
    let timeout = vm.login_timeout();
    let mut serial = ok!(vm, vm.wait_for_login(Access::Serial, timeout).await);
    let console = seen_in(&seen, "kvmtest::serial", "first");
    assert!(
        console.iter().any(|l| l.starts_with("KVMTEST-GUEST-READY")),
        "the boot's console lines: {console:?}"
    );

    vm.log_span().set(tracing::info_span!("second"));
    ok!(vm, serial.cmd("echo span-check-$((6*7))").await);
    drop(serial);
    // The echo reaches the log once the console was quiet for a moment, or at its newline.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !seen_in(&seen, "kvmtest::serial", "second").contains(&"span-check-42".to_owned())
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let console = seen_in(&seen, "kvmtest::serial", "second");
    assert!(
        console.contains(&"span-check-42".to_owned()),
        "the command's output among the second span's lines: {console:?}"
    );
    assert!(
        !seen_in(&seen, "kvmtest::serial", "first").contains(&"span-check-42".to_owned()),
        "the first span has none of the lines after the switch"
    );

    // QEMU's own stderr: its last words when terminated by a signal.
    let pid = vm.pid();
    let run_dir = vm.run_dir().to_path_buf();
    let pid_arg = rustix::process::Pid::from_raw(i32::try_from(pid).expect("pid")).expect("pid");
    rustix::process::kill_process(pid_arg, rustix::process::Signal::TERM).expect("SIGTERM");
    let deadline = Instant::now() + Duration::from_secs(10);
    while vm.is_alive() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    vm.destroy(Teardown::Kill).await.expect("destroy");
    assert_no_leftovers(pid, &run_dir);
    let output = seen_in(&seen, "kvmtest::qemu", "second");
    assert!(
        output
            .iter()
            .any(|l| l.contains("terminating on signal 15")),
        "QEMU's output lines in the second span: {output:?}"
    );
}
