//! The built-in test catalogue: one module per test type, each exporting its [`TestSpec`] and
//! its function; [`builtin`] registers them all.
//!
//! `noop` and `sleep` need no VM, nor do `qemu_img`'s subcommands but convert, rebase and
//! commit, which boot the main VM from their images; those, `whql_submission` and the VM-based
//! types of [`vm`] reach their guests through [`crate::env::VmEnv`] (real VMs with
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
    use std::ops::ControlFlow;
    use std::sync::Arc;

    use params::{Params, Parser, ParserOptions};
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::env::{NetRemote, NoVmEnv, VM_UNAVAILABLE};
    use crate::registry::{TestContext, TestLog};
    use crate::state::StateStore;
    use crate::verdict::TestError;

    /// Runs the catalogue test `params` select, without a VM layer.
    fn run_without_vms(params: Params, dir: &std::path::Path) -> Result<(), TestError> {
        let test_type = spec::test::test_type(&params).unwrap_or_default();
        let Some((_, f)) = builtin().get(&test_type) else {
            panic!("no test type {test_type:?}");
        };
        let ctx = TestContext {
            params,
            name: test_type.clone(),
            shortname: test_type,
            dir: dir.to_path_buf(),
            log: TestLog::discard(),
            cancel: CancellationToken::new(),
            env: Arc::new(NoVmEnv),
            remote: Arc::new(NetRemote),
            state: StateStore::in_memory(),
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("runtime: {e}"));
        rt.block_on(f(&ctx))
    }

    fn config(text: &str) -> params::Config {
        let mut p = Parser::new(ParserOptions::default());
        if let Err(e) = p.parse_str(text) {
            panic!("{}", e.render());
        }
        p.finish()
    }

    fn only_variant(text: &str) -> Params {
        let mut out = None;
        let r = config(text).for_each(|v| {
            out = Some(v.params().clone());
            Ok(ControlFlow::Break(()))
        });
        r.unwrap_or_else(|e| panic!("{}", e.render()));
        out.unwrap_or_else(|| panic!("no variant"))
    }

    /// A bad value in a test's params is the test's error, listing every bad key with its value
    /// and `file:line`, before any VM is asked for (here: none exists).
    #[test]
    fn every_bad_param_of_a_test_is_one_error() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let p = only_variant(
            "type = reboot\nvms = vm1\nreboot_method = bogus\nreboot_count = x\n\
             serial_login = maybe\n",
        );
        let err = run_without_vms(p, dir.path()).err();
        let Some(TestError::Error(msg)) = err else {
            panic!("not an error: {err:?}");
        };
        assert!(!msg.contains(VM_UNAVAILABLE), "a VM was asked for: {msg}");
        assert!(msg.contains("test reboot"), "{msg}");
        for (key, line) in [
            ("reboot_method", 3),
            ("reboot_count", 4),
            ("serial_login", 5),
        ] {
            assert!(msg.contains(&format!("{key} = ")), "{key} missing: {msg}");
            assert!(
                msg.contains(&format!(":{line}")),
                "{key}'s line {line}: {msg}"
            );
        }
        assert!(msg.contains("expected one of shell, system_reset"), "{msg}");
    }

    /// The main VM's session keys are read before the VM is asked for, too.
    #[test]
    fn a_bad_session_key_is_an_error_before_the_vm() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let p = only_variant("type = boot\nvms = vm1\nlogin_timeout = soon\n");
        let msg = format!("{:?}", run_without_vms(p, dir.path()).err());
        assert!(msg.contains("login_timeout"), "{msg}");
        assert!(!msg.contains(VM_UNAVAILABLE), "{msg}");
    }

    /// Each VM test with its defaults only gets as far as asking for the VM.
    #[test]
    fn declared_defaults_are_valid_values() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        for cfg in [
            "type = boot\nvms = vm1\n",
            "type = reboot\nvms = vm1\n",
            "type = shutdown\nvms = vm1\n",
            "type = migration\nvms = vm1\nmigration_protocol = tcp\n",
            "type = nic_hotplug\nvms = vm1\npci_model = virtio\n",
            "type = pci_hotplug\nvms = vm1\npci_type = nic\npci_model = virtio\n\
             reference_cmd = lspci\nfind_pci_cmd = lspci\nmatch_string = x\n",
            "type = physical_resources_check\nvms = vm1\nmem = 2G\n",
        ] {
            let err = run_without_vms(only_variant(cfg), dir.path()).err();
            let msg = format!("{err:?}");
            assert!(msg.contains(VM_UNAVAILABLE), "{cfg}: {msg}");
        }
    }

    /// The bundled suite's values are valid for the tests that read them: each VM test of
    /// `fixtures/suite/tests.cfg` gets as far as asking for its VM.
    #[test]
    fn the_suite_fixture_is_valid() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/suite/tests.cfg");
        let mut p = Parser::new(ParserOptions::default());
        if let Err(e) = p.parse_file(&path) {
            panic!("{}", e.render());
        }
        let mut variants = Vec::new();
        let r = p.finish().for_each(|v| {
            variants.push((v.name(), v.params().clone()));
            Ok(ControlFlow::Continue(()))
        });
        r.unwrap_or_else(|e| panic!("{}", e.render()));
        let mut checked = 0;
        for (name, params) in variants {
            // qemu_img runs the real qemu-img (tests/qemu_img.rs).
            if spec::test::test_type(&params).as_deref() == Some("qemu_img") {
                continue;
            }
            let err = run_without_vms(params, dir.path()).err();
            let msg = format!("{err:?}");
            assert!(msg.contains(VM_UNAVAILABLE), "{name}: {msg}");
            checked += 1;
        }
        assert!(checked > 10, "only {checked} variants");
    }

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
