//! Command lines for a whole test matrix: the dry run behind `kvmtest cmdline`.
//!
//! [`for_each_cmdline`] enumerates a parsed config's variants and builds each one's command
//! line; [`render_matrix`] writes them in the stable form, bad variants as `#` comment lines
//! listing every problem, and returns the counts. Nothing is started.

use std::io::{self, Write};
use std::ops::ControlFlow;

use params::{Config, VariantView};

use crate::build::build_flat;
use crate::caps::Capabilities;
use crate::cmd::QemuCommand;
use crate::error::BuildError;
use crate::run::RunContext;
use crate::view::FlatParams;

/// How a matrix dry run went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MatrixSummary {
    /// Variants seen.
    pub variants: u64,
    /// Variants whose command line was built.
    pub ok: u64,
    /// Variants with problems.
    pub errors: u64,
}

/// The dry run itself failed (as opposed to a variant having problems).
#[derive(Debug, thiserror::Error)]
pub enum MatrixError {
    /// Enumerating the config failed.
    #[error("enumerating variants")]
    Config(#[source] params::Error),
    /// Writing the output failed.
    #[error("writing the command lines")]
    Io(#[source] io::Error),
}

/// Builds the main VM's command line of every variant of `config`, calling `f` with the variant
/// and the outcome; `f` may stop the walk with `ControlFlow::Break`.
///
/// # Errors
///
/// The config's enumeration error, if any.
pub fn for_each_cmdline(
    config: &Config,
    caps: &Capabilities,
    ctx: &RunContext,
    mut f: impl FnMut(&VariantView<'_, '_>, Result<QemuCommand, BuildError>) -> ControlFlow<()>,
) -> Result<(), params::Error> {
    config.for_each(|v| {
        let entries = v.entries();
        let flat = FlatParams::new(&entries);
        let r = build_flat(&flat, caps, ctx);
        Ok(f(v, r))
    })
}

/// Writes the stable command line of every variant to `out` (placeholders for run-specific
/// parts), each preceded by `# N: NAME`; a variant with problems gets `# error:` lines instead.
///
/// # Errors
///
/// [`MatrixError`] when the config cannot be enumerated or `out` cannot be written.
pub fn render_matrix(
    config: &Config,
    caps: &Capabilities,
    out: &mut dyn Write,
) -> Result<MatrixSummary, MatrixError> {
    let mut sum = MatrixSummary::default();
    let mut failed: Option<io::Error> = None;
    for_each_cmdline(config, caps, &RunContext::Placeholders, |v, r| {
        sum.variants += 1;
        let name = v.name();
        let mut text = if name.is_empty() {
            format!("# {}\n", sum.variants)
        } else {
            format!("# {}: {name}\n", sum.variants)
        };
        match r {
            Ok(cmd) => {
                sum.ok += 1;
                text.push_str(&cmd.render_stable());
            }
            Err(e) => {
                sum.errors += 1;
                for line in e.to_string().lines() {
                    text.push_str("# error: ");
                    text.push_str(line.trim_start());
                    text.push('\n');
                }
            }
        }
        text.push('\n');
        match out.write_all(text.as_bytes()) {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => {
                failed = Some(e);
                ControlFlow::Break(())
            }
        }
    })
    .map_err(MatrixError::Config)?;
    match failed {
        Some(e) => Err(MatrixError::Io(e)),
        None => Ok(sum),
    }
}
