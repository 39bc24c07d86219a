//! [`BoxFuture`]: the boxed, sendable future the object-safe async traits of this crate
//! ([`crate::env::VmEnv`], [`crate::env::GuestVm`], [`crate::shell::RemoteShell`]) and test
//! functions return.

use std::future::Future;
use std::pin::Pin;

/// A boxed, sendable future: what the object-safe async traits of this crate return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
