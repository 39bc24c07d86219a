//! Memory and guest NUMA, in avocado-vt's order: `-m` (with `maxmem=`/`slots=`), each
//! `mem_devs` backend object and its DIMM, then the machine's memory backend object (or
//! `-mem-path` for huge pages on binaries without one); after `-smp`, `-numa node` for each
//! guest NUMA node, `-numa dist`, `-numa cpu`.
//!
//! The machine memory backend (`-machine …,memory-backend=mem-machine_mem`) is used, as
//! avocado-vt uses it, when the binary's machine has a `memory-backend` property, `mem` is set
//! and the VM has no `guest_numa_nodes`. What the binary lacks (`-object`, a DIMM device,
//! `-numa` or its `dist`/`cpu` forms since QEMU 2.10, `maxmem=` since 2.1, `-mem-path`, the
//! backend for `vm_mem_*` keys) is a problem naming the key, never a dropped option.

use super::{Builder, Obj, Opts};
use crate::caps::QemuVersion;
use crate::cmd::Word;
use spec::memory::{MemObject, MACHINE_MEM_ID};
use spec::vm::VmSpec;

/// The id of the machine's memory backend, when the machine uses one (`-machine`'s
/// `memory-backend=`).
pub(super) fn machine_backend(b: &Builder<'_>, v: &VmSpec) -> Option<&'static str> {
    let used = v.mem.is_some()
        && b.caps.machine_properties.contains("memory-backend")
        && b.caps.has_option("object")
        && v.memory.numa_nodes.is_empty()
        && !extra_mem_path(v);
    used.then_some(MACHINE_MEM_ID)
}

/// Whether `extra_params` gives `-mem-path`/`-mem-prealloc` itself (avocado-vt's `hugepages`
/// variant adds `-mem-path /mnt/kvm_hugepage` there). QEMU refuses those together with the
/// machine memory backend, so the VM's memory is then the plain `-m` that option backs, the
/// form avocado-vt used before the machine backend existed.
fn extra_mem_path(v: &VmSpec) -> bool {
    v.extra_params
        .iter()
        .any(|w| w == "-mem-path" || w == "-mem-prealloc")
}

fn object(b: &mut Builder<'_>, o: &MemObject, id: &str) {
    let mut w = Opts::new(&o.backend);
    for (k, val) in &o.props {
        w.kv(k, val);
    }
    w.kv("id", id);
    b.cmd.push2("-object", w.finish());
}

/// `-m`, memory devices, the machine memory backend or `-mem-path`.
pub(super) fn memory(b: &mut Builder<'_>, v: &VmSpec) {
    let m = &v.memory;
    let caps = b.caps;
    if let Some(mem) = v.mem {
        let mut o = Opts::new(&mem.mib().to_string());
        if let Some(maxmem) = &m.maxmem {
            if caps.version < QemuVersion::new(2, 1, 0) {
                b.unsupported(
                    Obj::Sub("mem", "mem"),
                    "maxmem",
                    format!("QEMU {} has no -m maxmem=", caps.version),
                );
            }
            o.kv("maxmem", maxmem);
            if let Some(slots) = &m.slots {
                o.kv("slots", slots);
            }
        }
        b.cmd.push2("-m", o.finish());
    }
    if !m.devs.is_empty() && !caps.has_option("object") {
        b.unsupported(
            Obj::Vm,
            "mem_devs",
            format!("QEMU {} has no -object", caps.version),
        );
    } else {
        for d in &m.devs {
            let memdev = format!("mem-{}", d.name);
            object(b, &d.object, &memdev);
            let Some(dimm) = &d.dimm else { continue };
            if !caps.has_device_type(dimm.driver) {
                let key = if dimm.driver == "nvdimm" {
                    "nv_backend"
                } else {
                    "vm_memdev_model"
                };
                b.unsupported(
                    Obj::Sub("mem_dev", &d.name),
                    key,
                    format!("QEMU {} has no {} device", caps.version, dimm.driver),
                );
                continue;
            }
            let mut props = dimm.props.clone();
            match props.iter_mut().find(|(k, _)| k == "memdev") {
                Some(slot) => slot.1.clone_from(&memdev),
                None => props.push(("memdev".into(), memdev)),
            }
            let mut w = Opts::new(dimm.driver);
            for (k, val) in &props {
                w.kv(k, val);
            }
            b.cmd.push2("-device", w.finish());
        }
    }
    if let Some(mem) = v.mem.filter(|_| machine_backend(b, v).is_some()) {
        let o = m.machine.object(mem.mib(), m.hugepages.as_deref());
        object(b, &o, MACHINE_MEM_ID);
        return;
    }
    if m.numa_nodes.is_empty() && extra_mem_path(v) {
        for key in m.machine.keys_set() {
            b.unsupported(
                Obj::Vm,
                key,
                "extra_params gives -mem-path, which QEMU refuses with the machine memory \
                 backend this key configures"
                    .into(),
            );
        }
        return;
    }
    if m.numa_nodes.is_empty() {
        for key in m.machine.keys_set() {
            b.unsupported(
                Obj::Vm,
                key,
                format!(
                    "QEMU {} has no machine memory backend (-machine memory-backend=)",
                    caps.version
                ),
            );
        }
        if let Some(h) = m.hugepages.as_deref() {
            if caps.has_option("mem-path") {
                b.cmd.push2("-mem-path", Word::from(h));
            } else {
                let key = if v.origin("vm", &v.name, "hugepage_path").is_some() {
                    "hugepage_path"
                } else {
                    "hugepage"
                };
                b.unsupported(
                    Obj::Vm,
                    key,
                    format!("QEMU {} has no -mem-path", caps.version),
                );
            }
        }
    }
}

/// `-numa node`, `-numa dist`, `-numa cpu`.
pub(super) fn numa(b: &mut Builder<'_>, v: &VmSpec) {
    let m = &v.memory;
    let caps = b.caps;
    if m.numa_nodes.is_empty() && m.numa_cpus.is_empty() {
        return;
    }
    if !caps.has_option("numa") {
        let key = if m.numa_nodes.is_empty() {
            "guest_numa_cpus"
        } else {
            "guest_numa_nodes"
        };
        b.unsupported(Obj::Vm, key, format!("QEMU {} has no -numa", caps.version));
        return;
    }
    for n in &m.numa_nodes {
        let mut o = Opts::new("node");
        if let Some(mem) = &n.mem {
            o.kv("mem", mem);
        } else if let Some(memdev) = &n.memdev {
            o.kv("memdev", memdev);
        }
        if let Some(cpus) = &n.cpus {
            for c in cpus.split(',') {
                o.kv("cpus", c.trim());
            }
        }
        if let Some(id) = &n.nodeid {
            o.kv("nodeid", id);
        }
        if let Some(i) = &n.initiator {
            o.kv("initiator", i);
        }
        b.cmd.push2("-numa", o.finish());
    }
    // `-numa dist` and `-numa cpu` arrived together.
    let forms = caps.version >= QemuVersion::new(2, 10, 0);
    for n in &m.numa_nodes {
        let Some(src) = n.nodeid.as_deref().filter(|_| !n.dist.is_empty()) else {
            continue;
        };
        if !forms {
            b.unsupported(
                Obj::Sub("numa_node", &n.name),
                "numa_dist",
                format!("QEMU {} has no -numa dist", caps.version),
            );
            continue;
        }
        for (dst, val) in &n.dist {
            let mut o = Opts::new("dist");
            o.kv("src", src).kv("dst", dst).kv("val", val);
            b.cmd.push2("-numa", o.finish());
        }
    }
    for c in &m.numa_cpus {
        if !forms {
            b.unsupported(
                Obj::Sub("numa_cpu", &c.name),
                "numa_cpu_nodeid",
                format!("QEMU {} has no -numa cpu", caps.version),
            );
            continue;
        }
        let mut o = Opts::new("cpu");
        o.kv("node-id", &c.node);
        for (k, val) in &c.ids {
            o.kv(k, val);
        }
        b.cmd.push2("-numa", o.finish());
    }
}
