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
//! Layout: [`lexer`] (lines and tokens) → `parser` (statements → tree) → `eval` (walk and
//! dicts) → [`VariantView`] / [`Variant`]; [`Params`] is the per-variant string map with
//! per-object views; [`Error`] renders diagnostics.

mod error;
mod eval;
mod explain;
mod filter;
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

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;

pub use error::{Error, ErrorKind, Errors, Location};
pub use explain::{explain, Decision, EntryStep, Explanation, KeyStep};
pub use origin::Origin;
pub use params::{ParamError, Params};
pub use parser::{Parser, ParserOptions};
pub use value::Value;

use eval::{Flow, Sink, VariantRef, Walker};
use intern::{Interner, KeyId, Sym};
use tree::{Cond, FileId, FilterId, Node, NodeId, Op, OpData, OpId, Pos};

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
        self.sorted_keys = keys;
    }

    /// Enumerate every variant, in the reference's order, calling `f` with a borrowed view.
    /// Return `ControlFlow::Break(())` from `f` to stop early.
    pub fn for_each(
        &self,
        mut f: impl FnMut(&VariantView<'_, '_>) -> Result<ControlFlow<()>, Error>,
    ) -> Result<(), Error> {
        struct S<F>(F);
        impl<F: FnMut(&VariantView<'_, '_>) -> Result<ControlFlow<()>, Error>> Sink for S<F> {
            fn variant(&mut self, v: &VariantRef<'_, '_>) -> Result<Flow, Error> {
                let view = VariantView {
                    inner: v,
                    params: std::cell::OnceCell::new(),
                };
                Ok(match (self.0)(&view)? {
                    ControlFlow::Continue(()) => Flow::Continue,
                    ControlFlow::Break(()) => Flow::Stop,
                })
            }
        }
        let mut w = Walker::new(self);
        w.run(&mut S(&mut f))
    }

    /// Build every variant with `workers` threads and hand `emit` each variant's reference JSON
    /// line, in enumeration order (chunks of consecutive variants go to the workers in turn
    /// and come back in order through bounded channels, so memory stays bounded). Returns the
    /// number of variants. Configs with `join` are enumerated on one thread.
    pub fn write_json_parallel(
        &self,
        workers: usize,
        emit: &mut dyn FnMut(&[u8]) -> Result<(), Error>,
    ) -> Result<u64, Error> {
        // small chunks: a JSON line is ~6 KB here, and every chunk in flight is memory
        self.chunked::<Vec<u8>>(workers, 32, &|buf, v| v.write_json(buf), &mut |buf, _| {
            emit(buf)?;
            Ok(ControlFlow::Continue(()))
        })
    }

    /// Count the variants with `workers` threads (every dict is fully built).
    pub fn count_parallel(&self, workers: usize) -> Result<u64, Error> {
        self.chunked::<()>(workers, 128, &|_, _| {}, &mut |_, _| {
            Ok(ControlFlow::Continue(()))
        })
    }

    /// Compute `map` of every variant with `workers` threads and hand the results to `emit`
    /// in enumeration order, as [`Config::write_json_parallel`] does for JSON; `emit` may stop
    /// the enumeration with `ControlFlow::Break`. Returns the number of variants emitted.
    ///
    /// # Errors
    ///
    /// The enumeration's error (after the results of the variants before it were emitted), or
    /// the first error `emit` returns.
    pub fn map_parallel<T: Send>(
        &self,
        workers: usize,
        map: &(dyn Fn(&VariantView<'_, '_>) -> T + Sync),
        emit: &mut dyn FnMut(T) -> Result<ControlFlow<()>, Error>,
    ) -> Result<u64, Error> {
        let mut emitted = 0u64;
        self.chunked::<Vec<T>>(
            workers,
            64,
            &|out, v| {
                let view = VariantView {
                    inner: v,
                    params: std::cell::OnceCell::new(),
                };
                out.push(map(&view));
            },
            &mut |items, _| {
                for t in items.drain(..) {
                    emitted += 1;
                    if emit(t)?.is_break() {
                        return Ok(ControlFlow::Break(()));
                    }
                }
                Ok(ControlFlow::Continue(()))
            },
        )?;
        Ok(emitted)
    }

    /// The parallel engine: every variant is added by `fill` to a chunk of type `C`, and the
    /// chunks of `chunk` consecutive variants reach `emit` in enumeration order with their
    /// sizes (larger chunks: less switching between the walkers' parts of the tree; smaller:
    /// less memory in flight).
    /// Emptied chunks go back to the worker that filled them, so a run needs only a few
    /// buffers, however many variants it has.
    fn chunked<C: Chunk>(
        &self,
        workers: usize,
        chunk: u64,
        fill: &(dyn Fn(&mut C, &VariantRef<'_, '_>) + Sync),
        emit: &mut Emit<'_, C>,
    ) -> Result<u64, Error> {
        use std::sync::mpsc;
        enum Msg<C> {
            Chunk(C, u64),
            Failed(C, Error),
            Done,
        }
        enum Job {
            Leaves(Box<Leaves>),
            /// The walk ended (with its error): the worker whose turn is next reports it.
            Finish(Option<Error>),
        }
        /// One thread: chunks go straight to the caller.
        struct ChunkSink<'f, C> {
            fill: &'f (dyn Fn(&mut C, &VariantRef<'_, '_>) + Sync),
            size: u64,
            chunk: C,
            count: u64,
            emit: &'f mut Emit<'f, C>,
        }
        impl<C: Chunk> ChunkSink<'_, C> {
            /// Hand the finished chunk on; false when nobody wants more.
            fn flush(&mut self) -> Result<bool, Error> {
                let count = std::mem::take(&mut self.count);
                let go = (self.emit)(&mut self.chunk, count)?.is_continue();
                self.chunk.reset();
                Ok(go)
            }
        }
        impl<C: Chunk> Sink for ChunkSink<'_, C> {
            fn variant(&mut self, v: &VariantRef<'_, '_>) -> Result<Flow, Error> {
                (self.fill)(&mut self.chunk, v);
                self.count += 1;
                if self.count == self.size && !self.flush()? {
                    return Ok(Flow::Stop);
                }
                Ok(Flow::Continue)
            }
        }
        /// The producer: gathered leaves, `size` per chunk, to the workers in turn.
        struct GatherSink {
            size: usize,
            leaves: Box<Leaves>,
            jobs: Vec<mpsc::SyncSender<Job>>,
            spare: mpsc::Receiver<Box<Leaves>>,
            sent: usize,
        }
        impl GatherSink {
            fn send(&mut self) -> bool {
                let mut next = self.spare.try_recv().unwrap_or_default();
                next.reset();
                let full = std::mem::replace(&mut self.leaves, next);
                let w = self.sent % self.jobs.len();
                self.sent += 1;
                self.jobs[w].send(Job::Leaves(full)).is_ok()
            }
        }
        impl Sink for GatherSink {
            fn variant(&mut self, v: &VariantRef<'_, '_>) -> Result<Flow, Error> {
                self.leaves.push(v.walker());
                if self.leaves.len() == self.size && !self.send() {
                    return Ok(Flow::Stop);
                }
                Ok(Flow::Continue)
            }
        }
        /// A worker's sink: results into the current chunk.
        struct FillSink<'f, 'o, C> {
            fill: &'f (dyn Fn(&mut C, &VariantRef<'_, '_>) + Sync),
            out: &'o mut C,
        }
        impl<C> Sink for FillSink<'_, '_, C> {
            fn variant(&mut self, v: &VariantRef<'_, '_>) -> Result<Flow, Error> {
                (self.fill)(self.out, v);
                Ok(Flow::Continue)
            }
        }
        let has_join = self.joins.iter().any(|j| !j.is_empty());
        if workers <= 1 || has_join {
            let mut total = 0u64;
            let mut counting = |c: &mut C, n: u64| {
                total += n;
                emit(c, n)
            };
            let mut sink = ChunkSink {
                fill,
                size: chunk,
                chunk: C::default(),
                count: 0,
                emit: &mut counting,
            };
            let r = Walker::new(self).run(&mut sink);
            // what was built before an error still reaches the caller
            if sink.count > 0 {
                sink.flush()?;
            }
            r?;
            return Ok(total);
        }
        // One producer walks the tree and gathers each leaf's operations; `workers` threads
        // build the dicts of whole chunks in turn; results come back in chunk order.
        std::thread::scope(|scope| {
            let mut rxs = Vec::new();
            let mut backs = Vec::new();
            let mut jobs = Vec::new();
            let (spare_tx, spare_rx) = mpsc::channel::<Box<Leaves>>();
            for _ in 0..workers {
                let (tx, rx) = mpsc::sync_channel::<Msg<C>>(4);
                let (back_tx, back_rx) = mpsc::channel::<C>();
                let (job_tx, job_rx) = mpsc::sync_channel::<Job>(8);
                rxs.push(rx);
                backs.push(back_tx);
                jobs.push(job_tx);
                let spare_tx = spare_tx.clone();
                scope.spawn(move || {
                    // private copies of the values the dicts share, so that the workers do
                    // not contend on their reference counts
                    let ops = self.private_ops();
                    let mut walker = Walker::with_ops(self, &ops);
                    for job in job_rx {
                        let leaves = match job {
                            Job::Leaves(l) => l,
                            Job::Finish(err) => {
                                let _ = tx.send(match err {
                                    None => Msg::Done,
                                    Some(e) => Msg::Failed(C::default(), e),
                                });
                                return;
                            }
                        };
                        let mut out = back_rx.try_recv().unwrap_or_default();
                        let mut failed = None;
                        let mut count = 0u64;
                        for i in 0..leaves.len() {
                            let mut sink = FillSink {
                                fill,
                                out: &mut out,
                            };
                            match leaves.build(i, &mut walker, &mut sink) {
                                Ok(_) => count += 1,
                                Err(e) => {
                                    failed = Some(e);
                                    break;
                                }
                            }
                        }
                        let _ = spare_tx.send(leaves);
                        let (msg, stop) = match failed {
                            Some(e) => (Msg::Failed(out, e), true),
                            None => (Msg::Chunk(out, count), false),
                        };
                        if tx.send(msg).is_err() || stop {
                            return;
                        }
                    }
                });
            }
            drop(spare_tx);
            let size = usize::try_from(chunk).unwrap_or(usize::MAX).max(1);
            scope.spawn(move || {
                let mut walker = Walker::new(self);
                walker.gather_only = true;
                let mut sink = GatherSink {
                    size,
                    leaves: Box::default(),
                    jobs,
                    spare: spare_rx,
                    sent: 0,
                };
                let r = walker.run(&mut sink);
                if sink.leaves.len() > 0 {
                    sink.send();
                }
                // the worker whose turn is next reports the end; the others just stop
                let next = sink.sent % sink.jobs.len();
                let mut err = r.err();
                for i in 0..sink.jobs.len() {
                    let w = (next + i) % sink.jobs.len();
                    let _ = sink.jobs[w].send(Job::Finish(err.take()));
                }
            });
            let mut total = 0u64;
            let mut c = 0usize;
            loop {
                let w = c % rxs.len();
                let msg = rxs[w].recv().unwrap_or(Msg::Done);
                match msg {
                    Msg::Chunk(mut chunk, k) => {
                        total += k;
                        if emit(&mut chunk, k)?.is_break() {
                            return Ok(total);
                        }
                        chunk.reset();
                        let _ = backs[w].send(chunk);
                    }
                    Msg::Failed(mut chunk, e) => {
                        let _ = emit(&mut chunk, 0)?;
                        return Err(e);
                    }
                    Msg::Done => return Ok(total),
                }
                c += 1;
            }
        })
    }

    /// A copy of the operations with their own strings (not sharing reference counts with
    /// `self.ops`).
    fn private_ops(&self) -> Vec<Op> {
        let own = |s: &Arc<str>| -> Arc<str> { Arc::from(&**s) };
        self.ops
            .iter()
            .map(|op| Op {
                pos: op.pos,
                data: match &op.data {
                    OpData::Assign {
                        kind,
                        key,
                        value,
                        subst,
                    } => OpData::Assign {
                        kind: *kind,
                        key: *key,
                        value: own(value),
                        subst: *subst,
                    },
                    OpData::Regex {
                        kind,
                        re,
                        value,
                        subst,
                    } => OpData::Regex {
                        kind: *kind,
                        re: re.clone(),
                        value: own(value),
                        subst: *subst,
                    },
                    OpData::Del { key } => OpData::Del { key: own(key) },
                    OpData::Batch { entries } => OpData::Batch {
                        entries: entries.iter().map(|(k, v, l)| (*k, own(v), *l)).collect(),
                    },
                    OpData::FileMap { short, file, text } => OpData::FileMap {
                        short: *short,
                        file: own(file),
                        text: own(text),
                    },
                    OpData::Suffix { suffix } => OpData::Suffix {
                        suffix: own(suffix),
                    },
                },
            })
            .collect()
    }

    /// Count the variants (every dict is fully built).
    pub fn count(&self) -> Result<u64, Error> {
        let mut n = 0u64;
        self.for_each(|_| {
            n += 1;
            Ok(ControlFlow::Continue(()))
        })?;
        Ok(n)
    }

    /// Collect every variant as an owned [`Variant`]. Memory grows with the count: prefer
    /// [`Config::for_each`] for large matrices.
    pub fn collect(&self) -> Result<Vec<Variant>, Error> {
        let mut out = Vec::new();
        self.for_each(|v| {
            out.push(v.to_variant());
            Ok(ControlFlow::Continue(()))
        })?;
        Ok(out)
    }

    /// The source file names, in the order they were read.
    pub fn files(&self) -> &[Arc<str>] {
        &self.files
    }
}

/// Leaves gathered by the parallel engine's producer (see [`Walker::gather`]), flattened
/// into a few buffers that are recycled.
#[derive(Default)]
struct Leaves {
    names: String,
    shorts: String,
    /// Per leaf: ends of its name and short name, of its ops and of its segment bounds.
    ends: Vec<(usize, usize, usize, usize)>,
    deps: Vec<Option<Value>>,
    ops: Vec<OpId>,
    bounds: Vec<usize>,
}

impl Leaves {
    fn len(&self) -> usize {
        self.ends.len()
    }

    /// Empty, keeping the buffers.
    fn reset(&mut self) {
        self.names.clear();
        self.shorts.clear();
        self.ends.clear();
        self.deps.clear();
        self.ops.clear();
        self.bounds.clear();
    }

    /// Record the leaf a gathering walker stands on.
    fn push(&mut self, w: &Walker<'_>) {
        let (name, short) = w.header_texts();
        self.names.push_str(name);
        self.shorts.push_str(short);
        let (ops, bounds) = w.gathered_ops();
        self.ops.extend_from_slice(ops);
        self.bounds.extend_from_slice(bounds);
        self.ends.push((
            self.names.len(),
            self.shorts.len(),
            self.ops.len(),
            self.bounds.len(),
        ));
        self.deps.push(w.dep_value().cloned());
    }

    /// Build leaf `i` on `walker` (a building walker of the same config) into `sink`.
    fn build(
        &self,
        i: usize,
        walker: &mut Walker<'_>,
        sink: &mut dyn Sink,
    ) -> Result<Option<usize>, Error> {
        let start = if i == 0 {
            (0, 0, 0, 0)
        } else {
            self.ends[i - 1]
        };
        let end = self.ends[i];
        walker.build_gathered(
            &self.names[start.0..end.0],
            &self.shorts[start.1..end.1],
            self.deps[i].as_ref(),
            &self.ops[start.2..end.2],
            &self.bounds[start.3..end.3],
            sink,
        )
    }
}

/// What receives the chunks of [`Config::chunked`].
type Emit<'e, C> = dyn FnMut(&mut C, u64) -> Result<ControlFlow<()>, Error> + 'e;

/// A buffer of results for [`Config::chunked`]: emptied and reused.
trait Chunk: Default + Send {
    fn reset(&mut self);
}

impl<T: Send> Chunk for Vec<T> {
    fn reset(&mut self) {
        self.clear();
    }
}

impl Chunk for () {
    fn reset(&mut self) {}
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

/// An entry of a variant's final dict, borrowed from the walk (see
/// [`VariantView::entry_refs`]).
#[derive(Debug, Clone, Copy)]
pub struct EntryRef<'v> {
    /// The key.
    pub key: &'v str,
    /// The value.
    pub value: &'v Value,
    /// The file of the statement that set it (`None` for the generated `name`, `shortname`
    /// and `dep`).
    pub file: Option<&'v Arc<str>>,
    /// The statement's 1-based line in `file`.
    pub line: u32,
}

impl EntryRef<'_> {
    /// Where the value was set.
    pub fn origin(&self) -> Option<Origin> {
        self.file.map(|f| Origin::new(f.clone(), self.line))
    }
}

/// A variant being enumerated, borrowed from the walk.
pub struct VariantView<'a, 'w> {
    inner: &'a VariantRef<'w, 'a>,
    params: std::cell::OnceCell<Params>,
}

impl VariantView<'_, '_> {
    /// The full name: labels joined by `.`, named labels as `(var=value)`.
    pub fn name(&self) -> String {
        self.inner.str_of(intern::K_NAME)
    }

    /// The short name: bare labels of non-default entries.
    pub fn shortname(&self) -> String {
        self.inner.str_of(intern::K_SHORTNAME)
    }

    /// The value of `key` in the final dict (a cheap clone: values are shared).
    pub fn get(&self, key: &str) -> Option<Value> {
        let w = self.inner.walker();
        match self.inner {
            VariantRef::Work(_) if !w.work_has_tuples() => {
                w.cfg.syms.get(key).and_then(|k| w.final_get(k)).cloned()
            }
            _ => self
                .inner
                .entries()
                .into_iter()
                .find(|e| &*e.0 == key)
                .map(|e| e.1),
        }
    }

    /// The string value of `key` (shared, not copied).
    pub fn get_str(&self, key: &str) -> Option<Arc<str>> {
        match self.get(key)? {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Where the statement that set `key` is.
    pub fn origin(&self, key: &str) -> Option<Origin> {
        self.entries()
            .into_iter()
            .find(|e| &*e.0 == key)
            .and_then(|e| e.2)
    }

    /// Call `f` with every entry of the final dict in order (suffixes flattened), borrowing
    /// keys and values; faster than [`VariantView::entries`] when nothing needs to be kept.
    pub fn for_each_entry(&self, mut f: impl FnMut(&str, &Value)) {
        let w = self.inner.walker();
        if let (VariantRef::Work(_), false) = (self.inner, w.work_has_tuples()) {
            for k in w.final_keys_in_order() {
                if let Some(v) = w.final_get(k) {
                    f(w.cfg.syms.resolve(k), v);
                }
            }
        } else {
            for (k, v, _) in self.inner.entries() {
                f(&k, &v);
            }
        }
    }

    /// Every entry of the final dict in order, borrowed for as long as the view lives (no
    /// value is copied); `None` when the dict must be flattened first (`suffix` keys, `join`
    /// results): use [`VariantView::entries`] then.
    pub fn entry_refs(&self) -> Option<Vec<EntryRef<'_>>> {
        let w = self.inner.walker();
        if !matches!(self.inner, VariantRef::Work(_)) || w.work_has_tuples() {
            return None;
        }
        let keys = w.final_keys_in_order();
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            if let Some(value) = w.final_get(k) {
                let p = w.final_pos_of(k);
                out.push(EntryRef {
                    key: w.cfg.syms.resolve(k),
                    value,
                    file: w.cfg.files.get(p.file as usize),
                    line: p.line,
                });
            }
        }
        Some(out)
    }

    /// Write the reference's JSON dump line (keys sorted, trailing newline).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        self.inner.write_json(out);
    }

    /// The final dict in order (suffixes flattened): name, value, origin.
    pub fn entries(&self) -> Vec<(Arc<str>, Value, Option<Origin>)> {
        let w = self.inner.walker();
        let origin = |p: Pos| {
            w.cfg.files.get(p.file as usize).map(|f| Origin {
                file: f.clone(),
                line: p.line,
            })
        };
        if let (VariantRef::Work(_), false) = (self.inner, w.work_has_tuples()) {
            // one pass over the final dict, no intermediate copies
            let keys = w.final_keys_in_order();
            let mut out = Vec::with_capacity(keys.len());
            for k in keys {
                if let Some(v) = w.final_get(k) {
                    out.push((
                        w.cfg.syms.resolve(k).clone(),
                        v.clone(),
                        origin(w.final_pos_of(k)),
                    ));
                }
            }
            return out;
        }
        self.inner
            .entries()
            .into_iter()
            .map(|(k, v, p)| (k, v, origin(p)))
            .collect()
    }

    /// The string-valued parameters (every key but `dep` and the file maps), with origins.
    pub fn params(&self) -> &Params {
        self.params.get_or_init(|| {
            let entries = self.entries();
            let mut p = Params::with_capacity(entries.len());
            for (k, v, o) in entries {
                if let Value::Str(s) = v {
                    p.insert_with_origin(k.to_string(), s.to_string(), o);
                }
            }
            p
        })
    }

    /// An owned copy.
    pub fn to_variant(&self) -> Variant {
        let mut v = Variant::default();
        for (k, val, o) in self.entries() {
            match (&*k, val) {
                ("dep", Value::List(l)) => v.dep = (*l).clone(),
                ("_name_map_file", Value::Map(m)) => {
                    v.name_map = m
                        .iter()
                        .map(|(a, b)| (a.to_string(), b.to_string()))
                        .collect();
                }
                ("_short_name_map_file", Value::Map(m)) => {
                    v.short_name_map = m
                        .iter()
                        .map(|(a, b)| (a.to_string(), b.to_string()))
                        .collect();
                }
                (_, Value::Str(s)) => {
                    v.params.insert_with_origin(k.to_string(), s.to_string(), o);
                }
                _ => {}
            }
        }
        v.name = v.params.get("name").unwrap_or("").to_string();
        v.shortname = v.params.get("shortname").unwrap_or("").to_string();
        let mut json = Vec::new();
        self.write_json(&mut json);
        v.json = String::from_utf8_lossy(&json).trim_end().to_string();
        v
    }
}

/// An owned variant.
#[derive(Debug, Clone, Default)]
pub struct Variant {
    /// Full name.
    pub name: String,
    /// Short name.
    pub shortname: String,
    /// `dep`: prefixes of the names this variant depends on.
    pub dep: Vec<String>,
    /// `_name_map_file`: file basename → the part of the name defined there.
    pub name_map: Vec<(String, String)>,
    /// `_short_name_map_file`.
    pub short_name_map: Vec<(String, String)>,
    /// Every string parameter (including `name` and `shortname`), with origins.
    pub params: Params,
    /// The reference JSON dump line of this variant.
    pub json: String,
}
