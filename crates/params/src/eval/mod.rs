//! Enumerating variants and building their dicts.
//!
//! The walk is the reference's depth-first walk (last-defined block outermost), with pending
//! `only`/`no`/condition items pruned by "might still match below" exactly like the reference,
//! but every filter decision is finally taken against the variant's complete name, so the
//! output does not depend on the pruning.
//!
//! Building a dict: the statements that apply to a variant, in file order, form a list of
//! operation ids, one segment per node of the path (deepest first). Consecutive variants share
//! both ends of that list. The root side is the compiled tail ([`crate::tail`]), a stack of
//! per-node layers; the deepest segments are applied on the working dict, which keeps an undo
//! log per applied operation: a new variant rolls back to the longest common prefix with the
//! previous one and applies only the rest. Nothing is kept per variant, so memory does not grow
//! with the number of variants.
//!
//! Files: `work` (the working dict), `walk` (the depth-first walk, filters, `join`), `build`
//! (a leaf's dict: operation list, tail choice, gathering, final reads), `apply` (one
//! operation, the postfix pass) and `variant` (a built variant: lookups, flattening, JSON).
//! This file holds the walker's state and the sink interface.

mod apply;
mod build;
mod variant;
mod walk;
mod work;

use std::sync::Arc;

use crate::error::Error;
use crate::filter::LabelSet;
use crate::intern::{KeyId, Sym};
use crate::tail::Tail;
use crate::tree::{Item, NodeId, OpId, Pos};
use crate::value::Value;
use crate::Config;

pub(crate) use variant::flatten;
pub(crate) use work::Work;

/// The walker: enumerates variants of a [`Config`] and builds their dicts.
pub(crate) struct Walker<'c> {
    pub(crate) cfg: &'c Config,
    /// The operations (`cfg.ops`, or a thread's private copy of them: see
    /// [`Config::private_ops`]).
    pub(crate) ops: &'c [crate::tree::Op],
    pub(crate) work: Work,
    ctx: crate::filter::Context,
    path: Vec<NodeId>,
    short: Vec<Sym>,
    deps: Vec<Arc<str>>,
    truth: Vec<bool>,
    ops_buf: Vec<OpId>,
    /// The labels of `ctx` (long names) and of `short`, joined by `.`, kept in step with them.
    name_buf: String,
    short_buf: String,
    /// The previous variant's full operation list.
    prev_ops: Vec<OpId>,
    /// Where each path node's operations start in `ops_buf` (leaf first).
    seg_bounds: Vec<usize>,
    /// The compiled shared tail of the operation list.
    tail: Tail,
    /// Per-variant results on top of the working dict and the tail (dynamic tail actions,
    /// file maps, the postfix pass), dense by key.
    over: Vec<Option<(Value, Pos)>>,
    /// Which keys `over` holds: a dense flag per key, small enough to stay in cache while
    /// every key of a dict is read (most keys have no per-variant result).
    overlaid: Vec<bool>,
    over_keys: Vec<KeyId>,
    /// Keys the postfix pass created (they come last in the dict).
    post_new: Vec<KeyId>,
    dep_cache: Option<Value>,
    /// Whether `deps` changed since `dep_cache` was last checked against it.
    deps_changed: bool,
    /// Building gathered leaves: the gathering walker's dep list that `dep_cache` copies.
    dep_source: Option<Value>,
    /// Reused pending-item buffers (one per depth of the walk).
    pending_pool: Vec<Vec<Item>>,
    /// Gather only: at a leaf, collect what the dict is built from (header values in
    /// `name_buf`, `short_buf`, `dep_cache`; the operations in `ops_buf` and `seg_bounds`) and
    /// hand the walker to the sink without building (the parallel engine's producer).
    pub(crate) gather_only: bool,
    /// Count only: at a leaf, hand the walker to the sink with nothing gathered or built (for
    /// configs whose dicts cannot fail to build: [`Config::build_can_fail`]).
    pub(crate) count_only: bool,
    /// What the file-map keys' slots hold in the working dict (see `Work::filemaps`).
    map_marker: Value,
    /// Scratch for `write_json`: a bit set of the dict's keys in JSON order (see
    /// [`Walker::mark_key_ranks`]), all zero between uses.
    json_ranks: std::cell::RefCell<Vec<u64>>,
}

/// What a sink says after seeing a variant.
pub(crate) enum Flow {
    Continue,
    Stop,
}

/// Receives each variant as it is built.
pub(crate) trait Sink {
    fn variant(&mut self, v: &VariantRef<'_, '_>) -> Result<Flow, Error>;
}

/// A built variant, borrowed from the walker (or from a join's merged dict).
pub(crate) enum VariantRef<'w, 'c> {
    Work(&'w Walker<'c>),
    Owned(&'w Walker<'c>, &'w OwnedDict),
}

/// A materialised dict (used by `join`).
#[derive(Clone, Debug)]
pub(crate) struct OwnedDict {
    pub entries: Vec<(KeyId, Value, Pos)>,
}

impl OwnedDict {
    fn get(&self, k: KeyId) -> Option<&Value> {
        self.entries.iter().find(|e| e.0 == k).map(|e| &e.1)
    }
    fn set(&mut self, k: KeyId, v: Value, p: Pos) {
        match self.entries.iter_mut().find(|e| e.0 == k) {
            Some(e) => {
                e.1 = v;
                e.2 = p;
            }
            None => self.entries.push((k, v, p)),
        }
    }
}

struct SetLabels<'a>(&'a crate::LabelBits, &'a [u32]);
impl LabelSet for SetLabels<'_> {
    #[inline]
    fn contains(&self, sym: Sym) -> bool {
        match self.1.get(sym as usize) {
            Some(&i) if i != u32::MAX => self.0.contains_idx(i),
            _ => false,
        }
    }
}

enum Outcome {
    Pruned,
    Ok,
}
