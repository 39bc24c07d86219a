//! The working dict ([`Work`]): the state a variant's dict is built in, with its undo log,
//! and the suffixed tuple keys ([`TupleKey`]) that `suffix` creates.

use std::collections::HashMap;
use std::sync::Arc;

use crate::intern::{KeyId, Sym, K_DEP, K_NAME, K_SHORTNAME};
use crate::tree::{OpId, Pos};
use crate::value::Value;
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
pub(super) struct Slot {
    val: Option<Value>,
    seq: u64,
    pos: Pos,
}

/// The state a variant's dict is built in.
pub(crate) struct Work {
    slots: Vec<Slot>,
    /// Insertion log `(key, seq)`: a key is at its log position while its slot has that seq.
    pub(super) order: Vec<(KeyId, u64)>,
    pub(super) undo: Vec<(KeyId, Slot)>,
    seq: u64,
    /// Number of present tuple keys.
    pub(super) tuples: usize,
    pub(crate) tuple_keys: Vec<TupleKey>,
    tuple_index: HashMap<(KeyId, Sym), KeyId>,
    base: usize,
    /// Ops applied so far, with the (undo, order, file-map) lengths before each.
    pub(super) applied: Vec<(OpId, usize, usize, usize)>,
    /// The file-map statements applied, in order. The map keys' slots hold a marker (for
    /// their place in the dict and their origin); their values are built from these.
    pub(super) filemaps: Vec<OpId>,
    /// Regex match results per (op, key), computed on first use.
    pub(super) regex_cache: HashMap<(OpId, KeyId), bool>,
}

pub(super) const NO_POS: Pos = Pos {
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

    pub(super) fn is_tuple(&self, k: KeyId) -> bool {
        k as usize >= self.base
    }

    pub(crate) fn tuple(&self, k: KeyId) -> Option<&TupleKey> {
        (k as usize)
            .checked_sub(self.base)
            .and_then(|i| self.tuple_keys.get(i))
    }

    /// Set a key, logging the old slot so it can be rolled back. Existing keys keep their place.
    pub(super) fn set(&mut self, k: KeyId, v: Value, pos: Pos) {
        let i = k as usize;
        let slot = &mut self.slots[i];
        // the old value moves to the undo log (no reference count touched)
        let old = Slot {
            val: slot.val.replace(v),
            seq: slot.seq,
            pos: std::mem::replace(&mut slot.pos, pos),
        };
        let present = old.val.is_some();
        self.undo.push((k, old));
        let slot = &mut self.slots[i];
        if !present {
            self.seq += 1;
            slot.seq = self.seq;
            self.order.push((k, self.seq));
            if i >= self.base {
                self.tuples += 1;
            }
        }
    }

    pub(super) fn remove(&mut self, k: KeyId) -> Option<Value> {
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
    pub(super) fn set_header(&mut self, k: KeyId, v: Value) {
        let slot = &mut self.slots[k as usize];
        slot.val = Some(v);
        slot.seq = k as u64;
    }

    pub(super) fn rollback(&mut self, undo_len: usize, order_len: usize, maps_len: usize) {
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

    pub(super) fn tuple_key(
        &mut self,
        parent: KeyId,
        suffix: Sym,
        general: Sym,
        cfg: &Config,
    ) -> KeyId {
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
    pub(super) fn match_text<'a>(&'a self, k: KeyId, cfg: &'a Config) -> &'a str {
        match self.tuple(k) {
            Some(t) => &t.joined,
            None => cfg.syms.resolve(k),
        }
    }

    pub(crate) fn general(&self, k: KeyId) -> Sym {
        self.tuple(k).map_or(k, |t| t.general)
    }
}
