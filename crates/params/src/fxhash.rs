//! A fast non-cryptographic hasher for the maps whose keys come from config files
//! ([`crate::Params`]'s index).
//!
//! The standard library's SipHash resists hash flooding by untrusted keys, at several times
//! the cost per key. Parameter names are short strings written by the config's author (not
//! an attacker), and every variant's `Params` hashes all of them (about 150 per variant on
//! avocado-vt's tree) when it is built, and again for each object view. This is the
//! multiply-rotate hash rustc uses for its own tables (the `rustc-hash` crate's `FxHasher`),
//! written out here: it is a dozen lines, not worth a dependency.

use std::hash::{BuildHasherDefault, Hasher};

/// The multiply-rotate hasher (see the module docs).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FxHasher {
    hash: u64,
}

/// A seed with well-spread bits (the one `rustc-hash` uses).
const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            let mut b = [0u8; 8];
            b.copy_from_slice(w);
            self.add(u64::from_le_bytes(b));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 8];
            b[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(b));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

/// A `HashMap`/`HashSet` hasher builder for [`FxHasher`].
pub(crate) type FxBuild = BuildHasherDefault<FxHasher>;

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn strings_that_differ_hash_apart_and_maps_work() {
        let h = |s: &str| {
            let mut x = FxHasher::default();
            x.write(s.as_bytes());
            x.write_u8(0xff);
            x.finish()
        };
        assert_ne!(h("image_name"), h("image_name_stg"));
        assert_ne!(h("a"), h("b"));
        let mut m: HashMap<String, usize, FxBuild> = HashMap::default();
        for i in 0..1000 {
            m.insert(format!("key_{i}"), i);
        }
        assert!((0..1000).all(|i| m.get(&format!("key_{i}")) == Some(&i)));
    }
}
