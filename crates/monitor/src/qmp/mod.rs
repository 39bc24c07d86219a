//! The QMP client: greeting, capability negotiation, pipelined commands
//! matched by id, events, and teardown that fails everything pending.
//!
//! Structure: one reader task owns the read half and is the only code that
//! parses QEMU's output. Callers append whole lines to a locked write queue
//! and write them at once when the socket takes them (the common case); a
//! writer task drains whatever is left. Sending never awaits, so a caller
//! cancelled mid-send can never leave half a command on the wire.
//! Both tasks end the connection through `Shared::end`, which fails every
//! pending command with the one shared [`Disconnect`](crate::Disconnect) cause.
//!
//! Files: `config` ([`QmpConfig`]), `greeting` ([`Greeting`] and line excerpts
//! for messages), `shared` (one connection's state, the reader and writer
//! tasks, and `Shared::end`), `handshake` (connecting, the greeting and
//! capability negotiation), `client` ([`QmpClient`]: sending commands and
//! reading events) and `reply` ([`PendingReply`]: waiting for one reply).

mod client;
mod config;
mod greeting;
mod handshake;
mod reply;
mod shared;

pub use client::QmpClient;
pub use config::QmpConfig;
pub(crate) use greeting::excerpt;
pub use greeting::Greeting;
pub use reply::PendingReply;
