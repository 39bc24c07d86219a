//! Test support: a real QEMU owned by an RAII guard, and a scripted fake QMP
//! peer for fault injection.
//!
//! [`Qemu`] kills and reaps its process on drop, also when the test panics,
//! and its [`tempfile::TempDir`] removes the sockets, transcripts and logs.
//! On a panic it prints QEMU's stderr and the transcripts between markers,
//! so a failure explains itself.
//!
//! The QEMU under test is [`qemu_binary`]: `$KVMTEST_QEMU`, else `qemu-system-x86_64` — the
//! rule of `qemu_cmd::probe::default_binary`, restated here because `monitor` depends on no
//! other kvmtest crate, not even for its tests. The first QMP connection of a test process
//! prints `QEMU under test: <path> (<query-version>)`.
#![allow(clippy::disallowed_methods)] // tests and examples start their own peers
#![allow(dead_code)] // each test binary uses a different part of this module

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use monitor::{HmpClient, HmpConfig, QmpClient, QmpConfig};

/// The environment variable that selects the QEMU binary (as in `qemu_cmd::probe::QEMU_ENV`).
pub const QEMU_ENV: &str = "KVMTEST_QEMU";
/// The QEMU binary used when [`QEMU_ENV`] is unset or empty.
pub const DEFAULT_QEMU: &str = "qemu-system-x86_64";

/// The QEMU binary the tests use: `$KVMTEST_QEMU` when set and not empty, else
/// `qemu-system-x86_64` (looked up on `PATH`). The same rule as
/// `qemu_cmd::probe::default_binary`, read here directly: the monitor crate depends on no other
/// kvmtest crate, not even as a dev-dependency.
pub fn qemu_binary() -> PathBuf {
    match std::env::var_os(QEMU_ENV) {
        Some(q) if !q.is_empty() => PathBuf::from(q),
        _ => PathBuf::from(DEFAULT_QEMU),
    }
}

/// `binary` when it is a path, else where it is on `PATH` (for the report line).
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

/// Prints `QEMU under test: <path> (<version>)` once per test process, with the version that
/// `query-version` returns on `qmp`.
async fn report_version(binary: &Path, qmp: &QmpClient) {
    static REPORTED: AtomicBool = AtomicBool::new(false);
    if REPORTED.swap(true, Ordering::SeqCst) {
        return;
    }
    let version = match qmp.run(&qapi::qmp::query_version {}).await {
        Ok(v) => format!(
            "{}.{}.{} {}",
            v.qemu.major,
            v.qemu.minor,
            v.qemu.micro,
            v.package.trim()
        )
        .trim_end()
        .to_owned(),
        Err(e) => format!("query-version failed: {}", chain(&e)),
    };
    eprintln!(
        "QEMU under test: {} ({version}, from query-version)",
        resolve(binary).display()
    );
}

/// A QEMU process started with `-S -display none -nodefaults -accel tcg`
/// and a QMP and a human monitor on unix sockets in a private tempdir.
pub struct Qemu {
    child: Child,
    dir: tempfile::TempDir,
    binary: PathBuf,
    argv: Vec<String>,
}

impl Qemu {
    /// Starts QEMU with `-machine <machine>` plus `extra` arguments.
    ///
    /// Panics with an install hint when the binary is missing: a missing
    /// QEMU must fail the suite, never skip it.
    pub fn start(machine: &str, extra: &[&str]) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("kvmtest-monitor-")
            .tempdir()
            .expect("creating a tempdir");
        let qmp = dir.path().join("qmp.sock");
        let hmp = dir.path().join("hmp.sock");
        let mut argv: Vec<String> = [
            "-S",
            "-display",
            "none",
            "-nodefaults",
            "-accel",
            "tcg",
            "-machine",
            machine,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        argv.push("-qmp".into());
        argv.push(format!("unix:{},server=on,wait=off", qmp.display()));
        argv.push("-monitor".into());
        argv.push(format!("unix:{},server=on,wait=off", hmp.display()));
        argv.extend(extra.iter().map(|s| s.to_string()));
        let binary = qemu_binary();
        let shown = binary.display();
        eprintln!("starting: {shown} {}", argv.join(" "));
        let stderr = std::fs::File::create(dir.path().join("qemu.stderr")).expect("stderr log");
        let child = match Command::new(&binary)
            .args(&argv)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
        {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "{shown} is not installed (not found); these tests need a real QEMU: \
                 apt-get install -y qemu-system-x86, or name one with {QEMU_ENV}"
            ),
            Err(e) => panic!("spawning {shown}: {e}"),
        };
        Self {
            child,
            dir,
            binary,
            argv,
        }
    }

    /// `-machine pc` with nothing else.
    pub fn pc() -> Self {
        Self::start("pc", &[])
    }

    /// The private directory (sockets, logs, transcripts).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The QMP socket path.
    pub fn qmp_path(&self) -> PathBuf {
        self.dir.path().join("qmp.sock")
    }

    /// The human monitor socket path.
    pub fn hmp_path(&self) -> PathBuf {
        self.dir.path().join("hmp.sock")
    }

    /// QEMU's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Connects a QMP client writing `qmp.jsonl` in the tempdir.
    pub async fn qmp(&self) -> QmpClient {
        self.qmp_with(QmpConfig::default()).await
    }

    /// Connects a QMP client with `config` (plus the transcript).
    pub async fn qmp_with(&self, config: QmpConfig) -> QmpClient {
        let config = config.transcript(self.dir().join("qmp.jsonl"));
        let qmp = QmpClient::connect_unix(self.qmp_path(), config)
            .await
            .unwrap_or_else(|e| panic!("connecting QMP: {}", chain(&e)));
        report_version(&self.binary, &qmp).await;
        qmp
    }

    /// Connects a human monitor client writing `hmp.jsonl`.
    pub async fn hmp(&self) -> HmpClient {
        let config = HmpConfig::default().transcript(self.dir().join("hmp.jsonl"));
        HmpClient::connect_unix(self.hmp_path(), config)
            .await
            .unwrap_or_else(|e| panic!("connecting HMP: {}", chain(&e)))
    }

    /// Sends SIGKILL now (the guard still reaps on drop).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
    }

    /// Sends a signal by name through `kill(1)` (keeps the tests free of libc).
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([format!("-{sig}"), self.pid().to_string()])
            .status()
            .expect("running kill(1)");
        assert!(status.success(), "kill -{sig} {} failed", self.pid());
    }

    /// Waits up to `timeout` for QEMU to exit on its own.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let end = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < end {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        // Kill first: a stopped (SIGSTOP) QEMU still dies on SIGKILL.
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "===== argv: {} {}",
                self.binary.display(),
                self.argv.join(" ")
            );
            for name in ["qemu.stderr", "qmp.jsonl", "hmp.jsonl"] {
                let path = self.dir.path().join(name);
                if let Ok(text) = std::fs::read_to_string(&path) {
                    eprintln!("===== {name} =====\n{text}===== end {name} =====");
                }
            }
        }
    }
}

/// An error with its whole source chain, for panic messages.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(src) = cur {
        s.push_str(": ");
        s.push_str(&src.to_string());
        cur = src.source();
    }
    s
}

/// The non-empty device ids listed by `info pci` text (`id "nic1"` lines).
pub fn pci_ids(info_pci: &str) -> Vec<String> {
    info_pci
        .lines()
        .filter_map(|l| l.trim().strip_prefix("id \""))
        .filter_map(|l| l.strip_suffix('"'))
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .collect()
}
