//! Disks and CD-ROMs, in the syntax of the binary's era.
//!
//! * No `-device`: `-drive file=…,if=…,index=…,cache=…,werror=…,serial=…,snapshot=on,boot=on`
//!   (`boot=on` only where `-drive` lists it), CD-ROMs as `-drive …,media=cdrom` or `-cdrom`.
//! * `-device` without `-blockdev` (or a disk with `image_snapshot`, which only `-drive` can
//!   do): `-drive …,if=none,id=drive-NAME` plus `-device MODEL,drive=drive-NAME`.
//! * `-blockdev`: a protocol node and a format node per disk, plus `-device`; the cache mode
//!   becomes `cache.direct`/`cache.no-flush` and the device's `write-cache`.
//!
//! `drive_format` picks the model: `ide` → `ide-hd`, `scsi`/`scsi-hd` → `scsi-hd` behind one
//! `scsi_hba`, `virtio`/`virtio-blk-pci` → `virtio-blk-pci`, `ahci` → `ide-hd` on an AHCI port
//! (as `cd_format = ahci` puts `ide-cd` there): on q35 the ICH9's built-in controller, whose
//! ports are the buses `ide.0`–`ide.5` shared with `ide` devices; elsewhere one added
//! `-device ahci,id=ahci0`, ports `ahci0.0`–`ahci0.5`. avocado-vt places them the same way.

use super::{pci, qemu_id, Builder, Obj, Opts};
use crate::cmd::WordBuf;
use spec::types::{CdromInterface, DiskInterface, DriveCache, ImageFormat};
use spec::vm::{ImageSpec, VmSpec};

/// The SCSI HBA's id (one per VM, added before the first SCSI disk or CD-ROM).
const HBA_ID: &str = "scsi-hba0";

/// The id of the AHCI controller added on machines without a built-in one.
const AHCI_ID: &str = "ahci0";

/// Ports of an AHCI controller.
const AHCI_PORTS: u32 = 6;

/// Whether the machine is a q35 (its ICH9 has the AHCI controller built in, bus `ide`).
fn is_q35(v: &VmSpec) -> bool {
    v.machine_type
        .as_deref()
        .is_some_and(|m| m == "q35" || m.starts_with("pc-q35"))
}

/// Every image of `images`.
pub(super) fn images(b: &mut Builder<'_>, v: &VmSpec) {
    for (i, img) in v.images.iter().enumerate() {
        if let Some(key) = img.backend.key() {
            b.unsupported(
                Obj::Sub("image", &img.name),
                key,
                format!(
                    "the {} image backend is not built by kvmtest yet (a local file in its \
                     place would be wrong)",
                    img.backend.as_str()
                ),
            );
            continue;
        }
        if !b.caps.has_device() {
            legacy_drive(b, img);
            continue;
        }
        let model = match img.interface.unwrap_or(DiskInterface::Ide) {
            DiskInterface::Ide | DiskInterface::Ahci => "ide-hd",
            DiskInterface::Scsi | DiskInterface::ScsiHd => "scsi-hd",
            DiskInterface::Virtio | DiskInterface::VirtioBlkPci => "virtio-blk-pci",
        };
        if !b.caps.has_device_type(model) {
            b.unsupported(
                Obj::Sub("image", &img.name),
                "drive_format",
                format!("QEMU {} has no {model} device", b.caps.version),
            );
            continue;
        }
        if model == "scsi-hd" && !scsi_hba(b, v) {
            continue;
        }
        let ids = crate::names::DiskIds::of(&img.name, i);
        if b.caps.has_blockdev() && !img.snapshot {
            blockdev(b, img, &ids);
        } else {
            drive_none(b, img, &ids.node);
        }
        let mut o = Opts::new(model);
        o.kv("id", &ids.device);
        o.kv("drive", &ids.node);
        if model == "scsi-hd" {
            o.kv("bus", &format!("{HBA_ID}.0"));
        }
        if model == "virtio-blk-pci" {
            let obj = Obj::Sub("image", &img.name);
            if let Some(p) = pci::place(b, v, model, false, obj, "drive_format") {
                p.add_to(&mut o);
            }
        }
        if img.interface == Some(DiskInterface::Ahci) {
            let obj = Obj::Sub("image", &img.name);
            if !ahci_position(b, v, &mut o, img.index, obj, "drive_format") {
                continue;
            }
        } else if model == "ide-hd" {
            ide_position(b, v, &mut o, img.index);
        }
        if b.caps.has_blockdev() && !img.snapshot {
            if let Some(DriveCache::Writethrough | DriveCache::Directsync) = img.cache {
                o.kv("write-cache", "off");
            }
            if let Some(w) = img.werror {
                o.kv("werror", w.as_str());
            }
            if let Some(r) = img.rerror {
                o.kv("rerror", r.as_str());
            }
        }
        if let Some(s) = img.serial.as_deref() {
            o.kv("serial", s);
        }
        if img.boot {
            o.kv("bootindex", "0");
        }
        b.cmd.push2("-device", o.finish());
    }
}

/// Places an IDE device: its `drive_index`, else the first index no IDE device of the VM asked
/// for or was given (QEMU's own placement of bus-less IDE devices collides with explicit ones).
/// On a PC machine index N is `bus=ide.(N/2),unit=(N%2)`; on q35's AHCI each bus has one unit.
fn ide_position(b: &mut Builder<'_>, v: &VmSpec, o: &mut Opts, index: Option<u32>) {
    if b.ide_taken.is_empty() {
        let explicit = v
            .images
            .iter()
            .filter(|i| {
                b.caps.has_device()
                    && matches!(
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
            );
        b.ide_taken.extend(explicit);
        b.ide_taken.push(u32::MAX);
    }
    let i = place(&mut b.ide_taken, index);
    if is_q35(v) {
        o.kv("bus", &format!("ide.{i}"));
    } else {
        o.kv("bus", &format!("ide.{}", i / 2));
        o.kv("unit", &(i % 2).to_string());
    }
}

/// `index` as given, else the first index not in `taken` (then taken).
fn place(taken: &mut Vec<u32>, index: Option<u32>) -> u32 {
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
fn ahci_position(
    b: &mut Builder<'_>,
    v: &VmSpec,
    o: &mut Opts,
    index: Option<u32>,
    obj: Obj<'_>,
    key: &str,
) -> bool {
    if is_q35(v) {
        ide_position(b, v, o, index);
        return true;
    }
    if !b.ahci_added {
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
        b.ahci_added = true;
        let explicit = v
            .images
            .iter()
            .filter(|i| i.interface == Some(DiskInterface::Ahci))
            .filter_map(|i| i.index)
            .chain(
                v.cdroms
                    .iter()
                    .filter(|c| c.interface == CdromInterface::Ahci)
                    .filter_map(|c| c.index),
            );
        b.ahci_taken.extend(explicit);
    }
    let port = place(&mut b.ahci_taken, index);
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
    o.kv("bus", &format!("{AHCI_ID}.{port}"));
    true
}

/// Adds the SCSI HBA once; false (and a problem) when this QEMU lacks it.
fn scsi_hba(b: &mut Builder<'_>, v: &VmSpec) -> bool {
    if b.hba_added {
        return true;
    }
    if !b.caps.has_device_type(&v.scsi_hba) {
        b.unsupported(
            Obj::Vm,
            "scsi_hba",
            format!("QEMU {} has no such SCSI controller", b.caps.version),
        );
        return false;
    }
    let mut o = Opts::new(&v.scsi_hba);
    o.kv("id", HBA_ID);
    // avocado-vt: a virtio HBA is a PCI Express device, any other a conventional one.
    let legacy = !v.scsi_hba.contains("virtio");
    if let Some(p) = pci::place(b, v, &v.scsi_hba, legacy, Obj::Vm, "scsi_hba") {
        p.add_to(&mut o);
    }
    b.cmd.push2("-device", o.finish());
    b.hba_added = true;
    true
}

/// The file of an image: `image_name.format` under the plan's image dir, or the raw device as
/// is.
fn image_file(b: &Builder<'_>, w: &mut WordBuf, img: &ImageSpec) {
    if img.raw_device {
        w.esc(img.image_name.as_bytes());
    } else {
        b.path_under(&b.images, w, &img.file_name(), true);
    }
}

/// The seed's `-drive file=…` with every option in the drive itself.
fn legacy_drive(b: &mut Builder<'_>, img: &ImageSpec) {
    if img.format == ImageFormat::Luks {
        b.unsupported(
            Obj::Sub("image", &img.name),
            "image_format",
            format!("QEMU {} cannot open luks images", b.caps.version),
        );
        return;
    }
    if img.interface == Some(DiskInterface::Ahci) {
        b.unsupported(
            Obj::Sub("image", &img.name),
            "drive_format",
            format!(
                "QEMU {} has no -device, which an AHCI disk needs",
                b.caps.version
            ),
        );
        return;
    }
    if !b.caps.has_drive() {
        b.unsupported(
            Obj::Sub("image", &img.name),
            "image_name",
            format!("QEMU {} has no -drive", b.caps.version),
        );
        return;
    }
    let mut o = Opts::new("");
    o.kv_with("file", |w| image_file(b, w, img));
    if let Some(i) = img.index {
        o.kv("index", &i.to_string());
    }
    if let Some(itf) = img.interface {
        let name = match itf {
            DiskInterface::Ide | DiskInterface::Ahci => "ide",
            DiskInterface::Scsi | DiskInterface::ScsiHd => "scsi",
            DiskInterface::Virtio | DiskInterface::VirtioBlkPci => "virtio",
        };
        o.kv("if", name);
    }
    if b.caps.has_drive_option("format") {
        o.kv("format", img.format.as_str());
    }
    if let Some(c) = img.cache {
        o.kv("cache", c.as_str());
    }
    if let Some(w) = img.werror {
        o.kv("werror", w.as_str());
    }
    if let Some(r) = img.rerror {
        if b.caps.has_drive_option("rerror") {
            o.kv("rerror", r.as_str());
        }
    }
    if let Some(s) = img.serial.as_deref() {
        o.kv("serial", s);
    }
    if img.snapshot {
        o.kv("snapshot", "on");
    }
    if img.boot && b.caps.has_drive_option("boot") {
        o.kv("boot", "on");
    }
    if img.readonly {
        o.kv("readonly", "on");
    }
    b.cmd.push2("-drive", o.finish());
}

/// `-drive …,if=none,id=NODE` for a `-device` to attach to.
/// For a `luks` image, the `-object secret` holding `image_secret` (avocado-vt's form); its id.
fn luks_secret(b: &mut Builder<'_>, img: &ImageSpec, node: &str) -> Option<String> {
    if img.format != ImageFormat::Luks {
        return None;
    }
    let secret = img.secret.as_deref()?;
    if !b.caps.has_option("object") {
        b.unsupported(
            Obj::Sub("image", &img.name),
            "image_format",
            format!("QEMU {} has no -object for a luks key", b.caps.version),
        );
        return None;
    }
    let id = format!("secret-{node}");
    let mut o = Opts::new("secret");
    o.kv("id", &id).kv("data", secret);
    b.cmd.push2("-object", o.finish());
    Some(id)
}

fn drive_none(b: &mut Builder<'_>, img: &ImageSpec, node: &str) {
    let secret = luks_secret(b, img, node);
    let mut o = Opts::new("");
    o.kv_with("file", |w| image_file(b, w, img));
    o.kv("if", "none").kv("id", node);
    o.kv("format", img.format.as_str());
    if let Some(id) = &secret {
        o.kv("key-secret", id);
    }
    if let Some(c) = img.cache {
        o.kv("cache", c.as_str());
    }
    if let Some(w) = img.werror {
        o.kv("werror", w.as_str());
    }
    if let Some(r) = img.rerror {
        o.kv("rerror", r.as_str());
    }
    if img.snapshot {
        o.kv("snapshot", "on");
    }
    if img.readonly {
        o.kv("readonly", "on");
    }
    b.cmd.push2("-drive", o.finish());
}

/// The protocol and format `-blockdev` nodes of one disk.
fn blockdev(b: &mut Builder<'_>, img: &ImageSpec, ids: &crate::names::DiskIds) {
    let node = ids.node.as_str();
    let secret = luks_secret(b, img, node);
    let file_node = ids.file_node.clone();
    let (direct, no_flush) = match img.cache {
        Some(DriveCache::None | DriveCache::Directsync) => (true, false),
        Some(DriveCache::Unsafe) => (false, true),
        _ => (false, false),
    };
    let cache = |o: &mut Opts| {
        if direct {
            o.kv("cache.direct", "on");
        }
        if no_flush {
            o.kv("cache.no-flush", "on");
        }
    };
    let mut o = Opts::new("");
    o.kv(
        "driver",
        if img.raw_device {
            "host_device"
        } else {
            "file"
        },
    );
    o.kv_with("filename", |w| image_file(b, w, img));
    o.kv("node-name", &file_node);
    cache(&mut o);
    if img.readonly {
        o.kv("read-only", "on");
    }
    b.cmd.push2("-blockdev", o.finish());
    let mut o = Opts::new("");
    o.kv("driver", img.format.as_str());
    o.kv("file", &file_node);
    o.kv("node-name", node);
    if let Some(id) = &secret {
        o.kv("key-secret", id);
    }
    cache(&mut o);
    if img.readonly {
        o.kv("read-only", "on");
    }
    b.cmd.push2("-blockdev", o.finish());
}

/// Every CD-ROM with an ISO.
pub(super) fn cdroms(b: &mut Builder<'_>, v: &VmSpec) {
    for (i, cd) in v.cdroms.iter().enumerate() {
        let caps = b.caps;
        if !caps.has_device() && cd.interface == CdromInterface::Ahci {
            b.unsupported(
                Obj::Sub("cdrom", &cd.name),
                "cd_format",
                format!(
                    "QEMU {} has no -device, which an AHCI CD-ROM needs",
                    caps.version
                ),
            );
            continue;
        }
        if !caps.has_device() {
            if caps.has_drive() {
                let mut o = Opts::new("");
                o.kv_with("file", |w| b.path(w, &cd.iso, true));
                o.kv("media", "cdrom");
                if let Some(i) = cd.index {
                    o.kv("index", &i.to_string());
                }
                b.cmd.push2("-drive", o.finish());
            } else {
                let mut w = WordBuf::new();
                b.path(&mut w, &cd.iso, false);
                b.cmd.push2("-cdrom", w.finish());
            }
            continue;
        }
        let model = match cd.interface {
            CdromInterface::Ide | CdromInterface::Ahci => "ide-cd",
            CdromInterface::ScsiCd => "scsi-cd",
        };
        if !caps.has_device_type(model) {
            b.unsupported(
                Obj::Sub("cdrom", &cd.name),
                "cd_format",
                format!("QEMU {} has no {model} device", caps.version),
            );
            continue;
        }
        if model == "scsi-cd" && !scsi_hba(b, v) {
            continue;
        }
        let node = qemu_id("drive", &cd.name, i);
        if caps.has_blockdev() {
            let file_node = format!("file-{node}");
            let mut o = Opts::new("");
            o.kv("driver", "file");
            o.kv_with("filename", |w| b.path(w, &cd.iso, true));
            o.kv("node-name", &file_node).kv("read-only", "on");
            b.cmd.push2("-blockdev", o.finish());
            let mut o = Opts::new("");
            o.kv("driver", "raw").kv("file", &file_node);
            o.kv("node-name", &node).kv("read-only", "on");
            b.cmd.push2("-blockdev", o.finish());
        } else {
            let mut o = Opts::new("");
            o.kv_with("file", |w| b.path(w, &cd.iso, true));
            o.kv("if", "none").kv("id", &node).kv("media", "cdrom");
            b.cmd.push2("-drive", o.finish());
        }
        let mut o = Opts::new(model);
        o.kv("id", &qemu_id("cd", &cd.name, i));
        o.kv("drive", &node);
        if model == "scsi-cd" {
            o.kv("bus", &format!("{HBA_ID}.0"));
        } else if cd.interface == CdromInterface::Ahci {
            let obj = Obj::Sub("cdrom", &cd.name);
            if !ahci_position(b, v, &mut o, cd.index, obj, "cd_format") {
                continue;
            }
        } else {
            ide_position(b, v, &mut o, cd.index);
        }
        b.cmd.push2("-device", o.finish());
    }
}
