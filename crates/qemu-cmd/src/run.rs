//! [`RunContext`]: the run-specific inputs of a command line, or placeholders for them.
//!
//! Socket paths, generated MACs and tap names, the VNC display, forwarded ports, a random UUID
//! and assigned PCI devices differ between runs. The builder asks this context for each of them
//! and gets a [`RunText`]: the concrete bytes and a stable placeholder (`@RUN_DIR@`,
//! `@MAC_nic1@`…). A real run uses [`RunContext::Real`] with values the `vm` crate chose (ports
//! picked by the kernel, a per-run directory); dry runs and snapshots use
//! [`RunContext::Placeholders`], where the placeholder is also what QEMU would get.

use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use crate::cmd::RunText;
use spec::types::{MacAddr, PciHostAddr, Uuid};

/// Concrete run-specific values.
#[derive(Debug, Clone)]
pub struct RunValues {
    /// Base for relative paths in the cfg (images, ISOs, kernels, scripts, the binary).
    pub root_dir: PathBuf,
    /// This run's private directory: monitor and serial sockets, test log, migration socket,
    /// named as in [`crate::names`].
    pub run_dir: PathBuf,
    /// A number unique to this VM instance: the MACs of NICs without `nic_mac` and the tap
    /// names of NICs without `nic_ifname` are derived from it.
    pub instance: u64,
    /// The UUID used for `uuid = random`.
    pub uuid: Uuid,
    /// The VNC display number (`-vnc :N`).
    pub vnc_display: u16,
    /// Host ports forwarded to each guest port of `redirs`, by guest port. A guest port not
    /// listed (the usual case) is forwarded from host port 0: the kernel picks a free port
    /// when QEMU binds, and the caller reads it back (`info usernet`), so nothing is probed.
    pub redir_ports: Vec<(u16, u16)>,
    /// The port an incoming migration listens on (`tcp`, `exec`).
    pub migration_port: u16,
    /// The host PCI devices assigned to the guest.
    pub pci_hosts: Vec<PciHostAddr>,
}

/// Where the run-specific parts of a command line come from.
#[derive(Debug, Clone)]
pub enum RunContext {
    /// A dry run: every run-specific part is its placeholder.
    Placeholders,
    /// A real run.
    Real(Box<RunValues>),
}

fn text(real: Vec<u8>, placeholder: String) -> RunText {
    RunText { real, placeholder }
}

fn same(placeholder: String) -> RunText {
    RunText {
        real: placeholder.clone().into_bytes(),
        placeholder,
    }
}

impl RunContext {
    /// The root dir for relative cfg paths.
    pub fn root_dir(&self) -> RunText {
        match self {
            RunContext::Placeholders => same("@ROOT@".into()),
            RunContext::Real(v) => {
                text(v.root_dir.as_os_str().as_bytes().to_vec(), "@ROOT@".into())
            }
        }
    }

    /// The per-run directory.
    pub fn run_dir(&self) -> RunText {
        match self {
            RunContext::Placeholders => same("@RUN_DIR@".into()),
            RunContext::Real(v) => text(
                v.run_dir.as_os_str().as_bytes().to_vec(),
                "@RUN_DIR@".into(),
            ),
        }
    }

    /// The generated MAC of NIC `index` (named `name`).
    pub fn mac(&self, index: usize, name: &str) -> RunText {
        let ph = format!("@MAC_{name}@");
        match self {
            RunContext::Placeholders => same(ph),
            RunContext::Real(v) => text(
                MacAddr::derived(v.instance, index).to_string().into_bytes(),
                ph,
            ),
        }
    }

    /// The generated tap interface name of NIC `index` (at most 15 bytes, as Linux requires).
    pub fn tap_ifname(&self, index: usize, name: &str) -> RunText {
        let ph = format!("@TAP_{name}@");
        match self {
            RunContext::Placeholders => same(ph),
            RunContext::Real(v) => {
                let mut s = format!("t{index}-{:x}", v.instance);
                s.truncate(15);
                text(s.into_bytes(), ph)
            }
        }
    }

    /// The VNC display number.
    pub fn vnc_display(&self) -> RunText {
        match self {
            RunContext::Placeholders => same("@VNC_DISPLAY@".into()),
            RunContext::Real(v) => text(
                v.vnc_display.to_string().into_bytes(),
                "@VNC_DISPLAY@".into(),
            ),
        }
    }

    /// The host port forwarded to `guest_port` (redir `name`); 0 when the run lists none,
    /// which lets the kernel choose the port when QEMU binds it (read back afterwards).
    pub fn redir_port(&self, name: &str, guest_port: u16) -> RunText {
        let ph = format!("@PORT_{name}@");
        match self {
            RunContext::Placeholders => same(ph),
            RunContext::Real(v) => {
                let host = v
                    .redir_ports
                    .iter()
                    .find(|(g, _)| *g == guest_port)
                    .map_or(0, |(_, h)| *h);
                text(host.to_string().into_bytes(), ph)
            }
        }
    }

    /// The UUID for `uuid = random`.
    pub fn uuid(&self) -> RunText {
        match self {
            RunContext::Placeholders => same("@UUID@".into()),
            RunContext::Real(v) => text(v.uuid.to_string().into_bytes(), "@UUID@".into()),
        }
    }

    /// The incoming-migration port.
    pub fn migration_port(&self) -> RunText {
        match self {
            RunContext::Placeholders => same("@MIGRATION_PORT@".into()),
            RunContext::Real(v) => text(
                v.migration_port.to_string().into_bytes(),
                "@MIGRATION_PORT@".into(),
            ),
        }
    }

    /// The assigned PCI host devices, given how many the cfg requested.
    pub fn pci_hosts(&self, requested: u32) -> Vec<RunText> {
        match self {
            RunContext::Placeholders => (1..=requested)
                .map(|i| same(format!("@PCI_HOST_{i}@")))
                .collect(),
            RunContext::Real(v) => v
                .pci_hosts
                .iter()
                .enumerate()
                .map(|(i, a)| text(a.to_string().into_bytes(), format!("@PCI_HOST_{}@", i + 1)))
                .collect(),
        }
    }
}
