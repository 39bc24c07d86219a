//! The wire protocols of the boot check: byte streams with read deadlines (`Stream`, `Wire`: the
//! serial console, telnet and `nc`), the guest shell that runs one command at a time between
//! markers (`Shell`), a minimal synchronous QMP client (`Qmp`) and `info usernet` parsing.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serde_json::{json, Value};

use super::{COMMAND_TIMEOUT, PROMPT};

/// A stream whose reads can time out.
pub(super) trait Stream: Read + Write {
    fn set_timeout(&self, timeout: Duration) -> io::Result<()>;
}

impl Stream for UnixStream {
    fn set_timeout(&self, timeout: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(timeout))
    }
}

impl Stream for TcpStream {
    fn set_timeout(&self, timeout: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(timeout))
    }
}

/// What is on the wire besides data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Protocol {
    Raw,
    /// Telnet: every option the server offers or asks for is refused.
    Telnet,
}

// The telnet side (refuse every option, strip commands) is the vm crate's own client filter.
use vm::session::{telnet_filter, TelnetState};

pub(super) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The last few hundred bytes of `buf` (the output since the last match), for error messages.
fn tail(buf: &[u8]) -> String {
    if buf.is_empty() {
        return "no output since the last match".into();
    }
    let start = buf.len().saturating_sub(600);
    format!(
        "output since the last match ends with:\n{}",
        String::from_utf8_lossy(&buf[start..])
    )
}

/// A byte stream read up to expected text, with deadlines, optionally logged to a file.
pub(super) struct Wire<S> {
    stream: S,
    name: &'static str,
    protocol: Protocol,
    telnet: TelnetState,
    /// Received data not consumed yet.
    buf: Vec<u8>,
    log: Option<File>,
}

impl<S: Stream> Wire<S> {
    pub(super) fn new(
        stream: S,
        name: &'static str,
        protocol: Protocol,
        log: Option<&Path>,
    ) -> Result<Self> {
        let log = match log {
            Some(path) => {
                Some(File::create(path).with_context(|| format!("creating {}", path.display()))?)
            }
            None => None,
        };
        Ok(Wire {
            stream,
            name,
            protocol,
            telnet: TelnetState::Data,
            buf: Vec::new(),
            log,
        })
    }

    pub(super) fn send(&mut self, text: &str) -> Result<()> {
        self.stream
            .write_all(text.as_bytes())
            .with_context(|| format!("writing to {}", self.name))
    }

    /// Reads until `needle`; returns everything up to and including it.
    pub(super) fn read_until(
        &mut self,
        needle: &[u8],
        timeout: Duration,
        what: &str,
    ) -> Result<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(pos) = find(&self.buf, needle) {
                return Ok(self.buf.drain(..pos + needle.len()).collect());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!(
                    "timed out after {:.1} s waiting for {what} on {}; {}",
                    timeout.as_secs_f64(),
                    self.name,
                    tail(&self.buf)
                );
            }
            self.stream
                .set_timeout(left)
                .with_context(|| format!("setting a timeout on {}", self.name))?;
            let n = match self.stream.read(&mut chunk) {
                Ok(0) => bail!(
                    "{} closed while waiting for {what}; {}",
                    self.name,
                    tail(&self.buf)
                ),
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) =>
                {
                    continue
                }
                Err(e) => return Err(e).with_context(|| format!("reading {}", self.name)),
            };
            if let Some(log) = &mut self.log {
                log.write_all(&chunk[..n])
                    .with_context(|| format!("logging {}", self.name))?;
            }
            match self.protocol {
                Protocol::Raw => self.buf.extend_from_slice(&chunk[..n]),
                Protocol::Telnet => {
                    let mut replies = Vec::new();
                    telnet_filter(&mut self.telnet, &chunk[..n], &mut self.buf, &mut replies);
                    if !replies.is_empty() {
                        self.stream.write_all(&replies).with_context(|| {
                            format!("answering telnet options on {}", self.name)
                        })?;
                    }
                }
            }
        }
    }
}

/// A guest shell on a [`Wire`]: runs one command at a time between unique markers.
pub(super) struct Shell<'w, S> {
    wire: &'w mut Wire<S>,
    newline: &'static str,
    count: u32,
}

impl<'w, S: Stream> Shell<'w, S> {
    /// Waits for the first prompt.
    pub(super) fn open(wire: &'w mut Wire<S>, newline: &'static str) -> Result<Self> {
        wire.read_until(PROMPT.as_bytes(), COMMAND_TIMEOUT, "the shell prompt")?;
        Ok(Shell {
            wire,
            newline,
            count: 0,
        })
    }

    /// Runs `cmd`, returning its output (`\r` removed); fails with the output on a non-zero
    /// status. The markers are split by `''` in the command line, so that the terminal's echo of
    /// the command never matches them.
    pub(super) fn run(&mut self, cmd: &str) -> Result<String> {
        self.count += 1;
        let n = self.count;
        let line = format!(
            "echo KVMTEST''-BEGIN-{n}; {cmd}; echo KVMTEST''-END-{n}:$?{}",
            self.newline
        );
        self.wire.send(&line)?;
        let what = format!("the end of `{cmd}`");
        let end = format!("KVMTEST-END-{n}:");
        let mut got = self
            .wire
            .read_until(end.as_bytes(), COMMAND_TIMEOUT, &what)?;
        got.extend(self.wire.read_until(b"\n", COMMAND_TIMEOUT, &what)?);
        let text = String::from_utf8_lossy(&got).replace('\r', "");
        let begin = format!("KVMTEST-BEGIN-{n}\n");
        let start = text
            .find(&begin)
            .map(|i| i + begin.len())
            .with_context(|| format!("no start marker before the output of `{cmd}` in {text:?}"))?;
        let (out, status) = text[start..]
            .rsplit_once(&end)
            .with_context(|| format!("no end marker after the output of `{cmd}`"))?;
        let status = status.trim();
        ensure!(
            status == "0",
            "`{cmd}` on {} exited with status {status}; output:\n{out}",
            self.wire.name
        );
        Ok(out.to_owned())
    }
}

/// A minimal synchronous QMP client (the async `monitor` crate is for the real harness).
pub(super) struct Qmp {
    wire: Wire<UnixStream>,
    events: Vec<Value>,
}

impl Qmp {
    pub(super) fn new(stream: UnixStream) -> Result<Qmp> {
        let mut qmp = Qmp {
            wire: Wire::new(stream, "QMP", Protocol::Raw, None)?,
            events: Vec::new(),
        };
        let greeting = qmp.message()?;
        ensure!(greeting.get("QMP").is_some(), "no QMP greeting: {greeting}");
        qmp.execute("qmp_capabilities", json!({}))?;
        Ok(qmp)
    }

    fn message(&mut self) -> Result<Value> {
        let line = self
            .wire
            .read_until(b"\n", COMMAND_TIMEOUT, "a QMP message")?;
        serde_json::from_slice(&line).context("parsing a QMP message")
    }

    pub(super) fn execute(&mut self, command: &str, arguments: Value) -> Result<Value> {
        let msg = json!({ "execute": command, "arguments": arguments });
        self.wire.send(&format!("{msg}\n"))?;
        loop {
            let reply = self.message()?;
            if reply.get("event").is_some() {
                self.events.push(reply);
            } else if let Some(ret) = reply.get("return") {
                return Ok(ret.clone());
            } else {
                bail!("QMP {command} failed: {}", reply["error"]);
            }
        }
    }

    pub(super) fn human(&mut self, command_line: &str) -> Result<String> {
        let out = self.execute(
            "human-monitor-command",
            json!({ "command-line": command_line }),
        )?;
        Ok(out.as_str().unwrap_or_default().to_owned())
    }

    /// Waits for event `name` whose `data` satisfies `matches` (events already received count).
    pub(super) fn wait_event(
        &mut self,
        name: &str,
        matches: impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let found = self
                .events
                .iter()
                .position(|e| e["event"] == name && matches(&e["data"]));
            if let Some(i) = found {
                return Ok(self.events.remove(i));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            ensure!(
                !left.is_zero(),
                "timed out after {:.1} s waiting for QMP event {name}",
                timeout.as_secs_f64()
            );
            let line = self
                .wire
                .read_until(b"\n", left, &format!("QMP event {name}"))?;
            self.events
                .push(serde_json::from_slice(&line).context("parsing a QMP message")?);
        }
    }
}

/// Host port → guest port of each TCP forward in HMP `info usernet` output (QEMU chose the host
/// ports: `hostfwd=tcp:127.0.0.1:0-:23` binds port 0, which is race-free).
pub(super) fn parse_usernet(text: &str) -> Vec<(u16, u16)> {
    text.lines()
        .filter(|l| l.contains("TCP[HOST_FORWARD]"))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((f.get(3)?.parse().ok()?, f.get(5)?.parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernet_forwards() {
        let text = "Hub -1 (#net059):\n  Protocol[State]    FD  Source Address  Port   Dest. \
                    Address  Port RecvQ SendQ\n  TCP[HOST_FORWARD]   8       127.0.0.1 40667  \
                    10.0.2.15    23     0     0\n  TCP[HOST_FORWARD]   3       127.0.0.1 35677  \
                    10.0.2.15  2222     0     0\n  UDP[236 sec]       33      10.0.2.15    68  \
                    10.0.2.2    67     0     0\n";
        assert_eq!(parse_usernet(text), vec![(40667, 23), (35677, 2222)]);
    }
}
