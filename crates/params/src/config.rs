//! [`Config`], a parsed config: its tables (nodes, operations, filters, conditions, files,
//! symbols), what the parser adds to them, and `finish`, which computes the labels below each
//! node, the join words and the key tables the walk needs. [`LabelBits`] is the label set of a
//! node; [`refs`] lists the `${…}` references of a value.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, ErrorKind, Location};
use crate::intern::{Interner, KeyId, Sym};
use crate::parser::ParserOptions;
use crate::tree::{Cond, FileId, FilterId, Node, NodeId, Op, OpData, Pos};
use crate::{filter, intern, tail, tree, value, Parser};

/// The set of labels below a node: a bitset over the dense label numbering of
/// `Config::label_index`.
#[derive(Debug, Default, Clone)]
pub(crate) struct LabelBits(Vec<u64>);

impl LabelBits {
    /// No label at all (a leaf).
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }

    #[inline]
    pub(crate) fn contains_idx(&self, i: u32) -> bool {
        self.0
            .get((i / 64) as usize)
            .is_some_and(|w| w & (1u64 << (i % 64)) != 0)
    }

    fn insert(&mut self, i: u32) {
        let w = (i / 64) as usize;
        if self.0.len() <= w {
            self.0.resize(w + 1, 0);
        }
        self.0[w] |= 1u64 << (i % 64);
    }

    fn union(&mut self, other: &LabelBits) {
        if self.0.len() < other.0.len() {
            self.0.resize(other.0.len(), 0);
        }
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a |= b;
        }
    }
}

/// A parsed config, ready to enumerate its variants.
#[derive(Debug)]
pub struct Config {
    pub(crate) options: ParserOptions,
    pub(crate) syms: Interner,
    pub(crate) nodes: Vec<Node>,
    pub(crate) ops: Vec<Op>,
    pub(crate) filters: Vec<filter::Filter>,
    pub(crate) conds: Vec<Cond>,
    pub(crate) files: Vec<Arc<str>>,
    /// The text of every source, for `explain`.
    pub(crate) sources: Vec<Arc<str>>,
    /// Where each filter was written (None for generated ones).
    pub(crate) filter_pos: Vec<Option<Pos>>,
    pub(crate) root: NodeId,
    pub(crate) desc: Vec<LabelBits>,
    /// Dense label number of every symbol used as a label (u32::MAX for other symbols).
    pub(crate) label_index: Vec<u32>,
    pub(crate) joins: Vec<Vec<FilterId>>,
    pub(crate) reads_header: Vec<bool>,
    pub(crate) suffix_syms: Vec<Sym>,
    pub(crate) postfix_base: Vec<Option<(KeyId, u8)>>,
    pub(crate) has_postfix: bool,
    pub(crate) sorted_keys: Vec<KeyId>,
    /// The operations of a node's content when it has no conditions (most nodes).
    pub(crate) static_ops: Vec<Option<Vec<u32>>>,
    /// Per operation: can the shared tail compile it?
    pub(crate) compilable: Vec<bool>,
    /// `"key": ` as JSON, for each of `sorted_keys`.
    pub(crate) key_json: Vec<Vec<u8>>,
    /// Per key id: its index in `sorted_keys` (`u32::MAX` for symbols that are not keys).
    pub(crate) key_rank: Vec<u32>,
}

impl Config {
    pub(crate) fn empty(options: ParserOptions) -> Config {
        let mut syms = Interner::default();
        for k in intern::RESERVED {
            syms.intern(k);
        }
        Config {
            options,
            syms,
            nodes: Vec::new(),
            ops: Vec::new(),
            filters: Vec::new(),
            conds: Vec::new(),
            files: Vec::new(),
            sources: Vec::new(),
            filter_pos: Vec::new(),
            root: 0,
            desc: Vec::new(),
            label_index: Vec::new(),
            joins: Vec::new(),
            reads_header: Vec::new(),
            suffix_syms: Vec::new(),
            postfix_base: Vec::new(),
            has_postfix: false,
            sorted_keys: Vec::new(),
            static_ops: Vec::new(),
            compilable: Vec::new(),
            key_json: Vec::new(),
            key_rank: Vec::new(),
        }
    }

    /// Parse one file with the given options (a convenience over [`Parser`]).
    pub fn from_file(path: impl AsRef<Path>, options: ParserOptions) -> Result<Config, Error> {
        let mut p = Parser::new(options);
        p.parse_file(path)?;
        Ok(p.finish())
    }

    pub(crate) fn new_node(&mut self) -> NodeId {
        self.nodes.push(Node::default());
        NodeId::try_from(self.nodes.len() - 1).unwrap_or(NodeId::MAX)
    }

    pub(crate) fn add_op(&mut self, op: Op) -> u32 {
        self.ops.push(op);
        u32::try_from(self.ops.len() - 1).unwrap_or(u32::MAX)
    }

    pub(crate) fn add_filter(&mut self, f: filter::Filter, pos: Option<Pos>) -> FilterId {
        self.filters.push(f);
        self.filter_pos.push(pos);
        FilterId::try_from(self.filters.len() - 1).unwrap_or(FilterId::MAX)
    }

    pub(crate) fn add_cond(&mut self, c: Cond) -> u32 {
        self.conds.push(c);
        u32::try_from(self.conds.len() - 1).unwrap_or(u32::MAX)
    }

    pub(crate) fn add_file(&mut self, name: Arc<str>, text: &str) -> FileId {
        self.files.push(name);
        self.sources.push(Arc::from(text));
        FileId::try_from(self.files.len() - 1).unwrap_or(FileId::MAX)
    }

    pub(crate) fn error_at(&self, kind: ErrorKind, msg: String, pos: Pos) -> Error {
        let mut e = Error::new(kind, msg);
        if let Some(f) = self.files.get(pos.file as usize) {
            e = e.at(Location {
                file: f.clone(),
                line: Some(pos.line),
                col: None,
            });
        }
        e
    }

    /// Precompute what the walk needs: labels below each node, joins, keys.
    pub(crate) fn finish(&mut self) {
        // labels below every node
        let n = self.nodes.len();
        let mut label_index = vec![u32::MAX; self.syms.len()];
        let mut next = 0u32;
        for node in &self.nodes {
            for l in &node.name {
                for s in [l.name, l.long] {
                    if label_index[s as usize] == u32::MAX {
                        label_index[s as usize] = next;
                        next += 1;
                    }
                }
            }
        }
        let mut memo: Vec<Option<LabelBits>> = vec![None; n];
        fn desc(
            nodes: &[Node],
            index: &[u32],
            memo: &mut Vec<Option<LabelBits>>,
            id: NodeId,
        ) -> LabelBits {
            if let Some(d) = &memo[id as usize] {
                return d.clone();
            }
            let mut all = LabelBits::default();
            for &c in &nodes[id as usize].children {
                for l in &nodes[c as usize].name {
                    all.insert(index[l.name as usize]);
                    all.insert(index[l.long as usize]);
                }
                all.union(&desc(nodes, index, memo, c));
            }
            memo[id as usize] = Some(all.clone());
            all
        }
        for id in 0..n {
            desc(&self.nodes, &label_index, &mut memo, id as NodeId);
        }
        self.label_index = label_index;
        self.desc = memo.into_iter().map(Option::unwrap_or_default).collect();
        // joins: each OR-word of each join becomes an `only WORD`
        self.joins = vec![Vec::new(); n];
        for id in 0..n {
            let mut words = Vec::new();
            for item in &self.nodes[id].content {
                if let tree::Item::Join(f) = item {
                    for w in self.filters[*f as usize].words.clone() {
                        words.push(filter::Filter { words: vec![w] });
                    }
                }
            }
            for w in words {
                let fid = self.add_filter(w, None);
                self.joins[id].push(fid);
            }
        }
        // per-op facts
        let header = ["name", "shortname", "dep"];
        let mut reads = Vec::with_capacity(self.ops.len());
        let mut sfx = Vec::with_capacity(self.ops.len());
        let mut keys: Vec<KeyId> = (0..5).collect();
        for i in 0..self.ops.len() {
            let (r, s) = match &self.ops[i].data {
                OpData::Assign {
                    value, subst, key, ..
                } => {
                    keys.push(*key);
                    (*subst && refs(value).iter().any(|k| header.contains(k)), 0)
                }
                OpData::Regex { value, subst, .. } => {
                    (*subst && refs(value).iter().any(|k| header.contains(k)), 0)
                }
                OpData::Suffix { suffix } => {
                    let s = suffix.clone();
                    (false, self.syms.intern(&s))
                }
                OpData::Batch { entries } => {
                    keys.extend(entries.iter().map(|e| e.0));
                    (false, 0)
                }
                _ => (false, 0),
            };
            reads.push(r);
            sfx.push(s);
        }
        self.reads_header = reads;
        self.compilable = self.ops.iter().map(tail::compilable).collect();
        self.static_ops = self
            .nodes
            .iter()
            .map(|n| {
                let mut ops = Vec::new();
                for item in &n.content {
                    match item {
                        tree::Item::Op(o) => ops.push(*o),
                        tree::Item::Cond(_) => return None,
                        _ => {}
                    }
                }
                Some(ops)
            })
            .collect();
        self.suffix_syms = sfx;
        // postfix bases
        let mut bases = Vec::new();
        for &k in &keys {
            let name = self.syms.resolve(k).clone();
            for (suffix, kind) in [("_max", 0u8), ("_min", 1), ("_fixed", 2)] {
                if name.ends_with(suffix) {
                    let base = name.split(suffix).next().unwrap_or("").to_string();
                    bases.push((k, base, kind));
                    break;
                }
            }
        }
        self.has_postfix = !bases.is_empty();
        let mut pb: HashMap<KeyId, (KeyId, u8)> = HashMap::new();
        for (k, base, kind) in bases {
            let b = self.syms.intern(&base);
            keys.push(b);
            pb.insert(k, (b, kind));
        }
        self.postfix_base = (0..self.syms.len() as u32)
            .map(|k| pb.get(&k).copied())
            .collect();
        keys.sort_unstable();
        keys.dedup();
        let syms = &self.syms;
        keys.sort_by(|a, b| syms.resolve(*a).cmp(syms.resolve(*b)));
        self.key_json = keys
            .iter()
            .map(|&k| {
                let mut b = Vec::new();
                value::json_str(&mut b, self.syms.resolve(k));
                b.extend_from_slice(b": ");
                b
            })
            .collect();
        self.key_rank = vec![u32::MAX; self.syms.len()];
        for (i, &k) in keys.iter().enumerate() {
            self.key_rank[k as usize] = u32::try_from(i).unwrap_or(u32::MAX);
        }
        self.sorted_keys = keys;
    }

    /// The source file names, in the order they were read.
    pub fn files(&self) -> &[Arc<str>] {
        &self.files
    }
}

/// Collect `${…}` references of a value (the keys it may look up).
pub(crate) fn refs(v: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    while let Some(i) = v[start..].find("${").map(|i| i + start) {
        let b = i + 2;
        let Some(c) = v[b..].chars().next() else {
            break;
        };
        let from = b + c.len_utf8();
        let Some(j) = v[from..].find('}').map(|j| j + from) else {
            break;
        };
        out.push(&v[b..j]);
        start = j + 1;
    }
    out
}
