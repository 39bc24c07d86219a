//! USB controllers and devices, as avocado-vt adds them (after the serial ports, before the
//! disks, so their PCI slots come first).
//!
//! * A controller is `-device usb_type,id=NAME,…` with `multifunction`, `masterbus`,
//!   `firstport`, `freq` as given, at `pci_addr` or the next free PCI place. `ich9-usb-ehci1`
//!   is avocado-vt's ICH9 set: the EHCI at `1d.7` (multifunction) and its three UHCI companions
//!   `NAME.0`–`NAME.2` at `1d.0`, `1d.2`, `1d.4` (`masterbus=NAME.0`, `firstport` 0, 2, 4).
//! * A device is `-device usbdev_type,id=usb-NAME,bus=…,port=…`: `usbdev_bus`, else the bus of
//!   the first controller of `usb_controller`'s kind; `usbdev_port`, else the bus's next free
//!   port (1 to `max_ports`).
//! * Binaries without `-device`: one `-usb`, and `-usbdevice tablet` for a tablet; any other
//!   device is a problem (avocado-vt logs and drops it).

use super::{pci, Builder, Obj, Opts};
use crate::cmd::Word;
use spec::usb::UsbControllerSpec;
use spec::vm::VmSpec;

/// Whether controller model `model` is of kind `kind` (uhci, ehci, ohci, xhci).
fn is_kind(model: &str, kind: &str) -> bool {
    model.contains(kind)
}

/// Every controller and device.
/// A USB bus of an emitted controller: its name (`NAME.0`), the controller's model, the
/// ports taken and how many there are.
#[derive(Debug)]
pub(crate) struct UsbBus {
    name: String,
    model: String,
    taken: Vec<u32>,
    max: u32,
}

/// A port on the first bus of a controller of `kind` (uhci, ehci, ohci, xhci): `port` when
/// given, else the next free one; `(bus, port)`, or `None` with a problem on `key` of `obj`.
pub(super) fn take_port(
    b: &mut Builder<'_>,
    kind: &str,
    port: Option<u32>,
    obj: Obj<'_>,
    key: &str,
) -> Option<(String, String)> {
    let Some(at) = b.usb_buses.iter().position(|u| is_kind(&u.model, kind)) else {
        b.unsupported(
            obj,
            key,
            format!("no {kind} USB controller is among `usbs`"),
        );
        return None;
    };
    take_on(b, at, port.map(|p| p.to_string()), obj, key)
}

/// A port on bus number `at`: `port` as given, else the next free one.
fn take_on(
    b: &mut Builder<'_>,
    at: usize,
    port: Option<String>,
    obj: Obj<'_>,
    key: &str,
) -> Option<(String, String)> {
    let bus = &mut b.usb_buses[at];
    let port = match port {
        Some(p) => {
            if let Ok(n) = p.parse::<u32>() {
                bus.taken.push(n);
            }
            p
        }
        None => match (1..=bus.max).find(|n| !bus.taken.contains(n)) {
            Some(n) => {
                bus.taken.push(n);
                n.to_string()
            }
            None => {
                let why = format!("all {} ports of USB bus {} are taken", bus.max, bus.name);
                b.unsupported(obj, key, why);
                return None;
            }
        },
    };
    Some((b.usb_buses[at].name.clone(), port))
}

/// Every controller and device.
pub(super) fn usb(b: &mut Builder<'_>, v: &VmSpec) {
    if v.usb.controllers.is_empty() && v.usb.devices.is_empty() {
        return;
    }
    if !b.caps.has_device() {
        legacy(b, v);
        return;
    }
    for c in &v.usb.controllers {
        if controller(b, v, c) {
            b.usb_buses.push(UsbBus {
                name: format!("{}.0", c.name),
                model: c.model.clone(),
                taken: Vec::new(),
                max: c.max_ports,
            });
        }
    }
    for d in &v.usb.devices {
        let obj = Obj::Sub("usb_device", &d.name);
        if !b.caps.has_device_type(&d.model) {
            b.unsupported(
                obj,
                "usbdev_type",
                format!("QEMU {} has no {} device", b.caps.version, d.model),
            );
            continue;
        }
        let buses = &b.usb_buses;
        let bus = match (&d.bus, &d.controller) {
            (Some(bus), _) => buses.iter().position(|u| &u.name == bus),
            (None, Some(kind)) => buses.iter().position(|u| is_kind(&u.model, kind)),
            (None, None) => (!buses.is_empty()).then_some(0),
        };
        let Some(bus) = bus else {
            let (key, what) = match (&d.bus, &d.controller) {
                (Some(bus), _) => ("usbdev_bus", format!("no USB controller has bus {bus}")),
                (None, Some(kind)) => (
                    "usb_controller",
                    format!("no {kind} controller is among `usbs`"),
                ),
                (None, None) => ("usbdev_type", "the VM has no USB controller".into()),
            };
            b.unsupported(obj, key, what);
            continue;
        };
        let Some((bus_name, port)) = take_on(b, bus, d.port.clone(), obj, "usbdev_bus") else {
            continue;
        };
        let mut o = Opts::new(&d.model);
        o.kv("id", &format!("usb-{}", d.name))
            .kv("bus", &bus_name)
            .kv("port", &port);
        for (k, val) in &d.props {
            o.kv(k, val);
        }
        b.cmd.push2("-device", o.finish());
    }
}

/// One controller (and its companions); false when it could not be added.
fn controller(b: &mut Builder<'_>, v: &VmSpec, c: &UsbControllerSpec) -> bool {
    let obj = Obj::Sub("usb", &c.name);
    if !b.caps.has_device_type(&c.model) {
        b.unsupported(
            obj,
            "usb_type",
            format!("QEMU {} has no {} USB controller", b.caps.version, c.model),
        );
        return false;
    }
    let ich9 = c.model == "ich9-usb-ehci1";
    let mut o = Opts::new(&c.model);
    o.kv("id", &c.name);
    for (k, val) in &c.props {
        if !(ich9 && *k == "multifunction") {
            o.kv(k, val);
        }
    }
    let place = if ich9 {
        o.kv("multifunction", "on");
        pci::place_at(b, "1d.7", obj, "usb_type")
    } else if let Some(addr) = &c.pci_addr {
        pci::place_at(b, addr, obj, "pci_addr")
    } else {
        pci::place(b, v, &c.model, false, obj, "usb_type")
    };
    if let Some(p) = place {
        p.add_to(&mut o);
    }
    b.cmd.push2("-device", o.finish());
    if ich9 {
        for i in 0..3u8 {
            let model = format!("ich9-usb-uhci{}", i + 1);
            let mut o = Opts::new(&model);
            o.kv("id", &format!("{}.{i}", c.name))
                .kv("multifunction", "on")
                .kv("masterbus", &format!("{}.0", c.name))
                .kv("firstport", &(2 * i).to_string());
            if let Some(p) = pci::place_at(b, &format!("1d.{}", 2 * i), obj, "usb_type") {
                p.add_to(&mut o);
            }
            b.cmd.push2("-device", o.finish());
        }
    }
    true
}

/// `-usb` and `-usbdevice tablet` of binaries without `-device`.
fn legacy(b: &mut Builder<'_>, v: &VmSpec) {
    if !b.caps.has_option("usb") {
        if let Some(c) = v.usb.controllers.first() {
            b.unsupported(
                Obj::Sub("usb", &c.name),
                "usb_type",
                format!("QEMU {} has neither -device nor -usb", b.caps.version),
            );
        }
        return;
    }
    b.cmd.flag("-usb");
    for d in &v.usb.devices {
        if d.model.contains("tablet") && b.caps.has_option("usbdevice") {
            b.cmd.push2("-usbdevice", Word::from("tablet"));
        } else {
            b.unsupported(
                Obj::Sub("usb_device", &d.name),
                "usbdev_type",
                format!(
                    "QEMU {} has no -device; its -usbdevice makes only a tablet here",
                    b.caps.version
                ),
            );
        }
    }
}
