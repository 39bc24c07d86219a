//! vCPU hotplug (tp-qemu's `cpu_device_hotpluggable`, avocado-vt's `vcpu_devices`): a vCPU
//! device goes into the first free slot `query-hotpluggable-cpus` lists, in topology order
//! (socket, die, cluster, core, thread: the order avocado-vt's vCPU bus fills them), with the
//! slot's own type (`qemu64-x86_64-cpu`…) and ids; QEMU confirms it by the slot's `qom-path`.
//! Unplug is `device_del` confirmed by `DEVICE_DELETED` (the guest must release the CPU: Linux
//! does it through ACPI).

use super::*;

/// A vCPU device plugged by [`Vm::hotplug_vcpu`].
#[derive(Debug, Clone, PartialEq)]
pub struct HotVcpu {
    /// Its device id (the `vcpu_devices` object's name).
    pub id: String,
    /// The device type (`qemu64-x86_64-cpu`…).
    pub driver: String,
    /// The slot's ids (`socket-id`, `core-id`, `thread-id`…), as `device_add` got them.
    pub props: serde_json::Map<String, Value>,
    /// How many guest vCPUs the device holds (`vcpus-count`).
    pub vcpus: u64,
}

/// The topology levels, outermost first: free slots are taken in this order.
const LEVELS: [&str; 5] = ["socket-id", "die-id", "cluster-id", "core-id", "thread-id"];

/// The sort key of a slot: its ids, outermost level first (a level it lacks is 0).
fn slot_key(slot: &Value) -> Vec<u64> {
    LEVELS
        .iter()
        .map(|l| {
            slot.get("props")
                .and_then(|p| p.get(*l))
                .and_then(Value::as_u64)
                .unwrap_or(0)
        })
        .collect()
}

/// The free slots of a `query-hotpluggable-cpus` reply (no `qom-path`), in topology order.
fn free_slots(reply: &Value) -> Vec<&Value> {
    let mut free: Vec<&Value> = reply
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s.get("qom-path").is_none())
        .collect();
    free.sort_by_key(|s| slot_key(s));
    free
}

impl Vm {
    /// Plugs a vCPU device `id` into the first free slot. Needs `maxcpus` above the vCPUs the
    /// VM has (`vcpu_maxcpus`, or `vcpu_devices` taken off `smp`).
    ///
    /// # Errors
    /// [`Error::BadParam`] (`vcpu_maxcpus`) when no slot is free; monitor errors (QEMU's refusal
    /// named); a timeout when the slot does not show the device.
    pub async fn hotplug_vcpu(&mut self, id: &str) -> Result<HotVcpu, Error> {
        let reply = self.qmp_exec("query-hotpluggable-cpus", json!({})).await?;
        let slot = free_slots(&reply)
            .first()
            .map(|s| (*s).clone())
            .ok_or_else(|| Error::BadParam {
                vm: self.name.clone(),
                key: "vcpu_maxcpus".into(),
                value: reply.as_array().map_or(0, Vec::len).to_string(),
                expected: format!(
                    "a free vCPU slot for {id}: every slot query-hotpluggable-cpus lists is \
                     taken (raise vcpu_maxcpus, or list {id} in vcpu_devices so it is taken \
                     off smp)"
                ),
            })?;
        let driver = slot
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::UnexpectedReply {
                vm: self.name.clone(),
                command: "query-hotpluggable-cpus (a slot's type)".into(),
                reply: slot.to_string(),
            })?
            .to_owned();
        let props: serde_json::Map<String, Value> = slot
            .get("props")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let mut args = json!({"driver": driver, "id": id});
        for (k, v) in &props {
            args[k] = v.clone();
        }
        self.qmp_exec("device_add", args).await?;
        let hot = HotVcpu {
            id: id.to_owned(),
            driver,
            vcpus: slot.get("vcpus-count").and_then(Value::as_u64).unwrap_or(1),
            props,
        };
        self.wait_vcpu_slot(&hot, true).await?;
        self.log_line(&format!(
            "vCPU {id} plugged ({} at {})",
            hot.driver,
            Value::Object(hot.props.clone())
        ));
        Ok(hot)
    }

    /// Unplugs vCPU device `id` (`device_del`, `DEVICE_DELETED`, the slot free again).
    ///
    /// # Errors
    /// Monitor errors; a timeout when the guest does not release it.
    pub async fn unplug_vcpu(&mut self, vcpu: &HotVcpu) -> Result<(), Error> {
        let mark = self.qmp.cursor();
        self.qmp_exec("device_del", json!({"id": vcpu.id})).await?;
        self.qmp
            .wait_event(
                EventFilter::new("DEVICE_DELETED")
                    .data(json!({"device": vcpu.id}))
                    .since(mark),
                self.setup.timeouts.hotplug,
            )
            .await
            .map_err(self.monitor_err(format!("waiting for DEVICE_DELETED of {}", vcpu.id)))?;
        self.wait_vcpu_slot(vcpu, false).await?;
        self.log_line(&format!("vCPU {} unplugged", vcpu.id));
        Ok(())
    }

    /// Waits until `vcpu`'s slot is taken (`plugged`) or free again.
    async fn wait_vcpu_slot(&self, vcpu: &HotVcpu, plugged: bool) -> Result<(), Error> {
        let started = Instant::now();
        let timeout = self.setup.timeouts.hotplug;
        loop {
            let reply = self.qmp_exec("query-hotpluggable-cpus", json!({})).await?;
            let taken = reply.as_array().into_iter().flatten().any(|s| {
                s.get("props").and_then(Value::as_object) == Some(&vcpu.props)
                    && s.get("qom-path").is_some()
            });
            if taken == plugged {
                return Ok(());
            }
            if started.elapsed() >= timeout {
                return Err(Error::Timeout {
                    vm: self.name.clone(),
                    awaited: format!(
                        "vCPU {} to {} its slot",
                        vcpu.id,
                        if plugged { "take" } else { "leave" }
                    ),
                    waited: timeout,
                    last: format!("query-hotpluggable-cpus: {reply}"),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_slots_come_in_topology_order() {
        // QEMU lists slots from the last one down.
        let reply = json!([
            {"type": "qemu64-x86_64-cpu", "vcpus-count": 1,
             "props": {"socket-id": 1, "core-id": 1, "thread-id": 0}},
            {"type": "qemu64-x86_64-cpu", "vcpus-count": 1,
             "props": {"socket-id": 1, "core-id": 0, "thread-id": 0}},
            {"type": "qemu64-x86_64-cpu", "vcpus-count": 1,
             "props": {"socket-id": 0, "core-id": 1, "thread-id": 0},
             "qom-path": "/machine/unattached/device[1]"},
            {"type": "qemu64-x86_64-cpu", "vcpus-count": 1,
             "props": {"socket-id": 0, "core-id": 0, "thread-id": 0},
             "qom-path": "/machine/unattached/device[0]"}
        ]);
        let free = free_slots(&reply);
        let cores: Vec<_> = free
            .iter()
            .map(|s| {
                (
                    s["props"]["socket-id"].as_u64(),
                    s["props"]["core-id"].as_u64(),
                )
            })
            .collect();
        assert_eq!(cores, [(Some(1), Some(0)), (Some(1), Some(1))]);
        assert!(free_slots(&json!([])).is_empty());
    }
}
