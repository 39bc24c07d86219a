//! Logins (serial console, telnet, nc, ssh) and reboots.

use super::*;

impl Vm {
    fn shell_config(&self) -> Result<SessionSpec, Error> {
        Ok(self.setup.session.clone())
    }

    fn next_session_log(&mut self, kind: &str) -> PathBuf {
        self.session_count += 1;
        self.log_dir
            .join(format!("session-{}-{kind}.log", self.session_count))
    }

    /// Opens a session on the serial console and logs in within `timeout`.
    ///
    /// # Errors
    /// [`Error::SerialConsole`] (none, or in use), session errors.
    pub async fn serial_login(&mut self, timeout: Duration) -> Result<Session, Error> {
        let config = self.shell_config()?;
        let log_path = self.next_session_log("serial");
        let Some(console) = &self.serial else {
            return Err(Error::SerialConsole {
                vm: self.name.clone(),
                problem: "does not exist (no `serials` in the params)".into(),
            });
        };
        let transport = SerialTransport::attach(
            format!("serial console of {}", self.name),
            Arc::clone(&console.writer),
            Arc::clone(&console.shared),
        )
        .ok_or_else(|| Error::SerialConsole {
            vm: self.name.clone(),
            problem: "is in use by another session".into(),
        })?;
        let mut session = Session::new(Box::new(transport), config, &log_path)?;
        session.login(timeout).await?;
        Ok(session)
    }

    /// Connects with `shell_client` (telnet, nc or ssh; default telnet) to `shell_port` of NIC
    /// `nic` and logs in, retrying connection and login until `timeout` (the guest may still be
    /// booting: a forwarded port accepts and then closes while nothing listens in the guest).
    ///
    /// # Errors
    /// [`SessionError::LoginTimeout`] with the last attempt's failure; address/port errors.
    pub async fn remote_login(&mut self, nic: usize, timeout: Duration) -> Result<Session, Error> {
        let config = self.shell_config()?;
        self.remote_login_with(nic, config, timeout).await
    }

    /// [`Vm::remote_login`] with session keys of the caller's (another `username`/`password`,
    /// `ssh_identity_file`, `shell_client`…) instead of the VM's.
    ///
    /// # Errors
    /// As [`Vm::remote_login`]; [`SessionError::AuthenticationFailed`] at once (not retried)
    /// when the guest refuses the credentials.
    pub async fn remote_login_with(
        &mut self,
        nic: usize,
        config: SessionSpec,
        timeout: Duration,
    ) -> Result<Session, Error> {
        let client = config.shell_client;
        let guest_port = config.shell_port;
        // tap NICs: the MAC→IP cache from the DHCP server's lease file, when one is named
        let cache = match &config.dhcp_lease_file {
            Some(f) => {
                net::read_address_cache(f).map_err(io_err("reading the DHCP lease file", f))?
            }
            None => std::collections::HashMap::new(),
        };
        let deadline = Instant::now() + timeout;
        // A NIC on a private bridge: its address is what dnsmasq leased to its MAC (the lease
        // comes once the guest's DHCP client runs), and the client connects from inside the
        // bridge's namespace.
        let private = self.plan.private_bridge(nic).cloned();
        let host = match &private {
            Some(bridge) => self.wait_for_lease(nic, bridge, deadline).await?,
            None => self.get_address(nic, &cache)?,
        };
        let netns = private.as_ref().map(|b| b.netns());
        let port = self.get_port(guest_port, nic)?;
        let identity = config.ssh_identity_file.clone();
        let log_path = self.next_session_log(client.as_str());
        let describe = format!("{client} {host}:{port}");
        let mut attempts = 0;
        let mut said: Option<SessionError> = None;
        loop {
            attempts += 1;
            let left = deadline.saturating_duration_since(Instant::now());
            let attempt = async {
                let connect_err = |source| SessionError::Connect {
                    session: describe.clone(),
                    source,
                };
                let in_ns = |ns: &crate::netns::NetNs| {
                    ns.connect_tcp(&host, port, left.min(Duration::from_secs(10)))
                };
                let transport: Box<dyn Transport> = match (client, netns) {
                    (ShellClient::Nc, None) => Box::new(
                        RawTcpTransport::connect(&host, port)
                            .await
                            .map_err(connect_err)?,
                    ),
                    (ShellClient::Nc, Some(ns)) => Box::new(
                        in_ns(ns)
                            .and_then(|s| RawTcpTransport::over(s, &host, port))
                            .map_err(connect_err)?,
                    ),
                    (ShellClient::Ssh, ns) => Box::new(
                        SshTransport::spawn_in(
                            &host,
                            port,
                            &config.username,
                            identity.as_deref(),
                            ns,
                        )
                        .map_err(connect_err)?,
                    ),
                    (ShellClient::Telnet, None) => Box::new(
                        TelnetTransport::connect(&host, port)
                            .await
                            .map_err(connect_err)?,
                    ),
                    (ShellClient::Telnet, Some(ns)) => Box::new(
                        in_ns(ns)
                            .and_then(|s| TelnetTransport::over(s, &host, port))
                            .map_err(connect_err)?,
                    ),
                };
                let mut s = Session::new(transport, config.clone(), &log_path)?;
                s.login(left.min(Duration::from_secs(20))).await?;
                Ok::<Session, SessionError>(s)
            };
            let last = match attempt.await {
                Ok(s) => return Ok(s),
                // Wrong credentials stay wrong: avocado-vt's LoginAuthenticationError.
                Err(e @ SessionError::AuthenticationFailed { .. }) => {
                    return Err(Error::Session(e))
                }
                Err(e) => e,
            };
            // An attempt the deadline cut short before the client said anything tells less
            // than the one before it (ssh's "Connection timed out during banner exchange"):
            // the error reported is the last one that says something.
            let last = match (silent_timeout(&last), said.take()) {
                (true, Some(earlier)) => earlier,
                (_, _) => last,
            };
            if Instant::now() >= deadline {
                return Err(Error::Session(SessionError::LoginTimeout {
                    session: describe,
                    waited: timeout,
                    attempts,
                    last: Box::new(last),
                }));
            }
            said = Some(last);
            if let ProcessState::Exited(status) = self.process.state() {
                return Err(Error::QemuExited {
                    vm: self.name.clone(),
                    awaited: format!("logging in over {describe}"),
                    status: status.to_string(),
                    stderr_tail: self.output_tail(20),
                });
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// The address dnsmasq leases to NIC `nic` on its private bridge, waited for until
    /// `deadline` (the guest's DHCP client asks once it has booted).
    ///
    /// # Errors
    /// [`SessionError::LoginTimeout`] when no lease came, with dnsmasq's last log lines.
    async fn wait_for_lease(
        &self,
        nic: usize,
        bridge: &crate::privnet::PrivateBridge,
        deadline: Instant,
    ) -> Result<String, Error> {
        let (spec, run) = self.nic(nic)?;
        let started = Instant::now();
        let mut attempts = 0;
        loop {
            attempts += 1;
            if let Some(ip) = bridge.leased(run.mac) {
                return Ok(ip);
            }
            if Instant::now() >= deadline {
                let why = format!(
                    "no DHCP lease for {} (NIC {}) in {} yet; dnsmasq's log ends with: {}",
                    run.mac,
                    spec.name,
                    bridge.lease_file().display(),
                    bridge.log_tail()
                );
                return Err(Error::Session(SessionError::LoginTimeout {
                    session: format!("NIC {} on the private bridge {}", spec.name, bridge.name()),
                    waited: started.elapsed(),
                    attempts,
                    last: Box::new(SessionError::Connect {
                        session: format!("the DHCP lease of {}", run.mac),
                        source: std::io::Error::new(std::io::ErrorKind::NotFound, why),
                    }),
                }));
            }
            if let ProcessState::Exited(status) = self.process.state() {
                return Err(Error::QemuExited {
                    vm: self.name.clone(),
                    awaited: format!("logging in: the DHCP lease of NIC {}", spec.name),
                    status: status.to_string(),
                    stderr_tail: self.output_tail(20),
                });
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Logs in over `access` within `timeout` (the `login_timeout` param is the usual value).
    ///
    /// # Errors
    /// As [`Vm::serial_login`] / [`Vm::remote_login`].
    pub async fn wait_for_login(
        &mut self,
        access: Access,
        timeout: Duration,
    ) -> Result<Session, Error> {
        match access {
            Access::Serial => self.serial_login(timeout).await,
            Access::Remote { nic } => self.remote_login(nic, timeout).await,
        }
    }

    /// `login_timeout` from the params (default 360 s, as in avocado-vt; a bad value made
    /// [`Vm::create`] fail).
    pub fn login_timeout(&self) -> Duration {
        self.setup.session.login_timeout
    }

    /// The session settings read from the params when the VM was created.
    pub fn session_spec(&self) -> &SessionSpec {
        &self.setup.session
    }

    /// Reboots the guest and logs in again over `access`. Success is the `RESET` event followed
    /// by a fresh login.
    ///
    /// # Errors
    /// Monitor errors, a timeout waiting for `RESET`, login errors.
    pub async fn reboot(
        &mut self,
        method: RebootMethod,
        access: Access,
        timeout: Duration,
    ) -> Result<Session, Error> {
        let started = Instant::now();
        let mark = self.qmp.cursor();
        match method {
            RebootMethod::Shell(mut session) => {
                let cmd = self.setup.session.reboot_command.clone();
                self.log_line(&format!(
                    "reboot: sending `{cmd}` on {}",
                    session.describe()
                ));
                session.sendline(&cmd).await?;
                // The session ends with the guest; the serial console is freed for the new one.
                drop(session);
            }
            RebootMethod::SystemReset => {
                self.qmp_exec("system_reset", json!({})).await?;
            }
        }
        self.qmp
            .wait_event(EventFilter::new("RESET").since(mark), timeout)
            .await
            .map_err(self.monitor_err("waiting for the RESET event of the reboot"))?;
        self.log_line(&format!("reboot: RESET after {}", secs(&started.elapsed())));
        let left = timeout.saturating_sub(started.elapsed());
        let session = self.wait_for_login(access, left).await?;
        self.log_line(&format!(
            "reboot: logged in after {}",
            secs(&started.elapsed())
        ));
        Ok(session)
    }
}

/// Whether `e` is a wait that ended with nothing but blank output from the other side.
fn silent_timeout(e: &SessionError) -> bool {
    matches!(e, SessionError::Timeout { tail, .. } if tail.trim().is_empty())
}
