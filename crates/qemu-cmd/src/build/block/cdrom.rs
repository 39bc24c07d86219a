//! CD-ROMs: an ISO read-only on IDE, AHCI or SCSI, with avocado-vt's ids (`NAME`,
//! `drive_NAME`, `file_NAME`).

use super::bus::{ahci_position, ide_position, scsi_hba};
use super::{Builder, Obj, Opts, Place};
use crate::cmd::WordBuf;
use crate::names::DiskIds;
use spec::types::CdromInterface;
use spec::vm::VmSpec;

/// Every CD-ROM with an ISO.
pub(in crate::build) fn cdroms(b: &mut Builder<'_>, v: &VmSpec) {
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
        let hba = if model == "scsi-cd" {
            match scsi_hba(
                b,
                v,
                &v.scsi_hba,
                !v.scsi_hba.contains("virtio"),
                None,
                &[],
                None,
                None,
                Obj::Sub("cdrom", &cd.name),
                "cd_format",
            ) {
                Some(h) => Some(h),
                None => continue,
            }
        } else {
            None
        };
        let ids = DiskIds::of(&cd.name, i);
        let node = ids.node.clone();
        if caps.has_blockdev() {
            // A raw format node over the file, as avocado-vt's graph (QEMU 9.0 on: the file
            // node alone, named `drive_NAME`).
            let format_node = (caps.version.major, caps.version.minor) < (9, 0);
            let file_node = if format_node {
                ids.protocol_node("file")
            } else {
                node.clone()
            };
            let mut o = Opts::new("");
            o.kv("node-name", &file_node).kv("driver", "file");
            o.kv_with("filename", |w| b.path(w, &cd.iso, true));
            o.kv("read-only", "on");
            b.cmd.push2("-blockdev", o.finish());
            if format_node {
                let mut o = Opts::new("");
                o.kv("node-name", &node)
                    .kv("driver", "raw")
                    .kv("read-only", "on");
                o.kv("file", &file_node);
                b.cmd.push2("-blockdev", o.finish());
            }
        } else {
            let mut o = Opts::new("");
            o.kv_with("file", |w| b.path(w, &cd.iso, true));
            o.kv("if", "none").kv("id", &node).kv("media", "cdrom");
            b.cmd.push2("-drive", o.finish());
        }
        let mut o = Opts::new(model);
        o.kv("id", &ids.device);
        o.kv("drive", &node);
        if let Some(hba) = &hba {
            o.kv("bus", &format!("{hba}.0"));
        } else if cd.interface == CdromInterface::Ahci {
            let obj = Obj::Sub("cdrom", &cd.name);
            let mut place = Place::default();
            if !ahci_position(b, v, &mut place, cd.index, obj, "cd_format") {
                continue;
            }
            place.add_to(&mut o);
        } else {
            let mut place = Place::default();
            ide_position(b, v, &mut place, cd.index);
            place.add_to(&mut o);
        }
        b.cmd.push2("-device", o.finish());
    }
}
