//! QMP, HMP and guest-agent clients for QEMU that never hang and never miss an event.
//!
//! This crate talks to a running QEMU's monitors; it does not start QEMU
//! (that is the `vm` crate's job) and knows nothing about test parameters.
//!
//! * [`QmpClient`]: QMP over a unix or TCP socket. Commands are pipelined and
//!   matched to replies by id; every one has a timeout; typed commands come
//!   from the [`qapi`] crate ([`QmpClient::run`]) and any command works
//!   untyped ([`QmpClient::execute`]).
//! * Events go into a bounded history that any number of waiters and
//!   listeners read through cursors ([`QmpClient::wait_event`],
//!   [`QmpClient::listen`]), so an event that arrives before the wait starts
//!   is not lost.
//! * [`HumanMonitor`]: HMP text commands through QMP or through a separate
//!   `(qemu) ` prompt socket ([`HmpClient`]).
//! * [`QgaClient`]: the QEMU guest agent on its virtio port's socket: typed
//!   commands from `qapi`'s QGA schema plus untyped ones, resynchronised with
//!   `guest-sync-delimited` on connect and after any timeout; `guest-exec`,
//!   whole-file reads and writes, fsfreeze, shutdown without a reply.
//! * Every client can write a JSON-lines transcript ([`transcript`]).
//!
//! Every failure is an [`Error`] naming the command or event involved; the
//! end of a connection is a [`Disconnect`] shared by all that it failed.
//!
//! ```no_run
//! # async fn demo() -> Result<(), monitor::Error> {
//! use monitor::{EventFilter, HumanMonitor, QmpClient, QmpConfig};
//! use serde_json::json;
//! use std::time::Duration;
//!
//! let qmp = QmpClient::connect_unix("/run/vm1/qmp.sock",
//!     QmpConfig::default().transcript("/run/vm1/qmp.jsonl")).await?;
//! let status = qmp.run(&qapi::qmp::query_status {}).await?;
//! assert!(!status.running);
//!
//! let mark = qmp.cursor();
//! qmp.execute("cont", json!({})).await?;
//! qmp.wait_event(EventFilter::new("RESUME").since(mark), Duration::from_secs(5)).await?;
//!
//! let pci = qmp.info("pci").await?;
//! # let _ = pci; Ok(()) }
//! ```

pub mod error;
pub mod event;
mod filter;
pub mod hmp;
pub mod qga;
pub mod qmp;
pub mod transcript;
mod wire;

pub use error::{Disconnect, Error, ErrorClass};
pub use event::{Event, EventCursor, EventFilter, EventListener, EventTimestamp};
pub use hmp::{HmpClient, HmpConfig, HumanMonitor};
pub use qapi;
pub use qga::{ExecOutput, ExecRequest, NoReply, QgaClient, QgaConfig, SuspendMode};
pub use qmp::{Greeting, PendingReply, QmpClient, QmpConfig};
