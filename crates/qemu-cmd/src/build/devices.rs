//! avocado-vt's other devices: iothreads, virtio RNGs, the 9p export, balloons and OVMF's
//! pflash, each at avocado-vt's position and with a PCI place like every PCI device.
//!
//! * `iothreads`: `-object iothread,id=NAME[,poll-max-ns=]`, before the disks that name them
//!   (`image_iothread`).
//! * `virtio_rngs`: the backend `-object rng-builtin|rng-random|rng-egd,id=rng-NAME` (rng-egd
//!   with its `-chardev socket,id=chardev-rng-NAME`) and `-device virtio-rng-pci,rng=…`; ids
//!   are the object's name (avocado-vt draws random ones).
//! * `9p_export_dir`: `-fsdev local|handle|proxy,id=local1,…` and
//!   `-device virtio-9p-pci,fsdev=local1,mount_tag=autotest_tag`.
//! * `balloon`: `-device virtio-balloon-pci` with its options, or `-balloon virtio`.
//! * `ovmf_path`: the code file read-only and the VM's own copy of the variable store (the
//!   `vm` crate copies `ovmf_vars_filename` into the run dir as `names::OVMF_VARS_FILE`) as
//!   `-blockdev` nodes `drive_ovmf_code`/`drive_ovmf_vars`, given to `-machine` as
//!   `pflash0`/`pflash1` (before `-blockdev`: `-drive if=pflash`). A `.qcow2` file is qcow2,
//!   anything else raw (avocado-vt asks `qemu-img info`; kvmtest does no I/O here).

use super::{pci, Builder, Obj, Opts};
use crate::cmd::Word;
use spec::vm::VmSpec;

/// `iothreads`.
pub(super) fn iothreads(b: &mut Builder<'_>, v: &VmSpec) {
    for t in &v.devices.iothreads {
        if !b.caps.has_option("object") {
            b.unsupported(
                Obj::Sub("iothread", &t.name),
                "iothreads",
                format!("QEMU {} has no -object", b.caps.version),
            );
            return;
        }
        let mut o = Opts::new("iothread");
        o.kv("id", &t.name);
        if let Some(n) = &t.poll_max_ns {
            o.kv("poll-max-ns", n);
        }
        b.cmd.push2("-object", o.finish());
    }
}

/// Whether `name` is one of the VM's iothreads (a problem on `image_iothread` of `obj` if not).
pub(super) fn check_iothread(b: &mut Builder<'_>, v: &VmSpec, name: &str, obj: Obj<'_>) -> bool {
    if v.devices.iothreads.iter().any(|t| t.name == name) {
        return true;
    }
    b.unsupported(
        obj,
        "image_iothread",
        format!("{name} is not one of the VM's `iothreads`"),
    );
    false
}

/// `virtio_rngs`.
pub(super) fn rngs(b: &mut Builder<'_>, v: &VmSpec) {
    for r in &v.devices.rngs {
        let obj = Obj::Sub("rng", &r.name);
        if !b.caps.has_device_type("virtio-rng-pci") || !b.caps.has_option("object") {
            b.unsupported(
                obj,
                "virtio_rngs",
                format!(
                    "QEMU {} has no virtio-rng-pci with an -object backend",
                    b.caps.version
                ),
            );
            continue;
        }
        let backend_id = format!("rng-{}", r.name);
        if let Some((chardev, props)) = &r.chardev {
            let mut o = Opts::new(chardev);
            let id = format!("chardev-rng-{}", r.name);
            o.kv("id", &id);
            for (k, val) in props {
                o.kv(k, val);
            }
            b.cmd.push2("-chardev", o.finish());
            let mut o = Opts::new(&r.backend);
            o.kv("id", &backend_id).kv("chardev", &id);
            b.cmd.push2("-object", o.finish());
        } else {
            let mut o = Opts::new(&r.backend);
            o.kv("id", &backend_id);
            for (k, val) in &r.backend_props {
                o.kv(k, val);
            }
            b.cmd.push2("-object", o.finish());
        }
        let mut o = Opts::new("virtio-rng-pci");
        o.kv("id", &format!("virtio-rng-{}", r.name))
            .kv("rng", &backend_id);
        for (k, val) in &r.device_props {
            o.kv(k, val);
        }
        if let Some(p) = pci::place(b, v, "virtio-rng-pci", false, obj, "virtio_rngs") {
            p.add_to(&mut o);
        }
        b.cmd.push2("-device", o.finish());
    }
}

/// `9p_export_dir`.
pub(super) fn nine_p(b: &mut Builder<'_>, v: &VmSpec) {
    let Some(n) = &v.devices.nine_p else { return };
    if !b.caps.has_option("fsdev") || !b.caps.has_device_type("virtio-9p-pci") {
        b.unsupported(
            Obj::Vm,
            "9p_export_dir",
            format!("QEMU {} has no -fsdev with virtio-9p-pci", b.caps.version),
        );
        return;
    }
    let mut o = Opts::new(&n.driver);
    o.kv("id", "local1");
    match n.driver.as_str() {
        "proxy" => {
            o.kv("socket", n.socket.as_deref().unwrap_or(""));
        }
        "local" => {
            o.kv("path", &n.dir).kv("security_model", &n.security_model);
        }
        _ => {
            o.kv("path", &n.dir);
        }
    }
    if n.writeout_immediate {
        o.kv("writeout", "immediate");
    }
    if n.readonly {
        o.kv("readonly", "on");
    }
    b.cmd.push2("-fsdev", o.finish());
    let mut o = Opts::new("virtio-9p-pci");
    o.kv("fsdev", "local1").kv("mount_tag", "autotest_tag");
    if let Some(p) = pci::place(b, v, "virtio-9p-pci", false, Obj::Vm, "9p_export_dir") {
        p.add_to(&mut o);
    }
    b.cmd.push2("-device", o.finish());
}

/// `balloon`.
pub(super) fn balloons(b: &mut Builder<'_>, v: &VmSpec) {
    for bl in &v.devices.balloons {
        let obj = Obj::Sub("balloon", &bl.name);
        if bl.old_format || !b.caps.has_device() {
            if b.caps.has_option("balloon") {
                b.cmd.push2("-balloon", Word::from("virtio"));
            } else {
                b.unsupported(
                    obj,
                    "balloon_use_old_format",
                    format!("QEMU {} has no -balloon", b.caps.version),
                );
            }
            continue;
        }
        let model = "virtio-balloon-pci";
        if !b.caps.has_device_type(model) {
            b.unsupported(
                obj,
                "balloon",
                format!("QEMU {} has no {model}", b.caps.version),
            );
            continue;
        }
        let mut o = Opts::new(model);
        if let Some(id) = &bl.id {
            o.kv("id", id);
        }
        for (k, val) in &bl.props {
            o.kv(k, val);
        }
        if let Some(p) = pci::place(b, v, model, false, obj, "balloon") {
            p.add_to(&mut o);
        }
        b.cmd.push2("-device", o.finish());
    }
}

/// The format of a firmware file, by its name.
fn firmware_format(path: &str) -> &'static str {
    if path.ends_with(".qcow2") {
        "qcow2"
    } else {
        "raw"
    }
}

/// OVMF's pflash nodes (emitted now, before `-machine`); the `-machine` items naming them.
pub(super) fn ovmf(b: &mut Builder<'_>, v: &VmSpec) -> Vec<(&'static str, String)> {
    let Some(f) = &v.devices.ovmf else {
        return Vec::new();
    };
    let vars = f.vars_template.as_ref().map(|t| (t, firmware_format(t)));
    if !b.caps.has_blockdev() {
        if !b.caps.has_drive() {
            b.unsupported(
                Obj::Vm,
                "ovmf_path",
                format!("QEMU {} has neither -blockdev nor -drive", b.caps.version),
            );
            return Vec::new();
        }
        let mut o = Opts::new("");
        o.kv("if", "pflash").kv("format", firmware_format(&f.code));
        o.kv("readonly", "on");
        o.kv_with("file", |w| {
            w.esc(f.code.as_bytes());
        });
        b.cmd.push2("-drive", o.finish());
        if let Some((_, fmt)) = vars {
            let mut o = Opts::new("");
            o.kv("if", "pflash").kv("format", fmt);
            o.kv_with("file", |w| {
                b.run_file(w, crate::names::OVMF_VARS_FILE, true)
            });
            b.cmd.push2("-drive", o.finish());
        }
        return Vec::new();
    }
    let mut items = Vec::new();
    let node = |b: &mut Builder<'_>,
                name: &str,
                fmt: &str,
                ro: bool,
                file: &dyn Fn(&mut crate::cmd::WordBuf)| {
        let mut o = Opts::new("");
        o.kv("node-name", &format!("file_{name}"))
            .kv("driver", "file");
        o.kv_with("filename", |w| file(w));
        o.kv("auto-read-only", "on").kv("discard", "unmap");
        b.cmd.push2("-blockdev", o.finish());
        let mut o = Opts::new("");
        o.kv("node-name", &format!("drive_{name}"))
            .kv("driver", fmt);
        o.kv("read-only", if ro { "on" } else { "off" });
        o.kv("file", &format!("file_{name}"));
        b.cmd.push2("-blockdev", o.finish());
    };
    let code = f.code.clone();
    node(b, "ovmf_code", firmware_format(&f.code), true, &|w| {
        w.esc(code.as_bytes());
    });
    items.push(("pflash0", "drive_ovmf_code".to_string()));
    if let Some((_, fmt)) = vars {
        let run = b.run.clone();
        node(b, "ovmf_vars", fmt, false, &|w| {
            w.run(&run, true)
                .raw("/")
                .esc(crate::names::OVMF_VARS_FILE.as_bytes());
        });
        items.push(("pflash1", "drive_ovmf_vars".to_string()));
    }
    items
}
