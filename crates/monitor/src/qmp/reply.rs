//! [`PendingReply`]: a sent command's reply, awaited with a timeout (a timed
//! out or dropped reply abandons the command), and [`ended_error`], the error
//! a command gets when the connection has ended.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::oneshot;

use super::shared::{Outcome, Shared};
use crate::error::{Disconnect, Error};
use crate::transcript::Direction;

pub(super) fn ended_error(command: &str, cause: Arc<Disconnect>) -> Error {
    match *cause {
        Disconnect::ClosedByClient => Error::Closed {
            command: command.to_owned(),
        },
        _ => Error::ConnectionLost {
            command: command.to_owned(),
            cause,
        },
    }
}

/// A command that has been sent and whose reply has not been awaited yet.
///
/// Dropping it abandons the command: its reply, when it comes, is dropped.
#[must_use = "a sent command's reply is only seen through `wait`"]
pub struct PendingReply {
    pub(super) id: u64,
    pub(super) command: String,
    pub(super) rx: Option<oneshot::Receiver<Outcome>>,
    pub(super) shared: Arc<Shared>,
    pub(super) timeout: Duration,
}

impl std::fmt::Debug for PendingReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingReply")
            .field("id", &self.id)
            .field("command", &self.command)
            .finish()
    }
}

impl PendingReply {
    /// Overrides the reply timeout (the client's default otherwise).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The command name.
    pub fn command(&self) -> &str {
        &self.command
    }

    /// Waits for the reply.
    pub async fn wait(mut self) -> Result<Value, Error> {
        let Some(rx) = self.rx.take() else {
            return Err(Error::Closed {
                command: self.command.clone(),
            });
        };
        match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(Outcome::Return(v))) => Ok(v),
            Ok(Ok(Outcome::Failed { class, desc })) => Err(Error::Qmp {
                command: self.command.clone(),
                class,
                desc,
            }),
            Ok(Ok(Outcome::Ended(cause))) => Err(ended_error(&self.command, cause)),
            // The sender is only dropped with the client's state.
            Ok(Err(_)) => Err(Error::Closed {
                command: self.command.clone(),
            }),
            Err(_) => {
                self.shared.state().abandon(self.id);
                if let Some(t) = &self.shared.transcript {
                    t.text(
                        Direction::Meta,
                        format!(
                            "`{}` (id {}) timed out after {:?}",
                            self.command, self.id, self.timeout
                        ),
                    );
                }
                Err(Error::Timeout {
                    command: self.command.clone(),
                    timeout: self.timeout,
                    partial_bytes: self.shared.partial.load(Ordering::Relaxed),
                })
            }
        }
    }
}

impl Drop for PendingReply {
    fn drop(&mut self) {
        // `wait` completed: the entry is gone already, abandon() is a no-op.
        // Otherwise remember the id so its late reply is not a violation.
        self.shared.state().abandon(self.id);
    }
}
