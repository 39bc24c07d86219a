//! The byte level of one guest-agent connection: writing command lines, reading reply lines of
//! bounded length, and resynchronising with `guest-sync-delimited`.
//!
//! The agent's replies carry no id, so the only way to tell a reply from a stale one (to a
//! command abandoned at its timeout, or sent by a previous client) is to be in step. A
//! connection is *synced* while every byte the agent sent has been matched to a command; any
//! doubt (a timeout, a cancelled call, garbage, a command that has no reply on success) clears
//! the flag, and the next command first resynchronises: it sends a 0xFF byte (the agent's
//! parser drops any half-received JSON) and `guest-sync-delimited` with a fresh id, discards
//! everything up to the 0xFF sentinel the agent puts before that reply, and skips further
//! replies until the one carrying its id.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use crate::error::Disconnect;
use crate::qmp::excerpt;
use crate::transcript::{Direction, Transcript};

/// The sentinel byte: never part of UTF-8 text, so never part of a JSON reply.
pub(super) const DELIMITER: u8 = 0xFF;

const READ_CHUNK: usize = 64 * 1024;

/// How much of what a resync discards the transcript shows.
pub(super) const SAMPLE_BYTES: usize = 240;

/// Why reading a line failed.
pub(super) enum ReadError {
    /// The connection ended.
    Gone(Disconnect),
    /// The agent sent more than the limit without a newline.
    TooLong(usize),
}

impl From<Disconnect> for ReadError {
    fn from(d: Disconnect) -> Self {
        ReadError::Gone(d)
    }
}

/// One message the agent sent.
pub(super) enum Message {
    /// `{"return": …}`.
    Return(Value),
    /// `{"error": {"class": …, "desc": …}}`.
    Error {
        /// `class`, `GenericError` when absent.
        class: String,
        /// `desc`.
        desc: String,
    },
}

impl Message {
    /// Parses one line; `Err` describes a line that is not a reply.
    pub(super) fn parse(line: &[u8]) -> Result<Message, String> {
        let v: Value = serde_json::from_slice(line)
            .map_err(|e| format!("not JSON ({e}): {:?}", excerpt(line)))?;
        let Value::Object(mut obj) = v else {
            return Err(format!("not a JSON object: {:?}", excerpt(line)));
        };
        if let Some(ret) = obj.remove("return") {
            return Ok(Message::Return(ret));
        }
        if let Some(err) = obj.remove("error") {
            let class = err
                .get("class")
                .and_then(Value::as_str)
                .unwrap_or("GenericError")
                .to_owned();
            let desc = err
                .get("desc")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| err.to_string());
            return Ok(Message::Error { class, desc });
        }
        Err(format!("neither `return` nor `error`: {:?}", excerpt(line)))
    }
}

/// A fresh `guest-sync-delimited` id: unique in this process, unlikely to repeat across
/// processes (a previous client's sync reply must not match ours), below 2^31 so every
/// agent version takes it.
pub(super) fn next_sync_id() -> i64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::from(d.subsec_nanos()) ^ d.as_secs())
        .unwrap_or(0);
    let mixed = (nanos ^ (u64::from(std::process::id()) << 13)).wrapping_add(n.wrapping_mul(7919));
    // Masked to 31 bits; never 0, so an agent echoing a default cannot match.
    i64::try_from(mixed & 0x7fff_ffff).unwrap_or(1).max(1)
}

/// The connection's state, owned by the client's lock: one command at a time.
pub(super) struct Conn {
    stream: UnixStream,
    /// Bytes received and not consumed yet.
    buf: Vec<u8>,
    /// Every byte received so far has been matched to a command (see the module docs).
    pub(super) synced: bool,
    /// Set once the connection ended; every later command fails with it.
    pub(super) ended: Option<Arc<Disconnect>>,
    /// What the current call is doing, for its timeout message.
    pub(super) doing: String,
}

impl Conn {
    pub(super) fn new(stream: UnixStream) -> Self {
        Self {
            stream,
            buf: Vec::new(),
            synced: false,
            ended: None,
            doing: String::new(),
        }
    }

    /// Bytes of an unterminated line received so far (for timeout messages).
    pub(super) fn partial_bytes(&self) -> usize {
        self.buf.len()
    }

    /// Writes all of `bytes`.
    pub(super) async fn write(&mut self, bytes: &[u8]) -> Result<(), Disconnect> {
        self.stream.write_all(bytes).await.map_err(Disconnect::Io)
    }

    /// Reads more bytes into the buffer.
    async fn fill(&mut self) -> Result<(), Disconnect> {
        self.buf.reserve(READ_CHUNK);
        match self.stream.read_buf(&mut self.buf).await {
            Ok(0) if self.buf.is_empty() => Err(Disconnect::Eof),
            Ok(0) => Err(Disconnect::EofInLine {
                bytes: self.buf.len(),
            }),
            Ok(_) => Ok(()),
            Err(e) => Err(Disconnect::Io(e)),
        }
    }

    /// The next line without its `\n` (and a trailing `\r`), at most `max` bytes.
    pub(super) async fn next_line(&mut self, max: usize) -> Result<Vec<u8>, ReadError> {
        let mut scanned = 0;
        loop {
            if let Some(pos) = self.buf[scanned..].iter().position(|&b| b == b'\n') {
                let end = scanned + pos;
                if end > max {
                    self.buf.drain(..=end);
                    return Err(ReadError::TooLong(max));
                }
                let mut line: Vec<u8> = self.buf.drain(..=end).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(line);
            }
            scanned = self.buf.len();
            if scanned > max {
                self.buf.clear();
                return Err(ReadError::TooLong(max));
            }
            self.fill().await?;
        }
    }

    /// Discards everything up to and including the next [`DELIMITER`]; returns how many
    /// bytes before it were discarded and the first [`SAMPLE_BYTES`] of them (for the
    /// transcript). Only the sample is kept, so a flood of stale output costs no memory.
    pub(super) async fn skip_to_delimiter(&mut self) -> Result<(usize, Vec<u8>), Disconnect> {
        let mut discarded = 0;
        let mut sample = Vec::new();
        let keep = |bytes: &[u8], sample: &mut Vec<u8>| {
            let room = SAMPLE_BYTES.saturating_sub(sample.len());
            sample.extend_from_slice(&bytes[..bytes.len().min(room)]);
        };
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == DELIMITER) {
                discarded += pos;
                keep(&self.buf[..pos], &mut sample);
                self.buf.drain(..=pos);
                return Ok((discarded, sample));
            }
            discarded += self.buf.len();
            keep(&self.buf, &mut sample);
            self.buf.clear();
            match self.fill().await {
                Ok(()) => {}
                // Bytes discarded before the end are not "in a line": report a plain EOF.
                Err(Disconnect::EofInLine { .. }) => return Err(Disconnect::Eof),
                Err(e) => return Err(e),
            }
        }
    }

    /// Whether the agent has sent anything not asked for (buffered, or readable right now):
    /// then the stream is not in step. Best effort: it sees what the runtime already knows
    /// to be readable. `Err` if the agent closed the connection meanwhile.
    pub(super) fn has_stale_input(&mut self) -> Result<bool, Disconnect> {
        if !self.buf.is_empty() {
            return Ok(true);
        }
        let mut chunk = [0u8; 4096];
        match self.stream.try_read(&mut chunk) {
            Ok(0) => Err(Disconnect::Eof),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(Disconnect::Io(e)),
        }
    }

    /// Resynchronises (see the module docs). On success the connection is synced.
    pub(super) async fn resync(
        &mut self,
        transcript: Option<&Transcript>,
        max_line: usize,
    ) -> Result<(), Disconnect> {
        self.synced = false;
        let id = next_sync_id();
        let cmd = serde_json::json!({"execute": "guest-sync-delimited", "arguments": {"id": id}});
        let text = cmd.to_string();
        if let Some(t) = transcript {
            t.text(
                Direction::Meta,
                "sending 0xFF so the agent drops any half-received input",
            );
            t.json(Direction::Out, text.as_bytes());
        }
        let mut bytes = Vec::with_capacity(text.len() + 2);
        bytes.push(DELIMITER);
        bytes.extend_from_slice(text.as_bytes());
        bytes.push(b'\n');
        self.write(&bytes).await?;
        loop {
            let (discarded, sample) = self.skip_to_delimiter().await?;
            if discarded > 0 {
                if let Some(t) = transcript {
                    let more = if discarded > sample.len() { "…" } else { "" };
                    t.text(
                        Direction::Meta,
                        format!(
                            "discarded {discarded} stale bytes before the 0xFF sentinel: {:?}{more}",
                            String::from_utf8_lossy(&sample)
                        ),
                    );
                }
            }
            let line = match self.next_line(max_line).await {
                Ok(line) => line,
                Err(ReadError::Gone(d)) => return Err(d),
                // A stale over-long line: skip to the next sentinel.
                Err(ReadError::TooLong(_)) => continue,
            };
            if let Some(t) = transcript {
                t.json(Direction::In, &line);
            }
            match Message::parse(&line) {
                Ok(Message::Return(v)) if v.as_i64() == Some(id) => {
                    self.synced = true;
                    return Ok(());
                }
                _ => {
                    if let Some(t) = transcript {
                        t.text(
                            Direction::Meta,
                            format!("not the reply to sync id {id}: skipped"),
                        );
                    }
                }
            }
        }
    }

    /// Closes the write side (the agent sees the end of input).
    pub(super) async fn shutdown(&mut self) {
        let _ = self.stream.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_parse_and_non_replies_say_why() {
        assert!(matches!(
            Message::parse(br#"{"return": {}}"#),
            Ok(Message::Return(Value::Object(_)))
        ));
        assert!(matches!(
            Message::parse(br#"{"error": {"class": "GenericError", "desc": "no"}}"#),
            Ok(Message::Error { class, desc }) if class == "GenericError" && desc == "no"
        ));
        let err = Message::parse(b"garbage").err().unwrap_or_default();
        assert!(err.starts_with("not JSON"), "{err}");
        let err = Message::parse(b"[1]").err().unwrap_or_default();
        assert!(err.starts_with("not a JSON object"), "{err}");
        let err = Message::parse(br#"{"event": "X"}"#)
            .err()
            .unwrap_or_default();
        assert!(err.starts_with("neither"), "{err}");
    }

    #[test]
    fn sync_ids_differ_and_fit_31_bits() {
        let a = next_sync_id();
        let b = next_sync_id();
        assert_ne!(a, b);
        assert!((1..=0x7fff_ffff).contains(&a) && (1..=0x7fff_ffff).contains(&b));
    }

    #[tokio::test]
    async fn skipping_and_line_reading_over_a_socket_pair() {
        let (a, mut b) = UnixStream::pair().expect("socketpair");
        let mut conn = Conn::new(a);
        b.write_all(b"stale\n{\"return\": 1}\n\xff{\"return\": 2}\nnext\n")
            .await
            .expect("write");
        drop(b);
        assert_eq!(
            conn.skip_to_delimiter().await.ok(),
            Some((20, b"stale\n{\"return\": 1}\n".to_vec()))
        );
        assert_eq!(
            conn.next_line(100).await.ok().as_deref(),
            Some(&b"{\"return\": 2}"[..])
        );
        assert!(matches!(
            conn.next_line(2).await,
            Err(ReadError::TooLong(2))
        ));
        assert!(matches!(
            conn.next_line(100).await,
            Err(ReadError::Gone(Disconnect::Eof))
        ));
    }
}
