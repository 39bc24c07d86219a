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

use spec::KeyDoc;

use crate::registry::{TestFn, TestSpec};

const MAIN_VM: KeyDoc = KeyDoc::optional(
    "main_vm",
    "the VM under test (an entry of `vms`; default: the first of `vms`)",
);
const LOGIN_VIA: KeyDoc = KeyDoc::with_default(
    "login_via",
    "serial",
    "serial, or remote: the VM's shell_client (telnet, nc, ssh) through its first NIC",
);

/// `type = boot`.
pub const BOOT: TestSpec = TestSpec {
    name: "boot",
    about: "Boots the guest and logs in.",
    params: &[
        MAIN_VM,
        LOGIN_VIA,
        KeyDoc::with_default("boot_command", "uname -r", "guest command run after login"),
        KeyDoc::optional(
            "boot_expect",
            "regex the command's output must match (unset: any non-empty output)",
        ),
    ],
};

/// `type = reboot`.
pub const REBOOT: TestSpec = TestSpec {
    name: "reboot",
    about: "Reboots the guest (from its shell or with system_reset) and logs in again.",
    params: &[
        MAIN_VM,
        LOGIN_VIA,
        KeyDoc::with_default("reboot_method", "shell", "shell or system_reset"),
        KeyDoc::with_default("reboot_count", "1", "how many reboots"),
    ],
};

/// `type = shutdown`.
pub const SHUTDOWN: TestSpec = TestSpec {
    name: "shutdown",
    about: "Shuts the guest down (from its shell or with system_powerdown); QEMU must exit.",
    params: &[
        MAIN_VM,
        LOGIN_VIA,
        KeyDoc::with_default("shutdown_method", "shell", "shell or system_powerdown"),
        KeyDoc::with_default("shutdown_timeout", "240", "seconds for QEMU to exit"),
    ],
};

/// `type = migration`.
pub const MIGRATION: TestSpec = TestSpec {
    name: "migration",
    about: "Migrates the guest to a new QEMU and checks the guest still answers.",
    params: &[
        MAIN_VM,
        LOGIN_VIA,
        KeyDoc::required("migration_protocol", "tcp, unix or exec"),
        KeyDoc::with_default("mig_offline", "no", "yes: stop the guest before migrating"),
        KeyDoc::with_default("mig_timeout", "3600", "seconds for the migration to finish"),
        KeyDoc::with_default(
            "migration_test_command",
            lifecycle::BOOT_ID,
            "guest command whose output must not change across the migration (the default \
             prints the kernel's boot_id, which changes on any reboot)",
        ),
    ],
};

/// `type = pci_hotplug`.
pub const PCI_HOTPLUG: TestSpec = TestSpec {
    name: "pci_hotplug",
    about: "Hot-plugs a NIC or block device, finds it in the guest, tests it and unplugs it.",
    params: &[
        MAIN_VM,
        LOGIN_VIA,
        KeyDoc::required("pci_type", "nic or block"),
        KeyDoc::required("pci_model", "the device model (virtio, e1000, …)"),
        KeyDoc::required(
            "reference_cmd",
            "guest command listing devices, run before and after",
        ),
        KeyDoc::required("find_pci_cmd", "guest command that shows the new device"),
        KeyDoc::required("match_string", "what find_pci_cmd must print"),
        KeyDoc::optional(
            "pci_test_cmd",
            "guest command that exercises the new device",
        ),
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
            "find_pci_timeout",
            "30",
            "seconds for find_pci_cmd to show match_string",
        ),
        KeyDoc::optional("modprobe_module", "a guest module to load first"),
        KeyDoc::with_default(
            "image_format_stg",
            "qcow2",
            "format of the hot-plugged disk's image",
        ),
        KeyDoc::with_default(
            "image_size_stg",
            "64M",
            "size of the hot-plugged disk's image",
        ),
    ],
};

/// `type = nic_hotplug`.
pub const NIC_HOTPLUG: TestSpec = TestSpec {
    name: "nic_hotplug",
    about: "Hot-plugs a NIC with its netdev, checks guest connectivity, unplugs it.",
    params: &[
        MAIN_VM,
        LOGIN_VIA,
        KeyDoc::required(
            "pci_model",
            "the NIC model to plug (virtio, e1000, rtl8139; `pci_model` rather than \
             `nic_model`, which would change the VM's own NICs)",
        ),
        KeyDoc::with_default("netdev_type", "user", "the backend (user is the only one)"),
        KeyDoc::with_default(
            "nic_hotplug_timeout",
            "30",
            "seconds for the guest to see the NIC, lease an address and drop it",
        ),
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
        LOGIN_VIA,
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
