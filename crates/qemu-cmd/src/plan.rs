//! [`RunPlan`]: everything run-specific about one QEMU invocation, decided before it is built.
//!
//! A [`spec::VmSpec`] says what the VM is; a plan says where and how this run of it happens: the
//! directories relative cfg paths resolve against, the run directory of its sockets, the MAC and
//! tap name of each NIC (and the fds or device its host side opened), the value of `uuid = random`, the VNC displays it may bind, the host
//! ports forwarded to the guest, SPICE's generated ports and listening address, the accelerator when the cfg names none, and whether it waits
//! for an incoming migration. The `vm` crate decides a plan once (reserving MACs, creating the
//! run directory) and the builder only renders it, so nothing is rewritten after the fact.
//!
//! Every run-specific value reaches the argv as a [`RunText`]: the bytes QEMU gets and a stable
//! placeholder (`@RUN_DIR@`, `@MAC_nic1@`…). [`RunPlan::placeholders`] keeps a plan's choices
//! (accelerator, incoming mode) and drops its values, so the stable rendering of a real build and
//! the build of its placeholder plan are the same text: that text is a dry run's output and the
//! fingerprint the runner compares to reuse a VM.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::cmd::RunText;
use spec::types::{Accel, IncomingMode, MacAddr, PciHostAddr, Uuid};

/// The VNC displays a VM may bind: QEMU tries `first`, `first + 1`, … `last` (`-vnc
/// ADDR:FIRST,to=LAST`) and keeps the first free one, so concurrent VMs never collide and nothing
/// is probed; the display it took is read back over QMP (`query-vnc`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VncRange {
    /// The first display tried.
    pub first: u16,
    /// The last display tried.
    pub last: u16,
}

impl VncRange {
    /// Displays 0 to 99.
    pub const DEFAULT: VncRange = VncRange { first: 0, last: 99 };
}

/// How a destination VM waits for an incoming migration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    /// `tcp` (on the plan's migration port), `unix` (`migration.sock` in the run directory),
    /// `exec` or `defer` (the URI is given later with QMP `migrate-incoming`).
    pub mode: IncomingMode,
    /// For `exec`: the command QEMU reads the state from (default `nc -l PORT`).
    pub exec_cmd: Option<String>,
}

impl Incoming {
    /// `-incoming defer`.
    pub fn defer() -> Incoming {
        Incoming {
            mode: IncomingMode::Defer,
            exec_cmd: None,
        }
    }
}

/// The decided host side of one NIC (in `nics` order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NicRun {
    /// Its MAC: `nic_mac` when the cfg gives one, else generated (and reserved) for this run.
    pub mac: MacAddr,
    /// Its tap interface name: `nic_ifname`, else generated (at most 15 bytes); also the name of
    /// a `nettype = macvtap` NIC's macvtap link.
    pub ifname: String,
    /// `nettype = macvtap` or `bridge`: the open tap fds QEMU inherits (`fd=`, or `fds=` with
    /// queues).
    pub tap_fds: Vec<i32>,
    /// `nettype = macvtap` or `bridge` with `vhost = on`: the open `/dev/vhost-net` fds QEMU inherits
    /// (`vhostfd=`, or `vhostfds=` with queues).
    pub vhost_fds: Vec<i32>,
    /// `nettype = vdpa`: the vhost-vdpa character device of `netdst` (`/dev/vhost-vdpa-N`).
    pub vhostdev: Option<PathBuf>,
}

impl NicRun {
    /// A NIC with only a MAC and an interface name (no fds, no vhost-vdpa device).
    pub fn new(mac: MacAddr, ifname: impl Into<String>) -> NicRun {
        NicRun {
            mac,
            ifname: ifname.into(),
            tap_fds: Vec::new(),
            vhost_fds: Vec::new(),
            vhostdev: None,
        }
    }
}

/// The decided host side of one vsock (in `vsocks` order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VsockRun {
    /// Its guest CID: free on the host when decided (avocado-vt's search, from 3 up).
    pub cid: u32,
    /// An open `/dev/vhost-vsock` fd QEMU inherits (`vhostfd=`) that already holds the CID, so
    /// no other VM can take it between the choice and QEMU's start; `None`: QEMU opens the device
    /// itself (the acceptance checks' plans, [`RunPlan::in_dir`]).
    pub vhostfd: Option<i32>,
}

/// The run-time side of `display = spice`: what `spice_port = generate`,
/// `spice_tls_port = generate` and `listening_addr` decided (the `vm` crate chooses free ports of
/// avocado-vt's ranges and looks the host's address up).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpiceRun {
    /// The port of `spice_port = generate`.
    pub port: Option<u16>,
    /// The port of `spice_tls_port = generate`.
    pub tls_port: Option<u16>,
    /// The host's address of `listening_addr`.
    pub addr: Option<String>,
}

/// The concrete values of a real run.
#[derive(Debug, Clone)]
pub struct RunValues {
    /// Base of relative paths in the cfg (kernel, initrd, ISOs, floppy, scripts, the binary).
    pub root_dir: PathBuf,
    /// Base of relative `image_name`s (avocado-vt's images directory).
    pub image_dir: PathBuf,
    /// This run's private directory: monitor and serial sockets, the migration socket, named as
    /// in [`crate::names`].
    pub run_dir: PathBuf,
    /// One per NIC of the spec, in order.
    pub nics: Vec<NicRun>,
    /// The value of `uuid = random` (a fixed `uuid` is the spec's); a migration destination
    /// gets its source's.
    pub uuid: Uuid,
    /// The VNC displays `display = vnc` may bind.
    pub vnc: VncRange,
    /// The host port forwarded to each redir, in `redirs` order; 0 (or a missing entry) lets the
    /// kernel pick a free port when QEMU binds, which the caller reads back (`info usernet`).
    pub redir_ports: Vec<u16>,
    /// The port a `tcp`/`exec` incoming migration listens on.
    pub migration_port: u16,
    /// The host PCI devices assigned to the guest.
    pub pci_hosts: Vec<PciHostAddr>,
    /// One per vsock of the spec (`vsocks`), in order.
    pub vsocks: Vec<VsockRun>,
    /// What `display = spice` decided at run time.
    pub spice: SpiceRun,
}

/// The run-specific side of a command line (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct RunPlan {
    /// The accelerator when the spec names none (`vm_accelerator`); `None`: QEMU's default.
    pub accel: Option<Accel>,
    /// Start as a migration destination.
    pub incoming: Option<Incoming>,
    /// The concrete values; `None` renders every run-specific part as its placeholder.
    pub values: Option<RunValues>,
}

fn text(real: &[u8], placeholder: impl Into<String>) -> RunText {
    RunText {
        real: real.to_vec(),
        placeholder: placeholder.into(),
    }
}

fn same(placeholder: String) -> RunText {
    RunText {
        real: placeholder.clone().into_bytes(),
        placeholder,
    }
}

fn path_text(p: &Path, placeholder: &str) -> RunText {
    text(p.as_os_str().as_bytes(), placeholder)
}

fn join_fds(fds: &[i32]) -> String {
    fds.iter().map(i32::to_string).collect::<Vec<_>>().join(":")
}

/// The UUID of [`RunPlan::in_dir`]'s plans.
const FIXED_UUID: &str = "6f1e8c2a-0000-4000-8000-000000000001";

impl RunPlan {
    /// A dry run: no accelerator chosen, no incoming migration, every value a placeholder.
    pub fn dry() -> RunPlan {
        RunPlan::default()
    }

    /// A real plan with everything in one directory (root, images, run files), for starting a
    /// VM outside the `vm` crate (the QEMU acceptance checks): given MACs and tap names kept,
    /// the others derived from the NIC's position; a fixed UUID; vsock CIDs from 3 up without
    /// fds (QEMU opens `/dev/vhost-vsock` itself); no host ports, PCI hosts or NIC fds.
    pub fn in_dir(spec: &crate::VmSpec, dir: &Path, accel: Option<Accel>) -> RunPlan {
        let nics = spec
            .nics
            .iter()
            .enumerate()
            .map(|(i, n)| {
                NicRun::new(
                    n.mac.unwrap_or_else(|| MacAddr::derived(42, i)),
                    n.ifname.clone().unwrap_or_else(|| format!("t{i}-kvmtest")),
                )
            })
            .collect();
        RunPlan {
            accel,
            incoming: None,
            values: Some(RunValues {
                root_dir: dir.to_path_buf(),
                image_dir: dir.to_path_buf(),
                run_dir: dir.to_path_buf(),
                nics,
                uuid: FIXED_UUID
                    .parse()
                    .unwrap_or_else(|_| unreachable!("FIXED_UUID is a UUID")),
                vnc: VncRange::DEFAULT,
                redir_ports: Vec::new(),
                migration_port: 0,
                pci_hosts: Vec::new(),
                vsocks: (3..)
                    .zip(&spec.peripherals.vsocks)
                    .map(|(cid, _)| VsockRun { cid, vhostfd: None })
                    .collect(),
                spice: SpiceRun::default(),
            }),
        }
    }

    /// This plan's choices with placeholders for its values: its build renders, as QEMU would
    /// get it, what a real build of this plan renders in its stable form.
    #[must_use]
    pub fn placeholders(&self) -> RunPlan {
        RunPlan {
            accel: self.accel,
            incoming: self.incoming.clone(),
            values: None,
        }
    }

    /// The root dir for relative cfg paths.
    pub fn root_dir(&self) -> RunText {
        match &self.values {
            None => same("@ROOT@".into()),
            Some(v) => path_text(&v.root_dir, "@ROOT@"),
        }
    }

    /// The directory of relative image names (shown as `@ROOT@` when it is the root dir, so a
    /// plan that keeps images with the other files renders as before).
    pub fn image_dir(&self) -> RunText {
        match &self.values {
            None => same("@ROOT@".into()),
            Some(v) if v.image_dir == v.root_dir => path_text(&v.image_dir, "@ROOT@"),
            Some(v) => path_text(&v.image_dir, "@IMAGES@"),
        }
    }

    /// The per-run directory.
    pub fn run_dir(&self) -> RunText {
        match &self.values {
            None => same("@RUN_DIR@".into()),
            Some(v) => path_text(&v.run_dir, "@RUN_DIR@"),
        }
    }

    /// The MAC of NIC `index` (named `name`) when the cfg gives none.
    pub fn mac(&self, index: usize, name: &str) -> RunText {
        let ph = format!("@MAC_{name}@");
        match self.values.as_ref().and_then(|v| v.nics.get(index)) {
            None => same(ph),
            Some(n) => text(n.mac.to_string().as_bytes(), ph),
        }
    }

    /// The tap interface name of NIC `index` when the cfg gives none.
    pub fn tap_ifname(&self, index: usize, name: &str) -> RunText {
        let ph = format!("@TAP_{name}@");
        match self.values.as_ref().and_then(|v| v.nics.get(index)) {
            None => same(ph),
            Some(n) => text(n.ifname.as_bytes(), ph),
        }
    }

    /// The tap fds of NIC `index` (`nettype = macvtap`, `bridge`), `:`-separated as `fds=` wants them.
    pub fn tap_fds(&self, index: usize, name: &str) -> RunText {
        let ph = format!("@TAPFD_{name}@");
        match self.values.as_ref().and_then(|v| v.nics.get(index)) {
            None => same(ph),
            Some(n) => text(join_fds(&n.tap_fds).as_bytes(), ph),
        }
    }

    /// The `/dev/vhost-net` fds of NIC `index` (a macvtap NIC with `vhost = on`).
    pub fn vhost_fds(&self, index: usize, name: &str) -> RunText {
        let ph = format!("@VHOSTFD_{name}@");
        match self.values.as_ref().and_then(|v| v.nics.get(index)) {
            None => same(ph),
            Some(n) => text(join_fds(&n.vhost_fds).as_bytes(), ph),
        }
    }

    /// The vhost-vdpa device of NIC `index` (`nettype = vdpa`).
    pub fn vhostdev(&self, index: usize, name: &str) -> RunText {
        let ph = format!("@VHOSTDEV_{name}@");
        match self
            .values
            .as_ref()
            .and_then(|v| v.nics.get(index))
            .and_then(|n| n.vhostdev.as_deref())
        {
            None => same(ph),
            Some(p) => path_text(p, &ph),
        }
    }

    /// The VNC displays, as `-vnc`'s value.
    pub fn vnc(&self) -> RunText {
        match &self.values {
            None => same("@VNC@".into()),
            Some(v) => text(
                format!("127.0.0.1:{},to={}", v.vnc.first, v.vnc.last).as_bytes(),
                "@VNC@",
            ),
        }
    }

    /// The host port forwarded to redir `index` (named `name`).
    pub fn redir_port(&self, index: usize, name: &str) -> RunText {
        let ph = format!("@PORT_{name}@");
        match &self.values {
            None => same(ph),
            Some(v) => {
                let host = v.redir_ports.get(index).copied().unwrap_or(0);
                text(host.to_string().as_bytes(), ph)
            }
        }
    }

    /// The guest CID of vsock `index` (named `name`).
    pub fn vsock_cid(&self, index: usize, name: &str) -> RunText {
        let ph = format!("@VSOCK_CID_{name}@");
        match self.values.as_ref().and_then(|v| v.vsocks.get(index)) {
            None => same(ph),
            Some(r) => text(r.cid.to_string().as_bytes(), ph),
        }
    }

    /// The `/dev/vhost-vsock` fd of vsock `index` (named `name`), when the plan holds one (a dry
    /// run shows its placeholder: the `vm` crate's plans always hold one).
    pub fn vsock_fd(&self, index: usize, name: &str) -> Option<RunText> {
        let ph = format!("@VSOCK_FD_{name}@");
        match &self.values {
            None => Some(same(ph)),
            Some(v) => v
                .vsocks
                .get(index)
                .and_then(|r| r.vhostfd)
                .map(|fd| text(fd.to_string().as_bytes(), ph)),
        }
    }

    /// A value [`SpiceRun`] holds: `None` when the plan has values but not this one (the
    /// builder reports it: a caller's mistake, never a port QEMU would read as "none").
    fn spice_value(
        &self,
        get: impl Fn(&SpiceRun) -> Option<String>,
        placeholder: &str,
    ) -> Option<RunText> {
        match &self.values {
            None => Some(same(placeholder.into())),
            Some(v) => get(&v.spice).map(|t| text(t.as_bytes(), placeholder)),
        }
    }

    /// The port of `spice_port = generate`.
    pub fn spice_port(&self) -> Option<RunText> {
        self.spice_value(|s| s.port.map(|p| p.to_string()), "@SPICE_PORT@")
    }

    /// The port of `spice_tls_port = generate`.
    pub fn spice_tls_port(&self) -> Option<RunText> {
        self.spice_value(|s| s.tls_port.map(|p| p.to_string()), "@SPICE_TLS_PORT@")
    }

    /// The host's address of `listening_addr`.
    pub fn spice_addr(&self) -> Option<RunText> {
        self.spice_value(|s| s.addr.clone(), "@SPICE_ADDR@")
    }

    /// The UUID for `uuid = random`.
    pub fn uuid(&self) -> RunText {
        match &self.values {
            None => same("@UUID@".into()),
            Some(v) => text(v.uuid.to_string().as_bytes(), "@UUID@"),
        }
    }

    /// The incoming-migration port.
    pub fn migration_port(&self) -> RunText {
        match &self.values {
            None => same("@MIGRATION_PORT@".into()),
            Some(v) => text(v.migration_port.to_string().as_bytes(), "@MIGRATION_PORT@"),
        }
    }

    /// The assigned PCI host devices, given how many the cfg requested.
    pub fn pci_hosts(&self, requested: u32) -> Vec<RunText> {
        match &self.values {
            None => (1..=requested)
                .map(|i| same(format!("@PCI_HOST_{i}@")))
                .collect(),
            Some(v) => v
                .pci_hosts
                .iter()
                .enumerate()
                .map(|(i, a)| text(a.to_string().as_bytes(), format!("@PCI_HOST_{}@", i + 1)))
                .collect(),
        }
    }
}
