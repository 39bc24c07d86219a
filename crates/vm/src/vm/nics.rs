//! The VM's NICs: their ids, MACs and addresses, and their links.

use super::*;

/// A NIC of the VM's command line, by its ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NicIds {
    /// Its name in `nics`.
    pub name: String,
    /// The `-device` id (`set_link` takes it).
    pub device_id: String,
    /// The `-netdev` id.
    pub netdev_id: String,
    /// Its MAC.
    pub mac: MacAddr,
}

impl Vm {
    /// The MAC of NIC `index`.
    ///
    /// # Errors
    /// [`Error::NoSuchNic`].
    pub fn get_mac(&self, index: usize) -> Result<MacAddr, Error> {
        Ok(self.nic(index)?.1.mac)
    }

    /// The VM's own NICs (`nics`), in order: name, device id, netdev id and MAC.
    pub fn nic_ids(&self) -> Vec<NicIds> {
        self.setup
            .spec
            .nics
            .iter()
            .zip(&self.plan.values().nics)
            .map(|(spec, run)| NicIds {
                name: spec.name.clone(),
                device_id: qemu_cmd::names::nic_device_id(&spec.name, spec.index),
                netdev_id: qemu_cmd::names::netdev_id(&spec.name, spec.index),
                mac: run.mac,
            })
            .collect()
    }

    /// Sets the link of NIC device `device_id` up or down (`set_link`): the guest sees the
    /// cable plugged or pulled.
    ///
    /// # Errors
    /// Monitor errors (an unknown device among them).
    pub async fn set_link(&self, device_id: &str, up: bool) -> Result<(), Error> {
        self.qmp_exec("set_link", json!({"name": device_id, "up": up}))
            .await
            .map(|_| ())
    }

    /// NIC `index`: its spec and the plan's decisions for it.
    pub(super) fn nic(&self, index: usize) -> Result<(&NicSpec, &qemu_cmd::NicRun), Error> {
        let nics = &self.setup.spec.nics;
        nics.get(index)
            .zip(self.plan.values().nics.get(index))
            .ok_or_else(|| Error::NoSuchNic {
                vm: self.name.clone(),
                index,
                count: nics.len(),
            })
    }

    /// The host-side address of NIC `index`: `localhost` in user mode (ports are forwarded);
    /// in tap mode the IP that `address_cache` maps its MAC to, verified against the host's ARP
    /// table (refused when that IP is seen with a MAC that is not one of this VM's); on a
    /// private bridge what its dnsmasq leased to the MAC (reachable in the bridge's namespace).
    ///
    /// # Errors
    /// [`Error::NoSuchNic`], [`Error::AddressUnknown`].
    pub fn get_address(
        &self,
        index: usize,
        address_cache: &std::collections::HashMap<MacAddr, String>,
    ) -> Result<String, Error> {
        let (nic, run) = self.nic(index)?;
        if nic.mode == NicMode::User {
            return Ok("localhost".into());
        }
        let unknown = |why: String| Error::AddressUnknown {
            vm: self.name.clone(),
            nic: nic.name.clone(),
            mac: run.mac.to_string(),
            why,
        };
        if let Some(b) = self.plan.private_bridge(index) {
            return b.leased(run.mac).ok_or_else(|| {
                unknown(format!(
                    "dnsmasq on the private bridge {} has leased it no address yet",
                    b.name()
                ))
            });
        }
        let ip = address_cache
            .get(&run.mac)
            .ok_or_else(|| unknown("not in the MAC→IP address cache".into()))?;
        let ours = |mac: MacAddr| self.plan.values().nics.iter().any(|n| n.mac == mac);
        match net::arp_mac(ip) {
            Some(seen) if ours(seen) => Ok(ip.clone()),
            Some(seen) => Err(unknown(format!("{ip} belongs to {seen}, not to this VM"))),
            None => Err(unknown(format!("{ip} is not in the host's ARP table"))),
        }
    }

    /// The private bridge NIC `index` is in (`netdst_private = yes`): its namespace (where
    /// the guest's address is reachable), subnet and leases.
    pub fn private_bridge(
        &self,
        index: usize,
    ) -> Option<&std::sync::Arc<crate::privnet::PrivateBridge>> {
        self.plan.private_bridge(index)
    }
}
