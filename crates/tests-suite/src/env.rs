//! The boundary between the catalogue and the VM layer: [`VmEnv`], [`GuestVm`] and
//! [`RemoteHosts`].
//!
//! The catalogue and the runner are written against these traits only. [`NoVmEnv`] answers
//! every VM request with [`EnvError::Unavailable`]; [`crate::vm_env`] implements them on top of
//! `crates/vm` (real QEMU guests); tests of the runner use scripted fakes.
//!
//! Futures are boxed ([`BoxFuture`]) so the traits stay object safe: the runner holds one
//! `Arc<dyn VmEnv>` per worker, and tests see it through [`crate::TestContext::env`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use params::Params;
use spec::ImageProcessing;
pub use vm::{DiskPlug, NicIds};

use crate::error::error_chain;
use crate::future::BoxFuture;
use crate::gc::ResourceRecorder;
use crate::shell::{RemoteShell, ShellConfig, TcpShell};
use crate::verdict::TestError;

/// The message every VM request gets until the VM layer is wired in.
pub const VM_UNAVAILABLE: &str = "VM layer not available in this build";

/// Why an environment operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnvError {
    /// This build has no VM layer (see [`NoVmEnv`]).
    #[error("{VM_UNAVAILABLE}")]
    Unavailable,
    /// No living VM has this name.
    #[error("no living VM named '{name}'")]
    NoSuchVm {
        /// The name asked for.
        name: String,
    },
    /// A VM operation failed.
    #[error("VM '{name}': {what}")]
    Vm {
        /// The VM.
        name: String,
        /// The operation (`start`, `destroy`, `login`…).
        what: String,
        /// The VM layer's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The guest never offered a login within the time given (or QEMU exited meanwhile): what
    /// a boot that does not come up looks like. Tests report it as a failure.
    #[error("VM '{name}': the guest did not come up{}", crash.as_ref().map(|c| format!(" (its serial console shows a crash: {c})")).unwrap_or_default())]
    NoLogin {
        /// The VM.
        name: String,
        /// The first line of a guest kernel crash (panic, oops, BUG) on its serial console.
        crash: Option<String>,
        /// The VM layer's error: the login's last attempt.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The operation is not implemented by this environment.
    #[error("{what} is not supported by this environment")]
    Unsupported {
        /// What was asked for.
        what: String,
    },
    /// A remote shell failed.
    #[error(transparent)]
    Shell(#[from] crate::shell::ShellError),
}

/// An environment failure is the test's error, with the whole chain in its message.
impl From<EnvError> for TestError {
    fn from(e: EnvError) -> Self {
        TestError::Error(error_chain(&e))
    }
}

/// How to stop a VM (`kill_vm_gracefully`): the one definition, `spec`'s.
pub use spec::Teardown;

/// How a test reaches the guest's shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginVia {
    /// The serial console (one session at a time).
    Serial,
    /// The VM's `shell_client` (telnet, nc, ssh) through NIC `nic`.
    Remote {
        /// The NIC index.
        nic: usize,
    },
}

/// How [`GuestVm::reboot`] reboots the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RebootMethod {
    /// The guest's `reboot_command` in a shell.
    Shell,
    /// QMP `system_reset`.
    SystemReset,
}

/// How [`GuestVm::shutdown`] powers the guest off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownMethod {
    /// The guest's `shutdown_command` in a shell.
    Shell,
    /// QMP `system_powerdown` (the ACPI power button).
    SystemPowerdown,
}

/// How [`GuestVm::migrate`] moves the guest to a new QEMU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MigrationProtocol {
    /// TCP on loopback.
    Tcp,
    /// A unix socket.
    Unix,
    /// Through a file written and read by commands (offline by nature).
    Exec,
}

/// Whether the guest keeps running during a migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MigrationMode {
    /// Live: the guest runs while its memory is copied.
    Live,
    /// Offline: the guest is stopped first and resumed on the destination.
    Offline,
}

/// A migration as a test asks for it (tp-qemu's migration keys, read by the test).
#[derive(Debug, Clone)]
pub struct MigrationRequest {
    /// How the state moves.
    pub protocol: MigrationProtocol,
    /// Live or offline.
    pub mode: MigrationMode,
    /// `mig_cancel`: cancel this long after the start; success is then a cancelled migration
    /// and the source going on.
    pub cancel_after: Option<Duration>,
    /// `migration_exec_cmd_src` / `_dst` (`%s`: the state file) for exec migrations.
    pub exec_commands: Option<(String, String)>,
    /// `mig_speed` in bytes per second.
    pub max_bandwidth: Option<u64>,
    /// `migrate_capabilities`.
    pub capabilities: Vec<(String, bool)>,
    /// `mig_timeout`.
    pub timeout: Duration,
}

/// What a migration measured (QEMU's figures from the source's last `query-migrate`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationOutcome {
    /// The migration was cancelled, as asked.
    pub cancelled: bool,
    /// `total-time` (ms).
    pub total_time_ms: Option<u64>,
    /// `downtime` (ms).
    pub downtime_ms: Option<u64>,
    /// RAM bytes transferred.
    pub transferred_bytes: Option<u64>,
    /// Wall-clock time of the whole operation (ms).
    pub wall_ms: u64,
}

/// A device hot-plugged through [`GuestVm::hotplug_nic`] or [`GuestVm::hotplug_disk`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hotplugged {
    /// The device's qdev id (what `device_del` takes).
    pub id: String,
    /// The driver (`virtio-net-pci`, `e1000`, `virtio-blk-pci`…).
    pub driver: String,
    /// The MAC, for a NIC.
    pub mac: Option<String>,
}

fn unsupported<T: Send + 'static>(what: &str) -> BoxFuture<'static, Result<T, EnvError>> {
    let what = what.to_string();
    Box::pin(async move { Err(EnvError::Unsupported { what }) })
}

/// A living VM, as tests see it. The VM layer implements this. The lifecycle operations have
/// default bodies answering [`EnvError::Unsupported`], so scripted fakes implement only what
/// their tests use.
pub trait GuestVm: Send + Sync {
    /// The VM's name (an entry of `vms`).
    fn name(&self) -> &str;
    /// Whether its QEMU process is still running.
    fn is_alive(&self) -> bool;
    /// Log into the guest over its console or network, waiting up to `timeout`.
    fn login(&self, timeout: Duration) -> BoxFuture<'_, Result<Box<dyn RemoteShell>, EnvError>>;
    /// Run a human monitor command and return its text output.
    fn human_monitor_cmd<'a>(&'a self, cmd: &'a str) -> BoxFuture<'a, Result<String, EnvError>>;
    /// Run a QMP command with `args` and return its `return` value.
    fn qmp<'a>(
        &'a self,
        command: &'a str,
        args: serde_json::Value,
    ) -> BoxFuture<'a, Result<serde_json::Value, EnvError>>;
    /// Log in over `via` (the default ignores `via` and calls [`login`](GuestVm::login)).
    fn login_via(
        &self,
        via: LoginVia,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<Box<dyn RemoteShell>, EnvError>> {
        let _ = via;
        self.login(timeout)
    }
    /// Reboot the guest and log in again over the serial console within `timeout`.
    fn reboot(
        &self,
        method: RebootMethod,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<Box<dyn RemoteShell>, EnvError>> {
        let _ = (method, timeout);
        unsupported("reboot")
    }
    /// Power the guest off and wait up to `timeout` for QEMU to exit; the VM is gone afterwards.
    fn shutdown(
        &self,
        method: ShutdownMethod,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<(), EnvError>> {
        let _ = (method, timeout);
        unsupported("shutdown")
    }
    /// Migrate the guest to a new local QEMU, which then stands for this VM (unless the request
    /// cancels the migration: then the source goes on).
    fn migrate<'a>(
        &'a self,
        request: &'a MigrationRequest,
    ) -> BoxFuture<'a, Result<MigrationOutcome, EnvError>> {
        let _ = request;
        unsupported("migration")
    }
    /// Run guest-agent command `command` (with `args`; `Null`: none) on the VM's agent
    /// (`gagent_name`), within `timeout`; a command without a reply on success
    /// (`guest-suspend-*`) returns `{}` once accepted.
    fn agent<'a>(
        &'a self,
        command: &'a str,
        args: serde_json::Value,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<serde_json::Value, EnvError>> {
        let _ = (command, args, timeout);
        unsupported("guest agent")
    }
    /// `guest-shutdown` (powerdown, halt or reboot) through the agent; for powerdown and halt,
    /// QEMU must exit within `timeout` (the VM is gone afterwards); for reboot, the guest must
    /// come back (a login within `timeout`).
    fn agent_shutdown<'a>(
        &'a self,
        mode: &'a str,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<(), EnvError>> {
        let _ = (mode, timeout);
        unsupported("guest agent shutdown")
    }
    /// Hot-plug a NIC of `driver` on a new user-mode netdev (confirmed by `query-pci`).
    fn hotplug_nic<'a>(&'a self, driver: &'a str) -> BoxFuture<'a, Result<Hotplugged, EnvError>> {
        let _ = driver;
        unsupported("NIC hotplug")
    }
    /// Marks the VM as changed by the test in a way a later test must not inherit (a NIC's
    /// address taken away, a command-line device unplugged): it is not reused.
    fn retire(&self) {}
    /// Hot-plug NIC object `nic` (read by the spec layer: its `nettype`/`netdst`, MAC,
    /// `queues`, `vhost`, extra params) as a `driver` device; a bridged NIC gets a tap in its
    /// bridge (the private one with `netdst_private = yes`).
    fn hotplug_nic_spec<'a>(
        &'a self,
        nic: &'a spec::NicSpec,
        driver: &'a str,
    ) -> BoxFuture<'a, Result<Hotplugged, EnvError>> {
        let _ = (nic, driver);
        unsupported("NIC hotplug with a NIC spec")
    }
    /// The VM's own NICs (`nics`): names, device and netdev ids, MACs.
    fn nic_ids(&self) -> BoxFuture<'_, Result<Vec<NicIds>, EnvError>> {
        unsupported("listing the VM's NICs")
    }
    /// Sets NIC device `device_id`'s link up or down (`set_link`).
    fn set_link<'a>(&'a self, device_id: &'a str, up: bool) -> BoxFuture<'a, Result<(), EnvError>> {
        let _ = (device_id, up);
        unsupported("set_link")
    }
    /// The address a hot-plugged NIC's private bridge leased to it (`None`: none yet, or no
    /// private bridge).
    fn hot_nic_lease<'a>(
        &'a self,
        nic: &'a Hotplugged,
    ) -> BoxFuture<'a, Result<Option<String>, EnvError>> {
        let _ = nic;
        unsupported("reading a hot-plugged NIC's lease")
    }
    /// Pings `ip` `count` times from the host side of hot-plugged NIC `nic`: whether replies
    /// came, and ping's output.
    fn ping_from_host<'a>(
        &'a self,
        nic: &'a Hotplugged,
        ip: &'a str,
        count: u32,
    ) -> BoxFuture<'a, Result<(bool, String), EnvError>> {
        let _ = (nic, ip, count);
        unsupported("ping from the host")
    }
    /// Hot-plug `plug`'s image as its device (with its extra properties), on the controller
    /// (a SCSI HBA model) plugged for it first when one is named.
    fn hotplug_disk<'a>(
        &'a self,
        plug: &'a DiskPlug,
    ) -> BoxFuture<'a, Result<Hotplugged, EnvError>> {
        let _ = plug;
        unsupported("disk hotplug")
    }
    /// The device types this VM's QEMU has (`qom-list-types`), to check a model before
    /// plugging it.
    fn device_types(&self) -> BoxFuture<'_, Result<Vec<String>, EnvError>> {
        unsupported("listing device types")
    }
    /// Unplug a hot-plugged device and wait until QEMU confirms it is gone.
    fn unplug<'a>(&'a self, device: &'a Hotplugged) -> BoxFuture<'a, Result<(), EnvError>> {
        let _ = device;
        unsupported("unplug")
    }
    /// Plugs vCPU device `id` into the first free vCPU slot; [`GuestVm::unplug`] takes it out.
    /// The VM is not reused by a later test (its vCPUs are no longer its command line's).
    fn hotplug_vcpu<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Hotplugged, EnvError>> {
        let _ = id;
        unsupported("vCPU hotplug")
    }
}

/// The VMs of one runner worker, kept between tests so a VM can be reused.
///
/// The runner calls [`start_vm`](VmEnv::start_vm) and [`prepare_image`](VmEnv::prepare_image)
/// in pre-processing, the test calls [`vm`](VmEnv::vm), and post-processing calls
/// [`destroy_vm`](VmEnv::destroy_vm) and [`remove_image`](VmEnv::remove_image) as `kill_vm`,
/// `kill_vm_gracefully`, `kill_unresponsive_vms` and `remove_image` say.
pub trait VmEnv: Send + Sync {
    /// Start VM `name` of the variant's `params`, or keep the running one
    /// when its command line would be identical. Per-test artifacts (argv, stderr, serial log,
    /// QMP transcript) go to `test_dir`. Says how the VM came to run.
    fn start_vm<'a>(
        &'a self,
        name: &'a str,
        params: &'a Params,
        test_dir: &'a Path,
    ) -> BoxFuture<'a, Result<VmStart, EnvError>>;
    /// A living VM by name.
    fn vm(&self, name: &str) -> Result<Arc<dyn GuestVm>, EnvError>;
    /// The names of the VMs this environment holds (alive or not).
    fn vm_names(&self) -> Vec<String>;
    /// Stop and forget VM `name`; stopping a VM that is not there is not an error.
    fn destroy_vm<'a>(
        &'a self,
        name: &'a str,
        how: Teardown,
    ) -> BoxFuture<'a, Result<(), EnvError>>;
    /// Create image `image.name` of VM `vm` of the variant's `params` as `image` says:
    /// `create_image` when its file is missing, `force_create_image` even when it exists.
    fn prepare_image<'a>(
        &'a self,
        vm: &'a str,
        image: &'a ImageProcessing,
        params: &'a Params,
    ) -> BoxFuture<'a, Result<(), EnvError>>;
    /// The file and format of image `image` of VM `vm` of the variant's `params` (where
    /// [`prepare_image`](VmEnv::prepare_image) creates it), for a test that hot-plugs an image
    /// of `images` the command line leaves out (`boot_drive = no`).
    fn image_file(
        &self,
        vm: &str,
        image: &str,
        params: &Params,
    ) -> Result<(std::path::PathBuf, String), EnvError> {
        let _ = (vm, image, params);
        Err(EnvError::Unsupported {
            what: "image files".into(),
        })
    }
    /// Remove image `image` of VM `vm` of the variant's `params` (post-processing,
    /// `remove_image = yes`).
    fn remove_image<'a>(
        &'a self,
        vm: &'a str,
        image: &'a str,
        params: &'a Params,
    ) -> BoxFuture<'a, Result<(), EnvError>>;
    /// The version (`[major, minor, micro]`) of the QEMU that would start the variant's main VM
    /// (its `qemu_binary`), for `required_qemu`; `None` when this environment starts no QEMU or
    /// the variant has no VM. The default is `None`.
    fn qemu_version(&self, params: &Params) -> Option<[u64; 3]> {
        let _ = params;
        None
    }
    /// The QEMU this environment starts, as `<path> (<version>)`, for the results; `None` when
    /// it starts none. The default is `None`.
    fn qemu(&self) -> Option<String> {
        None
    }
    /// The QEMU binary that would start the variant's main VM (its `qemu_binary`), for tests
    /// that ask it what it knows (`-machine help`); `None` when this environment starts no
    /// QEMU. The default is `None`.
    fn qemu_binary(&self, params: &Params) -> Option<std::path::PathBuf> {
        let _ = params;
        None
    }
    /// The test whose directory is `test_dir` is over (post-processing done): copy what the
    /// VMs that survive it logged during the test into `test_dir`. The default does nothing.
    fn end_test<'a>(&'a self, test_dir: &'a Path) -> BoxFuture<'a, ()> {
        let _ = test_dir;
        Box::pin(async {})
    }
}

/// How [`VmEnv::start_vm`] got a VM running, for the test's log.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum VmStart {
    /// A new QEMU; the guest boots. The text, when there is one, says what else happened
    /// (its state saved for `restore_from_snapshot`, or why not).
    Booted(Option<String>),
    /// The running VM of an earlier test, its command line identical, was kept.
    Reused,
    /// A new QEMU started from a saved state (`restore_from_snapshot`): the text says which.
    Restored(String),
}

impl std::fmt::Display for VmStart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VmStart::Booted(None) => f.write_str("started"),
            VmStart::Booted(Some(note)) => write!(f, "started; {note}"),
            VmStart::Reused => f.write_str("kept running from the previous test"),
            VmStart::Restored(how) => write!(f, "restored from a saved state: {how}"),
        }
    }
}

/// The environment of a build without a VM layer: every VM request is
/// [`EnvError::Unavailable`]; it holds no VMs, so tearing down is a no-op.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoVmEnv;

impl VmEnv for NoVmEnv {
    fn start_vm<'a>(
        &'a self,
        _name: &'a str,
        _params: &'a Params,
        _test_dir: &'a Path,
    ) -> BoxFuture<'a, Result<VmStart, EnvError>> {
        Box::pin(async { Err(EnvError::Unavailable) })
    }

    fn vm(&self, _name: &str) -> Result<Arc<dyn GuestVm>, EnvError> {
        Err(EnvError::Unavailable)
    }

    fn vm_names(&self) -> Vec<String> {
        Vec::new()
    }

    fn destroy_vm<'a>(
        &'a self,
        _name: &'a str,
        _how: Teardown,
    ) -> BoxFuture<'a, Result<(), EnvError>> {
        Box::pin(async { Ok(()) })
    }

    fn prepare_image<'a>(
        &'a self,
        _vm: &'a str,
        _image: &'a ImageProcessing,
        _params: &'a Params,
    ) -> BoxFuture<'a, Result<(), EnvError>> {
        Box::pin(async { Err(EnvError::Unavailable) })
    }

    fn remove_image<'a>(
        &'a self,
        _vm: &'a str,
        _image: &'a str,
        _params: &'a Params,
    ) -> BoxFuture<'a, Result<(), EnvError>> {
        Box::pin(async { Err(EnvError::Unavailable) })
    }
}

/// What a worker's environment is built from.
#[derive(Debug, Clone)]
pub struct WorkerSlot {
    /// The worker's number, 0-based: derive MACs, ports or names from it, never from a lock.
    pub index: usize,
    /// A scratch directory owned by this worker (sockets, temporary files).
    pub scratch_dir: PathBuf,
    /// The QEMU binary chosen by flag or settings, if any.
    pub qemu_binary: Option<PathBuf>,
    /// The guest image cache chosen by flag or settings, if any.
    pub guest_cache: Option<PathBuf>,
    /// Where to record processes, sockets and directories for `kvmtest gc`.
    pub recorder: ResourceRecorder,
}

/// Builds one [`VmEnv`] per runner worker (`--jobs N` builds N).
pub trait EnvFactory: Send + Sync {
    /// The environment of worker `slot.index`.
    fn create(&self, slot: &WorkerSlot) -> Result<Arc<dyn VmEnv>, EnvError>;
}

/// The factory of [`NoVmEnv`].
#[derive(Debug, Default, Clone, Copy)]
pub struct NoVmFactory;

impl EnvFactory for NoVmFactory {
    fn create(&self, _slot: &WorkerSlot) -> Result<Arc<dyn VmEnv>, EnvError> {
        Ok(Arc::new(NoVmEnv))
    }
}

/// Hosts outside the VMs that a test talks to (the WHQL DTM server): shell sessions and file
/// transfer.
pub trait RemoteHosts: Send + Sync {
    /// Open a shell session on `address:port`.
    fn connect_shell<'a>(
        &'a self,
        address: &'a str,
        port: u16,
        config: ShellConfig,
    ) -> BoxFuture<'a, Result<Box<dyn RemoteShell>, EnvError>>;
    /// Upload `local` into directory `remote_dir` of the host's file-transfer service.
    fn upload<'a>(
        &'a self,
        address: &'a str,
        port: u16,
        local: &'a Path,
        remote_dir: &'a str,
    ) -> BoxFuture<'a, Result<(), EnvError>>;
    /// Download `remote` (a file or directory) into `local_dir`.
    fn download<'a>(
        &'a self,
        address: &'a str,
        port: u16,
        remote: &'a str,
        local_dir: &'a Path,
    ) -> BoxFuture<'a, Result<(), EnvError>>;
}

/// The real network: shells are [`TcpShell`]s (the `nc`-style line protocol of the DTM
/// server's remote shell). File transfer speaks the `rss` protocol of the Windows side, which
/// is not implemented yet: it reports [`EnvError::Unsupported`].
#[derive(Debug, Default, Clone, Copy)]
pub struct NetRemote;

impl RemoteHosts for NetRemote {
    fn connect_shell<'a>(
        &'a self,
        address: &'a str,
        port: u16,
        config: ShellConfig,
    ) -> BoxFuture<'a, Result<Box<dyn RemoteShell>, EnvError>> {
        Box::pin(async move {
            let shell = TcpShell::connect(address, port, config).await?;
            Ok(Box::new(shell) as Box<dyn RemoteShell>)
        })
    }

    fn upload<'a>(
        &'a self,
        _address: &'a str,
        _port: u16,
        _local: &'a Path,
        _remote_dir: &'a str,
    ) -> BoxFuture<'a, Result<(), EnvError>> {
        Box::pin(async {
            Err(EnvError::Unsupported {
                what: "rss file transfer (upload)".into(),
            })
        })
    }

    fn download<'a>(
        &'a self,
        _address: &'a str,
        _port: u16,
        _remote: &'a str,
        _local_dir: &'a Path,
    ) -> BoxFuture<'a, Result<(), EnvError>> {
        Box::pin(async {
            Err(EnvError::Unsupported {
                what: "rss file transfer (download)".into(),
            })
        })
    }
}
