//! [`RunLayout`]: everything run-specific that a VM's command line needs, decided before spawning,
//! and [`ArgvSource`], the boundary to whoever turns it into an argv.
//!
//! The `vm` crate decides the run directory and socket names, MACs, netdev ids, the UUID and
//! which guest ports are forwarded; an [`ArgvSource`] (the `qemu-cmd` builder, or a closure in
//! tests) turns the layout into QEMU's argv. Socket names and NIC ids come from
//! [`qemu_cmd::names`] (`monitor-NAME.sock`, `serial-NAME.sock`, `migration.sock`,
//! `hostnet-NIC`), the one place both sides read them from.

use std::ffi::OsString;
use std::path::PathBuf;

use params::Params;

use crate::error::BoxError;
use crate::net::MacAddr;

/// The kind of a monitor (`monitor_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MonitorKind {
    /// QMP (`monitor_type = qmp`).
    Qmp,
    /// The human monitor (`monitor_type = human`, the default).
    Human,
}

/// One monitor socket.
#[derive(Debug, Clone)]
pub struct MonitorSpec {
    /// The monitor's name in `monitors`.
    pub name: String,
    /// QMP or human.
    pub kind: MonitorKind,
    /// The unix socket QEMU serves it on.
    pub socket: PathBuf,
}

/// One serial port socket (the first is the serial console).
#[derive(Debug, Clone)]
pub struct SerialSpec {
    /// The serial's name in `serials`.
    pub name: String,
    /// The unix socket QEMU serves it on.
    pub socket: PathBuf,
}

/// How a NIC reaches the host, as `spec::NicMode` reads `nic_mode` / `nettype`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NicMode {
    /// QEMU's user-mode network (`nic_mode = user`, `nettype = user`, the default): the guest
    /// is reached through forwarded host ports.
    User,
    /// A tap device (`nic_mode = tap`) whose name kvmtest chooses and passes to QEMU.
    Tap,
    /// A tap device that QEMU's bridge helper creates and plugs into a host bridge
    /// (`nettype = bridge`, `netdst`): reached at the guest's own address, like a tap.
    Bridge,
}

impl From<&spec::NicMode<'_>> for NicMode {
    fn from(m: &spec::NicMode<'_>) -> NicMode {
        match m {
            spec::NicMode::User => NicMode::User,
            spec::NicMode::Tap => NicMode::Tap,
            spec::NicMode::Bridge { .. } => NicMode::Bridge,
        }
    }
}

/// One NIC.
#[derive(Debug, Clone)]
pub struct NicSpec {
    /// The NIC's name in `nics`.
    pub name: String,
    /// Its index in `nics`.
    pub index: usize,
    /// Its MAC (given, copied from a migration source, or generated and reserved).
    pub mac: MacAddr,
    /// User or tap.
    pub mode: NicMode,
    /// Its netdev id, unique in this VM ([`qemu_cmd::names::netdev_id`]).
    pub netdev_id: String,
    /// The tap interface name (`nic_ifname` or a short generated one).
    pub ifname: String,
}

/// A guest port to forward from a kernel-chosen host port.
#[derive(Debug, Clone)]
pub struct RedirSpec {
    /// The redir's name in `redirs`.
    pub name: String,
    /// The guest TCP port.
    pub guest_port: u16,
}

/// The run-specific inputs of one QEMU invocation.
#[derive(Debug, Clone)]
pub struct RunLayout {
    /// The VM's name.
    pub vm: String,
    /// A string unique to this VM instance (timestamp and random part).
    pub instance: String,
    /// The private run directory (sockets).
    pub run_dir: PathBuf,
    /// Base for relative paths in the params (kernel, initrd, images, ISOs): the spec's root.
    pub root_dir: PathBuf,
    /// The VM's params (its object view), with `nic_mac_NIC`, `nic_ifname_NIC` (tap NICs) and
    /// a concrete `uuid` filled in.
    pub params: Params,
    /// Monitor sockets, in `monitors` order.
    pub monitors: Vec<MonitorSpec>,
    /// Serial sockets, in `serials` order.
    pub serials: Vec<SerialSpec>,
    /// NICs, in `nics` order.
    pub nics: Vec<NicSpec>,
    /// Forwarded guest ports; the host side must be port 0 (`hostfwd=tcp:127.0.0.1:0-:PORT`).
    pub redirs: Vec<RedirSpec>,
    /// The UUID, when `uuid = random` (or given).
    pub uuid: Option<String>,
}

impl RunLayout {
    /// `hostfwd=` values for the first user-mode NIC: `tcp:127.0.0.1:0-:GUEST` per redir.
    pub fn hostfwds(&self) -> Vec<String> {
        self.redirs
            .iter()
            .map(|r| format!("tcp:127.0.0.1:0-:{}", r.guest_port))
            .collect()
    }

    /// The socket of the migration destination's `unix:` listener.
    pub fn migration_socket(&self) -> PathBuf {
        self.run_dir.join(qemu_cmd::names::MIGRATION_SOCKET)
    }
}

/// Produces QEMU's argv (program first) for a [`RunLayout`].
///
/// Implemented for closures, so a test or a caller with its own builder can pass
/// `|layout: &RunLayout| -> Result<Vec<OsString>, BoxError> { … }`.
pub trait ArgvSource: Send + Sync {
    /// The argv, program first.
    ///
    /// # Errors
    /// Whatever the builder reports (bad params, unsupported options).
    fn argv(&self, layout: &RunLayout) -> Result<Vec<OsString>, BoxError>;
}

impl<F> ArgvSource for F
where
    F: Fn(&RunLayout) -> Result<Vec<OsString>, BoxError> + Send + Sync,
{
    fn argv(&self, layout: &RunLayout) -> Result<Vec<OsString>, BoxError> {
        self(layout)
    }
}

/// `a` + `path` + `b` as one QEMU option value, commas in the path doubled (QEMU's escaping).
pub fn qemu_path_opt(before: &str, path: &std::path::Path, after: &str) -> OsString {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let mut bytes = before.as_bytes().to_vec();
    for &b in path.as_os_str().as_bytes() {
        bytes.push(b);
        if b == b',' {
            bytes.push(b',');
        }
    }
    bytes.extend_from_slice(after.as_bytes());
    OsString::from_vec(bytes)
}

/// Shell-like rendering of an argv, for logs only (never executed).
pub fn render_argv(argv: &[OsString]) -> String {
    argv.iter()
        .map(|a| {
            let s = a.to_string_lossy();
            if !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@+%".contains(c))
            {
                s.into_owned()
            } else {
                format!("'{}'", s.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
