//! The VM-based test types, registered with their parameters.
//!
//! Their bodies need a running guest, which this build cannot provide: each reports
//! [`VM_UNAVAILABLE`] as an error (never a pass) until the VM layer implements
//! [`crate::env::VmEnv`] and these functions are filled in. The parameter lists follow the
//! seed's tests and tp-qemu, so configs written now keep working.

use crate::env::{BoxFuture, VM_UNAVAILABLE};
use crate::registry::{ParamDoc, TestContext, TestFn, TestSpec};
use crate::verdict::{TestError, TestResult};

const MAIN_VM: ParamDoc = ParamDoc::required("main_vm", "the VM under test (an entry of `vms`)");
const LOGIN_TIMEOUT: ParamDoc = ParamDoc::optional(
    "login_timeout",
    "seconds to wait for a guest login (default 240)",
);

/// `type = boot`.
pub const BOOT: TestSpec = TestSpec {
    name: "boot",
    about: "Boots the guest and logs in.",
    params: &[MAIN_VM, LOGIN_TIMEOUT],
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
            "guest command whose output must not change across the migration",
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
            "seconds for the guest to see it (default 3)",
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
        ParamDoc::required(
            "nic_model",
            "the NIC model to plug (virtio-net-pci, e1000, rtl8139)",
        ),
        ParamDoc::optional("netdev_type", "the backend (default user)"),
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
        ParamDoc::required("mem", "configured memory in MiB"),
        ParamDoc::optional("smp", "configured CPUs (default 1)"),
        ParamDoc::optional("images", "the disks"),
        ParamDoc::optional("nics", "the NICs"),
        ParamDoc::optional("nic_model", "the NIC model to find"),
        ParamDoc::optional("drive_format", "the disk bus/model to find"),
        ParamDoc::optional("mem_chk_cmd", "guest command printing its memory"),
        ParamDoc::optional("cpu_chk_cmd", "guest command printing its CPU count"),
    ],
};

fn unavailable(_ctx: &TestContext) -> BoxFuture<'_, TestResult> {
    Box::pin(async { Err(TestError::Error(VM_UNAVAILABLE.to_string())) })
}

/// The VM-based types with their (placeholder) functions.
pub fn entries() -> Vec<(TestSpec, TestFn)> {
    [
        BOOT,
        REBOOT,
        SHUTDOWN,
        MIGRATION,
        PCI_HOTPLUG,
        NIC_HOTPLUG,
        PHYSICAL_RESOURCES_CHECK,
    ]
    .into_iter()
    .map(|s| (s, unavailable as TestFn))
    .collect()
}
