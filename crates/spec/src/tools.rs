//! Host tools a test variant names: the tools family of keys.

use std::path::PathBuf;

use params::Params;

use crate::keys::KeyDoc;
use crate::problem::{into_result, SpecError};
use crate::read::{Findings, ObjParams, Reader};

/// The tools keys, with their defaults.
pub const TOOL_KEYS: &[KeyDoc] = &[KeyDoc::with_default(
    "qemu_img_binary",
    "qemu-img",
    "the qemu-img program (a bare name is looked up on PATH)",
)];

/// The host tools of a variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostTools {
    /// `qemu_img_binary`.
    pub qemu_img: PathBuf,
}

impl HostTools {
    /// The tools keys of VM `vm` of a variant's `params` (its object view taken here).
    ///
    /// # Errors
    /// As [`HostTools::read`].
    pub fn of(params: &Params, vm: &str) -> Result<HostTools, SpecError> {
        HostTools::read(&params.object_params(vm))
    }

    /// Reads the tools keys of `params` (a variant's, or an object's view of them).
    ///
    /// # Errors
    /// [`SpecError::Params`] for a value that cannot be a program (a NUL byte).
    pub fn read(params: &Params) -> Result<HostTools, SpecError> {
        let mut found = Findings::new();
        let mut r = Reader::new(ObjParams::root(params), "tools", "host", &mut found);
        let tools = HostTools {
            qemu_img: r
                .string("qemu_img_binary")
                .unwrap_or_else(|| "qemu-img".into())
                .into(),
        };
        into_result(tools, "host", found.problems)
    }
}
