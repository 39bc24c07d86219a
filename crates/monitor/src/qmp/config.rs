//! [`QmpConfig`]: a QMP client's timeouts, limits, event history size,
//! transcript path and out-of-band negotiation.

use std::path::PathBuf;
use std::time::Duration;

/// Settings for a [`QmpClient`](super::QmpClient). `QmpConfig::default()` suits tests.
#[derive(Debug, Clone)]
pub struct QmpConfig {
    /// Default timeout for a command's reply (per command; overridable).
    pub command_timeout: Duration,
    /// Budget for connecting (retried while QEMU has not yet created the
    /// socket), reading the greeting and negotiating capabilities.
    pub connect_timeout: Duration,
    /// Longest line accepted from QEMU, in bytes. `query-qmp-schema` is the
    /// largest reply QEMU sends, a few hundred KiB.
    pub max_line_bytes: usize,
    /// How many events the history keeps.
    pub event_history: usize,
    /// Where to write the JSON-lines transcript, if anywhere.
    pub transcript: Option<PathBuf>,
    /// Enable out-of-band execution when QEMU offers it.
    pub negotiate_oob: bool,
}

impl Default for QmpConfig {
    fn default() -> Self {
        Self {
            command_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_line_bytes: 16 << 20,
            event_history: 10_000,
            transcript: None,
            negotiate_oob: true,
        }
    }
}

impl QmpConfig {
    /// Sets [`QmpConfig::transcript`].
    pub fn transcript(mut self, path: impl Into<PathBuf>) -> Self {
        self.transcript = Some(path.into());
        self
    }

    /// Sets [`QmpConfig::command_timeout`].
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// Sets [`QmpConfig::connect_timeout`].
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets [`QmpConfig::max_line_bytes`].
    pub fn max_line_bytes(mut self, bytes: usize) -> Self {
        self.max_line_bytes = bytes;
        self
    }
}
