//! Guest shells: [`Session`] runs commands over any [`Transport`] and logs everything.
//!
//! The protocol is avocado-vt's, driven by the params: wait for `shell_prompt` (a regex matched
//! against the last line of output), send a command, read up to the next prompt, drop the echoed
//! command line; then run `status_test_command` (`echo $?`) the same way for the exit status.
//! Login answers `username`/`password` prompts when they appear; a guest that starts a shell
//! without login (the kvmtest test guest) is just as fine. Every wait has a deadline and its error
//! names what was awaited and shows the end of the output.

mod telnet;
mod transport;

pub use telnet::{escape as telnet_escape, filter as telnet_filter, TelnetState};
pub(crate) use transport::SerialShared;
pub use transport::{
    BoxFuture, RawTcpTransport, SerialTransport, SshTransport, TelnetTransport, Transport,
};

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use regex::Regex;

use crate::error::SessionError;

/// How a session logs in and recognises the shell: the session family of keys, read once by
/// the `spec` crate (defaults, every bad value an error naming its `file:line`).
pub use spec::session::{SessionSpec, DEFAULT_PROMPT};

/// What in a login's output says the credentials were refused: ssh's `Permission denied` (it then
/// exits) or a getty's `Login incorrect`.
fn refusal(text: &str) -> Option<&'static str> {
    [
        "Permission denied",
        "Login incorrect",
        "Authentication failure",
    ]
    .into_iter()
    .find(|r| text.contains(r))
}

/// Removes `\r`, ANSI CSI/OSC escape sequences and other control bytes except `\n` and `\t`.
pub fn clean_output(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => match chars.peek() {
                Some('[') => {
                    chars.next();
                    // Parameters and intermediates, then one final byte in @..~.
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
                Some(']') => {
                    chars.next();
                    while let Some(c) = chars.next() {
                        if c == '\x07' {
                            break;
                        }
                        if c == '\x1b' && chars.peek() == Some(&'\\') {
                            chars.next();
                            break;
                        }
                    }
                }
                Some(_) => {
                    chars.next();
                }
                None => {}
            },
            '\n' | '\t' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// The last few hundred characters of `text`, for error messages, without the blank lines
/// around them (the echo of the newlines sent to wake a prompt).
/// How much of the latest output a session keeps for its error messages.
const RECENT_BYTES: usize = 4096;

fn tail(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let end: String = chars[chars.len().saturating_sub(600)..].iter().collect();
    end.trim_matches(|c| c == '\n' || c == '\r').to_owned()
}

/// A logged-in guest shell over a [`Transport`].
pub struct Session {
    transport: Box<dyn Transport>,
    config: SessionSpec,
    /// Received bytes not consumed yet.
    buf: Vec<u8>,
    /// The last [`RECENT_BYTES`] received, consumed or not: what errors show as the output's
    /// end (a prompt answered just before the transport closed is part of the story).
    recent: Vec<u8>,
    log: File,
    log_path: PathBuf,
    opened: Instant,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("transport", &self.transport.describe())
            .field("log", &self.log_path)
            .finish_non_exhaustive()
    }
}

/// Which pattern a wait found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Prompt,
    Username,
    Password,
}

impl Session {
    /// Wraps `transport`, logging to `log_path` (appended). Does not log in: see [`Session::login`].
    ///
    /// # Errors
    /// [`SessionError::Log`] if the log cannot be opened.
    pub fn new(
        transport: Box<dyn Transport>,
        config: SessionSpec,
        log_path: &Path,
    ) -> Result<Session, SessionError> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(log_path)
            .map_err(|source| SessionError::Log {
                session: transport.describe().to_owned(),
                path: log_path.to_path_buf(),
                source,
            })?;
        let mut s = Session {
            transport,
            config,
            buf: Vec::new(),
            recent: Vec::new(),
            log,
            log_path: log_path.to_path_buf(),
            opened: Instant::now(),
        };
        let name = s.describe().to_owned();
        s.note(&format!("session opened: {name}"))?;
        Ok(s)
    }

    /// The transport's description.
    pub fn describe(&self) -> &str {
        self.transport.describe()
    }

    /// The log file.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The shell settings.
    pub fn config(&self) -> &SessionSpec {
        &self.config
    }

    fn note(&mut self, text: &str) -> Result<(), SessionError> {
        let t = self.opened.elapsed().as_secs_f64();
        writeln!(self.log, "\n[kvmtest +{t:.3}s] {text}").map_err(|source| SessionError::Log {
            session: self.transport.describe().to_owned(),
            path: self.log_path.clone(),
            source,
        })
    }

    async fn send(&mut self, text: &str) -> Result<(), SessionError> {
        self.note(&format!("send {text:?}"))?;
        self.transport
            .write_all(text.as_bytes())
            .await
            .map_err(|source| SessionError::Io {
                session: self.transport.describe().to_owned(),
                doing: format!("sending {text:?}"),
                source,
            })
    }

    /// Sends `text` followed by the line separator, without waiting for anything.
    ///
    /// # Errors
    /// [`SessionError::Io`] if the write fails.
    pub async fn sendline(&mut self, text: &str) -> Result<(), SessionError> {
        let line = format!("{text}{}", self.config.linesep);
        self.send(&line).await
    }

    /// Reads one chunk into the buffer before `deadline`; `Ok(false)` when the deadline passed.
    async fn fill(&mut self, deadline: Instant, awaited: &str) -> Result<bool, SessionError> {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, self.transport.read()).await {
            Err(_) => Ok(false),
            Ok(Err(source)) => Err(SessionError::Io {
                session: self.transport.describe().to_owned(),
                doing: format!("waiting for {awaited}"),
                source,
            }),
            Ok(Ok(chunk)) if chunk.is_empty() => Err(SessionError::Closed {
                session: self.transport.describe().to_owned(),
                awaited: awaited.to_owned(),
                tail: tail(&clean_output(&self.recent)),
            }),
            Ok(Ok(chunk)) => {
                self.log
                    .write_all(&chunk)
                    .map_err(|source| SessionError::Log {
                        session: self.transport.describe().to_owned(),
                        path: self.log_path.clone(),
                        source,
                    })?;
                self.buf.extend_from_slice(&chunk);
                self.recent.extend_from_slice(&chunk);
                let excess = self.recent.len().saturating_sub(RECENT_BYTES);
                self.recent.drain(..excess);
                Ok(true)
            }
        }
    }

    /// Which pattern the last line of the buffer matches, with the text before that line.
    fn check(&self, patterns: &[(Seen, &Regex)]) -> Option<(Seen, String)> {
        let text = clean_output(&self.buf);
        let (before, last) = match text.rfind('\n') {
            Some(i) => (&text[..i], &text[i + 1..]),
            None => ("", text.as_str()),
        };
        // sshd's and login's "Last login: …" banner ends in "login:" while its line is still
        // arriving: it is no login prompt (avocado-vt's pattern excludes it with a look-behind,
        // which the regex crate does not have).
        let banner = last.to_ascii_lowercase().contains("last login:");
        patterns
            .iter()
            .filter(|(seen, _)| !(banner && *seen == Seen::Username))
            .find(|(_, re)| re.is_match(last))
            .map(|(seen, _)| (*seen, before.to_owned()))
    }

    async fn wait_for(
        &mut self,
        patterns: &[(Seen, &Regex)],
        timeout: Duration,
        awaited: &str,
    ) -> Result<(Seen, String), SessionError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(found) = self.check(patterns) {
                self.buf.clear();
                return Ok(found);
            }
            if !self.fill(deadline, awaited).await? {
                return Err(SessionError::Timeout {
                    session: self.transport.describe().to_owned(),
                    awaited: awaited.to_owned(),
                    waited: timeout,
                    tail: tail(&clean_output(&self.recent)),
                });
            }
        }
    }

    /// Reads until the last line matches `shell_prompt`; returns the text before that line.
    ///
    /// # Errors
    /// [`SessionError::Timeout`] (naming `awaited`), [`SessionError::Closed`], I/O errors.
    pub async fn read_up_to_prompt(
        &mut self,
        timeout: Duration,
        awaited: &str,
    ) -> Result<String, SessionError> {
        let prompt = self.config.prompt.clone();
        let (_, text) = self
            .wait_for(&[(Seen::Prompt, &prompt)], timeout, awaited)
            .await?;
        Ok(text)
    }

    /// Discards what has arrived so far without waiting for more.
    async fn discard_pending(&mut self) -> Result<(), SessionError> {
        self.buf.clear();
        while self.fill(Instant::now(), "pending output").await? {}
        self.buf.clear();
        Ok(())
    }

    /// Logs in within `timeout`: answers login and password prompts, sends an empty line when the
    /// transport stays silent (a console whose prompt was printed before attaching), and returns
    /// once the shell prompt shows. Extra prompts provoked on the way are swallowed.
    ///
    /// # Errors
    /// [`SessionError::Timeout`] naming the shell prompt, or the transport's error.
    pub async fn login(&mut self, timeout: Duration) -> Result<(), SessionError> {
        let deadline = Instant::now() + timeout;
        let cfg = self.config.clone();
        let patterns = [
            (Seen::Prompt, &cfg.prompt),
            (Seen::Username, &cfg.username_prompt),
            (Seen::Password, &cfg.password_prompt),
        ];
        let mut poke = Duration::from_millis(500);
        // Whether the password went out: a login prompt after it means it was refused.
        let mut password_sent = false;
        let mut credentials_sent = false;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(SessionError::Timeout {
                    session: self.describe().to_owned(),
                    awaited: "the shell prompt (login)".into(),
                    waited: timeout,
                    tail: tail(&clean_output(&self.recent)),
                });
            }
            match self
                .wait_for(&patterns, left.min(poke), "the shell prompt (login)")
                .await
            {
                Ok((Seen::Prompt, _)) => break,
                // A login or password prompt after the password went out: refused.
                Ok((Seen::Username | Seen::Password, seen)) if password_sent => {
                    let reason = refusal(&seen).unwrap_or("asked to log in again");
                    return Err(self.refused(reason, &seen));
                }
                Ok((Seen::Username, _)) => {
                    self.sendline(&cfg.username).await?;
                    credentials_sent = true;
                }
                Ok((Seen::Password, _)) => {
                    self.sendline(&cfg.password).await?;
                    password_sent = true;
                    credentials_sent = true;
                }
                // A silent console is poked with an empty line until something answers; once a
                // username or password went out, the login is under way and a poke would be
                // read as the (empty) password: wait instead. An ssh client prompts by itself
                // (a poke typed ahead of its slow prompt is an empty password): never poked.
                Err(SessionError::Timeout { .. })
                    if !credentials_sent && !self.transport.asks_for_password() =>
                {
                    self.sendline("").await?;
                    poke = (poke * 2).min(Duration::from_secs(4));
                }
                Err(SessionError::Timeout { .. }) => {}
                Err(SessionError::Closed { tail, .. }) if refusal(&tail).is_some() => {
                    let reason = refusal(&tail).unwrap_or_default();
                    return Err(self.refused(reason, &tail));
                }
                Err(e) => return Err(e),
            }
        }
        // Swallow the prompts our pokes may still provoke.
        let settle = Instant::now() + Duration::from_millis(150);
        while self.fill(settle, "extra prompts").await? {}
        self.buf.clear();
        self.note("logged in")?;
        Ok(())
    }

    /// [`SessionError::AuthenticationFailed`] for this session.
    fn refused(&self, reason: &str, seen: &str) -> SessionError {
        SessionError::AuthenticationFailed {
            session: self.describe().to_owned(),
            reason: reason.to_owned(),
            tail: tail(&clean_output(seen.as_bytes())),
        }
    }

    /// Runs `cmd` and returns its output (echo and prompt removed), whatever its status.
    ///
    /// # Errors
    /// [`SessionError::Timeout`] naming the command, [`SessionError::Closed`], I/O errors.
    pub async fn cmd_output(&mut self, cmd: &str) -> Result<String, SessionError> {
        let t = self.config.cmd_timeout;
        self.cmd_output_timeout(cmd, t).await
    }

    /// [`Session::cmd_output`] with an explicit timeout.
    ///
    /// # Errors
    /// As [`Session::cmd_output`].
    pub async fn cmd_output_timeout(
        &mut self,
        cmd: &str,
        timeout: Duration,
    ) -> Result<String, SessionError> {
        tracing::debug!(target: "kvmtest::session", session = self.describe(), "$ {cmd}");
        self.discard_pending().await?;
        self.sendline(cmd).await?;
        let text = self
            .read_up_to_prompt(timeout, &format!("the prompt after `{cmd}`"))
            .await
            .inspect_err(|e| {
                tracing::debug!(target: "kvmtest::session", session = self.describe(), "`{cmd}`: {e}");
            })?;
        let out = strip_echo(&text, cmd);
        tracing::trace!(target: "kvmtest::session", session = self.describe(), "{out}");
        Ok(out)
    }

    /// Runs `cmd`, then `status_test_command`; returns the exit status and the output.
    ///
    /// # Errors
    /// As [`Session::cmd_output`], and [`SessionError::BadStatus`] if the status is not a number.
    pub async fn cmd_status_output(&mut self, cmd: &str) -> Result<(i32, String), SessionError> {
        let t = self.config.cmd_timeout;
        self.cmd_status_output_timeout(cmd, t).await
    }

    /// [`Session::cmd_status_output`] with an explicit timeout (for the command; the status
    /// command gets the default).
    ///
    /// # Errors
    /// As [`Session::cmd_status_output`].
    pub async fn cmd_status_output_timeout(
        &mut self,
        cmd: &str,
        timeout: Duration,
    ) -> Result<(i32, String), SessionError> {
        let output = self.cmd_output_timeout(cmd, timeout).await?;
        let status_cmd = self.config.status_test_command.clone();
        let status_text = self.cmd_output(&status_cmd).await?;
        let status = status_text
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .and_then(|l| l.parse::<i32>().ok())
            .ok_or_else(|| SessionError::BadStatus {
                session: self.describe().to_owned(),
                command: cmd.to_owned(),
                status_command: status_cmd.clone(),
                output: status_text.clone(),
            })?;
        Ok((status, output))
    }

    /// Runs `cmd` and returns its output; a non-zero status is an error carrying the output.
    ///
    /// # Errors
    /// [`SessionError::CommandFailed`], or as [`Session::cmd_status_output`].
    pub async fn cmd(&mut self, cmd: &str) -> Result<String, SessionError> {
        let t = self.config.cmd_timeout;
        self.cmd_timeout(cmd, t).await
    }

    /// [`Session::cmd`] with an explicit timeout.
    ///
    /// # Errors
    /// As [`Session::cmd`].
    pub async fn cmd_timeout(
        &mut self,
        cmd: &str,
        timeout: Duration,
    ) -> Result<String, SessionError> {
        let (status, output) = self.cmd_status_output_timeout(cmd, timeout).await?;
        if status != 0 {
            return Err(SessionError::CommandFailed {
                session: self.describe().to_owned(),
                command: cmd.to_owned(),
                status,
                output,
            });
        }
        Ok(output)
    }
}

/// Drops the echoed command line (the first line, when it ends with the command).
fn strip_echo(text: &str, cmd: &str) -> String {
    let (first, rest) = match text.split_once('\n') {
        Some((f, r)) => (f, r),
        None => (text, ""),
    };
    let cmd = cmd.trim();
    let echoed = if cmd.is_empty() {
        first.trim().is_empty()
    } else {
        first.trim_end().ends_with(cmd)
    };
    if echoed {
        rest.to_owned()
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use params::Params;

    #[test]
    fn cleans_escapes_and_carriage_returns() {
        let raw = b"\x1b[?2004hkvmtest# ls\r\n\x1b]0;title\x07a\tb\r\n\x1b[1;32mgreen\x1b[0m\r\n";
        assert_eq!(clean_output(raw), "kvmtest# ls\na\tb\ngreen\n");
    }

    #[test]
    fn echo_is_stripped_only_when_present() {
        assert_eq!(strip_echo("kvmtest# uname\nLinux\n", "uname"), "Linux\n");
        assert_eq!(strip_echo("Linux\n", "uname"), "Linux\n");
        assert_eq!(strip_echo("uname", "uname"), "");
    }

    /// A transport that answers each line written with the next scripted chunks (a getty).
    struct Scripted {
        /// Chunks to deliver before anything is written, then one group per line written.
        replies: std::collections::VecDeque<Vec<&'static str>>,
        pending: std::collections::VecDeque<Vec<u8>>,
        written: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    }

    impl Transport for Scripted {
        fn describe(&self) -> &str {
            "scripted console"
        }
        fn read(&mut self) -> BoxFuture<'_, std::io::Result<Vec<u8>>> {
            Box::pin(async move {
                loop {
                    if let Some(c) = self.pending.pop_front() {
                        return Ok(c);
                    }
                    // Nothing to say until a line is written: as a quiet console.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        }
        fn write_all<'a>(&'a mut self, data: &'a [u8]) -> BoxFuture<'a, std::io::Result<()>> {
            Box::pin(async move {
                let line = String::from_utf8_lossy(data).trim_end().to_owned();
                self.written
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(line);
                if let Some(group) = self.replies.pop_front() {
                    self.pending
                        .extend(group.into_iter().map(|c| c.as_bytes().to_vec()));
                }
                Ok(())
            })
        }
    }

    fn scripted(
        first: &'static str,
        replies: Vec<Vec<&'static str>>,
    ) -> (
        Session,
        std::sync::Arc<std::sync::Mutex<Vec<String>>>,
        tempfile::TempDir,
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let written = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let t = Scripted {
            replies: replies.into(),
            pending: [first.as_bytes().to_vec()].into(),
            written: written.clone(),
        };
        let mut p = Params::new();
        p.insert("username", "root");
        p.insert("password", "123456");
        let config = SessionSpec::read(&p, "vm1").expect("config");
        let s = Session::new(Box::new(t), config, &dir.path().join("s.log")).expect("session");
        (s, written, dir)
    }

    /// A getty login whose motd's "Last login:" line arrives in two pieces: its first piece
    /// ends in "login:" but is no login prompt (the session would otherwise take it for a
    /// second prompt, a refused password).
    #[tokio::test]
    async fn last_login_banner_is_no_login_prompt() {
        let (mut s, written, _dir) = scripted(
            "\r\nkvmtest-guest login: ",
            vec![
                vec!["root\r\nPassword: "],
                vec![
                    "\r\nLinux kvmtest-guest 6.1.0\r\nLast login:",
                    " Sun Dec  6 05:58:35 UTC 2026 on ttyS0\r\n[root@kvmtest-guest ~]# ",
                ],
            ],
        );
        s.login(Duration::from_secs(5)).await.expect("logged in");
        let w = written.lock().expect("lock").clone();
        assert_eq!(w, ["root", "123456"], "no poke once the username went out");
    }

    /// A login prompt again after the password is a refusal, reported at once.
    #[tokio::test]
    async fn a_second_login_prompt_is_a_refused_login() {
        let (mut s, _written, _dir) = scripted(
            "kvmtest-guest login: ",
            vec![
                vec!["root\r\nPassword: "],
                vec!["\r\nLogin incorrect\r\nkvmtest-guest login: "],
            ],
        );
        let err = s.login(Duration::from_secs(5)).await.expect_err("refused");
        assert!(
            matches!(&err, SessionError::AuthenticationFailed { reason, .. } if reason == "Login incorrect"),
            "{err}"
        );
    }

    #[test]
    fn config_defaults_and_bad_regex() {
        let mut p = Params::new();
        let c = SessionSpec::read(&p, "vm1").expect("defaults");
        assert_eq!(c.status_test_command, "echo $?");
        assert!(c.prompt.is_match("[root@host ~]# "));
        p.insert("shell_prompt", "([");
        let err = SessionSpec::read(&p, "vm1").expect_err("a bad regex");
        assert_eq!(err.problems()[0].key, "shell_prompt");
    }
}
