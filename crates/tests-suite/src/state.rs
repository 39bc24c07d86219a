//! State kept between tests: a JSON object in `state.json` of the job directory.
//!
//! avocado-vt pickled its `env` between tests; here tests share plain JSON values by key, and
//! the runner records each finished test. The file is rewritten atomically (temporary file and
//! rename) after every change, so an interrupted run leaves a readable file.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};

/// Why the state file could not be written.
#[derive(Debug, thiserror::Error)]
#[error("writing {path}")]
pub struct StateError {
    /// The state file.
    pub path: PathBuf,
    /// The I/O error.
    #[source]
    pub source: std::io::Error,
}

/// A shared handle on the state file.
#[derive(Debug, Clone)]
pub struct StateStore {
    inner: Arc<Mutex<Map<String, Value>>>,
    path: Option<Arc<PathBuf>>,
}

impl StateStore {
    /// A store persisted at `path`, starting empty.
    pub fn create(path: &Path) -> Result<Self, StateError> {
        let s = StateStore {
            inner: Arc::new(Mutex::new(Map::new())),
            path: Some(Arc::new(path.to_path_buf())),
        };
        s.save()?;
        Ok(s)
    }

    /// A store that is never written (for tests of tests).
    pub fn in_memory() -> Self {
        StateStore {
            inner: Arc::new(Mutex::new(Map::new())),
            path: None,
        }
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<Value> {
        self.inner.lock().ok().and_then(|m| m.get(key).cloned())
    }

    /// Set `key` and write the file.
    pub fn set(&self, key: &str, value: Value) -> Result<(), StateError> {
        if let Ok(mut m) = self.inner.lock() {
            m.insert(key.to_string(), value);
        }
        self.save()
    }

    /// Write the file now.
    pub fn save(&self) -> Result<(), StateError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let text = match self.inner.lock() {
            Ok(m) => serde_json::to_string_pretty(&*m).unwrap_or_default(),
            Err(_) => return Ok(()),
        };
        crate::fsutil::write_atomic(path, text.as_bytes()).map_err(|source| StateError {
            path: path.to_path_buf(),
            source,
        })
    }
}
