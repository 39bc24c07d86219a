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
mod device_specs;
mod hotplug;
mod lifecycle;
mod multi_disk;
mod nic;
mod pause;
mod resources;
mod stg_params;

use spec::KeyDoc;

pub use device_specs::{
    BLOCK_HOTPLUG, CPU_DEVICE_HOTPLUGGABLE, MULTI_DISK, NIC_HOTPLUG, PCI_HOTPLUG,
};

use crate::registry::{TestFn, TestSpec};

pub(super) const MAIN_VM: KeyDoc = KeyDoc::optional(
    "main_vm",
    "the VM under test (an entry of `vms`; default: the first of `vms`)",
);
pub(super) const SERIAL_LOGIN: KeyDoc = KeyDoc::with_default(
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

/// `type = physical_resources_check`.
pub const PHYSICAL_RESOURCES_CHECK: TestSpec = TestSpec {
    name: "physical_resources_check",
    about: "The guest sees the configured memory, CPUs, disks and NICs, with the configured \
            NIC and disk models (query-pci, each disk's QOM type, tp-qemu's `info network` \
            count, `model=` and MAC checks), plus tp-qemu's optional guest checks: CPU \
            topology, vendor, UUID, disk serial, machine type. The configuration is the VM's \
            spec: `mem`, `smp`, `images` with `drive_format`, `nics` with `nic_model`, read as \
            on QEMU's command line.",
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
        KeyDoc::with_default(
            "mem_chk_re_str",
            r"(\b[0-9]+\b)",
            "regular expression whose last match in a `cpu_*_chk_cmd` output is the count \
             (tp-qemu's name)",
        ),
        KeyDoc::optional(
            "cpu_sockets_chk_cmd",
            "guest command printing its CPU sockets (tp-qemu: `lscpu | grep -E \
             '(^Socket|^CPU socket)'`); compared with QEMU's topology; unset: not checked",
        ),
        KeyDoc::optional(
            "cpu_cores_chk_cmd",
            "guest command printing its cores per socket (`lscpu | grep '^Core'`); unset: not \
             checked",
        ),
        KeyDoc::optional(
            "cpu_threads_chk_cmd",
            "guest command printing its threads per core (`lscpu | grep '^Thread'`); unset: \
             not checked",
        ),
        KeyDoc::optional(
            "cpu_model_vendor",
            "the CPU vendor id the guest must report (`GenuineIntel`…); with \
             `cpu_vendor_id_chk_cmd`",
        ),
        KeyDoc::optional(
            "cpu_vendor_id_chk_cmd",
            "guest command whose output holds `cpu_model_vendor`",
        ),
        KeyDoc::optional(
            "catch_uuid_cmd",
            "guest command whose output holds the VM's UUID (checked when the VM has one)",
        ),
        KeyDoc::optional(
            "catch_serial_cmd",
            "guest command whose output holds the disk serial: the VM is restarted first with \
             a random `drive_serial` (up to `length` characters), as tp-qemu does",
        ),
        KeyDoc::with_default("length", "20", "the longest random `drive_serial`"),
        KeyDoc::optional(
            "check_machine_type_cmd",
            "guest command whose output holds the description QEMU gives the machine type \
             (tp-qemu's RHEL example: `dmidecode | awk -F: '/Version: RHEL/'`)",
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
