//! The host devices family: `vm_hostdevs`, each a host device given to the guest
//! (`vm_hostdev_driver = vfio-pci` with the host's PCI address `vm_hostdev_host`), read as
//! avocado-vt reads them (`qcontainer.hostdev_define_by_params`), with the keys declared here.
//!
//! This is avocado-vt's newer form; the older `pci_assignable` (devices picked from the host
//! by kind) is the `vm` family's. Whether the host has the device is the `vm` crate's
//! question, asked before QEMU starts.

use crate::keys::KeyDoc;
use crate::read::Reader;

/// VM-level keys of this family.
pub const HOSTDEV_VM_KEYS: &[KeyDoc] = &[KeyDoc::optional(
    "vm_hostdevs",
    "host devices given to the guest (objects with the host device keys)",
)];

/// Keys of a host device (`vm_hostdevs` objects).
pub const HOSTDEV_KEYS: &[KeyDoc] = &[
    KeyDoc::required(
        "vm_hostdev_driver",
        "the device model (`vfio-pci`); the QEMU binary must have it",
    ),
    KeyDoc::required(
        "vm_hostdev_host",
        "the host device (`host=`: a PCI address such as 0000:01:00.0)",
    ),
    KeyDoc::optional(
        "vm_hostdev_failover_pair_id",
        "`failover_pair_id=`: the virtio-net NIC this device is the failover primary of",
    ),
    KeyDoc::optional(
        "vm_hostdev_iommufd",
        "`iommufd=`: the id of an iommufd object, added once (`-object iommufd`)",
    ),
    KeyDoc::optional(
        "vm_hostdev_extra_params",
        "more properties, `key=value` words separated by spaces (`rombar=0 x-vga=on`)",
    ),
    KeyDoc::with_default(
        "pci_bus",
        "pci.0",
        "the PCI bus the device goes on (`pci.0` or a `pci_controllers` name)",
    ),
];

/// One host device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostdevSpec {
    /// Object name: the device's id.
    pub name: String,
    /// `vm_hostdev_driver`.
    pub driver: String,
    /// `vm_hostdev_host`.
    pub host: String,
    /// `vm_hostdev_failover_pair_id`.
    pub failover_pair_id: Option<String>,
    /// `vm_hostdev_iommufd`.
    pub iommufd: Option<String>,
    /// `vm_hostdev_extra_params`, in order.
    pub extra: Vec<(String, String)>,
    /// `pci_bus` of the object: the PCI bus (a `pci_controllers` name) it goes on.
    pub pci_bus: Option<String>,
}

/// Reads `vm_hostdevs` through the VM's reader.
pub fn read_hostdevs(r: &mut Reader<'_, '_>) -> Vec<HostdevSpec> {
    let mut out = Vec::new();
    for name in r.objects("vm_hostdevs") {
        let mut h = r.child("hostdev", name);
        let driver = h.require("vm_hostdev_driver").map(str::to_string);
        let host = h.require("vm_hostdev_host").map(str::to_string);
        let extra = crate::opts::dict_of(&mut h, "vm_hostdev_extra_params");
        let pci_bus = crate::pcic::bus_request(&mut h, "pci_bus");
        if let (Some(driver), Some(host)) = (driver, host) {
            out.push(HostdevSpec {
                name: name.to_string(),
                driver,
                host,
                failover_pair_id: h.string("vm_hostdev_failover_pair_id"),
                iommufd: h.string("vm_hostdev_iommufd"),
                extra,
                pci_bus,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::test_support::params;
    use crate::VmSpec;

    #[test]
    fn a_vfio_device_with_its_extras() {
        let p = params(&[
            ("vm_hostdevs", "hostdev1"),
            ("vm_hostdev_driver", "vfio-pci"),
            ("vm_hostdev_host_hostdev1", "0000:01:00.0"),
            ("vm_hostdev_extra_params", "rombar=0 x-vga=on"),
            ("vm_hostdev_iommufd", "iommufd0"),
        ]);
        let spec = VmSpec::new(&p, "vm1").unwrap_or_else(|e| panic!("{e}"));
        let h = &spec.hostdevs[0];
        assert_eq!(
            (h.driver.as_str(), h.host.as_str()),
            ("vfio-pci", "0000:01:00.0")
        );
        assert_eq!(
            h.extra,
            [("rombar".into(), "0".into()), ("x-vga".into(), "on".into())]
        );
        assert_eq!(h.iommufd.as_deref(), Some("iommufd0"));
        let p = params(&[("vm_hostdevs", "h"), ("vm_hostdev_extra_params", "rombar")]);
        let keys: Vec<String> = VmSpec::new(&p, "vm1")
            .err()
            .map(|e| e.problems().iter().map(|p| p.key.clone()).collect())
            .unwrap_or_default();
        assert_eq!(
            keys,
            [
                "vm_hostdev_driver",
                "vm_hostdev_host",
                "vm_hostdev_extra_params"
            ]
        );
    }
}
