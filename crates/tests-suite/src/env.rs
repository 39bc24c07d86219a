//! The boundary between the catalogue and the VM layer: [`VmEnv`], [`GuestVm`] and
//! [`RemoteHosts`].
//!
//! The catalogue and the runner are written against these traits only. This crate implements
//! none of them for real VMs: [`NoVmEnv`] answers every VM request with
//! [`EnvError::Unavailable`], and a later step implements [`VmEnv`] on top of `crates/vm` and
//! hands an [`EnvFactory`] to the runner. Tests use scripted fakes.
//!
//! Futures are boxed ([`BoxFuture`]) so the traits stay object safe: the runner holds one
//! `Arc<dyn VmEnv>` per worker, and tests see it through [`crate::TestContext::env`].

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use params::Params;

use crate::gc::ResourceRecorder;
use crate::shell::{RemoteShell, ShellConfig, TcpShell};

/// A boxed, sendable future: what the object-safe async traits of this crate return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

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

/// How to stop a VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Teardown {
    /// Ask the guest to power down, wait up to `timeout`, then kill.
    Graceful {
        /// How long to wait for the guest to go away.
        timeout: Duration,
    },
    /// Kill the QEMU process group at once.
    Kill,
}

/// A living VM, as tests see it. The VM layer implements this; the set of operations grows
/// with the catalogue (hotplug and migration helpers are built from the monitor calls).
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
}

/// The VMs of one runner worker, kept between tests so a VM can be reused.
///
/// The runner calls [`start_vm`](VmEnv::start_vm) and [`prepare_image`](VmEnv::prepare_image)
/// in pre-processing, the test calls [`vm`](VmEnv::vm), and post-processing calls
/// [`destroy_vm`](VmEnv::destroy_vm) and [`remove_image`](VmEnv::remove_image) as `kill_vm`,
/// `kill_vm_gracefully`, `kill_unresponsive_vms` and `remove_image` say.
pub trait VmEnv: Send + Sync {
    /// Start VM `name` from `params` (already the VM's object view), or keep the running one
    /// when its command line would be identical. Per-test artifacts (argv, stderr, serial log,
    /// QMP transcript) go to `test_dir`.
    fn start_vm<'a>(
        &'a self,
        name: &'a str,
        params: &'a Params,
        test_dir: &'a Path,
    ) -> BoxFuture<'a, Result<(), EnvError>>;
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
    /// Create image `image` from `params` (the image's object view) when `create_image` asks.
    fn prepare_image<'a>(
        &'a self,
        image: &'a str,
        params: &'a Params,
    ) -> BoxFuture<'a, Result<(), EnvError>>;
    /// Remove image `image` (post-processing, `remove_image = yes`).
    fn remove_image<'a>(
        &'a self,
        image: &'a str,
        params: &'a Params,
    ) -> BoxFuture<'a, Result<(), EnvError>>;
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
    ) -> BoxFuture<'a, Result<(), EnvError>> {
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
        _image: &'a str,
        _params: &'a Params,
    ) -> BoxFuture<'a, Result<(), EnvError>> {
        Box::pin(async { Err(EnvError::Unavailable) })
    }

    fn remove_image<'a>(
        &'a self,
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
