//! `spec`: the one typed reading of a test variant's params, shared by every layer above it.
//!
//! Params are a faithful string map (`crates/params`); what a key *means* is decided here, once:
//! its type, its default, what a bad value is. Each family of keys is read through one fallible
//! constructor that reports every bad key at once as a [`Problem`] naming the object, the key,
//! the value and the cfg `file:line` that set it ([`SpecError`] carries the list), so the
//! command-line builder (`qemu-cmd`), the VM layer (`vm`) and the runner (`tests-suite`) can no
//! longer disagree about a key.
//!
//! * [`vm`]: the VM's hardware, owned ([`VmSpec`] with its images, CD-ROMs, NICs, monitors,
//!   redirs) with the `file:line` of every value ([`Origins`]).
//! * [`platform`]: avocado-vt's global options and ISA platform devices ([`PlatformSpec`]:
//!   `-S`, `-nodefaults`, `-sandbox`, `-rtc`, `-boot`, pvpanic, the SeaBIOS log, the watchdog…).
//! * [`vm_keys`]: the VM family's key declarations per object kind, and [`vm_keys::FAMILIES`],
//!   every family's table (rendered as the key reference in `src/snapshots/`).
//! * [`read`]: how a family is read: [`read::Reader`] over zero-copy per-object params
//!   ([`ObjParams`], the `object_params` rules without copying), collecting [`read::Findings`].
//! * [`types`]: the value types (sizes, MACs, UUIDs, interfaces, accelerators…) and their
//!   parsers.
//! * [`pci`]: the PCI topology keys ([`PciSpec`]: extra root ports and their options).
//! * [`serial`]: serial ports and virtio console/serial ports ([`SerialSpec`]), with their keys.
//! * [`devices`]: virtio RNGs, balloons, the 9p export, OVMF pflash, iothreads ([`DevicesSpec`]).
//! * [`spice`]: the SPICE display (`display = spice`, `spice_*`: [`SpiceSpec`]) and the extra
//!   QXL adapters (`qxl_dev_nr`: [`QxlSpec`]).
//! * [`usb`]: USB controllers and devices ([`UsbSpec`]), with their key tables.
//! * [`iommu`]: guest IOMMUs (`intel_iommu`, `virtio_iommu`) and the `virtio_dev_*`
//!   properties set on every virtio device ([`IommuSpec`]).
//! * [`peripherals`]: input devices, sound cards, vsocks, the smartcard reader and option ROMs
//!   ([`PeripheralsSpec`]).
//! * [`launch`]: how QEMU itself runs: the KVM switches, `-bios`, `-compat`, `-runas`, the VNC
//!   password ([`LaunchSpec`]).
//! * [`opts`]: QEMU option lists as users write them in `*_extra_params`.
//! * [`smp`]: the vCPU topology keys ([`SmpSpec`]) and avocado-vt's arithmetic completing them
//!   ([`Topology`]).
//! * [`memory`]: `mem` and the rest of the memory family ([`MemorySpec`]: machine backend,
//!   hugepages, `mem_devs`, guest NUMA nodes and CPUs).
//! * [`session`]: how tests reach the guest's shell and how long they wait ([`SessionSpec`]:
//!   prompts, credentials, `login_timeout`, `cmd_timeout`, the guest's ready marker).
//! * [`keys`]: [`KeyDoc`], a family's declaration of its keys, and [`Keys`], the typed getters
//!   that read an object's values through it (defaults from the declaration, every problem kept).
//! * [`process`]: what the runner does to VMs and images before and after a test
//!   ([`Processing`]: `start_vm`, `kill_vm`, `create_image`, `remove_image`, the `on_error`
//!   overrides…).
//! * [`test`]: which test a variant runs (`type`) and on which VM (`main_vm`): [`TestTarget`].
//! * [`problem`]: [`Problem`], [`ProblemKind`], [`SpecError`].

pub mod devices;
pub mod filesystem;
pub mod hostdev;
pub mod image;
pub mod iommu;
pub mod keys;
pub mod launch;
pub mod memory;
pub mod nic;
pub mod opts;
pub mod origins;
pub mod pci;
pub mod pcic;
pub mod peripherals;
pub mod platform;
pub mod problem;
pub mod process;
pub mod read;
pub mod regex_cache;
pub mod serial;
pub mod session;
pub mod smp;
pub mod spice;
pub mod storage;
pub mod test;
pub mod throttle;
pub mod tools;
pub mod tpm;
pub mod types;
pub mod usb;
pub mod vm;
pub mod vm_keys;

pub use devices::DevicesSpec;
pub use iommu::IommuSpec;
pub use keys::{KeyDoc, Keys};
pub use launch::LaunchSpec;
pub use memory::{MemDevSpec, MemorySpec, NumaCpuSpec, NumaNodeSpec};
pub use origins::Origins;
pub use pci::PciSpec;
pub use peripherals::PeripheralsSpec;
pub use platform::PlatformSpec;
pub use problem::{into_result, sort_problems, Problem, ProblemKind, SpecError};
pub use process::{ImageProcessing, Processing, Restore, Teardown, VmProcessing, PROCESS_KEYS};
pub use read::{FlatParams, ObjParams, Src};
pub use serial::{SerialBackend, SerialKind, SerialSpec};
pub use session::{SessionSpec, ShellClient, SESSION_KEYS};
pub use smp::{SmpSpec, SmpSupport, Topology};
pub use spice::{QxlSpec, SpicePort, SpiceSpec};
pub use test::{TestTarget, VersionInterval, TEST_KEYS};
pub use tools::{HostTools, TOOL_KEYS};
pub use usb::{UsbControllerSpec, UsbDeviceSpec, UsbSpec};
pub use vm::{
    CdromSpec, ChecksumAlgo, CpuSpec, ImageBackend, ImageSize, ImageSpec, IsoChecksum, MonitorSpec,
    NicMode, NicSpec, PasstSpec, PortForward, RedirSpec, VmSpec,
};

/// Helpers of this crate's unit tests.
#[cfg(test)]
pub(crate) mod test_support {
    use params::Params;

    /// Params from `key = value` pairs.
    pub fn params(pairs: &[(&str, &str)]) -> Params {
        let mut p = Params::new();
        for (k, v) in pairs {
            p.insert(*k, *v);
        }
        p
    }
}
