//! The QEMU guest agent client ([`QgaClient`]): `qemu-ga` running in the guest, reached through
//! the chardev of its virtio serial port (`org.qemu.guest_agent.0`).
//!
//! The agent speaks QMP's JSON but not its protocol: no greeting, no capability negotiation, no
//! command ids, no events. Replies come in order, and nothing tells a reply to an abandoned
//! command (one whose caller timed out) from the reply to the next. So the client keeps the
//! connection *in step* and, whenever it may not be (on connect, after a timeout, a cancelled
//! call, garbage, or a command without a reply on success), first resynchronises with
//! `guest-sync-delimited`: a 0xFF byte flushes the agent's parser, and the agent precedes its
//! reply with a 0xFF sentinel, before which everything is stale (`conn`).
//!
//! Files: `config` ([`QgaConfig`]), `conn` (the byte level: lines, sentinel, resync), `client`
//! ([`QgaClient`]: commands untyped, typed by `qapi`'s QGA schema, and those without a reply),
//! `ops` (ping, info, exec, files, fsfreeze, shutdown… built on those).

mod client;
mod config;
mod conn;
mod ops;

pub use client::{NoReply, QgaClient, NO_REPLY_COMMANDS};
pub use config::QgaConfig;
pub use ops::{ExecOutput, ExecRequest, SuspendMode};
