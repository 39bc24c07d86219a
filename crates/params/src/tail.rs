//! The compiled tail of a variant's operation list, kept as a stack of layers.
//!
//! A variant's operation list is its path's node bodies, the deepest node first (file order:
//! the first-defined `variants` block is the deepest and varies fastest) and the root last.
//! The *tail* is the longest suffix of whole node bodies made only of operations whose effect
//! is a per-key function (`=`, `+=`, `<=`, `~=` without `${}`, and the file-map updates); the
//! rest is applied exactly to the working dict.
//!
//! The tail is compiled into one action per key — the composition of every operation on it —
//! and kept as a stack of layers, one per node body, the root's at the bottom. Consecutive
//! variants share most of their path, so moving to the next variant pops the layers of the
//! bodies that changed and pushes the new ones: a layer is composed *in front of* the layers
//! below it (its operations run before theirs), key by key, with an undo log. Composing in
//! front of a key the layers below already set (`key = value`) changes nothing, so a push costs
//! only the keys whose final value still depends on what came before.
//!
//! A key's action is a constant (the value after the tail whatever came before) or affine
//! (`prefix + before + suffix` when the key existed, a fixed value when it did not); only
//! affine actions on keys the exactly-applied part set are computed per variant.

use std::cell::RefCell;
use std::sync::Arc;

use crate::intern::{is_reserved, KeyId, K_NAME_MAP, K_SHORT_MAP};
use crate::lexer::OpKind;
use crate::tree::{Op, OpData, OpId, Pos};
use crate::value::Value;

/// A file map's entries in insertion order: basename → dotted name.
pub(crate) type MapVec = Vec<(Arc<str>, Arc<str>)>;
/// A shared file map.
pub(crate) type MapEntries = Arc<MapVec>;

/// The composed effect of the tail on one key.
#[derive(Debug, Clone)]
pub(crate) struct Act {
    /// The value after the tail when the key was absent before it; for a constant action,
    /// the value after the tail in every case.
    pub absent: Value,
    /// `Some((prefix, suffix))`: an affine action — a key present before the tail ends up as
    /// `prefix + before + suffix`.
    pub affine: Option<(Arc<str>, Arc<str>)>,
    /// The last statement that touched the key.
    pub pos: Pos,
}

impl Act {
    /// The key's value after the tail, given its value before (affine actions).
    pub(crate) fn apply(&self, before: Option<&str>) -> Value {
        match (before, &self.affine) {
            (Some(s), Some((p, q))) => {
                let mut out = String::with_capacity(p.len() + s.len() + q.len());
                out.push_str(p);
                out.push_str(s);
                out.push_str(q);
                Value::from(out.as_str())
            }
            _ => self.absent.clone(),
        }
    }
}

/// One node body composed in front of the layers below it.
#[derive(Debug)]
struct Layer {
    /// Where its operations start in `Tail::ops`.
    ops_start: usize,
    /// Lengths of the act arena, the undo log and the affine-candidate list before the push.
    acts_len: usize,
    undo_len: usize,
    dyn_len: usize,
    /// The file-map prefixes after this layer (names, short names), with the position of the
    /// last map statement.
    maps: [Option<(MapEntries, Pos)>; 2],
}

/// The tail's first-touch key order, computed on demand for the layers of one generation.
#[derive(Debug, Default)]
struct OrderCache {
    generation: u64,
    keys: Vec<KeyId>,
    /// Per key, the generation it was last seen in.
    seen: Vec<u64>,
}

/// A compiled tail.
#[derive(Debug, Default)]
pub(crate) struct Tail {
    layers: Vec<Layer>,
    /// Operations of all layers, the bottom (root) layer first, each in application order.
    ops: Vec<OpId>,
    acts: Vec<Act>,
    /// Dense index KeyId → visible act in `acts` (u32::MAX: untouched).
    index: Vec<u32>,
    /// `(key, previous index)` for every index change, to pop layers.
    undo: Vec<(KeyId, u32)>,
    /// Keys whose visible act may be affine (each listed once: a key is added when it first
    /// gets an affine act, and composing in front never turns a constant back into affine).
    dynamic: Vec<KeyId>,
    /// Bumped whenever the layers change.
    generation: u64,
    order: RefCell<OrderCache>,
}

/// Can this operation be compiled into per-key actions?
pub(crate) fn compilable(op: &Op) -> bool {
    match &op.data {
        OpData::Batch { .. } | OpData::FileMap { .. } => true,
        OpData::Assign { subst, .. } => !subst,
        _ => false,
    }
}

fn cat3(a: &str, b: &str, c: &str) -> Arc<str> {
    let mut s = String::with_capacity(a.len() + b.len() + c.len());
    s.push_str(a);
    s.push_str(b);
    s.push_str(c);
    Arc::from(s.as_str())
}

fn empty() -> Arc<str> {
    Arc::from("")
}

impl Tail {
    /// The visible act of key `k`.
    #[inline]
    pub(crate) fn act(&self, k: KeyId) -> Option<&Act> {
        match self.index.get(k as usize) {
            Some(&i) if i != u32::MAX => self.acts.get(i as usize),
            _ => None,
        }
    }

    /// Bring the layers in line with `segments` (node bodies, root first, each in application
    /// order): keep the bottom layers that match, pop the rest, and push segments until at
    /// least `need` are in the tail. Returns the number of layers (segments in the tail).
    ///
    /// `known`: how many operations at the end of the list are known to equal those of the
    /// list the layers were last synced to (each operation belongs to one node, so layers
    /// within that part match without being compared). Empty segments must not be passed.
    pub(crate) fn sync<'s>(
        &mut self,
        segments: impl Iterator<Item = &'s [OpId]>,
        need: usize,
        known: usize,
        all: &[Op],
        nkeys: usize,
    ) -> usize {
        if self.index.len() < nkeys {
            self.index.resize(nkeys, u32::MAX);
        }
        let mut depth = 0usize;
        let mut covered = 0usize;
        let mut segments = segments.peekable();
        while let Some(seg) = segments.peek() {
            let Some(layer) = self.layers.get(depth) else {
                break;
            };
            let end = self
                .layers
                .get(depth + 1)
                .map_or(self.ops.len(), |l| l.ops_start);
            covered += seg.len();
            // equal lengths all the way down and equal concatenations: equal layers
            if end - layer.ops_start != seg.len()
                || (covered > known && self.ops[layer.ops_start..end] != **seg)
            {
                break;
            }
            depth += 1;
            segments.next();
        }
        let mut changed = depth < self.layers.len();
        self.truncate(depth);
        while depth < need {
            let Some(seg) = segments.next() else {
                break;
            };
            self.push(seg, all);
            depth += 1;
            changed = true;
        }
        if changed {
            self.generation += 1;
        }
        depth
    }

    fn truncate(&mut self, depth: usize) {
        let Some(first) = self.layers.get(depth) else {
            return;
        };
        let (ops_start, acts_len, undo_len, dyn_len) = (
            first.ops_start,
            first.acts_len,
            first.undo_len,
            first.dyn_len,
        );
        while self.undo.len() > undo_len {
            if let Some((k, old)) = self.undo.pop() {
                self.index[k as usize] = old;
            }
        }
        self.acts.truncate(acts_len);
        self.dynamic.truncate(dyn_len);
        self.ops.truncate(ops_start);
        self.layers.truncate(depth);
    }

    /// Compose a node body in front of the current layers.
    fn push(&mut self, seg: &[OpId], all: &[Op]) {
        let mut maps = self
            .layers
            .last()
            .map(|l| l.maps.clone())
            .unwrap_or_default();
        self.layers.push(Layer {
            ops_start: self.ops.len(),
            acts_len: self.acts.len(),
            undo_len: self.undo.len(),
            dyn_len: self.dynamic.len(),
            maps: [None, None],
        });
        self.ops.extend_from_slice(seg);
        // the body's last operation is the first to compose in front
        for &o in seg.iter().rev() {
            let op = &all[o as usize];
            match &op.data {
                OpData::Batch { entries } => {
                    for (k, v, line) in entries.iter().rev() {
                        let pos = Pos {
                            file: op.pos.file,
                            line: *line,
                        };
                        self.prepend(*k, OpKind::Set, v, pos);
                    }
                }
                OpData::Assign {
                    kind, key, value, ..
                } => self.prepend(*key, *kind, value, op.pos),
                OpData::FileMap { short, file, text } => {
                    let d = usize::from(*short);
                    maps[d] = Some(prepend_map(maps[d].as_ref(), file, text, op.pos));
                }
                _ => {}
            }
        }
        if let Some(top) = self.layers.last_mut() {
            top.maps = maps;
        }
    }

    /// Compose one statement `k kind v` in front of the key's visible act.
    fn prepend(&mut self, k: KeyId, kind: OpKind, v: &Arc<str>, pos: Pos) {
        if is_reserved(k) {
            return;
        }
        let slot = self.index[k as usize];
        let new = if slot == u32::MAX {
            let affine = match kind {
                OpKind::Set => None,
                OpKind::Append => Some((empty(), v.clone())),
                OpKind::Prepend => Some((v.clone(), empty())),
                OpKind::LazySet => Some((empty(), empty())),
                _ => return,
            };
            if affine.is_some() {
                self.dynamic.push(k);
            }
            Act {
                absent: Value::Str(v.clone()),
                affine,
                pos,
            }
        } else {
            let old = &self.acts[slot as usize];
            // a constant stays what it is whatever runs before it
            let Some((p, q)) = &old.affine else {
                return;
            };
            let absent = Value::Str(cat3(p, v, q));
            let affine = match kind {
                OpKind::Set => None,
                OpKind::Append => Some((p.clone(), cat3(v, q, ""))),
                OpKind::Prepend => Some((cat3(p, v, ""), q.clone())),
                OpKind::LazySet => Some((p.clone(), q.clone())),
                _ => return,
            };
            Act {
                absent,
                affine,
                pos: old.pos,
            }
        };
        self.undo.push((k, slot));
        self.index[k as usize] = u32::try_from(self.acts.len()).unwrap_or(u32::MAX);
        self.acts.push(new);
    }

    /// How many operations the layers hold (the tail's length).
    pub(crate) fn len(&self) -> usize {
        self.ops.len()
    }

    /// The visible affine acts (candidates whose act is constant are skipped).
    pub(crate) fn affine_acts(&self) -> impl Iterator<Item = (KeyId, &Act)> + '_ {
        self.dynamic
            .iter()
            .filter_map(|&k| self.act(k).filter(|a| a.affine.is_some()).map(|a| (k, a)))
    }

    /// The tail's own map `d` (0: names, 1: short names) with the position of its last
    /// statement, if the tail has map statements for it.
    pub(crate) fn map(&self, d: usize) -> Option<(&MapEntries, Pos)> {
        self.layers
            .last()
            .and_then(|l| l.maps[d].as_ref())
            .map(|(m, p)| (m, *p))
    }

    /// The keys the tail sets, in first-touch order (map keys included).
    pub(crate) fn order(&self, all: &[Op]) -> std::cell::Ref<'_, [KeyId]> {
        {
            let mut c = self.order.borrow_mut();
            if c.generation != self.generation {
                let c = &mut *c;
                c.generation = self.generation;
                c.keys.clear();
                if c.seen.len() < self.index.len() {
                    c.seen.resize(self.index.len(), u64::MAX);
                }
                // a marker no earlier generation used
                let mark = self.generation;
                let see = |k: KeyId, keys: &mut Vec<KeyId>, seen: &mut Vec<u64>| {
                    if let Some(s) = seen.get_mut(k as usize) {
                        if *s != mark {
                            *s = mark;
                            keys.push(k);
                        }
                    }
                };
                // the top layer runs first
                for (i, layer) in self.layers.iter().enumerate().rev() {
                    let end = self
                        .layers
                        .get(i + 1)
                        .map_or(self.ops.len(), |l| l.ops_start);
                    for &o in &self.ops[layer.ops_start..end] {
                        let op = &all[o as usize];
                        match &op.data {
                            OpData::Batch { entries } => {
                                for (k, _, _) in entries {
                                    if !is_reserved(*k) {
                                        see(*k, &mut c.keys, &mut c.seen);
                                    }
                                }
                            }
                            OpData::Assign { key, kind, .. }
                                if !is_reserved(*key)
                                    && matches!(
                                        kind,
                                        OpKind::Set
                                            | OpKind::Append
                                            | OpKind::Prepend
                                            | OpKind::LazySet
                                    ) =>
                            {
                                see(*key, &mut c.keys, &mut c.seen);
                            }
                            OpData::FileMap { short, .. } => {
                                let dest = if *short { K_SHORT_MAP } else { K_NAME_MAP };
                                see(dest, &mut c.keys, &mut c.seen);
                            }
                            _ => {}
                        }
                    }
                }
            }
        }
        std::cell::Ref::map(self.order.borrow(), |c| c.keys.as_slice())
    }
}

/// A file-map update: `file`'s name gets `prefix.` in front, or the file is added with `prefix`
/// (what the reference does for each entry's statement, and what a tail's prefixes do).
pub(crate) fn prefix_file(map: &mut MapVec, file: &Arc<str>, prefix: &Arc<str>) {
    match map.iter_mut().find(|(f, _)| f == file) {
        Some(e) => e.1 = cat3(prefix, ".", &e.1),
        None => map.push((file.clone(), prefix.clone())),
    }
}

/// The file-map prefixes after composing `file: text` in front of `before`: the file moves to
/// the front (its first touch is now this statement) and its prefix gains `.text`.
fn prepend_map(
    before: Option<&(MapEntries, Pos)>,
    file: &Arc<str>,
    text: &Arc<str>,
    pos: Pos,
) -> (MapEntries, Pos) {
    let Some((m, last)) = before else {
        return (Arc::new(vec![(file.clone(), text.clone())]), pos);
    };
    let mut out = Vec::with_capacity(m.len() + 1);
    let old = m.iter().find(|(f, _)| f == file);
    out.push(match old {
        Some((f, p)) => (f.clone(), cat3(p, ".", text)),
        None => (file.clone(), text.clone()),
    });
    out.extend(m.iter().filter(|(f, _)| f != file).cloned());
    (Arc::new(out), *last)
}
