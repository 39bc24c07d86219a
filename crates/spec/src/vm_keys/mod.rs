//! The keys of the VM hardware family, one table per object kind, and the list of every family.
//!
//! `Reader` (the VM family's reader) checks in debug builds that each key it reads is declared
//! here for its object kind, so a key cannot be read without appearing in the tables that the
//! key reference (`FAMILIES`, rendered in `src/snapshots/`) and a future `lint` read. Defaults
//! are what the reader and the command-line builder do when the key is unset.

use crate::image::IMAGE_KEYS;
use crate::keys::KeyDoc;
use crate::memory::{MEM_DEV_KEYS, MEM_KEYS, NUMA_CPU_KEYS, NUMA_NODE_KEYS};
use crate::nic::NIC_KEYS;
use crate::process::PROCESS_KEYS;
use crate::session::SESSION_KEYS;
use crate::test::TEST_KEYS;
use crate::tools::TOOL_KEYS;

/// Keys of a VM (`vm` objects: `key_VM` overrides `key`).
pub const VM_KEYS: &[KeyDoc] = &[
    KeyDoc::with_default(
        "qemu_binary",
        "qemu",
        "the QEMU program heading the command line (relative: under the root dir); a run's \
         `--qemu` or kvmtest.toml `qemu_binary` replaces it in every variant",
    ),
    KeyDoc::optional(
        "machine_type",
        "`-machine` type (unset: QEMU's default machine)",
    ),
    KeyDoc::with_default(
        "pci_bus",
        "pci.0",
        "the PCI bus devices go on when no key of theirs places them: avocado-vt's name of the \
         root bus (`pci.0` on i440fx and q35 alike) or a `pci_controllers` name",
    ),
    KeyDoc::with_default(
        "strict_mode",
        "no",
        "avocado-vt's strict device defaults (yes: not built by kvmtest, a problem)",
    ),
    KeyDoc::optional(
        "machine_type_extra_params",
        "options added to `-machine` (`gic-version=host`, `hpet=off`; a bare word is a flag)",
    ),
    KeyDoc::optional(
        "vm_accelerator",
        "kvm or tcg (unset: kvm when /dev/kvm can run a guest, else tcg)",
    ),
    KeyDoc::optional(
        "cpu_model",
        "`-cpu` model candidates, comma-separated: the first this QEMU knows is used \
         (unset: `default_cpu_model`, else QEMU's default CPU)",
    ),
    KeyDoc::optional(
        "default_cpu_model",
        "the CPU model when `cpu_model` is unset",
    ),
    KeyDoc::optional(
        "cpu_model_flags",
        "CPU flags appended to `-cpu`: `+flag`, `-flag`, `flag=value` (a leading comma is allowed)",
    ),
    KeyDoc::optional("cpu_model_vendor", "`vendor=` of `-cpu`"),
    KeyDoc::optional("cpu_family", "`family=` of `-cpu`"),
    KeyDoc::optional("usbs", "the VM's USB controllers (objects with `usb_type`)"),
    KeyDoc::optional(
        "usb_devices",
        "the VM's USB devices (objects with `usbdev_type`)",
    ),
    KeyDoc::with_default(
        "pcie_extra_root_port",
        "0",
        "empty PCIe root ports added at the end of a q35 command line, for hot-plug",
    ),
    KeyDoc::optional(
        "pcie_root_port_params",
        "options added to every PCIe root port but the machine's first (`hotplug=off`)",
    ),
    KeyDoc::with_default(
        "vga_use_legacy_expression",
        "no",
        "yes: `-vga TYPE` instead of the display adapter's `-device`",
    ),
    KeyDoc::optional(
        "nodefaults",
        "kvmtest's key: yes gives `-nodefaults`, no leaves it out (unset: `defaults` decides; \
         both set must agree)",
    ),
    KeyDoc::optional(
        "mem",
        "guest memory: MiB, or with an M/G/T suffix (unset: no `-m`, QEMU's default; \
         avocado-vt sizes it from the host)",
    ),
    KeyDoc::optional(
        "smp",
        "vCPUs at start (unset or 0: derived from the topology, as avocado-vt does; `-smp` \
         is always given)",
    ),
    KeyDoc::optional(
        "vcpu_maxcpus",
        "`maxcpus=` (unset: the product of the topology)",
    ),
    KeyDoc::optional("vcpu_sockets", "sockets of the `-smp` topology"),
    KeyDoc::optional("vcpu_cores", "cores per socket of the `-smp` topology"),
    KeyDoc::optional("vcpu_threads", "threads per core of the `-smp` topology"),
    KeyDoc::optional(
        "vcpu_dies",
        "dies per socket (QEMU 4.1+; INVALID: left out)",
    ),
    KeyDoc::optional(
        "vcpu_clusters",
        "clusters per die (QEMU 7.0+; INVALID: left out)",
    ),
    KeyDoc::optional("vcpu_drawers", "drawers (QEMU 8.2+; INVALID: left out)"),
    KeyDoc::optional(
        "vcpu_books",
        "books per drawer (QEMU 8.2+; INVALID: left out)",
    ),
    KeyDoc::optional(
        "vcpu_prefer_sockets",
        "derive omitted sockets before cores (unset: yes before QEMU 6.2, no since)",
    ),
    KeyDoc::optional(
        "vcpu_devices",
        "hotpluggable vCPUs: each is taken off `smp` (times threads on pseries)",
    ),
    KeyDoc::optional(
        "os_type",
        "windows: `vcpu_sockets` is capped at `win_max_vcpu_sockets`",
    ),
    KeyDoc::with_default(
        "win_max_vcpu_sockets",
        "2",
        "the socket cap of Windows guests",
    ),
    KeyDoc::optional(
        "vm_mem_backend",
        "the machine memory backend type (memory-backend-ram, -file, -memfd; unset: ram)",
    ),
    KeyDoc::optional(
        "vm_mem_backend_path",
        "`mem-path=` of a memory-backend-file (required for one)",
    ),
    KeyDoc::optional("vm_mem_policy", "`policy=` of the machine memory backend"),
    KeyDoc::optional(
        "vm_mem_host_nodes",
        "`host-nodes=` of the machine memory backend",
    ),
    KeyDoc::optional(
        "vm_mem_prealloc",
        "`prealloc=` of the machine memory backend",
    ),
    KeyDoc::optional("vm_mem_share", "`share=` of the machine memory backend"),
    KeyDoc::optional(
        "hugepage_path",
        "hugetlbfs mount backing guest memory (file backend, or `-mem-path`)",
    ),
    KeyDoc::with_default(
        "hugepage",
        "no",
        "yes: guest memory on huge pages at `vm_hugepage_mountpoint` (mounting is host setup)",
    ),
    KeyDoc::with_default("setup_hugepages", "no", "the same as `hugepage`"),
    KeyDoc::with_default(
        "vm_hugepage_mountpoint",
        "/mnt/kvm_hugepage",
        "the huge page mount when `hugepage_path` is unset",
    ),
    KeyDoc::optional(
        "mem_devs",
        "memory backend objects and their DIMMs (objects with the memory device keys)",
    ),
    KeyDoc::optional(
        "guest_numa_nodes",
        "`-numa node` entries (objects with the NUMA node keys); no machine memory backend",
    ),
    KeyDoc::optional(
        "guest_numa_cpus",
        "`-numa cpu` entries (objects with the NUMA CPU keys)",
    ),
    KeyDoc::optional(
        "monitors",
        "the VM's monitors (objects with `monitor_type`; unset: none)",
    ),
    KeyDoc::with_default(
        "serials",
        "serial0",
        "the VM's serial ports (objects with `serial_type`), each on a unix socket; the first \
         is the console (empty: none)",
    ),
    KeyDoc::optional(
        "images",
        "the VM's disks (objects with the image keys; unset: none)",
    ),
    KeyDoc::with_default(
        "scsi_hba",
        "virtio-scsi-pci",
        "the SCSI host adapter of `drive_format = scsi-hd` disks",
    ),
    KeyDoc::optional(
        "nics",
        "the VM's NICs (objects with the NIC keys; unset: none given, QEMU's default NIC \
         only with `defaults = yes` or `nodefaults = no`)",
    ),
    KeyDoc::optional(
        "redirs",
        "host-to-guest TCP forwards on the first user-mode NIC (objects with `guest_port`)",
    ),
    KeyDoc::optional(
        "cdroms",
        "the VM's CD-ROMs (objects with the CD-ROM keys; unset: see `cdrom`)",
    ),
    KeyDoc::optional(
        "cdrom",
        "an ISO: with `cdroms` unset, a single CD-ROM named `cdrom` (the seed's form)",
    ),
    KeyDoc::optional("floppy", "a floppy image (`-fda`)"),
    KeyDoc::optional("tftp", "the user network's TFTP root"),
    KeyDoc::optional("bootp", "the user network's BOOTP file"),
    KeyDoc::optional("kernel", "a kernel booted directly (`-kernel`)"),
    KeyDoc::optional("initrd", "its initrd (`-initrd`)"),
    KeyDoc::optional("kernel_params", "its command line (`-append`)"),
    KeyDoc::optional("kernel_cmdline", "the same, when `kernel_params` is unset"),
    KeyDoc::optional(
        "display",
        "vnc, sdl, nographic, spice (with the `spice_*` keys) or none (unset: QEMU's default \
         display)",
    ),
    KeyDoc::optional(
        "vga",
        "`-vga` card (unset: none under `-nodefaults`, else QEMU's default)",
    ),
    KeyDoc::optional(
        "uuid",
        "the machine UUID, or `random` for a fresh one per start (unset: none)",
    ),
    KeyDoc::with_default("testdev", "no", "the testdev ISA device"),
    // avocado-vt's global options and platform devices (`platform.rs`).
    KeyDoc::with_default(
        "qemu_stop",
        "on",
        "on: `-S`, QEMU starts with the CPUs stopped; the VM layer sends `cont` once its \
         monitors are connected (a migration destination is resumed by the migration)",
    ),
    KeyDoc::with_default(
        "qemu_preconfig",
        "off",
        "on: `--preconfig`; the VM is left in its preconfig state for the test to configure and \
         leave (`x-exit-preconfig`), as avocado-vt leaves it",
    ),
    KeyDoc::with_default(
        "paused_after_start_vm",
        "no",
        "yes: a VM started with `-S` is left paused (no `cont`); the test resumes it",
    ),
    KeyDoc::optional(
        "qemu_command_prefix",
        "argv words before the QEMU binary (`valgrind`, `taskset -c 1`), split as a shell \
         splits words, never run by a shell",
    ),
    KeyDoc::with_default(
        "malloc_perturb",
        "no",
        "yes: `MALLOC_PERTURB_=1` in QEMU's environment",
    ),
    KeyDoc::optional("qemu_audio_drv", "`QEMU_AUDIO_DRV` in QEMU's environment"),
    KeyDoc::with_default(
        "defaults",
        "no",
        "yes: QEMU's default devices; anything else: `-nodefaults` (unset: `nodefaults` \
         decides, else `-nodefaults` where the binary has it)",
    ),
    KeyDoc::with_default("defconfig", "yes", "no: `-nodefconfig`"),
    KeyDoc::optional("qemu_sandbox", "on or off: `-sandbox` (unset: none)"),
    KeyDoc::optional(
        "qemu_sandbox_elevateprivileges",
        "`elevateprivileges=` of `-sandbox` (with `qemu_sandbox = on`, unset: deny)",
    ),
    KeyDoc::optional(
        "qemu_sandbox_obsolete",
        "`obsolete=` of `-sandbox` (with `qemu_sandbox = on`, unset: deny)",
    ),
    KeyDoc::optional(
        "qemu_sandbox_resourcecontrol",
        "`resourcecontrol=` of `-sandbox` (with `qemu_sandbox = on`, unset: deny)",
    ),
    KeyDoc::optional(
        "qemu_sandbox_spawn",
        "`spawn=` of `-sandbox` (with `qemu_sandbox = on`, unset: deny)",
    ),
    KeyDoc::optional("msg_timestamp", "on or off: `-msg timestamp=`"),
    KeyDoc::optional(
        "realtime_mlock",
        "`-overcommit mem-lock=` (on, off, on-fault), or `-realtime mlock=` before `-overcommit`",
    ),
    KeyDoc::optional("cpu-pm", "on or off: `-overcommit cpu-pm=`"),
    KeyDoc::optional("keyboard_layout", "`-k` layout (en-us, de…)"),
    KeyDoc::with_default(
        "enable_pvpanic",
        "no",
        "yes: the pvpanic device (ISA `pvpanic`; `pvpanic-pci` for aarch64 guests)",
    ),
    KeyDoc::optional(
        "vm_arch_name",
        "the guest architecture; `aarch64` makes pvpanic `pvpanic-pci` (unset: the host's)",
    ),
    KeyDoc::optional(
        "ioport_pvpanic",
        "`ioport=` of the ISA pvpanic (0x505 in machines.cfg)",
    ),
    KeyDoc::optional("events_pvpanic", "`events=` of the ISA pvpanic"),
    KeyDoc::with_default("vmcoreinfo", "no", "yes: the vmcoreinfo device"),
    KeyDoc::with_default(
        "enable_debugcon",
        "no",
        "yes: SeaBIOS's log, `isa-debugcon` at 0x402 on a socket in the run dir",
    ),
    KeyDoc::with_default(
        "anaconda_log",
        "no",
        "yes: a virtio-serial port `org.fedoraproject.anaconda.log.0` on a socket in the run dir",
    ),
    KeyDoc::with_default("isa_debugexit", "no", "yes: the isa-debug-exit device"),
    KeyDoc::with_default("isa_debugexit_iobase", "0xf4", "its `iobase=`"),
    KeyDoc::with_default("isa_debugexit_iosize", "0x04", "its `iosize=`"),
    KeyDoc::with_default(
        "enable_watchdog",
        "no",
        "yes: `-watchdog-action` and the `watchdog_device_type` device",
    ),
    KeyDoc::optional(
        "watchdog_device_type",
        "i6300esb, ib700, diag288… or itco (q35's TCO: `-global ICH9-LPC.noreboot=off`); \
         unset: only the action",
    ),
    KeyDoc::with_default(
        "watchdog_action",
        "reset",
        "reset, shutdown, poweroff, pause, debug, none or inject-nmi",
    ),
    KeyDoc::with_default(
        "enable_sga",
        "no",
        "yes: the sga (serial graphics adapter) device",
    ),
    KeyDoc::optional(
        "rtc_base",
        "`-rtc base=`: utc, localtime or a date (base.cfg: utc)",
    ),
    KeyDoc::optional(
        "rtc_clock",
        "`-rtc clock=`: host, rt or vm (base.cfg: host)",
    ),
    KeyDoc::optional("rtc_drift", "`-rtc driftfix=`: none or slew"),
    KeyDoc::optional("boot_menu", "`-boot menu=` (base.cfg: off)"),
    KeyDoc::optional("boot_order", "`-boot order=` (base.cfg: cdn)"),
    KeyDoc::optional("boot_once", "`-boot once=` (base.cfg: c)"),
    KeyDoc::optional("boot_strict", "`-boot strict=` (base.cfg: off)"),
    KeyDoc::optional("boot_reboot_timeout", "`-boot reboot-timeout=` (ms)"),
    KeyDoc::optional("boot_splash_time", "`-boot splash-time=` (ms)"),
    KeyDoc::optional(
        "catch_monitor",
        "a monitor appended to `monitors` when not already listed (avocado-vt's second QMP \
         monitor, `catch_monitor` in base.cfg)",
    ),
    KeyDoc::with_default("disable_hpet", "no", "`-no-hpet`"),
    KeyDoc::with_default(
        "pci_assignable",
        "no",
        "host PCI devices to assign: no, vf, pf or mixed",
    ),
    KeyDoc::with_default(
        "devices_requested",
        "1",
        "how many devices `pci_assignable` assigns (read only when it is not `no`)",
    ),
    KeyDoc::optional(
        "extra_params",
        "more QEMU options, split as a shell splits words",
    ),
    KeyDoc::optional("x11_display", "`DISPLAY` of QEMU's environment (SDL)"),
];

/// Keys of a monitor (objects of `monitors`).
pub const MONITOR_KEYS: &[KeyDoc] = &[
    KeyDoc::with_default("monitor_type", "human", "qmp or human"),
    KeyDoc::with_default(
        "chardev_backend",
        "unix_socket",
        "the monitor's host side: kvmtest serves monitors on unix sockets in the run dir",
    ),
];

/// Keys of a port forward (objects of `redirs`).
pub const REDIR_KEYS: &[KeyDoc] = &[KeyDoc::required(
    "guest_port",
    "the guest TCP port a host port (chosen by the kernel) forwards to",
)];

/// Keys of a CD-ROM (objects of `cdroms`).
pub const CDROM_KEYS: &[KeyDoc] = &[
    KeyDoc::optional("cdrom", "the ISO (unset: the CD-ROM is left out)"),
    KeyDoc::with_default(
        "cd_format",
        "ide",
        "the CD-ROM's bus: ide, scsi (or scsi-cd) or ahci",
    ),
    KeyDoc::optional(
        "drive_index",
        "its index on the bus (unset: the first free IDE/AHCI unit; elsewhere QEMU's choice)",
    ),
    KeyDoc::optional(
        "md5sum_1m",
        "MD5 of the ISO's first MiB, checked before a start (the first of the three checksums \
         set is the one used)",
    ),
    KeyDoc::optional(
        "md5sum",
        "MD5 of the ISO, checked before a start (when `md5sum_1m` is unset)",
    ),
    KeyDoc::optional(
        "sha1sum",
        "SHA-1 of the ISO, checked before a start (when neither MD5 key is set)",
    ),
];

/// Whether `key` is declared for object kind `kind` by one of the VM family's tables (or the
/// host tools', read through the same reader).
pub fn is_declared(kind: &str, key: &str) -> bool {
    if kind == "tools" {
        return TOOL_KEYS.iter().any(|d| d.key == key);
    }
    FAMILIES
        .iter()
        .filter(|(family, k, _)| *family == "vm" && *k == kind)
        .any(|(_, _, docs)| docs.iter().any(|d| d.key == key))
}

/// The keys whose values name a variant's objects (`images = image1 stg`), whose names may
/// suffix other keys (`drive_format_stg`): every list a family reads with `Reader::objects`,
/// and `image_chain`, whose backing images are images too (`image_name_base`).
pub const OBJECT_LISTS: &[&str] = &[
    "vms",
    "images",
    "image_chain",
    "nics",
    "cdroms",
    "monitors",
    "serials",
    "redirs",
    "usbs",
    "usb_devices",
    "virtio_rngs",
    "balloon",
    "iothreads",
    "mem_devs",
    "guest_numa_nodes",
    "guest_numa_cpus",
    "vcpu_devices",
    "inputs",
    "vsocks",
    "tpms",
    "filesystems",
    "vm_hostdevs",
    "pci_controllers",
    "throttle_groups",
];

/// Every family: its name, the object kind its keys belong to, and its table.
pub const FAMILIES: &[(&str, &str, &[KeyDoc])] = &[
    ("test", "test", TEST_KEYS),
    ("processing", "vm / image", PROCESS_KEYS),
    ("vm", "vm", VM_KEYS),
    ("vm", "vm", crate::devices::DEVICES_VM_KEYS),
    ("vm", "vm", crate::spice::SPICE_KEYS),
    ("vm", "monitor", MONITOR_KEYS),
    ("vm", "image", IMAGE_KEYS),
    ("vm", "nic", NIC_KEYS),
    ("vm", "redir", REDIR_KEYS),
    ("vm", "cdrom", CDROM_KEYS),
    ("vm", "mem", MEM_KEYS),
    ("vm", "mem_dev", MEM_DEV_KEYS),
    ("vm", "numa_node", NUMA_NODE_KEYS),
    ("vm", "numa_cpu", NUMA_CPU_KEYS),
    ("vm", "serial", crate::serial::SERIAL_KEYS),
    ("vm", "rng", crate::devices::RNG_KEYS),
    ("vm", "balloon", crate::devices::BALLOON_KEYS),
    ("vm", "iothread", crate::devices::IOTHREAD_KEYS),
    ("vm", "usb", crate::usb::USB_KEYS),
    ("vm", "usb_device", crate::usb::USB_DEVICE_KEYS),
    ("vm", "vcpu", crate::smp::VCPU_KEYS),
    ("vm", "vm", crate::iommu::IOMMU_KEYS),
    ("vm", "vm", crate::peripherals::PERIPHERAL_KEYS),
    ("vm", "input", crate::peripherals::INPUT_KEYS),
    ("vm", "vm", crate::launch::LAUNCH_KEYS),
    ("vm", "vm", crate::tpm::TPM_VM_KEYS),
    ("vm", "tpm", crate::tpm::TPM_KEYS),
    ("vm", "vm", crate::filesystem::FS_VM_KEYS),
    ("vm", "filesystem", crate::filesystem::FS_KEYS),
    ("vm", "vm", crate::hostdev::HOSTDEV_VM_KEYS),
    ("vm", "hostdev", crate::hostdev::HOSTDEV_KEYS),
    ("vm", "vm", crate::pcic::PCIC_VM_KEYS),
    ("vm", "pcic", crate::pcic::PCIC_KEYS),
    ("vm", "nic", crate::pcic::NIC_BUS_KEYS),
    ("vm", "image", crate::pcic::IMAGE_BUS_KEYS),
    ("vm", "cdrom", crate::pcic::CDROM_BUS_KEYS),
    ("vm", "rng", crate::pcic::RNG_BUS_KEYS),
    ("vm", "usb", crate::pcic::USB_BUS_KEYS),
    ("vm", "balloon", crate::pcic::BALLOON_BUS_KEYS),
    ("vm", "vm", crate::throttle::THROTTLE_VM_KEYS),
    ("vm", "throttle_group", crate::throttle::THROTTLE_GROUP_KEYS),
    ("vm", "image", crate::throttle::THROTTLE_IMAGE_KEYS),
    ("session", "vm", SESSION_KEYS),
    ("tools", "vm", TOOL_KEYS),
];

/// The key reference: every family as a markdown table.
pub fn render_reference() -> String {
    let mut out = String::from(
        "# Keys kvmtest reads\n\nGenerated from `crates/spec` (`vm_keys::FAMILIES`); \
         a catalogue test's own keys are listed by `kvmtest tests`.\n",
    );
    for (family, kind, docs) in FAMILIES {
        out.push_str(&format!(
            "\n## {family}: {kind}\n\n| key | default | meaning |\n| --- | --- | --- |\n"
        ));
        for d in *docs {
            let default = match (d.required, d.default) {
                (true, _) => "(required)".to_string(),
                (false, Some(v)) => format!("`{v}`"),
                (false, None) => String::new(),
            };
            out.push_str(&format!(
                "| `{}` | {} | {} |\n",
                d.key,
                default.replace('|', "\\|"),
                d.meaning.replace('|', "\\|")
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests;
