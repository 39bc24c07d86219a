//! Disks and CD-ROMs, in the syntax of the binary's era and with avocado-vt's ids and places.
//!
//! * No `-device`: `-drive file=…,if=…,index=…,cache=…,werror=…,serial=…,snapshot=on,boot=on`
//!   (`boot=on` only where `-drive` lists it), CD-ROMs as `-drive …,media=cdrom` or `-cdrom`.
//! * `-device` without `-blockdev` (or a disk with `image_snapshot`, which only `-drive` can
//!   do): `-drive …,if=none,id=drive_NAME` plus `-device MODEL,drive=drive_NAME`.
//! * `-blockdev`: a protocol node `file_NAME` and a format node `drive_NAME` per disk, plus
//!   `-device MODEL,id=NAME`; `drive_cache` becomes `cache.direct`/`cache.no-flush` on both
//!   nodes and the device's `write-cache`, as avocado-vt maps it (`nodes.rs`).
//! * avocado-vt's network and device image backends (`enable_nbd`, `enable_gluster`,
//!   `enable_ceph`, `enable_iscsi`, `enable_curl`, `enable_ssh`, `enable_nvme`, `storage_type =
//!   vhost-vdpa`/`vhost-user-blk`): the protocol node is the backend's driver (`nbd_NAME`,
//!   `rbd_NAME`…) with its secrets as `-object`s, or `-drive file=URI,file.…` (`remote.rs`).
//!
//! `drive_format` picks the model and its bus (`bus.rs`): `ide` → `ide-hd` on the IDE bus,
//! `ahci` → `ide-hd` on an AHCI port (q35's built-in controller, else an added `ahci`),
//! `virtio` → `virtio-blk-pci` at the next PCI place, `scsi-hd`/`scsi-block`/`scsi-generic`
//! (and the deprecated `scsi`) behind the image's `scsi_hba` (one HBA per model and
//! `drive_bus`, ids `virtio_scsi_pci0`…, as avocado-vt's), `usb1`/`usb2`/`usb3` →
//! `usb-storage` on a UHCI/EHCI/XHCI bus, `nvme` → an `nvme` controller (its `drive_serial` is
//! the controller's serial), `floppy` → a `floppy` drive (or `-global isa-fdc.driveA=` before
//! QEMU 5.1), `sd` → an `sd-card` behind an added `sdhci-pci` (x86 machines have no SD bus of
//! their own; avocado-vt renders a `-device sd` QEMU rejects).

mod bus;
mod cdrom;
mod nodes;
mod remote;

pub(super) use bus::BlockState;
pub(super) use cdrom::cdroms;

use super::{pci, Builder, Obj, Opts};
use crate::names::DiskIds;
use spec::types::{DiskInterface, DriveCache};
use spec::vm::{ImageBackend, ImageSpec, VmSpec};

/// avocado-vt's cache map: (`cache.direct`, `cache.no-flush`, the device's `write-cache`).
pub(super) fn cache_items(c: DriveCache) -> (&'static str, &'static str, &'static str) {
    match c {
        DriveCache::Writeback => ("off", "off", "on"),
        DriveCache::None => ("on", "off", "on"),
        DriveCache::Writethrough => ("off", "off", "off"),
        DriveCache::Directsync => ("on", "off", "off"),
        DriveCache::Unsafe => ("off", "on", "on"),
    }
}

/// The cache mode and aio of a disk after avocado-vt's adjustments: `native` aio on an image
/// snapshot falls back to `threads`; `native` aio needs O_DIRECT, so a cache mode without it
/// becomes `none`.
pub(super) fn cache_and_aio(img: &ImageSpec) -> (Option<DriveCache>, Option<&str>) {
    let mut aio = img.attach.aio.as_deref();
    if aio == Some("native") && img.snapshot {
        aio = Some("threads");
    }
    let cache = match (aio, img.cache) {
        // An NVMe controller has no write cache setting: avocado-vt forces writethrough.
        _ if matches!(img.backend, ImageBackend::Nvme(_)) => Some(DriveCache::Writethrough),
        (Some("native"), Some(DriveCache::None | DriveCache::Directsync)) => img.cache,
        (Some("native"), Some(_)) => Some(DriveCache::None),
        _ => img.cache,
    };
    (cache, aio)
}

/// Every image of `images`.
pub(super) fn images(b: &mut Builder<'_>, v: &VmSpec) {
    for (i, img) in v.images.iter().enumerate() {
        let obj = Obj::Sub("image", &img.name);
        if !b.caps.has_device() {
            nodes::legacy_drive(b, img);
            continue;
        }
        let itf = img.interface.unwrap_or(DiskInterface::Ide);
        let model = img
            .attach
            .force_model
            .clone()
            .unwrap_or_else(|| crate::names::disk_model(itf).to_string());
        if !b.caps.has_device_type(&model) {
            let key = if img.attach.force_model.is_some() {
                "force_drive_format"
            } else {
                "drive_format"
            };
            b.unsupported(
                obj,
                key,
                format!("QEMU {} has no {model} device", b.caps.version),
            );
            continue;
        }
        if itf == DiskInterface::Nvme && img.serial.is_none() {
            b.unsupported(
                obj,
                "drive_serial",
                "an nvme controller needs a serial number (QEMU refuses one without)".into(),
            );
            continue;
        }
        let ids = DiskIds::of(&img.name, i);
        let blockdev = b.caps.has_blockdev() && !img.snapshot;
        // A network or device backend: its secrets first, then its nodes.
        let remote = match img.backend {
            ImageBackend::File => None,
            _ => match remote::protocol(b, img, blockdev) {
                Some(p) => Some(p),
                None => continue,
            },
        };
        // The bus first: an HBA or controller it needs is added before the disk's nodes.
        let Some(place) = bus::attach(b, v, img, itf, &model) else {
            continue;
        };
        if blockdev {
            nodes::blockdev(b, img, &ids, itf, remote.as_ref());
        } else if v.throttle.group_of(&img.name).is_some() {
            // avocado-vt drops the group of a `-drive` disk without a word.
            b.unsupported(
                obj,
                "image_throttle_group",
                "a throttle group limits a `-blockdev` graph: this disk is a `-drive` \
                 (`image_snapshot = yes`, or a QEMU without -blockdev)"
                    .into(),
            );
            continue;
        } else {
            nodes::drive_none(b, img, &ids.node, remote.as_ref());
        }
        if itf == DiskInterface::Floppy && !b.caps.has_device_type("floppy") {
            // Before QEMU 5.1 the floppy controller's drives were properties.
            let unit = if img.attach.unit == Some(1) { "B" } else { "A" };
            b.cmd.push2(
                "-global",
                crate::cmd::Word::from(format!("isa-fdc.drive{unit}={}", ids.node).as_str()),
            );
            continue;
        }
        let mut o = Opts::new(&model);
        o.kv("id", &ids.device).kv("drive", &ids.node);
        place.add_to(&mut o);
        for (k, val) in &img.attach.block_sizes {
            o.kv(k, val);
        }
        if let Some(idx) = boot_index(b, img) {
            o.kv("bootindex", &idx);
        }
        let (cache, _) = cache_and_aio(img);
        if blockdev {
            // avocado-vt leaves a host-device node's write cache alone.
            let host_device = nodes::is_host_device_node(img, itf);
            if let Some(c) = cache.filter(|_| !host_device) {
                o.kv("write-cache", cache_items(c).2);
            }
            if model != "scsi-generic" {
                if let Some(w) = img.werror {
                    o.kv("werror", w.as_str());
                }
                if let Some(r) = img.rerror {
                    o.kv("rerror", r.as_str());
                }
            }
        }
        if let Some(s) = img.serial.as_deref() {
            o.kv("serial", s);
        }
        if model == "virtio-blk-pci" {
            if let Some(on) = img.attach.virtio_scsi {
                o.kv("scsi", if on { "on" } else { "off" });
            }
            if let Some(n) = img.attach.num_queues {
                o.kv("num-queues", &n.to_string());
            }
            if let Some(t) = &img.attach.iothread {
                if super::devices::check_iothread(b, v, t, obj) {
                    o.kv("iothread", t);
                }
            }
        }
        if matches!(
            model.as_str(),
            "scsi-hd" | "scsi-block" | "scsi-generic" | "usb-storage"
        ) {
            if let Some(on) = img.attach.removable {
                o.kv("removable", if on { "on" } else { "off" });
            }
        }
        o.extra(&img.attach.blk_extra);
        b.cmd.push2("-device", o.finish());
    }
}

/// The disk's `bootindex`: `bootindex` as given, else the next boot index for an `image_boot`
/// disk (0 first, 1 when a kernel boots directly), as avocado-vt counts them.
fn boot_index(b: &mut Builder<'_>, img: &ImageSpec) -> Option<String> {
    let counted = img.boot.then(|| {
        let n = b.block.next_boot_index(b.spec_has_kernel);
        n.to_string()
    });
    img.attach.bootindex.clone().or(counted)
}

/// Where a device is, as `key=value` items for its `-device`.
#[derive(Debug, Default)]
pub(super) struct Place(Vec<(&'static str, String)>);

impl Place {
    pub(super) fn push(&mut self, key: &'static str, value: impl Into<String>) {
        self.0.push((key, value.into()));
    }

    pub(super) fn pci(&mut self, p: Option<pci::Place>) {
        if let Some(p) = p {
            self.push("bus", p.bus);
            self.push("addr", p.addr);
        }
    }

    pub(super) fn add_to(&self, o: &mut Opts) {
        for (k, val) in &self.0 {
            o.kv(k, val);
        }
    }
}
