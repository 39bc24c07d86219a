//! Booting the guest: the accelerator probe ([`probe_accel`], [`Accel`]) and the boot harness
//! (`BootSpec`, `Guest`: QEMU under `setpriv --pdeathsig KILL`, killed by its `QemuGuard`, with
//! the serial console and QMP on Unix sockets).

use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};

use super::wire::{Protocol, Qmp, Wire};
use super::{KVM_PROBE_TIMEOUT, READY_MARKER};
use crate::host::show;

/// The accelerator to run guests with, and why it was chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accel {
    /// A guest reached its ready marker under KVM.
    Kvm { reason: String },
    /// KVM is unusable (or was not asked for); QEMU emulates the CPU.
    Tcg { reason: String },
}

impl Accel {
    /// The `-accel` value.
    pub fn qemu_name(&self) -> &'static str {
        match self {
            Accel::Kvm { .. } => "kvm",
            Accel::Tcg { .. } => "tcg",
        }
    }
}

impl fmt::Display for Accel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (Accel::Kvm { reason } | Accel::Tcg { reason }) = self;
        write!(f, "{} ({reason})", self.qemu_name())
    }
}

/// Picks KVM only if a guest actually runs under it: `/dev/kvm` opens read-write, the host CPU
/// has `vmx` or `svm`, and `kernel` + `initrd` (the kvmtest guest) boot under `-accel kvm` to
/// the ready marker within 20 s; TCG otherwise. Prints the choice and the reason.
///
/// On the machines this project runs on `/dev/kvm` exists and QEMU accepts `-accel kvm`, but the
/// CPU exposes no virtualization extensions and a KVM guest hangs in early boot, hence the boot.
pub fn probe_accel(qemu: &Path, kernel: &Path, initrd: &Path) -> Accel {
    let accel = match kvm_blocker() {
        Some(reason) => Accel::Tcg { reason },
        None => match boot_under_kvm(
            qemu,
            Boot::Kernel { kernel, initrd },
            256,
            KVM_PROBE_TIMEOUT,
        ) {
            Ok(took) => Accel::Kvm {
                reason: format!(
                    "a guest reached its ready marker under KVM in {:.1} s",
                    took.as_secs_f64()
                ),
            },
            Err(e) => Accel::Tcg {
                reason: format!("/dev/kvm looks usable but a guest under KVM failed: {e:#}"),
            },
        },
    };
    eprintln!("accelerator: {accel}");
    accel
}

/// Why KVM cannot work here, judged without starting a guest: the vm crate's cheap probe
/// (`/dev/kvm` opens read-write and the CPU shows vmx or svm).
fn kvm_blocker() -> Option<String> {
    let choice = vm::probe_accel();
    match choice.accel {
        qemu_cmd::types::Accel::Kvm => None,
        _ => Some(choice.reason),
    }
}

/// [`probe_accel`] for the disk guest: boots `image` (a throw-away overlay) under KVM.
pub(super) fn probe_accel_disk(qemu: &Path, image: &Path) -> Accel {
    let accel = match kvm_blocker() {
        Some(reason) => Accel::Tcg { reason },
        None => match boot_under_kvm(qemu, Boot::Disk { image }, 1024, DISK_KVM_PROBE_TIMEOUT) {
            Ok(took) => Accel::Kvm {
                reason: format!(
                    "the disk guest reached its ready marker under KVM in {:.1} s",
                    took.as_secs_f64()
                ),
            },
            Err(e) => Accel::Tcg {
                reason: format!("/dev/kvm looks usable but a guest under KVM failed: {e:#}"),
            },
        },
    };
    eprintln!("accelerator: {accel}");
    accel
}

/// How long the disk guest may take under KVM before KVM is judged unusable.
const DISK_KVM_PROBE_TIMEOUT: Duration = Duration::from_secs(60);

fn boot_under_kvm(
    qemu: &Path,
    boot: Boot<'_>,
    mem_mib: u32,
    timeout: Duration,
) -> Result<Duration> {
    let run = tempfile::Builder::new()
        .prefix("kvmtest-kvm-probe.")
        .tempdir()
        .context("creating the probe's directory")?;
    let mut guest = Guest::start(&BootSpec {
        qemu,
        accel: "kvm",
        boot,
        mem_mib,
        smp: 1,
        extra: Vec::new(),
        logs: run.path(),
    })?;
    guest.wait_ready(timeout)
}

/// What a guest boots from.
#[derive(Clone, Copy)]
pub(super) enum Boot<'a> {
    /// `-kernel`, `-initrd` and the initramfs guest's command line.
    Kernel { kernel: &'a Path, initrd: &'a Path },
    /// A qcow2 disk on virtio-blk (its own boot loader and kernel).
    Disk { image: &'a Path },
}

/// One QEMU invocation of the guest.
pub(super) struct BootSpec<'a> {
    pub(super) qemu: &'a Path,
    pub(super) accel: &'a str,
    /// What boots: a kernel and initramfs, or a disk image.
    pub(super) boot: Boot<'a>,
    /// Guest memory in MiB.
    pub(super) mem_mib: u32,
    /// vCPUs.
    pub(super) smp: u32,
    /// Devices and other options after the common ones.
    pub(super) extra: Vec<OsString>,
    /// Where `serial.log` and `qemu.stderr` go.
    pub(super) logs: &'a Path,
}

/// A QEMU process, SIGKILLed (and reaped) when dropped unless it has exited; its socket
/// directory is removed after that.
pub(super) struct QemuGuard {
    pub(super) child: Child,
    _sockets: tempfile::TempDir,
}

impl Drop for QemuGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // Best effort: the process may exit on its own between the check and the kill.
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// A running guest: its QEMU, serial console and QMP socket.
pub(super) struct Guest {
    pub(super) qemu: QemuGuard,
    pub(super) serial: Wire<UnixStream>,
    qmp_path: PathBuf,
    stderr_path: PathBuf,
    started: Instant,
}

impl Guest {
    pub(super) fn start(spec: &BootSpec<'_>) -> Result<Guest> {
        // Unix socket paths are limited to 108 bytes: keep them in a short temporary directory.
        let sockets = tempfile::Builder::new()
            .prefix("kvmtest-guest.")
            .tempdir()
            .context("creating a socket directory")?;
        let serial_path = sockets.path().join("serial.sock");
        let qmp_path = sockets.path().join("qmp.sock");
        fs::create_dir_all(spec.logs)
            .with_context(|| format!("creating {}", spec.logs.display()))?;
        let stderr_path = spec.logs.join("qemu.stderr");
        let stderr = File::create(&stderr_path)
            .with_context(|| format!("creating {}", stderr_path.display()))?;

        let mut argv: Vec<OsString> = Vec::new();
        let mut push = |a: &str| argv.push(a.into());
        for a in ["-nodefaults", "-no-user-config", "-display", "none"] {
            push(a);
        }
        let (mem, smp) = (spec.mem_mib.to_string(), spec.smp.to_string());
        for a in ["-accel", spec.accel, "-m", &mem, "-smp", &smp, "-no-reboot"] {
            push(a);
        }
        push("-chardev");
        // wait=on: QEMU starts the guest only once we are connected, so no output is lost.
        argv.push(qemu_opt(
            "socket,id=serial0,server=on,wait=on,path=",
            &serial_path,
            "",
        ));
        argv.extend(["-serial".into(), "chardev:serial0".into(), "-qmp".into()]);
        argv.push(qemu_opt("unix:", &qmp_path, ",server=on,wait=off"));
        match spec.boot {
            Boot::Kernel { kernel, initrd } => {
                argv.extend(["-kernel".into(), kernel.as_os_str().to_owned()]);
                argv.extend(["-initrd".into(), initrd.as_os_str().to_owned()]);
                argv.extend(["-append".into(), "console=ttyS0 quiet panic=-1".into()]);
            }
            Boot::Disk { image } => {
                argv.push("-drive".into());
                argv.push(qemu_opt("file=", image, ",format=qcow2,if=virtio"));
            }
        }
        argv.extend(spec.extra.iter().cloned());

        // setpriv makes the kernel SIGKILL QEMU if this process dies without dropping the guard.
        let mut cmd = Command::new("setpriv");
        cmd.args(["--pdeathsig", "KILL", "--"])
            .arg(spec.qemu)
            .args(&argv)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        eprintln!("$ {}", show(&cmd));
        let started = Instant::now();
        let child = cmd
            .spawn()
            .with_context(|| format!("spawning {}", spec.qemu.display()))?;
        let mut qemu = QemuGuard {
            child,
            _sockets: sockets,
        };
        let stream = connect_unix(&mut qemu, &serial_path, &stderr_path)?;
        let log = spec.logs.join("serial.log");
        let serial = Wire::new(stream, "the serial console", Protocol::Raw, Some(&log))?;
        Ok(Guest {
            qemu,
            serial,
            qmp_path,
            stderr_path,
            started,
        })
    }

    /// Waits for the ready marker; returns the time since QEMU was spawned.
    pub(super) fn wait_ready(&mut self, timeout: Duration) -> Result<Duration> {
        let remaining = timeout.saturating_sub(self.started.elapsed());
        self.serial
            .read_until(READY_MARKER.as_bytes(), remaining, "the ready marker")
            .map_err(|e| with_stderr(e, &self.stderr_path))?;
        Ok(self.started.elapsed())
    }

    pub(super) fn qmp(&mut self) -> Result<Qmp> {
        let stream = connect_unix(&mut self.qemu, &self.qmp_path, &self.stderr_path)?;
        Qmp::new(stream)
    }
}

/// `before` + `path` + `after` as one QEMU option value, with the commas in `path` doubled as
/// QEMU's option syntax requires.
pub(super) fn qemu_opt(before: &str, path: &Path, after: &str) -> OsString {
    let mut bytes = before.as_bytes().to_vec();
    qemu_cmd::escape_into(&mut bytes, path.as_os_str().as_encoded_bytes());
    bytes.extend_from_slice(after.as_bytes());
    <OsString as std::os::unix::ffi::OsStringExt>::from_vec(bytes)
}

/// Adds QEMU's stderr to an error, as its innermost cause (printed last).
fn with_stderr(e: anyhow::Error, stderr_path: &Path) -> anyhow::Error {
    let stderr = fs::read_to_string(stderr_path).unwrap_or_default();
    if stderr.trim().is_empty() {
        e
    } else {
        anyhow!(
            "QEMU's stderr:\n---- QEMU stderr ----\n{}\n---- end of QEMU stderr ----",
            stderr.trim()
        )
        .context(format!("{e:#}"))
    }
}

/// Connects to a socket QEMU creates, retrying for up to 10 s while QEMU runs.
fn connect_unix(qemu: &mut QemuGuard, path: &Path, stderr_path: &Path) -> Result<UnixStream> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let err = match UnixStream::connect(path) {
            Ok(s) => return Ok(s),
            Err(e) => e,
        };
        if let Some(status) = qemu.child.try_wait().context("polling QEMU")? {
            return Err(with_stderr(
                anyhow!("QEMU exited ({status}) before {} appeared", path.display()),
                stderr_path,
            ));
        }
        if Instant::now() >= deadline {
            return Err(err).with_context(|| format!("connecting to {} for 10 s", path.display()));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_option_paths_escape_commas() {
        let opt = qemu_opt("file=", Path::new("/tmp/a,b"), ",if=virtio");
        assert_eq!(opt, OsString::from("file=/tmp/a,,b,if=virtio"));
    }
}
