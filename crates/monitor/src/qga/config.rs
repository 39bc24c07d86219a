//! [`QgaConfig`]: a guest-agent client's timeouts, limits and transcript path.

use std::path::PathBuf;
use std::time::Duration;

/// Settings for a [`QgaClient`](super::QgaClient). The defaults are avocado-vt's where it has one
/// (`QemuAgent.CMD_TIMEOUT` 20 s, `FSFREEZE_TIMEOUT` 90 s).
#[derive(Debug, Clone)]
pub struct QgaConfig {
    /// Default timeout of one command, resynchronisation included.
    pub command_timeout: Duration,
    /// Budget for connecting (retried while the socket does not exist yet).
    pub connect_timeout: Duration,
    /// Budget for the first `guest-sync-delimited` after connecting. The agent answers only
    /// once the guest has booted far enough to run it; QEMU holds what is sent until then.
    pub sync_timeout: Duration,
    /// Timeout of `guest-fsfreeze-freeze` (the guest syncs every filesystem first).
    pub freeze_timeout: Duration,
    /// How long a command that has no reply on success (`guest-shutdown`, `guest-suspend-*`)
    /// waits for an error reply before it counts as accepted.
    pub no_reply_grace: Duration,
    /// Longest line accepted from the agent, in bytes (a `guest-file-read` of the chunk size
    /// is 4/3 of it in base64).
    pub max_line_bytes: usize,
    /// Bytes asked for per `guest-file-read` and sent per `guest-file-write`.
    pub file_chunk_bytes: usize,
    /// Where to write the JSON-lines transcript, if anywhere.
    pub transcript: Option<PathBuf>,
}

impl Default for QgaConfig {
    fn default() -> Self {
        Self {
            command_timeout: Duration::from_secs(20),
            connect_timeout: Duration::from_secs(10),
            sync_timeout: Duration::from_secs(60),
            freeze_timeout: Duration::from_secs(90),
            no_reply_grace: Duration::from_secs(2),
            max_line_bytes: 16 << 20,
            file_chunk_bytes: 256 << 10,
            transcript: None,
        }
    }
}

impl QgaConfig {
    /// Sets [`QgaConfig::transcript`].
    pub fn transcript(mut self, path: impl Into<PathBuf>) -> Self {
        self.transcript = Some(path.into());
        self
    }

    /// Sets [`QgaConfig::command_timeout`].
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// Sets [`QgaConfig::connect_timeout`].
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets [`QgaConfig::sync_timeout`].
    pub fn sync_timeout(mut self, timeout: Duration) -> Self {
        self.sync_timeout = timeout;
        self
    }

    /// Sets [`QgaConfig::no_reply_grace`].
    pub fn no_reply_grace(mut self, grace: Duration) -> Self {
        self.no_reply_grace = grace;
        self
    }

    /// Sets [`QgaConfig::max_line_bytes`].
    pub fn max_line_bytes(mut self, bytes: usize) -> Self {
        self.max_line_bytes = bytes;
        self
    }
}
