//! The host side of the NICs kvmtest sets up itself, as avocado-vt does in `VM.create`:
//!
//! * `nettype = macvtap`: a macvtap link named after the NIC's tap name on `netdst`, in
//!   `macvtap_mode`, with the NIC's MAC, brought up; its tap `/dev/tapIFINDEX` opened once per
//!   queue (and `/dev/vhost-net` once per queue with `vhost = on`). QEMU inherits those fds (see
//!   `spawn`); the link is deleted at teardown, or when its [`MacvtapLink`] drops. The link is
//!   made by `ip link` (argv, no shell): one well-known host tool that prints what went wrong,
//!   rather than a netlink crate for two requests.
//! * `nettype = vdpa`: the vhost-vdpa character device of the vDPA device `netdst`
//!   (`/sys/bus/vdpa/devices/NETDST/vhost-vdpa-N` → `/dev/vhost-vdpa-N`).
//! * `nettype = user:passt`: passt serving the NIC on `passt-NIC.sock` in the run directory,
//!   started before QEMU and owned like QEMU ([`OwnedProcess`]: its own process group, killed
//!   with kvmtest and on drop).

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use spec::vm::PasstSpec;

use crate::error::Error;
use crate::process::{OwnedProcess, ProcessState};
pub(crate) use crate::spawn::find_program;

/// A macvtap link kvmtest created and the fds it opened for QEMU; deleting the link when
/// dropped (unless [`MacvtapLink::delete`] already did).
#[derive(Debug)]
pub(crate) struct MacvtapLink {
    name: String,
    deleted: bool,
    taps: Vec<File>,
    vhosts: Vec<File>,
}

impl MacvtapLink {
    /// Creates macvtap `name` on `lower` in `mode` with `mac`, brings it up and opens its tap
    /// `queues` times (and `/dev/vhost-net` as often with `vhost`). Any failure deletes what
    /// was created; the error says what failed, with `ip`'s message.
    pub(crate) fn create(
        name: &str,
        lower: &str,
        mode: &str,
        mac: &str,
        queues: u32,
        vhost: bool,
    ) -> Result<MacvtapLink, String> {
        let args = [
            "link", "add", "link", lower, "name", name, "address", mac, "type", "macvtap", "mode",
            mode,
        ];
        ip(&args)
            .map_err(|e| format!("creating the macvtap {name} on `netdst` = {lower:?}: {e}"))?;
        let mut link = MacvtapLink {
            name: name.to_string(),
            deleted: false,
            taps: Vec::new(),
            vhosts: Vec::new(),
        };
        ip(&["link", "set", "dev", name, "up"])
            .map_err(|e| format!("bringing the macvtap {name} up: {e}"))?;
        let index = if_index(name).map_err(|e| format!("reading the index of {name}: {e}"))?;
        let tap = PathBuf::from(format!("/dev/tap{index}"));
        for _ in 0..queues.max(1) {
            link.taps.push(open_rw(&tap)?);
        }
        if vhost {
            for _ in 0..queues.max(1) {
                link.vhosts.push(open_rw(Path::new("/dev/vhost-net"))?);
            }
        }
        Ok(link)
    }

    /// The tap fds, in queue order.
    pub(crate) fn tap_fds(&self) -> Vec<RawFd> {
        self.taps.iter().map(AsRawFd::as_raw_fd).collect()
    }

    /// The `/dev/vhost-net` fds, in queue order.
    pub(crate) fn vhost_fds(&self) -> Vec<RawFd> {
        self.vhosts.iter().map(AsRawFd::as_raw_fd).collect()
    }

    /// Closes the fds and deletes the link.
    pub(crate) fn delete(&mut self) -> Result<(), String> {
        self.taps.clear();
        self.vhosts.clear();
        if self.deleted {
            return Ok(());
        }
        self.deleted = true;
        ip(&["link", "delete", "dev", &self.name])
            .map_err(|e| format!("deleting the macvtap {}: {e}", self.name))
    }
}

impl Drop for MacvtapLink {
    fn drop(&mut self) {
        let _ = self.delete();
    }
}

fn open_rw(path: &Path) -> Result<File, String> {
    // std opens with O_CLOEXEC: only the QEMU that is handed the fd inherits it.
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| format!("opening {}: {e}", path.display()))
}

/// The interface index of `name` in this thread's network namespace.
fn if_index(name: &str) -> std::io::Result<u32> {
    use rustix::net::{socket, AddressFamily, SocketType};
    let sock = socket(AddressFamily::INET, SocketType::DGRAM, None)?;
    Ok(rustix::net::netdevice::name_to_index(&sock, name)?)
}

/// Runs `ip ARGS`; its stderr on failure.
fn ip(args: &[&str]) -> Result<(), String> {
    ip_output(args).map(|_| ())
}

/// Runs `ip ARGS` in kvmtest's own network namespace: its stdout, or its stderr on failure.
pub(crate) fn ip_output(args: &[&str]) -> Result<String, String> {
    crate::netns::ip_in(None, args)
}

/// The vhost-vdpa character device of vDPA device `name`, as the kernel lists it under
/// `sysfs` (normally `/sys`): `SYSFS/bus/vdpa/devices/NAME/vhost-vdpa-N` → `/dev/vhost-vdpa-N`.
pub(crate) fn vdpa_device(sysfs: &Path, name: &str) -> Option<PathBuf> {
    if name.is_empty() || name.contains('/') {
        return None;
    }
    let dir = sysfs.join("bus/vdpa/devices").join(name);
    let mut found: Vec<OsString> = std::fs::read_dir(&dir)
        .ok()?
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().starts_with("vhost-vdpa"))
        .collect();
    found.sort();
    found.first().map(|n| Path::new("/dev").join(n))
}

/// The error text of a `netdst` without a vhost-vdpa device.
pub(crate) fn no_vdpa_device(sysfs: &Path, name: &str) -> String {
    format!(
        "`netdst` = {name:?}: no vhost-vdpa device of that name exists ({} has no \
         vhost-vdpa-*; the host needs a vDPA device named {name:?} bound to the vhost_vdpa \
         driver)",
        sysfs.join("bus/vdpa/devices").join(name).display()
    )
}

/// passt's argv for `spec` serving `socket`, as avocado-vt's `QPasstDev` renders it
/// (`--one-off`, `--socket`, `--mtu`, one `--tcp-ports`/`--udp-ports` per forward), run in the
/// foreground (kvmtest owns the process instead of a pid file) and as the current user
/// (`--runas`: passt run by root would otherwise drop to `nobody`, which cannot create its
/// socket in the VM's private run directory).
pub(crate) fn passt_argv(
    program: &Path,
    spec: &PasstSpec,
    socket: &Path,
    log: &Path,
) -> Vec<OsString> {
    let uid = rustix::process::geteuid().as_raw();
    let gid = rustix::process::getegid().as_raw();
    let mut argv: Vec<OsString> = vec![
        program.into(),
        "--foreground".into(),
        "--one-off".into(),
        "--socket".into(),
        socket.into(),
        "--log-file".into(),
        log.into(),
        "--runas".into(),
        format!("{uid}:{gid}").into(),
    ];
    if let Some(mtu) = spec.mtu {
        argv.push("--mtu".into());
        argv.push(mtu.to_string().into());
    }
    for f in &spec.port_forwards {
        argv.push(if f.udp { "--udp-ports" } else { "--tcp-ports" }.into());
        argv.push(f.spec.clone().into());
    }
    argv
}

/// Starts passt for NIC `nic` on `socket` and waits (up to `timeout`) for the socket to
/// appear: QEMU's `stream` netdev connects to it at start-up. passt's messages go to
/// `log_dir/passt-NIC.log`.
pub(crate) async fn start_passt(
    vm: &str,
    nic: &str,
    spec: &PasstSpec,
    socket: &Path,
    log_dir: &Path,
    timeout: Duration,
) -> Result<OwnedProcess, Error> {
    let err = |what: String| Error::HostNet {
        vm: vm.into(),
        nic: nic.into(),
        what,
    };
    let program = find_program(&spec.binary).ok_or_else(|| {
        err(format!(
            "`passt_binary` = {:?}: no such program{} (install passt: Debian's `passt` package, \
             or `cargo xtask deps`)",
            spec.binary,
            if spec.binary.contains('/') {
                ""
            } else {
                " on PATH"
            }
        ))
    })?;
    let log = log_dir.join(format!("passt-{nic}.log"));
    let out = log_dir.join(format!("passt-{nic}.out"));
    let argv = passt_argv(&program, spec, socket, &log);
    let process = OwnedProcess::spawn(&argv, &out)
        .map_err(|e| err(format!("starting {}: {e}", program.display())))?;
    let started = Instant::now();
    loop {
        if socket.exists() {
            return Ok(process);
        }
        if let ProcessState::Exited(status) = process.state() {
            let text = std::fs::read_to_string(&out).unwrap_or_default()
                + &std::fs::read_to_string(&log).unwrap_or_default();
            return Err(err(format!(
                "passt ({}) exited ({status}) before creating its socket {}; its output ends \
                 with:\n{}",
                program.display(),
                socket.display(),
                crate::error::tail_lines(&text, 20)
            )));
        }
        if started.elapsed() >= timeout {
            return Err(err(format!(
                "passt ({}) did not create its socket {} within {:?}",
                program.display(),
                socket.display(),
                timeout
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spec::vm::PortForward;

    #[test]
    fn a_vdpa_device_resolves_through_sysfs() {
        let sys = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let dev = sys.path().join("bus/vdpa/devices/vdpa0");
        std::fs::create_dir_all(dev.join("vhost-vdpa-3")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir_all(dev.join("driver")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            vdpa_device(sys.path(), "vdpa0"),
            Some(PathBuf::from("/dev/vhost-vdpa-3"))
        );
        // A device without the vhost-vdpa driver, an unknown device, a path.
        std::fs::create_dir_all(sys.path().join("bus/vdpa/devices/vdpa1"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(vdpa_device(sys.path(), "vdpa1"), None);
        assert_eq!(vdpa_device(sys.path(), "vdpa9"), None);
        assert_eq!(vdpa_device(sys.path(), "../vdpa/devices/vdpa0"), None);
        let msg = no_vdpa_device(sys.path(), "vdpa9");
        assert!(
            msg.contains("`netdst` = \"vdpa9\"") && msg.contains("no vhost-vdpa device"),
            "{msg}"
        );
    }

    #[test]
    fn passt_gets_avocado_vt_forwards_and_mtu() {
        let spec = PasstSpec {
            binary: "passt".into(),
            port_forwards: vec![
                PortForward {
                    udp: false,
                    spec: "2222:22".into(),
                },
                PortForward {
                    udp: true,
                    spec: "53".into(),
                },
            ],
            mtu: Some(1500),
        };
        let argv = passt_argv(
            Path::new("/usr/bin/passt"),
            &spec,
            Path::new("/run/x/passt-nic1.sock"),
            Path::new("/log/passt-nic1.log"),
        );
        let text: Vec<String> = argv
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let joined = text.join(" ");
        assert!(
            joined.starts_with(
                "/usr/bin/passt --foreground --one-off --socket /run/x/passt-nic1.sock"
            ),
            "{joined}"
        );
        assert!(
            joined.ends_with("--mtu 1500 --tcp-ports 2222:22 --udp-ports 53"),
            "{joined}"
        );
    }

    #[test]
    fn a_missing_program_is_not_found() {
        assert_eq!(find_program("/nonexistent/passt"), None);
        assert_eq!(find_program("kvmtest-no-such-program"), None);
        assert!(find_program("sh").is_some());
    }
}
