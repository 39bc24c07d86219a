//! Names shared with whoever runs the command line: files in the run directory and QEMU ids.
//!
//! The `vm` crate connects to the sockets the builder puts in the run directory and addresses
//! devices by the ids the builder gives them, so both sides take the names from here and cannot
//! drift apart.

use crate::build::qemu_id;

/// The unix socket of monitor `name` in the run directory: `monitor-NAME.sock`.
pub fn monitor_socket(name: &str) -> String {
    format!("monitor-{name}.sock")
}

/// The unix socket of serial port `name` in the run directory: `serial-NAME.sock`.
pub fn serial_socket(name: &str) -> String {
    format!("serial-{name}.sock")
}

/// The chardev id of SeaBIOS's log (`enable_debugcon`), as avocado-vt names it (without its
/// instance suffix: the run dir is the VM's own).
pub const SEABIOS_LOG_ID: &str = "seabioslog_id";

/// The unix socket of SeaBIOS's log in the run directory (QEMU listens, nobody has to connect).
pub const SEABIOS_LOG_SOCKET: &str = "seabios.sock";

/// The chardev id of the anaconda log port (`anaconda_log`).
pub const ANACONDA_LOG_ID: &str = "anacondalog_chardev";

/// The unix socket of the anaconda log port in the run directory.
pub const ANACONDA_LOG_SOCKET: &str = "anaconda.sock";

/// The `-device` id of the pvpanic device (`enable_pvpanic`).
pub const PVPANIC_ID: &str = "pvpanic";

/// The VM's own copy of OVMF's variable store (`ovmf_vars_filename`), in the run directory:
/// the `vm` crate copies the template there before QEMU starts.
pub const OVMF_VARS_FILE: &str = "ovmf_vars.fd";

/// The id of the `secret` object holding `spice_password` (avocado-vt's).
pub const SPICE_SECRET_ID: &str = "spice_sec0";

/// The directory of the SPICE certificates kvmtest generates (`spice_gen_x509 = yes` without a
/// `spice_x509_prefix`), in the run directory: the `vm` crate makes it before QEMU starts.
pub const SPICE_X509_DIR: &str = "spice-x509";

/// The unix socket an incoming `unix:` migration listens on, in the run directory.
pub const MIGRATION_SOCKET: &str = "migration.sock";

/// The unix socket passt serves NIC `name` on (`nettype = user:passt`), in the run directory:
/// `passt-NAME.sock`. The `vm` crate starts passt on it; QEMU's `stream` netdev connects.
pub fn passt_socket(name: &str) -> String {
    format!("passt-{name}.sock")
}

/// The control socket swtpm serves TPM `name` on (`tpm_type = emulator`), in the run
/// directory: `swtpm-NAME.sock`. The `vm` crate starts swtpm on it; QEMU's chardev connects.
pub fn swtpm_socket(name: &str) -> String {
    format!("swtpm-{name}.sock")
}

/// The state directory of emulated TPM `name`, in the run directory: `swtpm-NAME.state`
/// (swtpm_setup writes it before each start).
pub fn swtpm_state_dir(name: &str) -> String {
    format!("swtpm-{name}.state")
}

/// The vhost-user socket virtiofsd serves file system `name` on (`filesystems`), in the run
/// directory: `virtiofsd-NAME.sock`. The `vm` crate starts virtiofsd on it; QEMU's chardev
/// connects.
pub fn virtiofsd_socket(name: &str) -> String {
    format!("virtiofsd-{name}.sock")
}

/// The netdev id of NIC `name` (index `index` in `nics`): `hostnet-NAME`, or `hostnetN` when the
/// name is not a valid QEMU id.
pub fn netdev_id(name: &str, index: usize) -> String {
    qemu_id("hostnet", name, index)
}

/// The `-device` id of NIC `name` (index `index` in `nics`): `nic-NAME`, or `nicN`.
pub fn nic_device_id(name: &str, index: usize) -> String {
    qemu_id("nic", name, index)
}

/// Whether `name` can be a QEMU id as it is (a letter, then letters, digits, `-`, `_`, `.`).
fn valid_id(name: &str) -> bool {
    name.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// The `-device` model a disk of interface `itf` gets (`virtio-blk-pci`, `ide-hd`…): what QEMU
/// reports as the device's QOM type.
pub fn disk_model(itf: spec::types::DiskInterface) -> &'static str {
    use spec::types::DiskInterface;
    match itf {
        DiskInterface::Ide | DiskInterface::Ahci => "ide-hd",
        DiskInterface::Scsi | DiskInterface::ScsiHd => "scsi-hd",
        DiskInterface::ScsiBlock => "scsi-block",
        DiskInterface::ScsiGeneric => "scsi-generic",
        DiskInterface::Virtio | DiskInterface::VirtioBlkPci => "virtio-blk-pci",
        DiskInterface::Usb1 | DiskInterface::Usb2 | DiskInterface::Usb3 => "usb-storage",
        DiskInterface::Nvme => "nvme",
        DiskInterface::Sd => "sd-card",
        DiskInterface::Floppy => "floppy",
    }
}

/// The ids of image (or CD-ROM) `name` (index `index` in its list), as avocado-vt names them
/// so that a test's QMP commands find them: the device `NAME`, the top block node `drive_NAME`,
/// a protocol node under it `DRIVER_NAME` (`file_NAME`); `diskN` in place of a name that is
/// not a valid QEMU id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskIds {
    /// The `-device` id.
    pub device: String,
    /// The top node (`-blockdev node-name`, or `-drive id`).
    pub node: String,
}

impl DiskIds {
    /// The ids of image `name`.
    pub fn of(name: &str, index: usize) -> DiskIds {
        let device = if valid_id(name) {
            name.to_string()
        } else {
            format!("disk{index}")
        };
        DiskIds {
            node: format!("drive_{device}"),
            device,
        }
    }

    /// The protocol node under a format node: `DRIVER_NAME` (`file_image1`).
    pub fn protocol_node(&self, driver: &str) -> String {
        format!("{driver}_{}", self.device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(monitor_socket("qmp1"), "monitor-qmp1.sock");
        assert_eq!(serial_socket("serial0"), "serial-serial0.sock");
        assert_eq!(netdev_id("nic1", 0), "hostnet-nic1");
        assert_eq!(netdev_id("a b", 2), "hostnet2");
        assert_eq!(nic_device_id("nic1", 0), "nic-nic1");
        let ids = DiskIds::of("image1", 0);
        assert_eq!(
            (ids.device.as_str(), ids.node.as_str()),
            ("image1", "drive_image1")
        );
        assert_eq!(ids.protocol_node("file"), "file_image1");
        assert_eq!(DiskIds::of("1st disk", 3).node, "drive_disk3");
    }
}
