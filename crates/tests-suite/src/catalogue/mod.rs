//! The built-in test catalogue: one module per test type, each exporting its [`TestSpec`] and
//! its function; [`builtin`] registers them all.
//!
//! `noop`, `sleep` and `qemu_img` need no VM; `whql_submission` and the VM-based types of
//! [`vm`] reach their guests through [`crate::env::VmEnv`] (real VMs with
//! [`crate::vm_env::VmLayerFactory`]; with [`crate::env::NoVmEnv`] they report
//! [`crate::env::VM_UNAVAILABLE`] as an error: a missing layer never passes).

pub mod noop;
pub mod qemu_img;
mod session;
pub mod vm;
pub mod whql;

use crate::registry::{Registry, TestFn, TestSpec};

/// Every built-in test type with its function.
pub fn entries() -> Vec<(TestSpec, TestFn)> {
    let mut v: Vec<(TestSpec, TestFn)> = vec![
        (noop::NOOP, noop::run_noop),
        (noop::SLEEP, noop::run_sleep),
        (qemu_img::SPEC, qemu_img::run),
        (whql::SPEC, whql::run),
    ];
    v.extend(vm::entries());
    v
}

/// The registry of the built-in catalogue.
pub fn builtin() -> Registry {
    let mut r = Registry::new();
    for (spec, f) in entries() {
        // The built-in names are distinct (checked by a unit test), so this cannot fail;
        // a duplicate would keep the first registration.
        let _ = r.register(spec, f);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_names_are_unique_and_documented() {
        let mut r = Registry::new();
        for (spec, f) in entries() {
            assert!(r.register(spec, f).is_ok(), "duplicate {}", spec.name);
            assert!(!spec.about.is_empty());
            let mut keys: Vec<&str> = spec.params.iter().map(|p| p.key).collect();
            keys.sort_unstable();
            let n = keys.len();
            keys.dedup();
            assert_eq!(keys.len(), n, "{}: a key is declared twice", spec.name);
            for p in spec.params {
                assert!(
                    !p.meaning.is_empty(),
                    "{}: {} undocumented",
                    spec.name,
                    p.key
                );
                assert!(
                    !(p.required && p.default.is_some()),
                    "{}: {} is required and has a default",
                    spec.name,
                    p.key
                );
            }
        }
        for name in [
            "boot",
            "reboot",
            "shutdown",
            "migration",
            "pci_hotplug",
            "nic_hotplug",
            "physical_resources_check",
            "qemu_img",
            "whql_submission",
            "noop",
            "sleep",
        ] {
            assert!(r.get(name).is_some(), "{name} missing");
        }
    }
}
