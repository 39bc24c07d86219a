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

use std::collections::HashMap;
use std::sync::Arc;

use crate::error::{Error, ErrorKind, Location};
use crate::filter::{CtxLabel, LabelSet};
use crate::intern::{is_reserved, KeyId, Sym, K_DEP, K_NAME, K_NAME_MAP, K_SHORTNAME, K_SHORT_MAP};
use crate::lexer::OpKind;
use crate::pynum::compare_sizes;
use crate::tail::Tail;
use crate::tree::{CondId, FilterId, Item, NodeId, OpData, OpId, Pos};
use crate::value::{py_str, Value};
use crate::Config;

/// A tuple key `(general, s1, …, sn)` created by `suffix`.
#[derive(Debug, Clone)]
pub(crate) struct TupleKey {
    pub general: Sym,
    /// All parts joined without separator (what regex operators and `del` see).
    pub joined: Arc<str>,
    /// `general + sn + … + s1`: the flattened name when suffixes must be kept.
    pub suffixed: Arc<str>,
}

#[derive(Debug, Clone)]
struct Slot {
    val: Option<Value>,
    seq: u64,
    pos: Pos,
}

/// The state a variant's dict is built in.
pub(crate) struct Work {
    slots: Vec<Slot>,
    /// Insertion log `(key, seq)`: a key is at its log position while its slot has that seq.
    order: Vec<(KeyId, u64)>,
    undo: Vec<(KeyId, Slot)>,
    seq: u64,
    /// Number of present tuple keys.
    tuples: usize,
    pub(crate) tuple_keys: Vec<TupleKey>,
    tuple_index: HashMap<(KeyId, Sym), KeyId>,
    base: usize,
    /// Ops applied so far, with the (undo, order, file-map) lengths before each.
    applied: Vec<(OpId, usize, usize, usize)>,
    /// The file-map statements applied, in order. The map keys' slots hold a marker (for
    /// their place in the dict and their origin); their values are built from these.
    filemaps: Vec<OpId>,
    /// Regex match results per (op, key), computed on first use.
    regex_cache: HashMap<(OpId, KeyId), bool>,
}

const NO_POS: Pos = Pos {
    file: u32::MAX,
    line: 0,
};

impl Work {
    pub(crate) fn new(nsyms: usize) -> Work {
        Work {
            slots: vec![
                Slot {
                    val: None,
                    seq: 0,
                    pos: NO_POS
                };
                nsyms
            ],
            order: Vec::new(),
            undo: Vec::new(),
            seq: 10,
            tuples: 0,
            tuple_keys: Vec::new(),
            tuple_index: HashMap::new(),
            base: nsyms,
            applied: Vec::new(),
            filemaps: Vec::new(),
            regex_cache: HashMap::new(),
        }
    }

    #[inline]
    pub(crate) fn get(&self, k: KeyId) -> Option<&Value> {
        self.slots.get(k as usize).and_then(|s| s.val.as_ref())
    }

    pub(crate) fn pos(&self, k: KeyId) -> Pos {
        self.slots[k as usize].pos
    }

    fn is_tuple(&self, k: KeyId) -> bool {
        k as usize >= self.base
    }

    pub(crate) fn tuple(&self, k: KeyId) -> Option<&TupleKey> {
        (k as usize)
            .checked_sub(self.base)
            .and_then(|i| self.tuple_keys.get(i))
    }

    /// Set a key, logging the old slot so it can be rolled back. Existing keys keep their place.
    fn set(&mut self, k: KeyId, v: Value, pos: Pos) {
        let i = k as usize;
        let old = self.slots[i].clone();
        let present = old.val.is_some();
        self.undo.push((k, old));
        let slot = &mut self.slots[i];
        slot.val = Some(v);
        slot.pos = pos;
        if !present {
            self.seq += 1;
            slot.seq = self.seq;
            self.order.push((k, self.seq));
            if i >= self.base {
                self.tuples += 1;
            }
        }
    }

    fn remove(&mut self, k: KeyId) -> Option<Value> {
        let i = k as usize;
        let old = self.slots[i].clone();
        let v = old.val.clone()?;
        self.undo.push((k, old));
        self.slots[i].val = None;
        if i >= self.base {
            self.tuples -= 1;
        }
        Some(v)
    }

    /// Header keys are rewritten for every variant and never rolled back.
    fn set_header(&mut self, k: KeyId, v: Value) {
        let slot = &mut self.slots[k as usize];
        slot.val = Some(v);
        slot.seq = k as u64;
    }

    fn rollback(&mut self, undo_len: usize, order_len: usize, maps_len: usize) {
        self.filemaps.truncate(maps_len);
        while self.undo.len() > undo_len {
            let Some((k, old)) = self.undo.pop() else {
                break;
            };
            let i = k as usize;
            let was = self.slots[i].val.is_some();
            let will = old.val.is_some();
            if i >= self.base {
                if was && !will {
                    self.tuples -= 1;
                } else if !was && will {
                    self.tuples += 1;
                }
            }
            self.slots[i] = old;
        }
        self.order.truncate(order_len);
    }

    /// Present keys in dict order (header keys first).
    pub(crate) fn keys_in_order(&self) -> Vec<KeyId> {
        let mut out = Vec::with_capacity(self.order.len() + 3);
        for k in [K_NAME, K_DEP, K_SHORTNAME] {
            out.push(k);
        }
        for &(k, seq) in &self.order {
            let s = &self.slots[k as usize];
            if s.val.is_some() && s.seq == seq {
                out.push(k);
            }
        }
        out
    }

    fn tuple_key(&mut self, parent: KeyId, suffix: Sym, general: Sym, cfg: &Config) -> KeyId {
        if let Some(&k) = self.tuple_index.get(&(parent, suffix)) {
            return k;
        }
        let sfx = cfg.syms.resolve(suffix);
        let (joined, suffixed) = match self.tuple(parent) {
            Some(t) => {
                let tail = &t.suffixed[cfg.syms.resolve(t.general).len()..];
                (
                    format!("{}{sfx}", t.joined),
                    format!("{}{sfx}{tail}", cfg.syms.resolve(t.general)),
                )
            }
            None => {
                let g = cfg.syms.resolve(parent);
                (format!("{g}{sfx}"), format!("{g}{sfx}"))
            }
        };
        let k = KeyId::try_from(self.base + self.tuple_keys.len()).unwrap_or(KeyId::MAX);
        self.tuple_keys.push(TupleKey {
            general,
            joined: Arc::from(joined.as_str()),
            suffixed: Arc::from(suffixed.as_str()),
        });
        self.tuple_index.insert((parent, suffix), k);
        self.slots.push(Slot {
            val: None,
            seq: 0,
            pos: NO_POS,
        });
        k
    }

    /// Text a regex operator or `del` matches a key against.
    fn match_text<'a>(&'a self, k: KeyId, cfg: &'a Config) -> &'a str {
        match self.tuple(k) {
            Some(t) => &t.joined,
            None => cfg.syms.resolve(k),
        }
    }

    pub(crate) fn general(&self, k: KeyId) -> Sym {
        self.tuple(k).map_or(k, |t| t.general)
    }
}

/// One output entry after suffix flattening: name, value, origin.
pub(crate) type FlatEntry = (Arc<str>, Value, Pos);

/// Flatten suffix tuple keys (the reference's `_drop_suffixes`), in dict order.
pub(crate) fn flatten(
    entries: &[(KeyId, Value, Pos)],
    work: &Work,
    cfg: &Config,
    keep_dups: bool,
) -> Vec<FlatEntry> {
    let name_of = |k: KeyId| -> Arc<str> {
        match work.tuple(k) {
            Some(t) => t.suffixed.clone(),
            None => cfg.syms.resolve(k).clone(),
        }
    };
    let mut out: Vec<FlatEntry> = Vec::with_capacity(entries.len());
    let mut index: HashMap<Arc<str>, usize> = HashMap::new();
    let mut removed = vec![false; 0];
    let put = |out: &mut Vec<FlatEntry>,
               index: &mut HashMap<Arc<str>, usize>,
               removed: &mut Vec<bool>,
               name: Arc<str>,
               v: Value,
               p: Pos| {
        match index.get(&name) {
            Some(&i) if !removed[i] => out[i] = (name, v, p),
            _ => {
                index.insert(name.clone(), out.len());
                out.push((name, v, p));
                removed.push(false);
            }
        }
    };
    // Start from a copy: plain keys stay, tuple keys are renamed (moved to the end) in order.
    let mut plain_val: HashMap<Sym, &Value> = HashMap::new();
    for (k, v, p) in entries {
        if !work.is_tuple(*k) {
            plain_val.insert(*k, v);
            put(
                &mut out,
                &mut index,
                &mut removed,
                name_of(*k),
                v.clone(),
                *p,
            );
        } else {
            // placeholder position like the copy's original slot
            put(
                &mut out,
                &mut index,
                &mut removed,
                Arc::from(format!("\u{0}tuple{k}").as_str()),
                v.clone(),
                *p,
            );
        }
    }
    for (k, v, p) in entries {
        let Some(t) = work.tuple(*k) else { continue };
        let placeholder: Arc<str> = Arc::from(format!("\u{0}tuple{k}").as_str());
        let Some(&slot) = index.get(&placeholder) else {
            continue;
        };
        removed[slot] = true;
        index.remove(&placeholder);
        let g = t.general;
        let new_name = if keep_dups {
            t.suffixed.clone()
        } else {
            if plain_val.get(&g).is_some_and(|gv| *gv == v) {
                continue;
            }
            let all_same = entries
                .iter()
                .all(|(k2, v2, _)| work.general(*k2) != g || v2 == v);
            if all_same {
                cfg.syms.resolve(g).clone()
            } else {
                t.suffixed.clone()
            }
        };
        put(&mut out, &mut index, &mut removed, new_name, v.clone(), *p);
    }
    out.into_iter()
        .enumerate()
        .filter(|(i, _)| !removed[*i])
        .map(|(_, e)| e)
        .collect()
}

/// The walker: enumerates variants of a [`Config`] and builds their dicts.
pub(crate) struct Walker<'c> {
    pub(crate) cfg: &'c Config,
    /// The operations (`cfg.ops`, or a thread's private copy of them: see
    /// [`Config::private_ops`]).
    pub(crate) ops: &'c [crate::tree::Op],
    pub(crate) work: Work,
    ctx: Vec<CtxLabel>,
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
    over_keys: Vec<KeyId>,
    /// Keys the postfix pass created (they come last in the dict).
    post_new: Vec<KeyId>,
    dep_cache: Option<Value>,
    /// Reused pending-item buffers (one per depth of the walk).
    pending_pool: Vec<Vec<Item>>,
    /// Gather only: at a leaf, collect what the dict is built from (header values in
    /// `name_buf`, `short_buf`, `dep_cache`; the operations in `ops_buf` and `seg_bounds`) and
    /// hand the walker to the sink without building (the parallel engine's producer).
    pub(crate) gather_only: bool,
    /// What the file-map keys' slots hold in the working dict (see `Work::filemaps`).
    map_marker: Value,
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

impl<'c> Walker<'c> {
    pub(crate) fn new(cfg: &'c Config) -> Walker<'c> {
        Self::with_ops(cfg, &cfg.ops)
    }

    /// A walker that reads operations from `ops` (a copy of `cfg.ops`).
    pub(crate) fn with_ops(cfg: &'c Config, ops: &'c [crate::tree::Op]) -> Walker<'c> {
        Walker {
            cfg,
            ops,
            work: Work::new(cfg.syms.len()),
            ctx: Vec::new(),
            path: Vec::new(),
            short: Vec::new(),
            deps: Vec::new(),
            truth: vec![false; cfg.conds.len()],
            ops_buf: Vec::new(),
            name_buf: String::new(),
            short_buf: String::new(),
            prev_ops: Vec::new(),
            seg_bounds: Vec::new(),
            tail: Tail::default(),
            over: vec![None; cfg.syms.len()],
            over_keys: Vec::new(),
            post_new: Vec::new(),
            dep_cache: None,
            pending_pool: Vec::new(),
            gather_only: false,
            map_marker: Value::Map(Arc::new(Vec::new())),
        }
    }

    pub(crate) fn run(&mut self, sink: &mut dyn Sink) -> Result<(), Error> {
        let root = self.cfg.root;
        let _ = self.visit(root, &[], None, sink)?;
        Ok(())
    }

    fn filter(&self, f: FilterId) -> &crate::filter::Filter {
        &self.cfg.filters[f as usize]
    }

    /// Process items against the current context; pending ones go to `out`.
    /// Evaluate `match` (or `might_match` when `might`) of a filter; a filter word with an
    /// empty chain (`only a .b`) fails when evaluation reaches it, as the reference crashes
    /// (`IndexError`) there.
    fn eval_filter(
        &self,
        f: FilterId,
        might: bool,
        below: &crate::LabelBits,
    ) -> Result<bool, Error> {
        let filter = self.filter(f);
        let r = if might {
            filter.might_match_checked(&self.ctx, &SetLabels(below, &self.cfg.label_index))
        } else {
            filter.matches_checked(&self.ctx)
        };
        r.map_err(|()| {
            let msg = "filter has a word that starts with a single `.` (e.g. `only a .b`); the reference fails with IndexError when it evaluates it".to_string();
            match self.cfg.filter_pos.get(f as usize).copied().flatten() {
                Some(p) => self.cfg.error_at(ErrorKind::Syntax, msg, p),
                None => Error::new(ErrorKind::Syntax, msg),
            }
        })
    }

    /// Process items against the current context (the reference's `process_content`, in its
    /// order of evaluation); pending ones go to `out`.
    fn process(
        &mut self,
        items: &[Item],
        below: &crate::LabelBits,
        out: &mut Vec<Item>,
    ) -> Result<Outcome, Error> {
        // With nothing below (a leaf), "might still match" is "matches": decide with one
        // evaluation per filter.
        if below.is_empty() {
            return self.process_leaf(items);
        }
        for &it in items {
            match it {
                Item::Op(_) | Item::Join(_) => {}
                Item::Only(f) => {
                    // requires_action = not might_match; is_irrelevant = match
                    if !self.eval_filter(f, true, below)? {
                        return Ok(Outcome::Pruned);
                    }
                    if !self.eval_filter(f, false, below)? {
                        out.push(it);
                    }
                }
                Item::No(f) => {
                    // requires_action = match; is_irrelevant = not might_match
                    if self.eval_filter(f, false, below)? {
                        return Ok(Outcome::Pruned);
                    }
                    if self.eval_filter(f, true, below)? {
                        out.push(it);
                    }
                }
                Item::Cond(c) => {
                    let cond = &self.cfg.conds[c as usize];
                    let f = cond.filter;
                    let truth = if cond.neg {
                        if !self.eval_filter(f, true, below)? {
                            Some(true)
                        } else if self.eval_filter(f, false, below)? {
                            Some(false)
                        } else {
                            None
                        }
                    } else if self.eval_filter(f, false, below)? {
                        Some(true)
                    } else if !self.eval_filter(f, true, below)? {
                        Some(false)
                    } else {
                        None
                    };
                    match truth {
                        Some(t) => {
                            self.truth[c as usize] = t;
                            if t {
                                let body = &self.cfg.conds[c as usize].body;
                                if let Outcome::Pruned = self.process(body, below, out)? {
                                    return Ok(Outcome::Pruned);
                                }
                            }
                        }
                        None => out.push(it),
                    }
                }
            }
        }
        Ok(Outcome::Ok)
    }

    /// [`Walker::process`] with no labels below, where every filter is decided by one
    /// evaluation and nothing stays pending.
    fn process_leaf(&mut self, items: &[Item]) -> Result<Outcome, Error> {
        let none = crate::LabelBits::default();
        for &it in items {
            match it {
                Item::Op(_) | Item::Join(_) => {}
                Item::Only(f) => {
                    if !self.eval_filter(f, false, &none)? {
                        return Ok(Outcome::Pruned);
                    }
                }
                Item::No(f) => {
                    if self.eval_filter(f, false, &none)? {
                        return Ok(Outcome::Pruned);
                    }
                }
                Item::Cond(c) => {
                    let cond = &self.cfg.conds[c as usize];
                    let t = self.eval_filter(cond.filter, false, &none)? != cond.neg;
                    self.truth[c as usize] = t;
                    if t {
                        let body = &self.cfg.conds[c as usize].body;
                        if let Outcome::Pruned = self.process_leaf(body)? {
                            return Ok(Outcome::Pruned);
                        }
                    }
                }
            }
        }
        Ok(Outcome::Ok)
    }

    /// Visit a node: returns the number of variants produced, or None when the sink stopped.
    fn visit(
        &mut self,
        node_id: NodeId,
        pending: &[Item],
        extra: Option<&[FilterId]>,
        sink: &mut dyn Sink,
    ) -> Result<Option<usize>, Error> {
        let cfg = self.cfg;
        let node = &cfg.nodes[node_id as usize];
        if extra.is_none() && !cfg.joins[node_id as usize].is_empty() {
            // the reference rebinds and extends `node.content` lists in place; model them
            let mut lists = vec![Vec::new()];
            let words = cfg.joins[node_id as usize].clone();
            return self.multiply_join(node_id, pending, &words, &mut lists, 0, sink);
        }
        // deps (prefix strings of the context before this node)
        let deps_len = self.deps.len();
        if !node.deps.words.is_empty() {
            for word in &node.deps.words {
                for chain in word {
                    let mut s = String::new();
                    for l in &self.ctx {
                        s.push_str(cfg.syms.resolve(l.long));
                        s.push('.');
                    }
                    for l in chain {
                        s.push_str(cfg.syms.resolve(l.sym));
                        s.push('.');
                    }
                    s.pop();
                    self.deps.push(Arc::from(s.as_str()));
                }
            }
        }
        let ctx_len = self.ctx.len();
        let (name_len, short_buf_len) = (self.name_buf.len(), self.short_buf.len());
        self.ctx.extend_from_slice(&node.name);
        self.path.push(node_id);
        let short_len = self.short.len();
        if node.append_to_shortname {
            self.short.extend(node.name.iter().map(|l| l.name));
        }
        let below = &cfg.desc[node_id as usize];
        let mut new_pending = self.pending_pool.pop().unwrap_or_default();
        new_pending.clear();
        let processed = (|| -> Result<bool, Error> {
            if let Outcome::Pruned = self.process(&node.content, below, &mut new_pending)? {
                return Ok(false);
            }
            if let Some(extra) = extra {
                let items: Vec<Item> = extra.iter().map(|&f| Item::Only(f)).collect();
                if let Outcome::Pruned = self.process(&items, below, &mut new_pending)? {
                    return Ok(false);
                }
            }
            Ok(matches!(
                self.process(pending, below, &mut new_pending)?,
                Outcome::Ok
            ))
        })();
        let ok = match processed {
            Ok(ok) => ok,
            Err(e) => {
                self.path.pop();
                self.ctx.truncate(ctx_len);
                self.short.truncate(short_len);
                self.deps.truncate(deps_len);
                self.name_buf.truncate(name_len);
                self.short_buf.truncate(short_buf_len);
                return Err(e);
            }
        };
        let mut result = Some(0usize);
        if ok {
            // the name texts, for the variants below (not built for pruned nodes)
            for (i, l) in node.name.iter().enumerate() {
                if ctx_len + i > 0 {
                    self.name_buf.push('.');
                }
                self.name_buf.push_str(cfg.syms.resolve(l.long));
            }
            if node.append_to_shortname {
                for (i, l) in node.name.iter().enumerate() {
                    if short_len + i > 0 {
                        self.short_buf.push('.');
                    }
                    self.short_buf.push_str(cfg.syms.resolve(l.name));
                }
            }
            if node.children.is_empty() {
                result = self.leaf(sink)?;
            } else {
                let mut count = 0usize;
                for &child in &node.children {
                    match self.visit(child, &new_pending, None, sink)? {
                        None => {
                            result = None;
                            break;
                        }
                        Some(n) => count += n,
                    }
                    if cfg.options.defaults
                        && !node.expanded
                        && cfg.nodes[child as usize].default
                        && count > 0
                    {
                        break;
                    }
                }
                if result.is_some() {
                    result = Some(count);
                }
            }
        }
        self.pending_pool.push(new_pending);
        self.short.truncate(short_len);
        self.path.pop();
        self.ctx.truncate(ctx_len);
        self.deps.truncate(deps_len);
        self.name_buf.truncate(name_len);
        self.short_buf.truncate(short_buf_len);
        Ok(result)
    }

    /// The reference's `multiply_join`: every word of the node's joins becomes an `only`, and
    /// the dicts selected by each are combined. `lists` models the Python lists bound to
    /// `node.content` (`lists[bind]`), including the in-place extension that makes inner
    /// words' filters leak into later outer iterations, exactly as in the reference.
    fn multiply_join(
        &mut self,
        node_id: NodeId,
        pending: &[Item],
        words: &[FilterId],
        lists: &mut Vec<Vec<FilterId>>,
        bind: usize,
        sink: &mut dyn Sink,
    ) -> Result<Option<usize>, Error> {
        struct Collect<'a> {
            out: &'a mut Vec<(OwnedDict, String, String)>,
        }
        impl Sink for Collect<'_> {
            fn variant(&mut self, v: &VariantRef<'_, '_>) -> Result<Flow, Error> {
                let d = v.owned();
                let name = v.str_of(K_NAME);
                let short = v.str_of(K_SHORTNAME);
                self.out.push((d, name, short));
                Ok(Flow::Continue)
            }
        }
        // content_orig = node.content[:]; node.content += [only]
        let orig = lists.len();
        lists.push(lists[bind].clone());
        lists[bind].push(words[0]);
        let current = lists[bind].clone();
        if words.len() == 1 {
            return self.visit(node_id, pending, Some(&current), sink);
        }
        let mut firsts = Vec::new();
        self.visit(
            node_id,
            pending,
            Some(&current),
            &mut Collect { out: &mut firsts },
        )?;
        let mut count = 0usize;
        for (d1, n1, s1) in firsts {
            // node.content = content_orig
            let mut rest = Vec::new();
            self.multiply_join(
                node_id,
                pending,
                &words[1..],
                lists,
                orig,
                &mut Collect { out: &mut rest },
            )?;
            for (d2, n2, s2) in rest {
                let mut d = d1.clone();
                for (k, v, p) in d2.entries {
                    d.set(k, v, p);
                }
                let name = mk_name(&n1, &n2).map_err(|m| self.join_error(node_id, m))?;
                let short = mk_name(&s1, &s2).map_err(|m| self.join_error(node_id, m))?;
                d.set(K_NAME, Value::from(name.as_str()), NO_POS);
                d.set(K_SHORTNAME, Value::from(short.as_str()), NO_POS);
                count += 1;
                if let Flow::Stop = sink.variant(&VariantRef::Owned(self, &d))? {
                    return Ok(None);
                }
            }
        }
        Ok(Some(count))
    }

    fn join_error(&self, node_id: NodeId, m: String) -> Error {
        let node = &self.cfg.nodes[node_id as usize];
        // point at the first `join` of the node
        for item in &node.content {
            if let Item::Join(_) = item {
                break;
            }
        }
        let pos = node.content.iter().find_map(|i| match i {
            Item::Op(o) => Some(self.ops[*o as usize].pos),
            _ => None,
        });
        match pos {
            Some(p) => self.cfg.error_at(ErrorKind::Value, m, p),
            None => Error::new(ErrorKind::Value, m),
        }
    }

    fn push_ops(&mut self, items: &[Item]) {
        for &it in items {
            match it {
                Item::Op(o) => self.ops_buf.push(o),
                Item::Cond(c) if self.truth[c as usize] => {
                    let body = &self.cfg.conds[c as usize].body;
                    self.push_ops(body);
                }
                _ => {}
            }
        }
    }

    /// Decide which suffix of the operation list is the compiled tail, bring the tail's
    /// layers in line with it and return where the exactly-applied part ends.
    ///
    /// The tail must hold the node bodies this variant shares with the previous one (made
    /// only of compilable operations), except small bodies near the changing end, which are
    /// cheaper to apply exactly than to re-layer when they change; it may hold more when the
    /// layers already there still match.
    fn choose_tail(&mut self) -> usize {
        let cfg = self.cfg;
        let ops = &self.ops_buf;
        let n = ops.len();
        let mut q = 0;
        let max = n.min(self.prev_ops.len());
        while q < max
            && ops[n - 1 - q] == self.prev_ops[self.prev_ops.len() - 1 - q]
            && cfg.compilable[ops[n - 1 - q] as usize]
        {
            q += 1;
        }
        let bounds = &self.seg_bounds;
        let mut split = n - q;
        if q > 0 {
            split = bounds.iter().copied().find(|&b| b >= split).unwrap_or(n);
            let all = self.ops;
            let weight = |o: OpId| match &all[o as usize].data {
                OpData::Batch { entries } => entries.len(),
                _ => 1,
            };
            let mut budget = 8usize;
            while let Some(&next) = bounds.iter().find(|&&b| b > split) {
                let w: usize = ops[split..next].iter().map(|&o| weight(o)).sum();
                if next >= n || w > budget {
                    break;
                }
                budget -= w;
                split = next;
            }
        }
        // non-empty node bodies, root first; those at or after `split` must be in the tail
        let seg = |i: usize| &ops[bounds[i]..bounds.get(i + 1).copied().unwrap_or(n)];
        let need = (0..bounds.len())
            .filter(|&i| bounds[i] >= split && !seg(i).is_empty())
            .count();
        let segments = (0..bounds.len())
            .rev()
            .map(seg)
            .filter(|s| !s.is_empty())
            .take_while(|s| s.iter().all(|&o| cfg.compilable[o as usize]));
        self.tail.sync(segments, need, q, self.ops, cfg.syms.len());
        n - self.tail.len()
    }

    fn leaf(&mut self, sink: &mut dyn Sink) -> Result<Option<usize>, Error> {
        self.gather();
        if self.gather_only {
            return match sink.variant(&VariantRef::Work(self))? {
                Flow::Continue => Ok(Some(1)),
                Flow::Stop => Ok(None),
            };
        }
        self.build(sink)
    }

    /// The current leaf's name and short name.
    pub(crate) fn header_texts(&self) -> (&str, &str) {
        (&self.name_buf, &self.short_buf)
    }

    /// The dep list of the current leaf (a shared value, rebuilt only when it changes).
    pub(crate) fn dep_value(&self) -> Option<&Value> {
        self.dep_cache.as_ref()
    }

    /// Collect what the current leaf's dict is built from: the header values and the
    /// operations that apply, in file order, one segment per path node (deepest first).
    fn gather(&mut self) {
        let cfg = self.cfg;
        if !self.gather_only {
            let name = Value::from(self.name_buf.as_str());
            self.work.set_header(K_NAME, name);
            self.work
                .set_header(K_SHORTNAME, Value::from(self.short_buf.as_str()));
        }
        let dep_same = matches!(&self.dep_cache, Some(Value::List(l)) if l.len() == self.deps.len() && l.iter().zip(&self.deps).all(|(a, b)| **a == **b));
        if !dep_same {
            self.dep_cache = Some(Value::List(Arc::new(
                self.deps.iter().map(|s| s.to_string()).collect(),
            )));
        }
        if let (Some(d), false) = (&self.dep_cache, self.gather_only) {
            self.work.set_header(K_DEP, d.clone());
        }
        self.prev_ops.clear();
        std::mem::swap(&mut self.prev_ops, &mut self.ops_buf);
        self.seg_bounds.clear();
        for i in (0..self.path.len()).rev() {
            let n = self.path[i];
            self.seg_bounds.push(self.ops_buf.len());
            match &cfg.static_ops[n as usize] {
                Some(ops) => self.ops_buf.extend_from_slice(ops),
                None => {
                    let content = &cfg.nodes[n as usize].content;
                    self.push_ops(content);
                }
            }
        }
    }

    /// The operations gathered for the current leaf and where each path node's segment
    /// starts (see [`Walker::gather`]).
    pub(crate) fn gathered_ops(&self) -> (&[OpId], &[usize]) {
        (&self.ops_buf, &self.seg_bounds)
    }

    /// Build a variant from what a gathering walker collected, and hand it to `sink`.
    pub(crate) fn build_gathered(
        &mut self,
        name: &str,
        short: &str,
        dep: Option<&Value>,
        ops: &[OpId],
        bounds: &[usize],
        sink: &mut dyn Sink,
    ) -> Result<Option<usize>, Error> {
        self.work.set_header(K_NAME, Value::from(name));
        self.work.set_header(K_SHORTNAME, Value::from(short));
        if let Some(d) = dep {
            // a private copy, made when the list changes: no reference count shared with
            // the gathering thread
            if self.dep_cache.as_ref() != Some(d) {
                self.dep_cache = Some(match d {
                    Value::List(l) => Value::List(Arc::new((**l).clone())),
                    other => other.clone(),
                });
            }
            if let Some(d) = &self.dep_cache {
                self.work.set_header(K_DEP, d.clone());
            }
        }
        self.prev_ops.clear();
        std::mem::swap(&mut self.prev_ops, &mut self.ops_buf);
        self.ops_buf.extend_from_slice(ops);
        self.seg_bounds.clear();
        self.seg_bounds.extend_from_slice(bounds);
        self.build(sink)
    }

    /// Build the gathered leaf's dict and hand it to `sink`.
    fn build(&mut self, sink: &mut dyn Sink) -> Result<Option<usize>, Error> {
        let cfg = self.cfg;
        let split = self.choose_tail();
        let ops = &self.ops_buf;
        // the rest is applied exactly, sharing the common prefix with what is applied
        let mut lcp = 0;
        let applied = &self.work.applied;
        let max = applied.len().min(split);
        while lcp < max && applied[lcp].0 == ops[lcp] && !cfg.reads_header[ops[lcp] as usize] {
            lcp += 1;
        }
        if let Some(&(_, u, o, m)) = self.work.applied.get(lcp) {
            self.work.rollback(u, o, m);
            self.work.applied.truncate(lcp);
        }
        for i in lcp..split {
            let op = self.ops_buf[i];
            self.work.applied.push((
                op,
                self.work.undo.len(),
                self.work.order.len(),
                self.work.filemaps.len(),
            ));
            if let Err(e) = self.apply(op) {
                // leave the dict consistent for a caller that continues after an error
                self.work.applied.pop();
                return Err(e);
            }
        }
        // per-variant results of the tail
        for k in self.over_keys.drain(..) {
            self.over[k as usize] = None;
        }
        // (an affine act on a key the exact part did not set gives the act's fixed value)
        for (k, a) in self.tail.affine_acts() {
            if let Some(before) = self.work.get(k) {
                let v = a.apply(before.as_str());
                self.over[k as usize] = Some((v, a.pos));
                self.over_keys.push(k);
            }
        }
        for (d, key) in [(0usize, K_NAME_MAP), (1, K_SHORT_MAP)] {
            let exact = self.exact_map(key);
            let vp = match self.tail.apply_map(d, exact) {
                Ok(vp) => vp,
                Err(Some(m)) => (Value::Map(Arc::new(m)), self.work.pos(key)),
                Err(None) => continue,
            };
            self.over[key as usize] = Some(vp);
            self.over_keys.push(key);
        }
        self.postfix()?;
        match sink.variant(&VariantRef::Work(self))? {
            Flow::Continue => Ok(Some(1)),
            Flow::Stop => Ok(None),
        }
    }

    pub(crate) fn final_pos_of(&self, k: KeyId) -> Pos {
        self.final_pos(k)
    }

    pub(crate) fn work_has_tuples(&self) -> bool {
        self.work.tuples > 0
    }

    /// The final value of a key: per-variant results, then the tail, then the working dict.
    #[inline]
    pub(crate) fn final_get(&self, k: KeyId) -> Option<&Value> {
        if let Some(Some((v, _))) = self.over.get(k as usize) {
            return Some(v);
        }
        if let Some(a) = self.tail.act(k) {
            // affine acts on keys the exact part set are in the overlay
            if a.affine.is_none() || self.work.get(k).is_none() {
                return Some(&a.absent);
            }
        }
        self.work.get(k)
    }

    fn final_pos(&self, k: KeyId) -> Pos {
        if let Some(Some((_, p))) = self.over.get(k as usize) {
            return *p;
        }
        if let Some(a) = self.tail.act(k) {
            return a.pos;
        }
        self.work.pos(k)
    }

    /// Keys of the final dict in insertion order.
    pub(crate) fn final_keys_in_order(&self) -> Vec<KeyId> {
        let mut keys = self.work.keys_in_order();
        for &k in self.tail.order(self.ops).iter() {
            if self.work.get(k).is_none() {
                keys.push(k);
            }
        }
        keys.extend_from_slice(&self.post_new);
        keys
    }

    /// Entries of the final dict in order (tuple keys unflattened).
    pub(crate) fn final_entries(&self) -> Vec<(KeyId, Value, Pos)> {
        self.final_keys_in_order()
            .into_iter()
            .filter_map(|k| self.final_get(k).map(|v| (k, v.clone(), self.final_pos(k))))
            .collect()
    }
}

/// The reference's `mk_name` for joined dicts.
fn mk_name(n1: &str, n2: &str) -> Result<String, String> {
    let a: Vec<char> = n1.chars().collect();
    let b: Vec<char> = n2.chars().collect();
    let Some(first_diff) = a.iter().zip(b.iter()).position(|(x, y)| x != y) else {
        return Err(format!(
            "cannot join variants `{n1}` and `{n2}`: one name is a prefix of the other (the reference fails with `ValueError: 0 is not in list`)"
        ));
    };
    let common: String = a[..first_diff].iter().collect();
    let cp = match common.rfind('.') {
        Some(i) => common[..i].to_string(),
        None => String::new(),
    };
    // The reference strips `^cp` as a regex; escape-free for plain names, emulate it.
    let strip = |n: &str| -> String {
        match fancy_regex::Regex::new(&format!("^{cp}")) {
            Ok(re) => re.replacen(n, 1, "").into_owned(),
            Err(_) => n.strip_prefix(cp.as_str()).unwrap_or(n).to_string(),
        }
    };
    let p1 = strip(n1);
    let p2 = strip(n2);
    Ok(if cp.is_empty() {
        format!("{p1}.{p2}")
    } else {
        format!("{cp}{p1}{p2}")
    })
}

impl Walker<'_> {
    pub(crate) fn truth_of(&self, c: CondId) -> bool {
        self.truth[c as usize]
    }

    pub(crate) fn path_nodes(&self) -> &[NodeId] {
        &self.path
    }

    /// The operations applied for the current variant, in order.
    pub(crate) fn ops_applied(&self) -> &[OpId] {
        &self.ops_buf
    }

    pub(crate) fn copy_header_from(&mut self, other: &Walker<'_>) {
        for k in [K_NAME, K_SHORTNAME, K_DEP] {
            if let Some(v) = other.work.get(k) {
                self.work.set_header(k, v.clone());
            }
        }
    }

    /// Apply one operation (used by `explain`'s replay).
    pub(crate) fn apply_traced(&mut self, op: OpId) -> Result<(), Error> {
        self.apply(op)
    }

    fn op_error(&self, op: OpId, msg: String) -> Error {
        let pos = self.ops[op as usize].pos;
        self.cfg.error_at(ErrorKind::Value, msg, pos)
    }

    /// `${key}` substitution against the (flattened) current dict.
    fn substitute(&self, value: &str) -> String {
        if !value.contains('$') {
            return value.to_string();
        }
        let flat: Option<HashMap<Arc<str>, Value>> = if self.work.tuples > 0 {
            let entries = self.current_entries();
            let f = flatten(&entries, &self.work, self.cfg, self.cfg.options.keep_dups);
            Some(f.into_iter().map(|(k, v, _)| (k, v)).collect())
        } else {
            None
        };
        let lookup = |key: &str| -> Option<Value> {
            match &flat {
                Some(m) => m.get(key).cloned(),
                None => self.cfg.syms.get(key).and_then(|k| self.work_value(k)),
            }
        };
        let mut out = String::with_capacity(value.len() + 16);
        let mut start = 0;
        while let Some(i) = value[start..].find("${").map(|i| i + start) {
            // `\$\{(.+?)\}`: at least one character, then the first `}`
            let body_start = i + 2;
            let Some(first) = value[body_start..].chars().next() else {
                break;
            };
            let search_from = body_start + first.len_utf8();
            let Some(j) = value[search_from..].find('}').map(|j| j + search_from) else {
                break;
            };
            let key = &value[body_start..j];
            match lookup(key) {
                Some(v) => {
                    out.push_str(&value[start..i]);
                    out.push_str(&py_str(&v));
                    start = j + 1;
                }
                None => break,
            }
        }
        out.push_str(&value[start..]);
        out
    }

    /// Present entries in dict order.
    pub(crate) fn current_entries(&self) -> Vec<(KeyId, Value, Pos)> {
        self.work
            .keys_in_order()
            .into_iter()
            .filter_map(|k| self.work_value(k).map(|v| (k, v, self.work.pos(k))))
            .collect()
    }

    /// A key's value in the working dict (the file maps built from their statements).
    pub(crate) fn work_value(&self, k: KeyId) -> Option<Value> {
        if k == K_NAME_MAP || k == K_SHORT_MAP {
            return self.exact_map(k).map(|m| Value::Map(Arc::new(m)));
        }
        self.work.get(k).cloned()
    }

    /// The file map `key` as the exactly-applied statements built it (`None`: absent).
    fn exact_map(&self, key: KeyId) -> Option<Vec<(Arc<str>, Arc<str>)>> {
        self.work.get(key)?;
        let short = key == K_SHORT_MAP;
        let mut out: Vec<(Arc<str>, Arc<str>)> = Vec::new();
        for &o in &self.work.filemaps {
            let OpData::FileMap {
                short: s,
                file,
                text,
            } = &self.ops[o as usize].data
            else {
                continue;
            };
            if *s != short {
                continue;
            }
            crate::tail::prefix_file(&mut out, file, text);
        }
        Some(out)
    }

    fn value_of(&self, op: OpId, value: &Arc<str>, subst: bool) -> Value {
        if subst {
            let _ = op;
            Value::from(self.substitute(value).as_str())
        } else {
            Value::Str(value.clone())
        }
    }

    fn regex_matches(&mut self, op: OpId, re: &crate::pyre::KeyRegex, k: KeyId) -> bool {
        if let Some(&m) = self.work.regex_cache.get(&(op, k)) {
            return m;
        }
        let m = re.is_match(self.work.match_text(k, self.cfg));
        self.work.regex_cache.insert((op, k), m);
        m
    }

    fn apply(&mut self, op_id: OpId) -> Result<(), Error> {
        let cfg = self.cfg;
        let op = &self.ops[op_id as usize];
        let pos = op.pos;
        match &op.data {
            OpData::Batch { entries } => {
                for (k, v, line) in entries {
                    self.work.set(
                        *k,
                        Value::Str(v.clone()),
                        Pos {
                            file: pos.file,
                            line: *line,
                        },
                    );
                }
            }
            OpData::Assign {
                kind,
                key,
                value,
                subst,
            } => {
                let k = *key;
                if is_reserved(k) {
                    return Ok(());
                }
                match kind {
                    OpKind::Set => {
                        let v = self.value_of(op_id, value, *subst);
                        self.work.set(k, v, pos);
                    }
                    OpKind::Append | OpKind::Prepend => {
                        let add = self.value_of(op_id, value, *subst);
                        let old = self.work.get(k).map(py_str).unwrap_or_default();
                        let add = py_str(&add);
                        let new = if *kind == OpKind::Append {
                            format!("{old}{add}")
                        } else {
                            format!("{add}{old}")
                        };
                        self.work.set(k, Value::from(new.as_str()), pos);
                    }
                    OpKind::LazySet if self.work.get(k).is_none() => {
                        let v = self.value_of(op_id, value, *subst);
                        self.work.set(k, v, pos);
                    }
                    _ => {}
                }
            }
            OpData::Regex {
                kind,
                re,
                value,
                subst,
                ..
            } => {
                let re = match re {
                    Ok(r) => r,
                    Err(m) => return Err(self.op_error(op_id, m.clone())),
                };
                let v = py_str(&self.value_of(op_id, value, *subst));
                let keys = self.work.keys_in_order();
                for k in keys {
                    if is_reserved(k) || !self.regex_matches(op_id, re, k) {
                        continue;
                    }
                    let new = match kind {
                        OpKind::RegexSet => v.clone(),
                        OpKind::RegexAppend => {
                            format!("{}{v}", self.work.get(k).map(py_str).unwrap_or_default())
                        }
                        _ => format!("{v}{}", self.work.get(k).map(py_str).unwrap_or_default()),
                    };
                    self.work.set(k, Value::from(new.as_str()), pos);
                }
            }
            OpData::Del { key } => {
                let keys = self.work.keys_in_order();
                for k in keys {
                    if !is_reserved(k) && self.work.match_text(k, cfg) == &**key {
                        self.work.remove(k);
                    }
                }
            }
            OpData::FileMap { short, .. } => {
                let dest = if *short { K_SHORT_MAP } else { K_NAME_MAP };
                self.work.filemaps.push(op_id);
                self.work.set(dest, self.map_marker.clone(), pos);
            }
            OpData::Suffix { suffix } => {
                let sfx = cfg.suffix_syms[op_id as usize];
                let keys = self.work.keys_in_order();
                let _ = suffix;
                for k in keys {
                    if is_reserved(k) {
                        continue;
                    }
                    let general = self.work.general(k);
                    let nk = self.work.tuple_key(k, sfx, general, cfg);
                    let p = self.work.pos(k);
                    if let Some(v) = self.work.remove(k) {
                        self.work.set(nk, v, p);
                    }
                }
            }
        }
        Ok(())
    }

    /// The `_max`/`_min`/`_fixed` pass, on the final dict; results go to the overlay.
    fn postfix(&mut self) -> Result<(), Error> {
        let cfg = self.cfg;
        self.post_new.clear();
        if !cfg.has_postfix {
            return Ok(());
        }
        let mut updates: Vec<(KeyId, Value, Pos)> = Vec::new();
        for k in self.final_keys_in_order() {
            if self.work.is_tuple(k) {
                continue;
            }
            let Some((base, kind)) = cfg.postfix_base[k as usize] else {
                continue;
            };
            let Some(v) = self.final_get(k).cloned() else {
                continue;
            };
            let p = self.final_pos(k);
            let take = match kind {
                2 => true,
                _ => match self.final_get(base) {
                    None => true,
                    Some(bv) => {
                        let (Value::Str(a), Value::Str(b)) = (bv, &v) else {
                            return Err(cfg.error_at(
                                ErrorKind::Value,
                                format!(
                                    "`{}` is not a string and cannot be compared with `{}`",
                                    cfg.syms.resolve(base),
                                    cfg.syms.resolve(k)
                                ),
                                p,
                            ));
                        };
                        let ord = compare_sizes(a, b).map_err(|m| {
                            cfg.error_at(
                                ErrorKind::Value,
                                format!(
                                    "cannot compare `{} = {a}` with `{} = {b}`: {m}",
                                    cfg.syms.resolve(base),
                                    cfg.syms.resolve(k)
                                ),
                                p,
                            )
                        })?;
                        if kind == 0 {
                            ord == std::cmp::Ordering::Greater
                        } else {
                            ord == std::cmp::Ordering::Less
                        }
                    }
                },
            };
            if take {
                match updates.iter_mut().find(|u| u.0 == base) {
                    Some(u) => {
                        u.1 = v;
                        u.2 = p;
                    }
                    None => updates.push((base, v, p)),
                }
            }
        }
        for (k, v, p) in updates {
            if self.final_get(k).is_none() {
                self.post_new.push(k);
            }
            self.over[k as usize] = Some((v, p));
            self.over_keys.push(k);
        }
        Ok(())
    }
}

impl<'w, 'c> VariantRef<'w, 'c> {
    pub(crate) fn walker(&self) -> &'w Walker<'c> {
        match self {
            VariantRef::Work(w) | VariantRef::Owned(w, _) => w,
        }
    }

    pub(crate) fn get(&self, k: KeyId) -> Option<&Value> {
        match self {
            VariantRef::Work(w) => w.final_get(k),
            VariantRef::Owned(_, d) => d.get(k),
        }
    }

    pub(crate) fn str_of(&self, k: KeyId) -> String {
        self.get(k).map(py_str).unwrap_or_default()
    }

    /// The raw dict (tuple keys unflattened), in order.
    pub(crate) fn owned(&self) -> OwnedDict {
        match self {
            VariantRef::Work(w) => OwnedDict {
                entries: w.final_entries(),
            },
            VariantRef::Owned(_, d) => (*d).clone(),
        }
    }

    fn has_tuples(&self) -> bool {
        match self {
            VariantRef::Work(w) => w.work.tuples > 0,
            VariantRef::Owned(w, d) => d.entries.iter().any(|e| w.work.is_tuple(e.0)),
        }
    }

    /// The final dict in order, suffixes flattened, as (name, value, origin).
    pub(crate) fn entries(&self) -> Vec<FlatEntry> {
        let w = self.walker();
        let raw = self.owned();
        if self.has_tuples() {
            flatten(&raw.entries, &w.work, w.cfg, w.cfg.options.keep_dups)
        } else {
            raw.entries
                .into_iter()
                .map(|(k, v, p)| (w.cfg.syms.resolve(k).clone(), v, p))
                .collect()
        }
    }

    /// Write the reference dump format: one JSON object, keys sorted, `", "`/`": "` separators.
    pub(crate) fn write_json(&self, out: &mut Vec<u8>) {
        let w = self.walker();
        out.push(b'{');
        let mut first = true;
        if let (VariantRef::Work(w), false) = (self, self.has_tuples()) {
            for (i, &k) in w.cfg.sorted_keys.iter().enumerate() {
                if let Some(v) = w.final_get(k) {
                    if !first {
                        out.extend_from_slice(b", ");
                    }
                    first = false;
                    out.extend_from_slice(&w.cfg.key_json[i]);
                    crate::value::json_value(out, v);
                }
            }
        } else {
            let mut entries = self.entries();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            for (k, v, _) in &entries {
                if !first {
                    out.extend_from_slice(b", ");
                }
                first = false;
                crate::value::json_str(out, k);
                out.extend_from_slice(b": ");
                crate::value::json_value(out, v);
            }
        }
        let _ = w;
        out.extend_from_slice(b"}\n");
    }

    /// A location for an origin.
    pub(crate) fn location(&self, p: Pos) -> Option<Location> {
        let cfg = self.walker().cfg;
        cfg.files.get(p.file as usize).map(|f| Location {
            file: f.clone(),
            line: Some(p.line),
            col: None,
        })
    }
}
