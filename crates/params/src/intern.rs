//! A small string interner: labels, keys and file names become dense integer ids; and the ids
//! of keys ([`KeyId`]), with the reserved keys that every config interns first.

use std::collections::HashMap;
use std::sync::Arc;

/// An interned string id.
pub(crate) type Sym = u32;

/// Interns strings to dense ids; ids are stable for the interner's life.
#[derive(Debug, Default, Clone)]
pub(crate) struct Interner {
    map: HashMap<Arc<str>, Sym>,
    strs: Vec<Arc<str>>,
}

impl Interner {
    pub fn intern(&mut self, s: &str) -> Sym {
        if let Some(&id) = self.map.get(s) {
            return id;
        }
        let id = Sym::try_from(self.strs.len()).unwrap_or(Sym::MAX);
        let a: Arc<str> = Arc::from(s);
        self.strs.push(a.clone());
        self.map.insert(a, id);
        id
    }

    pub fn get(&self, s: &str) -> Option<Sym> {
        self.map.get(s).copied()
    }

    pub fn resolve(&self, id: Sym) -> &Arc<str> {
        &self.strs[id as usize]
    }

    pub fn len(&self) -> usize {
        self.strs.len()
    }
}

/// Keys that no statement may set, append to or delete.
pub const RESERVED: [&str; 5] = [
    "name",
    "shortname",
    "dep",
    "_name_map_file",
    "_short_name_map_file",
];

/// A key of the working dict: a plain key (an interned symbol) or a suffixed tuple key.
pub(crate) type KeyId = u32;

/// Reserved key ids (interned first, in the order of [`RESERVED`], see
/// [`crate::Config::empty`]).
pub(crate) const K_NAME: KeyId = 0;
pub(crate) const K_SHORTNAME: KeyId = 1;
pub(crate) const K_DEP: KeyId = 2;
pub(crate) const K_NAME_MAP: KeyId = 3;
pub(crate) const K_SHORT_MAP: KeyId = 4;

/// Whether `k` is one of the reserved keys.
#[inline]
pub(crate) fn is_reserved(k: KeyId) -> bool {
    k <= K_SHORT_MAP
}
