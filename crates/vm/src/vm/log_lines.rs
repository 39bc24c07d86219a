//! The serial console and QEMU's output as `tracing` events, line by line, in the span of
//! whoever uses the VM now.
//!
//! Both streams outlive any one user of the VM (a test runner hands a VM from test to test), so
//! their events cannot take the span that was current when the VM started: they take the span
//! in a [`LogSpan`] cell, which the user moves along ([`Vm::set_log_span`](super::Vm::set_log_span)).
//! Events: target `kvmtest::serial` (console lines) and `kvmtest::qemu` (QEMU's stdout and
//! stderr, read from `qemu.log`), level debug, field `vm`. The raw files stay as they were.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::Span;

/// Where a VM's console and output lines go: the span set last (initially the one current when
/// the VM was created). Clones share the cell.
#[derive(Debug, Clone)]
pub struct LogSpan(Arc<Mutex<Span>>);

impl LogSpan {
    /// A cell holding the current span.
    pub(crate) fn current() -> Self {
        LogSpan(Arc::new(Mutex::new(Span::current())))
    }

    /// From now on, lines are events of `span` (`Span::none()`: of no span).
    pub fn set(&self, span: Span) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = span;
    }

    fn get(&self) -> Span {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Which stream a [`LineEvents`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    /// The serial console.
    Serial,
    /// QEMU's stdout and stderr.
    Qemu,
}

/// The longest line emitted as one event; a longer one is cut into several.
const MAX_LINE: usize = 4096;

/// Cuts a byte stream into lines (without `\r`, terminal escapes and other control characters)
/// and emits each as a debug event in its [`LogSpan`].
#[derive(Debug)]
pub(crate) struct LineEvents {
    vm: Arc<str>,
    stream: Stream,
    span: LogSpan,
    pending: Vec<u8>,
}

impl LineEvents {
    pub(crate) fn new(vm: &str, stream: Stream, span: LogSpan) -> Self {
        LineEvents {
            vm: vm.into(),
            stream,
            span,
            pending: Vec::new(),
        }
    }

    /// Emits the complete lines of `bytes` (with what was pending); keeps the rest.
    pub(crate) fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if b == b'\n' {
                self.emit();
            } else {
                self.pending.push(b);
                if self.pending.len() >= MAX_LINE {
                    self.emit();
                }
            }
        }
    }

    /// Emits a pending partial line (a prompt waits for input without a newline).
    pub(crate) fn flush(&mut self) {
        if !self.pending.is_empty() {
            self.emit();
        }
    }

    fn emit(&mut self) {
        let line = clean(&self.pending);
        self.pending.clear();
        if line.trim().is_empty() {
            return;
        }
        let span = self.span.get();
        let vm = &*self.vm;
        match self.stream {
            Stream::Serial => {
                tracing::debug!(target: "kvmtest::serial", parent: &span, vm, "{line}");
            }
            Stream::Qemu => tracing::debug!(target: "kvmtest::qemu", parent: &span, vm, "{line}"),
        }
    }
}

/// `raw` as text: lossy UTF-8, without ANSI escape sequences (`ESC [ … final`, `ESC ( B`…) or
/// control characters other than tabs.
fn clean(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => {
                if chars.peek() == Some(&'[') {
                    chars.next();
                    // Parameters and intermediates, then one final byte in @..~.
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                } else {
                    // Intermediates (` `..`/`, as `(` of a charset choice), then the final byte.
                    while chars.peek().is_some_and(|c| (' '..='/').contains(c)) {
                        chars.next();
                    }
                    chars.next();
                }
            }
            '\t' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Follows QEMU's output file while the VM lives: new lines every 200 ms, the rest when
/// dropped (QEMU's last words before it exits).
#[derive(Debug)]
pub(crate) struct OutputTail {
    state: Arc<Mutex<TailState>>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Debug)]
struct TailState {
    file: File,
    lines: LineEvents,
}

impl TailState {
    fn read_new(&mut self) {
        let mut buf = [0u8; 8192];
        loop {
            match self.file.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => self.lines.feed(&buf[..n]),
            }
        }
    }
}

impl OutputTail {
    /// Follows `path` from its start. `None` when it cannot be opened (the file itself still
    /// holds the output: only its events are missing).
    pub(crate) fn start(path: &Path, lines: LineEvents) -> Option<Self> {
        let mut file = File::open(path).ok()?;
        file.seek(SeekFrom::Start(0)).ok()?;
        let state = Arc::new(Mutex::new(TailState { file, lines }));
        let polled = Arc::clone(&state);
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            loop {
                tick.tick().await;
                polled.lock().unwrap_or_else(|e| e.into_inner()).read_new();
            }
        });
        Some(OutputTail { state, task })
    }
}

impl Drop for OutputTail {
    fn drop(&mut self) {
        self.task.abort();
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.read_new();
        s.lines.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_escapes_and_carriage_returns_are_removed() {
        assert_eq!(
            clean(b"[\x1b[0;32m  OK  \x1b[0m] Started \x1b[0;1;39mssh.service\x1b[0m.\r"),
            "[  OK  ] Started ssh.service."
        );
        assert_eq!(clean(b"a\tb\x07c\x1b(Bd"), "a\tbcd");
        assert_eq!(clean(b"caf\xc3\xa9 \xff"), "café \u{fffd}");
    }

    #[test]
    fn lines_are_events_of_the_span_set_last() {
        let seen = crate::test_events::record(|| {
            let first = tracing::info_span!("first");
            let cell = {
                let _e = first.enter();
                LogSpan::current()
            };
            let mut lines = LineEvents::new("vm1", Stream::Serial, cell.clone());
            lines.feed(b"one\r\ntw");
            cell.set(tracing::info_span!("second"));
            lines.feed(b"o\n\r\nlogin: ");
            lines.flush();
            cell.set(Span::none());
            lines.feed(b"after\n");
        });
        let seen: Vec<(&str, &str)> = seen
            .iter()
            .map(|e| (e.span.as_str(), e.message.as_str()))
            .collect();
        let want = [
            ("first", "one"),
            ("second", "two"),
            ("second", "login: "),
            ("", "after"),
        ];
        assert_eq!(seen, want);
    }
}
