//! The crate's error types: one [`Error`] for every monitor operation, and
//! [`Disconnect`], the reason a monitor connection ended.
//!
//! Every variant names what was being done (the QMP command, the HMP command
//! line, the awaited event) so a failing test explains itself without a
//! debugger. Timeouts say how long was waited.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::filter::EventFilter;

/// A QEMU error class as sent in `{"error": {"class": ...}}`.
///
/// `qapi::ErrorClass` is a closed enum, so a class a newer QEMU invents would
/// fail to decode there; this type keeps unknown classes as [`ErrorClass::Other`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// Most errors: anything without a more specific class.
    GenericError,
    /// The command does not exist in this QEMU.
    CommandNotFound,
    /// A device is not active.
    DeviceNotActive,
    /// The named device does not exist.
    DeviceNotFound,
    /// A required KVM capability is missing.
    KVMMissingCap,
    /// A class this crate does not know, kept verbatim.
    Other(String),
}

impl ErrorClass {
    /// Maps QEMU's class string to the enum; never fails.
    pub fn from_wire(s: &str) -> Self {
        match s {
            "GenericError" => Self::GenericError,
            "CommandNotFound" => Self::CommandNotFound,
            "DeviceNotActive" => Self::DeviceNotActive,
            "DeviceNotFound" => Self::DeviceNotFound,
            "KVMMissingCap" => Self::KVMMissingCap,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The class as QEMU spells it.
    pub fn as_str(&self) -> &str {
        match self {
            Self::GenericError => "GenericError",
            Self::CommandNotFound => "CommandNotFound",
            Self::DeviceNotActive => "DeviceNotActive",
            Self::DeviceNotFound => "DeviceNotFound",
            Self::KVMMissingCap => "KVMMissingCap",
            Self::Other(s) => s,
        }
    }
}

impl std::fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a monitor connection ended. Shared (behind an `Arc`) by every command
/// and event waiter that the ending failed.
#[derive(Debug, thiserror::Error)]
pub enum Disconnect {
    /// The peer closed the socket (QEMU exited or was killed).
    #[error("peer closed the connection")]
    Eof,
    /// The peer closed the socket in the middle of a line.
    #[error("peer closed the connection after {bytes} bytes of an unterminated line")]
    EofInLine {
        /// Bytes of the partial line that were received.
        bytes: usize,
    },
    /// Reading from or writing to the socket failed.
    #[error("socket I/O failed")]
    Io(#[source] io::Error),
    /// The peer sent something that is not a QMP message.
    #[error("peer sent a line that is not a QMP message: {excerpt:?}")]
    Garbage {
        /// The start of the offending line.
        excerpt: String,
    },
    /// The peer sent a line longer than the configured limit.
    #[error("peer sent a line longer than {limit} bytes")]
    LineTooLong {
        /// The configured limit, in bytes.
        limit: usize,
    },
    /// The peer replied with an id this client never sent.
    #[error("peer sent a reply with an id this client never used: {id}")]
    UnknownReplyId {
        /// The id as received (JSON text).
        id: String,
    },
    /// [`crate::QmpClient::close`] or [`crate::HmpClient::close`] was called.
    #[error("the client was closed")]
    ClosedByClient,
}

/// Every way a monitor operation can fail.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The socket could not be connected to within the connect timeout.
    #[error("connecting to monitor {addr} (tried for {waited:?})")]
    Connect {
        /// The address, for messages.
        addr: String,
        /// How long connecting was retried.
        waited: Duration,
        /// The last connect error.
        #[source]
        source: io::Error,
    },
    /// The greeting (QMP banner or HMP prompt) did not arrive or was malformed.
    #[error("monitor {addr} handshake failed: {detail}")]
    Handshake {
        /// The address, for messages.
        addr: String,
        /// What was wrong.
        detail: String,
    },
    /// QEMU answered the command with an error.
    #[error("QMP `{command}` failed: {class}: {desc}")]
    Qmp {
        /// The command name.
        command: String,
        /// QEMU's error class.
        class: ErrorClass,
        /// QEMU's human-readable description.
        desc: String,
    },
    /// No reply arrived within the timeout.
    #[error("monitor command `{command}` got no reply within {timeout:?}{}", stall_note(*.partial_bytes))]
    Timeout {
        /// The command (QMP name or HMP command line).
        command: String,
        /// How long was waited.
        timeout: Duration,
        /// Bytes of an unterminated line the peer had sent when time ran out.
        partial_bytes: usize,
    },
    /// The connection ended while the command was in flight or before it was sent.
    #[error("monitor connection lost while `{command}` was in flight")]
    ConnectionLost {
        /// The command (QMP name or HMP command line).
        command: String,
        /// Why the connection ended.
        #[source]
        cause: Arc<Disconnect>,
    },
    /// The client was closed while the command was pending.
    #[error("monitor client closed while `{command}` was pending")]
    Closed {
        /// The command (QMP name or HMP command line).
        command: String,
    },
    /// The reply arrived but did not decode into the typed command's result.
    #[error("decoding the reply of `{command}`")]
    Decode {
        /// The command name.
        command: String,
        /// The decoding error.
        #[source]
        source: serde_json::Error,
    },
    /// Arguments of a typed command did not serialize to a JSON object.
    #[error("encoding the arguments of `{command}`: {detail}")]
    Encode {
        /// The command name.
        command: String,
        /// What was wrong.
        detail: String,
    },
    /// A command that carries file descriptors could not be sent with them.
    #[error("sending `{command}` with file descriptors: {detail}")]
    FdPassing {
        /// The command name.
        command: String,
        /// What was wrong (no unix socket, the send failed).
        detail: String,
    },
    /// An HMP command line contained a newline (it would run two commands).
    #[error("HMP command line {command:?} contains a line break")]
    InvalidCommandLine {
        /// The offending command line.
        command: String,
    },
    /// No matching event arrived within the timeout.
    #[error("no event {filter} within {timeout:?} ({seen} other events seen meanwhile)")]
    EventTimeout {
        /// What was awaited.
        filter: EventFilter,
        /// How long was waited.
        timeout: Duration,
        /// Events that arrived in the searched range but did not match.
        seen: u64,
    },
    /// The connection ended before a matching event arrived.
    #[error("monitor connection ended before event {filter} arrived")]
    EventStreamEnded {
        /// What was awaited.
        filter: EventFilter,
        /// Why the connection ended.
        #[source]
        cause: Arc<Disconnect>,
    },
    /// Events in the requested range were evicted from the bounded history
    /// before they could be examined.
    #[error("{lost} events were evicted from the history before they were examined (waiting for {filter})")]
    EventsLost {
        /// What was awaited.
        filter: EventFilter,
        /// How many events were lost.
        lost: u64,
    },
    /// The guest agent answered the command with an error.
    #[error("guest agent `{command}` failed: {class}: {desc}")]
    Agent {
        /// The command name.
        command: String,
        /// The agent's error class (`GenericError` for almost everything).
        class: ErrorClass,
        /// The agent's human-readable description.
        desc: String,
    },
    /// The guest agent did not answer in time: it hangs, is not running in the guest, or the
    /// guest is not up (QEMU holds what is sent until the guest opens its port).
    #[error(
        "guest agent gave no reply to `{command}` within {timeout:?}{}: the agent hangs or is \
         not running in the guest",
        stall_note(*.partial_bytes)
    )]
    AgentTimeout {
        /// The command, with what it was done for (`guest-sync-delimited (on connect)`).
        command: String,
        /// How long was waited.
        timeout: Duration,
        /// Bytes of an unterminated line the agent had sent when time ran out.
        partial_bytes: usize,
    },
    /// The guest agent's socket closed (QEMU exited or was killed) while the command was in
    /// flight, or before it was sent.
    #[error("guest agent connection lost during `{command}` (QEMU exited or closed the socket)")]
    AgentGone {
        /// The command.
        command: String,
        /// Why the connection ended.
        #[source]
        cause: Arc<Disconnect>,
    },
    /// The guest agent answered with something that is not a reply: the stream is out of step,
    /// so the next command resynchronises first (`guest-sync-delimited`).
    #[error("guest agent sent a bad reply to `{command}`: {detail}")]
    AgentProtocol {
        /// The command.
        command: String,
        /// What was wrong, with an excerpt of what arrived.
        detail: String,
    },
    /// A process started with `guest-exec` had not exited when its time ran out (it still runs
    /// in the guest).
    #[error("guest process `{argv}` (pid {pid}) did not exit within {timeout:?}")]
    ExecTimeout {
        /// The process's argv, space-joined, for messages.
        argv: String,
        /// Its pid in the guest.
        pid: i64,
        /// How long was waited.
        timeout: Duration,
    },
    /// The transcript file could not be created.
    #[error("creating monitor transcript {path}")]
    Transcript {
        /// The transcript path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

fn stall_note(partial_bytes: usize) -> String {
    if partial_bytes == 0 {
        String::new()
    } else {
        format!(" (peer sent {partial_bytes} bytes of an unterminated line, then nothing)")
    }
}

impl Error {
    /// The error class, when QEMU or the guest agent answered with an error.
    pub fn qmp_class(&self) -> Option<&ErrorClass> {
        match self {
            Self::Qmp { class, .. } | Self::Agent { class, .. } => Some(class),
            _ => None,
        }
    }

    /// The command named by this error, if it names one.
    pub fn command(&self) -> Option<&str> {
        match self {
            Self::Qmp { command, .. }
            | Self::Timeout { command, .. }
            | Self::ConnectionLost { command, .. }
            | Self::Closed { command }
            | Self::Decode { command, .. }
            | Self::Encode { command, .. }
            | Self::FdPassing { command, .. }
            | Self::InvalidCommandLine { command }
            | Self::Agent { command, .. }
            | Self::AgentTimeout { command, .. }
            | Self::AgentGone { command, .. }
            | Self::AgentProtocol { command, .. } => Some(command),
            _ => None,
        }
    }
}
