//! Sound cards, vsocks, the smartcard reader, option ROMs and input devices, each where
//! avocado-vt adds it (sound cards after `-cpu`, vsocks after the NICs, the rest after
//! `extra_params` and sga), with a PCI place like every PCI device.
//!
//! * `soundcards`: `-device intel-hda` + `-device hda-duplex` for a name with `hda` (avocado-vt's
//!   rule: `ich9-intel-hda` too), `AC97`, `ES1370`, or the device named; placed as avocado-vt
//!   places a conventional device (q35 machines named `q35`: behind the PCI bridge). An ISA card
//!   (`sb16`, `adlib`, `gus`, `cs4231a`) gets no `bus=`/`addr=`: avocado-vt gives it a PCI place,
//!   which QEMU rejects ("can't go on PCI bus"); kvmtest leaves the ISA bus to QEMU and keeps that
//!   PCI place taken, so the devices after it get avocado-vt's addresses. `all` (or a binary
//!   without `-device`) is `-soundhw`, which QEMU 7.1 removed: a problem there. From QEMU 8.2 a
//!   sound card needs an audio backend QEMU no longer picks by itself (`QEMU_AUDIO_DRV` is gone,
//!   "no default audio driver available"): kvmtest gives `-audio driver=…` (`qemu_audio_drv`,
//!   else `none`) before the first card.
//! * `vsocks`: `-device vhost-vsock-pci,id=NAME,guest-cid=CID` with the run plan's CID and, where
//!   the plan holds one, its open `/dev/vhost-vsock` (`vhostfd=`); `vhost-vsock-device` on
//!   `*-mmio:` machines, `vhost-vsock-ccw` on s390.
//! * `smartcard = yes`: `-device usb-ccid,id=ccid0`, `-chardev BACKEND,id=ID,name=smartcard`,
//!   `-device ccid-card-passthru,chardev=ID` (avocado-vt's set; its own code stops with an
//!   `AttributeError` before rendering it). `name=` is a SPICE chardev's: another backend is a
//!   problem, and so is a QEMU built without SPICE (no `-spice`).
//! * `option_roms`: `-option-rom FILE` each, as written (QEMU looks a relative name up in its
//!   firmware directories).
//! * `inputs`: `-device virtio-mouse-pci|virtio-keyboard-pci|virtio-tablet-pci,id=input_NAME`
//!   (`-device`/`-ccw` variants on `*-mmio:` and s390 machines), placed as virtio devices are.

use super::{pci, Builder, Obj, Opts};
use crate::caps::QemuVersion;
use crate::cmd::Word;
use spec::peripherals::SoundCard;
use spec::vm::VmSpec;

/// QEMU's ISA sound cards.
const ISA_SOUND: &[&str] = &["sb16", "adlib", "gus", "cs4231a"];

/// How a virtio device's driver ends on this machine: `-pci`, or `-device` on `*-mmio:`
/// machines and `-ccw` on s390 (avocado-vt's spellings of `machine_type`).
fn virtio_transport(v: &VmSpec) -> &'static str {
    let machine = v.machine_type.as_deref().unwrap_or("");
    if machine.contains("-mmio:") {
        "-device"
    } else if machine.starts_with("s390") {
        "-ccw"
    } else {
        "-pci"
    }
}

/// `soundcards`.
pub(super) fn sound(b: &mut Builder<'_>, v: &VmSpec) {
    let Some(s) = &v.peripherals.sound else {
        return;
    };
    let caps = b.caps;
    if !caps.has_device() || s.all {
        if caps.has_option("soundhw") {
            // avocado-vt keeps a PCI place for each of AC97, ES1370 and intel-hda.
            for _ in 0..3 {
                pci::reserve_next(b);
            }
            b.cmd.push2("-soundhw", Word::from(s.text.as_str()));
        } else {
            let reason = if s.all {
                format!(
                    "QEMU {} has no -soundhw (QEMU 7.1 removed it), which `all` needs: list the \
                     cards (`hda,ac97`)",
                    caps.version
                )
            } else {
                format!("QEMU {} has neither -device nor -soundhw", caps.version)
            };
            b.unsupported(Obj::Vm, "soundcards", reason);
        }
        return;
    }
    let mut backend_given = false;
    for card in &s.cards {
        let (controller, codec) = match card {
            SoundCard::IntelHda => ("intel-hda", Some("hda-duplex")),
            SoundCard::Device(d) => (d.as_str(), None),
        };
        let missing = [Some(controller), codec]
            .into_iter()
            .flatten()
            .find(|d| !caps.has_device_type(d));
        if let Some(d) = missing {
            let reason = if d == "pcspk" {
                format!(
                    "QEMU {} has no pcspk device: the PC speaker is part of the pc machines, its \
                     sound goes to `-machine pcspk-audiodev=` (avocado-vt's `-device pcspk` is \
                     rejected)",
                    caps.version
                )
            } else {
                format!("QEMU {} has no {d} sound device", caps.version)
            };
            b.unsupported(Obj::Vm, "soundcards", reason);
            continue;
        }
        if !backend_given {
            audio_backend(b, v);
            backend_given = true;
        }
        let place = pci::place(b, v, controller, true, Obj::Vm, "soundcards");
        let mut o = Opts::new(controller);
        if !ISA_SOUND.contains(&controller) {
            if let Some(p) = place {
                p.add_to(&mut o);
            }
        }
        b.cmd.push2("-device", o.finish());
        if let Some(codec) = codec {
            b.cmd.push2("-device", Opts::new(codec).finish());
        }
    }
}

/// `-audio driver=…` where QEMU has no default audio backend any more (8.2 on).
fn audio_backend(b: &mut Builder<'_>, v: &VmSpec) {
    if b.caps.version < QemuVersion::new(8, 2, 0) || !b.caps.has_option("audio") {
        return;
    }
    let mut o = Opts::new("");
    o.kv("driver", v.platform.audio_drv.as_deref().unwrap_or("none"));
    b.cmd.push2("-audio", o.finish());
}

/// `vsocks`.
pub(super) fn vsocks(b: &mut Builder<'_>, v: &VmSpec) {
    let driver = format!("vhost-vsock{}", virtio_transport(v));
    for (i, name) in v.peripherals.vsocks.iter().enumerate() {
        if !b.caps.has_device() || !b.caps.has_device_type(&driver) {
            let reason = format!("QEMU {} has no {driver} device", b.caps.version);
            b.unsupported(Obj::Vm, "vsocks", reason);
            return;
        }
        let cid = b.plan.vsock_cid(i, name);
        let fd = b.plan.vsock_fd(i, name);
        let place = if driver.ends_with("-pci") {
            pci::place(b, v, &driver, false, Obj::Vm, "vsocks")
        } else {
            None
        };
        let mut o = Opts::new(&driver);
        o.kv("id", name).kv_with("guest-cid", |w| {
            w.run(&cid, true);
        });
        if let Some(p) = place {
            p.add_to(&mut o);
        }
        if let Some(fd) = fd {
            o.kv_with("vhostfd", |w| {
                w.run(&fd, true);
            });
        }
        b.cmd.push2("-device", o.finish());
    }
}

/// `smartcard = yes`.
pub(super) fn smartcard(b: &mut Builder<'_>, v: &VmSpec) {
    let Some(sc) = &v.peripherals.smartcard else {
        return;
    };
    let caps = b.caps;
    if let Some(d) = ["usb-ccid", "ccid-card-passthru"]
        .into_iter()
        .find(|d| !caps.has_device() || !caps.has_device_type(d))
    {
        let reason = format!("QEMU {} has no {d} device", caps.version);
        b.unsupported(Obj::Vm, "smartcard", reason);
        return;
    }
    if !matches!(sc.backend.as_str(), "spicevmc" | "spiceport") {
        b.unsupported(
            Obj::Vm,
            "smartcard_chardev",
            "avocado-vt names the smartcard chardev's SPICE channel (`name=smartcard`), which \
             only the spicevmc and spiceport backends have"
                .into(),
        );
        return;
    }
    if !caps.has_option("spice") {
        let reason = format!(
            "QEMU {} is built without SPICE: it has no {} chardev",
            caps.version, sc.backend
        );
        b.unsupported(Obj::Vm, "smartcard_chardev", reason);
        return;
    }
    if v.usb.controllers.is_empty() {
        b.unsupported(
            Obj::Vm,
            "smartcard",
            "usb-ccid is a USB device and the VM has no USB controller (`usbs`)".into(),
        );
        return;
    }
    let mut o = Opts::new("usb-ccid");
    o.kv("id", "ccid0");
    b.cmd.push2("-device", o.finish());
    let mut o = Opts::new(&sc.backend);
    o.kv("id", &sc.id).kv("name", "smartcard");
    b.cmd.push2("-chardev", o.finish());
    let mut o = Opts::new("ccid-card-passthru");
    o.kv("chardev", &sc.id);
    b.cmd.push2("-device", o.finish());
}

/// `option_roms`.
pub(super) fn option_roms(b: &mut Builder<'_>, v: &VmSpec) {
    for rom in &v.peripherals.option_roms {
        if b.caps.has_option("option-rom") {
            b.cmd.push2("-option-rom", Word::from(rom.as_str()));
        } else {
            let reason = format!("QEMU {} has no -option-rom option", b.caps.version);
            b.unsupported(Obj::Vm, "option_roms", reason);
            return;
        }
    }
}

/// `inputs`.
pub(super) fn inputs(b: &mut Builder<'_>, v: &VmSpec) {
    let transport = virtio_transport(v);
    for input in &v.peripherals.inputs {
        let obj = Obj::Sub("input", &input.name);
        let driver = format!("{}{transport}", input.kind.virtio_stem());
        if !b.caps.has_device() || !b.caps.has_device_type(&driver) {
            let reason = format!("QEMU {} has no {driver} device", b.caps.version);
            b.unsupported(obj, "input_dev_type", reason);
            continue;
        }
        let place = if transport == "-pci" {
            pci::place(b, v, &driver, false, obj, "input_dev_type")
        } else {
            None
        };
        let mut o = Opts::new(&driver);
        o.kv("id", &format!("input_{}", input.name));
        if let Some(p) = place {
            p.add_to(&mut o);
        }
        b.cmd.push2("-device", o.finish());
    }
}
