//! Assignments (`key OP value`) and the reference's pre-dict: a run of plain `k = v` is batched
//! into one operation, and a non-plain operator on a pending key (including a key regex, with the
//! reference's quirk) updates the batch instead of becoming an operation of its own.

use std::collections::HashMap;
use std::sync::Arc;

use super::{Parser, Target};
use crate::intern::{Sym, RESERVED};
use crate::lexer::OpKind;
use crate::tree::{FileId, OpData, Pos};

impl Parser {
    pub(super) fn flush(&mut self, t: Target, pre: &mut PreDict, file: FileId) {
        if pre.entries.is_empty() {
            return;
        }
        let entries = std::mem::take(&mut pre.entries);
        pre.index.clear();
        let line = entries.last().map_or(0, |e| e.2);
        self.push_op(t, OpData::Batch { entries }, Pos { file, line });
    }
    pub(super) fn assignment(
        &mut self,
        target: Target,
        pre: &mut PreDict,
        kind: OpKind,
        key: &str,
        value: &str,
        pos: Pos,
    ) -> Result<(), String> {
        // The reference batches on `$` anywhere in the value, but only `${…}` can substitute.
        let subst = value.contains('$');
        let refs = !crate::refs(value).is_empty();
        let value: Arc<str> = Arc::from(value);
        let reserved = RESERVED.contains(&key);
        if kind == OpKind::Set && !subst {
            if !reserved {
                let k = self.cfg.syms.intern(key);
                pre.set(k, value, pos.line);
            }
            return Ok(());
        }
        if !pre.entries.is_empty() {
            if !subst {
                if let Some(k) = self.cfg.syms.get(key) {
                    if pre.index.contains_key(&k) {
                        if matches!(
                            kind,
                            OpKind::RegexSet | OpKind::RegexAppend | OpKind::RegexPrepend
                        ) {
                            let re = key_regex(key)?;
                            for e in &mut pre.entries {
                                if re.is_match(self.cfg.syms.resolve(e.0)) {
                                    let old = e.1.clone();
                                    e.1 = match kind {
                                        OpKind::RegexSet => value.clone(),
                                        OpKind::RegexAppend => {
                                            Arc::from(format!("{old}{value}").as_str())
                                        }
                                        _ => Arc::from(format!("{value}{old}").as_str()),
                                    };
                                    e.2 = pos.line;
                                }
                            }
                            return Ok(());
                        }
                        return pre.apply(kind, k, &value, pos.line);
                    }
                }
            }
            self.flush(target, pre, pos.file);
        }
        let data = match kind {
            OpKind::RegexSet | OpKind::RegexAppend | OpKind::RegexPrepend => OpData::Regex {
                kind,
                re: key_regex(key),
                value,
                subst: refs,
            },
            _ => {
                let k = self.cfg.syms.intern(key);
                OpData::Assign {
                    kind,
                    key: k,
                    value,
                    subst: refs,
                }
            }
        };
        self.push_op(target, data, pos);
        Ok(())
    }
}

/// The reference's pre-dict: a run of plain assignments applied as one update.
#[derive(Default)]
pub(super) struct PreDict {
    entries: Vec<(Sym, Arc<str>, u32)>,
    index: HashMap<Sym, usize>,
}

impl PreDict {
    fn set(&mut self, k: Sym, v: Arc<str>, line: u32) {
        match self.index.get(&k) {
            Some(&i) => {
                self.entries[i].1 = v;
                self.entries[i].2 = line;
            }
            None => {
                self.index.insert(k, self.entries.len());
                self.entries.push((k, v, line));
            }
        }
    }

    /// Apply a non-plain operator whose key is pending here (quirk: regex operators then only
    /// see the pending keys).
    fn apply(&mut self, kind: OpKind, k: Sym, value: &Arc<str>, line: u32) -> Result<(), String> {
        match kind {
            OpKind::Set => self.set(k, value.clone(), line),
            OpKind::Append | OpKind::Prepend => {
                if let Some(&i) = self.index.get(&k) {
                    let old = &self.entries[i].1;
                    let new = if kind == OpKind::Append {
                        format!("{old}{value}")
                    } else {
                        format!("{value}{old}")
                    };
                    self.entries[i].1 = Arc::from(new.as_str());
                    self.entries[i].2 = line;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Compile a key regex the way the reference does: `re.match(PATTERN + "$", key)`.
pub(crate) fn key_regex(pattern: &str) -> Result<crate::pyre::KeyRegex, String> {
    crate::pyre::KeyRegex::new(pattern)
}
