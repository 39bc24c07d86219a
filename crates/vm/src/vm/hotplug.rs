//! Hotplug and unplug of NICs and disks, each confirmed by QEMU: a PCI device in `query-pci`,
//! any other (a SCSI disk) under `/machine/peripheral`.

use super::*;

/// Finds a device by qdev id in a `query-pci` reply, bridges included.
fn pci_has_device(reply: &Value, id: &str) -> bool {
    fn walk(devices: &Value, id: &str) -> bool {
        devices.as_array().is_some_and(|ds| {
            ds.iter().any(|d| {
                d.get("qdev_id").and_then(Value::as_str) == Some(id)
                    || d.get("pci_bridge")
                        .and_then(|b| b.get("devices"))
                        .is_some_and(|b| walk(b, id))
            })
        })
    }
    reply.as_array().is_some_and(|buses| {
        buses
            .iter()
            .any(|b| b.get("devices").is_some_and(|d| walk(d, id)))
    })
}

/// Adds `props` to a `device_add` argument object, typed as QMP wants them: whole numbers as
/// numbers, `on`/`off`/`true`/`false`/`yes`/`no` as booleans, anything else as a string.
fn add_props(device: &mut Value, props: &[(String, String)]) {
    for (k, v) in props {
        let value = match v.as_str() {
            "on" | "true" | "yes" => json!(true),
            "off" | "false" | "no" => json!(false),
            v => v.parse::<i64>().map_or_else(|_| json!(v), |n| json!(n)),
        };
        device[k.as_str()] = value;
    }
}

/// What a hot-plugged NIC holds on the host: its tap (closed, so deleted, with this) and the
/// private bridge it joined (kept up while the NIC is in it).
pub(crate) struct HotNicHost {
    _tap: Option<crate::privnet::BridgeTap>,
    bridge: Option<Arc<crate::privnet::PrivateBridge>>,
}

/// `nic_extra_params`/`netdev_extra_params` items as properties (a bare `flag` is `on`).
fn extra_props(extra: &spec::vm::ExtraOpts) -> Vec<(String, String)> {
    extra
        .iter()
        .map(|(k, v)| (k.clone(), v.clone().unwrap_or_else(|| "on".into())))
        .collect()
}

impl Vm {
    async fn wait_in_pci(&self, id: &str, present: bool) -> Result<(), Error> {
        self.wait_present(id, present, true).await
    }

    /// Waits until device `id` is (or is no longer) in QEMU: in `query-pci` for a PCI device,
    /// under `/machine/peripheral` otherwise.
    async fn wait_present(&self, id: &str, present: bool, pci: bool) -> Result<(), Error> {
        let started = Instant::now();
        let timeout = self.setup.timeouts.hotplug;
        let (query, args) = if pci {
            ("query-pci", json!({}))
        } else {
            ("qom-list", json!({"path": "/machine/peripheral"}))
        };
        loop {
            let reply = self.qmp_exec(query, args.clone()).await?;
            let seen = if pci {
                pci_has_device(&reply, id)
            } else {
                reply.as_array().is_some_and(|ps| {
                    ps.iter()
                        .any(|p| p.get("name").and_then(Value::as_str) == Some(id))
                })
            };
            if seen == present {
                return Ok(());
            }
            if started.elapsed() >= timeout {
                return Err(Error::Timeout {
                    vm: self.name.clone(),
                    awaited: format!(
                        "device {id} to {} {query}",
                        if present { "appear in" } else { "leave" }
                    ),
                    waited: timeout,
                    last: format!("{query} does not show the expected state"),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The device types this QEMU has (`qom-list-types`, abstract ones left out), for checking
    /// a driver before `device_add` (tp-qemu's `verify_supported_device`).
    ///
    /// # Errors
    /// Monitor errors.
    pub async fn device_types(&self) -> Result<Vec<String>, Error> {
        let reply = self
            .qmp_exec(
                "qom-list-types",
                json!({"implements": "device", "abstract": false}),
            )
            .await?;
        Ok(reply
            .as_array()
            .map(|ts| {
                ts.iter()
                    .filter_map(|t| t.get("name").and_then(Value::as_str))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Whether `driver` is a PCI device type of this QEMU.
    async fn is_pci_driver(&self, driver: &str) -> Result<bool, Error> {
        let reply = self
            .qmp_exec(
                "qom-list-types",
                json!({"implements": "pci-device", "abstract": false}),
            )
            .await?;
        Ok(reply.as_array().is_some_and(|ts| {
            ts.iter()
                .any(|t| t.get("name").and_then(Value::as_str) == Some(driver))
        }))
    }

    /// Hotplugs a NIC of `model` (e.g. `virtio-net-pci`) on a new user-mode netdev with a
    /// generated, reserved MAC; confirmed by `query-pci`.
    ///
    /// # Errors
    /// Monitor errors, a timeout waiting for the device in `query-pci`.
    pub async fn hotplug_nic(&mut self, model: &str) -> Result<HotNic, Error> {
        let mac_dir = net::mac_registry_dir();
        let r = MacReservation::generate(&mac_dir, self.plan.run_dir())
            .map_err(io_err("reserving a MAC address in", &mac_dir))?;
        let nic = HotNic {
            id: short_id("hotnic"),
            netdev_id: short_id("hotnet"),
            mac: r.mac(),
            model: model.to_owned(),
        };
        self.plan.reservations.push(r);
        self.qmp_exec("netdev_add", json!({"type": "user", "id": nic.netdev_id}))
            .await?;
        self.qmp_exec(
            "device_add",
            json!({"driver": model, "id": nic.id, "netdev": nic.netdev_id, "mac": nic.mac.to_string()}),
        )
        .await?;
        self.wait_in_pci(&nic.id, true).await?;
        self.hot_nics.push(nic.clone());
        Ok(nic)
    }

    /// Hot-plugs NIC `nic` (a NIC object read by the spec layer, e.g. tp-qemu's `hotplug_nic1`)
    /// as a `driver` device: its MAC (`nic_mac`, else a generated, reserved one), its netdev
    /// as `nettype` says — `user`, or `bridge` with a tap kvmtest opens in `netdst` (its private
    /// bridge with `netdst_private = yes`) and hands QEMU with `getfd` — with `queues`, `vhost`
    /// and `netdev_extra_params`, and the device with `nic_extra_params`. The device id is the
    /// NIC's name, the netdev's `hostnet-NAME`; a PCI device is confirmed by `query-pci`.
    ///
    /// # Errors
    /// [`Error::HostNet`] for a `nettype` that cannot be hot-plugged (macvtap, vdpa, passt,
    /// the bridge helper, a scripted tap) or a tap that cannot be opened; monitor errors; a
    /// timeout waiting for the device.
    pub async fn hotplug_nic_spec(&mut self, nic: &NicSpec, driver: &str) -> Result<HotNic, Error> {
        let host_err = |what: String| Error::HostNet {
            vm: self.name.clone(),
            nic: nic.name.clone(),
            what,
        };
        let mac = match nic.mac {
            Some(m) => m,
            None => {
                let mac_dir = net::mac_registry_dir();
                let r = MacReservation::generate(&mac_dir, self.plan.run_dir())
                    .map_err(io_err("reserving a MAC address in", &mac_dir))?;
                let m = r.mac();
                self.plan.reservations.push(r);
                m
            }
        };
        let hot = HotNic {
            id: nic.name.clone(),
            netdev_id: format!("hostnet-{}", nic.name),
            mac,
            model: driver.to_owned(),
        };
        let queues = nic.tuning.queues.unwrap_or(1);
        let vhost = nic.tuning.vhost == Some(true);
        // vhost (`vhost = on`, or `vhost=on` in `netdev_extra_params`) needs the host's vhost-net.
        let extra_vhost = nic
            .netdev_extra
            .iter()
            .find(|(k, v)| k == "vhost" && matches!(v.as_deref(), None | Some("on")));
        if (vhost || extra_vhost.is_some()) && !Path::new("/dev/vhost-net").exists() {
            let (key, value) = if vhost {
                ("vhost".to_owned(), "on".to_owned())
            } else {
                ("netdev_extra_params".to_owned(), "vhost=on".to_owned())
            };
            return Err(Error::HostFeature {
                vm: self.name.clone(),
                feature: crate::error::HostFeature {
                    object: format!("nic {}", nic.name),
                    key,
                    value,
                    what: "/dev/vhost-net is missing (modprobe vhost_net)".into(),
                },
            });
        }
        let mut netdev = json!({"id": hot.netdev_id});
        let mut host = HotNicHost {
            _tap: None,
            bridge: None,
        };
        match &nic.mode {
            NicMode::User => netdev["type"] = json!("user"),
            NicMode::Bridge { br, private } if nic.tuning.bridge_helper.is_none() => {
                let bridge = match private {
                    Some(subnet) => Some(
                        crate::privnet::PrivateBridge::acquire(
                            br,
                            *subnet,
                            &crate::plan::run_base(),
                        )
                        .map_err(|e| host_err(format!("`netdst_private = yes`: {e}")))?,
                    ),
                    None => None,
                };
                // Unique on the host and in the bridge's namespace (15 characters at most).
                let ifname = short_id("kth");
                let tap =
                    crate::privnet::BridgeTap::open(&ifname, br, bridge.as_deref(), queues, vhost)
                        .map_err(host_err)?;
                // QEMU gets the fds by name (`getfd`), one message each.
                let (tap_fds, vhost_fds) = tap.borrowed_fds();
                let name = |prefix: &str, i: usize| format!("{}-{prefix}{i}", hot.netdev_id);
                let taps: Vec<String> = (0..tap_fds.len()).map(|i| name("tap", i)).collect();
                let vhosts: Vec<String> = (0..vhost_fds.len()).map(|i| name("vhost", i)).collect();
                for (n, fd) in taps
                    .iter()
                    .zip(&tap_fds)
                    .chain(vhosts.iter().zip(&vhost_fds))
                {
                    self.log_line(&format!(
                        "QMP getfd {{\"fdname\":\"{n}\"}} (with the descriptor)"
                    ));
                    self.qmp
                        .execute_with_fds("getfd", json!({"fdname": n}), &[*fd])
                        .await
                        .map_err(self.monitor_err(format!("QMP getfd {n}")))?;
                }
                let join = |v: &[String]| v.join(":");
                netdev["type"] = json!("tap");
                if queues > 1 {
                    netdev["fds"] = json!(join(&taps));
                } else {
                    netdev["fd"] = json!(join(&taps));
                }
                if vhost {
                    netdev["vhost"] = json!(true);
                    if queues > 1 {
                        netdev["vhostfds"] = json!(join(&vhosts));
                    } else {
                        netdev["vhostfd"] = json!(join(&vhosts));
                    }
                }
                host = HotNicHost {
                    _tap: Some(tap),
                    bridge,
                };
            }
            other => {
                return Err(host_err(format!(
                    "a {} NIC cannot be hot-plugged by kvmtest (user and bridge can)",
                    match other {
                        NicMode::Tap => "`nic_mode = tap` (scripted)",
                        NicMode::Bridge { .. } => "`qemu_bridge_helper`",
                        NicMode::Macvtap { .. } => "`nettype = macvtap`",
                        NicMode::Passt(_) => "`nettype = user:passt`",
                        NicMode::Vdpa { .. } => "`nettype = vdpa`",
                        NicMode::User => "user",
                    }
                )))
            }
        }
        add_props(&mut netdev, &extra_props(&nic.netdev_extra));
        self.qmp_exec("netdev_add", netdev).await?;
        let mut device = json!({"driver": driver, "id": hot.id, "netdev": hot.netdev_id,
                                "mac": hot.mac.to_string()});
        add_props(&mut device, &extra_props(&nic.nic_extra));
        if let Err(e) = self.qmp_exec("device_add", device).await {
            let _ = self
                .qmp_exec("netdev_del", json!({"id": hot.netdev_id}))
                .await;
            return Err(e);
        }
        if self.is_pci_driver(driver).await? {
            self.wait_in_pci(&hot.id, true).await?;
        }
        self.hot_nics.push(hot.clone());
        self.hot_nic_hosts.push((hot.id.clone(), host));
        Ok(hot)
    }

    /// The address the private bridge's DHCP server leased to hot-plugged NIC `nic`: `None`
    /// while there is none yet, or when the NIC is not on a private bridge.
    pub fn hot_nic_lease(&self, nic: &HotNic) -> Option<String> {
        self.hot_bridge(nic)?.leased(nic.mac)
    }

    fn hot_bridge(&self, nic: &HotNic) -> Option<&Arc<crate::privnet::PrivateBridge>> {
        self.hot_nic_hosts
            .iter()
            .find(|(id, _)| *id == nic.id)
            .and_then(|(_, h)| h.bridge.as_ref())
    }

    /// Pings `ip` `count` times from the host side of hot-plugged NIC `nic` (inside its
    /// private bridge's namespace, else from the host): whether replies came, and `ping`'s
    /// output.
    ///
    /// # Errors
    /// [`Error::HostNet`] when `ping` cannot be run.
    pub async fn ping_from_host(
        &self,
        nic: &HotNic,
        ip: &str,
        count: u32,
    ) -> Result<(bool, String), Error> {
        let bridge = self.hot_bridge(nic).cloned();
        let host_err = |what: String| Error::HostNet {
            vm: self.name.clone(),
            nic: nic.id.clone(),
            what,
        };
        let ping = crate::spawn::find_program("ping")
            .ok_or_else(|| host_err("`ping` is not installed (Debian: iputils-ping)".into()))?;
        let target = ip.to_owned();
        let out = tokio::task::spawn_blocking(move || -> std::io::Result<std::process::Output> {
            // ping is the tool this check runs; `-w` bounds it.
            #[allow(clippy::disallowed_methods)]
            let mut cmd = std::process::Command::new(&ping);
            cmd.args(["-n", "-c", &count.to_string(), "-i", "0.2", "-w"])
                .arg((count * 2 + 5).to_string())
                .arg(&target);
            if let Some(b) = &bridge {
                b.netns().enter_on_spawn(&mut cmd)?;
            }
            cmd.output()
        })
        .await
        .map_err(|e| host_err(format!("ping: {e}")))?
        .map_err(|e| host_err(format!("running ping: {e}")))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        self.log_line(&format!(
            "ping {ip} from the host side of {}: {}",
            nic.id, out.status
        ));
        Ok((out.status.success(), text))
    }

    /// Unplugs a device: `device_del`, then the `DEVICE_DELETED` event (which needs the guest's
    /// cooperation for PCI), then its absence from `query-pci` (a PCI device) or
    /// `/machine/peripheral`.
    ///
    /// # Errors
    /// Monitor errors, timeouts naming the event or the state QEMU still shows.
    pub async fn unplug_device(&mut self, id: &str) -> Result<(), Error> {
        let pci = self.pci_device_ids().await?.iter().any(|d| d == id);
        let mark = self.qmp.cursor();
        self.qmp_exec("device_del", json!({"id": id})).await?;
        self.qmp
            .wait_event(
                EventFilter::new("DEVICE_DELETED")
                    .data(json!({"device": id}))
                    .since(mark),
                self.setup.timeouts.hotplug,
            )
            .await
            .map_err(self.monitor_err(format!("waiting for DEVICE_DELETED of {id}")))?;
        self.wait_present(id, false, pci).await
    }

    /// The qdev ids `query-pci` lists.
    async fn pci_device_ids(&self) -> Result<Vec<String>, Error> {
        fn walk(devices: &Value, out: &mut Vec<String>) {
            for d in devices.as_array().into_iter().flatten() {
                if let Some(id) = d.get("qdev_id").and_then(Value::as_str) {
                    out.push(id.to_owned());
                }
                if let Some(b) = d.get("pci_bridge").and_then(|b| b.get("devices")) {
                    walk(b, out);
                }
            }
        }
        let reply = self.qmp_exec("query-pci", json!({})).await?;
        let mut ids = Vec::new();
        for bus in reply.as_array().into_iter().flatten() {
            if let Some(d) = bus.get("devices") {
                walk(d, &mut ids);
            }
        }
        Ok(ids)
    }

    /// Unplugs a hotplugged NIC and removes its netdev; its MAC reservation is released.
    ///
    /// # Errors
    /// As [`Vm::unplug_device`].
    pub async fn unplug_nic(&mut self, nic: &HotNic) -> Result<(), Error> {
        self.unplug_device(&nic.id).await?;
        self.qmp_exec("netdev_del", json!({"id": nic.netdev_id}))
            .await?;
        self.hot_nics.retain(|n| n.id != nic.id);
        self.hot_nic_hosts.retain(|(id, _)| *id != nic.id);
        self.plan.reservations.retain(|r| r.mac() != nic.mac);
        Ok(())
    }

    /// Hotplugs `plug`'s image file (format `qcow2`, `raw`…) as a `driver` device (e.g.
    /// `virtio-blk-pci`, `scsi-hd`) with its extra properties, first plugging a `controller` (a
    /// SCSI HBA such as `virtio-scsi-pci` or `lsi53c895a`) for it to sit on when one is named;
    /// each confirmed by QEMU (`query-pci`, or `/machine/peripheral` for a device that is not
    /// PCI).
    ///
    /// # Errors
    /// Monitor errors, a timeout waiting for the device.
    pub async fn hotplug_disk(&mut self, plug: &DiskPlug) -> Result<HotDisk, Error> {
        let mut disk = HotDisk {
            id: short_id("hotdisk"),
            node_name: short_id("node"),
            controller: None,
        };
        let mut device = json!({"driver": plug.driver, "id": disk.id, "drive": disk.node_name});
        add_props(&mut device, &plug.device_props);
        if let Some(model) = &plug.controller {
            let id = short_id("hotctl");
            let mut ctl = json!({"driver": model, "id": id});
            add_props(&mut ctl, &plug.controller_props);
            self.qmp_exec("device_add", ctl).await?;
            self.wait_present(&id, true, true).await?;
            device["bus"] = json!(format!("{id}.0"));
            disk.controller = Some(id);
        }
        let plugged = self
            .plug_disk(&plug.path, &plug.format, &plug.driver, &disk, device)
            .await;
        if plugged.is_err() {
            if let Some(id) = disk.controller.clone() {
                let _ = self.unplug_device(&id).await;
            }
        }
        plugged.map(|()| disk)
    }

    async fn plug_disk(
        &mut self,
        path: &Path,
        format: &str,
        driver: &str,
        disk: &HotDisk,
        device: Value,
    ) -> Result<(), Error> {
        self.qmp_exec(
            "blockdev-add",
            json!({"driver": format, "node-name": disk.node_name,
                   "file": {"driver": "file", "filename": path.to_string_lossy()}}),
        )
        .await?;
        if let Err(e) = self.qmp_exec("device_add", device).await {
            let _ = self
                .qmp_exec("blockdev-del", json!({"node-name": disk.node_name}))
                .await;
            return Err(e);
        }
        let pci = self.is_pci_driver(driver).await?;
        self.wait_present(&disk.id, true, pci).await
    }

    /// Unplugs a hotplugged disk, removes its block node, then unplugs the controller plugged
    /// for it.
    ///
    /// # Errors
    /// As [`Vm::unplug_device`].
    pub async fn unplug_disk(&mut self, disk: &HotDisk) -> Result<(), Error> {
        self.unplug_device(&disk.id).await?;
        self.qmp_exec("blockdev-del", json!({"node-name": disk.node_name}))
            .await?;
        if let Some(id) = &disk.controller {
            self.unplug_device(id).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_properties_are_typed_for_qmp() {
        let mut device = json!({"driver": "virtio-blk-pci"});
        let props: Vec<(String, String)> = [
            ("iothread", "iothread0"),
            ("num-queues", "4"),
            ("share-rw", "on"),
            ("scsi", "no"),
            ("serial", "0x1f"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        add_props(&mut device, &props);
        assert_eq!(
            device,
            json!({"driver": "virtio-blk-pci", "iothread": "iothread0", "num-queues": 4,
                   "share-rw": true, "scsi": false, "serial": "0x1f"})
        );
    }
}
