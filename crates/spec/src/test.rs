//! Which test a variant runs and on which VM: the test family of keys.

use params::Params;

use crate::keys::{KeyDoc, Keys};
use crate::problem::{ProblemKind, SpecError};

/// The test keys.
pub const TEST_KEYS: &[KeyDoc] = &[
    KeyDoc::required("type", "the test to run: a test type of the catalogue"),
    KeyDoc::optional(
        "main_vm",
        "the VM the test drives (default: the first VM of `vms`; with neither, an error)",
    ),
    KeyDoc::optional("vms", "the VMs of the variant, in order"),
];

/// What a variant runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestTarget {
    /// `type`.
    pub test_type: String,
    /// `main_vm`, else the first of `vms`; `None` when the variant has no VM.
    pub main_vm: Option<String>,
}

impl TestTarget {
    /// Reads `type` (required) and the main VM.
    ///
    /// # Errors
    /// [`SpecError::Object`] when `type` is missing.
    pub fn read(params: &Params) -> Result<TestTarget, SpecError> {
        let mut k = Keys::new(params, "test", TEST_KEYS);
        let test_type = k.text("type");
        let main_vm = k
            .opt("main_vm")
            .or_else(|| params.objects("vms").first().map(|v| v.to_string()));
        k.finish(TestTarget { test_type, main_vm })
    }

    /// The main VM, which a test that drives a VM needs.
    ///
    /// # Errors
    /// [`SpecError::Object`] naming `main_vm` as missing.
    pub fn require_vm(&self, params: &Params) -> Result<&str, SpecError> {
        match &self.main_vm {
            Some(vm) => Ok(vm),
            None => {
                let mut k = Keys::new(params, "test", TEST_KEYS);
                k.problem("main_vm", ProblemKind::Missing);
                k.finish("")
            }
        }
    }
}

/// The variant's `type` as written, for records of variants that did not run (no error when
/// it is missing: the record says so by its absence).
pub fn test_type(params: &Params) -> Option<String> {
    Keys::new(params, "test", TEST_KEYS).opt("type")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::params;

    #[test]
    fn main_vm_defaults_to_the_first_vm() {
        let t = TestTarget::read(&params(&[("type", "boot"), ("vms", "a b")]))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.main_vm.as_deref(), Some("a"));
        let t = TestTarget::read(&params(&[
            ("type", "boot"),
            ("vms", "a b"),
            ("main_vm", "b"),
        ]))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.main_vm.as_deref(), Some("b"));
    }

    #[test]
    fn a_missing_type_or_vm_is_an_error() {
        let err = TestTarget::read(&params(&[("vms", "a")])).err();
        assert!(err.is_some_and(|e| e.problems()[0].key == "type"));
        let p = params(&[("type", "boot")]);
        let t = TestTarget::read(&p).unwrap_or_else(|e| panic!("{e}"));
        let err = t
            .require_vm(&p)
            .err()
            .unwrap_or_else(|| panic!("no VM accepted"));
        assert!(err.to_string().contains("main_vm"), "{err}");
    }
}
