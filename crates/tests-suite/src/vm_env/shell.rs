//! [`SessionShell`]: a `vm::Session` as the catalogue's [`RemoteShell`].

use super::*;

/// A guest shell from `crates/vm` ([`Session`]) as a [`RemoteShell`].
pub struct SessionShell {
    session: Session,
}

impl std::fmt::Debug for SessionShell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionShell")
            .field("session", &self.session.describe())
            .finish()
    }
}

impl SessionShell {
    /// Wraps a logged-in session.
    pub fn new(session: Session) -> Self {
        SessionShell { session }
    }
}

fn shell_err(e: vm::SessionError) -> ShellError {
    match e {
        vm::SessionError::CommandFailed {
            command,
            status,
            output,
            ..
        } => ShellError::Status {
            cmd: command,
            status: status.to_string(),
            output,
        },
        // A timeout stays a timeout: tests tell "the guest did not answer in time" (a blocked
        // write, a hung command) from a broken session.
        vm::SessionError::Timeout {
            awaited,
            waited,
            tail,
            ..
        } => ShellError::Timeout {
            awaited,
            after: waited,
            last_line: crate::shell::last_line(&tail).to_owned(),
            output: tail,
        },
        other => ShellError::Io {
            what: "guest session",
            source: std::io::Error::other(crate::error_chain(&other)),
        },
    }
}

impl RemoteShell for SessionShell {
    fn prompt(&self) -> &Regex {
        &self.session.config().prompt
    }

    fn send_line<'a>(&'a mut self, line: &'a str) -> BoxFuture<'a, Result<(), ShellError>> {
        Box::pin(async move { self.session.sendline(line).await.map_err(shell_err) })
    }

    fn read_until_last_line_matches<'a>(
        &'a mut self,
        patterns: &'a [Regex],
        timeout: Duration,
    ) -> BoxFuture<'a, Result<(usize, String), ShellError>> {
        Box::pin(async move {
            let prompt = self.session.config().prompt.as_str().to_owned();
            match patterns.iter().position(|p| p.as_str() == prompt) {
                Some(i) if patterns.len() == 1 => {
                    let text = self
                        .session
                        .read_up_to_prompt(timeout, "the shell prompt")
                        .await
                        .map_err(shell_err)?;
                    Ok((i, text))
                }
                _ => Err(ShellError::Io {
                    what: "guest session",
                    source: std::io::Error::other(
                        "guest sessions wait for their shell prompt only",
                    ),
                }),
            }
        })
    }

    fn read_up_to_prompt(
        &mut self,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<String, ShellError>> {
        Box::pin(async move {
            self.session
                .read_up_to_prompt(timeout, "the shell prompt")
                .await
                .map_err(shell_err)
        })
    }

    fn cmd_output<'a>(
        &'a mut self,
        cmd: &'a str,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<String, ShellError>> {
        Box::pin(async move {
            self.session
                .cmd_output_timeout(cmd, timeout)
                .await
                .map_err(shell_err)
        })
    }

    fn cmd<'a>(&'a mut self, cmd: &'a str) -> BoxFuture<'a, Result<String, ShellError>> {
        Box::pin(async move { self.session.cmd(cmd).await.map_err(shell_err) })
    }
}
