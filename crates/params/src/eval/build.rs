//! Building a variant's dict at a leaf: its operation list, choosing the compiled tail, gathering a
//! leaf for the parallel builders, applying the rest on the working dict, and reading the final
//! dict (overlay → tail → working dict).

use std::sync::Arc;

use super::{Flow, Sink, VariantRef, Walker};
use crate::error::Error;
use crate::intern::{KeyId, K_DEP, K_NAME, K_NAME_MAP, K_SHORTNAME, K_SHORT_MAP};
use crate::tree::{Item, OpData, OpId, Pos};
use crate::value::Value;

impl<'c> Walker<'c> {
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

    pub(super) fn leaf(&mut self, sink: &mut dyn Sink) -> Result<Option<usize>, Error> {
        if self.count_only {
            return match sink.variant(&VariantRef::Work(self))? {
                Flow::Continue => Ok(Some(1)),
                Flow::Stop => Ok(None),
            };
        }
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
        // `deps` rarely changes from one leaf to the next: compare only after it did
        let dep_same = !self.deps_changed && self.dep_cache.is_some()
            || matches!(&self.dep_cache, Some(Value::List(l)) if l.len() == self.deps.len() && l.iter().zip(&self.deps).all(|(a, b)| **a == **b));
        self.deps_changed = false;
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
            // (the gathered list is shared by consecutive leaves: the same one as last time
            // needs no comparison)
            let same_source = matches!((&self.dep_source, d), (Some(Value::List(a)), Value::List(b)) if Arc::ptr_eq(a, b));
            if !same_source && self.dep_cache.as_ref() != Some(d) {
                self.dep_cache = Some(match d {
                    Value::List(l) => Value::List(Arc::new((**l).clone())),
                    other => other.clone(),
                });
            }
            if !same_source {
                // held, so that its address is not reused while compared
                self.dep_source = Some(d.clone());
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
            self.overlaid[k as usize] = false;
        }
        // (an affine act on a key the exact part did not set gives the act's fixed value)
        for (k, a) in self.tail.affine_acts() {
            if let Some(before) = self.work.get(k) {
                let v = a.apply(before.as_str());
                self.over[k as usize] = Some((v, a.pos));
                self.overlaid[k as usize] = true;
                self.over_keys.push(k);
            }
        }
        for (d, key) in [(0usize, K_NAME_MAP), (1, K_SHORT_MAP)] {
            if let Some((v, p)) = self.file_map(d, key) {
                self.set_over(key, v, p);
            }
        }
        self.postfix()?;
        match sink.variant(&VariantRef::Work(self))? {
            Flow::Continue => Ok(Some(1)),
            Flow::Stop => Ok(None),
        }
    }

    /// The final file map `key` (`d`: 0 names, 1 short names) with its origin, `None` when
    /// absent: the exact part's map statements in order, then the tail's prefixes, each
    /// putting `text.` in front of its file's name or adding the file. Every file's name is
    /// joined once from its parts (the last first), not rebuilt at each statement, and a
    /// name with one part shares its text.
    fn file_map<'s>(&'s self, d: usize, key: KeyId) -> Option<(Value, Pos)> {
        let tail = self.tail.map(d);
        if self.work.get(key).is_none() {
            return tail.map(|(m, p)| (Value::Map(m.clone()), p));
        }
        let short = key == K_SHORT_MAP;
        let mut files: Vec<&Arc<str>> = Vec::with_capacity(8);
        let mut parts: Vec<(usize, &Arc<str>)> = Vec::with_capacity(16);
        let mut add = |file: &'s Arc<str>, text: &'s Arc<str>| {
            let i = files.iter().position(|f| *f == file).unwrap_or_else(|| {
                files.push(file);
                files.len() - 1
            });
            parts.push((i, text));
        };
        for &o in &self.work.filemaps {
            if let OpData::FileMap {
                short: s,
                file,
                text,
            } = &self.ops[o as usize].data
            {
                if *s == short {
                    add(file, text);
                }
            }
        }
        let pos = match tail {
            Some((m, p)) => {
                for (f, t) in m.iter() {
                    add(f, t);
                }
                p
            }
            None => self.work.pos(key),
        };
        let mut out = Vec::with_capacity(files.len());
        for (i, &file) in files.iter().enumerate() {
            let mut mine = parts.iter().rev().filter(|(j, _)| *j == i).map(|(_, t)| *t);
            let Some(last) = mine.next() else { continue };
            let text = match mine.next() {
                None => last.clone(),
                Some(next) => {
                    let mut s = String::with_capacity(64);
                    s.push_str(last);
                    for t in std::iter::once(next).chain(mine) {
                        s.push('.');
                        s.push_str(t);
                    }
                    Arc::from(s.as_str())
                }
            };
            out.push((file.clone(), text));
        }
        Some((Value::Map(Arc::new(out)), pos))
    }

    /// Give `k` a per-variant value on top of the tail and the working dict.
    pub(super) fn set_over(&mut self, k: KeyId, v: Value, p: Pos) {
        self.over[k as usize] = Some((v, p));
        self.overlaid[k as usize] = true;
        self.over_keys.push(k);
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
        if self.overlaid.get(k as usize) == Some(&true) {
            if let Some(Some((v, _))) = self.over.get(k as usize) {
                return Some(v);
            }
        }
        if let Some(a) = self.tail.act(k) {
            // affine acts on keys the exact part set are in the overlay
            if a.affine.is_none() || self.work.get(k).is_none() {
                return Some(&a.absent);
            }
        }
        self.work.get(k)
    }

    pub(super) fn final_pos(&self, k: KeyId) -> Pos {
        if self.overlaid.get(k as usize) == Some(&true) {
            if let Some(Some((_, p))) = self.over.get(k as usize) {
                return *p;
            }
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

    /// Mark the keys that may be in the final dict (header, working dict, tail, postfix pass)
    /// in `bits`, a bit set over indices into `cfg.sorted_keys` (grown as needed; its set
    /// bits in order are the keys in JSON order). False when a key has no index: the caller
    /// then scans every key of the config instead. A dict holds a small part of a big
    /// config's keys, and reading a bit set is cheaper than probing them all.
    pub(crate) fn mark_key_ranks(&self, bits: &mut Vec<u64>) -> bool {
        let words = self.cfg.sorted_keys.len().div_ceil(64);
        if bits.len() < words {
            bits.resize(words, 0);
        }
        let mut ok = true;
        let mut mark = |k: KeyId| match self.cfg.key_rank.get(k as usize) {
            Some(&r) if r != u32::MAX => bits[r as usize / 64] |= 1 << (r % 64),
            _ => ok = false,
        };
        for k in [K_NAME, K_DEP, K_SHORTNAME] {
            mark(k);
        }
        for &(k, _) in &self.work.order {
            mark(k);
        }
        for &k in self.tail.order(self.ops).iter() {
            mark(k);
        }
        for &k in &self.post_new {
            mark(k);
        }
        ok
    }

    /// Entries of the final dict in order (tuple keys unflattened).
    pub(crate) fn final_entries(&self) -> Vec<(KeyId, Value, Pos)> {
        self.final_keys_in_order()
            .into_iter()
            .filter_map(|k| self.final_get(k).map(|v| (k, v.clone(), self.final_pos(k))))
            .collect()
    }
}
