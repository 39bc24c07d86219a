//! avocado-vt's platform devices: the watchdog, pvpanic, vmcoreinfo, the SeaBIOS log
//! (`isa-debugcon`), the anaconda log port, `isa-debug-exit` and `sga`. A device the binary
//! does not have is a problem naming the key that asked for it (avocado-vt logs a warning and
//! starts the VM without it).

use super::chardev::socket_chardev;
use super::{pci, Builder, Obj, Opts};
use crate::cmd::Word;
use crate::names;
use spec::vm::VmSpec;

/// `-device TYPE` when the binary has it; otherwise a problem on `key`.
fn device(b: &mut Builder<'_>, key: &str, o: Opts, ty: &str) -> bool {
    if b.caps.has_device() && b.caps.has_device_type(ty) {
        b.cmd.push2("-device", o.finish());
        true
    } else {
        let reason = format!("QEMU {} has no {ty} device", b.caps.version);
        b.unsupported(Obj::Vm, key, reason);
        false
    }
}

/// `enable_watchdog`: the device of `watchdog_device_type` (`itco`: the q35 TCO's
/// `-global ICH9-LPC.noreboot=off`) and `-watchdog-action`.
pub(super) fn watchdog(b: &mut Builder<'_>, v: &VmSpec) {
    let Some(w) = &v.platform.watchdog else {
        return;
    };
    match w.device_type.as_deref() {
        None => {}
        Some("itco") if b.caps.has_option("global") => {
            b.cmd.push2("-global", Word::from("ICH9-LPC.noreboot=off"));
        }
        Some("itco") => {
            let reason = format!("QEMU {} has no -global option", b.caps.version);
            b.unsupported(Obj::Vm, "watchdog_device_type", reason);
        }
        Some(ty) => {
            let mut o = Opts::new(ty);
            // The PCI watchdog takes a conventional PCI place (ib700 is an ISA card).
            if ty == "i6300esb" && b.caps.has_device_type(ty) {
                if let Some(p) = pci::place(b, v, ty, true, Obj::Vm, "watchdog_device_type") {
                    p.add_to(&mut o);
                }
            }
            device(b, "watchdog_device_type", o, ty);
        }
    }
    if b.caps.has_option("watchdog-action") {
        b.cmd
            .push2("-watchdog-action", Word::from(w.action.as_str()));
    } else {
        let reason = format!("QEMU {} has no -watchdog-action option", b.caps.version);
        b.unsupported(Obj::Vm, "enable_watchdog", reason);
    }
}

/// `enable_pvpanic` (the ISA `pvpanic` with `ioport_pvpanic`/`events_pvpanic`, or
/// `pvpanic-pci` for aarch64) and `vmcoreinfo`, after the monitors.
pub(super) fn pvpanic_vmcoreinfo(b: &mut Builder<'_>, v: &VmSpec) {
    let p = &v.platform;
    if let Some(pv) = &p.pvpanic {
        let ty = if pv.pci { "pvpanic-pci" } else { "pvpanic" };
        let mut o = Opts::new(ty);
        if !pv.pci {
            if let Some(port) = &pv.ioport {
                o.kv("ioport", port);
            }
            if let Some(events) = &pv.events {
                o.kv("events", events);
            }
        }
        o.kv("id", names::PVPANIC_ID);
        if pv.pci && b.caps.has_device_type(ty) {
            if let Some(p) = pci::place(b, v, ty, false, Obj::Vm, "enable_pvpanic") {
                p.add_to(&mut o);
            }
        }
        device(b, "enable_pvpanic", o, ty);
    }
    if p.vmcoreinfo {
        device(b, "vmcoreinfo", Opts::new("vmcoreinfo"), "vmcoreinfo");
    }
}

/// `enable_debugcon` (SeaBIOS's log: a socket in the run dir, `isa-debugcon` at 0x402) and
/// `anaconda_log` (a virtio-serial port on a socket), after the serial consoles.
pub(super) fn logs(b: &mut Builder<'_>, v: &VmSpec) {
    let p = &v.platform;
    if p.debugcon {
        if b.caps.has_chardev() && b.caps.has_device_type("isa-debugcon") {
            socket_chardev(b, names::SEABIOS_LOG_ID, names::SEABIOS_LOG_SOCKET);
            let mut o = Opts::new("isa-debugcon");
            o.kv("chardev", names::SEABIOS_LOG_ID).kv("iobase", "0x402");
            b.cmd.push2("-device", o.finish());
        } else {
            let reason = format!("QEMU {} has no isa-debugcon device", b.caps.version);
            b.unsupported(Obj::Vm, "enable_debugcon", reason);
        }
    }
    if p.anaconda_log {
        let machine = v.machine_type.as_deref().unwrap_or("");
        let serial = if machine.contains("-mmio:") {
            "virtio-serial-device"
        } else if machine.starts_with("s390") {
            "virtio-serial-ccw"
        } else {
            "virtio-serial-pci"
        };
        let caps = b.caps;
        let missing = [serial, "virtserialport"]
            .into_iter()
            .find(|d| !caps.has_device_type(d));
        if !caps.has_chardev() || !caps.has_device() || missing.is_some() {
            let reason = format!(
                "QEMU {} has no {} device",
                caps.version,
                missing.unwrap_or("-chardev/-device")
            );
            b.unsupported(Obj::Vm, "anaconda_log", reason);
            return;
        }
        socket_chardev(b, names::ANACONDA_LOG_ID, names::ANACONDA_LOG_SOCKET);
        let vioser = "anacondalog_vioser";
        let mut o = Opts::new(serial);
        o.kv("id", vioser);
        if serial == "virtio-serial-pci" {
            if let Some(p) = pci::place(b, v, serial, false, Obj::Vm, "anaconda_log") {
                p.add_to(&mut o);
            }
        }
        b.cmd.push2("-device", o.finish());
        let mut o = Opts::new("virtserialport");
        o.kv("bus", &format!("{vioser}.0"))
            .kv("chardev", names::ANACONDA_LOG_ID)
            .kv("name", "org.fedoraproject.anaconda.log.0");
        b.cmd.push2("-device", o.finish());
    }
}

/// `isa_debugexit`: `isa-debug-exit,iobase=…,iosize=…`, after the test device.
pub(super) fn debugexit(b: &mut Builder<'_>, v: &VmSpec) {
    let Some(d) = &v.platform.debugexit else {
        return;
    };
    let mut o = Opts::new("isa-debug-exit");
    o.kv("iobase", &d.iobase).kv("iosize", &d.iosize);
    device(b, "isa_debugexit", o, "isa-debug-exit");
}

/// `enable_sga`: the serial graphics adapter's option ROM.
pub(super) fn sga(b: &mut Builder<'_>, v: &VmSpec) {
    if v.platform.sga {
        device(b, "enable_sga", Opts::new("sga"), "sga");
    }
}
