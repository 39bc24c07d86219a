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
    KeyDoc::optional(
        "required_qemu",
        "the QEMU versions the variant runs on, as an interval (`[8.0.0, )`, `(4.2, 7.0]`): \
         on another QEMU it is skipped with the reason, as avocado-vt cancels it",
    ),
    KeyDoc::with_default(
        "iterations",
        "1",
        "how many times the test body runs in a row (autotest's and avocado-vt's scheduler \
         key), on the same VMs, stopping at the first iteration that does not pass",
    ),
];

/// A version interval as avocado-vt writes `required_qemu`: `[` or `(`, a lower bound, a
/// comma, an upper bound, `]` or `)`; an empty bound is open (`[8.0.0, )`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionInterval {
    lower: Option<(Vec<u64>, bool)>,
    upper: Option<(Vec<u64>, bool)>,
    text: String,
}

impl VersionInterval {
    /// Whether `version` (`major.minor.micro`, more or fewer parts allowed) is inside.
    pub fn contains(&self, version: &[u64]) -> bool {
        let cmp = |bound: &[u64]| {
            let n = bound.len().max(version.len());
            let at = |v: &[u64], i: usize| v.get(i).copied().unwrap_or(0);
            (0..n)
                .map(|i| at(version, i).cmp(&at(bound, i)))
                .find(|o| o.is_ne())
                .unwrap_or(std::cmp::Ordering::Equal)
        };
        let above = self.lower.as_ref().is_none_or(|(b, closed)| match cmp(b) {
            std::cmp::Ordering::Greater => true,
            std::cmp::Ordering::Equal => *closed,
            std::cmp::Ordering::Less => false,
        });
        let below = self.upper.as_ref().is_none_or(|(b, closed)| match cmp(b) {
            std::cmp::Ordering::Less => true,
            std::cmp::Ordering::Equal => *closed,
            std::cmp::Ordering::Greater => false,
        });
        above && below
    }
}

impl std::fmt::Display for VersionInterval {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for VersionInterval {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let expected = || "a version interval such as `[8.0.0, )` or `(4.2, 7.0]`".to_string();
        let t = s.trim();
        let open = t.chars().next().ok_or_else(expected)?;
        let close = t.chars().last().ok_or_else(expected)?;
        if !matches!(open, '[' | '(') || !matches!(close, ']' | ')') || t.len() < 3 {
            return Err(expected());
        }
        let (lo, hi) = t[1..t.len() - 1].split_once(',').ok_or_else(expected)?;
        let version = |v: &str| -> Result<Option<Vec<u64>>, String> {
            let v = v.trim();
            if v.is_empty() {
                return Ok(None);
            }
            v.split('.')
                .map(|p| p.parse::<u64>().map_err(|_| expected()))
                .collect::<Result<Vec<_>, _>>()
                .map(Some)
        };
        let interval = VersionInterval {
            lower: version(lo)?.map(|v| (v, open == '[')),
            upper: version(hi)?.map(|v| (v, close == ']')),
            text: t.to_string(),
        };
        if let (Some((l, _)), Some((u, _))) = (&interval.lower, &interval.upper) {
            if l > u {
                return Err(format!(
                    "{} (its lower bound is above its upper)",
                    expected()
                ));
            }
        }
        Ok(interval)
    }
}

/// What a variant runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestTarget {
    /// `type`.
    pub test_type: String,
    /// `main_vm`, else the first of `vms`; `None` when the variant has no VM.
    pub main_vm: Option<String>,
    /// `required_qemu`.
    pub required_qemu: Option<VersionInterval>,
    /// `iterations`: at least 1.
    pub iterations: u64,
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
        let required_qemu = k.parse("required_qemu", |v| v.parse::<VersionInterval>());
        let iterations = k
            .parse("iterations", |v| match v.parse::<u64>() {
                Ok(n) if n >= 1 => Ok(n),
                _ => Err("a whole number of at least 1".to_owned()),
            })
            .unwrap_or(1);
        k.finish(TestTarget {
            test_type,
            main_vm,
            required_qemu,
            iterations,
        })
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
    fn required_qemu_is_avocado_vts_interval() {
        let i: VersionInterval = "[8.0.0, )".parse().unwrap_or_else(|e| panic!("{e}"));
        assert!(i.contains(&[8, 0, 0]) && i.contains(&[10, 0, 2]));
        assert!(!i.contains(&[7, 2, 22]));
        let i: VersionInterval = "(4.2, 7.0]".parse().unwrap_or_else(|e| panic!("{e}"));
        assert!(!i.contains(&[4, 2, 0]) && i.contains(&[4, 2, 1]) && i.contains(&[7, 0, 0]));
        assert!(!i.contains(&[7, 0, 1]));
        for bad in ["8.0", "[8.0", "[x, )", "[9, 8]", ""] {
            assert!(bad.parse::<VersionInterval>().is_err(), "{bad}");
        }
        let p = params(&[("type", "boot"), ("required_qemu", "[8.0")]);
        let err = TestTarget::read(&p)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("required_qemu"), "{err}");
    }

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
