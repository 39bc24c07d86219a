//! A variant as the caller sees it: [`VariantView`] (borrowed from the walk, zero-copy),
//! [`EntryRef`] (one entry of its final dict) and [`Variant`] (owned).

use std::sync::Arc;

use crate::eval::VariantRef;
use crate::intern;
use crate::origin::Origin;
use crate::params::Params;
use crate::tree::Pos;
use crate::value::Value;

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
    pub(crate) inner: &'a VariantRef<'w, 'a>,
    pub(crate) params: std::cell::OnceCell<Params>,
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
