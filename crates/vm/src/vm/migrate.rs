//! Live and offline migration to a new local VM, with avocado-vt's knobs (cancel, bandwidth,
//! capabilities, exec commands) and QEMU's own figures (total time, downtime) reported.

use super::*;

/// The bandwidth cap of a migration that is to be cancelled, when none is given: low enough
/// that the cancel arrives before even a small guest's RAM has been sent.
const CANCEL_BANDWIDTH: u64 = 1024 * 1024;

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
        let mut opts = MigrationOptions::new(protocol);
        opts.offline = offline;
        self.migrate_opts(&opts).await.map(|_| ())
    }

    /// A migration as `opts` says, returning QEMU's figures. With
    /// [`MigrationOptions::cancel_after`], success is a cancelled migration: the destination is
    /// destroyed and `self` stays the (running) source.
    ///
    /// # Errors
    /// As [`Vm::migrate`]; [`Error::Migration`] when a migration to be cancelled completes (or
    /// fails) first.
    pub async fn migrate_opts(
        &mut self,
        opts: &MigrationOptions,
    ) -> Result<MigrationReport, Error> {
        let offline = opts.offline || opts.protocol == MigrationProtocol::Exec;
        let was_running = self.status().await? == "running";
        let started = Instant::now();
        let plan_opts = PlanOptions {
            root_dir: self.plan.values().root_dir.clone(),
            image_dir: Some(self.plan.values().image_dir.clone()),
            migration_source: Some(&self.plan),
            incoming: Some(qemu_cmd::Incoming::defer()),
            restore: None,
        };
        let dest = Vm::start(Arc::clone(&self.qemu), self.setup.clone(), &plan_opts).await?;
        match self.migrate_to(&dest, opts, offline).await {
            Ok(mut report) if report.cancelled => {
                report.wall_ms = ms(started.elapsed());
                self.log_line(&format!(
                    "migration over {} cancelled as asked after {}; the source goes on",
                    report.uri,
                    secs(&started.elapsed())
                ));
                dest.destroy(Teardown::Kill).await?;
                if offline && was_running {
                    self.resume().await?;
                }
                Ok(report)
            }
            Ok(mut report) => {
                report.wall_ms = ms(started.elapsed());
                self.log_line(&format!(
                    "migrated over {} in {} (QEMU: total {} ms, downtime {} ms); the \
                     destination (pid {}) replaces this VM",
                    report.uri,
                    secs(&started.elapsed()),
                    report.total_time_ms.map_or("?".into(), |v| v.to_string()),
                    report.downtime_ms.map_or("?".into(), |v| v.to_string()),
                    dest.pid()
                ));
                let source = std::mem::replace(self, dest);
                source.destroy(Teardown::Kill).await?;
                Ok(report)
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

    /// The source and destination URIs of `opts`'s protocol.
    fn migration_uris(
        &self,
        dest: &Vm,
        opts: &MigrationOptions,
    ) -> Result<(Option<String>, String), Error> {
        let file = dest.run_dir().join("migration.state");
        Ok(match opts.protocol {
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
            MigrationProtocol::Exec => {
                // QEMU runs `exec:` URIs with `/bin/sh -c`: the path is single-quoted, so a
                // quote in it (only possible through a run directory chosen by the caller) is
                // refused.
                let path = file.to_string_lossy();
                if path.contains('\'') {
                    return Err(Error::Migration {
                        vm: self.name.clone(),
                        uri: path.into_owned(),
                        why: "the state file's path contains a single quote, which an `exec:` \
                              migration URI cannot carry safely"
                            .into(),
                    });
                }
                let (src, dst) = match &opts.exec_commands {
                    Some((src, dst)) => (src.replace("%s", &path), dst.replace("%s", &path)),
                    None => (format!("cat > '{path}'"), format!("cat '{path}'")),
                };
                (Some(format!("exec:{src}")), format!("exec:{dst}"))
            }
        })
    }

    async fn migrate_to(
        &self,
        dest: &Vm,
        opts: &MigrationOptions,
        offline: bool,
    ) -> Result<MigrationReport, Error> {
        let timeout = opts.timeout.unwrap_or(self.setup.timeouts.migrate);
        let (out_uri, in_uri) = self.migration_uris(dest, opts)?;
        if !opts.capabilities.is_empty() {
            let caps: Vec<Value> = opts
                .capabilities
                .iter()
                .map(|(c, on)| json!({"capability": c, "state": on}))
                .collect();
            for side in [self, dest] {
                side.qmp_exec(
                    "migrate-set-capabilities",
                    json!({"capabilities": caps.clone()}),
                )
                .await?;
            }
        }
        let bandwidth = opts
            .max_bandwidth
            .or(opts.cancel_after.map(|_| CANCEL_BANDWIDTH));
        if let Some(bw) = bandwidth {
            self.qmp_exec("migrate-set-parameters", json!({"max-bandwidth": bw}))
                .await?;
        }
        let report = |uri: &str, info: &Value, cancelled: bool| MigrationReport {
            uri: uri.to_owned(),
            cancelled,
            total_time_ms: info.get("total-time").and_then(Value::as_u64),
            downtime_ms: info.get("downtime").and_then(Value::as_u64),
            setup_time_ms: info.get("setup-time").and_then(Value::as_u64),
            transferred_bytes: info
                .get("ram")
                .and_then(|r| r.get("transferred"))
                .and_then(Value::as_u64),
            wall_ms: 0,
        };
        if opts.protocol == MigrationProtocol::Exec {
            // Offline: the state goes to a file first, the destination reads it afterwards.
            let uri = out_uri.clone().unwrap_or_default();
            self.pause().await?;
            self.qmp_exec("migrate", json!({"uri": uri})).await?;
            if let Some(delay) = opts.cancel_after {
                let info = self.cancel_migration(&uri, delay, timeout).await?;
                return Ok(report(&uri, &info, true));
            }
            let info = self.wait_migration(&uri, timeout).await?;
            dest.qmp_exec("migrate-incoming", json!({"uri": in_uri}))
                .await?;
            // The source was paused, so the destination stays paused after loading: wait for
            // its incoming migration to complete, then resume it.
            dest.wait_migration(&in_uri, timeout).await?;
            dest.qmp_exec("cont", json!({})).await?;
            dest.wait_status(&in_uri, timeout, |st| st == "running")
                .await?;
            return Ok(report(&in_uri, &info, false));
        }
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
        if let Some(delay) = opts.cancel_after {
            let info = self.cancel_migration(&uri, delay, timeout).await?;
            return Ok(report(&uri, &info, true));
        }
        let info = self.wait_migration(&uri, timeout).await?;
        if offline || dest.setup.spec.platform.stop {
            // The guest was paused, or the destination was started with `-S`: it stays
            // paused once it has loaded the state (it leaves `inmigrate`); then it is
            // resumed.
            dest.wait_status(&in_uri, timeout, |st| st != "inmigrate")
                .await?;
            dest.qmp_exec("cont", json!({})).await?;
        }
        // Source side: paused after migration.
        let src_status = self.status().await?;
        if src_status != "postmigrate" && !offline {
            return Err(Error::Migration {
                vm: self.name.clone(),
                uri: in_uri,
                why: format!("source is `{src_status}`, not `postmigrate`"),
            });
        }
        // Destination side: running.
        dest.wait_status(&in_uri, timeout, |st| st == "running")
            .await?;
        Ok(report(&in_uri, &info, false))
    }

    /// Waits `delay`, sends `migrate_cancel` and waits for the source to report `cancelled`;
    /// returns its last `query-migrate`. A migration that completes or fails first is an error.
    async fn cancel_migration(
        &self,
        uri: &str,
        delay: Duration,
        timeout: Duration,
    ) -> Result<Value, Error> {
        tokio::time::sleep(delay).await;
        let info = self.qmp_exec("query-migrate", json!({})).await?;
        let status = info.get("status").and_then(Value::as_str).unwrap_or("");
        if matches!(status, "completed" | "failed") {
            return Err(Error::Migration {
                vm: self.name.clone(),
                uri: uri.to_owned(),
                why: format!(
                    "the migration was to be cancelled after {}, but it is already `{status}`",
                    secs(&delay)
                ),
            });
        }
        self.qmp_exec("migrate_cancel", json!({})).await?;
        let started = Instant::now();
        loop {
            let info = self.qmp_exec("query-migrate", json!({})).await?;
            match info.get("status").and_then(Value::as_str).unwrap_or("") {
                "cancelled" => return Ok(info),
                s @ ("completed" | "failed") => {
                    return Err(Error::Migration {
                        vm: self.name.clone(),
                        uri: uri.to_owned(),
                        why: format!("migrate_cancel was sent, but the migration ended `{s}`"),
                    })
                }
                _ => {}
            }
            if started.elapsed() >= timeout.min(Duration::from_secs(60)) {
                return Err(Error::Timeout {
                    vm: self.name.clone(),
                    awaited: format!("the migration over {uri} to be cancelled"),
                    waited: started.elapsed(),
                    last: format!("query-migrate: {info}"),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls `query-status` of a migration destination until `done` accepts the status;
    /// [`Error::Migration`] when QEMU exits or the status stays unaccepted.
    pub(super) async fn wait_status(
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

    /// Polls `query-migrate` (source or destination side) until `completed`; returns that
    /// last answer (QEMU's figures).
    pub(super) async fn wait_migration(
        &self,
        uri: &str,
        timeout: Duration,
    ) -> Result<Value, Error> {
        let started = Instant::now();
        loop {
            let info = self.qmp_exec("query-migrate", json!({})).await?;
            let status = info.get("status").and_then(Value::as_str).unwrap_or("");
            match status {
                "completed" => return Ok(info),
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

/// Milliseconds of `d`, saturating.
fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
