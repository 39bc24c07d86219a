//! Teardown: bounded, logged stages, and the SIGKILL safety net of `Drop`.

use super::*;

impl Vm {
    /// Waits up to `timeout` for QEMU to exit; logs how the stage ended.
    async fn stage_wait(&mut self, stage: &str, timeout: Duration) -> bool {
        let started = Instant::now();
        let exited = self.process.wait_timeout(timeout).await;
        match exited {
            Some(status) => {
                self.log.line(&format!(
                    "teardown: {stage}: QEMU exited ({status}) after {}",
                    secs(&started.elapsed())
                ));
                true
            }
            None => {
                self.log.line(&format!(
                    "teardown: {stage}: QEMU still runs after {}",
                    secs(&timeout)
                ));
                false
            }
        }
    }

    /// Tears the VM down in bounded, logged stages (see [`Teardown`]), then closes the
    /// monitors, removes the run directory and frees the MACs. Returns the stage that ended QEMU.
    ///
    /// # Errors
    /// [`Error::Timeout`] if even SIGKILL did not end QEMU within its bound; [`Error::Io`] if the
    /// run directory could not be removed.
    pub async fn destroy(mut self, how: Teardown) -> Result<StoppedBy, Error> {
        let t = self.setup.timeouts.clone();
        let stopped = 'stages: {
            if !self.is_alive() {
                break 'stages StoppedBy::AlreadyExited;
            }
            if how == Teardown::Graceful {
                if let Some(cmd) = self.setup.session.shutdown_command.clone() {
                    self.log.line(&format!("teardown: guest command `{cmd}`"));
                    let access = if self.serial.is_some() {
                        Access::Serial
                    } else {
                        Access::Remote { nic: 0 }
                    };
                    let bound = t.guest_shutdown.min(Duration::from_secs(30));
                    match self.wait_for_login(access, bound).await {
                        Ok(mut s) => {
                            let sent = s.sendline(&cmd).await;
                            if sent.is_ok()
                                && self.stage_wait("guest command", t.guest_shutdown).await
                            {
                                break 'stages StoppedBy::GuestCommand;
                            }
                        }
                        Err(e) => self
                            .log
                            .line(&format!("teardown: no session for the guest command: {e}")),
                    }
                }
                let mark = self.qmp.cursor();
                self.log.line("teardown: system_powerdown");
                if self
                    .qmp
                    .execute("system_powerdown", json!({}))
                    .await
                    .is_ok()
                {
                    let ev = self
                        .qmp
                        .wait_event(EventFilter::new("SHUTDOWN").since(mark), t.powerdown)
                        .await;
                    self.log.line(&format!(
                        "teardown: SHUTDOWN event: {}",
                        if ev.is_ok() { "seen" } else { "not seen" }
                    ));
                    if self.stage_wait("system_powerdown", t.powerdown).await {
                        break 'stages StoppedBy::Powerdown;
                    }
                }
            }
            self.log.line("teardown: quit");
            let _ = self.qmp.execute("quit", json!({})).await;
            if self.stage_wait("quit", t.quit).await {
                break 'stages StoppedBy::Quit;
            }
            self.log.line("teardown: SIGKILL of the process group");
            self.process.kill();
            if self.stage_wait("SIGKILL", t.kill).await {
                break 'stages StoppedBy::Kill;
            }
            return Err(Error::Timeout {
                vm: self.name.clone(),
                awaited: "QEMU to die after SIGKILL".into(),
                waited: t.kill,
                last: format!("pid {} still not reaped", self.pid()),
            });
        };
        if let Some(agent) = self.agent.take() {
            agent.close().await;
        }
        self.qmp.close().await;
        for (_, h) in &self.hmps {
            h.close().await;
        }
        self.serial = None;
        self.stop_passts().await;
        for line in self.daemons.stop(self.setup.timeouts.kill).await {
            self.log.line(&format!("teardown: {line}"));
        }
        self.plan.release()?;
        self.log.line(&format!("teardown done: {stopped:?}"));
        Ok(stopped)
    }
}

impl Vm {
    /// Ends the passt processes once QEMU is gone: `--one-off` passt exits when QEMU
    /// disconnects; whatever still runs after a short grace is SIGKILLed. Logged.
    async fn stop_passts(&mut self) {
        for (nic, p) in std::mem::take(&mut self.passts) {
            let how = match p.wait_timeout(Duration::from_secs(2)).await {
                Some(status) => format!("exited ({status})"),
                None => {
                    p.kill();
                    match p.wait_timeout(self.setup.timeouts.kill).await {
                        Some(status) => format!("SIGKILLed ({status})"),
                        None => "still not reaped after SIGKILL".into(),
                    }
                }
            };
            self.log.line(&format!(
                "teardown: passt of NIC {nic} (pid {}): {how}",
                p.pid()
            ));
        }
    }
}

impl Drop for Vm {
    /// The safety net: SIGKILL the process group (never blocks); the run directory and MAC
    /// reservations are removed as the fields drop.
    fn drop(&mut self) {
        if self.process.state() == ProcessState::Running {
            self.log
                .line("dropped without destroy(): SIGKILL of the process group");
            self.process.kill();
        }
    }
}
