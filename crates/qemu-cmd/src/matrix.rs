//! Command lines for a whole test matrix: the dry run behind `kvmtest cmdline`.
//!
//! [`for_each_cmdline`] enumerates a parsed config's variants and builds each one's command
//! line; [`map_cmdlines`] does the same on several threads, results in order; [`render_matrix`]
//! writes them in the stable form, bad variants as `#` comment lines
//! listing every problem, and returns the counts. Nothing is started.

use std::io::{self, Write};
use std::ops::ControlFlow;

use params::{Config, VariantView};

use crate::build::cmdline_flat;
use crate::caps::Capabilities;
use crate::cmd::QemuCommand;
use crate::plan::RunPlan;
use spec::problem::SpecError;
use spec::read::FlatParams;

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
    plan: &RunPlan,
    mut f: impl FnMut(&VariantView<'_, '_>, Result<QemuCommand, SpecError>) -> ControlFlow<()>,
) -> Result<(), params::Error> {
    config.for_each(|v| {
        let r = build_variant(v, caps, plan);
        Ok(f(v, r))
    })
}

/// Builds a variant's command line reading its entries in place (a copy only when the dict
/// must be flattened first).
fn build_variant(
    v: &VariantView<'_, '_>,
    caps: &Capabilities,
    plan: &RunPlan,
) -> Result<QemuCommand, SpecError> {
    match v.entry_refs() {
        Some(refs) => cmdline_flat(&FlatParams::from_refs(&refs), caps, plan),
        None => {
            let entries = v.entries();
            cmdline_flat(&FlatParams::new(&entries), caps, plan)
        }
    }
}

/// Builds the main VM's command line of every variant of `config` with `workers` threads,
/// maps each variant and its outcome with `map` (on the worker), and hands the results to
/// `emit` in enumeration order; `emit` may stop the walk with `ControlFlow::Break`.
///
/// # Errors
///
/// The config's enumeration error, if any (after the variants before it were emitted).
pub fn map_cmdlines<T: Send>(
    config: &Config,
    caps: &Capabilities,
    plan: &RunPlan,
    workers: usize,
    map: &(dyn Fn(&VariantView<'_, '_>, Result<QemuCommand, SpecError>) -> T + Sync),
    emit: &mut dyn FnMut(T) -> ControlFlow<()>,
) -> Result<u64, params::Error> {
    config.map_parallel(
        workers,
        &|v| map(v, build_variant(v, caps, plan)),
        &mut |t| Ok(emit(t)),
    )
}

/// Writes the stable command line of every variant to `out` (placeholders for run-specific
/// parts), each preceded by `# N: NAME`; a variant with problems gets `# error:` lines instead.
/// `workers` threads build and render them; the output does not depend on their number.
///
/// # Errors
///
/// [`MatrixError`] when the config cannot be enumerated or `out` cannot be written.
pub fn render_matrix(
    config: &Config,
    caps: &Capabilities,
    workers: usize,
    out: &mut dyn Write,
) -> Result<MatrixSummary, MatrixError> {
    let mut sum = MatrixSummary::default();
    let mut failed: Option<io::Error> = None;
    // rendered on the workers: (name, text, built)
    let render = |v: &VariantView<'_, '_>, r: Result<QemuCommand, SpecError>| {
        let mut text = String::new();
        let ok = match r {
            Ok(cmd) => {
                text.push_str(&cmd.render_stable());
                true
            }
            Err(e) => {
                for line in e.to_string().lines() {
                    text.push_str("# error: ");
                    text.push_str(line.trim_start());
                    text.push('\n');
                }
                false
            }
        };
        text.push('\n');
        (v.name(), text, ok)
    };
    map_cmdlines(
        config,
        caps,
        &RunPlan::dry(),
        workers,
        &render,
        &mut |(name, text, ok)| {
            sum.variants += 1;
            if ok {
                sum.ok += 1;
            } else {
                sum.errors += 1;
            }
            let head = if name.is_empty() {
                format!("# {}\n", sum.variants)
            } else {
                format!("# {}: {name}\n", sum.variants)
            };
            match out
                .write_all(head.as_bytes())
                .and_then(|()| out.write_all(text.as_bytes()))
            {
                Ok(()) => ControlFlow::Continue(()),
                Err(e) => {
                    failed = Some(e);
                    ControlFlow::Break(())
                }
            }
        },
    )
    .map_err(MatrixError::Config)?;
    match failed {
        Some(e) => Err(MatrixError::Io(e)),
        None => Ok(sum),
    }
}
