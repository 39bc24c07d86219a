//! The daemons kvmtest starts beside QEMU for devices with a host side, as avocado-vt starts them
//! (`QSwtpmDev`, `QVirtioFSDev`), and what the host must have for the VM's host devices:
//!
//! * `tpms` with `tpm_type = emulator`: `swtpm_setup` writes the TPM's state into
//!   `swtpm-TPM.state` in the run dir (avocado-vt's options: `--tpm2`, `--createek
//!   --create-ek-cert --create-platform-cert --lock-nvram`, `--overwrite`/`--not-overwrite`),
//!   then `swtpm socket` serves it on `swtpm-TPM.sock` (`--ctrl type=unixio`, `--terminate`: it
//!   ends when QEMU disconnects), its log in the VM's log dir;
//! * `filesystems` served by kvmtest: virtiofsd on `virtiofsd-FS.sock`, exporting
//!   `fs_source_dir`: `--shared-dir DIR [--log-level L]` when its `--print-capabilities` lists
//!   `separate-options` (the Rust virtiofsd), else `-o source=DIR [-d]` (the C one QEMU 7.2's
//!   Debian package ships as /usr/lib/qemu/virtiofsd; it runs as root only);
//! * `vm_hostdevs`: the host PCI device must exist (`/sys/bus/pci/devices/ADDR`); `tpms` with
//!   `tpm_type = passthrough`: the host TPM must exist.
//!
//! [`host_feature_missing`] says, before anything starts, what the host lacks (a
//! [`HostFeature`] naming the key and value); [`Daemons::start`] starts them, each owned like
//! QEMU ([`OwnedProcess`]: its own process group, SIGKILLed on drop), so a failure part-way
//! leaves nothing running; [`Daemons::stop`] ends them after QEMU.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use spec::filesystem::{FsDaemon, VirtiofsdSpec};
use spec::tpm::{SwtpmSpec, TpmBackend};
use spec::vm::VmSpec;

use crate::error::{tail_lines, Error};
use crate::process::{OwnedProcess, ProcessState};
use crate::spawn::find_program;

/// Where virtiofsd is looked for when `fs_binary` is unset: avocado-vt's default, then where
/// Debian's QEMU 7.2 package (`qemu-system-common`) ships the C virtiofsd.
pub const VIRTIOFSD_CANDIDATES: &[&str] = &["/usr/libexec/virtiofsd", "/usr/lib/qemu/virtiofsd"];

/// How long `swtpm_setup` may take to write a TPM's state (it creates keys and certificates).
const SETUP_TIMEOUT: Duration = Duration::from_secs(60);

pub use crate::error::HostFeature;

/// The first thing the host lacks for `spec` (programs, host devices, exported directories;
/// `root` resolves a relative `fs_source_dir` without `fs_source_base_dir`), or `None`.
pub fn host_feature_missing(spec: &VmSpec, root: &Path) -> Option<HostFeature> {
    for t in &spec.tpms {
        let object = format!("tpm {}", t.name);
        match &t.backend {
            TpmBackend::Emulator(sw) => {
                for (key, bin, package) in [
                    ("tpm_bin", &sw.binary, "swtpm"),
                    ("tpm_setup_bin", &sw.setup_binary, "swtpm-tools"),
                ] {
                    if find_program(bin).is_none() {
                        return Some(HostFeature {
                            object,
                            key: "tpms".into(),
                            value: t.name.clone(),
                            what: format!(
                                "an emulated TPM needs swtpm: `{key}` = {bin:?} is not installed \
                                 (Debian's `{package}` package, or `cargo xtask deps`)"
                            ),
                        });
                    }
                }
            }
            TpmBackend::Passthrough { path } => {
                if !Path::new(path).exists() {
                    return Some(HostFeature {
                        object,
                        key: "tpm_device_path".into(),
                        value: path.clone(),
                        what: "no such host TPM (a passthrough TPM needs the host's own)".into(),
                    });
                }
            }
        }
    }
    for f in &spec.filesystems {
        let FsDaemon::Virtiofsd(d) = &f.daemon else {
            continue;
        };
        let object = format!("filesystem {}", f.name);
        if virtiofsd_program(d).is_none() {
            let (key, value) = match &d.binary {
                Some(b) => ("fs_binary", b.clone()),
                None => ("filesystems", f.name.clone()),
            };
            return Some(HostFeature {
                object,
                key: key.into(),
                value,
                what: format!(
                    "virtio-fs needs virtiofsd: none at {} (Debian: bookworm's QEMU 7.2 \
                     `qemu-system-common` ships /usr/lib/qemu/virtiofsd, later releases the \
                     `virtiofsd` package)",
                    d.binary
                        .as_deref()
                        .map_or_else(|| VIRTIOFSD_CANDIDATES.join(" or "), str::to_string)
                ),
            });
        }
        let dir = source_dir(d, root);
        if !dir.is_dir() {
            return Some(HostFeature {
                object,
                key: "fs_source_dir".into(),
                value: d.source_dir.clone(),
                what: format!(
                    "the exported directory {} does not exist (avocado-vt's runner creates it \
                     with `force_create_fs_source`; kvmtest's does not)",
                    dir.display()
                ),
            });
        }
    }
    for h in &spec.hostdevs {
        let sysfs = host_pci_device(&h.host);
        if !sysfs.exists() {
            return Some(HostFeature {
                object: format!("hostdev {}", h.name),
                key: "vm_hostdev_host".into(),
                value: h.host.clone(),
                what: format!(
                    "no such host PCI device ({} does not exist; it must be bound to {})",
                    sysfs.display(),
                    h.driver
                ),
            });
        }
    }
    None
}

/// The sysfs directory of host PCI device `host` (`01:00.0` gets the domain `0000:`).
fn host_pci_device(host: &str) -> PathBuf {
    let full = if host.matches(':').count() == 1 {
        format!("0000:{host}")
    } else {
        host.to_string()
    };
    Path::new("/sys/bus/pci/devices").join(full)
}

/// The virtiofsd to run: `fs_binary`, else the first of [`VIRTIOFSD_CANDIDATES`] installed.
fn virtiofsd_program(d: &VirtiofsdSpec) -> Option<PathBuf> {
    match &d.binary {
        Some(b) => find_program(b),
        None => VIRTIOFSD_CANDIDATES.iter().find_map(|c| find_program(c)),
    }
}

/// The exported directory: `fs_source_dir`, a relative one under `fs_source_base_dir`, else
/// under `root` (avocado-vt's data dir).
pub fn source_dir(d: &VirtiofsdSpec, root: &Path) -> PathBuf {
    let dir = Path::new(&d.source_dir);
    if dir.is_absolute() {
        return dir.to_path_buf();
    }
    match &d.base_dir {
        Some(base) => Path::new(base).join(dir),
        None => root.join(dir),
    }
}

/// swtpm_setup's argv for a TPM whose state goes to `state`, as avocado-vt's
/// `_emulator_setup` writes it.
pub fn swtpm_setup_argv(program: &Path, sw: &SwtpmSpec, state: &Path) -> Vec<OsString> {
    let mut argv: Vec<OsString> = vec![program.into()];
    if sw.tpm2 {
        argv.push("--tpm2".into());
    }
    argv.push("--tpm-state".into());
    argv.push(state.into());
    for a in [
        "--createek",
        "--create-ek-cert",
        "--create-platform-cert",
        "--lock-nvram",
    ] {
        argv.push(a.into());
    }
    argv.push(
        if sw.overwrite {
            "--overwrite"
        } else {
            "--not-overwrite"
        }
        .into(),
    );
    argv.extend(sw.setup_extra.iter().map(OsString::from));
    argv
}

/// swtpm's argv serving `state` on `socket`, as avocado-vt's `QSwtpmDev` writes it.
pub fn swtpm_argv(
    program: &Path,
    sw: &SwtpmSpec,
    socket: &Path,
    state: &Path,
    log: &Path,
) -> Vec<OsString> {
    let opt = |prefix: &str, p: &Path, suffix: &str| {
        let mut s = OsString::from(prefix);
        s.push(p);
        s.push(suffix);
        s
    };
    let mut argv: Vec<OsString> = vec![
        program.into(),
        "socket".into(),
        "--ctrl".into(),
        opt("type=unixio,path=", socket, ",mode=0600"),
        "--tpmstate".into(),
        opt("dir=", state, ",mode=0600"),
        "--terminate".into(),
    ];
    if sw.tpm2 {
        argv.push("--tpm2".into());
    }
    argv.push("--log".into());
    argv.push(opt("file=", log, ""));
    argv.extend(sw.extra.iter().map(OsString::from));
    argv
}

/// virtiofsd's argv serving `dir` on `socket`, as avocado-vt's `QVirtioFSDev` writes it
/// (`separate`: virtiofsd lists `separate-options` among its capabilities).
///
/// # Errors
/// A `fs_log_level` this virtiofsd cannot take: the text of the problem.
pub fn virtiofsd_argv(
    program: &Path,
    d: &VirtiofsdSpec,
    socket: &Path,
    dir: &Path,
    separate: bool,
) -> Result<Vec<OsString>, String> {
    let mut path = OsString::from("--socket-path=");
    path.push(socket);
    let mut argv: Vec<OsString> = vec![program.into(), path];
    if separate {
        argv.push("--shared-dir".into());
        argv.push(dir.into());
        if let Some(level) = &d.log_level {
            if !["error", "warn", "info", "debug", "trace", "off"].contains(&level.as_str()) {
                return Err(format!(
                    "`fs_log_level` = {level:?}: virtiofsd knows error, warn, info, debug, \
                     trace and off"
                ));
            }
            argv.push("--log-level".into());
            argv.push(level.into());
        }
    } else {
        let mut source = OsString::from("source=");
        source.push(dir);
        argv.push("-o".into());
        argv.push(source);
        match d.log_level.as_deref() {
            None => {}
            Some("debug") => argv.push("-d".into()),
            Some(level) => {
                return Err(format!(
                    "`fs_log_level` = {level:?}: this virtiofsd (without separate options) \
                     knows debug only"
                ))
            }
        }
    }
    argv.extend(d.extra.iter().map(OsString::from));
    Ok(argv)
}

/// The daemons of one VM, each SIGKILLed with its process group when dropped.
#[derive(Debug, Default)]
pub struct Daemons {
    /// (what it serves, e.g. `swtpm of TPM tpm0`, the process).
    procs: Vec<(String, OwnedProcess)>,
}

/// Where a VM's daemons live: its name (for errors), run dir (sockets, TPM state), root dir
/// (relative exports), log dir.
#[derive(Debug, Clone, Copy)]
pub struct DaemonDirs<'a> {
    /// The VM's name.
    pub vm: &'a str,
    /// The run dir.
    pub run_dir: &'a Path,
    /// The root dir.
    pub root_dir: &'a Path,
    /// The log dir.
    pub log_dir: &'a Path,
}

impl Daemons {
    /// Starts every daemon `spec` needs and waits (up to `timeout` each) for its socket; none
    /// is left running when one fails.
    ///
    /// # Errors
    /// [`Error::HostFeature`] when the host lacks what the VM needs
    /// ([`host_feature_missing`]); [`Error::Daemon`] when a daemon fails to start.
    pub async fn start(
        spec: &VmSpec,
        dirs: DaemonDirs<'_>,
        timeout: Duration,
    ) -> Result<Daemons, Error> {
        if let Some(missing) = host_feature_missing(spec, dirs.root_dir) {
            return Err(Error::HostFeature {
                vm: dirs.vm.into(),
                feature: missing,
            });
        }
        let mut d = Daemons::default();
        for t in &spec.tpms {
            if let TpmBackend::Emulator(sw) = &t.backend {
                d.start_swtpm(&t.name, sw, dirs, timeout).await?;
            }
        }
        for f in &spec.filesystems {
            if let FsDaemon::Virtiofsd(v) = &f.daemon {
                d.start_virtiofsd(&f.name, v, dirs, timeout).await?;
            }
        }
        Ok(d)
    }

    /// The pids of the daemons, with what each serves.
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.procs
            .iter()
            .map(|(w, p)| (w.clone(), p.pid()))
            .collect()
    }

    async fn start_swtpm(
        &mut self,
        name: &str,
        sw: &SwtpmSpec,
        dirs: DaemonDirs<'_>,
        timeout: Duration,
    ) -> Result<(), Error> {
        let what = format!("swtpm of TPM {name}");
        let err = |text: String| Error::Daemon {
            vm: dirs.vm.into(),
            what: what.clone(),
            problem: text,
        };
        let setup = find_program(&sw.setup_binary)
            .ok_or_else(|| err(format!("{} is not installed", sw.setup_binary)))?;
        let program = find_program(&sw.binary)
            .ok_or_else(|| err(format!("{} is not installed", sw.binary)))?;
        let state = dirs.run_dir.join(qemu_cmd::names::swtpm_state_dir(name));
        std::fs::create_dir_all(&state).map_err(|e| {
            err(format!(
                "creating its state directory {}: {e}",
                state.display()
            ))
        })?;
        let setup_log = dirs.log_dir.join(format!("swtpm_setup-{name}.log"));
        let argv = swtpm_setup_argv(&setup, sw, &state);
        let p = OwnedProcess::spawn(&argv, &setup_log)
            .map_err(|e| err(format!("starting {}: {e}", setup.display())))?;
        match p.wait_timeout(SETUP_TIMEOUT).await {
            Some(s) if s.success() => {}
            Some(s) => {
                let text = std::fs::read_to_string(&setup_log).unwrap_or_default();
                return Err(err(format!(
                    "swtpm_setup exited ({s}); its output ends with:\n{}",
                    tail_lines(&text, 20)
                )));
            }
            None => {
                p.kill();
                return Err(err(format!(
                    "swtpm_setup did not finish within {SETUP_TIMEOUT:?}"
                )));
            }
        }
        let socket = dirs.run_dir.join(qemu_cmd::names::swtpm_socket(name));
        let log = dirs.log_dir.join(format!("swtpm-{name}.log"));
        let out = dirs.log_dir.join(format!("swtpm-{name}.out"));
        let argv = swtpm_argv(&program, sw, &socket, &state, &log);
        let p = OwnedProcess::spawn(&argv, &out)
            .map_err(|e| err(format!("starting {}: {e}", program.display())))?;
        wait_socket(&p, &socket, &[&out, &log], timeout)
            .await
            .map_err(err)?;
        self.procs.push((what, p));
        Ok(())
    }

    async fn start_virtiofsd(
        &mut self,
        name: &str,
        d: &VirtiofsdSpec,
        dirs: DaemonDirs<'_>,
        timeout: Duration,
    ) -> Result<(), Error> {
        let what = format!("virtiofsd of file system {name}");
        let err = |text: String| Error::Daemon {
            vm: dirs.vm.into(),
            what: what.clone(),
            problem: text,
        };
        let program =
            virtiofsd_program(d).ok_or_else(|| err("virtiofsd is not installed".into()))?;
        let separate = virtiofsd_separate_options(&program, dirs.log_dir, name)
            .await
            .map_err(err)?;
        let socket = dirs.run_dir.join(qemu_cmd::names::virtiofsd_socket(name));
        let dir = source_dir(d, dirs.root_dir);
        let argv = virtiofsd_argv(&program, d, &socket, &dir, separate).map_err(err)?;
        let out = dirs.log_dir.join(format!("virtiofsd-{name}.log"));
        let p = OwnedProcess::spawn(&argv, &out)
            .map_err(|e| err(format!("starting {}: {e}", program.display())))?;
        wait_socket(&p, &socket, &[&out], timeout)
            .await
            .map_err(err)?;
        self.procs.push((what, p));
        Ok(())
    }

    /// Ends the daemons once QEMU is gone: swtpm (`--terminate`) and virtiofsd exit when QEMU
    /// disconnects; whatever still runs after a short grace is SIGKILLed and reaped. Returns a
    /// line per daemon for the VM's log.
    pub async fn stop(&mut self, kill_wait: Duration) -> Vec<String> {
        let mut lines = Vec::new();
        for (what, p) in std::mem::take(&mut self.procs) {
            let how = match p.wait_timeout(Duration::from_secs(2)).await {
                Some(status) => format!("exited ({status})"),
                None => {
                    p.kill();
                    match p.wait_timeout(kill_wait).await {
                        Some(status) => format!("SIGKILLed ({status})"),
                        None => "still not reaped after SIGKILL".into(),
                    }
                }
            };
            lines.push(format!("{what} (pid {}): {how}", p.pid()));
        }
        lines
    }
}

/// Whether virtiofsd at `program` takes separate options (`--print-capabilities` lists
/// `separate-options`), as avocado-vt asks it.
async fn virtiofsd_separate_options(
    program: &Path,
    log_dir: &Path,
    name: &str,
) -> Result<bool, String> {
    let out = log_dir.join(format!("virtiofsd-{name}.capabilities"));
    let argv: Vec<OsString> = vec![program.into(), "--print-capabilities".into()];
    let p = OwnedProcess::spawn(&argv, &out)
        .map_err(|e| format!("starting {} --print-capabilities: {e}", program.display()))?;
    let status = p.wait_timeout(Duration::from_secs(10)).await;
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    match status {
        Some(s) if s.success() => {}
        _ => {
            return Err(format!(
                "{} --print-capabilities failed: {}",
                program.display(),
                tail_lines(&text, 10)
            ))
        }
    }
    let caps: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| format!("{} --print-capabilities: {e}", program.display()))?;
    Ok(caps["features"]
        .as_array()
        .is_some_and(|f| f.iter().any(|x| x == "separate-options")))
}

/// Waits for `socket` to appear while `p` runs; the text of the problem otherwise (with the end
/// of `logs`).
async fn wait_socket(
    p: &OwnedProcess,
    socket: &Path,
    logs: &[&Path],
    timeout: Duration,
) -> Result<(), String> {
    let started = Instant::now();
    loop {
        if socket.exists() {
            return Ok(());
        }
        if let ProcessState::Exited(status) = p.state() {
            let text: String = logs
                .iter()
                .map(|l| std::fs::read_to_string(l).unwrap_or_default())
                .collect();
            return Err(format!(
                "exited ({status}) before creating its socket {}; its output ends with:\n{}",
                socket.display(),
                tail_lines(&text, 20)
            ));
        }
        if started.elapsed() >= timeout {
            return Err(format!(
                "did not create its socket {} within {timeout:?}",
                socket.display()
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(argv: &[OsString]) -> String {
        argv.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn swtpm_gets_avocado_vts_options() {
        let sw = SwtpmSpec {
            binary: "/usr/bin/swtpm".into(),
            setup_binary: "/usr/bin/swtpm_setup".into(),
            tpm2: true,
            extra: vec!["--flags".into(), "startup-clear".into()],
            setup_extra: Vec::new(),
            overwrite: false,
        };
        let setup = swtpm_setup_argv(Path::new("/usr/bin/swtpm_setup"), &sw, Path::new("/r/s"));
        assert_eq!(
            text(&setup),
            "/usr/bin/swtpm_setup --tpm2 --tpm-state /r/s --createek --create-ek-cert \
             --create-platform-cert --lock-nvram --not-overwrite"
        );
        let run = swtpm_argv(
            Path::new("/usr/bin/swtpm"),
            &sw,
            Path::new("/r/swtpm-tpm0.sock"),
            Path::new("/r/s"),
            Path::new("/l/swtpm.log"),
        );
        assert_eq!(
            text(&run),
            "/usr/bin/swtpm socket --ctrl type=unixio,path=/r/swtpm-tpm0.sock,mode=0600 \
             --tpmstate dir=/r/s,mode=0600 --terminate --tpm2 --log file=/l/swtpm.log --flags \
             startup-clear"
        );
    }

    #[test]
    fn virtiofsd_options_follow_its_capabilities() {
        let d = VirtiofsdSpec {
            source_dir: "share".into(),
            base_dir: None,
            binary: None,
            log_level: Some("debug".into()),
            extra: vec!["-o".into(), "cache=none".into()],
        };
        let (p, s, dir) = (
            Path::new("/v"),
            Path::new("/r/v.sock"),
            Path::new("/root/share"),
        );
        let old = virtiofsd_argv(p, &d, s, dir, false).unwrap_or_default();
        assert_eq!(
            text(&old),
            "/v --socket-path=/r/v.sock -o source=/root/share -d -o cache=none"
        );
        let new = virtiofsd_argv(p, &d, s, dir, true).unwrap_or_default();
        assert_eq!(
            text(&new),
            "/v --socket-path=/r/v.sock --shared-dir /root/share --log-level debug -o cache=none"
        );
        let info = VirtiofsdSpec {
            log_level: Some("info".into()),
            ..d
        };
        assert!(virtiofsd_argv(p, &info, s, dir, false).is_err());
        assert_eq!(
            source_dir(&info, Path::new("/root")),
            Path::new("/root/share")
        );
    }

    #[test]
    fn host_pci_addresses_get_their_domain() {
        assert_eq!(
            host_pci_device("01:00.0"),
            Path::new("/sys/bus/pci/devices/0000:01:00.0")
        );
        assert_eq!(
            host_pci_device("0000:44:00.1"),
            Path::new("/sys/bus/pci/devices/0000:44:00.1")
        );
    }
}
