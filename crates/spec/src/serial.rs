//! The serial family: `serials`, each a character device on a unix socket in the run dir and
//! a guest-side port, read as avocado-vt reads them (`serials_define_by_params`), with the keys
//! declared here. The first serial is the VM's console (avocado-vt's `serial_session_device`),
//! except that a port whose `chardev_backend` is a SPICE channel (`spicevmc`, `spiceport`: the
//! guest agent's `vdagent` port) is served by QEMU's SPICE server to a SPICE client and is no
//! console: the console is the first port on a unix socket ([`console`]).

use crate::keys::KeyDoc;
use crate::problem::ProblemKind;
use crate::read::Reader;
use crate::types::SpiceVmcName;
use crate::vm::ExtraOpts;

/// Keys of a serial port (`serials` objects).
pub const SERIAL_KEYS: &[KeyDoc] = &[
    KeyDoc::with_default(
        "serial_type",
        "isa-serial",
        "the guest side: `isa-serial` (or another plain device), `pci-serial*` (a PCI card), \
         `virtserialport` or `virtconsole` (a port of a virtio-serial bus)",
    ),
    KeyDoc::with_default(
        "chardev_backend",
        "unix_socket",
        "the host side: `unix_socket` (kvmtest serves it in the run dir), or a SPICE channel: \
         `spicevmc` (`chardev_name` vdagent, smartcard or usbredir) or `spiceport`",
    ),
    KeyDoc::optional(
        "chardev_name",
        "`name=` of a `spicevmc` or `spiceport` chardev (required there)",
    ),
    KeyDoc::optional(
        "chardev_debug",
        "`debug=` of a `spicevmc` or `spiceport` chardev (spice-server's debug level)",
    ),
    KeyDoc::optional(
        "serial_name",
        "`name=` of a virtio port (unset: `virtio_port_name_prefix` + its index among the \
         virtio ports, else the object's name)",
    ),
    KeyDoc::optional(
        "virtio_port_name_prefix",
        "prefix of a virtio port's generated `name=` (`org.qemu.guest_agent.`)",
    ),
    KeyDoc::optional(
        "serial_bus",
        "the virtio-serial bus of a virtio port (`virtio_serial_pci0`; `<new>`: a new bus; \
         unset: the latest bus with a free port, a new one for a console)",
    ),
    KeyDoc::optional(
        "serial_nr",
        "the port number on its virtio-serial bus (unset: the next free)",
    ),
    KeyDoc::optional(
        "virtio_serial_extra_params",
        "options of a virtio-serial bus device this port creates (`max_ports=4`)",
    ),
];

/// The guest side of a serial port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SerialKind {
    /// A plain device (`isa-serial`…).
    Plain(String),
    /// A PCI serial card (`pci-serial`, `pci-serial-2x`…).
    Pci(String),
    /// A virtio port (`virtserialport`, `virtconsole`).
    VirtioPort {
        /// The device model.
        model: String,
        /// `name=`.
        port_name: String,
        /// `serial_bus`.
        bus: Option<String>,
        /// `serial_nr`.
        nr: Option<u32>,
        /// `virtio_serial_extra_params`.
        bus_extra: ExtraOpts,
    },
}

impl SerialKind {
    /// The device model.
    pub fn model(&self) -> &str {
        match self {
            SerialKind::Plain(m) | SerialKind::Pci(m) => m,
            SerialKind::VirtioPort { model, .. } => model,
        }
    }
}

/// The host side of a serial port (`chardev_backend`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SerialBackend {
    /// `unix_socket`: a unix socket in the run dir (`serial-NAME.sock`).
    UnixSocket,
    /// `spicevmc`: a SPICE channel QEMU's SPICE server offers the client (the agent's
    /// `vdagent`, `smartcard`, `usbredir`).
    SpiceVmc {
        /// `chardev_name`.
        name: SpiceVmcName,
        /// `chardev_debug`.
        debug: Option<String>,
    },
    /// `spiceport`: a SPICE port channel named `chardev_name`.
    SpicePort {
        /// `chardev_name`.
        name: String,
        /// `chardev_debug`.
        debug: Option<String>,
    },
}

/// One serial port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerialSpec {
    /// Object name: the device's id; the chardev is `chardev_NAME`.
    pub name: String,
    /// The guest side.
    pub kind: SerialKind,
    /// The host side.
    pub backend: SerialBackend,
}

impl SerialSpec {
    /// Whether kvmtest serves the port on a unix socket (a console, a log), rather than QEMU's
    /// SPICE server to a SPICE client.
    pub fn is_socket(&self) -> bool {
        self.backend == SerialBackend::UnixSocket
    }
}

/// The VM's serial console: the first serial port on a unix socket (avocado-vt's
/// `serial_session_device` is the first of `serials`; a SPICE channel is no console).
pub fn console(serials: &[SerialSpec]) -> Option<&SerialSpec> {
    serials.iter().find(|s| s.is_socket())
}

/// Reads `serials` (one console named `serial0` when the key is absent, as the seed always
/// had one) through the VM's reader.
pub fn read_serials(r: &mut Reader<'_, '_>) -> Vec<SerialSpec> {
    let names = match r.obj.get("serials") {
        Some(_) => r.objects("serials"),
        None => vec!["serial0"],
    };
    let mut out = Vec::new();
    let mut virtio_ports = 0usize;
    for name in names {
        let mut s = r.child("serial", name);
        let backend = read_backend(&mut s);
        let model = s
            .string("serial_type")
            .unwrap_or_else(|| "isa-serial".into());
        let kind = if model.starts_with("virt") {
            let port_name = match (s.string("serial_name"), s.str("virtio_port_name_prefix")) {
                (Some(n), _) => n,
                (None, Some(prefix)) => format!("{prefix}{virtio_ports}"),
                (None, None) => name.to_string(),
            };
            virtio_ports += 1;
            let bus_extra = s.opt_list("virtio_serial_extra_params", "max_ports=4");
            SerialKind::VirtioPort {
                model,
                port_name,
                bus: s.string("serial_bus"),
                nr: s.num("serial_nr", "a port number"),
                bus_extra,
            }
        } else if model.starts_with("pci") {
            SerialKind::Pci(model)
        } else {
            SerialKind::Plain(model)
        };
        out.push(SerialSpec {
            name: name.to_string(),
            kind,
            backend,
        });
    }
    out
}

/// `chardev_backend` and, for a SPICE channel, its `chardev_name` and `chardev_debug`.
fn read_backend(s: &mut Reader<'_, '_>) -> SerialBackend {
    match s.str("chardev_backend") {
        None | Some("unix_socket") => SerialBackend::UnixSocket,
        Some("spicevmc") => {
            let debug = s.string("chardev_debug");
            match s.parse::<SpiceVmcName>("chardev_name") {
                Some(name) => SerialBackend::SpiceVmc { name, debug },
                None => {
                    if s.obj.get("chardev_name").is_none_or(str::is_empty) {
                        s.problem("chardev_name", ProblemKind::Missing);
                    }
                    SerialBackend::UnixSocket
                }
            }
        }
        Some("spiceport") => {
            let debug = s.string("chardev_debug");
            match s.require("chardev_name") {
                Some(name) => SerialBackend::SpicePort {
                    name: name.to_string(),
                    debug,
                },
                None => SerialBackend::UnixSocket,
            }
        }
        Some(_) => {
            s.problem(
                "chardev_backend",
                ProblemKind::Unsupported {
                    reason: "kvmtest serves serial ports on unix sockets in the run dir \
                             (unix_socket), or as SPICE channels (spicevmc, spiceport)"
                        .into(),
                },
            );
            SerialBackend::UnixSocket
        }
    }
}
