//! `kvmtest.toml`: what a user sets once — results directory, default QEMU binary, guest
//! cache, default `--jobs`, extra config directories.
//!
//! The first file found wins (files are not merged): `./kvmtest.toml`, then
//! `$XDG_CONFIG_HOME/kvmtest/kvmtest.toml` (or the platform config dir from the `dirs` crate,
//! `~/.config` on Linux). Relative paths in a file are relative to the file's directory. Every
//! value can be overridden by a flag. An unknown key or a bad value is an error naming the file,
//! line and column.
//!
//! ```toml
//! results_dir = "/var/tmp/kvmtest-results"
//! qemu_binary = "/usr/local/bin/qemu-system-x86_64"
//! guest_cache = "~/.cache/kvmtest/guests"   # `~/` is expanded
//! jobs = 2
//! config_dirs = ["/srv/tp-qemu/cfg"]
//! ```

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The settings file name.
pub const FILE_NAME: &str = "kvmtest.toml";

/// Why settings could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SettingsError {
    /// The file could not be read.
    #[error("reading {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid settings.
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong (TOML syntax, unknown key, bad value).
        message: String,
    },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    results_dir: Option<PathBuf>,
    qemu_binary: Option<PathBuf>,
    guest_cache: Option<PathBuf>,
    jobs: Option<NonZeroUsize>,
    config_dirs: Option<Vec<PathBuf>>,
}

/// Effective settings: the file's values with defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The file they came from, if any.
    pub source: Option<PathBuf>,
    /// Where job directories go (default `results`).
    pub results_dir: PathBuf,
    /// The QEMU binary to run, if set: overridden by `--qemu`, overrides `$KVMTEST_QEMU`.
    pub qemu_binary: Option<PathBuf>,
    /// Where built guest images are cached, if set.
    pub guest_cache: Option<PathBuf>,
    /// Default `--jobs` (default 1).
    pub jobs: usize,
    /// Directories searched for a config file given by a relative path.
    pub config_dirs: Vec<PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            source: None,
            results_dir: PathBuf::from("results"),
            qemu_binary: None,
            guest_cache: None,
            jobs: 1,
            config_dirs: Vec::new(),
        }
    }
}

/// Line and column (1-based) of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before
        .rfind('\n')
        .map_or(before.len(), |i| before.len() - i - 1)
        + 1;
    (line, col)
}

fn resolve(base: &Path, p: PathBuf) -> PathBuf {
    if let Ok(rest) = p.strip_prefix("~") {
        if let Some(home) = dirs::home_dir() {
            return home.join(rest);
        }
    }
    if p.is_absolute() {
        p
    } else {
        base.join(p)
    }
}

impl Settings {
    /// Parse settings `text` read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Self, SettingsError> {
        let file: File = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map_or((1, 1), |s| line_col(text, s.start));
            SettingsError::Invalid {
                path: path.to_path_buf(),
                line,
                column,
                message: e.message().trim().to_string(),
            }
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let d = Settings::default();
        Ok(Settings {
            source: Some(path.to_path_buf()),
            results_dir: file
                .results_dir
                .map_or(d.results_dir, |p| resolve(&base, p)),
            qemu_binary: file.qemu_binary.map(|p| {
                // A bare name is looked up on PATH, not next to the file.
                if p.components().count() == 1 {
                    p
                } else {
                    resolve(&base, p)
                }
            }),
            guest_cache: file.guest_cache.map(|p| resolve(&base, p)),
            jobs: file.jobs.map_or(d.jobs, NonZeroUsize::get),
            config_dirs: file
                .config_dirs
                .unwrap_or_default()
                .into_iter()
                .map(|p| resolve(&base, p))
                .collect(),
        })
    }

    /// Load settings from `path`.
    pub fn load(path: &Path) -> Result<Self, SettingsError> {
        let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Settings::parse(path, &text)
    }

    /// Find and load the settings for working directory `cwd` (defaults when there is no
    /// file).
    pub fn discover(cwd: &Path) -> Result<Self, SettingsError> {
        match find(cwd) {
            Some(path) => Settings::load(&path),
            None => Ok(Settings::default()),
        }
    }

    /// Resolve a config file path: as given when it exists (or is absolute), else the first
    /// of `config_dirs` that holds it.
    pub fn find_config(&self, cfg: &Path) -> PathBuf {
        if cfg.is_absolute() || cfg.exists() {
            return cfg.to_path_buf();
        }
        self.config_dirs
            .iter()
            .map(|d| d.join(cfg))
            .find(|p| p.exists())
            .unwrap_or_else(|| cfg.to_path_buf())
    }
}

/// The settings file for `cwd`: `cwd/kvmtest.toml`, then the user's config directory.
pub fn find(cwd: &Path) -> Option<PathBuf> {
    let local = cwd.join(FILE_NAME);
    if local.is_file() {
        return Some(local);
    }
    let config_home = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(dirs::config_dir)?;
    let user = config_home.join("kvmtest").join(FILE_NAME);
    user.is_file().then_some(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column() {
        assert_eq!(line_col("a\nbc\nd", 4), (2, 3));
        assert_eq!(line_col("abc", 0), (1, 1));
    }
}
