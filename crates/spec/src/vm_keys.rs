//! The keys of the VM hardware family, one table per object kind, and the list of every family.
//!
//! `Reader` (the VM family's reader) checks in debug builds that each key it reads is declared
//! here for its object kind, so a key cannot be read without appearing in the tables that the
//! key reference (`FAMILIES`, rendered in `src/snapshots/`) and a future `lint` read. Defaults
//! are what the reader and the command-line builder do when the key is unset.

use crate::keys::KeyDoc;
use crate::memory::{MEM_DEV_KEYS, MEM_KEYS, NUMA_CPU_KEYS, NUMA_NODE_KEYS};
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
    KeyDoc::with_default("nodefaults", "no", "`-nodefaults`: no default devices"),
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
        "the VM's serial consoles, each on a unix socket (empty: none)",
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
         unless `nodefaults`)",
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
        "vnc, sdl, nographic or none (unset: QEMU's default display)",
    ),
    KeyDoc::optional("vga", "`-vga` card (unset: QEMU's default)"),
    KeyDoc::optional(
        "uuid",
        "the machine UUID, or `random` for a fresh one per start (unset: none)",
    ),
    KeyDoc::with_default("testdev", "no", "the testdev ISA device"),
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
pub const MONITOR_KEYS: &[KeyDoc] = &[KeyDoc::with_default(
    "monitor_type",
    "human",
    "qmp or human",
)];

/// Keys of a disk (objects of `images`).
pub const IMAGE_KEYS: &[KeyDoc] = &[
    KeyDoc::required(
        "image_name",
        "the image file without its format suffix (relative: under the image directory)",
    ),
    KeyDoc::with_default("image_format", "qcow2", "qcow2, raw, …: the file's format"),
    KeyDoc::with_default(
        "image_raw_device",
        "no",
        "`image_name` is a block device, used as it is (no format suffix)",
    ),
    KeyDoc::with_default("image_size", "10G", "the size `qemu-img create` gives it"),
    KeyDoc::optional(
        "drive_format",
        "the disk's bus: ide, scsi, virtio, scsi-hd, virtio-blk-pci or ahci (unset: ide)",
    ),
    KeyDoc::optional(
        "drive_index",
        "its index on the bus (unset: the first free IDE/AHCI unit; elsewhere QEMU's choice)",
    ),
    KeyDoc::optional(
        "drive_cache",
        "none, writeback, writethrough, directsync or unsafe (unset: QEMU's default)",
    ),
    KeyDoc::optional(
        "drive_werror",
        "what a write error does: ignore, stop, report, enospc (unset: QEMU's default)",
    ),
    KeyDoc::optional(
        "drive_rerror",
        "what a read error does: ignore, stop, report, enospc (unset: QEMU's default; \
         dropped where `-drive` has no `rerror`)",
    ),
    KeyDoc::optional("drive_serial", "the disk's serial number"),
    KeyDoc::with_default("image_snapshot", "no", "writes go to a temporary overlay"),
    KeyDoc::with_default("image_boot", "no", "the firmware boots from this disk"),
    KeyDoc::with_default("image_readonly", "no", "the guest cannot write the disk"),
    KeyDoc::optional(
        "images_base_dir",
        "the directory of a relative `image_name` (avocado-vt's; unset: the run's image directory)",
    ),
    KeyDoc::optional(
        "image_secret",
        "the passphrase of a luks image (required for one; passed as a QEMU secret object)",
    ),
    KeyDoc::optional(
        "storage_type",
        "avocado-vt's storage kind; vhost-vdpa, vhost-user-blk and (with enable_iscsi) \
         iscsi-direct select a backend kvmtest does not build yet (a problem)",
    ),
    KeyDoc::with_default(
        "enable_curl",
        "no",
        "the image is read over curl (not built yet)",
    ),
    KeyDoc::with_default(
        "enable_nbd",
        "no",
        "the image is an NBD export (not built yet)",
    ),
    KeyDoc::with_default(
        "enable_iscsi",
        "no",
        "with storage_type = iscsi-direct: libiscsi",
    ),
    KeyDoc::with_default(
        "enable_gluster",
        "no",
        "the image is on GlusterFS (not built yet)",
    ),
    KeyDoc::with_default(
        "enable_ceph",
        "no",
        "the image is a Ceph RBD (not built yet)",
    ),
    KeyDoc::with_default(
        "enable_nvme",
        "no",
        "the image is a host NVMe namespace (not built yet)",
    ),
    KeyDoc::with_default(
        "enable_ssh",
        "no",
        "the image is read over ssh (not built yet)",
    ),
    KeyDoc::with_default(
        "boot_drive",
        "yes",
        "no: the image is not given to the VM at start (hot-plugged later)",
    ),
];

/// Keys of a NIC (objects of `nics`).
pub const NIC_KEYS: &[KeyDoc] = &[
    KeyDoc::optional(
        "nic_mode",
        "user or tap (the seed's key; wins over `nettype`; unset: `nettype`)",
    ),
    KeyDoc::with_default("nettype", "user", "avocado-vt's key: user or bridge"),
    KeyDoc::with_default("netdst", "virbr0", "the bridge of `nettype = bridge`"),
    KeyDoc::with_default(
        "nic_model",
        "rtl8139",
        "the NIC device model (virtio means virtio-net-pci; e1000, rtl8139, …)",
    ),
    KeyDoc::optional("nic_mac", "its MAC (unset: a reserved random one)"),
    KeyDoc::optional(
        "nic_ifname",
        "the tap interface name (unset: derived from the VM)",
    ),
    KeyDoc::optional(
        "nic_script",
        "the tap's ifup script (unset: QEMU's default, usually /etc/qemu-ifup)",
    ),
    KeyDoc::optional(
        "nic_downscript",
        "the tap's ifdown script (unset: none, `downscript=no`)",
    ),
    KeyDoc::optional("tftp", "the user network's TFTP root for this NIC"),
    KeyDoc::optional("bootp", "the user network's BOOTP file for this NIC"),
    KeyDoc::optional("nic_extra_params", "more NIC device options, `a=b,c=d`"),
    KeyDoc::optional(
        "netdev_extra_params",
        "more netdev options, `a=b,c=d` (a leading comma is allowed)",
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

/// The declared keys of the object kind a VM-family reader is created with.
pub fn keys_of(kind: &str) -> Option<&'static [KeyDoc]> {
    Some(match kind {
        "vm" => VM_KEYS,
        "monitor" => MONITOR_KEYS,
        "image" => IMAGE_KEYS,
        "nic" => NIC_KEYS,
        "redir" => REDIR_KEYS,
        "cdrom" => CDROM_KEYS,
        "mem" => MEM_KEYS,
        "mem_dev" => MEM_DEV_KEYS,
        "numa_node" => NUMA_NODE_KEYS,
        "numa_cpu" => NUMA_CPU_KEYS,
        "tools" => TOOL_KEYS,
        _ => return None,
    })
}

/// Every family: its name, the object kind its keys belong to, and its table.
pub const FAMILIES: &[(&str, &str, &[KeyDoc])] = &[
    ("test", "test", TEST_KEYS),
    ("processing", "vm / image", PROCESS_KEYS),
    ("vm", "vm", VM_KEYS),
    ("vm", "monitor", MONITOR_KEYS),
    ("vm", "image", IMAGE_KEYS),
    ("vm", "nic", NIC_KEYS),
    ("vm", "redir", REDIR_KEYS),
    ("vm", "cdrom", CDROM_KEYS),
    ("vm", "mem", MEM_KEYS),
    ("vm", "mem_dev", MEM_DEV_KEYS),
    ("vm", "numa_node", NUMA_NODE_KEYS),
    ("vm", "numa_cpu", NUMA_CPU_KEYS),
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
mod tests {
    use super::*;
    use crate::test_support::params;
    use crate::VmSpec;

    #[test]
    fn no_family_declares_a_key_twice() {
        for (family, kind, docs) in FAMILIES {
            let mut keys: Vec<&str> = docs.iter().map(|d| d.key).collect();
            let n = keys.len();
            keys.sort_unstable();
            keys.dedup();
            assert_eq!(keys.len(), n, "{family} {kind}");
        }
    }

    /// Specs read from params that, between them, set every declared key of the VM family
    /// (each alternative branch: `cpu_model` or `default_cpu_model`, `kernel_params` or
    /// `kernel_cmdline`, `nic_mode` or `nettype`, `cdroms` or a lone `cdrom`, each checksum).
    /// Every value read is declared for its object's kind (the debug check in `Reader` would
    /// have panicked otherwise, and the origins say so), and every declared key is read: a
    /// declaration nothing reads is as wrong as a read nothing declares.
    #[test]
    fn every_key_read_is_declared_and_every_declared_key_read() {
        const MD5: &str = "0123456789abcdef0123456789abcdef";
        let variants: [&[(&str, &str)]; 3] = [
            &[
                ("qemu_binary", "/usr/bin/qemu-system-x86_64"),
                ("machine_type", "q35"),
                ("vm_accelerator", "tcg"),
                ("cpu_model", "Nehalem,qemu64"),
                ("cpu_model_flags", ",+vmx"),
                ("cpu_model_vendor", "GenuineIntel"),
                ("cpu_family", "6"),
                ("nodefaults", "yes"),
                ("mem", "2G"),
                ("smp", "2"),
                ("vcpu_sockets", "1"),
                ("vcpu_cores", "2"),
                ("vcpu_threads", "1"),
                ("vcpu_maxcpus", "4"),
                ("vcpu_dies", "1"),
                ("vcpu_clusters", "INVALID"),
                ("vcpu_drawers", "1"),
                ("vcpu_books", "1"),
                ("vcpu_prefer_sockets", "yes"),
                ("vcpu_devices", "vcpu1"),
                ("os_type", "windows"),
                ("win_max_vcpu_sockets", "2"),
                ("maxmem_mem", "8G"),
                ("slots_mem", "4"),
                ("vm_mem_limit", "4G"),
                ("vm_mem_minimum", "1G"),
                ("vm_mem_backend", "memory-backend-file"),
                ("vm_mem_backend_path", "/dev/shm"),
                ("vm_mem_policy", "bind"),
                ("vm_mem_host_nodes", "0"),
                ("vm_mem_prealloc", "yes"),
                ("vm_mem_share", "yes"),
                ("hugepage_path", "/mnt/huge"),
                ("mem_devs", "mem0 nv0"),
                ("backend_mem_mem0", "memory-backend-file"),
                ("size_mem_mem0", "1G"),
                ("prealloc_mem_mem0", "yes"),
                ("mem-path_mem_mem0", "/dev/shm/m"),
                ("policy_mem_mem0", "bind"),
                ("host-nodes_mem_mem0", "0"),
                ("share_mem_mem0", "yes"),
                ("merge_mem_mem0", "no"),
                ("dump_mem_mem0", "no"),
                ("pmem_mem_mem0", "no"),
                ("discard-data_mem_mem0", "no"),
                ("align_mem_mem0", "2M"),
                ("readonly_mem_mem0", "no"),
                ("prealloc-threads_mem_mem0", "2"),
                ("prealloc-context_mem_mem0", "tc1"),
                ("reserve_mem_mem0", "yes"),
                ("x-use-canonical-path-for-ramblock-id_mem_mem0", "no"),
                ("use_mem_mem0", "yes"),
                ("vm_memdev_model", "dimm"),
                ("memdev_dimm", "x"),
                ("slot_dimm_mem0", "0"),
                ("addr_dimm_mem0", "0x100000000"),
                ("node_dimm", "0"),
                ("size_dimm_mem0", "1G"),
                ("dimm_extra_params", "x=y"),
                ("backend_mem_nv0", "memory-backend-memfd"),
                ("seal_mem_nv0", "no"),
                ("hugetlb_mem_nv0", "yes"),
                ("hugetlbsize_mem_nv0", "2M"),
                ("nv_backend_nv0", "/tmp/nv"),
                ("unarmed_dimm_nv0", "off"),
                ("label-size_dimm_nv0", "128K"),
                ("uuid_dimm_nv0", "ea0ec480-6066-40bc-9709-65d0467ad024"),
                ("guest_numa_nodes", "node0"),
                ("numa_mem", "1024"),
                ("numa_memdev", "mem-mem0"),
                ("numa_cpus", "0-1"),
                ("numa_nodeid", "0"),
                ("numa_initiator", "0"),
                ("numa_dist", "[[0, 10]]"),
                ("guest_numa_cpus", "cpu0"),
                ("numa_cpu_nodeid", "0"),
                ("numa_cpu_drawerid", "0"),
                ("numa_cpu_bookid", "0"),
                ("numa_cpu_socketid", "0"),
                ("numa_cpu_dieid", "0"),
                ("numa_cpu_clusterid", "0"),
                ("numa_cpu_coreid", "0"),
                ("numa_cpu_threadid", "0"),
                ("monitors", "m"),
                ("monitor_type", "qmp"),
                ("serials", "s0 s1"),
                ("images", "i"),
                ("image_name", "disk"),
                ("image_format", "raw"),
                ("image_raw_device", "no"),
                ("image_size", "1G"),
                ("drive_format", "virtio"),
                ("drive_index", "0"),
                ("drive_cache", "none"),
                ("drive_werror", "stop"),
                ("drive_rerror", "stop"),
                ("drive_serial", "s"),
                ("image_snapshot", "yes"),
                ("image_boot", "yes"),
                ("image_readonly", "no"),
                ("boot_drive", "yes"),
                ("image_secret", "s"),
                ("images_base_dir", "/var/lib/images"),
                ("storage_type", "filesystem"),
                ("enable_curl", "no"),
                ("enable_nbd", "no"),
                ("enable_iscsi", "no"),
                ("enable_gluster", "no"),
                ("enable_ceph", "no"),
                ("enable_nvme", "no"),
                ("enable_ssh", "no"),
                ("scsi_hba", "virtio-scsi-pci"),
                ("nics", "n"),
                ("nettype", "bridge"),
                ("netdst", "br0"),
                ("nic_model", "virtio"),
                ("nic_mac", "52:54:00:12:34:56"),
                ("nic_ifname", "tap0"),
                ("nic_script", "/etc/qemu-ifup"),
                ("nic_downscript", "/etc/qemu-ifdown"),
                ("nic_extra_params", "x=y"),
                ("netdev_extra_params", ",a=b"),
                ("tftp", "/srv/tftp"),
                ("bootp", "pxelinux.0"),
                ("redirs", "r"),
                ("guest_port", "22"),
                ("cdroms", "c"),
                ("cdrom", "x.iso"),
                ("cd_format", "scsi"),
                ("md5sum_1m", MD5),
                ("floppy", "f.img"),
                ("kernel", "vmlinuz"),
                ("initrd", "initrd.img"),
                ("kernel_params", "console=ttyS0"),
                ("display", "none"),
                ("vga", "std"),
                ("uuid", "random"),
                ("testdev", "yes"),
                ("disable_hpet", "yes"),
                ("pci_assignable", "vf"),
                ("devices_requested", "2"),
                ("extra_params", "-S"),
                ("x11_display", ":0"),
            ],
            &[
                ("default_cpu_model", "qemu64"),
                ("kernel_cmdline", "console=ttyS0"),
                ("nics", "n"),
                ("nic_mode", "tap"),
                ("cdrom", "x.iso"),
                ("md5sum", MD5),
                ("hugepage", "no"),
                ("setup_hugepages", "yes"),
                ("vm_hugepage_mountpoint", "/mnt/huge"),
            ],
            &[
                ("cdroms", "c"),
                ("cdrom", "x.iso"),
                ("sha1sum", "0123456789abcdef0123456789abcdef01234567"),
            ],
        ];
        let mut read = std::collections::HashSet::new();
        for pairs in variants {
            let spec = VmSpec::new(&params(pairs), "vm1").unwrap_or_else(|e| panic!("{e}"));
            for o in spec.origins.iter() {
                let docs = keys_of(o.kind).unwrap_or_else(|| panic!("no table for {}", o.kind));
                assert!(
                    docs.iter().any(|d| d.key == o.key),
                    "{} {}: {} read but not declared",
                    o.kind,
                    o.name,
                    o.key
                );
                read.insert((o.kind, o.key.clone()));
            }
        }
        for (_, kind, docs) in FAMILIES.iter().filter(|(family, ..)| *family == "vm") {
            for d in *docs {
                assert!(
                    read.contains(&(*kind, d.key.to_string())),
                    "{kind}: {} is declared but VmSpec never read it",
                    d.key
                );
            }
        }
    }

    #[test]
    fn key_reference() {
        insta::assert_snapshot!("keys", render_reference());
    }
}
