//! `vm`: QEMU guests owned from spawn to teardown.
//!
//! What this crate is: the one place in kvmtest that starts processes. A [`Vm`] is created from
//! a variant's params and an [`ArgvSource`] ([`QemuCmdArgv`], the `qemu-cmd` builder, or any
//! closure), in its own process group, dying with kvmtest even on SIGKILL; it owns its run
//! directory, monitor and serial sockets, MAC reservations and logs. Guests are reached through [`Session`]s over the
//! serial console, telnet, `nc` or ssh; operations (pause, reboot, hotplug, migration) go through
//! QMP and are confirmed by events and queries; [`Vm::destroy`] tears down in bounded stages and
//! `Drop` is a SIGKILL safety net. Images are handled with the real `qemu-img` ([`image`]).
//!
//! What it is not: it does not build command lines (that is `qemu-cmd`, which [`QemuCmdArgv`]
//! calls with what `vm` decided) nor parse configs
//! (`params`), and it speaks QMP/HMP only through the `monitor` crate.
//!
//! ```no_run
//! # async fn demo(params: params::Params) -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use vm::{Access, QemuCmdArgv, Teardown, Vm, VmSpec};
//! let argv = Arc::new(QemuCmdArgv::probe("/usr/bin/qemu-system-x86_64")?);
//! let mut guest = Vm::create(VmSpec::new("vm1", params, "/tmp/logs"), argv).await?;
//! let timeout = guest.login_timeout();
//! let mut shell = guest.wait_for_login(Access::Serial, timeout).await?;
//! let kernel = shell.cmd("uname -r").await?;
//! drop(shell);
//! guest.destroy(Teardown::Graceful).await?;
//! # let _ = kernel; Ok(()) }
//! ```

pub mod error;
pub mod fixtures;
pub mod image;
pub mod layout;
pub mod net;
pub mod process;
pub mod qemu_argv;
pub mod session;
mod spawn;
mod vm;

pub use error::{BoxError, Error, ImageError, SessionError};
pub use layout::{
    qemu_path_opt, render_argv, ArgvSource, MonitorKind, MonitorSpec, NicMode, NicSpec, RedirSpec,
    RunLayout, SerialSpec,
};
pub use net::MacAddr;
pub use qemu_argv::{probe_accel, AccelChoice, QemuArgvError, QemuCmdArgv};
pub use session::{Session, SessionSpec, Transport};
pub use vm::{
    run_base, sweep_stale, Access, CreateOptions, HotDisk, HotNic, MigrationProtocol, RebootMethod,
    StoppedBy, Teardown, Timeouts, Vm, VmSpec,
};
