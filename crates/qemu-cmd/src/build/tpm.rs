//! `tpms`: each TPM's back end (`-tpmdev emulator` on a chardev connected to the swtpm the `vm`
//! crate runs on a socket in the run dir, or `-tpmdev passthrough` of a host TPM) and its front
//! end device, with avocado-vt's ids (`char_vtpm_VM_TPM`, `emulator_vtpm_VM_TPM`,
//! `MODEL_vtpm_VM_TPM`; `tpm_VM_TPM` for a passthrough), after `extra_params` as avocado-vt
//! adds them.

use super::{Builder, Obj, Opts};
use crate::names;
use spec::tpm::TpmBackend;
use spec::vm::VmSpec;

/// `tpms`.
pub(super) fn tpms(b: &mut Builder<'_>, v: &VmSpec) {
    for t in &v.tpms {
        let obj = Obj::Sub("tpm", &t.name);
        if !b.caps.has_option("tpmdev") {
            let reason = format!("QEMU {} has no -tpmdev", b.caps.version);
            b.unsupported(obj, "tpm_type", reason);
            continue;
        }
        if !b.caps.has_device_type(&t.model) {
            let reason = format!("QEMU {} has no {} device", b.caps.version, t.model);
            b.unsupported(obj, "tpm_model", reason);
            continue;
        }
        let (base, tpmdev) = match &t.backend {
            TpmBackend::Emulator(_) => {
                let base = format!("vtpm_{}_{}", v.name, t.name);
                let chardev = format!("char_{base}");
                let mut o = Opts::new("socket");
                o.kv("id", &chardev).kv_with("path", |w| {
                    b.run_file(w, &names::swtpm_socket(&t.name), true);
                });
                b.cmd.push2("-chardev", o.finish());
                let mut o = Opts::new("emulator");
                let id = format!("emulator_{base}");
                o.kv("chardev", &chardev).kv("id", &id);
                b.cmd.push2("-tpmdev", o.finish());
                (base, id)
            }
            TpmBackend::Passthrough { path } => {
                let base = format!("tpm_{}_{}", v.name, t.name);
                let id = format!("passthrough_{base}");
                let mut o = Opts::new("passthrough");
                o.kv("path", path).kv("id", &id);
                b.cmd.push2("-tpmdev", o.finish());
                (base, id)
            }
        };
        let mut o = Opts::new(&t.model);
        o.kv("id", &format!("{}_{base}", t.model))
            .kv("tpmdev", &tpmdev);
        o.pairs(&t.model_props);
        b.cmd.push2("-device", o.finish());
    }
}
