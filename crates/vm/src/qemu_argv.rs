//! [`QemuCmdArgv`]: the real [`ArgvSource`], a VM's params turned into QEMU's argv by `qemu-cmd`,
//! and [`probe_accel`], the accelerator to use when the params do not name one.
//!
//! The builder gets the VM's params as `vm` filled them in (`nic_mac_NIC`, `nic_ifname_NIC` of
//! tap NICs, a concrete `uuid`) and a [`RunContext::Real`] made from the [`RunLayout`]: the run
//! directory (socket names agree through [`qemu_cmd::names`]), the root of relative cfg paths,
//! and no host ports, so every redir is `hostfwd=tcp:127.0.0.1:0-:GUEST` and the kernel picks
//! the port (`vm` reads it back from `info usernet`). `-incoming` is left to `vm`, which appends
//! `-incoming defer` to a migration destination: a `migration_mode` in the params (tp-qemu sets
//! it to choose the protocol of a migration test) never turns the VM into a destination here.

use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use qemu_cmd::probe::{default_cache_dir, probe_cached, ProbeError};
use qemu_cmd::types::Accel;
use qemu_cmd::{build_view, BuildError, Capabilities, RunContext, RunValues, VmView};

use crate::error::BoxError;
use crate::layout::{ArgvSource, RunLayout};

/// The accelerator chosen for VMs whose params have no `vm_accelerator`, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccelChoice {
    /// KVM or TCG.
    pub accel: Accel,
    /// Why, for logs.
    pub reason: String,
}

impl fmt::Display for AccelChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.accel, self.reason)
    }
}

/// KVM if `/dev/kvm` opens read-write and the host CPU flags show `vmx` or `svm`, else TCG.
///
/// This is the cheap half of xtask's probe: a host whose `/dev/kvm` opens but whose CPU lacks
/// the flags (nested setups without virtualisation extensions) hangs KVM guests instead of
/// failing, so the flags are required. Whether a guest really boots under KVM is only known by
/// booting one: a caller that sees [`crate::Error::KvmUnavailable`] or a guest that never
/// reaches its prompt under KVM falls back with [`QemuCmdArgv::with_accel`]`(Some(Accel::Tcg))`.
pub fn probe_accel() -> AccelChoice {
    let tcg = |reason: String| AccelChoice {
        accel: Accel::Tcg,
        reason,
    };
    if let Err(e) = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
        return tcg(format!("cannot open /dev/kvm: {e}"));
    }
    match fs::read_to_string("/proc/cpuinfo") {
        Err(e) => tcg(format!("cannot read /proc/cpuinfo: {e}")),
        Ok(info) if !cpu_has_virt(&info) => tcg(
            "/dev/kvm opens, but the CPU flags show neither vmx nor svm (KVM guests hang here)"
                .into(),
        ),
        Ok(_) => AccelChoice {
            accel: Accel::Kvm,
            reason: "/dev/kvm opens and the CPU has vmx or svm".into(),
        },
    }
}

fn cpu_has_virt(cpuinfo: &str) -> bool {
    cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .flat_map(|l| l.split_whitespace())
        .any(|f| f == "vmx" || f == "svm")
}

/// Why [`QemuCmdArgv`] could not produce an argv.
#[derive(Debug, thiserror::Error)]
pub enum QemuArgvError {
    /// The params have bad or unsupported keys (all of them are listed).
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The command needs environment variables, which `vm` does not set on QEMU.
    #[error("the command line needs environment variables ({vars}); x11_display is not supported")]
    Environment {
        /// The variables, `K=V` separated by spaces.
        vars: String,
    },
}

/// The `qemu-cmd` builder as an [`ArgvSource`], for one QEMU binary and its capabilities.
///
/// The program is always `binary` (the capabilities describe that binary; a `qemu_binary` in
/// the params is ignored). `vm_accelerator` in the params wins over [`QemuCmdArgv::accel`].
#[derive(Debug, Clone)]
pub struct QemuCmdArgv {
    binary: PathBuf,
    caps: Capabilities,
    accel: Option<Accel>,
}

impl QemuCmdArgv {
    /// A source for `binary`, whose capabilities are `caps`, with the accelerator from
    /// [`probe_accel`].
    pub fn new(binary: impl Into<PathBuf>, caps: Capabilities) -> QemuCmdArgv {
        QemuCmdArgv {
            binary: binary.into(),
            caps,
            accel: Some(probe_accel().accel),
        }
    }

    /// [`QemuCmdArgv::new`] with the capabilities probed from `binary` (cached on disk under
    /// [`default_cache_dir`]).
    ///
    /// # Errors
    /// Running or parsing the binary's help output failed.
    pub fn probe(binary: impl Into<PathBuf>) -> Result<QemuCmdArgv, ProbeError> {
        let binary = binary.into();
        let caps = probe_cached(&binary, &default_cache_dir())?;
        Ok(QemuCmdArgv::new(binary, caps))
    }

    /// The accelerator for params without `vm_accelerator` (`None`: QEMU's default).
    #[must_use]
    pub fn with_accel(mut self, accel: Option<Accel>) -> QemuCmdArgv {
        self.accel = accel;
        self
    }

    /// The accelerator used when the params name none.
    pub fn accel(&self) -> Option<Accel> {
        self.accel
    }

    /// The QEMU binary.
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// Its capabilities.
    pub fn caps(&self) -> &Capabilities {
        &self.caps
    }

    /// The argv for `layout`, program first.
    ///
    /// # Errors
    /// Every bad or unsupported key of the VM at once, or a needed environment variable.
    pub fn build(&self, layout: &RunLayout) -> Result<Vec<OsString>, QemuArgvError> {
        let params = &layout.params;
        let mut view = VmView::new(params, &layout.vm)?;
        // `vm` owns `-incoming` (it appends `-incoming defer` to a migration destination).
        view.incoming = None;
        view.incoming_exec_cmd = None;
        if view.accel.is_none() {
            view.accel = self.accel;
        }
        let ctx = RunContext::Real(Box::new(RunValues {
            root_dir: layout.root_dir.clone(),
            run_dir: layout.run_dir.clone(),
            instance: fnv1a(layout.instance.as_bytes()),
            // `vm` puts a concrete UUID into the params; this one is never used then.
            uuid: layout
                .uuid
                .as_deref()
                .and_then(|u| u.parse().ok())
                .unwrap_or_else(nil_uuid),
            vnc_display: 0,
            // None listed: every redir is forwarded from host port 0 (kernel-chosen).
            redir_ports: Vec::new(),
            migration_port: 0,
            pci_hosts: Vec::new(),
        }));
        let mut cmd = build_view(&view, params, &self.caps, &ctx)?;
        if !cmd.env().is_empty() {
            let vars = cmd
                .env()
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ");
            return Err(QemuArgvError::Environment { vars });
        }
        cmd.set_program(&self.binary);
        let mut argv = cmd.argv();
        vnc_any_free_display(&mut argv);
        Ok(argv)
    }
}

/// The first display QEMU may take for `display = vnc`, and the last (`-vnc …,to=N`).
pub const VNC_DISPLAYS: std::ops::RangeInclusive<u16> = 0..=99;

/// `display = vnc`: `qemu-cmd` renders `-vnc :0` (the run's display, always 0 here); this turns
/// it into `-vnc 127.0.0.1:0,to=99`. QEMU binds display 0, 1, … in turn and keeps the first
/// free one, so concurrent VMs (in any processes) never collide and nothing is probed and
/// released; `vm` reads the display back with `query-vnc` ([`crate::Vm::vnc_port`]). Loopback
/// only: a VNC server without a password is not offered to the network (tunnel to reach it).
fn vnc_any_free_display(argv: &mut [OsString]) {
    let mut it = argv.iter_mut();
    while let Some(arg) = it.next() {
        if arg == "-vnc" {
            if let Some(value) = it.next().filter(|v| *v == ":0") {
                *value = format!(
                    "127.0.0.1:{},to={}",
                    VNC_DISPLAYS.start(),
                    VNC_DISPLAYS.end()
                )
                .into();
            }
        }
    }
}

impl ArgvSource for QemuCmdArgv {
    fn argv(&self, layout: &RunLayout) -> Result<Vec<OsString>, BoxError> {
        self.build(layout).map_err(Into::into)
    }
}

fn nil_uuid() -> qemu_cmd::types::Uuid {
    // A valid literal; parsing it cannot fail.
    "00000000-0000-0000-0000-000000000000"
        .parse()
        .unwrap_or_else(|_| unreachable!("the nil UUID parses"))
}

/// FNV-1a: a stable number for the instance string (qemu-cmd derives fallback names from it).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vnc_takes_any_free_display() {
        let mut argv: Vec<OsString> = ["qemu", "-vnc", ":0", "-name", ":0"]
            .iter()
            .map(OsString::from)
            .collect();
        vnc_any_free_display(&mut argv);
        assert_eq!(argv[2], "127.0.0.1:0,to=99");
        assert_eq!(argv[4], ":0", "only the value of -vnc changes");
    }

    #[test]
    fn cpu_flags() {
        assert!(cpu_has_virt("processor : 0\nflags\t\t: fpu vme vmx sse\n"));
        assert!(cpu_has_virt("flags : svm\n"));
        assert!(!cpu_has_virt("flags : fpu vme sse\nvmx in another line\n"));
    }

    /// The layout `vm` would pass for a VM with two monitors, a serial, a user NIC with a
    /// reserved MAC and two redirs, whose params also carry a `migration_mode`.
    fn layout() -> RunLayout {
        use crate::layout::{MonitorKind, MonitorSpec, NicMode, NicSpec, RedirSpec, SerialSpec};
        use qemu_cmd::names;
        let run_dir = PathBuf::from("/run/kvmtest-vm1.x");
        let mut p = params::Params::new();
        for (k, v) in [
            ("vms", "vm1"),
            ("monitors", "qmp1 hmp1"),
            ("monitor_type_qmp1", "qmp"),
            ("serials", "serial0"),
            ("nics", "nic1"),
            ("nic_model", "virtio"),
            ("nic_mac_nic1", "0a:11:22:33:44:55"),
            ("redirs", "telnet nc"),
            ("guest_port_telnet", "23"),
            ("guest_port_nc", "2222"),
            ("kernel", "guest/vmlinuz"),
            ("kernel_params", "console=ttyS0"),
            ("uuid", "6f1e8c2a-0000-4000-8000-000000000001"),
            ("migration_mode", "tcp"),
        ] {
            p.insert(k, v);
        }
        RunLayout {
            vm: "vm1".into(),
            instance: "1-abc".into(),
            run_dir: run_dir.clone(),
            root_dir: PathBuf::from("/srv/root"),
            params: p,
            monitors: vec![
                MonitorSpec {
                    name: "qmp1".into(),
                    kind: MonitorKind::Qmp,
                    socket: run_dir.join(names::monitor_socket("qmp1")),
                },
                MonitorSpec {
                    name: "hmp1".into(),
                    kind: MonitorKind::Human,
                    socket: run_dir.join(names::monitor_socket("hmp1")),
                },
            ],
            serials: vec![SerialSpec {
                name: "serial0".into(),
                socket: run_dir.join(names::serial_socket("serial0")),
            }],
            nics: vec![NicSpec {
                name: "nic1".into(),
                index: 0,
                mac: "0a:11:22:33:44:55".parse().expect("mac"),
                mode: NicMode::User,
                netdev_id: names::netdev_id("nic1", 0),
                ifname: "t0-abc".into(),
            }],
            redirs: vec![
                RedirSpec {
                    name: "telnet".into(),
                    guest_port: 23,
                },
                RedirSpec {
                    name: "nc".into(),
                    guest_port: 2222,
                },
            ],
            uuid: Some("6f1e8c2a-0000-4000-8000-000000000001".into()),
        }
    }

    fn caps() -> Capabilities {
        let fixture =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/qemu-caps/qemu-10.0.json");
        Capabilities::load(&fixture).expect("caps fixture")
    }

    #[test]
    fn argv_agrees_with_the_layout() {
        let l = layout();
        let source =
            QemuCmdArgv::new("/usr/bin/qemu-system-x86_64", caps()).with_accel(Some(Accel::Tcg));
        let argv: Vec<String> = source
            .argv(&l)
            .expect("argv")
            .into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let text = argv.join(" ");
        assert_eq!(argv[0], "/usr/bin/qemu-system-x86_64");
        // Every socket vm connects to is the one QEMU serves.
        for sock in l
            .monitors
            .iter()
            .map(|m| &m.socket)
            .chain(l.serials.iter().map(|s| &s.socket))
        {
            assert!(
                text.contains(&format!("path={},", sock.display())),
                "{text}"
            );
        }
        assert!(text.contains("-netdev user,id=hostnet-nic1,hostfwd=tcp:127.0.0.1:0-:23,hostfwd=tcp:127.0.0.1:0-:2222"), "{text}");
        assert!(
            text.contains("netdev=hostnet-nic1,mac=0a:11:22:33:44:55"),
            "{text}"
        );
        assert!(text.contains("-accel tcg"), "{text}");
        assert!(text.contains("-kernel /srv/root/guest/vmlinuz"), "{text}");
        assert!(
            text.contains("-uuid 6f1e8c2a-0000-4000-8000-000000000001"),
            "{text}"
        );
        assert!(!text.contains("-incoming"), "vm owns -incoming: {text}");
    }

    #[test]
    fn params_accelerator_wins_and_env_is_refused() {
        let mut l = layout();
        l.params.insert("vm_accelerator", "kvm");
        let source = QemuCmdArgv::new("qemu", caps()).with_accel(Some(Accel::Tcg));
        let argv = source.build(&l).expect("argv");
        assert!(argv.windows(2).any(|w| w[0] == "-accel" && w[1] == "kvm"));
        l.params.insert("x11_display", ":1");
        assert!(matches!(
            source.build(&l),
            Err(QemuArgvError::Environment { .. })
        ));
        l.params.insert("mem", "lots");
        let err = source.build(&l).expect_err("bad mem").to_string();
        assert!(err.contains("mem"), "{err}");
    }

    #[test]
    fn nil_uuid_parses() {
        assert_eq!(
            nil_uuid().to_string(),
            "00000000-0000-0000-0000-000000000000"
        );
    }
}
