//! Remote shell sessions: the [`RemoteShell`] trait and [`TcpShell`], its TCP line-protocol
//! client.
//!
//! A session is text in, text out: a command line is sent, and output is read until the *last
//! line* of what arrived so far matches one of a set of patterns (a shell prompt, or a program's
//! own question such as `Device to test:`). That is how avocado-vt's `kvm_subprocess` sessions
//! behave, and the WHQL flow depends on it, so the semantics are kept: the last line is the
//! text after the last line break once trailing line breaks are dropped.
//!
//! Every read has a deadline; a timeout names what was awaited, for how long, and carries the
//! output seen so far (the caller may still need it, as the WHQL test does).

use std::time::Duration;

use regex::Regex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::error::error_chain;
use crate::future::BoxFuture;
use crate::verdict::TestError;

/// Why a shell operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShellError {
    /// Connecting failed.
    #[error("connecting to {address}")]
    Connect {
        /// `host:port`.
        address: String,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// Reading or writing the session failed.
    #[error("{what}")]
    Io {
        /// The operation.
        what: &'static str,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// Nothing matched in time.
    #[error("timed out after {after:?} waiting for {awaited}; last line: {last_line:?}")]
    Timeout {
        /// What was awaited (the patterns).
        awaited: String,
        /// How long we waited.
        after: Duration,
        /// The last line seen.
        last_line: String,
        /// Everything read while waiting.
        output: String,
    },
    /// The peer closed the session before a pattern matched.
    #[error("the session closed while waiting for {awaited}")]
    Closed {
        /// What was awaited.
        awaited: String,
        /// Everything read before the close.
        output: String,
    },
    /// A command exited with a non-zero status.
    #[error("command {cmd:?} failed with status {status}: {output}")]
    Status {
        /// The command line.
        cmd: String,
        /// Its exit status, as the shell printed it.
        status: String,
        /// Its output.
        output: String,
    },
}

/// A shell failure is the test's error, with the whole chain in its message.
impl From<ShellError> for TestError {
    fn from(e: ShellError) -> Self {
        TestError::Error(error_chain(&e))
    }
}

impl ShellError {
    /// The output read before the error, for timeouts and closes.
    pub fn output(&self) -> Option<&str> {
        match self {
            ShellError::Timeout { output, .. }
            | ShellError::Closed { output, .. }
            | ShellError::Status { output, .. } => Some(output),
            _ => None,
        }
    }
}

/// How to talk to a shell: its prompt, its line separator and how to ask for the last status.
#[derive(Debug, Clone)]
pub struct ShellConfig {
    /// Matches the shell's prompt on the last line.
    pub prompt: Regex,
    /// Sent after every line (`"\n"`, or `"\r\n"` for Windows).
    pub linesep: String,
    /// Prints the last command's exit status (`echo $?`, `echo %errorlevel%`).
    pub status_test_command: String,
    /// Timeout of [`RemoteShell::cmd`] and of the initial prompt.
    pub timeout: Duration,
}

impl ShellConfig {
    /// A Windows `cmd.exe` session: prompt `C:\…>`, CRLF, `echo %errorlevel%`.
    pub fn windows() -> Self {
        ShellConfig {
            prompt: windows_prompt(),
            linesep: "\r\n".into(),
            status_test_command: "echo %errorlevel%".into(),
            timeout: Duration::from_secs(60),
        }
    }
}

/// A regex from a pattern literal of this crate.
///
/// The only `expect` of the library: the patterns are string literals checked by the unit tests,
/// so failing here is a bug in this crate, not a runtime condition.
pub(crate) fn literal_regex(pattern: &'static str) -> Regex {
    Regex::new(pattern).expect("pattern literals of this crate compile")
}

fn windows_prompt() -> Regex {
    literal_regex(r"^\w:\\.*>\s*$")
}

/// The last line of `text`, as `kvm_subprocess` sees it: trailing line breaks dropped, then the
/// text after the last line break.
pub fn last_line(text: &str) -> &str {
    let t = text.trim_end_matches(['\r', '\n']);
    match t.rfind('\n') {
        Some(i) => t[i + 1..].trim_end_matches('\r'),
        None => t,
    }
}

/// A shell session on a guest or a remote host.
pub trait RemoteShell: Send {
    /// The prompt pattern of this session.
    fn prompt(&self) -> &Regex;
    /// Send `line` followed by the line separator.
    fn send_line<'a>(&'a mut self, line: &'a str) -> BoxFuture<'a, Result<(), ShellError>>;
    /// Read until the last line matches one of `patterns`; returns the index of the pattern
    /// and everything read.
    fn read_until_last_line_matches<'a>(
        &'a mut self,
        patterns: &'a [Regex],
        timeout: Duration,
    ) -> BoxFuture<'a, Result<(usize, String), ShellError>>;
    /// Read until the prompt; returns everything read, prompt line included.
    fn read_up_to_prompt(&mut self, timeout: Duration)
        -> BoxFuture<'_, Result<String, ShellError>>;
    /// Run `cmd`, wait for the prompt, and return its output without the echoed command
    /// and the prompt line.
    fn cmd_output<'a>(
        &'a mut self,
        cmd: &'a str,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<String, ShellError>>;
    /// Like [`cmd_output`](RemoteShell::cmd_output), but a non-zero exit status (asked with
    /// the status test command) is [`ShellError::Status`].
    fn cmd<'a>(&'a mut self, cmd: &'a str) -> BoxFuture<'a, Result<String, ShellError>>;
}

/// Strip the echoed command (first line, when it is the command) and the prompt (last line).
fn strip_echo_and_prompt(output: &str, cmd: &str, prompt: &Regex) -> String {
    let mut lines: Vec<&str> = output.lines().collect();
    if lines
        .last()
        .is_some_and(|l| prompt.is_match(l.trim_end_matches('\r')))
    {
        lines.pop();
    }
    if lines
        .first()
        .is_some_and(|l| l.trim_end_matches('\r').ends_with(cmd.trim()))
    {
        lines.remove(0);
    }
    let mut out = String::new();
    for l in lines {
        out.push_str(l.trim_end_matches('\r'));
        out.push('\n');
    }
    out
}

/// A shell session over a plain TCP connection, the protocol of `nc` and of the DTM server's
/// remote shell service: bytes in, bytes out, no framing.
#[derive(Debug)]
pub struct TcpShell {
    stream: TcpStream,
    config: ShellConfig,
}

impl TcpShell {
    /// Connect to `address:port` and wait for the first prompt.
    pub async fn connect(
        address: &str,
        port: u16,
        config: ShellConfig,
    ) -> Result<Self, ShellError> {
        let target = format!("{address}:{port}");
        let stream = tokio::time::timeout(config.timeout, TcpStream::connect(&target))
            .await
            .map_err(|_| ShellError::Connect {
                address: target.clone(),
                source: std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"),
            })?
            .map_err(|source| ShellError::Connect {
                address: target.clone(),
                source,
            })?;
        let mut shell = TcpShell { stream, config };
        let t = shell.config.timeout;
        shell.read_up_to_prompt_inner(t).await?;
        Ok(shell)
    }

    async fn read_until_inner(
        &mut self,
        patterns: &[Regex],
        timeout: Duration,
    ) -> Result<(usize, String), ShellError> {
        let deadline = Instant::now() + timeout;
        let mut raw = Vec::new();
        let mut buf = [0u8; 4096];
        let awaited = || {
            patterns
                .iter()
                .map(|p| format!("/{}/", p.as_str()))
                .collect::<Vec<_>>()
                .join(" or ")
        };
        loop {
            let text = String::from_utf8_lossy(&raw);
            let last = last_line(&text);
            if !raw.is_empty() {
                if let Some(i) = patterns.iter().position(|p| p.is_match(last)) {
                    return Ok((i, text.into_owned()));
                }
            }
            let read = tokio::time::timeout_at(deadline, self.stream.read(&mut buf)).await;
            match read {
                Err(_) => {
                    return Err(ShellError::Timeout {
                        awaited: awaited(),
                        after: timeout,
                        last_line: last.to_string(),
                        output: text.into_owned(),
                    })
                }
                Ok(Err(source)) => {
                    return Err(ShellError::Io {
                        what: "reading the session",
                        source,
                    })
                }
                Ok(Ok(0)) => {
                    return Err(ShellError::Closed {
                        awaited: awaited(),
                        output: text.into_owned(),
                    })
                }
                Ok(Ok(n)) => raw.extend_from_slice(buf.get(..n).unwrap_or_default()),
            }
        }
    }

    async fn read_up_to_prompt_inner(&mut self, timeout: Duration) -> Result<String, ShellError> {
        let prompt = [self.config.prompt.clone()];
        self.read_until_inner(&prompt, timeout)
            .await
            .map(|(_, o)| o)
    }

    async fn send_line_inner(&mut self, line: &str) -> Result<(), ShellError> {
        let mut data = Vec::with_capacity(line.len() + 2);
        data.extend_from_slice(line.as_bytes());
        data.extend_from_slice(self.config.linesep.as_bytes());
        self.stream
            .write_all(&data)
            .await
            .map_err(|source| ShellError::Io {
                what: "writing the session",
                source,
            })
    }

    async fn cmd_output_inner(
        &mut self,
        cmd: &str,
        timeout: Duration,
    ) -> Result<String, ShellError> {
        self.send_line_inner(cmd).await?;
        let out = self.read_up_to_prompt_inner(timeout).await?;
        Ok(strip_echo_and_prompt(&out, cmd, &self.config.prompt))
    }
}

impl RemoteShell for TcpShell {
    fn prompt(&self) -> &Regex {
        &self.config.prompt
    }

    fn send_line<'a>(&'a mut self, line: &'a str) -> BoxFuture<'a, Result<(), ShellError>> {
        Box::pin(self.send_line_inner(line))
    }

    fn read_until_last_line_matches<'a>(
        &'a mut self,
        patterns: &'a [Regex],
        timeout: Duration,
    ) -> BoxFuture<'a, Result<(usize, String), ShellError>> {
        Box::pin(self.read_until_inner(patterns, timeout))
    }

    fn read_up_to_prompt(
        &mut self,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<String, ShellError>> {
        Box::pin(self.read_up_to_prompt_inner(timeout))
    }

    fn cmd_output<'a>(
        &'a mut self,
        cmd: &'a str,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<String, ShellError>> {
        Box::pin(self.cmd_output_inner(cmd, timeout))
    }

    fn cmd<'a>(&'a mut self, cmd: &'a str) -> BoxFuture<'a, Result<String, ShellError>> {
        Box::pin(async move {
            let t = self.config.timeout;
            let output = self.cmd_output_inner(cmd, t).await?;
            let status_cmd = self.config.status_test_command.clone();
            let status = self.cmd_output_inner(&status_cmd, t).await?;
            let status = status.trim().to_string();
            if status == "0" {
                Ok(output)
            } else {
                Err(ShellError::Status {
                    cmd: cmd.to_string(),
                    status,
                    output,
                })
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_line_follows_splitlines() {
        assert_eq!(last_line("a\nb\n"), "b");
        assert_eq!(last_line("a\r\nDevice to test: "), "Device to test: ");
        assert_eq!(last_line(""), "");
    }

    #[test]
    fn echo_and_prompt_are_stripped() {
        let p = windows_prompt();
        let out = "echo %computername%\r\nSERVER1\r\nC:\\Users>";
        assert_eq!(
            strip_echo_and_prompt(out, "echo %computername%", &p),
            "SERVER1\n"
        );
    }
}
