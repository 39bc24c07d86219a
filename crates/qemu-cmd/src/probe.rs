//! Probing a QEMU binary: the only module of this crate that runs processes or touches files.
//!
//! [`probe`] runs the binary with `-version`, `-help`, `-device help`, `-machine help`,
//! `-machine pc,help`, `-cpu help`, `-netdev help`, `-accel help` and `-spice help` (each with a
//! timeout, stdin closed, `LC_ALL=C`) and parses the outputs with [`Capabilities::from_help`].
//! `-spice help` is the binary's own answer to "does SPICE work": QEMU builds SPICE as a module
//! that `-help` lists whether or not it loads, and the sub-options it prints (7.2 has both
//! `password` and `password-secret`, 10.0 only the latter) are what `-spice` accepts.
//! [`probe_cached`] keeps the result on disk keyed by the binary's canonical path, size and
//! modification time (and the cache's format, [`CACHE_FORMAT`]), so a test run probes each
//! binary once. The version comes from `-version`, which prints the same triple QMP's
//! `query-version` reports, without starting a VM.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::caps::{Capabilities, CapsError, HelpTexts};

/// The environment variable that names the QEMU binary to use when none is given explicitly
/// (`--qemu`, `qemu_binary`): a path, or a name looked up on `PATH`.
pub const QEMU_ENV: &str = "KVMTEST_QEMU";

/// The binary used when neither an explicit choice nor [`QEMU_ENV`] names one.
pub const DEFAULT_QEMU: &str = "qemu-system-x86_64";

/// The QEMU binary to use by default: `$KVMTEST_QEMU` when it is set and not empty, else
/// [`DEFAULT_QEMU`] (looked up on `PATH` when run). Every layer (tests, the runner, the CLI,
/// xtask) takes its default from here, so one setting selects the QEMU of a whole run.
pub fn default_binary() -> PathBuf {
    match std::env::var_os(QEMU_ENV) {
        Some(q) if !q.is_empty() => PathBuf::from(q),
        _ => PathBuf::from(DEFAULT_QEMU),
    }
}

/// How long one probe command may run.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

/// Probing failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The binary could not be started or inspected.
    #[error("running {binary}")]
    Spawn {
        /// The binary.
        binary: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A probe command did not finish in time (it was killed).
    #[error("`{binary} {args}` did not finish within {after:?}")]
    Timeout {
        /// The binary.
        binary: PathBuf,
        /// The probe's arguments.
        args: String,
        /// The limit.
        after: Duration,
    },
    /// `-help` failed: this is not a usable QEMU.
    #[error("`{binary} {args}` failed ({status}): {stderr}")]
    Failed {
        /// The binary.
        binary: PathBuf,
        /// The probe's arguments.
        args: String,
        /// Exit status.
        status: String,
        /// Its standard error.
        stderr: String,
    },
    /// The output could not be understood.
    #[error("probing {binary}")]
    Parse {
        /// The binary.
        binary: PathBuf,
        /// Why.
        #[source]
        source: CapsError,
    },
    /// The cache could not be written.
    #[error("writing the capabilities cache {path}")]
    Cache {
        /// The cache file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// What a cache entry was probed from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheKey {
    /// The canonical path of the binary.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// Its modification time, in nanoseconds since the epoch.
    pub mtime_ns: i128,
}

impl CacheKey {
    /// The key of `binary` as it is now on disk.
    ///
    /// # Errors
    ///
    /// [`ProbeError::Spawn`] when the binary cannot be found or inspected.
    pub fn of(binary: &Path) -> Result<CacheKey, ProbeError> {
        let spawn = |source| ProbeError::Spawn {
            binary: binary.to_path_buf(),
            source,
        };
        let path = resolve(binary).canonicalize().map_err(spawn)?;
        let meta = std::fs::metadata(&path).map_err(spawn)?;
        Ok(CacheKey {
            size: meta.len(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            path,
        })
    }

    /// The cache file name: a stable 64-bit FNV-1a hash of the key.
    fn file_name(&self) -> String {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let text = format!("{}\0{}\0{}", self.path.display(), self.size, self.mtime_ns);
        for b in text.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        format!("{h:016x}.json")
    }
}

/// The version of what a probe collects: an entry of another version (one written before
/// the probe learned a new question, whose answer would read as "absent") is probed again.
pub const CACHE_FORMAT: u32 = 2;

/// A cache entry: the key it was probed with and the result.
#[derive(Debug, Serialize, Deserialize)]
struct CacheEntry {
    /// [`CACHE_FORMAT`] when written (entries before it had none: 0).
    #[serde(default)]
    format: u32,
    key: CacheKey,
    caps: Capabilities,
}

/// `binary` itself when it names a path, else its location on `PATH`.
fn resolve(binary: &Path) -> PathBuf {
    if binary.components().count() > 1 {
        return binary.to_path_buf();
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(binary))
        .find(|p| p.is_file())
        .unwrap_or_else(|| binary.to_path_buf())
}

/// The default cache directory: `$XDG_CACHE_HOME/kvmtest/qemu-caps`, else
/// `~/.cache/kvmtest/qemu-caps`, else one under the system temp dir.
pub fn default_cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("kvmtest").join("qemu-caps")
}

/// What one probe printed, and whether it exited successfully.
struct Output {
    success: bool,
    /// Its stdout, else (when stdout is blank) its stderr.
    text: String,
}

/// Runs one probe; an exit status other than success is an error only for `-help`.
fn run(binary: &Path, args: &[&str], timeout: Duration) -> Result<Output, ProbeError> {
    let joined = args.join(" ");
    // Probing is the one place of this crate that runs a program.
    #[allow(clippy::disallowed_methods)]
    let mut child = Command::new(binary)
        .args(args)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| ProbeError::Spawn {
            binary: binary.to_path_buf(),
            source,
        })?;
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = Vec::new();
            if let Some(mut p) = pipe {
                // A read error leaves what was read; the exit status decides.
                let _ = p.read_to_end(&mut s);
            }
            String::from_utf8_lossy(&s).into_owned()
        })
    };
    let out = reader(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = reader(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                // Kill and reap, so no process outlives the probe.
                let _ = child.kill();
                let _ = child.wait();
                return Err(ProbeError::Timeout {
                    binary: binary.to_path_buf(),
                    args: joined,
                    after: timeout,
                });
            }
            Err(source) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(ProbeError::Spawn {
                    binary: binary.to_path_buf(),
                    source,
                });
            }
        }
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    if !status.success() && args == ["-help"] {
        return Err(ProbeError::Failed {
            binary: binary.to_path_buf(),
            args: joined,
            status: status.to_string(),
            stderr,
        });
    }
    // Some releases print help lists on stderr.
    Ok(Output {
        success: status.success(),
        text: if stdout.trim().is_empty() {
            stderr
        } else {
            stdout
        },
    })
}

/// Probes `binary` (a path, or a name looked up on `PATH`). Runs it nine times.
///
/// # Errors
///
/// [`ProbeError`] when the binary cannot run, `-help` fails, a probe hangs, or no version is
/// found.
pub fn probe(binary: &Path) -> Result<Capabilities, ProbeError> {
    let bin = resolve(binary);
    // A help that fails counts as empty (the binary lacks it)…
    let get = |args: &[&str]| -> Result<String, ProbeError> {
        let out = run(&bin, args, PROBE_TIMEOUT)?;
        Ok(if out.success { out.text } else { String::new() })
    };
    let texts = HelpTexts {
        version: get(&["-version"])?,
        help: get(&["-help"])?,
        device_help: get(&["-device", "help"])?,
        machine_help: get(&["-machine", "help"])?,
        machine_properties_help: get(&["-machine", "pc,help"])?,
        cpu_help: get(&["-cpu", "help"])?,
        netdev_help: get(&["-netdev", "help"])?,
        accel_help: get(&["-accel", "help"])?,
        // …except `-spice help`, which prints its list and exits 1 (its parser reads the list).
        spice_help: run(&bin, &["-spice", "help"], PROBE_TIMEOUT)?.text,
    };
    let note = format!("probed from {}", bin.display());
    Capabilities::from_help(&texts, note).map_err(|source| ProbeError::Parse {
        binary: bin,
        source,
    })
}

/// [`probe`] through an on-disk cache in `cache_dir`, keyed by [`CacheKey`]: a binary that was
/// replaced (size or mtime changed) is probed again. The entry is written atomically (temp file
/// then rename), so concurrent test processes never read half a file.
///
/// # Errors
///
/// Those of [`probe`], and [`ProbeError::Cache`] when the entry cannot be written.
pub fn probe_cached(binary: &Path, cache_dir: &Path) -> Result<Capabilities, ProbeError> {
    let key = CacheKey::of(binary)?;
    let file = cache_dir.join(key.file_name());
    if let Ok(text) = std::fs::read_to_string(&file) {
        if let Ok(entry) = serde_json::from_str::<CacheEntry>(&text) {
            if entry.key == key && entry.format == CACHE_FORMAT {
                return Ok(entry.caps);
            }
        }
    }
    let caps = probe(&key.path)?;
    let cache_err = |source| ProbeError::Cache {
        path: file.clone(),
        source,
    };
    std::fs::create_dir_all(cache_dir).map_err(cache_err)?;
    let entry = CacheEntry {
        format: CACHE_FORMAT,
        key,
        caps: caps.clone(),
    };
    let text = serde_json::to_string(&entry).map_err(|e| cache_err(std::io::Error::other(e)))?;
    let tmp = cache_dir.join(format!(".{}.{}.tmp", file_stem(&file), std::process::id()));
    std::fs::write(&tmp, text).map_err(cache_err)?;
    std::fs::rename(&tmp, &file).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        cache_err(e)
    })?;
    Ok(caps)
}

fn file_stem(p: &Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}
