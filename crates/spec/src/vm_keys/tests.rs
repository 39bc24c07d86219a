//! The key tables checked against what the readers read.

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
    let variants: [&[(&str, &str)]; 19] = [
        crate::platform::tests::ALL_KEYS,
        &[
            ("qemu_binary", "/usr/bin/qemu-system-x86_64"),
            ("machine_type", "q35"),
            ("machine_type_extra_params", "hpet=off,dump-guest-core"),
            ("pci_bus", "pci.0"),
            ("strict_mode", "no"),
            ("chardev_backend", "unix_socket"),
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
            ("vhost", "vhost=on"),
            ("vhostforce", "off"),
            ("queues", "4"),
            ("enable_msix_vectors", "yes"),
            ("vectors", "10"),
            ("mq", "on"),
            ("nic_pci_addr", "0x9"),
            ("bootindex", "2"),
            ("romfile", "efi-virtio.rom"),
            ("ctrl_mac_addr", "on"),
            ("failover", "on"),
            ("qemu_bridge_helper", "/usr/libexec/qemu-bridge-helper"),
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
            ("nics", "n"),
            ("nettype", "macvtap"),
            ("netdst", "eth0"),
            ("macvtap_mode", "bridge"),
        ],
        &[
            ("nics", "n"),
            ("nettype", "user:passt"),
            ("passt_binary", "/usr/bin/passt"),
            ("net_port_forwards", "tcp@2222:22"),
            ("net_mtu", "1500"),
        ],
        &[
            ("cdroms", "c"),
            ("cdrom", "x.iso"),
            ("sha1sum", "0123456789abcdef0123456789abcdef01234567"),
        ],
        &[
            ("pcie_extra_root_port", "2"),
            ("pcie_root_port_params", "hotplug=off"),
            ("vga_use_legacy_expression", "yes"),
            ("usbs", "u"),
            ("usb_type", "ich9-usb-ehci1"),
            ("multifunction", "on"),
            ("masterbus", "u.0"),
            ("firstport", "0"),
            ("freq", "1"),
            ("max_ports", "6"),
            ("pci_addr", "1d.7"),
            ("usb_devices", "d"),
            ("usbdev_type", "usb-host"),
            ("usb_controller", "ehci"),
            ("usbdev_bus", "u.0"),
            ("usbdev_port", "1"),
            ("usbdev_serial", "s1"),
            ("usbdev_option_hostbus", "1"),
            ("usbdev_option_hostaddr", "2"),
            ("usbdev_option_hostport", "3"),
            ("usbdev_option_vendorid", "0627"),
            ("usbdev_option_productid", "0001"),
        ],
        &[
            ("images", "image1"),
            ("image_name", "disk"),
            ("image_aio", "native"),
            ("scsi_hba", "virtio-scsi-pci"),
            ("drive_bus", "0"),
            ("drive_unit", "1"),
            ("drive_port", "0"),
            ("drive_pci_addr", "0x5"),
            ("removable", "yes"),
            ("min_io_size", "512"),
            ("opt_io_size", "4096"),
            ("physical_block_size", "4096"),
            ("logical_block_size", "512"),
            ("bootindex", "1"),
            ("blk_extra_params", "x=y"),
            ("drv_extra_params", "discard=on"),
            ("bus_extra_params", "max_sectors=512"),
            ("num_queues", "2"),
            ("image_auto_readonly", "on"),
            ("image_discard", "unmap"),
            ("force_drive_format", "virtio-blk-pci"),
            ("virtio-blk-pci_scsi", "off"),
            ("image_iothread", "t1"),
            ("iothreads", "t1"),
            ("iothread_poll_max_ns", "32"),
            ("virtio_rngs", "rng0 rng1"),
            ("backend", "rng-random"),
            ("backend_type", "passthrough"),
            ("filename_passthrough", "/dev/urandom"),
            ("max-bytes_virtio-rng", "1024"),
            ("period_virtio-rng", "1000"),
            ("backend_type_rng1", "chardev"),
            ("backend_rng1", "rng-egd"),
            ("rng_chardev_backend", "socket"),
            ("socket_type", "tcp"),
            ("host_tcp", "localhost"),
            ("port_tcp", "8000"),
            ("path_unix", "/tmp/egd"),
            ("balloon", "balloon0"),
            ("balloon_dev_devid", "balloon0"),
            ("balloon_dev_add_bus", "yes"),
            ("balloon_use_old_format", "no"),
            ("balloon_opt_deflate_on_oom", "on"),
            ("balloon_opt_guest_polling", "2"),
            ("balloon_opt_free_page_reporting", "on"),
            ("9p_export_dir", "/mnt"),
            ("9p_fs_driver", "proxy"),
            ("9p_security_model", "none"),
            ("9p_immediate_writeout", "yes"),
            ("9p_readonly", "no"),
            ("9p_socket_name", "/tmp/9p"),
            ("ovmf_path", "/usr/share/OVMF"),
            ("ovmf_code_filename", "OVMF_CODE.fd"),
            ("ovmf_vars_filename", "OVMF_VARS.fd"),
        ],
        &[("iothread_scheme", "roundrobin"), ("inputs", "mouse1")],
        &[
            ("virtio_rngs", "rng0"),
            ("backend", "rng-egd"),
            ("backend_type", "chardev"),
            ("socket_type", "unix"),
            ("path_unix", "/tmp/egd"),
        ],
        &[
            ("serials", "s0 p1"),
            ("serial_type_p1", "virtserialport"),
            ("chardev_backend", "unix_socket"),
            ("serial_name", "org.qemu.guest_agent.0"),
            ("virtio_port_name_prefix", "port"),
            ("serial_bus", "<new>"),
            ("serial_nr", "1"),
            ("virtio_serial_extra_params", "max_ports=4"),
        ],
        // SPICE with TLS (every TLS key is read only with `spice_ssl = yes`), extra QXL
        // adapters, and the agent's port as a SPICE channel.
        &[
            ("display", "spice"),
            ("spice_port", "3001"),
            ("spice_password", "123456"),
            ("spice_addr", "0"),
            ("listening_addr", "ipv4"),
            ("host_ip_addr", "192.0.2.1"),
            ("netdst", "eth0"),
            ("disable_copy_paste", "yes"),
            ("spice_ssl", "yes"),
            ("spice_tls_port", "generate"),
            ("spice_tls_ciphers", "DEFAULT"),
            ("spice_gen_x509", "yes"),
            ("spice_x509_dir", "no"),
            ("spice_x509_prefix", "/tmp/spice_x509d"),
            ("spice_x509_key_file", "server-key.pem"),
            ("spice_x509_cacert_file", "ca-cert.pem"),
            ("spice_x509_cert_file", "server-cert.pem"),
            ("spice_x509_key_password", "testPassPhrase"),
            ("spice_x509_secure", "yes"),
            ("spice_x509_cacert_subj", "/C=CZ/L=BRNO/O=SPICE/CN=my CA"),
            (
                "spice_x509_server_subj",
                "/C=CZ/L=BRNO/O=SPICE/CN=my Server",
            ),
            ("spice_secure_channels", "main, inputs"),
            ("spice_plaintext_channels", "cursor"),
            ("spice_seamless_migration", "on"),
            ("spice_image_compression", "auto_glz"),
            ("spice_jpeg_wan_compression", "auto"),
            ("spice_zlib_glz_wan_compression", "never"),
            ("spice_streaming_video", "all"),
            ("spice_agent_mouse", "on"),
            ("spice_playback_compression", "off"),
            ("spice_ipv4", "yes"),
            ("spice_ipv6", "no"),
            ("vga", "qxl"),
            ("qxl_dev_nr", "2"),
            ("qxl_base_addr", "29"),
            ("serials", "vs"),
            ("serial_type", "virtserialport"),
            ("chardev_backend", "spicevmc"),
            ("chardev_name", "vdagent"),
            ("chardev_debug", "0"),
        ],
        // avocado-vt's image backends, one per variant (the first enabled one wins).
        &[
            ("images", "i"),
            ("image_name", "disk"),
            ("enable_curl", "yes"),
            ("curl_protocol", "https"),
            ("curl_server", "h"),
            ("curl_path", "p/disk.qcow2"),
            ("curl_username", "u"),
            ("curl_password", "pw"),
            ("curl_sslverify", "off"),
            ("curl_readahead", "256k"),
            ("curl_timeout", "10"),
            ("curl_cookie_secret", "c=1"),
        ],
        &[
            ("images", "i"),
            ("image_name", "disk"),
            ("enable_nbd", "yes"),
            ("nbd_server", "h"),
            ("nbd_port", "10810"),
            ("nbd_unix_socket", "/tmp/nbd"),
            ("nbd_export_name", "e"),
            ("nbd_reconnect_delay", "5"),
            ("nbd_client_tls_creds", "/etc/pki/qemu"),
        ],
        &[
            ("images", "i"),
            ("image_name", "disk"),
            ("storage_type", "iscsi-direct"),
            ("enable_iscsi", "yes"),
            ("portal_ip", "192.0.2.1"),
            ("target", "iqn.2001-05.com.example:t"),
            ("lun", "1"),
            ("chap_user", "u"),
            ("chap_passwd", "pw"),
            ("initiator", "iqn.2010-07.com.example:i"),
        ],
        &[
            ("images", "i"),
            ("image_name", "disk"),
            ("storage_type", "glusterfs-direct"),
            ("enable_gluster", "yes"),
            ("gluster_server", "h"),
            ("gluster_port", "24007"),
            ("gluster_transport", "tcp"),
            ("gluster_unix_socket", "/run/glusterd.socket"),
            ("gluster_volume_name", "v"),
            ("gluster_peers", r#"[{"host": "h2"}]"#),
            ("gluster_debug", "9"),
            ("gluster_logfile", "/tmp/gl.log"),
        ],
        &[
            ("images", "i"),
            ("image_name", "disk"),
            ("enable_ceph", "yes"),
            ("rbd_pool_name", "p"),
            ("rbd_namespace_name", "n"),
            ("ceph_conf", "/etc/ceph/ceph.conf"),
            ("ceph_monitor", "192.0.2.2"),
            ("ceph_key", "QVFBPT0="),
        ],
        &[
            ("images", "i"),
            ("image_name", "disk"),
            ("enable_nvme", "yes"),
            ("nvme_pci_address", "0000:44:00.0"),
            ("nvme_namespace", "1"),
        ],
        &[
            ("images", "i"),
            ("image_name", "disk"),
            ("enable_ssh", "yes"),
            ("image_ssh_host", "h"),
            ("image_ssh_port", "2222"),
            ("image_ssh_path", "/srv/disk.qcow2"),
            ("image_ssh_user", "u"),
            ("image_ssh_host_key_check", "no"),
        ],
    ];
    let mut read = std::collections::HashSet::new();
    for pairs in variants {
        // Read as the builder does: a value that is always a problem (`iothread_scheme`)
        // is still read (and its problem is the only one).
        let p = params(pairs);
        let mut found = crate::read::Findings::new();
        let spec = VmSpec::read(
            crate::read::ObjParams::root(&p).object("vm1"),
            "vm1",
            &mut found,
        );
        for problem in &found.problems {
            assert!(
                ["iothread_scheme", "inputs"].contains(&problem.key.as_str()),
                "{pairs:?}: {problem:?}"
            );
        }
        for o in spec.origins.iter() {
            assert!(
                is_declared(o.kind, &o.key),
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
/// Every list a family reads as objects is in `OBJECT_LISTS` (lint strips those names).
fn object_lists_are_the_lists_read() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{e}")) {
        let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        for piece in text.split(".objects(\"").skip(1) {
            let key = piece.split('"').next().unwrap_or("");
            assert!(
                OBJECT_LISTS.contains(&key),
                "{}: objects(\"{key}\") is not in OBJECT_LISTS",
                path.display()
            );
        }
    }
}

#[test]
/// `KEYS.md` is generated from the declarations: stale, it fails here (regenerate with
/// `KVMTEST_UPDATE_KEYS=1 cargo test -p kvmtest-spec key_reference`).
fn key_reference() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("KEYS.md");
    let want = render_reference();
    if std::env::var_os("KVMTEST_UPDATE_KEYS").is_some() {
        std::fs::write(&path, &want).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "{} is stale: run KVMTEST_UPDATE_KEYS=1 cargo test -p kvmtest-spec key_reference",
        path.display()
    );
}
