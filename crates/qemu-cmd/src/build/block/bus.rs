//! Where a disk's device goes: the IDE bus, an AHCI port, a SCSI HBA, a USB bus, a PCI place,
//! the floppy controller, an SD host. Controllers a disk needs (the added `ahci`, SCSI HBAs,
//! `sdhci-pci`) are emitted on first use, before the disk's own nodes, as avocado-vt orders
//! them.

use super::{Builder, Obj, Opts, Place};
use crate::build::{pci, usb};
use spec::types::{CdromInterface, DiskInterface};
use spec::vm::{ImageSpec, VmSpec};

/// The id of the AHCI controller added on machines without a built-in one.
const AHCI_ID: &str = "ahci0";

/// Ports of an AHCI controller.
const AHCI_PORTS: u32 = 6;

/// The id of the SD host controller added for `sd` disks.
const SDHCI_ID: &str = "sdhci0";

/// One SCSI HBA: its model, id and the SCSI ids its disks took.
#[derive(Debug)]
struct Hba {
    model: String,
    id: String,
    /// Its index among the HBAs of its model (avocado-vt's `drive_bus`).
    index: u32,
    taken: u32,
}

/// The block family's state through one build.
#[derive(Debug, Default)]
pub(crate) struct BlockState {
    /// IDE indexes in use (filled on the first IDE device; `u32::MAX` marks it filled).
    ide_taken: Vec<u32>,
    /// Whether the added AHCI controller was emitted.
    ahci_added: bool,
    /// Ports of the added AHCI controller in use.
    ahci_taken: Vec<u32>,
    /// SCSI HBAs, in creation order.
    hbas: Vec<Hba>,
    /// Whether the SD host controller was emitted.
    sdhci_added: bool,
    /// The next boot index (`None`: not started).
    boot_index: Option<u32>,
}

impl BlockState {
    /// The next boot index: 0 first (1 when a kernel boots directly), then counting up.
    pub(crate) fn next_boot_index(&mut self, kernel: bool) -> u32 {
        let n = self.boot_index.unwrap_or(u32::from(kernel));
        self.boot_index = Some(n + 1);
        n
    }
}

/// Whether the machine is a q35 (its ICH9 has the AHCI controller built in, bus `ide`): the
/// PCI layout's reading of `machine_type`, the one place that decides it.
fn is_q35(b: &Builder<'_>) -> bool {
    matches!(b.pci.layout, pci::Layout::Q35 { .. })
}

/// Where disk `img` of interface `itf` (device `model`) goes; `None` (with a problem) when it
/// cannot be placed.
pub(super) fn attach(
    b: &mut Builder<'_>,
    v: &VmSpec,
    img: &ImageSpec,
    itf: DiskInterface,
    model: &str,
) -> Option<Place> {
    let obj = Obj::Sub("image", &img.name);
    let mut place = Place::default();
    match itf {
        DiskInterface::Ide => ide_position(b, v, &mut place, img.index),
        DiskInterface::Ahci => {
            if !ahci_position(b, v, &mut place, img.index, obj, "drive_format") {
                return None;
            }
        }
        DiskInterface::Scsi
        | DiskInterface::ScsiHd
        | DiskInterface::ScsiBlock
        | DiskInterface::ScsiGeneric => {
            let a = &img.attach;
            let iothread = match &a.iothread {
                Some(t) if a.scsi_hba.contains("virtio") => {
                    if !crate::build::devices::check_iothread(b, v, t, obj) {
                        return None;
                    }
                    Some(t.as_str())
                }
                _ => None,
            };
            // `scsi` (avocado-vt's deprecated form, `if=scsi`): the HBA QEMU's `if=scsi` adds.
            let model = if itf == DiskInterface::Scsi {
                "lsi53c895a"
            } else {
                a.scsi_hba.as_str()
            };
            // avocado-vt places the HBA as a PCIe device when the disk's `scsi_hba` is virtio.
            let legacy = !a.scsi_hba.contains("virtio");
            let hba = scsi_hba(
                b,
                v,
                model,
                legacy,
                a.bus,
                &a.bus_extra,
                a.num_queues,
                iothread,
                obj,
                "scsi_hba",
            )?;
            place.push("bus", format!("{hba}.0"));
            if let Some(u) = a.unit {
                place.push("scsi-id", u.to_string());
            }
            if let Some(p) = a.port {
                place.push("lun", p.to_string());
            }
        }
        DiskInterface::Virtio | DiskInterface::VirtioBlkPci => match &img.attach.pci_addr {
            Some(addr) => place.pci(pci::place_at(b, addr, obj, "drive_pci_addr")),
            None => place.pci(pci::place(b, v, model, false, obj, "drive_format")),
        },
        DiskInterface::Usb1 | DiskInterface::Usb2 | DiskInterface::Usb3 => {
            let kind = match itf {
                DiskInterface::Usb1 => "uhci",
                DiskInterface::Usb2 => "ehci",
                _ => "xhci",
            };
            let (bus, port) = usb::take_port(b, kind, img.attach.unit, obj, "drive_format")?;
            place.push("bus", bus);
            place.push("port", port);
        }
        // Not virtio: a conventional PCI place (q35's bridge), as avocado-vt's disks.
        DiskInterface::Nvme => place.pci(pci::place(b, v, model, true, obj, "drive_format")),
        DiskInterface::Floppy => {
            if let Some(u) = img.attach.unit {
                place.push("unit", u.to_string());
            }
        }
        DiskInterface::Sd => {
            if b.block.sdhci_added {
                // QEMU names every SD host's bus `sd-bus`: a second card could not be placed.
                b.unsupported(
                    obj,
                    "drive_format",
                    "only one sd disk per VM: QEMU names every SD host's bus `sd-bus`".into(),
                );
                return None;
            }
            {
                if !b.caps.has_device_type("sdhci-pci") {
                    b.unsupported(
                        obj,
                        "drive_format",
                        format!(
                            "QEMU {} has no sdhci-pci, the SD host an x86 machine needs",
                            b.caps.version
                        ),
                    );
                    return None;
                }
                let mut o = Opts::new("sdhci-pci");
                o.kv("id", SDHCI_ID);
                if let Some(p) = pci::place(b, v, "sdhci-pci", true, obj, "drive_format") {
                    p.add_to(&mut o);
                }
                b.cmd.push2("-device", o.finish());
                b.block.sdhci_added = true;
            }
            place.push("bus", "sd-bus");
        }
    }
    Some(place)
}

/// Places an IDE device: its `drive_index`, else the first index no IDE device of the VM asked
/// for or was given (QEMU's own placement of bus-less IDE devices collides with explicit ones).
/// On a PC machine index N is `bus=ide.(N/2),unit=(N%2)`; on q35's AHCI each bus has one unit.
pub(super) fn ide_position(b: &mut Builder<'_>, v: &VmSpec, place: &mut Place, index: Option<u32>) {
    if b.block.ide_taken.is_empty() {
        let explicit: Vec<u32> = v
            .images
            .iter()
            .filter(|i| {
                matches!(
                    i.interface.unwrap_or(DiskInterface::Ide),
                    DiskInterface::Ide
                )
            })
            .filter_map(|i| i.index)
            .chain(
                v.cdroms
                    .iter()
                    .filter(|c| c.interface == CdromInterface::Ide)
                    .filter_map(|c| c.index),
            )
            .collect();
        b.block.ide_taken.extend(explicit);
        b.block.ide_taken.push(u32::MAX);
    }
    let i = first_free(&mut b.block.ide_taken, index);
    if is_q35(b) {
        place.push("bus", format!("ide.{i}"));
        place.push("unit", "0");
    } else {
        place.push("bus", format!("ide.{}", i / 2));
        place.push("unit", (i % 2).to_string());
    }
}

/// `index` as given, else the first index not in `taken` (then taken).
fn first_free(taken: &mut Vec<u32>, index: Option<u32>) -> u32 {
    index.unwrap_or_else(|| {
        let free = (0..).find(|n| !taken.contains(n)).unwrap_or(0);
        taken.push(free);
        free
    })
}

/// Places a device on an AHCI port: on q35 the built-in controller's (shared with IDE devices,
/// see [`ide_position`]); elsewhere the added controller's, emitted before its first device —
/// `drive_index`, else the first free port. False (and a problem on `key` of `obj`) when this
/// QEMU has no `ahci` device or the port does not exist.
pub(super) fn ahci_position(
    b: &mut Builder<'_>,
    v: &VmSpec,
    place: &mut Place,
    index: Option<u32>,
    obj: Obj<'_>,
    key: &str,
) -> bool {
    if is_q35(b) {
        ide_position(b, v, place, index);
        return true;
    }
    if !b.block.ahci_added {
        if !b.caps.has_device_type("ahci") {
            b.unsupported(
                obj,
                key,
                format!("QEMU {} has no ahci device", b.caps.version),
            );
            return false;
        }
        let mut c = Opts::new("ahci");
        c.kv("id", AHCI_ID);
        if let Some(p) = pci::place(b, v, "ahci", true, obj, key) {
            p.add_to(&mut c);
        }
        b.cmd.push2("-device", c.finish());
        b.block.ahci_added = true;
        let explicit: Vec<u32> = v
            .images
            .iter()
            .filter(|i| i.interface == Some(DiskInterface::Ahci))
            .filter_map(|i| i.index)
            .chain(
                v.cdroms
                    .iter()
                    .filter(|c| c.interface == CdromInterface::Ahci)
                    .filter_map(|c| c.index),
            )
            .collect();
        b.block.ahci_taken.extend(explicit);
    }
    let port = first_free(&mut b.block.ahci_taken, index);
    if port >= AHCI_PORTS {
        b.unsupported(
            obj,
            key,
            format!(
                "an AHCI controller has ports 0-{} (drive_index {port})",
                AHCI_PORTS - 1
            ),
        );
        return false;
    }
    place.push("bus", format!("{AHCI_ID}.{port}"));
    true
}

/// The SCSI ids an HBA model offers a disk.
fn hba_capacity(model: &str) -> u32 {
    match model {
        "lsi53c895a" => 7,
        "spapr-vscsi" => 64,
        _ => 256,
    }
}

/// The HBA a SCSI disk or CD-ROM of HBA `model` goes behind, as avocado-vt picks it: HBA
/// number `bus` of that model when given (creating the missing ones up to it), else the
/// latest one with a free SCSI id, else a new one. HBAs are named after their model
/// (`virtio_scsi_pci0`, `lsi53c895a0`) and placed on PCI (`legacy`: as a conventional PCI
/// device). Its id, or `None` (a problem) when the binary lacks the model.
#[allow(clippy::too_many_arguments)]
pub(super) fn scsi_hba(
    b: &mut Builder<'_>,
    v: &VmSpec,
    model: &str,
    legacy: bool,
    bus: Option<u32>,
    extra: &[(String, Option<String>)],
    num_queues: Option<u32>,
    iothread: Option<&str>,
    obj: Obj<'_>,
    key: &str,
) -> Option<String> {
    if !b.caps.has_device_type(model) {
        b.unsupported(
            obj,
            key,
            format!("QEMU {} has no {model} SCSI controller", b.caps.version),
        );
        return None;
    }
    let cap = hba_capacity(model);
    let of_model = |b: &Builder<'_>| b.block.hbas.iter().filter(|h| h.model == model).count();
    let found = match bus {
        Some(n) => b
            .block
            .hbas
            .iter()
            .position(|h| h.model == model && h.index == n),
        None => b
            .block
            .hbas
            .iter()
            .rposition(|h| h.model == model && h.taken < cap),
    };
    let at = match found {
        Some(i) => i,
        None => {
            let want = bus.unwrap_or_else(|| u32::try_from(of_model(b)).unwrap_or(u32::MAX));
            loop {
                let index = u32::try_from(of_model(b)).unwrap_or(u32::MAX);
                let id = format!("{}{index}", model.replace('-', "_"));
                let mut o = Opts::new(model);
                o.kv("id", &id);
                if model == "virtio-scsi-pci" {
                    if let Some(n) = num_queues.filter(|n| *n > 1) {
                        o.kv("num_queues", &n.to_string());
                    }
                    if let Some(t) = iothread {
                        o.kv("iothread", t);
                    }
                }
                o.extra(extra);
                if let Some(p) = pci::place(b, v, model, legacy, obj, key) {
                    p.add_to(&mut o);
                }
                b.cmd.push2("-device", o.finish());
                b.block.hbas.push(Hba {
                    model: model.to_string(),
                    id,
                    index,
                    taken: 0,
                });
                if index >= want {
                    break b.block.hbas.len() - 1;
                }
            }
        }
    };
    let hba = &mut b.block.hbas[at];
    hba.taken += 1;
    Some(hba.id.clone())
}
