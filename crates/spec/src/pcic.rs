//! The PCI controllers family: `pci_controllers` (root ports, PCI bridges, switches, expander
//! bridges a config adds to the machine's PCI topology) and the keys naming the bus a device
//! goes on (`pci_bus`, `nic_pci_bus`, `disk_pci_bus`), read as avocado-vt reads them
//! (`qemu_vm.add_pci_controllers`, `qcontainer.pcic_by_params`, `VM._get_pci_bus`), with the
//! keys declared here.
//!
//! A controller's `type` is avocado-vt's `type_NAME`, and like avocado-vt kvmtest falls back
//! to the plain `type` when it is unset — which is the test's own type (`boot`): avocado-vt
//! then renders `-device boot`, kvmtest names the key as invalid.

use crate::keys::KeyDoc;
use crate::problem::ProblemKind;
use crate::read::Reader;

/// VM-level keys of this family.
pub const PCIC_VM_KEYS: &[KeyDoc] = &[
    KeyDoc::optional(
        "pci_controllers",
        "PCI controllers added to the machine (objects with the controller keys), right after \
         the watchdog, as avocado-vt adds them",
    ),
    KeyDoc::with_default(
        "pci_controllers_autosort",
        "yes",
        "yes: controllers in avocado-vt's order of kinds (root ports, switches, bridges; other \
         kinds first), else in `pci_controllers` order; a controller must come after the one \
         its `pci_bus` names",
    ),
];

/// Keys of a PCI controller (`pci_controllers` objects).
pub const PCIC_KEYS: &[KeyDoc] = &[
    KeyDoc::with_default(
        "type",
        "pcie-root-port",
        "the controller: pcie-root-port, ioh3420, x3130-upstream, xio3130-downstream, x3130 \
         (an upstream port whose downstream ports are added per device), pci-bridge, \
         pcie-pci-bridge, i82801b11-bridge, pxb, pxb-pcie (unset `type_NAME`: the test's \
         `type`, as in avocado-vt)",
    ),
    KeyDoc::with_default(
        "pci_bus",
        "pci.0",
        "the bus the controller goes on: the root bus (`pci.0`) or an earlier controller",
    ),
    KeyDoc::optional(
        "reserved_slots",
        "slots of the controller's own bus no device is given (`0x1 0x2`)",
    ),
];

/// The keys naming the bus of each kind of object placed on PCI (avocado-vt's
/// `_get_pci_bus(params, DTYPE)`: `DTYPE_pci_bus`, then the object's `pci_bus`): kind, table.
pub const PCI_BUS_KEYS: &[(&str, &str, &[KeyDoc])] = &[
    ("nic", "nics", NIC_BUS_KEYS),
    ("image", "images", IMAGE_BUS_KEYS),
    ("cdrom", "cdroms", CDROM_BUS_KEYS),
    ("rng", "virtio_rngs", RNG_BUS_KEYS),
    ("usb", "usbs", USB_BUS_KEYS),
    ("balloon", "balloon", BALLOON_BUS_KEYS),
];

/// `pci_bus` of an object: the bus it goes on unless its own `*_pci_bus` says otherwise.
const OBJ_PCI_BUS: KeyDoc = KeyDoc::with_default(
    "pci_bus",
    "pci.0",
    "the PCI bus the object's device goes on (`pci.0`: placed as the machine places it; a \
     `pci_controllers` name: on that controller) when its `*_pci_bus` is unset; on a \
     `machine_type = q35` a conventional device goes behind `pcie-pci-bridge-0` first",
);

/// Keys of a NIC naming its bus.
pub const NIC_BUS_KEYS: &[KeyDoc] = &[
    KeyDoc::optional(
        "nic_pci_bus",
        "the PCI bus of the NIC (`pci.0` or a `pci_controllers` name), before any other rule",
    ),
    OBJ_PCI_BUS,
];
/// Keys of an image naming the bus of its device (or of its SCSI controller).
pub const IMAGE_BUS_KEYS: &[KeyDoc] = &[
    KeyDoc::optional(
        "disk_pci_bus",
        "the PCI bus of the disk's device or SCSI controller (`pci.0` or a `pci_controllers` \
         name), before any other rule",
    ),
    OBJ_PCI_BUS,
];
/// Keys of a CD-ROM naming its bus.
pub const CDROM_BUS_KEYS: &[KeyDoc] = &[
    KeyDoc::optional(
        "cdrom_pci_bus",
        "the PCI bus of the CD-ROM's controller (`pci.0` or a `pci_controllers` name)",
    ),
    OBJ_PCI_BUS,
];
/// Keys of a virtio RNG naming its bus.
pub const RNG_BUS_KEYS: &[KeyDoc] = &[
    KeyDoc::optional(
        "vio_rng_pci_bus",
        "the PCI bus of the RNG (`pci.0` or a `pci_controllers` name)",
    ),
    OBJ_PCI_BUS,
];
/// Keys of a USB controller naming its bus.
pub const USB_BUS_KEYS: &[KeyDoc] = &[
    KeyDoc::optional(
        "usbc_pci_bus",
        "the PCI bus of the USB controller (`pci.0` or a `pci_controllers` name)",
    ),
    OBJ_PCI_BUS,
];
/// Keys of a balloon naming its bus.
pub const BALLOON_BUS_KEYS: &[KeyDoc] = &[
    KeyDoc::optional(
        "balloon_pci_bus",
        "the PCI bus of the balloon (`pci.0` or a `pci_controllers` name)",
    ),
    OBJ_PCI_BUS,
];

/// Where an object asked its device to go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusRequest {
    /// The bus: `None` for the root bus (`pci.0`), else a controller's name.
    pub bus: Option<String>,
    /// Whether it came from the object's `*_pci_bus` key (which wins over q35's legacy bridge)
    /// rather than `pci_bus`.
    pub explicit: bool,
    /// The key it came from, for problems.
    pub key: &'static str,
}

/// The family: the controllers and the buses objects asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PciBusesSpec {
    /// `pci_controllers`, in the order they are added.
    pub controllers: Vec<PcicSpec>,
    /// The VM's `pci_bus` when it names a controller: the bus of devices no key places.
    pub default_bus: Option<String>,
    /// Each object's request: (kind, name, request); only objects that asked for something.
    pub requests: Vec<(&'static str, String, BusRequest)>,
}

impl PciBusesSpec {
    /// Reads the family through the VM's reader.
    pub fn read(r: &mut Reader<'_, '_>) -> PciBusesSpec {
        let controllers = read_controllers(r);
        let default_bus = bus_request(r, "pci_bus");
        let mut requests = Vec::new();
        for (kind, list, docs) in PCI_BUS_KEYS {
            let dtype_key = docs[0].key;
            for name in r.objects(list) {
                let mut o = r.child(kind, name);
                let req = if o.str(dtype_key).is_some() {
                    BusRequest {
                        bus: bus_request(&mut o, dtype_key),
                        explicit: true,
                        key: dtype_key,
                    }
                } else {
                    match bus_request(&mut o, "pci_bus") {
                        Some(bus) => BusRequest {
                            bus: Some(bus),
                            explicit: false,
                            key: "pci_bus",
                        },
                        None => continue,
                    }
                };
                requests.push((*kind, name.to_string(), req));
            }
        }
        PciBusesSpec {
            controllers,
            default_bus,
            requests,
        }
    }

    /// What object `kind name` asked for (`None`: nothing, the default placement).
    pub fn request(&self, kind: &str, name: &str) -> Option<&BusRequest> {
        self.requests
            .iter()
            .find(|(k, n, _)| *k == kind && n == name)
            .map(|(_, _, r)| r)
    }
}

/// The kinds of controller avocado-vt knows how to fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PcicKind {
    /// `pcie-root-port` or `ioh3420`: one slot, a chassis number.
    RootPort,
    /// `x3130-upstream`: a switch's upstream port; its downstream ports are controllers too.
    Upstream,
    /// `x3130`: rendered as `x3130-upstream`; each device placed on it gets a new
    /// `xio3130-downstream` port of its own.
    Switch,
    /// `pci-bridge`: slots 1-31, a `chassis_nr`.
    PciBridge,
    /// `pcie-pci-bridge`: slots 1-31.
    PciePciBridge,
    /// `i82801b11-bridge`: slots 1-19.
    DmiBridge,
    /// Any other known controller (`xio3130-downstream`, `pxb`, `pxb-pcie`): slots 0-31.
    Other,
}

impl PcicKind {
    /// The kind of controller driver `driver`, `None` for a driver that is no PCI controller.
    pub fn of(driver: &str) -> Option<PcicKind> {
        Some(match driver {
            "pcie-root-port" | "ioh3420" => PcicKind::RootPort,
            "x3130-upstream" => PcicKind::Upstream,
            "x3130" => PcicKind::Switch,
            "pci-bridge" => PcicKind::PciBridge,
            "pcie-pci-bridge" => PcicKind::PciePciBridge,
            "i82801b11-bridge" => PcicKind::DmiBridge,
            "xio3130-downstream" | "pxb" | "pxb-pcie" => PcicKind::Other,
            _ => return None,
        })
    }
}

/// One PCI controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcicSpec {
    /// Object name: the controller's id and its bus's name.
    pub name: String,
    /// `type`: the driver as written (`x3130` included).
    pub driver: String,
    /// Its kind.
    pub kind: PcicKind,
    /// `pci_bus`: the controller it goes on (`None`: the root bus).
    pub parent: Option<String>,
    /// `reserved_slots`: slot numbers of its own bus kept free.
    pub reserved: Vec<u8>,
}

/// Reads `pci_controllers` (sorted as `pci_controllers_autosort` says) through the VM's reader.
pub fn read_controllers(r: &mut Reader<'_, '_>) -> Vec<PcicSpec> {
    let mut out = Vec::new();
    for name in r.objects("pci_controllers") {
        let mut c = r.child("pcic", name);
        let driver = c.str("type").unwrap_or("pcie-root-port").to_string();
        let Some(kind) = PcicKind::of(&driver) else {
            c.problem(
                "type",
                ProblemKind::Invalid {
                    expected: "a PCI controller (pcie-root-port, ioh3420, x3130-upstream, \
                               xio3130-downstream, x3130, pci-bridge, pcie-pci-bridge, \
                               i82801b11-bridge, pxb, pxb-pcie); with `type_NAME` unset the \
                               test's own `type` applies"
                        .into(),
                },
            );
            continue;
        };
        let parent = bus_request(&mut c, "pci_bus");
        let mut reserved = Vec::new();
        if let Some(text) = c.str("reserved_slots") {
            for word in text.split_whitespace() {
                let hex = word.trim_start_matches("0x");
                match u8::from_str_radix(hex, 16) {
                    Ok(s) if s < 32 => reserved.push(s),
                    _ => {
                        c.problem(
                            "reserved_slots",
                            ProblemKind::Invalid {
                                expected: "PCI slot numbers (0x0-0x1f) separated by spaces".into(),
                            },
                        );
                        break;
                    }
                }
            }
        }
        out.push(PcicSpec {
            name: name.to_string(),
            driver,
            kind,
            parent,
            reserved,
        });
    }
    if r.bool("pci_controllers_autosort", true) {
        // avocado-vt's `sort_key`: kinds it lists in this order, any other kind first (-1);
        // a stable sort keeps the config's order among equals.
        let rank = |d: &str| {
            [
                "pcie-root-port",
                "ioh3420",
                "x3130-upstream",
                "x3130",
                "i82801b11-bridge",
                "pci-bridge",
            ]
            .iter()
            .position(|k| *k == d)
            .map_or(-1, |i| i as i64)
        };
        out.sort_by_key(|c| rank(&c.driver));
    }
    out
}

/// A key naming the PCI bus a device goes on: `None` for unset or the root bus (`pci.0`,
/// avocado-vt's name of `pci.0` and `pcie.0` alike), else the controller's name.
pub fn bus_request(r: &mut Reader<'_, '_>, key: &str) -> Option<String> {
    match r.str(key) {
        None | Some("pci.0") => None,
        Some(bus) => Some(bus.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use crate::test_support::params;
    use crate::VmSpec;

    #[test]
    fn controllers_are_sorted_as_avocado_sorts_them() {
        let p = params(&[
            ("pci_controllers", "br1 sw1 rp1 ds1"),
            ("type_br1", "pci-bridge"),
            ("pci_bus_br1", "rp1"),
            ("type_sw1", "x3130"),
            ("type_rp1", "pcie-root-port"),
            ("type_ds1", "xio3130-downstream"),
            ("reserved_slots_br1", "0x1 2"),
        ]);
        let spec = VmSpec::new(&p, "vm1").unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<&str> = spec
            .pci_buses
            .controllers
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(names, ["ds1", "rp1", "sw1", "br1"]);
        let br1 = &spec.pci_buses.controllers[3];
        assert_eq!(br1.parent.as_deref(), Some("rp1"));
        assert_eq!(br1.reserved, [1, 2]);
        let p = params(&[
            ("pci_controllers", "br1 rp1"),
            ("type_br1", "pci-bridge"),
            ("pci_controllers_autosort", "no"),
        ]);
        let spec = VmSpec::new(&p, "vm1").unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<&str> = spec
            .pci_buses
            .controllers
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(names, ["br1", "rp1"]);
    }

    #[test]
    fn the_tests_own_type_is_no_controller() {
        let p = params(&[("pci_controllers", "rp1"), ("type", "boot")]);
        let err = VmSpec::new(&p, "vm1").err();
        assert_eq!(
            err.map(|e| e.problems()[0].key.clone()).as_deref(),
            Some("type")
        );
    }
}
