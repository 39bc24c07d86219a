//! The guest agent (`qemu-ga`): the serial port `gagent_name` names (tp-qemu's
//! `qemu_guest_agent.cfg`: `serials += " org.qemu.guest_agent.0"` with `serial_type_… =
//! virtserialport`), served by QEMU on a unix socket in the run directory like every serial,
//! reached through `monitor`'s [`QgaClient`], its transcript in the VM's log directory.

use std::process::ExitStatus;

use super::*;

impl Vm {
    /// The guest agent's client: connected (and synchronised) on first use, then the same
    /// connection (clones share it) until it ends; a new one is made after QEMU closed the old
    /// one. Transcripts go to `qga-NAME.jsonl` in the log directory (`qga-NAME.N.jsonl` for the
    /// Nth connection).
    ///
    /// # Errors
    /// [`Error::GuestAgent`] when `gagent_name` names no serial, or names the VM's console (the
    /// first serial, which the VM itself reads), or QEMU has exited; [`Error::Monitor`] when connecting or the first
    /// sync fails within [`Timeouts::agent`] (no agent running in the guest: the error names the
    /// sync and its timeout).
    pub async fn guest_agent(&mut self) -> Result<QgaClient, Error> {
        if let Some(agent) = &self.agent {
            if !agent.is_closed() {
                return Ok(agent.clone());
            }
        }
        let port = self.setup.session.agent_serial.clone();
        if !self.is_alive() {
            // Not a 20 s connect retry on a socket nobody serves any more.
            return Err(Error::GuestAgent {
                vm: self.name.clone(),
                problem: format!("QEMU has exited (serial `{port}` is served by no one)"),
            });
        }
        let serials = &self.setup.spec.serials;
        let Some(index) = serials.iter().position(|s| s.name == port) else {
            let have: Vec<&str> = serials.iter().map(|s| s.name.as_str()).collect();
            return Err(Error::GuestAgent {
                vm: self.name.clone(),
                problem: format!(
                    "no serial named `{port}` (`gagent_name`) in `serials` (it has: {}); add \
                     `serials += \" {port}\"` and `serial_type_{port} = virtserialport`",
                    if have.is_empty() {
                        "none".to_string()
                    } else {
                        have.join(", ")
                    }
                ),
            });
        };
        if index == 0 {
            return Err(Error::GuestAgent {
                vm: self.name.clone(),
                problem: format!(
                    "serial `{port}` (`gagent_name`) is the first in `serials`, the VM's console; \
                     list the agent's port after the console"
                ),
            });
        }
        let socket = self
            .plan
            .run_dir()
            .join(qemu_cmd::names::serial_socket(&port));
        self.agent_connections += 1;
        let transcript = match self.agent_connections {
            1 => self.log_dir.join(format!("qga-{port}.jsonl")),
            n => self.log_dir.join(format!("qga-{port}.{n}.jsonl")),
        };
        let bound = self.setup.timeouts.agent;
        let config = QgaConfig::default()
            .transcript(&transcript)
            .connect_timeout(self.setup.timeouts.connect)
            .sync_timeout(bound);
        self.log.line(&format!(
            "guest agent: connecting to {} (transcript {})",
            socket.display(),
            transcript.display()
        ));
        let started = Instant::now();
        let agent = QgaClient::connect_unix(&socket, config)
            .await
            .map_err(|source| Error::Monitor {
                vm: self.name.clone(),
                what: format!("connecting the guest agent on serial `{port}`"),
                source: Box::new(source),
            })?;
        self.log.line(&format!(
            "guest agent: in sync after {}",
            secs(&started.elapsed())
        ));
        self.agent = Some(agent.clone());
        Ok(agent)
    }

    /// Powers the guest off through its agent (`guest-shutdown`, mode `powerdown`) and waits
    /// up to `timeout` for QEMU to exit. As the agent's schema says, success is QEMU exiting:
    /// the agent replies only on failure, and qemu-ga runs `shutdown -P +0` and waits for it,
    /// so on a systemd guest that child can be killed by the shutdown it started and the
    /// agent then reports "child process has terminated abnormally" while the guest goes
    /// down. An agent error therefore fails this only if QEMU does not exit; it is logged
    /// either way.
    ///
    /// # Errors
    /// [`Error::Monitor`] with the agent's error (or a connection error) when QEMU did not
    /// exit; [`Error::Timeout`] when the agent accepted but QEMU still runs.
    pub async fn agent_powerdown(&mut self, timeout: Duration) -> Result<ExitStatus, Error> {
        let agent = self.guest_agent().await?;
        self.log.line("guest agent: guest-shutdown (powerdown)");
        let sent = agent
            .shutdown(monitor::qapi::qga::GuestShutdownMode::Powerdown)
            .await;
        match &sent {
            Ok(how) => self
                .log
                .line(&format!("guest agent: guest-shutdown sent ({how:?})")),
            Err(e) => self.log.line(&format!(
                "guest agent: guest-shutdown answered {e}; waiting for QEMU to exit anyway"
            )),
        }
        match (self.wait_for_exit(timeout).await, sent) {
            (Ok(status), _) => Ok(status),
            (Err(_), Err(source)) => Err(Error::Monitor {
                vm: self.name.clone(),
                what: format!(
                    "guest-shutdown through the agent (QEMU still runs after {})",
                    secs(&timeout)
                ),
                source: Box::new(source),
            }),
            (Err(e), Ok(_)) => Err(e),
        }
    }

    /// Waits up to `timeout` for QEMU to exit by itself (a guest that powered off, a
    /// `guest-shutdown` through the agent) and returns its exit status; logged.
    ///
    /// # Errors
    /// [`Error::Timeout`] if QEMU still runs.
    pub async fn wait_for_exit(&mut self, timeout: Duration) -> Result<ExitStatus, Error> {
        let started = Instant::now();
        match self.process.wait_timeout(timeout).await {
            Some(status) => {
                self.log.line(&format!(
                    "QEMU exited by itself ({status}) after {}",
                    secs(&started.elapsed())
                ));
                Ok(status)
            }
            None => Err(Error::Timeout {
                vm: self.name.clone(),
                awaited: "QEMU to exit".into(),
                waited: timeout,
                last: format!("pid {} still runs", self.pid()),
            }),
        }
    }
}
