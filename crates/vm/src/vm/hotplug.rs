//! Hotplug and unplug of NICs and disks, each confirmed in the guest's PCI tree.

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

impl Vm {
    async fn wait_in_pci(&self, id: &str, present: bool) -> Result<(), Error> {
        let started = Instant::now();
        let timeout = self.setup.timeouts.hotplug;
        loop {
            let reply = self.qmp_exec("query-pci", json!({})).await?;
            if pci_has_device(&reply, id) == present {
                return Ok(());
            }
            if started.elapsed() >= timeout {
                return Err(Error::Timeout {
                    vm: self.name.clone(),
                    awaited: format!(
                        "device {id} to {} query-pci",
                        if present { "appear in" } else { "leave" }
                    ),
                    waited: timeout,
                    last: "query-pci does not show the expected state".into(),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
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
    /// cooperation for PCI), then its absence from `query-pci`.
    ///
    /// # Errors
    /// Monitor errors, timeouts naming the event or the `query-pci` state.
    pub async fn unplug_device(&mut self, id: &str) -> Result<(), Error> {
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
        self.wait_in_pci(id, false).await
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

    /// Hotplugs the image file `path` (format `format`: `qcow2`, `raw`) as a `driver` device
    /// (e.g. `virtio-blk-pci`); confirmed by `query-pci`.
    ///
    /// # Errors
    /// Monitor errors, a timeout waiting for the device in `query-pci`.
    pub async fn hotplug_disk(
        &mut self,
        path: &Path,
        format: &str,
        driver: &str,
    ) -> Result<HotDisk, Error> {
        let disk = HotDisk {
            id: short_id("hotdisk"),
            node_name: short_id("node"),
        };
        self.qmp_exec(
            "blockdev-add",
            json!({"driver": format, "node-name": disk.node_name,
                   "file": {"driver": "file", "filename": path.to_string_lossy()}}),
        )
        .await?;
        self.qmp_exec(
            "device_add",
            json!({"driver": driver, "id": disk.id, "drive": disk.node_name}),
        )
        .await?;
        self.wait_in_pci(&disk.id, true).await?;
        Ok(disk)
    }

    /// Unplugs a hotplugged disk and removes its block node.
    ///
    /// # Errors
    /// As [`Vm::unplug_device`].
    pub async fn unplug_disk(&mut self, disk: &HotDisk) -> Result<(), Error> {
        self.unplug_device(&disk.id).await?;
        self.qmp_exec("blockdev-del", json!({"node-name": disk.node_name}))
            .await?;
        Ok(())
    }
}
