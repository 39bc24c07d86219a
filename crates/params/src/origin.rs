//! Where a parameter value came from: the cfg file and line of the statement that set it.
//!
//! Every value in a [`Params`](crate::Params) may carry an [`Origin`], so that an error found long
//! after parsing (a bad boolean, a number out of range, a missing `=` in a dict entry) can point the
//! user back at the line to fix. An `Origin` is deliberately small: the file name is shared through
//! an [`Arc<str>`] because thousands of values in hundreds of variant dicts come from the same few
//! files, and only the line is kept, not a byte span. Column-accurate spans belong to the parser's
//! own diagnostics; by the time a value sits in a `Params`, the line is what a person needs.

use std::fmt;
use std::sync::Arc;

/// The cfg file and 1-based line of the statement that set a parameter value.
///
/// Displays as `file:line`, the form editors and terminals turn into a link.
///
/// ```
/// use params::Origin;
///
/// let origin = Origin::new("tests.cfg", 12);
/// assert_eq!(origin.to_string(), "tests.cfg:12");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Origin {
    /// The cfg file as it was named to the parser (or as the `include` statement spelled it).
    /// Shared, because one file sets many values.
    pub file: Arc<str>,
    /// The 1-based line of the statement within `file`.
    pub line: u32,
}

impl Origin {
    /// Creates an origin for `line` (1-based) of `file`.
    ///
    /// Pass an existing `Arc<str>` to share the file name between origins rather than copy it.
    pub fn new(file: impl Into<Arc<str>>, line: u32) -> Self {
        Origin {
            file: file.into(),
            line,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}
