//! The [`TestSpec`]s of the device tests: PCI, NIC, disk and vCPU hotplug and `multi_disk`
//! (their bodies are in the sibling modules; the lifecycle tests' specs are in `mod.rs`).

use spec::KeyDoc;

use super::{MAIN_VM, SERIAL_LOGIN};
use crate::registry::TestSpec;

/// `type = pci_hotplug`.
pub const PCI_HOTPLUG: TestSpec = TestSpec {
    name: "pci_hotplug",
    about: "tp-qemu's pci_hotplug (its nic_hotplug.cfg variants run it too): plugs `pci_num` \
            NICs or block devices, finds each in the guest (`match_string` in the new lines of \
            `find_pci_cmd`), tests it and unplugs them, `repeat_times` rounds.",
    params: &[
        MAIN_VM,
        SERIAL_LOGIN,
        KeyDoc::required("pci_type", "nic or block"),
        KeyDoc::required(
            "pci_model",
            "the device model: a NIC's (virtio, e1000, rtl8139, …), or a disk's: virtio, scsi \
             (scsi-hd on a hot-plugged lsi53c895a), scsi-hd (on a hot-plugged virtio-scsi-pci \
             unless the VM has a SCSI disk), or any device type of the QEMU (checked first)",
        ),
        KeyDoc::required(
            "reference_cmd",
            "guest command listing devices, run before and after",
        ),
        KeyDoc::required("find_pci_cmd", "guest command that shows the new device"),
        KeyDoc::required(
            "match_string",
            "regular expression (case-insensitive) the lines of find_pci_cmd's output that \
             reference_cmd did not print before the plug must match",
        ),
        KeyDoc::optional(
            "pci_test_cmd",
            "guest command that exercises the new device (`PCI_NUM`, or tp-qemu's older \
             `%s`, is the device's number from 1)",
        ),
        KeyDoc::with_default("pci_num", "1", "how many devices to plug per round"),
        KeyDoc::with_default("repeat_times", "1", "how many rounds of plug and unplug"),
        KeyDoc::with_default(
            "hotplug_method",
            "device_add",
            "device_add (pci_add, the legacy path, is not supported: see the README)",
        ),
        KeyDoc::with_default(
            "wait_secs_for_hook_up",
            "3",
            "seconds before the guest is first asked",
        ),
        KeyDoc::with_default(
            "hotplug_timeout",
            "360",
            "seconds for the guest to show a plugged device (tp-qemu's key)",
        ),
        KeyDoc::optional(
            "find_pci_timeout",
            "seconds for find_pci_cmd to show match_string (unset: hotplug_timeout)",
        ),
        KeyDoc::optional("modprobe_module", "a guest module to load first"),
        KeyDoc::with_default(
            "image_format_stg",
            "qcow2",
            "format of a hot-plugged disk's image when `images` names none for it (device N \
             takes the (N+1)th image of `images`, as tp-qemu's `images += \" stg\"` with \
             `boot_drive_stg = no`)",
        ),
        KeyDoc::with_default(
            "image_size_stg",
            "64M",
            "size of a hot-plugged disk's image made in the test's directory",
        ),
    ],
};

/// `type = nic_hotplug`.
pub const NIC_HOTPLUG: TestSpec = TestSpec {
    name: "nic_hotplug",
    about: "tp-qemu's nic_hotplug, on the serial console: `nic_hotplug_count` NICs \
            (`hotplug_nic1`…) plugged one by one while the others have no address and no link; \
            each must get an address (renewed, then rebooted for, as tp-qemu does), be pinged \
            from the host (a private bridge) or lease over user networking, survive stop/cont; \
            then the links come back, sub-tests run, the NICs are unplugged and leave the guest. \
            `used_sameid = yes`: a plug on a netdev in use must be refused.",
    params: &[
        MAIN_VM,
        KeyDoc::required(
            "pci_model",
            "the model of the NICs to plug (per NIC: `pci_model_hotplug_nicN`): virtio, e1000, \
             rtl8139, e1000e… or any NIC device type of the QEMU (checked first). Each \
             `hotplug_nicN` object also reads the NIC keys (`nettype`, `netdst`, \
             `netdst_private`, `queues`, `vhost`, `nic_mac`, `netdev_extra_params`, \
             `nic_extra_params`)",
        ),
        KeyDoc::with_default("nic_hotplug_count", "1", "how many NICs each round plugs"),
        KeyDoc::with_default("repeat_times", "1", "rounds of plug and unplug"),
        KeyDoc::with_default(
            "nic_hotplug_timeout",
            "90",
            "seconds for the guest to show the NIC, to give it an address (each try: waiting, \
             after the renewal, after the reboot) and to drop it after the unplug",
        ),
        KeyDoc::optional(
            "dhcp_cmd",
            "the guest command that renews an interface's lease (`%s`: the interface; tp-qemu: \
             `dhcpcd -n %s`, `dhclient -r && dhclient %s`), run when the NIC has no address",
        ),
        KeyDoc::with_default(
            "make_change",
            "no",
            "yes: the renewal writes a RHEL ifcfg file for the interface; no: an nmcli profile \
             (each only where the guest has them; a failure is logged and ignored)",
        ),
        KeyDoc::optional("modprobe_module", "a module the guest loads first"),
        KeyDoc::with_default(
            "used_sameid",
            "no",
            "yes: plug the NIC on the first NIC's netdev instead; QEMU must refuse it",
        ),
        KeyDoc::optional(
            "devadd_match_string",
            "with used_sameid: text QEMU's refusal must contain (tp-qemu: \"it's in use\")",
        ),
        KeyDoc::with_default(
            "do_random_unhotplug",
            "no",
            "yes: after each plug, a coin toss may unplug a random plugged NIC and reboot",
        ),
        KeyDoc::optional(
            "sub_type_after_plug",
            "a test type run once the NICs are in (tp-qemu: reboot, shutdown; a VM it shut down \
             ends the test)",
        ),
        KeyDoc::optional("sub_type_after_unplug", "a test type run after the unplug"),
        KeyDoc::optional("os_type", "linux (windows is not supported: an error)"),
    ],
};

/// `type = multi_disk`.
pub const MULTI_DISK: TestSpec = TestSpec {
    name: "multi_disk",
    about: "tp-qemu's multi_disk on a Linux guest: adds the disks `stg_params` describes \
            (`stg_image_num`, ranges, lists; `images += stgN`), creates their images, starts the \
            VM with them, finds the data disks (`stg_image_size`), and `n_repeat` times \
            partitions, formats, mounts, copies to and from each and compares (`cmd_list`, \
            `compare_command`, `dd_test`), with `need_reboot`/`need_shutdown`, then removes the \
            partitions; at the end destroys the VM and removes the images. Windows guests are \
            an error naming `os_type`.",
    params: &[
        MAIN_VM,
        SERIAL_LOGIN,
        KeyDoc::optional(
            "stg_params",
            "the disks, as blank-separated `KEY:VALUES` items: `a,b,c` (disk i takes item i mod \
             len) or `range(…)` (Python's, a 4th argument repeating each value, `n` = the \
             number of disks); `\\ ` and `\\,` escape",
        ),
        KeyDoc::optional(
            "stg_image_num",
            "how many disks (unset: the longest value list)",
        ),
        KeyDoc::with_default(
            "stg_image_name",
            "images/%s",
            "the disks' image names (`%s`: stg0, stg1…), unless stg_params names them",
        ),
        KeyDoc::required(
            "stg_image_size",
            "adds `image_size:VALUE` to stg_params; the data disks are the guest's disks of \
             this size",
        ),
        KeyDoc::optional("stg_image_format", "adds `image_format:VALUE`"),
        KeyDoc::with_default("stg_image_boot", "no", "adds `image_boot:VALUE`"),
        KeyDoc::optional("stg_drive_format", "adds `drive_format:VALUE`"),
        KeyDoc::optional("stg_drive_cache", "adds `drive_cache:VALUE`"),
        KeyDoc::with_default(
            "stg_assign_index",
            "yes",
            "yes: adds `drive_index:range(2,n)`",
        ),
        KeyDoc::with_default(
            "multi_disk_params_only",
            "no",
            "yes: log the disks' table and stop",
        ),
        KeyDoc::with_default(
            "n_repeat",
            "1",
            "rounds of partition, format, copy and compare",
        ),
        KeyDoc::required(
            "file_system",
            "the file systems a disk is formatted with (one drawn per disk and round)",
        ),
        KeyDoc::with_default(
            "labeltype",
            "gpt",
            "the disks' partition table (gpt, msdos)",
        ),
        KeyDoc::with_default("cmd_timeout", "360", "seconds for each guest command"),
        KeyDoc::required(
            "cmd_list",
            "the keys of the commands run on each partition (`%s`: the partition, mounted on \
             /mnt/PARTITION)",
        ),
        KeyDoc::optional(
            "copy_to_command",
            "avocado-vt's first command of cmd_list: copies a file to the partition",
        ),
        KeyDoc::optional("copy_from_command", "avocado-vt's second: copies it back"),
        KeyDoc::required(
            "compare_command",
            "compares the copies; its output must contain check_result_key_word",
        ),
        KeyDoc::required(
            "check_result_key_word",
            "what compare_command prints on success",
        ),
        KeyDoc::with_default(
            "dd_test",
            "no",
            "a command run on each partition (`%s` twice) that must exit 0",
        ),
        KeyDoc::with_default("need_reboot", "no", "yes: reboot after each round's I/O"),
        KeyDoc::with_default(
            "need_shutdown",
            "no",
            "yes: shut the guest down after each round's I/O and start it again",
        ),
        KeyDoc::optional("post_cmd", "run at the end"),
        KeyDoc::with_default(
            "check_guest_proc_scsi",
            "no",
            "yes: QEMU lists every added disk and the guest's /proc/scsi/scsi every SCSI one",
        ),
        KeyDoc::with_default("multi_disk_only_qtree", "no", "yes: stop after that check"),
        KeyDoc::optional("os_type", "linux (windows is not supported: an error)"),
    ],
};

/// `type = block_hotplug`.
pub const BLOCK_HOTPLUG: TestSpec = TestSpec {
    name: "block_hotplug",
    about: "tp-qemu's block_hotplug: `repeat_times` rounds of plugging `blk_num` disks (the \
            2nd… of `images`, `boot_drive_stgN = no`), each found in the guest as a new disk \
            (`get_disk_pattern` in `get_disk_cmd`'s output) and exercised (`disk_op_cmd`), then \
            unplugging them, each of which the guest must lose; `need_plug = no` unplugs the \
            disks of the command line instead. Sub-tests of the catalogue run between the \
            steps (`sub_type_*`). Not supported: Windows guests (an error naming `os_type`).",
    params: &[
        MAIN_VM,
        SERIAL_LOGIN,
        KeyDoc::required(
            "get_disk_cmd",
            "guest command listing the disks (tp-qemu: ls /dev/[hsv]d[a-z]* | sort)",
        ),
        KeyDoc::with_default(
            "get_disk_pattern",
            "^/dev/vd[a-z]*$",
            "regex (multi-line) picking the disks out of get_disk_cmd's output",
        ),
        KeyDoc::with_default(
            "pci_type",
            "virtio-blk-pci",
            "the disk's device type (virtio-blk-pci, scsi-hd…; must exist in this QEMU)",
        ),
        KeyDoc::with_default(
            "img_format_type",
            "qcow2",
            "the format the plugged images are opened with",
        ),
        KeyDoc::with_default("blk_num", "1", "disks per round"),
        KeyDoc::with_default("repeat_times", "3", "rounds of plug and unplug"),
        KeyDoc::with_default(
            "need_plug",
            "no",
            "yes: hot-plug the disks; no: they are on the command line (boot_drive_stgN = \
             yes), only unplugged (tp-qemu's default)",
        ),
        KeyDoc::with_default(
            "need_controller",
            "no",
            "yes: plug a `controller_model` for each disk first, the disk on its bus",
        ),
        KeyDoc::optional(
            "controller_model",
            "the controller plugged with need_controller (virtio-scsi-pci)",
        ),
        KeyDoc::optional(
            "disk_op_cmd",
            "guest command run on each new disk (each `%s` is the disk); must exit 0",
        ),
        KeyDoc::with_default("disk_op_timeout", "360", "seconds for disk_op_cmd"),
        KeyDoc::with_default(
            "virtio_block_pause",
            "10",
            "seconds for the guest to show (or lose) a disk after the plug (unplug)",
        ),
        KeyDoc::optional(
            "blk_extra_params",
            "per image: extra properties of its device, key=value,… (iothread=iothread0)",
        ),
        KeyDoc::optional(
            "bus_extra_params",
            "per image: extra properties of its controller, key=value,…",
        ),
        KeyDoc::optional(
            "sub_type_before_plug",
            "a catalogue test type run (with these params) before each round's plug",
        ),
        KeyDoc::optional(
            "sub_type_after_plug",
            "a test type run after the plug; a VM it leaves down ends the test",
        ),
        KeyDoc::optional(
            "sub_type_before_unplug",
            "a test type run before the unplug",
        ),
        KeyDoc::optional(
            "sub_type_after_unplug",
            "a test type run after the unplug; a VM it leaves down ends the test",
        ),
        KeyDoc::optional(
            "os_type",
            "the guest OS (windows is not supported: an error)",
        ),
    ],
};

/// `type = cpu_device_hotpluggable`.
pub const CPU_DEVICE_HOTPLUGGABLE: TestSpec = TestSpec {
    name: "cpu_device_hotpluggable",
    about: "tp-qemu's cpu_device_hotpluggable (its hotplug variants): plugs the vCPU devices \
            of `vcpu_devices` (optionally while paused), the guest must count them \
            (`cpu_chk_cmd`), then `sub_test_type` (reboot, shutdown, pause_resume: unplugged \
            while paused, online_offline) and the count again; with every slot taken the \
            guest's topology must be QEMU's.",
    params: &[
        MAIN_VM,
        SERIAL_LOGIN,
        KeyDoc::required(
            "hotpluggable_test",
            "hotplug (hotunplug needs vcpu_enable = yes devices, not built yet: an error)",
        ),
        KeyDoc::required("vcpu_devices", "the vCPU devices to plug, in order"),
        KeyDoc::with_default("vcpus_count", "1", "guest vCPUs per device"),
        KeyDoc::with_default(
            "sleep_after_cpu_change",
            "30",
            "seconds to wait after the vCPUs change before counting",
        ),
        KeyDoc::with_default(
            "verify_wait_timeout",
            "60",
            "seconds to wait for the guest's count after that",
        ),
        KeyDoc::optional(
            "sub_test_type",
            "reboot, shutdown, pause_resume or online_offline (migrate: an error)",
        ),
        KeyDoc::optional(
            "reboot_method",
            "with sub_test_type = reboot: shell or system_reset",
        ),
        KeyDoc::optional(
            "shutdown_method",
            "with sub_test_type = shutdown: shell or system_powerdown",
        ),
        KeyDoc::with_default(
            "pause_vm_before_hotplug",
            "no",
            "yes: stop the VM before plugging, continue it after",
        ),
        KeyDoc::required(
            "cpu_chk_cmd",
            "guest command printing its CPU count (avocado-vt's Linux.cfg: grep -c \
             \"^processor\\b\" /proc/cpuinfo)",
        ),
        KeyDoc::optional("os_type", "linux (windows is not supported: an error)"),
    ],
};
