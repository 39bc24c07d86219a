//! Guest IOMMUs and the virtio device properties, as avocado-vt adds them.
//!
//! * `intel_iommu = yes`: `-device intel-iommu,intremap=…,device-iotlb=…,…` right after
//!   `-nodefaults`, before the display adapter and every virtio device (QEMU wants the IOMMU
//!   before the devices it translates for). A sysbus device of q35 only: another machine is a
//!   problem. With KVM, `intremap=on` (avocado-vt's default) needs the split irqchip, which
//!   avocado-vt leaves to the cfg (`machine_type_extra_params = kernel-irqchip=split`, as
//!   tp-qemu's IOMMU tests set it); without it QEMU refuses to start, so kvmtest names the
//!   problem instead.
//! * `virtio_iommu = yes`: `-device virtio-iommu-pci` with `virtio_iommu_extra_params`, plugged
//!   into the root bus itself, right after intel-iommu's place (on q35 too, where other virtio
//!   devices get a root port: avocado-vt's `pcie_direct_plug`).
//! * `virtio_dev_*`: after the last device avocado-vt adds (before the extra root ports), each
//!   property set goes to every `-device` whose driver `virtio_dev_filter` finds, when the
//!   driver has the property (`Capabilities::virtio_property`) and the device does not set it
//!   already; appended after the device's own items, in avocado-vt's order. `extra_params`'
//!   words are the user's verbatim text and are left alone, as avocado-vt leaves them.

use super::{misc, pci, Builder, Obj, Opts};
use crate::escape::escape_opt_value;
use spec::iommu::IntelIommu;
use spec::types::Accel;
use spec::vm::{ExtraOpts, VmSpec};

/// `intel_iommu`, then `virtio_iommu`.
pub(super) fn iommus(b: &mut Builder<'_>, v: &VmSpec) {
    if let Some(intel) = &v.iommu.intel {
        intel_iommu(b, v, intel);
    }
    if let Some(extra) = &v.iommu.virtio {
        virtio_iommu(b, extra);
    }
}

/// Whether `machine_type_extra_params` gives the irqchip intel-iommu's interrupt remapping
/// can work with under KVM (`kernel-irqchip=split` or `off`; QEMU reads `kernel_irqchip` the
/// same).
fn irqchip_allows_intremap(v: &VmSpec) -> bool {
    v.machine_extra.iter().any(|(k, val)| {
        matches!(k.as_str(), "kernel-irqchip" | "kernel_irqchip")
            && matches!(val.as_deref(), Some("split" | "off"))
    })
}

/// `-device intel-iommu,…` (see the module docs for when it is a problem instead).
fn intel_iommu(b: &mut Builder<'_>, v: &VmSpec, intel: &IntelIommu) {
    let caps = b.caps;
    if !caps.has_device() || !caps.has_device_type("intel-iommu") {
        let reason = format!("QEMU {} has no intel-iommu device", caps.version);
        b.unsupported(Obj::Vm, "intel_iommu", reason);
        return;
    }
    if !matches!(b.pci.layout, pci::Layout::Q35 { .. }) {
        b.unsupported(
            Obj::Vm,
            "intel_iommu",
            "intel-iommu is a device of q35 machines (`machine_type`): QEMU refuses it on \
             others"
                .into(),
        );
        return;
    }
    if intel.intremap_on() && misc::accel(b, v).0 == Some(Accel::Kvm) && !irqchip_allows_intremap(v)
    {
        b.unsupported(
            Obj::Vm,
            "iommu_intremap",
            "with KVM, QEMU refuses intel-iommu's interrupt remapping next to the in-kernel \
             irqchip: add `kernel-irqchip=split` to `machine_type_extra_params` (as tp-qemu's \
             IOMMU tests do) or set `iommu_intremap = off`"
                .into(),
        );
        return;
    }
    let mut o = Opts::new("intel-iommu");
    for p in &intel.props {
        o.kv(p.qemu, &p.value);
    }
    b.cmd.push2("-device", o.finish());
}

/// `-device virtio-iommu-pci,…` on the root bus.
fn virtio_iommu(b: &mut Builder<'_>, extra: &ExtraOpts) {
    const DRIVER: &str = "virtio-iommu-pci";
    if !b.caps.has_device() || !b.caps.has_device_type(DRIVER) {
        let reason = format!("QEMU {} has no {DRIVER} device", b.caps.version);
        b.unsupported(Obj::Vm, "virtio_iommu", reason);
        return;
    }
    let mut o = Opts::new(DRIVER);
    o.extra(extra);
    if let Some(p) = pci::place_on_root(b, DRIVER, Obj::Vm, "virtio_iommu") {
        p.add_to(&mut o);
    }
    b.cmd.push2("-device", o.finish());
}

/// `virtio_dev_*` on every matching device built so far (see the module docs).
pub(super) fn virtio_globals(b: &mut Builder<'_>, v: &VmSpec) {
    let Some(g) = &v.iommu.virtio_globals else {
        return;
    };
    let caps = b.caps;
    if !caps.has_device() {
        // Its virtio disks and NICs are `-drive if=virtio`/`-net nic,model=virtio`: nothing to
        // set a property on (avocado-vt finds no driver there either), so none is honoured.
        for p in &g.props {
            let reason = format!(
                "QEMU {} has no -device: its virtio devices take no properties",
                caps.version
            );
            b.unsupported(Obj::Vm, p.key, reason);
        }
        return;
    }
    let verbatim = b.verbatim.clone();
    let mut unknown: Vec<(&'static str, String, &'static str)> = Vec::new();
    for (i, opt) in b.cmd.options.iter_mut().enumerate() {
        if verbatim.contains(&i) {
            continue;
        }
        let [name, value] = opt.words.as_mut_slice() else {
            continue;
        };
        if name.stable() != "-device" {
            continue;
        }
        let items = crate::argv_diff::keyed_items(&value.stable());
        let Some(driver) = items
            .first()
            .filter(|(k, _)| k == "value")
            .map(|(_, d)| d.clone())
        else {
            continue;
        };
        if !g.filter.finds(&driver) {
            continue;
        }
        for p in &g.props {
            if items.iter().any(|(k, _)| k == p.qemu) {
                continue;
            }
            match caps.virtio_property(&driver, p.qemu) {
                Some(true) => {
                    value.push_str(&format!(",{}={}", p.qemu, escape_opt_value(&p.value)))
                }
                Some(false) => {}
                None => unknown.push((p.key, driver.clone(), p.qemu)),
            }
        }
    }
    for (key, driver, prop) in unknown {
        b.unsupported(
            Obj::Vm,
            key,
            format!(
                "`virtio_dev_filter` matches {driver}, and kvmtest cannot tell whether it has \
                 property {prop} (it knows the virtio transports' properties, on QEMU 2.9 and \
                 later)"
            ),
        );
    }
}
