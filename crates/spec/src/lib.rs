//! `spec`: the one typed reading of a test variant's params, shared by every layer above it.
//!
//! Params are a faithful string map (`crates/params`); what a key *means* is decided here, once:
//! its type, its default, what a bad value is. Each family of keys is read through one fallible
//! constructor that reports every bad key at once as a [`Problem`] naming the object, the key,
//! the value and the cfg `file:line` that set it ([`SpecError`] carries the list), so the
//! command-line builder (`qemu-cmd`), the VM layer (`vm`) and the runner (`tests-suite`) can no
//! longer disagree about a key.
//!
//! * [`view`]: the VM's hardware, borrowed from the params ([`VmView`] with its images, CD-ROMs,
//!   NICs, monitors, redirs), read through [`view::Reader`] over zero-copy per-object params.
//! * [`types`]: the value types (sizes, MACs, UUIDs, interfaces, accelerators…) and their
//!   parsers.
//! * [`opts`]: QEMU option lists as users write them in `*_extra_params`.
//! * [`session`]: how tests reach the guest's shell and how long they wait ([`SessionSpec`]:
//!   prompts, credentials, `login_timeout`, `cmd_timeout`, the guest's ready marker).
//! * [`problem`]: [`Problem`], [`ProblemKind`], [`SpecError`].

pub mod opts;
pub mod problem;
pub mod session;
pub mod types;
pub mod view;

pub use problem::{sort_problems, Problem, ProblemKind, SpecError};
pub use session::{KeyDoc, SessionSpec, SESSION_KEYS};
pub use view::{
    CdromView, FlatParams, ImageView, MonitorView, NicMode, NicView, ObjParams, RedirView, Src,
    VmView,
};

/// Helpers of this crate's unit tests.
#[cfg(test)]
pub(crate) mod test_support {
    use params::Params;

    /// Params from `key = value` pairs.
    pub fn params(pairs: &[(&str, &str)]) -> Params {
        let mut p = Params::new();
        for (k, v) in pairs {
            p.insert(*k, *v);
        }
        p
    }
}
