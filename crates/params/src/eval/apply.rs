//! Applying one operation to the working dict (`=`, `+=`, `<=`, `~=`, regex keys, `del`,
//! `suffix`, file maps, `${…}` substitution), the postfix pass (`_max`/`_min`, …) and the
//! accessors `explain` uses to replay operations one by one.

use std::collections::HashMap;
use std::sync::Arc;

use super::{flatten, Walker};
use crate::error::{Error, ErrorKind};
use crate::intern::{is_reserved, KeyId, K_DEP, K_NAME, K_NAME_MAP, K_SHORTNAME, K_SHORT_MAP};
use crate::lexer::OpKind;
use crate::pynum::compare_sizes;
use crate::tree::{CondId, NodeId, OpData, OpId, Pos};
use crate::value::{py_str, Value};

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
    pub(super) fn exact_map(&self, key: KeyId) -> Option<Vec<(Arc<str>, Arc<str>)>> {
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

    pub(super) fn apply(&mut self, op_id: OpId) -> Result<(), Error> {
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
    pub(super) fn postfix(&mut self) -> Result<(), Error> {
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
            self.set_over(k, v, p);
        }
        Ok(())
    }
}
