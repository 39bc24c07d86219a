//! Machine-wide options: name, machine/accel, cpu, boot files and kernel,
//! display, uuid, HPET, PCI assignment, extra params and `-incoming`.

use super::{Builder, Obj, Opts};
use crate::cmd::{Word, WordBuf};
use spec::types::{Accel, DisplayKind, IncomingMode};
use spec::vm::{UuidSpec, VmSpec};

/// `-name`: an option list on QEMUs with `-device` (`guest=` implied), plain text before.
pub(super) fn name(b: &mut Builder<'_>, v: &VmSpec) {
    let w = if b.caps.has_device() {
        Opts::new(&v.name).finish()
    } else {
        Word::from(v.name.as_str())
    };
    b.cmd.push2("-name", w);
}

/// QEMU's machine of a `machine_type`: avocado-vt writes some as `family:machine`
/// (`arm64-pci:virt`).
fn machine_name(m: &str) -> &str {
    m.rsplit_once(':').map_or(m, |(_, name)| name)
}

/// `-machine`/`-M` (with `machine_type_extra_params`, OVMF's pflash and the memory backend),
/// `-accel`/`-enable-kvm`.
pub(super) fn machine(b: &mut Builder<'_>, v: &VmSpec) {
    let caps = b.caps;
    if let Some(m) = v.machine_type.as_deref() {
        if !caps.machines.is_empty() && !caps.has_machine(machine_name(m)) {
            b.unsupported(
                Obj::Vm,
                "machine_type",
                format!("QEMU {} has no such machine type", caps.version),
            );
        }
    }
    // HPET via the machine property, when `-no-hpet` is gone.
    let hpet_prop = v.disable_hpet && !caps.has_no_hpet() && caps.has_machine_hpet();
    // OVMF's pflash nodes come first; `-machine` names them.
    let pflash = super::devices::ovmf(b, v);
    let mem_backend = super::memory::machine_backend(b, v);
    let any = v.machine_type.is_some()
        || hpet_prop
        || !pflash.is_empty()
        || mem_backend.is_some()
        || !v.machine_extra.is_empty();
    if any {
        if caps.has_machine_option() {
            let mut o = Opts::new(v.machine_type.as_deref().map_or("", machine_name));
            o.extra(&v.machine_extra);
            if hpet_prop {
                o.kv("hpet", "off");
            }
            for (k, val) in &pflash {
                o.kv(k, val);
            }
            if let Some(id) = mem_backend {
                o.kv("memory-backend", id);
            }
            b.cmd.push2("-machine", o.finish());
        } else {
            if let Some(m) = v.machine_type.as_deref() {
                b.cmd.push2("-M", Word::from(machine_name(m)));
            }
            if !v.machine_extra.is_empty() {
                let reason = format!("QEMU {} has no -machine for options", caps.version);
                b.unsupported(Obj::Vm, "machine_type_extra_params", reason);
            }
        }
    }
    let (accel, key) = accel(b, v);
    match accel {
        None => {}
        Some(a) if caps.has_option("accel") && caps.has_accelerator(a.as_str()) => {
            b.cmd.push2("-accel", Word::from(a.as_str()));
        }
        Some(Accel::Kvm) if caps.has_option("enable-kvm") => b.cmd.flag("-enable-kvm"),
        // qemu-kvm builds before `-enable-kvm` used KVM unless told `-no-kvm`.
        Some(Accel::Kvm) if caps.has_option("no-kvm") => {}
        Some(Accel::Tcg) if caps.has_option("no-kvm") => b.cmd.flag("-no-kvm"),
        Some(Accel::Tcg) if !caps.has_option("accel") && !caps.has_option("enable-kvm") => {}
        Some(a) => b.unsupported(
            Obj::Vm,
            key,
            format!("QEMU {} cannot select accelerator {a}", caps.version),
        ),
    }
}

/// The accelerator and the key that chose it: the cfg's `vm_accelerator`, else what
/// `disable_kvm`/`enable_kvm` ask for (TCG where avocado-vt drops `-enable-kvm`), else the run
/// plan's (`vm_accelerator` names a problem then: the plan's choice has no key).
pub(super) fn accel(b: &Builder<'_>, v: &VmSpec) -> (Option<Accel>, &'static str) {
    match (v.accel, v.launch.kvm) {
        (Some(a), _) => (Some(a), "vm_accelerator"),
        (None, Some(s)) => (Some(s.accel), s.key),
        (None, None) => (b.plan.accel, "vm_accelerator"),
    }
}

/// `-cpu` (after memory, `-smp` and `-numa`, as avocado-vt orders them).
pub(super) fn cpu(b: &mut Builder<'_>, v: &VmSpec) {
    let caps = b.caps;
    if let Some(cpu) = &v.cpu {
        // avocado-vt's rule: the first candidate this QEMU knows (an unprobed binary: the first).
        let known = |m: &&String| caps.cpu_models.is_empty() || caps.has_cpu_model(m);
        match cpu.models.iter().find(known) {
            Some(model) => {
                let mut o = Opts::new(model);
                if let Some(vendor) = &cpu.vendor {
                    o.kv("vendor", vendor);
                }
                o.extra(&cpu.flags);
                if let Some(family) = &cpu.family {
                    o.kv("family", family);
                }
                b.cmd.push2("-cpu", o.finish());
            }
            None => b.unsupported(
                Obj::Vm,
                cpu.key,
                match cpu.models.as_slice() {
                    [one] => format!("QEMU {} has no CPU model {one}", caps.version),
                    all => format!(
                        "QEMU {} has none of the CPU models {}",
                        caps.version,
                        all.join(", ")
                    ),
                },
            ),
        }
    }
}

/// `-fda`, legacy `-tftp`/`-bootp`, `-kernel`, `-append`, `-initrd`.
pub(super) fn boot_files(b: &mut Builder<'_>, v: &VmSpec) {
    let plain = |b: &mut Builder<'_>, opt: &str, p: &str| {
        let mut w = WordBuf::new();
        b.path(&mut w, p, false);
        b.cmd.push2(opt, w.finish());
    };
    if let Some(f) = v.floppy.as_deref() {
        plain(b, "-fda", f);
    }
    // The `tftp=`/`bootfile=` sub-options of user networking replace these where they exist.
    if let Some(t) = v.tftp.as_deref() {
        if !b.caps.has_user_net_option("tftp") {
            if b.caps.has_option("tftp") {
                plain(b, "-tftp", t);
            } else {
                b.unsupported(Obj::Vm, "tftp", "neither tftp= nor -tftp".into());
            }
        }
    }
    if let Some(f) = v.bootp.as_deref() {
        if !b.caps.has_user_net_option("bootfile") {
            if b.caps.has_option("bootp") {
                b.cmd.push2("-bootp", Word::from(f));
            } else {
                b.unsupported(Obj::Vm, "bootp", "neither bootfile= nor -bootp".into());
            }
        }
    }
    if let Some(k) = v.kernel.as_deref() {
        plain(b, "-kernel", k);
    }
    if let Some(c) = v.kernel_cmdline.as_deref() {
        b.cmd.push2("-append", Word::from(c));
    }
    if let Some(i) = v.initrd.as_deref() {
        plain(b, "-initrd", i);
    }
}

/// `-vnc` on the plan's displays (loopback only), SDL, `-nographic`, `-spice` (the `spice`
/// module), `-display none`.
pub(super) fn display(b: &mut Builder<'_>, v: &VmSpec) {
    let caps = b.caps;
    match v.display {
        None => {}
        Some(DisplayKind::Vnc) => {
            let mut w = WordBuf::new();
            w.run(&b.plan.vnc(), false);
            super::launch::vnc_items(b, v, &mut w);
            b.cmd.push2("-vnc", w.finish());
        }
        Some(DisplayKind::Sdl) if caps.has_option("sdl") => b.cmd.flag("-sdl"),
        Some(DisplayKind::Sdl) if caps.display_backends.contains("sdl") => {
            b.cmd.push2("-display", Word::from("sdl"));
        }
        Some(DisplayKind::Nographic) => b.cmd.flag("-nographic"),
        Some(DisplayKind::Spice) => super::spice::display(b, v),
        Some(DisplayKind::None) if caps.display_backends.contains("none") => {
            b.cmd.push2("-display", Word::from("none"));
        }
        Some(d) => b.unsupported(
            Obj::Vm,
            "display",
            format!("QEMU {} has no {d} display", caps.version),
        ),
    }
}

/// `-uuid`, fixed or per run.
pub(super) fn uuid(b: &mut Builder<'_>, v: &VmSpec) {
    let w = match &v.uuid {
        None => return,
        Some(UuidSpec::Random) => {
            let mut w = WordBuf::new();
            w.run(&b.plan.uuid(), false);
            w.finish()
        }
        Some(UuidSpec::Fixed(u)) => Word::from(u.to_string().as_str()),
    };
    if b.caps.has_option("uuid") {
        b.cmd.push2("-uuid", w);
    } else {
        b.unsupported(Obj::Vm, "uuid", "no -uuid option".into());
    }
}

/// `-no-hpet` where it exists; the machine property is set by [`machine`]; a QEMU with neither
/// has no HPET to disable.
pub(super) fn hpet(b: &mut Builder<'_>, v: &VmSpec) {
    if v.disable_hpet && b.caps.has_no_hpet() {
        b.cmd.flag("-no-hpet");
    }
}

/// PCI assignment: `-pcidevice host=` (old qemu-kvm), `-device vfio-pci,host=`, or
/// `-device pci-assign,host=`.
pub(super) fn pci(b: &mut Builder<'_>, v: &VmSpec) {
    let Some(req) = v.pci else { return };
    let caps = b.caps;
    let device = if caps.has_option("pcidevice") {
        None
    } else if caps.has_device_type("vfio-pci") {
        Some("vfio-pci")
    } else if caps.has_device_type("pci-assign") {
        Some("pci-assign")
    } else {
        b.unsupported(
            Obj::Vm,
            "pci_assignable",
            format!("QEMU {} cannot assign host PCI devices", caps.version),
        );
        return;
    };
    let hosts = b.plan.pci_hosts(req.count);
    if hosts.len() < req.count as usize {
        // Never a VM quietly started without the devices the variant assigns.
        b.unsupported(
            Obj::Vm,
            "pci_assignable",
            format!(
                "{} host device(s) requested (devices_requested), {} assigned by the run plan: \
                 no host PCI device was found and bound for it",
                req.count,
                hosts.len()
            ),
        );
        return;
    }
    for host in hosts {
        let mut o = Opts::new(device.unwrap_or(""));
        o.kv_with("host", |w| {
            w.run(&host, true);
        });
        let opt = if device.is_some() {
            "-device"
        } else {
            "-pcidevice"
        };
        b.cmd.push2(opt, o.finish());
    }
}

/// `extra_params`: already split into words; a word starting with `-` starts a display line.
/// The options are the user's verbatim text: [`Builder::verbatim`] records where they are, so
/// later passes (`virtio_dev_*`) leave them alone.
pub(super) fn extra(b: &mut Builder<'_>, v: &VmSpec) {
    let start = b.cmd.options.len();
    extra_words(b, v);
    b.verbatim = start..b.cmd.options.len();
}

/// The options of `extra_params`, one display line per word starting with `-`.
fn extra_words(b: &mut Builder<'_>, v: &VmSpec) {
    let mut group: Vec<Word> = Vec::new();
    for w in &v.extra_params {
        if w.starts_with('-') && !group.is_empty() {
            b.cmd.push(std::mem::take(&mut group));
        }
        group.push(Word::from(w.as_str()));
    }
    if !group.is_empty() {
        b.cmd.push(group);
    }
}

/// `-incoming tcp:0:PORT | unix:PATH | exec:CMD | defer`, when the plan makes the VM a
/// migration destination.
pub(super) fn incoming(b: &mut Builder<'_>, _v: &VmSpec) {
    let Some(inc) = &b.plan.incoming else { return };
    let mode = inc.mode;
    let caps = b.caps;
    let listed = !caps.incoming.is_empty();
    let ok = caps.has_option("incoming")
        && if listed {
            caps.incoming.contains(mode.as_str())
        } else {
            mode != IncomingMode::Defer
        };
    if !ok {
        b.plan_problem(
            "incoming",
            format!("QEMU {} cannot accept -incoming {mode}", caps.version),
        );
        return;
    }
    let mut w = WordBuf::new();
    match mode {
        IncomingMode::Tcp => {
            w.raw("tcp:0:").run(&b.plan.migration_port(), false);
        }
        IncomingMode::Unix => {
            w.raw("unix:");
            b.run_file(&mut w, crate::names::MIGRATION_SOCKET, false);
        }
        IncomingMode::Exec => {
            w.raw("exec:");
            match &inc.exec_cmd {
                Some(c) => {
                    w.verbatim(c.as_bytes());
                }
                None => {
                    w.raw("nc -l ").run(&b.plan.migration_port(), false);
                }
            }
        }
        IncomingMode::Defer => {
            w.raw("defer");
        }
    }
    b.cmd.push2("-incoming", w.finish());
}
