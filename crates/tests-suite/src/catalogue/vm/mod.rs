//! The VM-based test types: their [`TestSpec`]s (parameters documented) and bodies.
//!
//! The bodies reach the guest only through [`crate::env::GuestVm`] (the runner's environment
//! starts the VMs named by `vms` before the test): with [`crate::env::NoVmEnv`] they report
//! [`crate::env::VM_UNAVAILABLE`] as an error, never a pass. The parameter lists follow the
//! seed's tests and tp-qemu, so their configs keep working. Verdicts: what the product did
//! wrong (a device that does not show, a guest that does not come back, QEMU that does not
//! exit) is a *fail* saying what was expected and what was seen; what kept the test from
//! checking (a missing parameter, QEMU that cannot start) is an *error*.

mod common;
mod hotplug;
mod lifecycle;
mod resources;

use crate::registry::{ParamDoc, TestFn, TestSpec};

const MAIN_VM: ParamDoc = ParamDoc::required("main_vm", "the VM under test (an entry of `vms`)");
const LOGIN_TIMEOUT: ParamDoc = ParamDoc::optional(
    "login_timeout",
    "seconds to wait for a guest login (default 360, as avocado-vt)",
);
const LOGIN_VIA: ParamDoc = ParamDoc::optional(
    "login_via",
    "serial (default) or remote: the VM's shell_client (telnet, nc) through its first NIC",
);

/// `type = boot`.
pub const BOOT: TestSpec = TestSpec {
    name: "boot",
    about: "Boots the guest and logs in.",
    params: &[
        MAIN_VM,
        LOGIN_TIMEOUT,
        LOGIN_VIA,
        ParamDoc::optional(
            "boot_command",
            "guest command run after login (default `uname -r`)",
        ),
        ParamDoc::optional(
            "boot_expect",
            "regex the command's output must match (default: any output)",
        ),
    ],
};

/// `type = reboot`.
pub const REBOOT: TestSpec = TestSpec {
    name: "reboot",
    about: "Reboots the guest (from its shell or with system_reset) and logs in again.",
    params: &[
        MAIN_VM,
        LOGIN_TIMEOUT,
        ParamDoc::optional("reboot_method", "shell (default) or system_reset"),
        ParamDoc::optional(
            "reboot_command",
            "the guest's reboot command (shell method)",
        ),
        ParamDoc::optional("reboot_count", "how many reboots (default 1)"),
    ],
};

/// `type = shutdown`.
pub const SHUTDOWN: TestSpec = TestSpec {
    name: "shutdown",
    about: "Shuts the guest down (from its shell or with system_powerdown); QEMU must exit.",
    params: &[
        MAIN_VM,
        LOGIN_TIMEOUT,
        ParamDoc::optional("shutdown_method", "shell (default) or system_powerdown"),
        ParamDoc::optional(
            "shutdown_command",
            "the guest's shutdown command (shell method)",
        ),
        ParamDoc::optional("shutdown_timeout", "seconds for QEMU to exit (default 240)"),
    ],
};

/// `type = migration`.
pub const MIGRATION: TestSpec = TestSpec {
    name: "migration",
    about: "Migrates the guest to a new QEMU and checks the guest still answers.",
    params: &[
        MAIN_VM,
        LOGIN_TIMEOUT,
        LOGIN_VIA,
        ParamDoc::required("migration_protocol", "tcp, unix or exec"),
        ParamDoc::optional(
            "mig_offline",
            "yes: stop the guest before migrating (default no)",
        ),
        ParamDoc::optional(
            "mig_timeout",
            "seconds for the migration to finish (default 3600)",
        ),
        ParamDoc::optional(
            "migration_test_command",
            "guest command whose output must not change across the migration \
             (default: the kernel's boot_id, which changes on any reboot)",
        ),
    ],
};

/// `type = pci_hotplug`.
pub const PCI_HOTPLUG: TestSpec = TestSpec {
    name: "pci_hotplug",
    about: "Hot-plugs a NIC or block device, finds it in the guest, tests it and unplugs it.",
    params: &[
        MAIN_VM,
        LOGIN_TIMEOUT,
        LOGIN_VIA,
        ParamDoc::required("pci_type", "nic or block"),
        ParamDoc::required("pci_model", "the device model (virtio, e1000, …)"),
        ParamDoc::required(
            "reference_cmd",
            "guest command listing devices, run before and after",
        ),
        ParamDoc::required("find_pci_cmd", "guest command that shows the new device"),
        ParamDoc::required("match_string", "what find_pci_cmd must print"),
        ParamDoc::optional(
            "pci_test_cmd",
            "guest command that exercises the new device",
        ),
        ParamDoc::optional("hotplug_method", "device_add (default) or pci_add (legacy)"),
        ParamDoc::optional(
            "wait_secs_for_hook_up",
            "seconds before the guest is first asked (default 3)",
        ),
        ParamDoc::optional(
            "find_pci_timeout",
            "seconds for find_pci_cmd to show match_string (default 30)",
        ),
        ParamDoc::optional("modprobe_module", "a guest module to load first"),
        ParamDoc::optional(
            "image_format_stg",
            "format of the hot-plugged disk's image (default qcow2)",
        ),
        ParamDoc::optional(
            "image_size_stg",
            "size of the hot-plugged disk's image (default 64M)",
        ),
    ],
};

/// `type = nic_hotplug`.
pub const NIC_HOTPLUG: TestSpec = TestSpec {
    name: "nic_hotplug",
    about: "Hot-plugs a NIC with its netdev, checks guest connectivity, unplugs it.",
    params: &[
        MAIN_VM,
        LOGIN_TIMEOUT,
        LOGIN_VIA,
        ParamDoc::required(
            "pci_model",
            "the NIC model to plug (virtio, e1000, rtl8139; `pci_model` rather than \
             `nic_model`, which would change the VM's own NICs)",
        ),
        ParamDoc::optional("netdev_type", "the backend (default user; the only one)"),
        ParamDoc::optional(
            "nic_hotplug_timeout",
            "seconds for the guest to see the NIC, lease an address and drop it (default 30)",
        ),
    ],
};

/// `type = physical_resources_check`.
pub const PHYSICAL_RESOURCES_CHECK: TestSpec = TestSpec {
    name: "physical_resources_check",
    about: "The guest sees the configured memory, CPUs, disks and NICs, with the configured \
            NIC and disk models (checked via info pci / query-pci).",
    params: &[
        MAIN_VM,
        LOGIN_TIMEOUT,
        LOGIN_VIA,
        ParamDoc::required("mem", "configured memory in MiB"),
        ParamDoc::optional("smp", "configured CPUs (default 1)"),
        ParamDoc::optional("images", "the disks"),
        ParamDoc::optional("nics", "the NICs"),
        ParamDoc::optional(
            "nic_model",
            "each NIC's model to find (per NIC: nic_model_NIC; default rtl8139, as the seed)",
        ),
        ParamDoc::optional(
            "drive_format",
            "each disk's bus to find (per image: drive_format_IMAGE; default ide)",
        ),
        ParamDoc::optional(
            "mem_chk_cmd",
            "guest command whose last number is its memory in KiB (default: the total of \
             the kernel's `Memory: …K/…K` boot line)",
        ),
        ParamDoc::optional(
            "mem_chk_tolerance",
            "percent of `mem` the guest may not see (firmware holes; default 5)",
        ),
        ParamDoc::optional(
            "cpu_chk_cmd",
            "guest command printing its CPU count (default: processors in /proc/cpuinfo)",
        ),
        ParamDoc::optional(
            "disk_chk_cmd",
            "guest command listing its disks, one per line (default: vd*/sd*/hd* in /sys/block)",
        ),
        ParamDoc::optional(
            "nic_chk_cmd",
            "guest command listing its NICs, one per line (default: eth* in /sys/class/net)",
        ),
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
        (NIC_HOTPLUG, hotplug::run_nic_hotplug),
        (PHYSICAL_RESOURCES_CHECK, resources::run),
    ]
}
