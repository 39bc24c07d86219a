//! The parsed form of a config: a DAG of nodes whose contents are statements, exactly the
//! reference parser's tree (see the crate docs for the shape and its two orders).

use std::sync::Arc;

use crate::filter::{CtxLabel, Filter};
use crate::intern::Sym;
use crate::lexer::OpKind;

pub(crate) type NodeId = u32;
pub(crate) type OpId = u32;
pub(crate) type FilterId = u32;
pub(crate) type CondId = u32;
pub(crate) type FileId = u32;

/// A statement in a node's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Item {
    Op(OpId),
    Only(FilterId),
    No(FilterId),
    Join(FilterId),
    Cond(CondId),
}

/// A condition block `FILTER:` (or `!FILTER:` when `neg`).
#[derive(Debug, Clone)]
pub(crate) struct Cond {
    pub neg: bool,
    pub filter: FilterId,
    pub body: Vec<Item>,
    pub file: FileId,
    pub line: u32,
}

/// Where a statement came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Pos {
    pub file: FileId,
    pub line: u32,
}

/// An operation applied when a variant's dict is built.
#[derive(Debug, Clone)]
pub(crate) enum OpData {
    /// `key OP value` for `=`, `+=`, `<=`, `~=`.
    Assign {
        kind: OpKind,
        key: Sym,
        value: Arc<str>,
        subst: bool,
    },
    /// `regex ?= value` and friends; `re` is compiled at parse time, reported when applied.
    Regex {
        kind: OpKind,
        re: Result<crate::pyre::KeyRegex, String>,
        value: Arc<str>,
        subst: bool,
    },
    /// `del key` (removes the key, or a suffixed key whose joined parts equal it).
    Del { key: Arc<str> },
    /// A run of plain `k = v` statements applied as one update (the reference's pre-dict).
    Batch { entries: Vec<(Sym, Arc<str>, u32)> },
    /// The per-file name map updates every entry adds after its body.
    FileMap {
        short: bool,
        file: Arc<str>,
        text: Arc<str>,
    },
    /// `suffix S`, applied at the end of its block.
    Suffix { suffix: Arc<str> },
}

/// An operation with its origin.
#[derive(Debug, Clone)]
pub(crate) struct Op {
    pub data: OpData,
    pub pos: Pos,
}

/// A node of the tree: a content node, a `variants` container, or an entry.
#[derive(Debug, Clone, Default)]
pub(crate) struct Node {
    /// The labels an entry adds to the variant's name (empty for other nodes).
    pub name: Vec<CtxLabel>,
    /// Entry deps (after the colon).
    pub deps: Filter,
    pub content: Vec<Item>,
    pub children: Vec<NodeId>,
    pub append_to_shortname: bool,
    pub default: bool,
    /// Where an entry's `- name:` line is.
    pub pos: Option<Pos>,
    /// Defaults mode walks every child of this node (its block is in `expand_defaults`).
    pub expanded: bool,
}
