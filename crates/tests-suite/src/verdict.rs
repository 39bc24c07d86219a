//! Verdicts and exit codes: the two enums every report is built from (house style #12).
//!
//! A test function returns `Result<(), TestError>`: `Ok` is a pass, and each [`TestError`]
//! variant is one of the other verdicts. A [`params::ParamError`] converts into
//! [`TestError::Error`] naming the key, so `params.require("x")?` can never turn a missing
//! parameter into a skip, the old framework's most confusing habit.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The outcome of one test.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", content = "message", rename_all = "lowercase")]
pub enum Verdict {
    /// The test ran and everything it checked held.
    Pass,
    /// The product misbehaved: what was expected and what was seen.
    Fail(String),
    /// The test could not do its job (bad or missing parameter, host problem, VM layer absent).
    Error(String),
    /// The test does not apply here, for the stated reason.
    Skip(String),
    /// The run was interrupted while this test ran.
    Cancel,
}

impl Verdict {
    /// The verdict's kind, without its message.
    pub fn kind(&self) -> VerdictKind {
        match self {
            Verdict::Pass => VerdictKind::Pass,
            Verdict::Fail(_) => VerdictKind::Fail,
            Verdict::Error(_) => VerdictKind::Error,
            Verdict::Skip(_) => VerdictKind::Skip,
            Verdict::Cancel => VerdictKind::Cancel,
        }
    }

    /// The message (failure text, error text or skip reason), if the verdict carries one.
    pub fn message(&self) -> Option<&str> {
        match self {
            Verdict::Fail(m) | Verdict::Error(m) | Verdict::Skip(m) => Some(m),
            Verdict::Pass | Verdict::Cancel => None,
        }
    }
}

impl From<Result<(), TestError>> for Verdict {
    fn from(r: Result<(), TestError>) -> Self {
        match r {
            Ok(()) => Verdict::Pass,
            Err(TestError::Fail(m)) => Verdict::Fail(m),
            Err(TestError::Error(m)) => Verdict::Error(m),
            Err(TestError::Skip(m)) => Verdict::Skip(m),
            Err(TestError::Cancelled) => Verdict::Cancel,
        }
    }
}

/// A verdict's kind, for counting and for labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerdictKind {
    /// See [`Verdict::Pass`].
    Pass,
    /// See [`Verdict::Fail`].
    Fail,
    /// See [`Verdict::Error`].
    Error,
    /// See [`Verdict::Skip`].
    Skip,
    /// See [`Verdict::Cancel`].
    Cancel,
}

impl VerdictKind {
    /// Upper-case label for progress lines (`PASS`, `FAIL`…).
    pub fn label(self) -> &'static str {
        match self {
            VerdictKind::Pass => "PASS",
            VerdictKind::Fail => "FAIL",
            VerdictKind::Error => "ERROR",
            VerdictKind::Skip => "SKIP",
            VerdictKind::Cancel => "CANCEL",
        }
    }
}

impl fmt::Display for VerdictKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.label())
    }
}

/// Running verdict counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Passed tests.
    pub pass: u64,
    /// Failed tests.
    pub fail: u64,
    /// Tests that could not run properly.
    pub error: u64,
    /// Skipped tests.
    pub skip: u64,
    /// Tests cut short by an interruption.
    pub cancel: u64,
    /// Of the passed tests, those that passed only on a retry (`--retries`).
    #[serde(default)]
    pub flaky: u64,
}

impl Counts {
    /// Count one more verdict of `kind`.
    pub fn add(&mut self, kind: VerdictKind) {
        match kind {
            VerdictKind::Pass => self.pass += 1,
            VerdictKind::Fail => self.fail += 1,
            VerdictKind::Error => self.error += 1,
            VerdictKind::Skip => self.skip += 1,
            VerdictKind::Cancel => self.cancel += 1,
        }
    }

    /// All verdicts counted.
    pub fn total(&self) -> u64 {
        self.pass + self.fail + self.error + self.skip + self.cancel
    }

    /// Whether nothing failed, errored or was cancelled (skips are not failures).
    pub fn all_ok(&self) -> bool {
        self.fail == 0 && self.error == 0 && self.cancel == 0
    }
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pass {}", self.pass)?;
        if self.flaky > 0 {
            write!(f, " ({} flaky)", self.flaky)?;
        }
        write!(
            f,
            " fail {} error {} skip {} cancel {}",
            self.fail, self.error, self.skip, self.cancel
        )
    }
}

/// Why a test function stopped without passing; each variant is one verdict.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TestError {
    /// The product misbehaved → [`Verdict::Fail`].
    #[error("{0}")]
    Fail(String),
    /// The test could not do its job → [`Verdict::Error`].
    #[error("{0}")]
    Error(String),
    /// The test does not apply → [`Verdict::Skip`]. Never for a missing parameter.
    #[error("skipped: {0}")]
    Skip(String),
    /// The test saw the cancellation token fire → [`Verdict::Cancel`].
    #[error("cancelled")]
    Cancelled,
}

impl TestError {
    /// A failure with a message.
    pub fn fail(msg: impl Into<String>) -> Self {
        TestError::Fail(msg.into())
    }

    /// An error with a message.
    pub fn error(msg: impl Into<String>) -> Self {
        TestError::Error(msg.into())
    }
}

/// Bad or missing params, as `spec` reads them: the test's error, with every problem and its
/// `file:line`.
impl From<spec::SpecError> for TestError {
    fn from(e: spec::SpecError) -> Self {
        TestError::Error(crate::error::error_chain(&e))
    }
}

impl From<params::ParamError> for TestError {
    fn from(e: params::ParamError) -> Self {
        TestError::Error(e.to_string())
    }
}

/// What a test function returns.
pub type TestResult = Result<(), TestError>;

/// The process exit status of `kvmtest run` / `merge` / `gc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Every test passed (or was skipped).
    Success,
    /// At least one test failed, errored or was cancelled.
    TestsFailed,
    /// Bad usage, settings or config: nothing ran.
    Usage,
    /// Interrupted by SIGINT/SIGTERM; finished results were kept.
    Interrupted,
}

impl ExitStatus {
    /// The numeric exit code: 0, 1, 2 or 130.
    pub fn code(self) -> u8 {
        match self {
            ExitStatus::Success => 0,
            ExitStatus::TestsFailed => 1,
            ExitStatus::Usage => 2,
            ExitStatus::Interrupted => 130,
        }
    }
}

impl From<ExitStatus> for std::process::ExitCode {
    fn from(s: ExitStatus) -> Self {
        std::process::ExitCode::from(s.code())
    }
}
