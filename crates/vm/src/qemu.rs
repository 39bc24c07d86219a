//! [`Qemu`]: one QEMU binary with its probed capabilities and the accelerator for VMs whose
//! params name none, and [`probe_accel`], which chooses that accelerator.
//!
//! [`Qemu::command`] is the only way `vm` gets an argv: `qemu_cmd::build` of the VM's
//! [`VmSpec`] and its [`RunPlan`], with this binary as the program. Nothing is rewritten after
//! the build: the plan already holds every run-specific choice (sockets in the run directory,
//! MACs, tap names, the UUID, the VNC displays, `-incoming`).

use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use qemu_cmd::probe::{default_cache_dir, probe_cached, ProbeError};
use qemu_cmd::types::Accel;
use qemu_cmd::{build, BuildError, Capabilities, QemuCommand, RunPlan, VmSpec};
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

/// Why [`Qemu`] could not produce a command line.
#[derive(Debug, thiserror::Error)]
pub enum QemuArgvError {
    /// The spec asks for what this QEMU cannot do, or the plan does not fit it (all listed).
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The command needs environment variables, which `vm` does not set on QEMU.
    #[error("the command line needs environment variables ({vars}); x11_display is not supported")]
    Environment {
        /// The variables, `K=V` separated by spaces.
        vars: String,
    },
}

/// One QEMU binary: its path, its capabilities, and the accelerator for VMs whose params name
/// none.
///
/// The program is always `binary` (the capabilities describe that binary; a `qemu_binary` in
/// the params is ignored). `vm_accelerator` in the params wins over [`Qemu::accel`].
#[derive(Debug, Clone)]
pub struct Qemu {
    binary: PathBuf,
    caps: Capabilities,
    accel: Option<Accel>,
}

impl Qemu {
    /// `binary`, whose capabilities are `caps`, with the accelerator from [`probe_accel`].
    pub fn new(binary: impl Into<PathBuf>, caps: Capabilities) -> Qemu {
        Qemu {
            binary: binary.into(),
            caps,
            accel: Some(probe_accel().accel),
        }
    }

    /// [`Qemu::new`] with the capabilities probed from `binary` (cached on disk under
    /// [`default_cache_dir`]).
    ///
    /// # Errors
    /// Running or parsing the binary's help output failed.
    pub fn probe(binary: impl Into<PathBuf>) -> Result<Qemu, ProbeError> {
        let binary = binary.into();
        let caps = probe_cached(&binary, &default_cache_dir())?;
        Ok(Qemu::new(binary, caps))
    }

    /// The accelerator for params without `vm_accelerator` (`None`: QEMU's default).
    #[must_use]
    pub fn with_accel(mut self, accel: Option<Accel>) -> Qemu {
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

    /// The command line of `spec` for `plan` on this binary.
    ///
    /// # Errors
    /// Every value this QEMU cannot honour at once, or a needed environment variable.
    pub fn command(&self, spec: &VmSpec, plan: &RunPlan) -> Result<QemuCommand, QemuArgvError> {
        let mut cmd = build(spec, plan, &self.caps)?;
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
        Ok(cmd)
    }

    /// The argv of [`Qemu::command`], program first.
    ///
    /// # Errors
    /// As [`Qemu::command`].
    pub fn argv(&self, spec: &VmSpec, plan: &RunPlan) -> Result<Vec<OsString>, QemuArgvError> {
        Ok(self.command(spec, plan)?.argv())
    }

    /// A plan with this binary's choices (the default accelerator) and no values: a dry run.
    pub fn dry_plan(&self) -> RunPlan {
        RunPlan {
            accel: self.accel,
            ..RunPlan::dry()
        }
    }

    /// The stable rendering of the command line a VM of `spec` started by this binary gets
    /// (not a migration destination): run-specific values as placeholders, so it is equal for
    /// two specs exactly when their real command lines differ only in run-specific values.
    /// What the runner compares to reuse a VM.
    ///
    /// # Errors
    /// As [`Qemu::command`].
    pub fn fingerprint(&self, spec: &VmSpec) -> Result<String, QemuArgvError> {
        Ok(self.command(spec, &self.dry_plan())?.render_stable())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{PlanOptions, VmPlan};

    #[test]
    fn cpu_flags() {
        assert!(cpu_has_virt("processor : 0\nflags\t\t: fpu vme vmx sse\n"));
        assert!(cpu_has_virt("flags : svm\n"));
        assert!(!cpu_has_virt("flags : fpu vme sse\nvmx in another line\n"));
    }

    /// A VM with two monitors, a serial, a user NIC with a given MAC, a tap NIC without one,
    /// two redirs, VNC and a random UUID.
    fn params() -> params::Params {
        let mut p = params::Params::new();
        for (k, v) in [
            ("vms", "vm1"),
            ("monitors", "qmp1 hmp1"),
            ("monitor_type_qmp1", "qmp"),
            ("serials", "serial0"),
            ("nics", "nic1 nic2"),
            ("nic_model", "virtio"),
            ("nic_mac_nic1", "0a:11:22:33:44:55"),
            ("nic_mode_nic2", "tap"),
            ("redirs", "telnet nc"),
            ("guest_port_telnet", "23"),
            ("guest_port_nc", "2222"),
            ("kernel", "guest/vmlinuz"),
            ("kernel_params", "console=ttyS0"),
            ("uuid", "random"),
            ("display", "vnc"),
            ("migration_mode", "tcp"),
        ] {
            p.insert(k, v);
        }
        p
    }

    fn qemu() -> Qemu {
        let fixture =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/qemu-caps/qemu-10.0.json");
        let caps = Capabilities::load(&fixture).expect("caps fixture");
        Qemu::new("/usr/bin/qemu-system-x86_64", caps).with_accel(Some(Accel::Tcg))
    }

    #[test]
    fn the_argv_is_the_plan_rendered() {
        let qemu = qemu();
        let spec = VmSpec::new(&params(), "vm1").expect("spec");
        let plan = VmPlan::decide(&qemu, &spec, &PlanOptions::new("/srv/root")).expect("plan");
        let cmd = qemu.command(&spec, &plan.plan()).expect("command");
        let argv: Vec<String> = cmd
            .argv()
            .into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let text = argv.join(" ");
        assert_eq!(argv[0], "/usr/bin/qemu-system-x86_64");
        let run = plan.run_dir().display().to_string();
        for sock in [
            "monitor-qmp1.sock",
            "monitor-hmp1.sock",
            "serial-serial0.sock",
        ] {
            assert!(text.contains(&format!("path={run}/{sock},")), "{text}");
        }
        assert!(text.contains("-netdev user,id=hostnet-nic1,hostfwd=tcp:127.0.0.1:0-:23,hostfwd=tcp:127.0.0.1:0-:2222"), "{text}");
        assert!(
            text.contains("netdev=hostnet-nic1,mac=0a:11:22:33:44:55"),
            "{text}"
        );
        let tap = &plan.values().nics[1];
        assert!(
            text.contains(&format!(
                "-netdev tap,id=hostnet-nic2,ifname={},",
                tap.ifname
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!("netdev=hostnet-nic2,mac={}", tap.mac)),
            "{text}"
        );
        assert!(text.contains("-accel tcg"), "{text}");
        assert!(text.contains("-kernel /srv/root/guest/vmlinuz"), "{text}");
        assert!(
            text.contains(&format!("-uuid {}", plan.values().uuid)),
            "{text}"
        );
        assert!(text.contains("-vnc 127.0.0.1:0,to=99"), "{text}");
        assert!(
            !text.contains("-incoming"),
            "migration_mode is a test's protocol, not -incoming: {text}"
        );
    }

    #[test]
    fn the_fingerprint_is_the_stable_rendering_of_any_plan() {
        let qemu = qemu();
        let spec = VmSpec::new(&params(), "vm1").expect("spec");
        let a = VmPlan::decide(&qemu, &spec, &PlanOptions::new("/srv/root")).expect("plan a");
        let b = VmPlan::decide(&qemu, &spec, &PlanOptions::new("/srv/root")).expect("plan b");
        assert_ne!(a.run_dir(), b.run_dir());
        assert_ne!(a.values().nics[1].mac, b.values().nics[1].mac);
        let fingerprint = qemu.fingerprint(&spec).expect("fingerprint");
        for plan in [&a, &b] {
            let cmd = qemu.command(&spec, &plan.plan()).expect("command");
            assert_eq!(cmd.render_stable(), fingerprint);
        }
        let mut other = params();
        other.insert("mem", "1024");
        let other = VmSpec::new(&other, "vm1").expect("spec");
        assert_ne!(qemu.fingerprint(&other).expect("fingerprint"), fingerprint);
    }

    /// `vsocks`: each gets a free CID on an open `/dev/vhost-vsock` QEMU inherits; a host
    /// without the device is an error naming the key, never a VM without its vsock.
    #[test]
    fn vsocks_hold_their_cid_or_name_the_missing_host_feature() {
        let qemu = qemu();
        let mut p = params();
        p.insert("vsocks", "vsock0 vsock1");
        let spec = VmSpec::new(&p, "vm1").expect("spec");
        let plan = VmPlan::decide(&qemu, &spec, &PlanOptions::new("/srv/root"));
        if !Path::new(crate::vsock::DEVICE).exists() {
            let err = plan.err().map(|e| e.to_string()).unwrap_or_default();
            assert!(err.contains("needs a host feature"), "{err}");
            assert!(err.contains("vsocks = \"vsock0\""), "{err}");
            assert!(err.contains("/dev/vhost-vsock does not exist"), "{err}");
            return;
        }
        let plan = plan.expect("plan");
        let runs = &plan.values().vsocks;
        assert_eq!(runs.len(), 2);
        assert!(runs[0].cid >= 3 && runs[1].cid > runs[0].cid);
        let fds = plan.inherited_fds();
        let cmd = qemu.command(&spec, &plan.plan()).expect("command");
        let text = cmd.render();
        for r in runs {
            let fd = r.vhostfd.expect("a held fd");
            assert!(fds.contains(&fd));
            assert!(
                text.contains(&format!("guest-cid={},vhostfd={fd}", r.cid)),
                "{text}"
            );
        }
        assert_eq!(
            cmd.render_stable(),
            qemu.fingerprint(&spec).expect("fingerprint")
        );
    }

    #[test]
    fn params_accelerator_wins_and_env_is_refused() {
        let qemu = qemu();
        let mut p = params();
        p.insert("vm_accelerator", "kvm");
        let spec = VmSpec::new(&p, "vm1").expect("spec");
        let argv = qemu.argv(&spec, &qemu.dry_plan()).expect("argv");
        assert!(argv.windows(2).any(|w| w[0] == "-accel" && w[1] == "kvm"));
        p.insert("x11_display", ":1");
        let spec = VmSpec::new(&p, "vm1").expect("spec");
        assert!(matches!(
            qemu.argv(&spec, &qemu.dry_plan()),
            Err(QemuArgvError::Environment { .. })
        ));
    }
}
