//! The test registry: test types by `type` name, with their documented parameters, and the
//! [`TestContext`] a test function receives.
//!
//! A test is a plain function `fn(&TestContext) -> BoxFuture<'_, TestResult>` registered with a
//! [`TestSpec`]. Parameters marked `required` are checked by the runner before the test starts,
//! so a missing one is an error naming the key (never a skip), even if the test would only read
//! it late.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use params::Params;
use spec::{KeyDoc, Keys};
use tokio_util::sync::CancellationToken;

use crate::env::{RemoteHosts, VmEnv};
use crate::future::BoxFuture;
use crate::state::StateStore;
use crate::verdict::{TestError, TestResult};

/// A test type: its `type` name, a one-line description and its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TestSpec {
    /// The value of `type` that selects this test.
    pub name: &'static str,
    /// What the test checks.
    pub about: &'static str,
    /// Its parameters, each with its default: the declaration [`TestSpec::keys`] reads through.
    pub params: &'static [KeyDoc],
}

impl TestSpec {
    /// Typed reads of this test's parameters in `params` (object `test NAME`), defaults from
    /// [`TestSpec::params`], every bad or missing value collected (see [`spec::Keys`]).
    pub fn keys<'a>(&self, params: &'a Params) -> Keys<'a> {
        Keys::new(params, format!("test {}", self.name), self.params)
    }

    /// Check that every required parameter is set, all missing ones reported at once.
    ///
    /// # Errors
    /// [`spec::SpecError::Object`] naming each missing key.
    pub fn check_required(&self, params: &Params) -> Result<(), spec::SpecError> {
        let mut k = self.keys(params);
        for p in self.params.iter().filter(|p| p.required) {
            let _ = k.opt(p.key);
        }
        k.finish(())
    }

    /// The value of `key`, read through this spec's [`Keys`] and accepted by [`read_params`]:
    /// a key declared with a default always has one, so `None` means the declaration lost its
    /// default — the test's error, never a default of the call site.
    ///
    /// # Errors
    /// [`TestError::Error`] naming the key.
    pub fn declared<T>(&self, value: Option<T>, key: &str) -> Result<T, TestError> {
        value.ok_or_else(|| {
            TestError::error(format!(
                "test {}: {key} was read without a value: its declaration needs a default \
                 or `required`",
                self.name
            ))
        })
    }
}

/// The end of a test's parameter reading: the values, or the test's error listing every bad or
/// missing key with its `file:line`.
///
/// # Errors
/// [`TestError::Error`] with the spec's message.
pub fn read_params<T>(keys: Keys<'_>, value: T) -> Result<T, TestError> {
    Ok(keys.finish(value)?)
}

/// The signature of a test function.
pub type TestFn = for<'a> fn(&'a TestContext) -> BoxFuture<'a, TestResult>;

/// Why registering a test failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// Two tests were registered under one name.
    #[error("test type '{0}' is registered twice")]
    Duplicate(&'static str),
}

/// Test types by name.
#[derive(Clone, Default)]
pub struct Registry {
    tests: BTreeMap<&'static str, (TestSpec, TestFn)>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.tests.keys()).finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Registry::default()
    }

    /// Register `f` under `spec.name`.
    pub fn register(&mut self, spec: TestSpec, f: TestFn) -> Result<(), RegistryError> {
        if self.tests.contains_key(spec.name) {
            return Err(RegistryError::Duplicate(spec.name));
        }
        self.tests.insert(spec.name, (spec, f));
        Ok(())
    }

    /// The test registered as `name`.
    pub fn get(&self, name: &str) -> Option<(&TestSpec, TestFn)> {
        self.tests.get(name).map(|(s, f)| (s, *f))
    }

    /// Every spec, sorted by name.
    pub fn specs(&self) -> impl Iterator<Item = &TestSpec> {
        self.tests.values().map(|(s, _)| s)
    }
}

/// The log of one test: timestamped lines in `test.log` of the test's directory.
#[derive(Clone)]
pub struct TestLog {
    file: Option<Arc<Mutex<File>>>,
}

impl fmt::Debug for TestLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TestLog")
    }
}

impl TestLog {
    /// A log appending to `path`.
    pub fn create(path: &std::path::Path) -> std::io::Result<Self> {
        let file = File::options().create(true).append(true).open(path)?;
        Ok(TestLog {
            file: Some(Arc::new(Mutex::new(file))),
        })
    }

    /// A log that drops everything.
    pub fn discard() -> Self {
        TestLog { file: None }
    }

    /// Write one line. A log that cannot be written is not a test failure: the error is
    /// dropped.
    /// It is also an info event (target `kvmtest::test`): in `debug.log` and at `-v`.
    pub fn info(&self, msg: impl fmt::Display) {
        tracing::info!(target: "kvmtest::test", "{msg}");
        self.write("INFO", msg);
    }

    /// Write one warning line (and a warn event).
    pub fn warn(&self, msg: impl fmt::Display) {
        tracing::warn!(target: "kvmtest::test", "{msg}");
        self.write("WARN", msg);
    }

    fn write(&self, level: &str, msg: impl fmt::Display) {
        if let Some(f) = &self.file {
            if let Ok(mut f) = f.lock() {
                let _ = writeln!(f, "{} {level} {msg}", crate::time::now_rfc3339());
            }
        }
    }
}

/// Everything a test function can use.
pub struct TestContext {
    /// The variant's parameters, with their origins.
    pub params: Params,
    /// The variant's full name.
    pub name: String,
    /// The variant's short name.
    pub shortname: String,
    /// The test's own result directory (logs, copied artifacts).
    pub dir: PathBuf,
    /// The test's log.
    pub log: TestLog,
    /// Fires when the run is interrupted; long waits should select on it.
    pub cancel: CancellationToken,
    /// The worker's VMs.
    pub env: Arc<dyn VmEnv>,
    /// Hosts outside the VMs (shells, file transfer).
    pub remote: Arc<dyn RemoteHosts>,
    /// Key/value state kept between tests in `state.json`.
    pub state: StateStore,
}

impl TestContext {
    /// Typed reads of `spec`'s parameters in this variant (object `test NAME`): defaults from
    /// its declaration, every bad or missing value collected until [`read_params`].
    pub fn keys(&self, spec: &TestSpec) -> Keys<'_> {
        spec.keys(&self.params)
    }
}

impl fmt::Debug for TestContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestContext")
            .field("name", &self.name)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}
