//! [`ObjParams`]: a zero-copy per-object view of [`Params`], and [`Reader`], which turns keys into
//! typed values while collecting every problem.
//!
//! `Params::object_params` copies the whole map for each object; a VM with a few disks, NICs,
//! monitors and redirs would copy its ~150 keys a dozen times per command line. `ObjParams` keeps
//! a borrowed base plus the (few) keys the object's suffix overrides, with exactly the
//! `object_params` rules: for each key ending in `_<name>`, in map order, the text before the
//! *first* `_<name>` takes that key's value, the later key winning; views nest
//! (`param_<image>_<vm>`). `tests/views.rs` checks it against `object_params` on many maps.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::str::FromStr;
use std::sync::Arc;

use params::{EntryRef, Origin, Params, Value};

use crate::origins::Origins;
use crate::problem::{Problem, ProblemKind};
use crate::types::Expected;

/// One overridden key: the base name, its value, where it was set.
type Over<'a> = (&'a str, &'a str, Src<'a>);

/// Where a value was set, borrowed: an [`Origin`] of a [`Params`], or the file and line a
/// variant entry carries. Turned into an owned [`Origin`] only when a problem is reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Src<'a> {
    /// Not known (generated keys such as `name`).
    #[default]
    Unknown,
    /// A [`Params`] value's origin.
    Origin(&'a Origin),
    /// A variant entry's file and line.
    At(&'a Arc<str>, u32),
}

impl Src<'_> {
    /// The owned origin.
    pub fn origin(self) -> Option<Origin> {
        match self {
            Src::Unknown => None,
            Src::Origin(o) => Some(o.clone()),
            Src::At(f, line) => Some(Origin::new(f.clone(), line)),
        }
    }
}

impl<'a> From<Option<&'a Origin>> for Src<'a> {
    fn from(o: Option<&'a Origin>) -> Src<'a> {
        o.map_or(Src::Unknown, Src::Origin)
    }
}

/// FxHash (rustc's hasher): keys are short trusted parameter names, and SipHash's
/// DoS resistance costs more than the whole lookup here.
#[derive(Default, Clone, Copy)]
pub struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(b)).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.0 = (self.0.rotate_left(5) ^ u64::from(i)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A variant's string parameters borrowed from `VariantView::entries()`, indexed for lookup:
/// the cheap alternative to building a [`Params`] when only reading is needed (the matrix dry
/// run and its bench). Same keys, values, order and origins as `VariantView::params()`.
#[derive(Debug, Clone)]
pub struct FlatParams<'a> {
    order: Vec<(&'a str, &'a str, Src<'a>)>,
    index: HashMap<&'a str, u32, BuildHasherDefault<FxHasher>>,
    /// The keys by a hash of their last `_` segment, as chains through `order` in map order:
    /// `chains[bucket]` is (first, last) position, `next[pos]` the following one. A key ending
    /// in `_<name>` has the last segment of `name`, so [`ObjParams::object`] walks one chain
    /// instead of every key.
    chains: Box<[(u32, u32); SEGMENT_BUCKETS]>,
    next: Vec<u32>,
}

/// Buckets of [`FlatParams`]' last-segment chains.
const SEGMENT_BUCKETS: usize = 128;
/// The end of a chain.
const NONE: u32 = u32::MAX;

/// The bucket of a key's (or an object name's) last `_` segment.
fn segment_bucket(key: &str) -> usize {
    let seg = key.rsplit('_').next().unwrap_or(key);
    let mut h = FxHasher::default();
    h.write(seg.as_bytes());
    (h.finish() >> 57) as usize % SEGMENT_BUCKETS
}

impl<'a> FlatParams<'a> {
    /// Indexes the string entries (other values, such as `dep`, are skipped).
    pub fn new(entries: &'a [(Arc<str>, Value, Option<Origin>)]) -> FlatParams<'a> {
        Self::index(
            entries
                .iter()
                .map(|(k, v, o)| (&**k, v, Src::from(o.as_ref()))),
            entries.len(),
        )
    }

    /// Indexes borrowed entries (`VariantView::entry_refs`): nothing is copied.
    pub fn from_refs(entries: &'a [EntryRef<'a>]) -> FlatParams<'a> {
        Self::index(
            entries.iter().map(|e| {
                let src = e.file.map_or(Src::Unknown, |f| Src::At(f, e.line));
                (e.key, e.value, src)
            }),
            entries.len(),
        )
    }

    fn index(
        entries: impl Iterator<Item = (&'a str, &'a Value, Src<'a>)>,
        len: usize,
    ) -> FlatParams<'a> {
        let mut order = Vec::with_capacity(len);
        let mut index = HashMap::with_capacity_and_hasher(len * 2, BuildHasherDefault::default());
        let mut chains = Box::new([(NONE, NONE); SEGMENT_BUCKETS]);
        let mut next = Vec::with_capacity(len);
        for (k, v, o) in entries {
            if let Value::Str(s) = v {
                let pos = u32::try_from(order.len()).unwrap_or(u32::MAX);
                order.push((k, &**s, o));
                index.insert(k, pos);
                next.push(NONE);
                let chain = &mut chains[segment_bucket(k)];
                if chain.0 == NONE {
                    chain.0 = pos;
                } else if let Some(n) = next.get_mut(chain.1 as usize) {
                    *n = pos;
                }
                chain.1 = pos;
            }
        }
        FlatParams {
            order,
            index,
            chains,
            next,
        }
    }

    fn get(&self, key: &str) -> Option<(&'a str, Src<'a>)> {
        let i = *self.index.get(key)?;
        self.order.get(i as usize).map(|(_, v, o)| (*v, *o))
    }
}

/// Where an [`ObjParams`] reads from.
#[derive(Debug, Clone, Copy)]
enum Base<'a> {
    Params(&'a Params),
    Flat(&'a FlatParams<'a>),
}

impl<'a> Base<'a> {
    fn get(self, key: &str) -> Option<(&'a str, Src<'a>)> {
        match self {
            Base::Params(p) => p.get(key).map(|v| (v, p.origin(key).into())),
            Base::Flat(f) => f.get(key),
        }
    }

    fn for_each(self, mut f: impl FnMut(&'a str, &'a str, Src<'a>)) {
        match self {
            Base::Params(p) => p.iter_with_origin().for_each(|(k, v, o)| f(k, v, o.into())),
            Base::Flat(fl) => fl.order.iter().for_each(|(k, v, o)| f(k, v, *o)),
        }
    }

    /// As [`Base::for_each`], restricted (where an index allows) to keys that may end in
    /// `_<name>`: those with the last segment of `name`, in map order.
    fn for_each_ending(self, name: &str, mut f: impl FnMut(&'a str, &'a str, Src<'a>)) {
        match self {
            Base::Params(_) => self.for_each(f),
            Base::Flat(fl) => {
                let mut pos = fl.chains[segment_bucket(name)].0;
                while let Some(&(k, v, o)) = fl.order.get(pos as usize) {
                    f(k, v, o);
                    pos = fl.next.get(pos as usize).copied().unwrap_or(NONE);
                }
            }
        }
    }
}

/// The parameters as one object sees them, borrowed from a [`Params`] (or [`FlatParams`]).
#[derive(Debug, Clone)]
pub struct ObjParams<'a> {
    base: Base<'a>,
    over: Vec<Over<'a>>,
}

impl<'a> ObjParams<'a> {
    /// The whole map, no object selected.
    pub fn root(base: &'a Params) -> ObjParams<'a> {
        ObjParams {
            base: Base::Params(base),
            over: Vec::new(),
        }
    }

    /// The whole map of a [`FlatParams`], no object selected.
    pub fn flat(base: &'a FlatParams<'a>) -> ObjParams<'a> {
        ObjParams {
            base: Base::Flat(base),
            over: Vec::new(),
        }
    }

    /// The value of `key` in this view (empty strings included).
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.get_with_origin(key).map(|(v, _)| v)
    }

    /// The value of `key` and the `file:line` that set it.
    pub fn get_with_origin(&self, key: &str) -> Option<(&'a str, Src<'a>)> {
        if let Some((_, v, o)) = self.over.iter().find(|(k, _, _)| *k == key) {
            return Some((v, *o));
        }
        self.base.get(key)
    }

    /// The object names listed in `key`, as [`Params::objects`] splits them.
    pub fn objects(&self, key: &str) -> Vec<&'a str> {
        let mut out: Vec<&'a str> = Vec::new();
        for name in self.get(key).unwrap_or("").split_whitespace() {
            if !out.contains(&name) {
                out.push(name);
            }
        }
        out
    }

    /// The view of object `name` inside this view (`object_params(name)` of it).
    pub fn object(&self, name: &str) -> ObjParams<'a> {
        let mut child = self.clone();
        self.base.for_each_ending(name, |k, v, o| {
            let (v, o) = match self.over.iter().find(|(ok, _, _)| *ok == k) {
                Some((_, ov, oo)) => (*ov, *oo),
                None => (v, o),
            };
            visit(&mut child.over, name, k, v, o);
        });
        for &(k, v, o) in &self.over {
            if self.base.get(k).is_none() {
                visit(&mut child.over, name, k, v, o);
            }
        }
        child
    }
}

/// Applies one parent entry to the child's overrides when it ends in `_<name>`.
fn visit<'a>(over: &mut Vec<Over<'a>>, name: &str, k: &'a str, v: &'a str, o: Src<'a>) {
    let n = name.len();
    let kb = k.as_bytes();
    // Cheap rejections first: this runs for every key of every object view.
    if kb.len() <= n
        || kb[kb.len() - n - 1] != b'_'
        || name.as_bytes().last() != kb.last()
        || !k.ends_with(name)
    {
        return;
    }
    // The first occurrence of `_<name>` (it exists: the key ends with it).
    let mut end = k.len() - n - 1;
    let mut from = 0;
    while let Some(i) = k[from..].find(name).map(|i| i + from) {
        if i > 0 && k.as_bytes()[i - 1] == b'_' {
            end = i - 1;
            break;
        }
        from = i + 1;
    }
    let base_key = &k[..end];
    match over.iter_mut().find(|(ok, _, _)| *ok == base_key) {
        Some(slot) => *slot = (base_key, v, o),
        None => over.push((base_key, v, o)),
    }
}

/// What reading a family of keys found: every problem, and the origin of every value read.
#[derive(Debug, Default)]
pub struct Findings {
    /// Every bad key, in the order found.
    pub problems: Vec<Problem>,
    /// Where each value that was read came from.
    pub origins: Origins,
}

impl Findings {
    /// Nothing found yet.
    pub fn new() -> Findings {
        Findings::default()
    }
}

/// Reads typed values of one object, recording a [`Problem`] for each bad key and the
/// `file:line` of each value read.
pub struct Reader<'a, 'p> {
    /// The object's params.
    pub obj: ObjParams<'a>,
    /// The object's kind and name, e.g. `image`, `image1`.
    kind: &'static str,
    name: &'a str,
    found: &'p mut Findings,
}

impl<'a, 'p> Reader<'a, 'p> {
    /// A reader of object `kind name` (`image image1`) over `obj`, appending to `found`.
    pub fn new(
        obj: ObjParams<'a>,
        kind: &'static str,
        name: &'a str,
        found: &'p mut Findings,
    ) -> Self {
        Reader {
            obj,
            kind,
            name,
            found,
        }
    }

    /// The problems found so far by this reader and the others sharing its findings.
    pub fn problems(&self) -> &[Problem] {
        &self.found.problems
    }

    /// Records a problem about `key` (value and origin looked up here).
    pub fn problem(&mut self, key: &str, kind: ProblemKind) {
        let found = self.obj.get_with_origin(key);
        self.found.problems.push(Problem {
            object: format!("{} {}", self.kind, self.name),
            key: key.to_string(),
            value: found.map(|(v, _)| v.to_string()),
            origin: found.and_then(|(_, o)| o.origin()),
            kind,
        });
    }

    /// A non-empty value (empty counts as unset, as in the reference's truthiness tests). A value
    /// with a NUL byte cannot be an argv element and is reported.
    pub fn str(&mut self, key: &str) -> Option<&'a str> {
        self.assert_declared(key);
        let (v, src) = self
            .obj
            .get_with_origin(key)
            .filter(|(v, _)| !v.is_empty())?;
        self.found
            .origins
            .record(self.kind, self.name, key, v, src.origin());
        if v.contains('\0') {
            self.problem(
                key,
                ProblemKind::Invalid {
                    expected: "a value without NUL bytes".into(),
                },
            );
            return None;
        }
        Some(v)
    }

    /// The object names a list key (`images`, `nics`…) names, as [`ObjParams::objects`] splits
    /// them; like every read, the key must be declared and its value's origin is recorded.
    pub fn objects(&mut self, key: &str) -> Vec<&'a str> {
        self.assert_declared(key);
        if let Some((v, src)) = self.obj.get_with_origin(key).filter(|(v, _)| !v.is_empty()) {
            self.found
                .origins
                .record(self.kind, self.name, key, v, src.origin());
        }
        self.obj.objects(key)
    }

    /// Every key a reader reads is declared for its kind in `vm_keys` (checked in debug builds:
    /// a key read without a declaration fails every test that reads it).
    fn assert_declared(&self, key: &str) {
        debug_assert!(
            crate::vm_keys::is_declared(self.kind, key),
            "{} {}: key {key} is read but not declared in vm_keys",
            self.kind,
            self.name
        );
    }

    /// A QEMU option list as users write them in `*_extra_params` (`a=b,c`, one leading comma
    /// allowed): its items, or none and an `Invalid` problem naming the bad item, with `example`
    /// (`hotplug=off`) in the message.
    pub fn opt_list(&mut self, key: &str, example: &str) -> Vec<(String, Option<String>)> {
        let Some(text) = self.str(key) else {
            return Vec::new();
        };
        crate::opts::split_opt_list(text).unwrap_or_else(|item| {
            self.problem(
                key,
                ProblemKind::Invalid {
                    expected: format!("QEMU options such as `{example}` (bad item {item:?})"),
                },
            );
            Vec::new()
        })
    }

    /// A boolean that may be unset (`None`); a bad value is a problem, as [`Reader::bool`].
    pub fn opt_bool(&mut self, key: &str) -> Option<bool> {
        self.str(key)?;
        Some(self.bool(key, false))
    }

    /// [`Reader::str`], owned.
    pub fn string(&mut self, key: &str) -> Option<String> {
        self.str(key).map(str::to_string)
    }

    /// Like [`Reader::str`], but a missing value is a problem.
    pub fn require(&mut self, key: &str) -> Option<&'a str> {
        let v = self.str(key);
        if v.is_none() && !self.obj.get(key).is_some_and(|v| v.contains('\0')) {
            self.problem(key, ProblemKind::Missing);
        }
        v
    }

    /// Parses a non-empty value.
    pub fn parse<T: FromStr<Err = Expected>>(&mut self, key: &str) -> Option<T> {
        let v = self.str(key)?;
        match v.parse() {
            Ok(t) => Some(t),
            Err(Expected(expected)) => {
                self.problem(key, ProblemKind::Invalid { expected });
                None
            }
        }
    }

    /// A number (Rust integer syntax, no sign for unsigned types).
    pub fn num<T: FromStr>(&mut self, key: &str, what: &str) -> Option<T> {
        let v = self.str(key)?;
        match v.parse() {
            Ok(t) => Some(t),
            Err(_) => {
                self.problem(
                    key,
                    ProblemKind::Invalid {
                        expected: what.to_string(),
                    },
                );
                None
            }
        }
    }

    /// A boolean: `yes`/`on`/`true` or `no`/`off`/`false`; unset or empty is `default`.
    pub fn bool(&mut self, key: &str, default: bool) -> bool {
        match self.str(key) {
            None => default,
            Some("yes" | "on" | "true") => true,
            Some("no" | "off" | "false") => false,
            Some(_) => {
                self.problem(
                    key,
                    ProblemKind::Invalid {
                        expected: "a boolean (yes, no, on, off, true, false)".into(),
                    },
                );
                default
            }
        }
    }

    /// A view of a sub-object sharing this reader's problem list.
    pub fn child<'q>(&'q mut self, kind: &'static str, name: &'a str) -> Reader<'a, 'q> {
        Reader {
            obj: self.obj.object(name),
            kind,
            name,
            found: self.found,
        }
    }
}
