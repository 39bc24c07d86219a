//! [`GuestVm`] for [`LiveVm`]: what a test does to a VM (logins, reboots, shutdowns,
//! migrations, hotplug), each through the `vm` crate.

use super::live::{widen, Hot};
use super::*;

impl GuestVm for LiveVm {
    fn name(&self) -> &str {
        &self.name
    }

    fn is_alive(&self) -> bool {
        match self.inner.try_lock() {
            Ok(g) => g.as_ref().is_some_and(Vm::is_alive),
            // Busy with an operation: it was alive when that started.
            Err(_) => true,
        }
    }

    fn login(&self, timeout: Duration) -> BoxFuture<'_, Result<Box<dyn RemoteShell>, EnvError>> {
        self.login_via(LoginVia::Serial, timeout)
    }

    fn login_via(
        &self,
        via: LoginVia,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<Box<dyn RemoteShell>, EnvError>> {
        Box::pin(async move {
            let access = match via {
                LoginVia::Serial => Access::Serial,
                LoginVia::Remote { nic } => Access::Remote { nic },
            };
            let s = self
                .with_vm("login", |vm| {
                    Box::pin(async move {
                        let mut s = vm.wait_for_login(access, timeout).await?;
                        if access == Access::Serial {
                            widen(&mut s).await?;
                        }
                        Ok(s)
                    })
                })
                .await?;
            Ok(Box::new(SessionShell::new(s)) as Box<dyn RemoteShell>)
        })
    }

    fn human_monitor_cmd<'a>(&'a self, cmd: &'a str) -> BoxFuture<'a, Result<String, EnvError>> {
        Box::pin(async move {
            let v = self
                .qmp("human-monitor-command", json!({ "command-line": cmd }))
                .await?;
            Ok(v.as_str().unwrap_or_default().to_owned())
        })
    }

    fn qmp<'a>(&'a self, command: &'a str, args: Value) -> BoxFuture<'a, Result<Value, EnvError>> {
        Box::pin(async move {
            let g = self.inner.lock().await;
            let vm = g.as_ref().ok_or_else(|| EnvError::NoSuchVm {
                name: self.name.clone(),
            })?;
            vm.monitor()
                .execute(command, args)
                .await
                .map_err(|e| vm_err(&self.name, &format!("QMP {command}"), e))
        })
    }

    fn reboot(
        &self,
        method: RebootMethod,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<Box<dyn RemoteShell>, EnvError>> {
        Box::pin(async move {
            let ready = self.ready_marker();
            let (session, before) = self
                .with_vm("reboot", |vm| {
                    let ready = ready.clone();
                    Box::pin(async move {
                        let before = ready
                            .as_ref()
                            .map_or(0, |(m, _)| LiveVm::markers_seen(vm, m));
                        let how = match method {
                            RebootMethod::SystemReset => vm::RebootMethod::SystemReset,
                            RebootMethod::Shell => {
                                let s = vm.serial_login(timeout).await?;
                                vm::RebootMethod::Shell(Box::new(s))
                            }
                        };
                        let mut s = vm.reboot(how, Access::Serial, timeout).await?;
                        widen(&mut s).await?;
                        Ok((s, before))
                    })
                })
                .await?;
            if let Some((marker, t)) = ready {
                self.wait_ready(&marker, before + 1, t).await?;
            }
            Ok(Box::new(SessionShell::new(session)) as Box<dyn RemoteShell>)
        })
    }

    fn shutdown(
        &self,
        method: ShutdownMethod,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<(), EnvError>> {
        Box::pin(async move {
            let mut g = self.inner.lock().await;
            let Some(mut vm) = g.take() else {
                return Err(EnvError::NoSuchVm {
                    name: self.name.clone(),
                });
            };
            let started = Instant::now();
            let sent: Result<(), EnvError> = match method {
                ShutdownMethod::Shell => {
                    let Some(cmd) = vm.session_spec().shutdown_command.clone() else {
                        let missing = ::spec::SpecError::Params {
                            vm: self.name.clone(),
                            problems: vec![::spec::Problem {
                                object: format!("vm {}", self.name),
                                key: "shutdown_command".into(),
                                value: None,
                                origin: None,
                                kind: ::spec::ProblemKind::Missing,
                            }],
                        };
                        *g = Some(vm);
                        return Err(vm_err(
                            &self.name,
                            "shutdown from the guest's shell",
                            missing,
                        ));
                    };
                    match vm.serial_login(timeout).await {
                        Ok(mut s) => s
                            .sendline(&cmd)
                            .await
                            .map_err(|e| vm_err(&self.name, "sending the shutdown command", e)),
                        Err(e) => Err(vm_err(&self.name, "login for the shutdown command", e)),
                    }
                }
                ShutdownMethod::SystemPowerdown => vm
                    .monitor()
                    .execute("system_powerdown", json!({}))
                    .await
                    .map(|_| ())
                    .map_err(|e| vm_err(&self.name, "QMP system_powerdown", e)),
            };
            // `disable_shutdown` (`-no-shutdown`): QEMU stays, stopped with status `shutdown`
            // (avocado-vt's check_from_monitor); otherwise it must exit.
            let no_shutdown = vm.spec().launch.no_shutdown;
            let mut exited = false;
            let mut last_status = String::new();
            if sent.is_ok() {
                while started.elapsed() < timeout {
                    if !vm.is_alive() {
                        exited = !no_shutdown;
                        break;
                    }
                    if no_shutdown {
                        if let Ok(st) = vm.status().await {
                            if st == "shutdown" {
                                exited = true;
                                break;
                            }
                            last_status = st;
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            let tail = vm.output_tail(10);
            // Whatever happened, the VM is torn down now (a no-op when QEMU already exited).
            let destroyed = vm.destroy(Teardown::Kill).await;
            self.forget_all();
            drop(g);
            sent?;
            if !exited && no_shutdown {
                return Err(vm_err(
                    &self.name,
                    "shutdown",
                    Cause(format!(
                        "with disable_shutdown = yes, expected QEMU to stay with status `shutdown` \
                         after the {method:?} shutdown; within {:.0} s its status was {:?} (it \
                         was then killed); QEMU output: {tail}",
                        timeout.as_secs_f64(),
                        if last_status.is_empty() { "gone" } else { last_status.as_str() }
                    )),
                ));
            }
            if !exited {
                return Err(vm_err(
                    &self.name,
                    "shutdown",
                    Cause(format!(
                        "timed out after {:.0} s waiting for QEMU to exit after the {method:?} \
                         shutdown (it was then killed); QEMU output: {tail}",
                        timeout.as_secs_f64()
                    )),
                ));
            }
            destroyed
                .map(|_| ())
                .map_err(|e| vm_err(&self.name, "cleaning up after the shutdown", e))
        })
    }

    fn migrate<'a>(
        &'a self,
        request: &'a MigrationRequest,
    ) -> BoxFuture<'a, Result<MigrationOutcome, EnvError>> {
        Box::pin(async move {
            let mut g = self.inner.lock().await;
            let vm = g.as_mut().ok_or_else(|| EnvError::NoSuchVm {
                name: self.name.clone(),
            })?;
            let old = vm.pid();
            let mut opts = vm::MigrationOptions::new(match request.protocol {
                MigrationProtocol::Tcp => vm::MigrationProtocol::Tcp,
                MigrationProtocol::Unix => vm::MigrationProtocol::Unix,
                MigrationProtocol::Exec => vm::MigrationProtocol::Exec,
            });
            opts.offline = matches!(request.mode, MigrationMode::Offline);
            opts.cancel_after = request.cancel_after;
            opts.exec_commands.clone_from(&request.exec_commands);
            opts.max_bandwidth = request.max_bandwidth;
            opts.capabilities.clone_from(&request.capabilities);
            opts.timeout = Some(request.timeout);
            let r = vm.migrate_opts(&opts).await;
            if vm.pid() != old {
                // The destination replaced the source (even if a later check failed).
                self.forget_all();
                self.adopt(vm);
            }
            let report = r.map_err(|e| {
                vm_err(
                    &self.name,
                    &format!("{:?} migration over {:?}", request.mode, request.protocol),
                    e,
                )
            })?;
            Ok(MigrationOutcome {
                cancelled: report.cancelled,
                total_time_ms: report.total_time_ms,
                downtime_ms: report.downtime_ms,
                transferred_bytes: report.transferred_bytes,
                wall_ms: report.wall_ms,
            })
        })
    }

    fn agent<'a>(
        &'a self,
        command: &'a str,
        args: serde_json::Value,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<serde_json::Value, EnvError>> {
        Box::pin(async move {
            let agent = self
                .with_vm("connecting to the guest agent", |vm| {
                    Box::pin(async move { vm.guest_agent().await })
                })
                .await?;
            agent
                .execute_timeout(command, args, timeout)
                .await
                .map_err(|e| vm_err(&self.name, &format!("guest agent {command}"), e))
        })
    }

    fn agent_shutdown<'a>(
        &'a self,
        mode: &'a str,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<(), EnvError>> {
        Box::pin(async move {
            let mut g = self.inner.lock().await;
            let Some(mut vm) = g.take() else {
                return Err(EnvError::NoSuchVm {
                    name: self.name.clone(),
                });
            };
            let r = match mode {
                "powerdown" => vm.agent_powerdown(timeout).await.map(|_| ()),
                other => match vm.guest_agent().await {
                    Ok(agent) => match agent
                        .execute_no_reply("guest-shutdown", json!({ "mode": other }))
                        .await
                    {
                        Ok(_) if other == "halt" => vm.wait_for_exit(timeout).await.map(|_| ()),
                        Ok(_) => Ok(()),
                        Err(e) => Err(vm::Error::Monitor {
                            vm: self.name.clone(),
                            what: format!("guest-shutdown mode={other}"),
                            source: Box::new(e),
                        }),
                    },
                    Err(e) => Err(e),
                },
            };
            if mode == "reboot" && r.is_ok() {
                *g = Some(vm);
                return Ok(());
            }
            // Powered off (or failed): the VM is torn down either way.
            let destroyed = vm.destroy(Teardown::Kill).await;
            self.forget_all();
            drop(g);
            r.map_err(|e| vm_err(&self.name, &format!("guest-shutdown mode={mode}"), e))?;
            destroyed
                .map(|_| ())
                .map_err(|e| vm_err(&self.name, "cleaning up after the shutdown", e))
        })
    }

    fn hotplug_nic<'a>(&'a self, driver: &'a str) -> BoxFuture<'a, Result<Hotplugged, EnvError>> {
        Box::pin(async move {
            let nic = self
                .with_vm("NIC hotplug", |vm| {
                    let d = driver.to_owned();
                    Box::pin(async move { vm.hotplug_nic(&d).await })
                })
                .await?;
            let h = Hotplugged {
                id: nic.id.clone(),
                driver: driver.to_owned(),
                mac: Some(nic.mac.to_string()),
            };
            if let Ok(mut m) = self.hot.lock() {
                m.insert(nic.id.clone(), Hot::Nic(nic));
            }
            Ok(h)
        })
    }

    fn hotplug_nic_spec<'a>(
        &'a self,
        nic: &'a spec::NicSpec,
        driver: &'a str,
    ) -> BoxFuture<'a, Result<Hotplugged, EnvError>> {
        Box::pin(async move {
            let hot = self
                .with_vm("NIC hotplug", |vm| {
                    let (nic, d) = (nic.clone(), driver.to_owned());
                    Box::pin(async move { vm.hotplug_nic_spec(&nic, &d).await })
                })
                .await?;
            let h = Hotplugged {
                id: hot.id.clone(),
                driver: driver.to_owned(),
                mac: Some(hot.mac.to_string()),
            };
            if let Ok(mut m) = self.hot.lock() {
                m.insert(hot.id.clone(), Hot::Nic(hot));
            }
            Ok(h)
        })
    }

    fn retire(&self) {
        self.altered
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    fn nic_ids(&self) -> BoxFuture<'_, Result<Vec<vm::NicIds>, EnvError>> {
        Box::pin(async move {
            self.with_vm("listing the VM's NICs", |vm| {
                let ids = vm.nic_ids();
                Box::pin(async move { Ok(ids) })
            })
            .await
        })
    }

    fn set_link<'a>(&'a self, device_id: &'a str, up: bool) -> BoxFuture<'a, Result<(), EnvError>> {
        Box::pin(async move {
            self.with_vm("set_link", |vm| {
                let id = device_id.to_owned();
                Box::pin(async move { vm.set_link(&id, up).await })
            })
            .await
        })
    }

    fn hot_nic_lease<'a>(
        &'a self,
        nic: &'a Hotplugged,
    ) -> BoxFuture<'a, Result<Option<String>, EnvError>> {
        Box::pin(async move {
            let hot = self.hot_nic(nic)?;
            self.with_vm("reading a hot-plugged NIC's lease", |vm| {
                let lease = vm.hot_nic_lease(&hot);
                Box::pin(async move { Ok(lease) })
            })
            .await
        })
    }

    fn ping_from_host<'a>(
        &'a self,
        nic: &'a Hotplugged,
        ip: &'a str,
        count: u32,
    ) -> BoxFuture<'a, Result<(bool, String), EnvError>> {
        Box::pin(async move {
            let hot = self.hot_nic(nic)?;
            self.with_vm("ping from the host", |vm| {
                let ip = ip.to_owned();
                Box::pin(async move { vm.ping_from_host(&hot, &ip, count).await })
            })
            .await
        })
    }

    fn hotplug_disk<'a>(
        &'a self,
        plug: &'a DiskPlug,
    ) -> BoxFuture<'a, Result<Hotplugged, EnvError>> {
        Box::pin(async move {
            let disk = self
                .with_vm("disk hotplug", |vm| {
                    let plug = plug.clone();
                    Box::pin(async move { vm.hotplug_disk(&plug).await })
                })
                .await?;
            let h = Hotplugged {
                id: disk.id.clone(),
                driver: plug.driver.clone(),
                mac: None,
            };
            if let Ok(mut m) = self.hot.lock() {
                m.insert(disk.id.clone(), Hot::Disk(disk));
            }
            Ok(h)
        })
    }

    fn hotplug_vcpu<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Hotplugged, EnvError>> {
        Box::pin(async move {
            // Its vCPUs are no longer its command line's: no later test gets this VM.
            self.altered
                .store(true, std::sync::atomic::Ordering::SeqCst);
            let vcpu = self
                .with_vm("vCPU hotplug", |vm| {
                    let id = id.to_owned();
                    Box::pin(async move { vm.hotplug_vcpu(&id).await })
                })
                .await?;
            let h = Hotplugged {
                id: vcpu.id.clone(),
                driver: vcpu.driver.clone(),
                mac: None,
            };
            if let Ok(mut m) = self.hot.lock() {
                m.insert(vcpu.id.clone(), Hot::Vcpu(vcpu));
            }
            Ok(h)
        })
    }

    fn device_types(&self) -> BoxFuture<'_, Result<Vec<String>, EnvError>> {
        Box::pin(async move {
            self.with_vm("listing device types", |vm| {
                Box::pin(async move { vm.device_types().await })
            })
            .await
        })
    }

    fn unplug<'a>(&'a self, device: &'a Hotplugged) -> BoxFuture<'a, Result<(), EnvError>> {
        Box::pin(async move {
            let hot = self.hot.lock().ok().and_then(|mut m| m.remove(&device.id));
            match hot {
                Some(Hot::Nic(nic)) => {
                    self.with_vm("NIC unplug", |vm| {
                        Box::pin(async move { vm.unplug_nic(&nic).await })
                    })
                    .await
                }
                Some(Hot::Disk(disk)) => {
                    self.with_vm("disk unplug", |vm| {
                        Box::pin(async move { vm.unplug_disk(&disk).await })
                    })
                    .await
                }
                Some(Hot::Vcpu(vcpu)) => {
                    self.with_vm("vCPU unplug", |vm| {
                        Box::pin(async move { vm.unplug_vcpu(&vcpu).await })
                    })
                    .await
                }
                None => {
                    self.altered
                        .store(true, std::sync::atomic::Ordering::SeqCst);
                    let id = device.id.clone();
                    self.with_vm("unplug", |vm| {
                        Box::pin(async move { vm.unplug_device(&id).await })
                    })
                    .await
                }
            }
        })
    }
}
