//! The compiled tail of a variant's operation list.
//!
//! Consecutive variants differ mostly in the *first* statements of their operation lists (the
//! fastest-varying block is the first-defined one, whose bodies come early in file order) and
//! share the rest. The shared tail is compiled once into one action per key — the composition
//! of every `=`, `+=`, `<=`, `~=` on it — plus the file-map prefixes; a tail action whose result
//! does not depend on the earlier state (the usual `key = value`) is a shared constant, and only
//! the others are computed per variant. Only operations whose effect is such a per-key function
//! are compiled (no `${}` substitution, regex operators, `del` or `suffix`): anything else stays
//! in the exactly-applied part.

use std::sync::Arc;

use crate::eval::{is_reserved, KeyId, K_NAME_MAP, K_SHORT_MAP};
use crate::lexer::OpKind;
use crate::tree::{Op, OpData, OpId, Pos};
use crate::value::Value;

/// What a tail does to a key that is present before it.
#[derive(Debug, Clone)]
pub(crate) enum Present {
    /// The value is replaced (the action is a constant).
    Const(Value),
    /// The value gets a prefix and a suffix.
    Affine(Arc<str>, Arc<str>),
}

/// The composed effect of the tail on one key.
#[derive(Debug, Clone)]
pub(crate) struct Act {
    pub key: KeyId,
    /// The value when the key was absent before the tail.
    pub absent: Arc<str>,
    pub present: Present,
    /// The last statement that touched the key.
    pub pos: Pos,
}

impl Act {
    /// The key's value after the tail, given its value before.
    pub(crate) fn apply(&self, before: Option<&str>) -> Arc<str> {
        match (before, &self.present) {
            (None, _) => self.absent.clone(),
            (Some(_), Present::Const(Value::Str(v))) => v.clone(),
            (Some(_), Present::Const(_)) => self.absent.clone(),
            (Some(s), Present::Affine(p, q)) => Arc::from(format!("{p}{s}{q}").as_str()),
        }
    }
}

/// A file basename and the texts its name-map prefix is made of.
type MapParts = (Arc<str>, Vec<Arc<str>>);

/// A compiled tail.
#[derive(Debug, Default)]
pub(crate) struct Tail {
    /// The operations compiled, in order (a suffix of the variant's list).
    pub ops: Vec<OpId>,
    pub acts: Vec<Act>,
    /// Dense index KeyId → position in `acts` (u32::MAX: untouched).
    pub index: Vec<u32>,
    /// Acts whose result depends on the earlier value.
    pub dynamic: Vec<u32>,
    /// File-map prefixes for `_name_map_file` and `_short_name_map_file`: (basename, prefix).
    pub maps: [Vec<(Arc<str>, String)>; 2],
    /// While compiling: the texts each file's prefix is made of, in operation order.
    map_parts: [Vec<MapParts>; 2],
    pub map_pos: [Pos; 2],
    /// Keys in first-touch order (map keys included), for the dict's insertion order.
    pub order: Vec<KeyId>,
}

/// Can this operation be compiled into per-key actions?
pub(crate) fn compilable(op: &Op) -> bool {
    match &op.data {
        OpData::Batch { .. } | OpData::FileMap { .. } => true,
        OpData::Assign { subst, .. } => !subst,
        _ => false,
    }
}

fn cat(a: &str, b: &str) -> Arc<str> {
    let mut s = String::with_capacity(a.len() + b.len());
    s.push_str(a);
    s.push_str(b);
    Arc::from(s.as_str())
}

impl Tail {
    pub(crate) fn clear(&mut self) {
        for a in &self.acts {
            if let Some(i) = self.index.get_mut(a.key as usize) {
                *i = u32::MAX;
            }
        }
        self.ops.clear();
        self.acts.clear();
        self.dynamic.clear();
        self.maps[0].clear();
        self.maps[1].clear();
        self.order.clear();
    }

    #[inline]
    pub(crate) fn act(&self, k: KeyId) -> Option<&Act> {
        match self.index.get(k as usize) {
            Some(&i) if i != u32::MAX => self.acts.get(i as usize),
            _ => None,
        }
    }

    fn compose(&mut self, k: KeyId, kind: OpKind, v: &Arc<str>, pos: Pos, nkeys: usize) {
        if is_reserved(k) {
            return;
        }
        if self.index.len() < nkeys {
            self.index.resize(nkeys, u32::MAX);
        }
        let slot = self.index[k as usize];
        let new = match (slot, kind) {
            (_, OpKind::Set) => Act {
                key: k,
                absent: v.clone(),
                present: Present::Const(Value::Str(v.clone())),
                pos,
            },
            (u32::MAX, OpKind::Append) => Act {
                key: k,
                absent: v.clone(),
                present: Present::Affine(Arc::from(""), v.clone()),
                pos,
            },
            (u32::MAX, OpKind::Prepend) => Act {
                key: k,
                absent: v.clone(),
                present: Present::Affine(v.clone(), Arc::from("")),
                pos,
            },
            (u32::MAX, OpKind::LazySet) => Act {
                key: k,
                absent: v.clone(),
                present: Present::Affine(Arc::from(""), Arc::from("")),
                pos,
            },
            (i, OpKind::LazySet) => {
                let _ = i;
                return;
            }
            (i, OpKind::Append | OpKind::Prepend) => {
                let old = &self.acts[i as usize];
                let app = kind == OpKind::Append;
                let absent = if app {
                    cat(&old.absent, v)
                } else {
                    cat(v, &old.absent)
                };
                let present = match &old.present {
                    Present::Const(Value::Str(c)) => {
                        Present::Const(Value::Str(if app { cat(c, v) } else { cat(v, c) }))
                    }
                    Present::Const(other) => Present::Const(other.clone()),
                    Present::Affine(p, q) => {
                        if app {
                            Present::Affine(p.clone(), cat(q, v))
                        } else {
                            Present::Affine(cat(v, p), q.clone())
                        }
                    }
                };
                Act {
                    key: k,
                    absent,
                    present,
                    pos,
                }
            }
            _ => return,
        };
        if slot == u32::MAX {
            self.index[k as usize] = u32::try_from(self.acts.len()).unwrap_or(u32::MAX);
            self.acts.push(new);
            self.order.push(k);
        } else {
            self.acts[slot as usize] = new;
        }
    }

    /// Compile `ops` (all [`compilable`]).
    pub(crate) fn compile(&mut self, ops: &[OpId], all: &[Op], nkeys: usize) {
        self.clear();
        self.ops.extend_from_slice(ops);
        for &o in ops {
            let op = &all[o as usize];
            match &op.data {
                OpData::Batch { entries } => {
                    for (k, v, line) in entries {
                        self.compose(
                            *k,
                            OpKind::Set,
                            v,
                            Pos {
                                file: op.pos.file,
                                line: *line,
                            },
                            nkeys,
                        );
                    }
                }
                OpData::Assign {
                    kind, key, value, ..
                } => self.compose(*key, *kind, value, op.pos, nkeys),
                OpData::FileMap { short, file, text } => {
                    let d = usize::from(*short);
                    let dest = if *short { K_SHORT_MAP } else { K_NAME_MAP };
                    if self.map_parts[d].is_empty() && !self.order.contains(&dest) {
                        self.order.push(dest);
                    }
                    self.map_pos[d] = op.pos;
                    match self.map_parts[d].iter_mut().find(|(f, _)| f == file) {
                        Some(e) => e.1.push(text.clone()),
                        None => self.map_parts[d].push((file.clone(), vec![text.clone()])),
                    }
                }
                _ => {}
            }
        }
        // each later text is prepended: the prefix is the texts in reverse order
        for d in 0..2 {
            for (file, parts) in self.map_parts[d].drain(..) {
                let len = parts.iter().map(|p| p.len() + 1).sum();
                let mut s = String::with_capacity(len);
                for (i, p) in parts.iter().rev().enumerate() {
                    if i > 0 {
                        s.push('.');
                    }
                    s.push_str(p);
                }
                self.maps[d].push((file, s));
            }
        }
        self.dynamic = self
            .acts
            .iter()
            .enumerate()
            .filter(|(_, a)| matches!(a.present, Present::Affine(..)))
            .map(|(i, _)| u32::try_from(i).unwrap_or(u32::MAX))
            .collect();
    }

    /// Apply the file-map prefixes of `dest` (0: names, 1: short names) to the earlier map.
    pub(crate) fn apply_map(&self, d: usize, before: Option<&Value>) -> Option<Value> {
        if self.maps[d].is_empty() {
            return None;
        }
        let mut out: Vec<(Arc<str>, Arc<str>)> = Vec::with_capacity(8);
        if let Some(Value::Map(m)) = before {
            out.extend(m.iter().cloned());
        }
        for (f, p) in &self.maps[d] {
            match out.iter_mut().find(|(g, _)| g == f) {
                Some(e) => {
                    let mut s = String::with_capacity(p.len() + 1 + e.1.len());
                    s.push_str(p);
                    s.push('.');
                    s.push_str(&e.1);
                    e.1 = Arc::from(s.as_str());
                }
                None => out.push((f.clone(), Arc::from(p.as_str()))),
            }
        }
        Some(Value::Map(Arc::new(out)))
    }
}
