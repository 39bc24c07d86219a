//! The display adapter (`vga`), as avocado-vt adds it: a `-device` of the adapter's model at
//! the first PCI address after the machine's (`std` → `VGA`, `cirrus` → `cirrus-vga`,
//! `vmware` → `vmware-svga`, `qxl` → `qxl-vga`, `virtio` → `virtio-vga`), or `-vga TYPE` when
//! `vga_use_legacy_expression = yes`, when the type has no device model (`none`), or when the
//! binary has no such device (or no `-device`).

use super::{pci, Builder, Obj, Opts};
use crate::cmd::Word;
use spec::vm::VmSpec;

fn device_model(vga: &str) -> Option<&'static str> {
    Some(match vga {
        "std" => "VGA",
        "cirrus" => "cirrus-vga",
        "vmware" => "vmware-svga",
        "qxl" => "qxl-vga",
        "virtio" => "virtio-vga",
        _ => return None,
    })
}

/// `vga`: the adapter's `-device`, else `-vga`.
pub(super) fn vga(b: &mut Builder<'_>, v: &VmSpec) {
    let Some(vga) = v.vga.as_deref() else { return };
    let model = device_model(vga)
        .filter(|m| !v.pci_topology.vga_legacy && b.caps.has_device() && b.caps.has_device_type(m));
    match model {
        Some(model) => {
            let mut o = Opts::new(model);
            if let Some(p) = pci::place(b, v, model, false, Obj::Vm, "vga") {
                p.add_to(&mut o);
            }
            b.cmd.push2("-device", o.finish());
        }
        None if b.caps.has_option("vga") => {
            // QEMU puts the card in the first free slot; avocado-vt counts it there too.
            if device_model(vga).is_some() {
                pci::reserve_next(b);
            }
            b.cmd.push2("-vga", Word::from(vga));
        }
        None => b.unsupported(
            Obj::Vm,
            "vga",
            format!(
                "QEMU {} has neither -vga nor a {vga} display device",
                b.caps.version
            ),
        ),
    }
}
