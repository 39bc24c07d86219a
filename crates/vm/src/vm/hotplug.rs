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
