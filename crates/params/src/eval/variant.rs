//! A built variant as a sink sees it ([`VariantRef`]): lookups, an owned copy, suffix
//! flattening ([`flatten`]), entries in dict order and the reference's JSON dump line.

use std::collections::HashMap;
use std::sync::Arc;

use super::{OwnedDict, VariantRef, Walker, Work};
use crate::error::Location;
use crate::intern::{KeyId, Sym};
use crate::tree::Pos;
use crate::value::{py_str, Value};
use crate::Config;

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
            let mut ranks = w.json_ranks.borrow_mut();
            let write = |out: &mut Vec<u8>, first: &mut bool, i: usize, k: KeyId| {
                if let Some(v) = w.final_get(k) {
                    if !*first {
                        out.extend_from_slice(b", ");
                    }
                    *first = false;
                    out.extend_from_slice(&w.cfg.key_json[i]);
                    crate::value::json_value(out, v);
                }
            };
            if w.mark_key_ranks(&mut ranks) {
                for (n, word) in ranks.iter_mut().enumerate() {
                    let mut bits = std::mem::take(word);
                    while bits != 0 {
                        let i = n * 64 + bits.trailing_zeros() as usize;
                        bits &= bits - 1;
                        write(out, &mut first, i, w.cfg.sorted_keys[i]);
                    }
                }
            } else {
                ranks.iter_mut().for_each(|w| *w = 0);
                for (i, &k) in w.cfg.sorted_keys.iter().enumerate() {
                    write(out, &mut first, i, k);
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
