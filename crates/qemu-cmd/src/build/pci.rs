//! PCI placement: which bus and address each PCI device gets, as avocado-vt hands them out.
//!
//! avocado-vt gives every PCI device an explicit `bus=` and `addr=`, in the order the devices
//! are added to the command line (the order `Builder::all` keeps), so a test that hot-plugs or
//! looks a device up by address finds it where it expects:
//!
//! * **i440fx** (`machine_type` `pc` or containing `i440fx`): one bus, `pci.0`; slots 0 (host
//!   bridge) and 1 (PIIX3, its IDE and PM functions) are the chipset's; every other device
//!   takes the lowest free slot, function 0.
//! * **q35** (`machine_type` containing `q35`): the root complex `pcie.0` (slot 0 the MCH,
//!   slot 0x1f the LPC, AHCI and SMBus functions). Right after the machine comes a
//!   multifunction `pcie-root-port-0` (chassis 1) with a `pcie-pci-bridge-0` behind it.
//!   A PCI Express device (`virtio-*`, `e1000e`, `igb`, `qemu-xhci`, `vfio-pci`,
//!   `vhost-vsock-pci`, `vhost-user-fs-pci`) gets a root port of its own, `pcie-root-port-N`
//!   (`port=N`, next chassis), on the next free function 1–7 of a multifunction root port's
//!   slot, else as function 0 of a new multifunction one; the device sits at `addr=0x0`
//!   behind it. A conventional device is plugged into `pcie.0` directly, except that with
//!   `machine_type = q35` exactly, a device avocado-vt calls legacy (an `e1000` or `rtl8139`
//!   NIC, a disk that is not virtio) goes to the `pcie-pci-bridge-0` (slots 1–31).
//! * `pcie_extra_root_port = N` adds N empty root ports at the end (multifunction in groups of
//!   eight), for hot-plug; `pcie_root_port_params` extends every root port but the first.
//!
//! * `pci_controllers` (avocado-vt's "additional PCI RC/switch/bridges", added right after the
//!   watchdog): each controller goes on its `pci_bus` (the root bus, or an earlier controller)
//!   like a conventional device, root ports with the next chassis number (shared with the
//!   machine's root ports), `pci-bridge` with the next `chassis_nr`. A device whose
//!   `*_pci_bus` (or `pci_bus`) names a controller goes on it: a root port's one slot, a
//!   bridge's lowest free slot (1-31; 1-19 for `i82801b11-bridge`), an `x3130` switch through a
//!   new `xio3130-downstream` port `NAME.SLOT` of its own. avocado-vt's `*_pci_bus` key wins
//!   over q35's legacy bridge; the object's `pci_bus` does not.
//! * avocado-vt's `hook_fill_scsi_hbas`: images of the deprecated `drive_format = scsi` get
//!   their `lsi53c895a` controllers (one per seven) a root slot reserved at that point of the
//!   order, before the controllers; the controllers' HBAs take those slots later.
//!
//! Other machines, an unset `machine_type` and binaries without `-device` are left to QEMU's
//! own placement (no `bus=`/`addr=`).

use std::collections::BTreeSet;

use super::{Builder, Obj, Opts};
use spec::pcic::{BusRequest, PcicKind, PcicSpec};
use spec::vm::VmSpec;

/// Drivers avocado-vt treats as PCI Express (each behind a root port of its own on q35).
fn is_pcie_device(driver: &str) -> bool {
    matches!(
        driver,
        "e1000e" | "vhost-vsock-pci" | "qemu-xhci" | "vfio-pci" | "vhost-user-fs-pci" | "igb"
    ) || driver.starts_with("virtio-")
}

/// The machine's PCI layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// No placement by kvmtest.
    None,
    /// i440fx: `pci.0`.
    I440fx,
    /// q35: `pcie.0` with root ports; `legacy_bridge` when conventional devices go behind the
    /// `pcie-pci-bridge-0` (avocado-vt does it for `machine_type = q35` only).
    Q35 { legacy_bridge: bool },
}

impl Layout {
    /// The layout of the VM's machine on this binary.
    pub(crate) fn of(v: &VmSpec, has_device: bool) -> Layout {
        let Some(m) = v.machine_type.as_deref() else {
            return Layout::None;
        };
        // avocado-vt's `family:machine` spelling (`arm64-pci:virt`) names QEMU's machine last.
        let m = m.rsplit_once(':').map_or(m, |(_, m)| m);
        if !has_device {
            Layout::None
        } else if m == "pc" || m.contains("i440fx") {
            Layout::I440fx
        } else if m.contains("q35") {
            Layout::Q35 {
                legacy_bridge: m == "q35",
            }
        } else {
            Layout::None
        }
    }
}

/// A PCI address: slot and function.
type Addr = (u8, u8);

/// Where devices are, as the build goes.
#[derive(Debug)]
pub(crate) struct PciState {
    pub(crate) layout: Layout,
    /// Taken addresses of the root bus.
    root: BTreeSet<Addr>,
    /// Slots of the root bus holding a multifunction root port (function 0), in order.
    port_slots: Vec<u8>,
    /// Index of the last `pcie-root-port-N`.
    last_port: u32,
    /// Last chassis number given.
    chassis: u32,
    /// Taken slots of the `pcie-pci-bridge-0`.
    bridge: BTreeSet<u8>,
    /// The root port driver (`pcie-root-port`, else `ioh3420`) and the bridge driver
    /// (`pcie-pci-bridge`, else `pci-bridge`).
    port_driver: &'static str,
    bridge_driver: &'static str,
    /// The buses of `pci_controllers` added so far, in order.
    ctrls: Vec<CtrlBus>,
    /// Last `chassis_nr` given (a `pci-bridge`'s).
    chassis_nr: u32,
    /// Root slots reserved for the deprecated `drive_format = scsi` HBAs, not yet taken.
    lsi_slots: Vec<Addr>,
}

/// The bus of one `pci_controllers` controller.
#[derive(Debug)]
struct CtrlBus {
    /// Its name (the controller's id).
    name: String,
    kind: PcicKind,
    /// Taken (or reserved) slots.
    taken: BTreeSet<u8>,
    /// The first slot and one past the last a device may take.
    first: u8,
    end: u8,
}

/// Where one device goes: `bus=` and `addr=` to add to its `-device`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Place {
    pub(crate) bus: String,
    pub(crate) addr: String,
}

impl Place {
    /// Adds `bus=…,addr=…`.
    pub(crate) fn add_to(&self, o: &mut Opts) {
        o.kv("bus", &self.bus).kv("addr", &self.addr);
    }
}

fn addr_text((slot, func): Addr, dotted: bool) -> String {
    if func != 0 || dotted {
        format!("{slot:#x}.{func:#x}")
    } else {
        format!("{slot:#x}")
    }
}

impl PciState {
    pub(crate) fn new(layout: Layout) -> PciState {
        let root: BTreeSet<Addr> = match layout {
            Layout::None => BTreeSet::new(),
            Layout::I440fx => [(0, 0), (1, 0), (1, 1), (1, 3)].into(),
            Layout::Q35 { .. } => [(0, 0), (0x1f, 0), (0x1f, 2), (0x1f, 3)].into(),
        };
        PciState {
            layout,
            root,
            port_slots: Vec::new(),
            last_port: 0,
            chassis: 0,
            bridge: BTreeSet::new(),
            port_driver: "pcie-root-port",
            bridge_driver: "pcie-pci-bridge",
            ctrls: Vec::new(),
            chassis_nr: 0,
            lsi_slots: Vec::new(),
        }
    }

    fn root_bus(&self) -> &'static str {
        match self.layout {
            Layout::Q35 { .. } => "pcie.0",
            _ => "pci.0",
        }
    }

    fn free_root_slot(&self) -> Option<u8> {
        (0..32u8).find(|s| !self.root.contains(&(*s, 0)))
    }

    fn next_chassis(&mut self) -> String {
        self.chassis += 1;
        self.chassis.to_string()
    }
}

/// The machine's own PCI devices, right after `-machine`: q35's first root port and the PCI
/// bridge behind it.
pub(super) fn machine_devices(b: &mut Builder<'_>) {
    if !matches!(b.pci.layout, Layout::Q35 { .. }) {
        return;
    }
    let port_driver = if b.caps.has_device_type("pcie-root-port") {
        "pcie-root-port"
    } else {
        "ioh3420"
    };
    let bridge_driver = if b.caps.has_device_type("pcie-pci-bridge") {
        "pcie-pci-bridge"
    } else {
        "pci-bridge"
    };
    b.pci.port_driver = port_driver;
    b.pci.bridge_driver = bridge_driver;
    let Some(slot) = b.pci.free_root_slot() else {
        return;
    };
    b.pci.root.insert((slot, 0));
    b.pci.port_slots.push(slot);
    let port_id = format!("{port_driver}-0");
    let mut o = Opts::new(port_driver);
    o.kv("id", &port_id)
        .kv("multifunction", "on")
        .kv("bus", "pcie.0")
        .kv("addr", &addr_text((slot, 0), false));
    let chassis = b.pci.next_chassis();
    o.kv("chassis", &chassis);
    b.cmd.push2("-device", o.finish());
    let mut o = Opts::new(bridge_driver);
    o.kv("id", &format!("{bridge_driver}-0"))
        .kv("addr", "0x0")
        .kv("bus", &port_id);
    b.cmd.push2("-device", o.finish());
}

/// A new root port on the root bus (emitted now); its id.
fn add_root_port(b: &mut Builder<'_>, v: &VmSpec) -> Option<String> {
    // The next free function 1-7 of a multifunction port's slot, in slot order.
    let mut slots = b.pci.port_slots.clone();
    slots.sort_unstable();
    let shared = slots
        .iter()
        .find_map(|&s| (1..8u8).map(|f| (s, f)).find(|a| !b.pci.root.contains(a)));
    let (addr, multifunction) = match shared {
        Some(a) => (a, false),
        None => ((b.pci.free_root_slot()?, 0), true),
    };
    b.pci.root.insert(addr);
    if multifunction {
        b.pci.port_slots.push(addr.0);
    }
    b.pci.last_port += 1;
    let n = b.pci.last_port;
    let id = format!("{}-{n}", b.pci.port_driver);
    let mut o = Opts::new(b.pci.port_driver);
    o.kv("id", &id).kv("port", &format!("{n:#x}"));
    if multifunction {
        o.kv("multifunction", "on");
    }
    o.kv("addr", &addr_text(addr, false)).kv("bus", "pcie.0");
    let chassis = b.pci.next_chassis();
    o.kv("chassis", &chassis);
    o.extra(&v.pci_topology.root_port_params);
    b.cmd.push2("-device", o.finish());
    Some(id)
}

/// Where a PCI device of `driver` goes; emits the root port it needs first. `legacy`: avocado-vt
/// calls it a conventional device (see the module doc). `None` when kvmtest leaves placement
/// to QEMU, or the bus is full (a problem is recorded against `key` of `obj`).
pub(super) fn place(
    b: &mut Builder<'_>,
    v: &VmSpec,
    driver: &str,
    legacy: bool,
    obj: Obj<'_>,
    key: &str,
) -> Option<Place> {
    if b.pci.layout == Layout::None {
        return None;
    }
    if driver == "lsi53c895a" && !b.pci.lsi_slots.is_empty() {
        let a = b.pci.lsi_slots.remove(0);
        return Some(Place {
            bus: b.pci.root_bus().into(),
            addr: addr_text(a, false),
        });
    }
    let own = match obj {
        Obj::Sub(kind, name) => v.pci_buses.request(kind, name).cloned(),
        Obj::Vm => None,
    };
    let q35_legacy = matches!(
        b.pci.layout,
        Layout::Q35 {
            legacy_bridge: true
        }
    ) && legacy;
    // avocado-vt's `_get_pci_bus`: `DTYPE_pci_bus`, then q35's legacy bridge, then `pci_bus`
    // (the object's, else the VM's).
    let (request, obj) = match own {
        Some(r) if r.explicit || !q35_legacy => (Some(r), obj),
        Some(_) => (None, obj),
        None if q35_legacy => (None, obj),
        None => {
            let r = v.pci_buses.default_bus.clone().map(|bus| BusRequest {
                bus: Some(bus),
                explicit: false,
                key: "pci_bus",
            });
            (r, Obj::Vm)
        }
    };
    if let Some(r) = request {
        return match r.bus {
            Some(bus) => place_on(b, &bus, driver, obj, r.key),
            None => place_root(b, v, driver, false, obj, r.key),
        };
    }
    place_root(b, v, driver, legacy, obj, key)
}

/// A device whose object names its bus itself with `pci_bus` (a host device): on that
/// controller, else by the machine's rules (without q35's legacy bridge, as avocado-vt's
/// explicit bus).
pub(super) fn place_requested(
    b: &mut Builder<'_>,
    v: &VmSpec,
    bus: Option<&str>,
    driver: &str,
    obj: Obj<'_>,
) -> Option<Place> {
    if b.pci.layout == Layout::None {
        return None;
    }
    match bus {
        Some(bus) => place_on(b, bus, driver, obj, "pci_bus"),
        None => place_root(b, v, driver, false, obj, "pci_bus"),
    }
}

/// A device avocado-vt places by bus type rather than by name (`{"type": "PCIE"}` on q35,
/// `{"type": "PCI"}` elsewhere: a virtio-fs device): on the latest controller of that type
/// with a free slot (root ports and switches are PCI Express, bridges conventional PCI), else
/// by the machine's rules.
pub(super) fn place_by_type(
    b: &mut Builder<'_>,
    v: &VmSpec,
    driver: &str,
    obj: Obj<'_>,
    key: &str,
) -> Option<Place> {
    let pcie = matches!(b.pci.layout, Layout::Q35 { .. });
    let latest = b.pci.ctrls.iter().rev().find(|c| {
        let c_pcie = matches!(
            c.kind,
            PcicKind::RootPort | PcicKind::Upstream | PcicKind::Switch
        );
        c_pcie == pcie && (c.first..c.end).any(|s| !c.taken.contains(&s))
    });
    match latest.map(|c| c.name.clone()) {
        Some(bus) => place_on(b, &bus, driver, obj, key),
        None => place_root(b, v, driver, false, obj, key),
    }
}

/// A device asked for a PCI bus where kvmtest leaves placement to QEMU: named, not dropped.
fn no_placement(b: &mut Builder<'_>, obj: Obj<'_>, key: &str) {
    b.unsupported(
        obj,
        key,
        "kvmtest places devices on a named PCI bus on a pc/i440fx or q35 machine \
         (`machine_type`) with `-device` only"
            .into(),
    );
}

/// [`place`] by the machine's rules (the root bus, q35's root ports and legacy bridge).
fn place_root(
    b: &mut Builder<'_>,
    v: &VmSpec,
    driver: &str,
    legacy: bool,
    obj: Obj<'_>,
    key: &str,
) -> Option<Place> {
    let place = match b.pci.layout {
        Layout::None => return None,
        Layout::Q35 { legacy_bridge } if legacy && legacy_bridge => {
            let slot = (1..32u8).find(|s| !b.pci.bridge.contains(s));
            slot.map(|s| {
                b.pci.bridge.insert(s);
                Place {
                    bus: format!("{}-0", b.pci.bridge_driver),
                    addr: addr_text((s, 0), false),
                }
            })
        }
        Layout::Q35 { .. } if is_pcie_device(driver) => add_root_port(b, v).map(|bus| Place {
            bus,
            addr: "0x0".into(),
        }),
        Layout::Q35 { .. } | Layout::I440fx => b.pci.free_root_slot().map(|s| {
            b.pci.root.insert((s, 0));
            Place {
                bus: b.pci.root_bus().into(),
                addr: addr_text((s, 0), false),
            }
        }),
    };
    if place.is_none() {
        b.unsupported(
            obj,
            key,
            format!("no free PCI slot is left for a {driver} device"),
        );
    }
    place
}

/// Where a PCI device plugged into the root bus itself goes: the next free slot of `pci.0`, or
/// of `pcie.0` on q35 even for a PCI Express device (avocado-vt's `pcie_direct_plug`, which its
/// virtio-iommu-pci asks for). `None` without placement, or when the bus is full (a problem on
/// `key` of `obj`).
pub(super) fn place_on_root(
    b: &mut Builder<'_>,
    driver: &str,
    obj: Obj<'_>,
    key: &str,
) -> Option<Place> {
    if b.pci.layout == Layout::None {
        return None;
    }
    let Some(s) = b.pci.free_root_slot() else {
        b.unsupported(
            obj,
            key,
            format!("no free PCI slot is left for a {driver} device"),
        );
        return None;
    };
    b.pci.root.insert((s, 0));
    Some(Place {
        bus: b.pci.root_bus().into(),
        addr: addr_text((s, 0), false),
    })
}

/// A device on the bus `bus` names (`*_pci_bus`): a controller of `pci_controllers`, or q35's
/// `pcie-pci-bridge-0`.
fn place_on(
    b: &mut Builder<'_>,
    bus: &str,
    driver: &str,
    obj: Obj<'_>,
    key: &str,
) -> Option<Place> {
    let legacy_bridge = format!("{}-0", b.pci.bridge_driver);
    if matches!(b.pci.layout, Layout::Q35 { .. }) && bus == legacy_bridge {
        let slot = (1..32u8).find(|s| !b.pci.bridge.contains(s));
        if let Some(s) = slot {
            b.pci.bridge.insert(s);
            return Some(Place {
                bus: legacy_bridge,
                addr: addr_text((s, 0), false),
            });
        }
        b.unsupported(
            obj,
            key,
            format!("no free slot is left on {bus} for a {driver}"),
        );
        return None;
    }
    let Some(i) = b.pci.ctrls.iter().position(|c| c.name == bus) else {
        b.unsupported(
            obj,
            key,
            format!(
                "no PCI bus {bus:?}: neither the root bus (`pci.0`) nor a controller of \
                 `pci_controllers` added before it"
            ),
        );
        return None;
    };
    let c = &mut b.pci.ctrls[i];
    let Some(slot) = (c.first..c.end).find(|s| !c.taken.contains(s)) else {
        b.unsupported(
            obj,
            key,
            format!("no free slot is left on {bus} for a {driver}"),
        );
        return None;
    };
    c.taken.insert(slot);
    if c.kind != PcicKind::Switch {
        return Some(Place {
            bus: bus.to_string(),
            addr: addr_text((slot, 0), false),
        });
    }
    // An x3130 switch: a downstream port of the device's own at that slot.
    let port = format!("{bus}.{slot}");
    let mut o = Opts::new("xio3130-downstream");
    o.kv("id", &port)
        .kv("bus", bus)
        .kv("addr", &addr_text((slot, 0), false));
    let chassis = b.pci.next_chassis();
    o.kv("chassis", &chassis);
    b.cmd.push2("-device", o.finish());
    Some(Place {
        bus: port,
        addr: "0x0".into(),
    })
}

/// `pci_controllers`, at avocado-vt's "additional PCI RC/switch/bridges" point (after the
/// watchdog), preceded by the slots its `hook_fill_scsi_hbas` reserves there.
pub(super) fn controllers(b: &mut Builder<'_>, v: &VmSpec) {
    if b.pci.layout == Layout::None {
        // Every bus asked for is named once here, where placement is left to QEMU.
        if v.pci_buses.default_bus.is_some() {
            no_placement(b, Obj::Vm, "pci_bus");
        }
        for (kind, name, r) in &v.pci_buses.requests {
            if r.bus.is_some() {
                no_placement(b, Obj::Sub(kind, name), r.key);
            }
        }
        for h in v.hostdevs.iter().filter(|h| h.pci_bus.is_some()) {
            no_placement(b, Obj::Sub("hostdev", &h.name), "pci_bus");
        }
        if !v.pci_buses.controllers.is_empty() {
            b.unsupported(
                Obj::Vm,
                "pci_controllers",
                "kvmtest places PCI controllers on a pc/i440fx or q35 machine (`machine_type`) \
                 with `-device` only"
                    .into(),
            );
        }
        return;
    }
    let old_scsi = v
        .images
        .iter()
        .filter(|i| i.interface == Some(spec::types::DiskInterface::Scsi))
        .count();
    for _ in 0..old_scsi.div_ceil(7) {
        if let Some(s) = b.pci.free_root_slot() {
            b.pci.root.insert((s, 0));
            b.pci.lsi_slots.push((s, 0));
        }
    }
    for c in &v.pci_buses.controllers {
        controller(b, c);
    }
}

/// One controller: placed on its parent bus, its own bus registered.
fn controller(b: &mut Builder<'_>, c: &PcicSpec) {
    let obj = Obj::Sub("pcic", &c.name);
    let driver = if c.kind == PcicKind::Switch {
        "x3130-upstream"
    } else {
        c.driver.as_str()
    };
    if !b.caps.has_device_type(driver) {
        let reason = format!("QEMU {} has no {driver} device", b.caps.version);
        b.unsupported(obj, "type", reason);
        return;
    }
    if b.pci.ctrls.iter().any(|x| x.name == c.name) {
        b.unsupported(
            obj,
            "type",
            format!("a second PCI controller named {:?}", c.name),
        );
        return;
    }
    let place = match &c.parent {
        None => b.pci.free_root_slot().map(|s| {
            b.pci.root.insert((s, 0));
            if driver == b.pci.port_driver && matches!(b.pci.layout, Layout::Q35 { .. }) {
                // avocado-vt shares a root port's free functions with later ports.
                b.pci.port_slots.push(s);
            }
            Place {
                bus: b.pci.root_bus().into(),
                addr: addr_text((s, 0), false),
            }
        }),
        Some(parent) => {
            let parent = parent.clone();
            place_on(b, &parent, driver, obj, "pci_bus")
        }
    };
    let Some(place) = place else {
        if c.parent.is_none() {
            b.unsupported(
                obj,
                "type",
                format!("no free root slot is left for {}", c.name),
            );
        }
        return;
    };
    let mut o = Opts::new(driver);
    o.kv("id", &c.name);
    place.add_to(&mut o);
    match c.kind {
        PcicKind::RootPort => {
            let chassis = b.pci.next_chassis();
            o.kv("chassis", &chassis);
        }
        PcicKind::PciBridge => {
            b.pci.chassis_nr += 1;
            o.kv("chassis_nr", &b.pci.chassis_nr.to_string());
        }
        _ => {}
    }
    b.cmd.push2("-device", o.finish());
    let (first, end) = match c.kind {
        PcicKind::RootPort => (0, 1),
        PcicKind::PciBridge | PcicKind::PciePciBridge => (1, 32),
        PcicKind::DmiBridge => (1, 20),
        PcicKind::Upstream | PcicKind::Switch | PcicKind::Other => (0, 32),
    };
    let mut taken: BTreeSet<u8> = c.reserved.iter().copied().collect();
    if c.kind == PcicKind::PciePciBridge {
        taken.insert(0);
    }
    b.pci.ctrls.push(CtrlBus {
        name: c.name.clone(),
        kind: c.kind,
        taken,
        first,
        end,
    });
}

/// Marks the next free root slot taken by a device QEMU places itself (`-vga TYPE`).
pub(super) fn reserve_next(b: &mut Builder<'_>) {
    if b.pci.layout != Layout::None {
        if let Some(s) = b.pci.free_root_slot() {
            b.pci.root.insert((s, 0));
        }
    }
}

/// A device at a fixed address of the root bus (`addr` as avocado-vt writes it: `1d.7`,
/// `0x3`); `None` without placement or when the address is taken or malformed (a problem).
pub(super) fn place_at(b: &mut Builder<'_>, addr: &str, obj: Obj<'_>, key: &str) -> Option<Place> {
    if b.pci.layout == Layout::None {
        return None;
    }
    let hex = |t: &str| u8::from_str_radix(t.trim_start_matches("0x"), 16).ok();
    let parsed = match addr.split_once('.') {
        Some((s, f)) => hex(s).zip(hex(f)),
        None => hex(addr).map(|s| (s, 0)),
    };
    match parsed {
        Some(a @ (slot, func)) if slot < 32 && func < 8 && !b.pci.root.contains(&a) => {
            b.pci.root.insert(a);
            Some(Place {
                bus: b.pci.root_bus().into(),
                addr: addr_text(a, addr.contains('.')),
            })
        }
        Some(a) if b.pci.root.contains(&a) => {
            b.unsupported(obj, key, format!("PCI address {addr} is already taken"));
            None
        }
        _ => {
            b.unsupported(
                obj,
                key,
                format!("{addr:?} is not a PCI address (slot 0-1f, function 0-7)"),
            );
            None
        }
    }
}

/// `pcie_extra_root_port`: empty root ports at the end, for hot-plug.
pub(super) fn extra_root_ports(b: &mut Builder<'_>, v: &VmSpec) {
    let n = v.pci_topology.extra_root_ports;
    if n == 0 {
        return;
    }
    if !matches!(b.pci.layout, Layout::Q35 { .. }) {
        b.unsupported(
            Obj::Vm,
            "pcie_extra_root_port",
            "PCI Express root ports need a q35 machine (`machine_type`)".into(),
        );
        return;
    }
    let mut slot = None;
    for num in 0..n {
        let func = u8::try_from(num % 8).unwrap_or(0);
        if func == 0 {
            slot = b.pci.free_root_slot();
        }
        let Some(s) = slot else {
            b.unsupported(
                Obj::Vm,
                "pcie_extra_root_port",
                format!("no free slot is left on pcie.0 for extra root port {num}"),
            );
            return;
        };
        b.pci.root.insert((s, func));
        let mut o = Opts::new(b.pci.port_driver);
        o.kv("id", &format!("pcie_extra_root_port_{num}"));
        if func == 0 {
            o.kv("multifunction", "on");
        }
        o.kv("bus", "pcie.0")
            .kv("addr", &addr_text((s, func), false));
        let chassis = b.pci.next_chassis();
        o.kv("chassis", &chassis);
        o.extra(&v.pci_topology.root_port_params);
        b.cmd.push2("-device", o.finish());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_written_as_avocado_writes_them() {
        assert_eq!(addr_text((3, 0), false), "0x3");
        assert_eq!(addr_text((0x1d, 7), false), "0x1d.0x7");
        assert_eq!(addr_text((0x1d, 0), true), "0x1d.0x0");
    }

    #[test]
    fn pcie_devices_are_avocados_list() {
        for d in [
            "virtio-net-pci",
            "virtio-blk-pci",
            "qemu-xhci",
            "e1000e",
            "igb",
            "virtio-vga",
        ] {
            assert!(is_pcie_device(d), "{d}");
        }
        for d in [
            "e1000",
            "rtl8139",
            "VGA",
            "lsi53c895a",
            "ich9-usb-ehci1",
            "nec-usb-xhci",
        ] {
            assert!(!is_pcie_device(d), "{d}");
        }
    }
}
