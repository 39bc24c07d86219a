//! `qemu_cmd`: QEMU command lines from a test variant's params, for the QEMU at hand.
//!
//! Data flow: [`Params`] → the `spec` crate's owned, typed [`VmSpec`] (with its [`ImageSpec`]s,
//! [`NicSpec`]s…; every bad key reported at once) + a [`RunPlan`] (the run-specific choices the
//! `vm` crate made, or placeholders) → [`build`], which asks one typed [`Capabilities`] value what
//! this QEMU accepts → a [`QemuCommand`]: argv as `OsString`s (never a shell string) plus the
//! child's environment, renderable in a stable, shell-quoted, one-option-per-line form where
//! run-specific parts are `@PLACEHOLDERS@`.
//!
//! What this crate is not: it does no I/O outside [`probe`] (which runs a binary to learn its
//! capabilities and caches them on disk) and [`accepts`] (which starts a built command line
//! paused and quits it over QMP, to see the binary accept it), and it never runs a VM — that is
//! the `vm` crate's job.
//!
//! ```
//! use params::Params;
//! use qemu_cmd::{build, Capabilities, HelpTexts, RunPlan, VmSpec};
//!
//! let caps = Capabilities::from_help(
//!     &HelpTexts {
//!         version: "QEMU emulator version 7.2.0".into(),
//!         help: "-drive [file=file]\n-m megs\n".into(),
//!         ..HelpTexts::default()
//!     },
//!     "example",
//! )
//! .unwrap();
//! let mut p = Params::new();
//! p.insert("vms", "vm1");
//! p.insert("mem", "512");
//! p.insert("images", "image1");
//! p.insert("image_name", "images/disk,1");
//! p.insert("serials", "");
//! let spec = VmSpec::new(&p, "vm1").unwrap();
//! let cmd = build(&spec, &RunPlan::dry(), &caps).unwrap();
//! assert_eq!(
//!     cmd.render_stable(),
//!     "@ROOT@/qemu \\\n    -name vm1 \\\n    -m 512 \\\n    \
//!      -smp 1,maxcpus=1,cores=1,threads=1,dies=1,clusters=1,sockets=1 \\\n    \
//!      -drive file=@ROOT@/images/disk,,1.qcow2\n"
//! );
//! ```

pub mod accepts;
pub mod argv_diff;
mod build;
pub mod caps;
mod cmd;
mod escape;
mod matrix;
pub mod names;
mod plan;
pub mod probe;
mod render;

pub use build::{build, cmdline, cmdline_flat, main_vm};
pub use caps::{BoolSyntax, Capabilities, CapsError, HelpTexts, QemuVersion};
pub use cmd::{Opt, QemuCommand, RunText, Word};
pub use escape::{escape_into, escape_opt_value};
pub use matrix::{for_each_cmdline, map_cmdlines, render_matrix, MatrixError, MatrixSummary};
pub use plan::{Incoming, NicRun, RunPlan, RunValues, SpiceRun, VncRange, VsockRun};
pub use render::{render_argv, shell_quote};
/// The typed reading of the params lives in the `spec` crate; these are re-exported so this
/// crate's API reads as one: `qemu_cmd::types::Accel`, `qemu_cmd::VmSpec`…
pub use spec::opts::split_opt_list;
/// A VM's params cannot make a command line for this QEMU: [`spec::SpecError`], whose problem
/// list the builder extends with what the binary lacks.
pub use spec::SpecError as BuildError;
pub use spec::{
    types, CdromSpec, FlatParams, ImageSpec, MonitorSpec, NicMode, NicSpec, ObjParams, Problem,
    ProblemKind, RedirSpec, Src, VmSpec,
};

#[doc(no_inline)]
pub use params::Params;
