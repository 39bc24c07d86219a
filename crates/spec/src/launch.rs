//! [`LaunchSpec`]: how avocado-vt has QEMU itself run — the KVM switches (`enable_kvm`,
//! `disable_kvm`), the firmware (`bios_path`), `-compat` (`qemu_compat`), the user it drops to
//! (`user_runas`) and the VNC server's password and options (`vnc_password`,
//! `vnc_extra_params`) — read with its keys, declared here.

use crate::keys::KeyDoc;
use crate::read::Reader;
use crate::types::Accel;
use crate::vm::ExtraOpts;

/// VM-level keys of this family.
pub const LAUNCH_KEYS: &[KeyDoc] = &[
    KeyDoc::with_default(
        "enable_kvm",
        "yes",
        "no: TCG (`vm_accelerator` decides when set); yes, set explicitly: KVM (unset: KVM \
         where it works, else TCG)",
    ),
    KeyDoc::with_default(
        "disable_kvm",
        "no",
        "yes: TCG, whatever `enable_kvm` says (`vm_accelerator` decides when set)",
    ),
    KeyDoc::optional("bios_path", "a firmware file: `-bios FILE`, as written"),
    KeyDoc::with_default(
        "disable_shutdown",
        "no",
        "yes: `-no-shutdown`: a guest that powers off leaves QEMU stopped (status `shutdown`) \
         instead of exiting",
    ),
    KeyDoc::optional("qemu_compat", "`-compat` policy (`deprecated-input=crash`)"),
    KeyDoc::optional(
        "user_runas",
        "the user QEMU drops to: `-runas USER`, `-run-with user=USER` where `-runas` is gone \
         (QEMU 9.1+)",
    ),
    KeyDoc::with_default(
        "vnc_password",
        "no",
        "yes: the VNC server asks for a password (`password=on`); none is set until a test sets \
         one over the monitor (`change-vnc-password`), as in avocado-vt",
    ),
    KeyDoc::optional(
        "vnc_extra_params",
        "items added to `-vnc` (`share=force-shared,lossy=on`)",
    ),
];

/// The accelerator `enable_kvm`/`disable_kvm` ask for, and the key that asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvmSwitch {
    /// KVM or TCG.
    pub accel: Accel,
    /// `enable_kvm` or `disable_kvm`.
    pub key: &'static str,
}

/// The family.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LaunchSpec {
    /// `disable_kvm = yes` or `enable_kvm` set: what they ask for (`vm_accelerator` wins).
    pub kvm: Option<KvmSwitch>,
    /// `bios_path`.
    pub bios: Option<String>,
    /// `qemu_compat`.
    pub compat: Option<String>,
    /// `user_runas`.
    pub runas: Option<String>,
    /// `disable_shutdown = yes`: `-no-shutdown`.
    pub no_shutdown: bool,
    /// `vnc_password = yes`.
    pub vnc_password: bool,
    /// `vnc_extra_params`.
    pub vnc_extra: ExtraOpts,
}

impl LaunchSpec {
    /// Reads the family through the VM's reader.
    pub fn read(r: &mut Reader<'_, '_>) -> LaunchSpec {
        let disable = r.bool("disable_kvm", false);
        let enable = r.opt_bool("enable_kvm");
        let kvm = match (disable, enable) {
            (true, _) => Some(KvmSwitch {
                accel: Accel::Tcg,
                key: "disable_kvm",
            }),
            (false, Some(on)) => Some(KvmSwitch {
                accel: if on { Accel::Kvm } else { Accel::Tcg },
                key: "enable_kvm",
            }),
            (false, None) => None,
        };
        LaunchSpec {
            kvm,
            bios: r.string("bios_path"),
            compat: r.string("qemu_compat"),
            runas: r.string("user_runas"),
            no_shutdown: r.bool("disable_shutdown", false),
            vnc_password: r.bool("vnc_password", false),
            vnc_extra: r.opt_list("vnc_extra_params", "share=force-shared"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::params;
    use crate::VmSpec;

    fn kvm(pairs: &[(&str, &str)]) -> Option<KvmSwitch> {
        VmSpec::new(&params(pairs), "vm1")
            .unwrap_or_else(|e| panic!("{e}"))
            .launch
            .kvm
    }

    #[test]
    fn disable_kvm_wins_and_unset_leaves_it_to_the_run() {
        assert_eq!(kvm(&[]), None);
        let tcg = |key| {
            Some(KvmSwitch {
                accel: Accel::Tcg,
                key,
            })
        };
        assert_eq!(kvm(&[("disable_kvm", "yes")]), tcg("disable_kvm"));
        assert_eq!(
            kvm(&[("disable_kvm", "yes"), ("enable_kvm", "yes")]),
            tcg("disable_kvm")
        );
        assert_eq!(kvm(&[("enable_kvm", "no")]), tcg("enable_kvm"));
        assert_eq!(
            kvm(&[("enable_kvm", "yes")]).map(|k| k.accel),
            Some(Accel::Kvm)
        );
    }
}
