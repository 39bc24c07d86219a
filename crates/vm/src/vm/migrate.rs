//! Live and offline migration to a new local VM.

use super::*;

impl Vm {
    /// Migrates the guest live to a new local VM started with `-incoming defer` and this VM's
    /// MACs, checks success on both sides (source `completed` and `postmigrate`, destination
    /// `running`), then replaces `self` with the destination and tears the source down.
    /// On failure the destination is destroyed and `self` is left as it was.
    /// ([`MigrationProtocol::Exec`] goes through a file, so it is offline by nature.)
    ///
    /// # Errors
    /// [`Error::Migration`] naming the side that failed, timeouts, monitor errors.
    pub async fn migrate(&mut self, protocol: MigrationProtocol) -> Result<(), Error> {
        self.migrate_with(protocol, false).await
    }

    /// [`Vm::migrate`], offline when `offline`: the source is paused before the state is sent,
    /// and the destination is resumed once it has loaded it. On failure the destination is
    /// destroyed and the source resumed (when this call paused it).
    ///
    /// # Errors
    /// As [`Vm::migrate`].
    pub async fn migrate_with(
        &mut self,
        protocol: MigrationProtocol,
        offline: bool,
    ) -> Result<(), Error> {
        let offline = offline || protocol == MigrationProtocol::Exec;
        let was_running = self.status().await? == "running";
        let started = Instant::now();
        let opts = PlanOptions {
            root_dir: self.plan.values().root_dir.clone(),
            image_dir: Some(self.plan.values().image_dir.clone()),
            migration_source: Some(&self.plan),
            incoming: Some(qemu_cmd::Incoming::defer()),
        };
        let dest = Vm::start(Arc::clone(&self.qemu), self.setup.clone(), &opts).await?;
        match self.migrate_to(&dest, protocol, offline).await {
            Ok(uri) => {
                self.log_line(&format!(
                    "migrated over {uri} in {}; the destination (pid {}) replaces this VM",
                    secs(&started.elapsed()),
                    dest.pid()
                ));
                let source = std::mem::replace(self, dest);
                source.destroy(Teardown::Kill).await?;
                Ok(())
            }
            Err(e) => {
                let _ = dest.destroy(Teardown::Kill).await;
                if offline && was_running {
                    let _ = self.resume().await;
                }
                Err(e)
            }
        }
    }

    async fn migrate_to(
        &self,
        dest: &Vm,
        protocol: MigrationProtocol,
        offline: bool,
    ) -> Result<String, Error> {
        let timeout = self.setup.timeouts.migrate;
        let file = dest.run_dir().join("migration.state");
        let (out_uri, in_uri) = match protocol {
            MigrationProtocol::Tcp => (None, "tcp:127.0.0.1:0".to_owned()),
            MigrationProtocol::Unix => {
                let u = format!(
                    "unix:{}",
                    dest.run_dir()
                        .join(qemu_cmd::names::MIGRATION_SOCKET)
                        .display()
                );
                (Some(u.clone()), u)
            }
            MigrationProtocol::Exec => (
                Some(format!("exec:cat > '{}'", file.display())),
                format!("exec:cat '{}'", file.display()),
            ),
        };
        let fail = |uri: &str, why: String| Error::Migration {
            vm: self.name.clone(),
            uri: uri.to_owned(),
            why,
        };
        if protocol == MigrationProtocol::Exec {
            // QEMU runs `exec:` URIs with `/bin/sh -c`: the path is single-quoted, so a quote
            // in it (only possible through a run directory chosen by the caller) is refused.
            if file.to_string_lossy().contains('\'') {
                return Err(fail(
                    &file.display().to_string(),
                    "the state file's path contains a single quote, which an `exec:` \
                     migration URI cannot carry safely"
                        .into(),
                ));
            }
            // Offline: the state goes to a file first, the destination reads it afterwards.
            let uri = out_uri.clone().unwrap_or_default();
            self.pause().await?;
            self.qmp_exec("migrate", json!({"uri": uri})).await?;
            self.wait_migration(&uri, timeout).await?;
            dest.qmp_exec("migrate-incoming", json!({"uri": in_uri}))
                .await?;
            // The source was paused, so the destination stays paused after loading: wait for
            // its incoming migration to complete, then resume it.
            dest.wait_migration(&in_uri, timeout).await?;
            dest.qmp_exec("cont", json!({})).await?;
        } else {
            dest.qmp_exec("migrate-incoming", json!({"uri": in_uri}))
                .await?;
            let uri = match out_uri {
                Some(u) => u,
                None => {
                    // The kernel chose the port: read it back from the destination.
                    let info = dest.qmp_exec("query-migrate", json!({})).await?;
                    let port = info
                        .get("socket-address")
                        .and_then(Value::as_array)
                        .and_then(|a| a.first())
                        .and_then(|a| a.get("port"))
                        .and_then(|p| {
                            p.as_str()
                                .map(str::to_owned)
                                .or_else(|| p.as_u64().map(|n| n.to_string()))
                        })
                        .ok_or_else(|| Error::UnexpectedReply {
                            vm: dest.name.clone(),
                            command: "query-migrate (socket-address of the listener)".into(),
                            reply: info.to_string(),
                        })?;
                    format!("tcp:127.0.0.1:{port}")
                }
            };
            if offline {
                self.pause().await?;
            }
            self.qmp_exec("migrate", json!({"uri": uri})).await?;
            self.wait_migration(&uri, timeout).await?;
            if offline || dest.setup.spec.platform.stop {
                // The guest was paused, or the destination was started with `-S`: it stays
                // paused once it has loaded the state (it leaves `inmigrate`); then it is
                // resumed.
                dest.wait_status(&in_uri, timeout, |st| st != "inmigrate")
                    .await?;
                dest.qmp_exec("cont", json!({})).await?;
            }
        }
        // Source side: paused after migration.
        let src_status = self.status().await?;
        if src_status != "postmigrate" && !offline {
            return Err(fail(
                &in_uri,
                format!("source is `{src_status}`, not `postmigrate`"),
            ));
        }
        // Destination side: running.
        dest.wait_status(&in_uri, timeout, |st| st == "running")
            .await?;
        Ok(in_uri)
    }

    /// Polls `query-status` of a migration destination until `done` accepts the status;
    /// [`Error::Migration`] when QEMU exits or the status stays unaccepted.
    async fn wait_status(
        &self,
        uri: &str,
        timeout: Duration,
        done: impl Fn(&str) -> bool,
    ) -> Result<(), Error> {
        let fail = |why: String| Error::Migration {
            vm: self.name.clone(),
            uri: uri.to_owned(),
            why,
        };
        let deadline = Instant::now() + timeout;
        loop {
            let st = self.status().await?;
            if done(&st) {
                return Ok(());
            }
            if let ProcessState::Exited(status) = self.process.state() {
                return Err(fail(format!(
                    "destination QEMU exited ({status}): {}",
                    self.output_tail(10)
                )));
            }
            if Instant::now() >= deadline {
                return Err(fail(format!("destination stayed `{st}`")));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls `query-migrate` (source or destination side) until `completed`.
    async fn wait_migration(&self, uri: &str, timeout: Duration) -> Result<(), Error> {
        let started = Instant::now();
        loop {
            let info = self.qmp_exec("query-migrate", json!({})).await?;
            let status = info.get("status").and_then(Value::as_str).unwrap_or("");
            match status {
                "completed" => return Ok(()),
                "failed" | "cancelled" => {
                    return Err(Error::Migration {
                        vm: self.name.clone(),
                        uri: uri.to_owned(),
                        why: format!("source reports `{status}`: {info}"),
                    })
                }
                _ => {}
            }
            if started.elapsed() >= timeout {
                return Err(Error::Timeout {
                    vm: self.name.clone(),
                    awaited: format!("migration over {uri} to complete"),
                    waited: timeout,
                    last: format!("query-migrate: {info}"),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
