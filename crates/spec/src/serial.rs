//! The serial family: `serials`, each a character device on a unix socket in the run dir and
//! a guest-side port, read as avocado-vt reads them (`serials_define_by_params`), with the keys
//! declared here. The first serial is the VM's console (avocado-vt's `serial_session_device`).

use crate::keys::KeyDoc;
use crate::problem::ProblemKind;
use crate::read::Reader;
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
        "the host side: kvmtest serves every serial port on a unix socket in the run dir",
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

/// One serial port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerialSpec {
    /// Object name: the device's id; the chardev is `chardev_NAME`.
    pub name: String,
    /// The guest side.
    pub kind: SerialKind,
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
        match s.str("chardev_backend") {
            None | Some("unix_socket") => {}
            Some(_) => s.problem(
                "chardev_backend",
                ProblemKind::Unsupported {
                    reason: "kvmtest serves serial ports on unix sockets in the run dir \
                             (unix_socket) only"
                        .into(),
                },
            ),
        }
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
        });
    }
    out
}
