//! How QEMU itself runs, as avocado-vt asks for it: `-bios FILE` (`bios_path`), `-compat`
//! (`qemu_compat`) and the user QEMU drops to (`user_runas`), after `extra_params`; the VNC
//! server's password and options (`vnc_password`, `vnc_extra_params`) on `-vnc`. The KVM
//! switches (`enable_kvm`, `disable_kvm`) choose the accelerator with `vm_accelerator`
//! (`misc::accel`).
//!
//! `bios_path` goes to QEMU as written, as avocado-vt gives it: a relative name is looked up in
//! QEMU's firmware directories (`bios-256k.bin`), not under the root dir.

use super::{Builder, Obj, Opts};
use crate::caps::{BoolSyntax, QemuVersion};
use crate::cmd::{Word, WordBuf};
use spec::vm::VmSpec;

/// `bios_path` (`-bios`), right after `extra_params` as in avocado-vt.
pub(super) fn bios(b: &mut Builder<'_>, v: &VmSpec) {
    let caps = b.caps;
    if let Some(bios) = v.launch.bios.as_deref() {
        if caps.has_option("bios") {
            b.cmd.push2("-bios", Word::from(bios));
        } else {
            let reason = format!("QEMU {} has no -bios option", caps.version);
            b.unsupported(Obj::Vm, "bios_path", reason);
        }
    }
}

/// `qemu_compat` (`-compat`), `disable_shutdown` (`-no-shutdown`) and `user_runas`
/// (`-run-with user=` on QEMU ≥ 9.1, else `-runas`), after the TPMs and host devices as in
/// avocado-vt.
pub(super) fn compat_runas(b: &mut Builder<'_>, v: &VmSpec) {
    let l = &v.launch;
    let caps = b.caps;
    if let Some(policy) = l.compat.as_deref() {
        if caps.has_option("compat") {
            b.cmd.push2("-compat", Word::from(policy));
        } else {
            let reason = format!("QEMU {} has no -compat option", caps.version);
            b.unsupported(Obj::Vm, "qemu_compat", reason);
        }
    }
    if l.no_shutdown {
        if caps.has_option("no-shutdown") {
            b.cmd.flag("-no-shutdown");
        } else {
            let reason = format!("QEMU {} has no -no-shutdown option", caps.version);
            b.unsupported(Obj::Vm, "disable_shutdown", reason);
        }
    }
    if let Some(user) = l.runas.as_deref() {
        if caps.has_option("run-with") && caps.version >= QemuVersion::new(9, 1, 0) {
            let mut o = Opts::new("");
            o.kv("user", user);
            b.cmd.push2("-run-with", o.finish());
        } else if caps.has_option("runas") {
            b.cmd.push2("-runas", Word::from(user));
        } else {
            let reason = format!(
                "QEMU {} has neither -runas nor -run-with user=",
                caps.version
            );
            b.unsupported(Obj::Vm, "user_runas", reason);
        }
    }
}

/// `,password=on` (`vnc_password`; `,password` where booleans are short) and
/// `vnc_extra_params`, appended to `-vnc`'s value.
pub(super) fn vnc_items(b: &Builder<'_>, v: &VmSpec, w: &mut WordBuf) {
    let l = &v.launch;
    if l.vnc_password {
        w.raw(match b.caps.bool_syntax {
            BoolSyntax::OnOff => ",password=on",
            BoolSyntax::Short => ",password",
        });
    }
    for (k, val) in &l.vnc_extra {
        w.raw(",").esc(k.as_bytes());
        if let Some(val) = val {
            w.raw("=").esc(val.as_bytes());
        }
    }
}
