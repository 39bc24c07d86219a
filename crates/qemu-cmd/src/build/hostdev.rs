//! `vm_hostdevs`: host devices given to the guest as avocado-vt renders them, after the TPMs —
//! `-device DRIVER,id=NAME,host=ADDR` with `failover_pair_id`, `iommufd` (its
//! `-object iommufd` added once before the first device using it) and
//! `vm_hostdev_extra_params`, placed on PCI (a `vfio-pci` as a PCI Express device, or on the
//! controller its `pci_bus` names). Whether the host has the device is the `vm` crate's check.

use super::{pci, Builder, Obj, Opts};
use crate::caps::QemuVersion;
use spec::vm::VmSpec;

/// `vm_hostdevs`.
pub(super) fn hostdevs(b: &mut Builder<'_>, v: &VmSpec) {
    let mut iommufds: Vec<&str> = Vec::new();
    for h in &v.hostdevs {
        let obj = Obj::Sub("hostdev", &h.name);
        if !b.caps.has_device_type(&h.driver) {
            let reason = format!("QEMU {} has no {} device", b.caps.version, h.driver);
            b.unsupported(obj, "vm_hostdev_driver", reason);
            continue;
        }
        if let Some(id) = h.iommufd.as_deref() {
            if b.caps.version < QemuVersion::new(9, 0, 0) {
                let reason = format!("QEMU {} has no iommufd object (QEMU 9.0+)", b.caps.version);
                b.unsupported(obj, "vm_hostdev_iommufd", reason);
                continue;
            }
            if !iommufds.contains(&id) {
                iommufds.push(id);
                let mut o = Opts::new("iommufd");
                o.kv("id", id);
                b.cmd.push2("-object", o.finish());
            }
        }
        let mut o = Opts::new(&h.driver);
        o.kv("id", &h.name).kv("host", &h.host);
        if let Some(f) = &h.failover_pair_id {
            o.kv("failover_pair_id", f);
        }
        if let Some(id) = &h.iommufd {
            o.kv("iommufd", id);
        }
        o.pairs(&h.extra);
        if let Some(p) = pci::place_requested(b, v, h.pci_bus.as_deref(), &h.driver, obj) {
            p.add_to(&mut o);
        }
        b.cmd.push2("-device", o.finish());
    }
}
