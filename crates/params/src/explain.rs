//! `explain`: why a variant exists and how each of its keys got its value.
//!
//! For every variant a filter selects, the explanation lists the entries on its path (with the
//! `file:line` of each `- name:` line), every `only`/`no` filter and condition that was decided
//! on the path (and how), and for each requested key the chain of statements that changed it,
//! replayed one by one from an empty dict.

use std::ops::ControlFlow;

use crate::eval::{Sink, VariantRef, Walker};
use crate::intern::KeyId;
use crate::tree::{Item, OpData, Pos};
use crate::{Config, Error, Location, Value};

/// One entry on a variant's path.
#[derive(Debug, Clone)]
pub struct EntryStep {
    /// The labels the entry adds, as printed in the name.
    pub label: String,
    /// Where the `- name:` line is.
    pub at: Option<Location>,
    /// Whether the entry is a default (left out of the shortname).
    pub default: bool,
}

/// A filter or condition decided on the path.
#[derive(Debug, Clone)]
pub struct Decision {
    /// `only`, `no`, `cond` or `!cond`.
    pub kind: &'static str,
    /// The statement's source text.
    pub text: String,
    /// Where it is.
    pub at: Option<Location>,
    /// For conditions: whether the body applied. Filters on a produced variant always passed.
    pub applied: bool,
}

/// One statement in a key's history.
#[derive(Debug, Clone)]
pub struct KeyStep {
    /// Where the statement is (`None` for the `_max`/`_min`/`_fixed` pass).
    pub at: Option<Location>,
    /// The statement's source text.
    pub statement: String,
    /// The key's value after the statement (`None`: deleted).
    pub value: Option<String>,
}

/// The explanation of one variant.
#[derive(Debug, Clone, Default)]
pub struct Explanation {
    /// Full name.
    pub name: String,
    /// Short name.
    pub shortname: String,
    /// Entries from the outermost (last-defined block) inwards.
    pub entries: Vec<EntryStep>,
    /// Filters and conditions in file order.
    pub decisions: Vec<Decision>,
    /// Requested keys (or all) with their histories.
    pub keys: Vec<(String, Vec<KeyStep>)>,
}

impl Config {
    fn location(&self, p: Pos) -> Option<Location> {
        self.files.get(p.file as usize).map(|f| Location {
            file: f.clone(),
            line: Some(p.line),
            col: None,
        })
    }

    fn source_line(&self, p: Pos) -> String {
        self.sources
            .get(p.file as usize)
            .and_then(|s| {
                crate::lexer::split_lines(s)
                    .get((p.line as usize).wrapping_sub(1))
                    .map(|l| l.trim().to_string())
            })
            .unwrap_or_default()
    }
}

/// Explain the variants of `cfg` (already restricted by the caller's filter), at most `limit`.
/// `keys` empty means every key of each variant.
pub fn explain(cfg: &Config, keys: &[String], limit: usize) -> Result<Vec<Explanation>, Error> {
    struct S<'k> {
        keys: &'k [String],
        limit: usize,
        out: Vec<Explanation>,
    }
    impl Sink for S<'_> {
        fn variant(&mut self, v: &VariantRef<'_, '_>) -> Result<crate::eval::Flow, Error> {
            self.out.push(v.walker().explain_current(v, self.keys)?);
            Ok(if self.out.len() >= self.limit {
                crate::eval::Flow::Stop
            } else {
                crate::eval::Flow::Continue
            })
        }
    }
    if limit == 0 {
        return Ok(Vec::new());
    }
    let mut s = S {
        keys,
        limit,
        out: Vec::new(),
    };
    let mut w = Walker::new(cfg);
    w.run(&mut s)?;
    let _ = ControlFlow::<()>::Continue(());
    Ok(s.out)
}

impl Walker<'_> {
    fn decisions(&self, items: &[Item], out: &mut Vec<Decision>) {
        let cfg = self.cfg;
        for &it in items {
            let (kind, f, applied, body) = match it {
                Item::Only(f) => ("only", f, true, None),
                Item::No(f) => ("no", f, true, None),
                Item::Cond(c) => {
                    let cond = &cfg.conds[c as usize];
                    let t = self.truth_of(c);
                    (
                        if cond.neg { "!cond" } else { "cond" },
                        cond.filter,
                        t,
                        if t { Some(&cond.body) } else { None },
                    )
                }
                _ => continue,
            };
            let pos = match it {
                Item::Cond(c) => Some(Pos {
                    file: cfg.conds[c as usize].file,
                    line: cfg.conds[c as usize].line,
                }),
                _ => cfg.filter_pos.get(f as usize).copied().flatten(),
            };
            out.push(Decision {
                kind,
                text: pos.map(|p| cfg.source_line(p)).unwrap_or_default(),
                at: pos.and_then(|p| cfg.location(p)),
                applied,
            });
            if let Some(body) = body {
                self.decisions(body, out);
            }
        }
    }

    pub(crate) fn explain_current(
        &self,
        v: &VariantRef<'_, '_>,
        keys: &[String],
    ) -> Result<Explanation, Error> {
        let cfg = self.cfg;
        let mut ex = Explanation {
            name: v.str_of(crate::intern::K_NAME),
            shortname: v.str_of(crate::intern::K_SHORTNAME),
            ..Default::default()
        };
        if let VariantRef::Owned(..) = v {
            // joined variants have no single path; report their final values only
            for (k, val, p) in v.entries() {
                if keys.is_empty() || keys.iter().any(|x| **x == *k) {
                    ex.keys.push((
                        k.to_string(),
                        vec![KeyStep {
                            at: v.location(p),
                            statement: String::new(),
                            value: Some(val.to_python_string()),
                        }],
                    ));
                }
            }
            return Ok(ex);
        }
        for &n in self.path_nodes() {
            let node = &cfg.nodes[n as usize];
            if node.name.is_empty() && node.pos.is_none() {
                continue;
            }
            let label = node
                .name
                .iter()
                .map(|l| cfg.syms.resolve(l.long).to_string())
                .collect::<Vec<_>>()
                .join(".");
            ex.entries.push(EntryStep {
                label,
                at: node.pos.and_then(|p| cfg.location(p)),
                default: !node.append_to_shortname,
            });
        }
        for &n in self.path_nodes().iter().rev() {
            self.decisions(&cfg.nodes[n as usize].content, &mut ex.decisions);
        }
        // replay the operations one by one
        let final_entries = v.entries();
        let wanted: Vec<String> = if keys.is_empty() {
            let mut k: Vec<String> = final_entries.iter().map(|e| e.0.to_string()).collect();
            k.sort();
            k
        } else {
            keys.to_vec()
        };
        let mut hist: Vec<Vec<KeyStep>> = vec![Vec::new(); wanted.len()];
        let ids: Vec<Option<KeyId>> = wanted.iter().map(|k| cfg.syms.get(k)).collect();
        let mut replay = Walker::new(cfg);
        replay.copy_header_from(self);
        let snapshot = |w: &Walker<'_>| -> Vec<Option<Value>> {
            ids.iter()
                .map(|k| k.and_then(|k| w.work_value(k)))
                .collect()
        };
        let mut before = snapshot(&replay);
        for &op in self.ops_applied() {
            replay.apply_traced(op)?;
            let after = snapshot(&replay);
            let o = &cfg.ops[op as usize];
            for (i, (b, a)) in before.iter().zip(after.iter()).enumerate() {
                let touches = match (&o.data, ids[i]) {
                    (OpData::Assign { key, .. }, Some(k)) => *key == k,
                    _ => false,
                };
                if b == a && !touches {
                    continue;
                }
                let pos = match &o.data {
                    OpData::Batch { entries } => ids[i]
                        .and_then(|k| entries.iter().rev().find(|e| e.0 == k))
                        .map_or(o.pos, |e| Pos {
                            file: o.pos.file,
                            line: e.2,
                        }),
                    _ => o.pos,
                };
                hist[i].push(KeyStep {
                    at: cfg.location(pos),
                    statement: cfg.source_line(pos),
                    value: a.as_ref().map(Value::to_python_string),
                });
            }
            before = after;
        }
        // the postfix pass and suffix flattening are reported through the final value
        for (i, key) in wanted.iter().enumerate() {
            let fin = final_entries
                .iter()
                .find(|e| *e.0 == **key)
                .map(|e| e.1.to_python_string());
            let last = hist[i].last().and_then(|s| s.value.clone());
            if fin != last {
                hist[i].push(KeyStep {
                    at: None,
                    statement: "(`_max`/`_min`/`_fixed` pass or suffix flattening)".into(),
                    value: fin,
                });
            }
        }
        ex.keys = wanted.into_iter().zip(hist).collect();
        Ok(ex)
    }
}
