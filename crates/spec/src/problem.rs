//! Problems: every bad key of a variant, reported at once.
//!
//! A [`Problem`] names the object (`image image1`), the key, the value and the cfg `file:line`
//! that set it. Specs collect problems instead of stopping at the first one, a command-line
//! builder adds what its QEMU lacks, and [`SpecError`] carries the whole list, so a user fixes a
//! variant in one pass rather than one run per typo.

use std::fmt;

use params::Origin;

/// What is wrong with one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProblemKind {
    /// The value cannot be read as what the key means.
    Invalid {
        /// What was expected, as a noun phrase (`"a size such as 512 or 2G"`).
        expected: String,
    },
    /// A key the object cannot do without is missing or empty.
    Missing,
    /// The value is well-formed but this QEMU binary cannot do it.
    Unsupported {
        /// What is missing from the binary.
        reason: String,
    },
}

/// One bad key of one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The object, e.g. `vm vm1`, `image image1`, `nic nic2`.
    pub object: String,
    /// The parameter as the object sees it (`drive_format`, not `drive_format_image1`).
    pub key: String,
    /// Its value, when set.
    pub value: Option<String>,
    /// Where the value was set, when known.
    pub origin: Option<Origin>,
    /// What is wrong.
    pub kind: ProblemKind,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(o) = &self.origin {
            write!(f, "{o}: ")?;
        }
        write!(f, "{}: {}", self.object, self.key)?;
        if let Some(v) = &self.value {
            write!(f, " = {v:?}")?;
        }
        match &self.kind {
            ProblemKind::Invalid { expected } => write!(f, ": expected {expected}"),
            ProblemKind::Missing => write!(f, ": missing (required)"),
            ProblemKind::Unsupported { reason } => write!(f, ": {reason}"),
        }
    }
}

/// A VM's params cannot be used: every problem found (by the spec, or by a command-line builder
/// for the QEMU at hand), or no such VM.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// The params of the VM have bad keys; all of them are listed.
    #[error("{count} problem(s) in the params of vm {vm}:{list}", count = .problems.len(), list = ProblemList(.problems))]
    Params {
        /// The VM.
        vm: String,
        /// Every problem found, in cfg order (see `sort_problems`).
        problems: Vec<Problem>,
    },
    /// The params of an object that is not a VM (a test, the runner's processing) have bad
    /// keys; all of them are listed.
    #[error("{count} problem(s) in the params of {object}:{list}", count = .problems.len(), list = ProblemList(.problems))]
    Object {
        /// The object, e.g. `test boot`.
        object: String,
        /// Every problem found, in cfg order.
        problems: Vec<Problem>,
    },
    /// `vms` names no VM, or the requested VM is not listed.
    #[error("no vm {0:?} in `vms`")]
    NoSuchVm(String),
}

impl SpecError {
    /// The problems (empty for [`SpecError::NoSuchVm`]).
    pub fn problems(&self) -> &[Problem] {
        match self {
            SpecError::Params { problems, .. } | SpecError::Object { problems, .. } => problems,
            SpecError::NoSuchVm(_) => &[],
        }
    }
}

struct ProblemList<'a>(&'a [Problem]);

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in self.0 {
            write!(f, "\n  {p}")?;
        }
        Ok(())
    }
}

/// `value` if no problem was found, else every problem (sorted) for VM `vm`.
///
/// # Errors
///
/// [`SpecError::Params`] when `problems` is not empty.
pub fn into_result<T>(value: T, vm: &str, mut problems: Vec<Problem>) -> Result<T, SpecError> {
    if problems.is_empty() {
        Ok(value)
    } else {
        sort_problems(&mut problems);
        Err(SpecError::Params {
            vm: vm.to_string(),
            problems,
        })
    }
}

/// Sorts problems into cfg order (file, line); those without a line (missing keys) go last, in
/// the order they were found.
pub fn sort_problems(problems: &mut [Problem]) {
    problems.sort_by(|a, b| match (&a.origin, &b.origin) {
        (Some(x), Some(y)) => (&x.file, x.line).cmp(&(&y.file, y.line)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    });
}
