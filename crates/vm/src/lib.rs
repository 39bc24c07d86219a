//! `vm`: QEMU guests owned from spawn to teardown.
//!
//! What this crate is: the one place in kvmtest that starts processes. A [`Vm`] is created from
//! a [`VmSetup`] (the `spec` crate's typed reading of a variant's params: hardware and session
//! settings) and a [`VmPlan`] (the run-specific choices, decided here once: run directory, MACs,
//! tap names, UUID, VNC displays, `-incoming`), on a [`Qemu`] (binary + capabilities), in its own
//! process group, dying with kvmtest even on SIGKILL; it owns its run directory, monitor and
//! serial sockets, MAC reservations and logs. Guests are reached through [`Session`]s over the
//! serial console, telnet, `nc` or ssh; operations (pause, reboot, hotplug, migration) go through
//! QMP and are confirmed by events and queries; the guest agent is reached through
//! [`Vm::guest_agent`] (a `monitor::QgaClient` on its serial port); [`Vm::destroy`] tears down
//! in bounded stages and `Drop` is a SIGKILL safety net. Images are handled with the real `qemu-img` ([`image`]).
//!
//! What it is not: it does not build command lines (that is `qemu_cmd::build`, which [`Qemu`]
//! calls with the spec and the plan) nor read params (`spec`) nor parse configs (`params`), and
//! it speaks QMP/HMP only through the `monitor` crate.
//!
//! ```no_run
//! # async fn demo(params: params::Params) -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use vm::{Access, PlanOptions, Qemu, Teardown, Vm, VmSetup};
//! let qemu = Arc::new(Qemu::probe("/usr/bin/qemu-system-x86_64")?);
//! let setup = VmSetup::from_params(&params, "vm1", "/tmp/logs")?;
//! let mut guest = Vm::start(qemu, setup, &PlanOptions::new("/srv/kvmtest")).await?;
//! let timeout = guest.login_timeout();
//! let mut shell = guest.wait_for_login(Access::Serial, timeout).await?;
//! let kernel = shell.cmd("uname -r").await?;
//! drop(shell);
//! guest.destroy(Teardown::Graceful).await?;
//! # let _ = kernel; Ok(()) }
//! ```

pub mod daemons;
pub mod error;
pub mod fixtures;
mod hostnet;
pub mod image;
pub mod net;
pub mod netns;
pub mod plan;
pub mod privnet;
pub mod process;
pub mod qemu;
pub mod session;
mod spawn;
pub mod spice;
#[cfg(test)]
mod test_events;
mod vm;
mod vsock;

pub use error::{BoxError, Error, ImageError, SessionError};
pub use net::MacAddr;
pub use plan::{run_base, sweep_stale, Identity, PlanOptions, VmPlan};
pub use qemu::{probe_accel, AccelChoice, Qemu, QemuArgvError};
pub use qemu_cmd::render_argv;
pub use session::{Session, SessionSpec, Transport};
pub use spec::Teardown;
pub use vm::{
    with_control_monitor, Access, DiskPlug, HotDisk, HotNic, HotVcpu, LogSpan, MigrationOptions,
    MigrationProtocol, MigrationReport, NicIds, RebootMethod, SavedState, StoppedBy, Timeouts, Vm,
    VmSetup, CONTROL_MONITOR,
};
