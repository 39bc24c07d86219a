//! Bounded line reading: the one place that turns socket bytes into lines.
//!
//! A line may not exceed a configured length, so a peer that never sends a
//! newline cannot make the client buffer without limit, and a peer that
//! closes mid-line is told apart from a clean close.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::error::Disconnect;

const READ_CHUNK: usize = 64 * 1024;

/// Splits an async byte stream into `\n`-terminated lines of bounded length.
pub(crate) struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    /// Start of the first unconsumed byte in `buf`.
    start: usize,
    /// Bytes after `start` already known to contain no newline.
    scanned: usize,
    max_line: usize,
    /// Bytes of the current unterminated line, published for timeout messages.
    partial: Arc<AtomicUsize>,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    pub(crate) fn new(inner: R, max_line: usize, partial: Arc<AtomicUsize>) -> Self {
        Self {
            inner,
            buf: Vec::with_capacity(READ_CHUNK),
            start: 0,
            scanned: 0,
            max_line,
            partial,
        }
    }

    /// The next line without its `\n` (and without a trailing `\r`).
    pub(crate) async fn next_line(&mut self) -> Result<Vec<u8>, Disconnect> {
        loop {
            let pending = &self.buf[self.start + self.scanned..];
            if let Some(pos) = pending.iter().position(|&b| b == b'\n') {
                let end = self.start + self.scanned + pos;
                if end - self.start > self.max_line {
                    return Err(Disconnect::LineTooLong {
                        limit: self.max_line,
                    });
                }
                let mut line = &self.buf[self.start..end];
                if line.last() == Some(&b'\r') {
                    line = &line[..line.len() - 1];
                }
                let line = line.to_vec();
                self.start = end + 1;
                self.scanned = 0;
                return Ok(line);
            }
            self.scanned = self.buf.len() - self.start;
            if self.scanned > self.max_line {
                return Err(Disconnect::LineTooLong {
                    limit: self.max_line,
                });
            }
            self.partial.store(self.scanned, Ordering::Relaxed);
            // Compact before reading so the buffer does not grow with the
            // number of lines received, only with the longest line.
            if self.start > 0 {
                self.buf.drain(..self.start);
                self.start = 0;
            }
            self.buf.reserve(READ_CHUNK);
            match self.inner.read_buf(&mut self.buf).await {
                Ok(0) if self.scanned == 0 => return Err(Disconnect::Eof),
                Ok(0) => {
                    return Err(Disconnect::EofInLine {
                        bytes: self.scanned,
                    })
                }
                Ok(_) => {}
                Err(e) => return Err(Disconnect::Io(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn splits_and_bounds_lines() {
        let data: &[u8] = b"a\r\nbb\nccc";
        let mut r = LineReader::new(data, 5, Arc::default());
        assert_eq!(r.next_line().await.expect("line"), b"a");
        assert_eq!(r.next_line().await.expect("line"), b"bb");
        assert!(matches!(
            r.next_line().await,
            Err(Disconnect::EofInLine { bytes: 3 })
        ));

        let long: &[u8] = b"0123456789\n";
        let mut r = LineReader::new(long, 5, Arc::default());
        assert!(matches!(
            r.next_line().await,
            Err(Disconnect::LineTooLong { limit: 5 })
        ));
    }
}
