//! `params`: the Cartesian config language of KVM autotest / avocado-vt, and [`Params`].
//!
//! This crate reads avocado-vt config trees unchanged and produces exactly the variants and
//! parameters the reference parser (`virttest.cartesian_config`) produces, in the same order —
//! fast, lazily (memory does not grow with the number of variants), and with errors that name
//! `file:line:col`. It knows nothing about QEMU.
//!
//! ```
//! use params::{Parser, ParserOptions};
//!
//! let mut p = Parser::new(ParserOptions::default());
//! p.parse_str("mem = 512\nvariants:\n    - small:\n    - big:\n        mem = 2048\n").unwrap();
//! let cfg = p.finish();
//! let mut seen = Vec::new();
//! cfg.for_each(|v| {
//!     seen.push((v.name().to_string(), v.params().get("mem").unwrap_or("").to_string()));
//!     Ok(std::ops::ControlFlow::Continue(()))
//! })
//! .unwrap();
//! assert_eq!(seen, [("small".to_string(), "512".to_string()), ("big".into(), "2048".into())]);
//! ```
//!
//! Layout: [`lexer`] (lines and tokens) → `parser` (statements → tree) → `config` ([`Config`]
//! and its `finish`) → `enumerate` (sequential and parallel enumeration) → `eval` (walk and
//! dicts) → `view` ([`VariantView`] / [`Variant`]); [`Params`] is the per-variant string map
//! with per-object views; `pynum` reads Python numbers; [`Error`] renders diagnostics.

mod config;
mod enumerate;
mod error;
mod eval;
mod explain;
mod filter;
mod fxhash;
mod intern;
pub mod lexer;
mod origin;
mod params;
mod parser;
mod pynum;
mod pyre;
mod tail;
mod tree;
mod value;
mod view;

pub use error::{Error, ErrorKind, Errors, Location};
pub use explain::{explain, Decision, EntryStep, Explanation, KeyStep};
/// Keys the engine sets on every variant and no statement may set: `name`, `shortname`, `dep`,
/// `_name_map_file`, `_short_name_map_file`.
pub use intern::RESERVED as RESERVED_KEYS;
pub use origin::Origin;
pub use params::{ParamError, Params};
pub use parser::{Parser, ParserOptions};
pub use value::Value;
pub use view::{EntryRef, Variant, VariantView};

pub use config::Config;
pub(crate) use config::{refs, LabelBits};
