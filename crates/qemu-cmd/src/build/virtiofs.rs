//! `filesystems`: each virtio-fs export as avocado-vt renders it, after the disks — a socket
//! chardev `char_virtiofs_NAME` connecting to virtiofsd (the `vm` crate's, on a socket in the run
//! dir; or the user's own, `fs_source_user_sock_path`) and the `vhost-user-fs` device
//! `vufs_virtiofs_NAME` with the mount tag and `fs_driver_props`, placed as avocado-vt places
//! it: by bus type, on the latest controller of the machine's kind of PCI (a bridge on
//! i440fx, a root port on q35) with a free slot, else as a PCI Express device.

use super::{pci, Builder, Obj, Opts};
use crate::names;
use spec::filesystem::FsDaemon;
use spec::vm::VmSpec;

/// `filesystems`.
pub(super) fn filesystems(b: &mut Builder<'_>, v: &VmSpec) {
    let machine = v.machine_type.as_deref().unwrap_or_default();
    let driver = if machine.contains("-mmio:") {
        "vhost-user-fs-device"
    } else if machine.starts_with("s390") {
        "vhost-user-fs-ccw"
    } else {
        "vhost-user-fs-pci"
    };
    if !v.filesystems.is_empty() && !memory_shared(v) {
        b.unsupported(
            Obj::Vm,
            "filesystems",
            "virtio-fs needs guest memory virtiofsd can map: `vm_mem_backend = \
             memory-backend-memfd` (or -file) with `vm_mem_share = yes`, or NUMA nodes on \
             `mem_devs` with `share_mem = yes` (avocado-vt leaves it to the config; QEMU starts \
             without it and the export does not work)"
                .into(),
        );
        return;
    }
    for f in &v.filesystems {
        let obj = Obj::Sub("filesystem", &f.name);
        if !b.caps.has_device_type(driver) {
            let reason = format!("QEMU {} has no {driver} device", b.caps.version);
            b.unsupported(obj, "fs_driver", reason);
            continue;
        }
        let chardev = format!("char_virtiofs_{}", f.name);
        let mut o = Opts::new("socket");
        o.kv("id", &chardev);
        match &f.daemon {
            FsDaemon::Virtiofsd(_) => o.kv_with("path", |w| {
                b.run_file(w, &names::virtiofsd_socket(&f.name), true);
            }),
            FsDaemon::User { socket } => o.kv("path", socket),
        };
        b.cmd.push2("-chardev", o.finish());
        let mut o = Opts::new(driver);
        o.kv("id", &format!("vufs_virtiofs_{}", f.name))
            .kv("chardev", &chardev)
            .kv("tag", &f.target);
        o.pairs(&f.driver_props);
        if driver == "vhost-user-fs-pci" {
            if let Some(p) = pci::place_by_type(b, v, driver, obj, "fs_driver") {
                p.add_to(&mut o);
            }
        }
        b.cmd.push2("-device", o.finish());
    }
}

/// Whether all guest memory is in fd-backed shared backends (what vhost-user needs): the
/// machine backend (memfd or file, `vm_mem_share` on), or, with NUMA nodes, every node's
/// `mem_devs` backend shared.
fn memory_shared(v: &VmSpec) -> bool {
    let on = |s: Option<&str>| matches!(s, Some("yes" | "on" | "true"));
    let m = &v.memory;
    if m.numa_nodes.is_empty() {
        let backend = match &m.hugepages {
            Some(_) => "memory-backend-file",
            None => m.machine.backend.as_deref().unwrap_or("memory-backend-ram"),
        };
        return backend != "memory-backend-ram" && on(m.machine.share.as_deref());
    }
    m.numa_nodes.iter().all(|n| {
        n.mem.is_none()
            && n.memdev.as_deref().is_some_and(|id| {
                m.devs.iter().any(|d| {
                    format!("mem-{}", d.name) == id
                        && d.object.backend != "memory-backend-ram"
                        && on(d
                            .object
                            .props
                            .iter()
                            .find(|(k, _)| *k == "share")
                            .map(|(_, v)| v.as_str()))
                })
            })
    })
}
