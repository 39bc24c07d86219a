//! JSON-lines transcript of everything a monitor client sends and receives.
//!
//! Each line is `{"time": <unix seconds, µs precision>, "dir": "out"|"in"|"meta",
//! "msg": <message>}`. QMP messages are embedded as JSON values when they
//! parse (so `jq` works on them) and as strings otherwise; HMP traffic is
//! always a string. `meta` lines are the client's own notes (connected,
//! timed out, connection lost), which is what one wants next to a failure.
//!
//! Formatting and file I/O happen on a dedicated thread: recording is a
//! channel send, so the async hot path never blocks on the disk. The thread
//! flushes after every batch, so a crashed test still leaves a usable file.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::Error;

/// Who sent a transcript line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client to QEMU.
    Out,
    /// QEMU to client.
    In,
    /// A note by the client itself.
    Meta,
}

impl Direction {
    fn as_str(self) -> &'static str {
        match self {
            Self::Out => "out",
            Self::In => "in",
            Self::Meta => "meta",
        }
    }
}

enum Payload {
    /// Raw bytes of a QMP line: embedded as JSON when they parse.
    Json(Vec<u8>),
    /// Free text.
    Text(String),
}

enum Msg {
    Record(SystemTime, Direction, Payload),
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// A handle to a transcript file; cheap to record into, written by a
/// background thread that ends when the last handle is dropped.
#[derive(Debug, Clone)]
pub struct Transcript {
    tx: mpsc::Sender<Msg>,
    path: PathBuf,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Msg")
    }
}

impl Transcript {
    /// Creates (truncates) the file at `path` and starts the writer thread.
    pub fn create(path: &Path) -> Result<Self, Error> {
        let file = File::create(path).map_err(|source| Error::Transcript {
            path: path.to_owned(),
            source,
        })?;
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("monitor-transcript".into())
            .spawn(move || writer_thread(rx, BufWriter::new(file)))
            .map_err(|source| Error::Transcript {
                path: path.to_owned(),
                source,
            })?;
        Ok(Self {
            tx,
            path: path.to_owned(),
        })
    }

    /// The transcript's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records a QMP line (raw bytes, without the newline).
    pub fn json(&self, dir: Direction, line: &[u8]) {
        self.send(dir, Payload::Json(line.to_vec()));
    }

    /// Records free text (HMP traffic, client notes).
    pub fn text(&self, dir: Direction, text: impl Into<String>) {
        self.send(dir, Payload::Text(text.into()));
    }

    fn send(&self, dir: Direction, payload: Payload) {
        // A failed send means the writer thread died (disk full, say); the
        // transcript is a diagnostic aid, so losing it must not fail the test.
        let _ = self.tx.send(Msg::Record(SystemTime::now(), dir, payload));
    }

    /// Waits until everything recorded so far is written and flushed.
    pub async fn flush(&self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.tx.send(Msg::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

fn writer_thread(rx: mpsc::Receiver<Msg>, mut out: BufWriter<File>) {
    while let Ok(first) = rx.recv() {
        let mut acks = Vec::new();
        let mut next = Some(first);
        while let Some(msg) = next {
            match msg {
                Msg::Record(time, dir, payload) => write_line(&mut out, time, dir, payload),
                Msg::Flush(ack) => acks.push(ack),
            }
            next = rx.try_recv().ok();
        }
        let _ = out.flush();
        for ack in acks {
            let _ = ack.send(());
        }
    }
    let _ = out.flush();
}

fn write_line(out: &mut impl Write, time: SystemTime, dir: Direction, payload: Payload) {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let msg = match payload {
        Payload::Json(bytes) => match serde_json::from_slice::<serde_json::Value>(&bytes) {
            Ok(v) => v,
            Err(_) => serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned()),
        },
        Payload::Text(s) => serde_json::Value::String(s),
    };
    let line = serde_json::json!({
        "time": (secs * 1e6).round() / 1e6,
        "dir": dir.as_str(),
        "msg": msg,
    });
    let _ = serde_json::to_writer(&mut *out, &line);
    let _ = out.write_all(b"\n");
}
