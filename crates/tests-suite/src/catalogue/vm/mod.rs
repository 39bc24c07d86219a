//! The VM-based test types: their [`TestSpec`]s (parameters documented) and bodies.
//!
//! The bodies reach the guest only through [`crate::env::GuestVm`] (the runner's environment
//! starts the VMs named by `vms` before the test): with [`crate::env::NoVmEnv`] they report
//! [`crate::env::VM_UNAVAILABLE`] as an error, never a pass. The parameter lists follow the
//! seed's tests and tp-qemu, so their configs keep working. Verdicts: what the product did
//! wrong (a device that does not show, a guest that does not come back, QEMU that does not
//! exit) is a *fail* saying what was expected and what was seen; what kept the test from
//! checking (a missing parameter, QEMU that cannot start) is an *error*.

mod agent;
mod balloon;
mod block;
pub(crate) mod common;
mod cpu;
mod hotplug;
mod lifecycle;
mod multi_disk;
mod nic;
mod pause;
mod resources;
mod stg_params;

use spec::KeyDoc;

use crate::registry::{TestFn, TestSpec};

const MAIN_VM: KeyDoc = KeyDoc::optional(
    "main_vm",
    "the VM under test (an entry of `vms`; default: the first of `vms`)",
);
const SERIAL_LOGIN: KeyDoc = KeyDoc::with_default(
    "serial_login",
    "no",
    "tp-qemu's key: yes logs in on the serial console; no over the VM's shell_client \
     (ssh, telnet, nc) through its first NIC, as avocado-vt's wait_for_login",
);

/// `type = boot`.
pub const BOOT: TestSpec = TestSpec {
    name: "boot",
    about: "tp-qemu's boot: logs into every VM of `vms`; with `reboot_method`, reboots each \
            `reboot_count` times (tp-qemu's reboot test is this type) and logs in again, each \
            reboot proven by a new kernel boot_id.",
    params: &[
        SERIAL_LOGIN,
        KeyDoc::optional(
            "reboot_method",
            "shell or system_reset: reboot each VM after the login (unset: no reboot)",
        ),
        KeyDoc::with_default("reboot_count", "1", "how many reboots per VM"),
        KeyDoc::with_default(
            "sleep_before_reset",
            "10",
            "seconds to wait before a system_reset (the guest finishes booting)",
        ),
        KeyDoc::optional(
            "boot_command",
            "kvmtest's addition: a guest command run after each login (unset: none)",
        ),
        KeyDoc::optional(
            "boot_expect",
            "kvmtest's addition: regex boot_command's output must match (unset: any \
             non-empty output)",
        ),
    ],
};

/// `type = reboot`.
pub const REBOOT: TestSpec = TestSpec {
    name: "reboot",
    about: "`boot` with `reboot_method` defaulting to shell: reboots the main VM (from its \
            shell or with system_reset) and logs in again.",
    params: &[
        MAIN_VM,
        SERIAL_LOGIN,
        KeyDoc::with_default("reboot_method", "shell", "shell or system_reset"),
        KeyDoc::with_default("reboot_count", "1", "how many reboots"),
        KeyDoc::with_default(
            "sleep_before_reset",
            "10",
            "seconds to wait before a system_reset",
        ),
    ],
};

/// `type = shutdown`.
pub const SHUTDOWN: TestSpec = TestSpec {
    name: "shutdown",
    about: "tp-qemu's shutdown: logs in, shuts the guest down (its `shutdown_command` in a \
            shell, or system_powerdown) and waits for QEMU to exit; `shutdown_count` times, \
            the VM started again in between.",
    params: &[
        MAIN_VM,
        SERIAL_LOGIN,
        KeyDoc::with_default("shutdown_method", "shell", "shell or system_powerdown"),
        KeyDoc::with_default("shutdown_count", "1", "how many shutdowns"),
        KeyDoc::with_default(
            "sleep_before_powerdown",
            "10",
            "seconds to wait before system_powerdown (the guest finishes booting)",
        ),
        KeyDoc::with_default(
            "shutdown_timeout",
            "360",
            "seconds for QEMU to exit (tp-qemu waits 360)",
        ),
        KeyDoc::with_default(
            "check_from_monitor",
            "no",
            "tp-qemu's check that, with the VM's disable_shutdown = yes (-no-shutdown), QEMU \
             stays with status `shutdown`: kvmtest always makes it in that case",
        ),
    ],
};

/// `type = migration`.
pub const MIGRATION: TestSpec = TestSpec {
    name: "migration",
    about: "tp-qemu's migration: logs in, records `migration_test_command`'s output, starts \
            `migration_bg_command` and checks it runs, migrates `ping_pong` times to a new local \
            QEMU (QEMU's total time and downtime recorded), logs in again, checks the background \
            command still runs and the command's output is unchanged, kills the background \
            command. With `mig_cancel`, the migration must cancel and the source go on.",
    params: &[
        MAIN_VM,
        SERIAL_LOGIN,
        KeyDoc::with_default("migration_protocol", "tcp", "tcp, unix or exec"),
        KeyDoc::with_default("mig_timeout", "3600", "seconds for each migration"),
        KeyDoc::with_default("offline", "no", "yes: stop the guest before migrating"),
        KeyDoc::with_default(
            "mig_cancel",
            "no",
            "yes: cancel the migration 2 s after it starts (bandwidth capped at 1 MiB/s unless \
             mig_speed is applied) and check the source goes on",
        ),
        KeyDoc::with_default("ping_pong", "1", "how many migrations in a row"),
        KeyDoc::optional(
            "migration_exec_cmd_src",
            "exec migrations: the source's shell command writing the state (`%s`: the state \
             file; unset: cat > FILE)",
        ),
        KeyDoc::optional(
            "migration_exec_cmd_dst",
            "exec migrations: the destination's command reading it (unset: cat FILE)",
        ),
        KeyDoc::with_default(
            "migration_test_command",
            lifecycle::BOOT_ID,
            "guest command whose output must not change across the migration (kvmtest's \
             default prints the kernel's boot_id, which changes on any reboot)",
        ),
        KeyDoc::with_default(
            "migration_living_guest",
            "yes",
            "no: migrate without logging in (the guest need not run an OS)",
        ),
        KeyDoc::optional(
            "migration_bg_command",
            "guest command started in the background before migrating",
        ),
        KeyDoc::optional(
            "migration_bg_check_command",
            "guest command that must succeed before and after migrating",
        ),
        KeyDoc::optional(
            "migration_bg_kill_command",
            "guest command that stops the background command at the end",
        ),
        KeyDoc::with_default(
            "migration_bg_kill_ignore_status",
            "1",
            "exit status of migration_bg_kill_command that is not an error (nothing to kill)",
        ),
        KeyDoc::optional(
            "pre_migrate",
            "functions run before migrating: mig_set_speed (applies mig_speed)",
        ),
        KeyDoc::optional("post_migrate", "functions run after migrating (none known)"),
        KeyDoc::with_default(
            "mig_speed",
            "1G",
            "bandwidth for mig_set_speed: a size per second, b/K/M/G suffix (no suffix: M)",
        ),
        KeyDoc::optional(
            "migrate_capabilities",
            "capabilities set on both sides, as tp-qemu writes them: {'postcopy-ram': 'on'}",
        ),
        KeyDoc::optional(
            "guest_stress_test",
            "dd: a dd loop runs in the guest during the migration",
        ),
        KeyDoc::optional(
            "migrate_inner_funcs",
            "tp-qemu's functions run during the migration (postcopy): not supported, an error",
        ),
        KeyDoc::with_default(
            "vmstate_check",
            "no",
            "yes (compare device state dumps): not supported, an error",
        ),
    ],
};

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

/// `type = balloon_check`.
pub const BALLOON_CHECK: TestSpec = TestSpec {
    name: "balloon_check",
    about: "tp-qemu's balloon_check on a Linux guest: balloons the memory to each tag of \
            `test_tags` (a fixed size, a ratio of `mem`, or a random size in the legal range \
            of `balloon_type` evict/enlarge) and checks QEMU's balloon and the guest's \
            MemTotal moved by the ballooned amount; back to `mem` at the end. Not supported: \
            sub-tests after ballooning, Windows guests (both errors, naming the key).",
    params: &[
        MAIN_VM,
        SERIAL_LOGIN,
        KeyDoc::required(
            "test_tags",
            "the ballooning steps, in order (tags such as evict)",
        ),
        KeyDoc::optional(
            "balloon_type",
            "per tag (`balloon_type_TAG`): evict or enlarge, a random target in its legal range",
        ),
        KeyDoc::optional("expect_memory", "per tag: the target in MiB"),
        KeyDoc::optional(
            "expect_memory_ratio",
            "per tag: the target as a ratio of `mem`",
        ),
        KeyDoc::optional(
            "run_sub_test_after_balloon",
            "per tag: yes runs `sub_test_after_balloon` (not supported: an error)",
        ),
        KeyDoc::optional(
            "sub_test_after_balloon",
            "per tag: the sub-test (not supported)",
        ),
        KeyDoc::with_default(
            "sleep_before_balloon",
            "90",
            "kvmtest's key: seconds for the guest's applications to settle after the login \
             (tp-qemu waits a fixed 90)",
        ),
        KeyDoc::with_default(
            "balloon_timeout",
            "240",
            "seconds for QEMU to report the new balloon size",
        ),
        KeyDoc::with_default(
            "guest_compare_threshold",
            "100",
            "MiB the guest's total memory may differ from the ballooned amount",
        ),
        KeyDoc::with_default(
            "balloon_buffer",
            "300",
            "MiB kept above what the guest uses when evicting to a random size",
        ),
        KeyDoc::with_default(
            "minmem",
            "512M",
            "the least memory a random eviction leaves",
        ),
        KeyDoc::with_default(
            "total_mem_cmd",
            "grep MemTotal /proc/meminfo",
            "guest command printing its total memory in kB",
        ),
        KeyDoc::with_default(
            "free_mem_cmd",
            "cat /proc/meminfo |grep MemFree",
            "guest command printing its free memory in kB (tp-qemu's key)",
        ),
        KeyDoc::optional(
            "os_type",
            "the guest OS (windows is not supported: an error)",
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

/// `type = physical_resources_check`.
pub const PHYSICAL_RESOURCES_CHECK: TestSpec = TestSpec {
    name: "physical_resources_check",
    about: "The guest sees the configured memory, CPUs, disks and NICs, with the configured \
            NIC and disk models (checked via query-pci). The configuration is the VM's spec: \
            `mem`, `smp`, `images` with `drive_format`, `nics` with `nic_model`, read as on \
            QEMU's command line.",
    params: &[
        MAIN_VM,
        SERIAL_LOGIN,
        KeyDoc::with_default(
            "mem_chk_cmd",
            resources::MEM_CMD,
            "guest command whose last number is its memory in KiB (the default prints the \
             kernel's `Memory: …K/…K` boot line, whose total is the RAM it found)",
        ),
        KeyDoc::with_default(
            "mem_chk_tolerance",
            "5",
            "percent of `mem` the guest may not see (firmware holes)",
        ),
        KeyDoc::with_default(
            "cpu_chk_cmd",
            resources::CPU_CMD,
            "guest command printing its CPU count",
        ),
        KeyDoc::with_default(
            "disk_chk_cmd",
            resources::DISK_CMD,
            "guest command listing its disks, one per line",
        ),
        KeyDoc::with_default(
            "nic_chk_cmd",
            resources::NIC_CMD,
            "guest command listing its NICs, one per line",
        ),
    ],
};

/// `type = qemu_guest_agent`.
pub const QEMU_GUEST_AGENT: TestSpec = TestSpec {
    name: "qemu_guest_agent",
    about: "tp-qemu's guest-agent test: one check per `gagent_check_type` (sync, \
            sync_delimited, guest_info, powerdown, reboot, get_time, get_vcpus, get_interfaces, \
            fsfreeze, thaw_unfrozen, freeze_frozen, guest_exec, file_write, file_read), each \
            answer of the agent (on the VM's `gagent_name` virtio port) checked against the \
            guest's own over a shell. Other check types are an error naming the type.",
    params: &[
        MAIN_VM,
        SERIAL_LOGIN,
        KeyDoc::required("gagent_check_type", "the check"),
        KeyDoc::with_default(
            "get_cpu_cmd",
            "grep -c ^processor /proc/cpuinfo",
            "get_vcpus: guest command printing its vCPU count",
        ),
        KeyDoc::with_default(
            "get_guest_time_cmd",
            "date +%s",
            "get_time: guest command printing its clock in seconds",
        ),
        KeyDoc::with_default(
            "gagent_fs_test_cmd",
            "echo foo > %s/foo",
            "fsfreeze: a write that must wait for the thaw (`%s`: mountpoint_def)",
        ),
        KeyDoc::with_default("mountpoint_def", "/home", "fsfreeze: where it writes"),
        KeyDoc::with_default("guest_cmd", "echo", "guest_exec: the program"),
        KeyDoc::with_default(
            "guest_cmd_args",
            "This is a test.",
            "guest_exec: its arguments (whitespace-separated), which its output must hold",
        ),
        KeyDoc::with_default("guest_cmd_timeout", "60", "guest_exec: seconds to finish"),
        KeyDoc::with_default("file_path", "/tmp/", "file_write/file_read: the directory"),
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

/// `type = stop_continue`.
pub const STOP_CONTINUE: TestSpec = TestSpec {
    name: "stop_continue",
    about: "tp-qemu's stop_continue: stops the VM (QEMU must say paused, the guest's shell \
            must not answer), continues it (running), logs in again; with `prepare_op`, a \
            background `bg_cmd` that must finish with status 0 across the stop, `check_op` \
            after it and `clean_op` at the end.",
    params: &[
        MAIN_VM,
        SERIAL_LOGIN,
        KeyDoc::optional(
            "prepare_op",
            "guest command run before the stop; must exit 0",
        ),
        KeyDoc::with_default("prepare_op_timeout", "60", "seconds for prepare_op"),
        KeyDoc::with_default(
            "start_bg_process",
            "no",
            "yes: run bg_cmd in a second session across the stop",
        ),
        KeyDoc::optional("bg_cmd", "the background command (with start_bg_process)"),
        KeyDoc::with_default("bg_cmd_timeout", "240", "seconds for bg_cmd"),
        KeyDoc::optional(
            "check_op",
            "guest command run after the continue; must exit 0",
        ),
        KeyDoc::with_default("check_op_timeout", "60", "seconds for check_op"),
        KeyDoc::optional(
            "clean_op",
            "guest command run at the end whatever happened (its errors ignored)",
        ),
        KeyDoc::with_default("clean_op_timeout", "60", "seconds for clean_op"),
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

/// The VM-based types with their functions.
pub fn entries() -> Vec<(TestSpec, TestFn)> {
    vec![
        (BOOT, lifecycle::run_boot as TestFn),
        (REBOOT, lifecycle::run_reboot),
        (SHUTDOWN, lifecycle::run_shutdown),
        (MIGRATION, lifecycle::run_migration),
        (PCI_HOTPLUG, hotplug::run_pci_hotplug),
        (NIC_HOTPLUG, nic::run),
        (MULTI_DISK, multi_disk::run),
        (PHYSICAL_RESOURCES_CHECK, resources::run),
        (QEMU_GUEST_AGENT, agent::run),
        (BALLOON_CHECK, balloon::run),
        (BLOCK_HOTPLUG, block::run),
        (STOP_CONTINUE, pause::run),
        (CPU_DEVICE_HOTPLUGGABLE, cpu::run),
    ]
}
