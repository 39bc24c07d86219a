//! [`PciSpec`]: how the VM's PCI topology is laid out beyond what the machine gives
//! (`pcie_extra_root_port`, `pcie_root_port_params`), and the display adapter's spelling.

use crate::read::Reader;
use crate::vm::ExtraOpts;

/// The VM's PCI topology keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PciSpec {
    /// `pcie_extra_root_port`: empty root ports added at the end, for hot-plug (q35).
    pub extra_root_ports: u32,
    /// `pcie_root_port_params`: items added to every root port but the machine's first.
    pub root_port_params: ExtraOpts,
    /// `vga_use_legacy_expression`: `-vga TYPE` instead of the adapter's `-device`.
    pub vga_legacy: bool,
}

impl PciSpec {
    /// Reads the keys through the VM's reader.
    pub fn read(r: &mut Reader<'_, '_>) -> PciSpec {
        let root_port_params = r.opt_list("pcie_root_port_params", "hotplug=off");
        PciSpec {
            extra_root_ports: r
                .num("pcie_extra_root_port", "a root port count")
                .unwrap_or(0),
            root_port_params,
            vga_legacy: r.bool("vga_use_legacy_expression", false),
        }
    }
}
