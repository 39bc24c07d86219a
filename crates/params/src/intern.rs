//! A small string interner: labels, keys and file names become dense integer ids.

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
