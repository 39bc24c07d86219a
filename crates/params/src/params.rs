//! [`Params`]: the string map one test variant runs with, and its per-object views.
//!
//! A `Params` is what the Cartesian parser produces for each variant and what every later stage
//! reads: an insertion-ordered map from parameter name to string value, in which each value may
//! remember the [`Origin`] (cfg file and line) of the statement that set it. It mirrors avocado-vt's
//! `virttest.utils_params.Params` and keeps its semantics where they are observable, because
//! existing cfg files depend on them:
//!
//! * [`Params::objects`] reads a list of object names (`vms`, `images`, `nics`…), whitespace
//!   separated, duplicates dropped, first-seen order kept.
//! * [`Params::object_params`] builds the view of one object, in which `key_<name>` overrides `key`.
//!   Views nest: the convention is `param_<image>_<vm>`, so take the VM's view first and the image's
//!   view of that.
//! * The typed getters accept exactly the spellings the reference accepts (`yes`/`on`/`true`,
//!   Python `int()` and `float()` literals, `name=value` lists).
//!
//! Where the reference returns `None`, raises a bare `ValueError`, or turns a missing parameter into
//! a test skip, this type returns a [`ParamError`] that names the key, the offending value and, when
//! known, the `file:line` that set it. `Params` itself stays a faithful string map and knows nothing
//! about QEMU: consumers read typed specs (the `spec` crate: `VmSpec`, `NicSpec`…) from it once and validate there.
//!
//! ```
//! use params::{Origin, Params};
//!
//! let mut p = Params::new();
//! p.insert("images", "image1 stg");
//! p.insert("image_name", "images/f18-64");
//! p.insert_with_origin("image_name_stg", "enospc", Some(Origin::new("tests.cfg", 7)));
//! p.insert("image_boot_stg", "maybe");
//!
//! assert_eq!(p.objects("images"), ["image1", "stg"]);
//! let stg = p.object_params("stg");
//! assert_eq!(stg.get("image_name"), Some("enospc"));
//! assert_eq!(stg.origin("image_name").map(ToString::to_string).as_deref(), Some("tests.cfg:7"));
//! // A value that is not a boolean is an error, never a silent `false`.
//! assert!(stg.get_bool("image_boot").is_err());
//! ```

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::iter::FusedIterator;
use std::str::FromStr;

use crate::fxhash::FxBuild;
use crate::origin::Origin;
use crate::pynum::{typed_float, typed_int};

/// Why reading a parameter failed.
///
/// Both variants name the key; [`ParamError::Invalid`] also carries the value, what was expected,
/// why the value does not fit, and where the value was set when that is known, so the message can
/// send the user straight to the cfg line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParamError {
    /// A mandatory parameter is not set. The message is the reference's, word for word, because
    /// users search for it.
    #[error("Mandatory parameter '{key}' is missing. Check your cfg files for typos/mistakes")]
    Missing {
        /// The parameter that was asked for.
        key: String,
    },
    /// A parameter is set, but its value cannot be read as the requested type.
    #[error(
        "{at}parameter '{key}' = {value:?}: expected {expected}: {reason}",
        at = OriginPrefix(.origin.as_ref())
    )]
    Invalid {
        /// The parameter that was read.
        key: String,
        /// Its value, verbatim.
        value: String,
        /// What the caller asked for, as a noun phrase (`"a boolean"`, `"an integer"`…) or, for
        /// [`Params::get_number`], the Rust type name.
        expected: &'static str,
        /// Where the value was set, if known.
        origin: Option<Origin>,
        /// What exactly is wrong with the value.
        reason: String,
    },
}

impl ParamError {
    /// The parameter this error is about.
    pub fn key(&self) -> &str {
        match self {
            ParamError::Missing { key } | ParamError::Invalid { key, .. } => key,
        }
    }

    /// Where the offending value was set, when it is known.
    pub fn origin(&self) -> Option<&Origin> {
        match self {
            ParamError::Missing { .. } => None,
            ParamError::Invalid { origin, .. } => origin.as_ref(),
        }
    }
}

/// Renders `file:line: ` before a message, or nothing: the compiler convention, which terminals
/// and editors turn into a link.
struct OriginPrefix<'a>(Option<&'a Origin>);

impl fmt::Display for OriginPrefix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(origin) => write!(f, "{origin}: "),
            None => Ok(()),
        }
    }
}

/// One parameter: its name, its value, and where it was set.
#[derive(Clone, Debug)]
struct Entry {
    key: String,
    value: String,
    origin: Option<Origin>,
}

/// An insertion-ordered map of parameter names to string values, each value optionally
/// remembering the cfg line that set it.
///
/// Setting a key that is already present replaces its value and origin but keeps its position,
/// as a Python `dict` does; removing a key keeps the order of the others. Nothing here panics:
/// there is deliberately no `Index` impl; use [`get`](Params::get) for optional parameters and
/// [`require`](Params::require) for mandatory ones.
///
/// Equality compares the keys and values as a map, like a Python `dict`: order and origins are
/// ignored. Compare [`iter`](Params::iter) results to check order too.
///
/// [`Display`](fmt::Display) prints one `key = value` line per parameter, sorted by key, like the
/// reference's `cartesian_config.py -c`; [`Debug`](fmt::Debug) prints the map in insertion order
/// with each value's origin.
#[derive(Clone, Default)]
pub struct Params {
    /// The parameters in insertion order.
    entries: Vec<Entry>,
    /// Position in `entries` of each key. Invariant: `index[e.key] == i` for every `entries[i]`,
    /// and `index` has no other keys.
    index: HashMap<String, usize, FxBuild>,
}

impl Params {
    /// Creates an empty `Params`.
    pub fn new() -> Self {
        Params::default()
    }

    /// Creates an empty `Params` with room for `capacity` parameters.
    pub fn with_capacity(capacity: usize) -> Self {
        Params {
            entries: Vec::with_capacity(capacity),
            index: HashMap::with_capacity_and_hasher(capacity, FxBuild::default()),
        }
    }

    /// Sets `key` to `value`, with no known origin, and returns the previous value.
    ///
    /// Use this for values computed by code; the parser uses
    /// [`insert_with_origin`](Params::insert_with_origin). A replaced value's origin is dropped
    /// with it, so an origin always describes the value it is attached to.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) -> Option<String> {
        self.insert_with_origin(key, value, None)
    }

    /// Sets `key` to `value`, set at `origin`, and returns the previous value.
    ///
    /// A new key goes at the end; an existing key keeps its position.
    pub fn insert_with_origin(
        &mut self,
        key: impl Into<String>,
        value: impl Into<String>,
        origin: Option<Origin>,
    ) -> Option<String> {
        let key = key.into();
        let value = value.into();
        let existing = self.index.get(&key).copied();
        if let Some(entry) = existing.and_then(|i| self.entries.get_mut(i)) {
            entry.origin = origin;
            return Some(std::mem::replace(&mut entry.value, value));
        }
        self.index.insert(key.clone(), self.entries.len());
        self.entries.push(Entry { key, value, origin });
        None
    }

    /// Copies every parameter of `other` into `self`, in `other`'s order, origins included, like
    /// Python's `dict.update`.
    pub fn update(&mut self, other: &Params) {
        for entry in &other.entries {
            self.set_from(&entry.key, entry);
        }
    }

    /// Sets `key` to the value and origin of `source`, another key's entry.
    fn set_from(&mut self, key: &str, source: &Entry) {
        self.insert_with_origin(key, source.value.as_str(), source.origin.clone());
    }

    fn entry(&self, key: &str) -> Option<&Entry> {
        self.index.get(key).and_then(|&i| self.entries.get(i))
    }

    /// The value of `key`, or `None` when it is not set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entry(key).map(|e| e.value.as_str())
    }

    /// The value of `key`, or `default` when it is not set (an empty value is returned as is).
    pub fn get_or<'a>(&'a self, key: &str, default: &'a str) -> &'a str {
        self.get(key).unwrap_or(default)
    }

    /// Where the value of `key` was set, when it is set and that is known.
    pub fn origin(&self, key: &str) -> Option<&Origin> {
        self.entry(key).and_then(|e| e.origin.as_ref())
    }

    /// The value of a mandatory parameter.
    ///
    /// # Errors
    ///
    /// [`ParamError::Missing`] when `key` is not set, with the reference's message
    /// `Mandatory parameter '<key>' is missing. Check your cfg files for typos/mistakes`.
    pub fn require(&self, key: &str) -> Result<&str, ParamError> {
        self.get(key).ok_or_else(|| missing(key))
    }

    /// Whether `key` is set (possibly to the empty string).
    pub fn contains_key(&self, key: &str) -> bool {
        self.index.contains_key(key)
    }

    /// Removes `key` and returns its value; the other parameters keep their order.
    ///
    /// This is O(n) in the number of parameters after `key`, like `IndexMap::shift_remove`.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        let position = self.index.remove(key)?;
        if position >= self.entries.len() {
            // Unreachable while the invariant holds; not worth a panic.
            return None;
        }
        let removed = self.entries.remove(position);
        for entry in &self.entries[position..] {
            if let Some(slot) = self.index.get_mut(entry.key.as_str()) {
                *slot -= 1;
            }
        }
        Some(removed.value)
    }

    /// The number of parameters.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no parameters.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The parameters as `(key, value)` pairs, in insertion order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            inner: self.entries.iter(),
        }
    }

    /// The parameters as `(key, value, origin)` triples, in insertion order.
    pub fn iter_with_origin(
        &self,
    ) -> impl DoubleEndedIterator<Item = (&str, &str, Option<&Origin>)> + ExactSizeIterator + '_
    {
        self.entries
            .iter()
            .map(|e| (e.key.as_str(), e.value.as_str(), e.origin.as_ref()))
    }

    /// The keys, in insertion order.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &str> + ExactSizeIterator + '_ {
        self.entries.iter().map(|e| e.key.as_str())
    }

    /// The values, in insertion order.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &str> + ExactSizeIterator + '_ {
        self.entries.iter().map(|e| e.value.as_str())
    }

    /// The names of the objects listed in `key` (`vms`, `images`, `nics`…).
    ///
    /// The value is split on whitespace, as Python's `str.split()` does (any Unicode whitespace,
    /// including U+001C..U+001F, which Rust's `char::is_whitespace` leaves out); duplicates are
    /// dropped and first-seen order is kept. A missing or empty value lists no objects.
    pub fn objects(&self, key: &str) -> Vec<&str> {
        let mut seen = HashSet::new();
        split_py_whitespace(self.get(key).unwrap_or(""))
            .filter(|name| seen.insert(*name))
            .collect()
    }

    /// The view of the object `name`: a copy in which each `key_<name>` also sets `key`.
    ///
    /// For every key ending in `"_" + name`, in insertion order, the text before the **first**
    /// occurrence of `"_" + name` is set to that key's value (and origin). So a per-object value
    /// overrides the generic one wherever either was written, and the suffixed keys stay in the
    /// view. Exactly as in the reference, with the corner cases that follow from it: when two keys
    /// map to the same base (`mem_vm1` and `mem_vm1_vm1` both write `mem`) the later one in map order
    /// wins; `a_1_b_1` with name `1` writes `a`; a key equal to `"_" + name` writes the empty key.
    ///
    /// Views nest by the convention `param_<image>_<vm>`: take `object_params(vm)`, then
    /// `object_params(image)` of that, and `image_name_stg_vm1` beats `image_name_vm1`, which beats
    /// `image_name_stg`, which beats `image_name`.
    pub fn object_params(&self, name: &str) -> Params {
        let suffix = format!("_{name}");
        let mut view = self.clone();
        // Reading the sources from `self` rather than from `view` is equivalent to the reference:
        // a written base is the text before the first occurrence of the suffix, so it never ends
        // with the suffix and is never itself a source.
        for entry in &self.entries {
            if !entry.key.ends_with(&suffix) {
                continue;
            }
            if let Some(end) = entry.key.find(&suffix) {
                view.set_from(&entry.key[..end], entry);
            }
        }
        view
    }

    /// The numbered objects `base1`, `base2`… up to the count in `count_key`, each with its value.
    ///
    /// The count defaults to 1 when `count_key` is not set; a count below 1 yields nothing. Each
    /// item is `(format!("{base}{i}"), self.get(that key))`, as the reference's generator yields.
    ///
    /// # Errors
    ///
    /// [`ParamError::Invalid`] when the count is not an integer.
    pub fn object_counts(
        &self,
        count_key: &str,
        base: &str,
    ) -> Result<impl Iterator<Item = (String, Option<&str>)> + '_, ParamError> {
        let count = self.get_i64(count_key)?.unwrap_or(1);
        let base = base.to_owned();
        Ok((1..=count).map(move |i| {
            let key = format!("{base}{i}");
            let value = self.get(&key);
            (key, value)
        }))
    }

    /// A new `Params` holding only the listed keys, in the order listed, whose values are
    /// non-empty (the reference keeps "truthy" values), origins included.
    pub fn copy_from_keys<I>(&self, keys: I) -> Params
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let mut copy = Params::new();
        for key in keys {
            if let Some(entry) = self.entry(key.as_ref()).filter(|e| !e.value.is_empty()) {
                copy.set_from(&entry.key, entry);
            }
        }
        copy
    }

    /// A new `Params` without the internal keys, those starting with `_` (the reference's
    /// `drop_dict_internals`).
    pub fn drop_internals(&self) -> Params {
        let mut kept = Params::with_capacity(self.len());
        for entry in self.entries.iter().filter(|e| !e.key.starts_with('_')) {
            kept.set_from(&entry.key, entry);
        }
        kept
    }

    /// Reads `key` as a boolean: `yes`, `on`, `true` are true; `no`, `off`, `false` are false.
    /// `None` when the key is not set.
    ///
    /// The spellings are matched exactly, as the reference does: `Yes` and ` yes` are errors,
    /// not a silent `false`.
    ///
    /// # Errors
    ///
    /// [`ParamError::Invalid`] for any other value.
    pub fn get_bool(&self, key: &str) -> Result<Option<bool>, ParamError> {
        self.parse_with(key, "a boolean", |value| match value {
            "yes" | "on" | "true" => Ok(true),
            "no" | "off" | "false" => Ok(false),
            _ => Err("accepted spellings are yes, on, true, no, off, false".to_owned()),
        })
    }

    /// Reads `key` as a boolean like [`get_bool`](Params::get_bool), with `default` when it is
    /// not set (the reference's `get_boolean(key, default)`).
    ///
    /// # Errors
    ///
    /// [`ParamError::Invalid`] when the value is not one of the accepted spellings.
    pub fn get_bool_or(&self, key: &str, default: bool) -> Result<bool, ParamError> {
        Ok(self.get_bool(key)?.unwrap_or(default))
    }

    /// Reads a mandatory boolean like [`get_bool`](Params::get_bool).
    ///
    /// # Errors
    ///
    /// [`ParamError::Missing`] when not set, [`ParamError::Invalid`] when not a boolean.
    pub fn require_bool(&self, key: &str) -> Result<bool, ParamError> {
        self.get_bool(key)?.ok_or_else(|| missing(key))
    }

    /// Reads `key` with `T`'s own [`FromStr`], verbatim (no trimming, no prefixes): the hook for
    /// domain types such as a MAC address or a byte size. `None` when the key is not set.
    ///
    /// For plain integers prefer [`get_u64`](Params::get_u64) / [`get_i64`](Params::get_i64),
    /// which accept the Python literals cfg files use (`0x1000`, `1_024`).
    ///
    /// # Errors
    ///
    /// [`ParamError::Invalid`], with `T`'s type name as `expected` and its parse error as the
    /// reason.
    pub fn get_number<T>(&self, key: &str) -> Result<Option<T>, ParamError>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        self.parse_with(key, std::any::type_name::<T>(), |value| {
            value.parse::<T>().map_err(|e| e.to_string())
        })
    }

    /// Reads a mandatory value like [`get_number`](Params::get_number).
    ///
    /// # Errors
    ///
    /// [`ParamError::Missing`] when not set, [`ParamError::Invalid`] when `T` rejects the value.
    pub fn require_number<T>(&self, key: &str) -> Result<T, ParamError>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        self.get_number(key)?.ok_or_else(|| missing(key))
    }

    /// Reads `key` as a signed integer written as a Python integer literal. `None` when not set.
    ///
    /// Accepted is everything Python's `int(value)` or `int(value, 0)` accepts (the reference has
    /// used both): surrounding whitespace, a sign, `0x`/`0o`/`0b` prefixes in either case, and
    /// single underscores between digits (`1_000`, `0x_ff`). Decimal leading zeros (`010`) read as
    /// decimal, as `int(value)` does; `int(value, 0)` would reject them, never read them as octal.
    /// Only ASCII digits are accepted, unlike Python.
    ///
    /// # Errors
    ///
    /// [`ParamError::Invalid`] when the value is not such a literal or does not fit an `i64`.
    pub fn get_i64(&self, key: &str) -> Result<Option<i64>, ParamError> {
        self.parse_with(key, "an integer", |value| {
            let (negative, magnitude) = typed_int(value)?;
            let magnitude = i128::try_from(magnitude).map_err(|_| OUT_OF_RANGE_I64.to_owned())?;
            let signed = if negative { -magnitude } else { magnitude };
            i64::try_from(signed).map_err(|_| OUT_OF_RANGE_I64.to_owned())
        })
    }

    /// Reads a mandatory signed integer like [`get_i64`](Params::get_i64).
    ///
    /// # Errors
    ///
    /// [`ParamError::Missing`] when not set, [`ParamError::Invalid`] when not an `i64` literal.
    pub fn require_i64(&self, key: &str) -> Result<i64, ParamError> {
        self.get_i64(key)?.ok_or_else(|| missing(key))
    }

    /// Reads `key` as an unsigned integer, with the literals [`get_i64`](Params::get_i64)
    /// accepts (`-0` included). `None` when not set.
    ///
    /// # Errors
    ///
    /// [`ParamError::Invalid`] when the value is not such a literal, is negative, or does not fit
    /// a `u64`.
    pub fn get_u64(&self, key: &str) -> Result<Option<u64>, ParamError> {
        self.parse_with(key, "an unsigned integer", |value| {
            let (negative, magnitude) = typed_int(value)?;
            if negative && magnitude != 0 {
                return Err("negative".to_owned());
            }
            u64::try_from(magnitude).map_err(|_| "out of range for u64".to_owned())
        })
    }

    /// Reads a mandatory unsigned integer like [`get_u64`](Params::get_u64).
    ///
    /// # Errors
    ///
    /// [`ParamError::Missing`] when not set, [`ParamError::Invalid`] when not a `u64` literal.
    pub fn require_u64(&self, key: &str) -> Result<u64, ParamError> {
        self.get_u64(key)?.ok_or_else(|| missing(key))
    }

    /// Reads `key` as a floating-point number, as Python's `float(value)` does: surrounding
    /// whitespace, exponents, single underscores between digits, `inf`, `infinity` and `nan` in
    /// any case. `None` when not set.
    ///
    /// # Errors
    ///
    /// [`ParamError::Invalid`] when the value is not such a literal.
    pub fn get_f64(&self, key: &str) -> Result<Option<f64>, ParamError> {
        self.parse_with(key, "a number", typed_float)
    }

    /// Reads a mandatory floating-point number like [`get_f64`](Params::get_f64).
    ///
    /// # Errors
    ///
    /// [`ParamError::Missing`] when not set, [`ParamError::Invalid`] when not a number.
    pub fn require_f64(&self, key: &str) -> Result<f64, ParamError> {
        self.get_f64(key)?.ok_or_else(|| missing(key))
    }

    /// Splits the value of `key` into a list, as Python's `value.split(delimiter)` does.
    ///
    /// `None` splits on runs of whitespace and drops empty items, like [`objects`](Params::objects)
    /// but keeping duplicates. `Some(d)` splits at every `d` and keeps empty items (`"a,,b"` gives
    /// `a`, ``, `b`). A missing or empty value gives an empty list. An empty delimiter, which
    /// Python rejects, does not split: the whole value is the one item.
    pub fn get_list(&self, key: &str, delimiter: Option<&str>) -> Vec<&str> {
        match self.get(key) {
            None | Some("") => Vec::new(),
            Some(value) => split_list(value, delimiter),
        }
    }

    /// Reads `key` as `name=value` entries (`"name1=value1 name2=value2"`), in order.
    ///
    /// The value is split like [`get_list`](Params::get_list); each entry is split at its first
    /// `=` and both sides are stripped of whitespace. Like a Python `dict`, a repeated name keeps
    /// its first position and takes its last value. A missing or empty value gives no entries.
    /// Note that with the default whitespace split `b = 2` is three entries, `b`, `=` and `2`,
    /// and is an error.
    ///
    /// # Errors
    ///
    /// [`ParamError::Invalid`] naming the first entry that has no `=`.
    pub fn get_dict(
        &self,
        key: &str,
        delimiter: Option<&str>,
    ) -> Result<Vec<(String, String)>, ParamError> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        let mut positions: HashMap<&str, usize> = HashMap::new();
        for item in self.get_list(key, delimiter) {
            let Some((name, value)) = item.split_once('=') else {
                return Err(self.invalid(
                    key,
                    "name=value entries",
                    format!("entry {item:?} has no '='"),
                ));
            };
            let (name, value) = (name.trim(), value.trim());
            match positions.get(name) {
                Some(&i) => {
                    if let Some(pair) = pairs.get_mut(i) {
                        pair.1 = value.to_owned();
                    }
                }
                None => {
                    positions.insert(name, pairs.len());
                    pairs.push((name.to_owned(), value.to_owned()));
                }
            }
        }
        Ok(pairs)
    }

    /// Applies `parse` to the value of `key`, turning its failure into a [`ParamError::Invalid`]
    /// that carries the value and its origin.
    fn parse_with<T>(
        &self,
        key: &str,
        expected: &'static str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ParamError> {
        let Some(value) = self.get(key) else {
            return Ok(None);
        };
        parse(value)
            .map(Some)
            .map_err(|reason| self.invalid(key, expected, reason))
    }

    fn invalid(&self, key: &str, expected: &'static str, reason: impl Into<String>) -> ParamError {
        let entry = self.entry(key);
        ParamError::Invalid {
            key: key.to_owned(),
            value: entry.map(|e| e.value.clone()).unwrap_or_default(),
            expected,
            origin: entry.and_then(|e| e.origin.clone()),
            reason: reason.into(),
        }
    }
}

fn missing(key: &str) -> ParamError {
    ParamError::Missing {
        key: key.to_owned(),
    }
}

/// Python's `str.isspace()`: Rust's `char::is_whitespace` plus the four ASCII information
/// separators U+001C..U+001F, which Python's `str.split()` also splits on.
fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `value.split()`: runs of whitespace separate items, no empty items.
fn split_py_whitespace(value: &str) -> impl Iterator<Item = &str> {
    value.split(is_py_space).filter(|item| !item.is_empty())
}

/// Python's `value.split(delimiter)`, except that an empty delimiter does not split.
fn split_list<'a>(value: &'a str, delimiter: Option<&str>) -> Vec<&'a str> {
    match delimiter {
        None => split_py_whitespace(value).collect(),
        Some("") => vec![value],
        Some(delimiter) => value.split(delimiter).collect(),
    }
}

const OUT_OF_RANGE_I64: &str = "out of range for i64";

/// The iterator returned by [`Params::iter`]: `(key, value)` pairs in insertion order.
#[derive(Clone, Debug)]
pub struct Iter<'a> {
    inner: std::slice::Iter<'a, Entry>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        self.inner
            .next()
            .map(|e| (e.key.as_str(), e.value.as_str()))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.inner
            .next_back()
            .map(|e| (e.key.as_str(), e.value.as_str()))
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl FusedIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a Params {
    type Item = (&'a str, &'a str);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Params {
    /// Collects pairs with no known origin; a repeated key keeps its first position and takes
    /// its last value.
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut params = Params::new();
        params.extend(iter);
        params
    }
}

impl<K: Into<String>, V: Into<String>> Extend<(K, V)> for Params {
    /// Inserts pairs with no known origin, as [`Params::insert`] does.
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        for (key, value) in iter {
            self.insert(key, value);
        }
    }
}

impl<K: Into<String>, V: Into<String>, const N: usize> From<[(K, V); N]> for Params {
    /// Builds a `Params` from literal pairs, in order, with no known origins.
    fn from(pairs: [(K, V); N]) -> Self {
        pairs.into_iter().collect()
    }
}

impl PartialEq for Params {
    /// Map equality, as for a Python `dict`: same keys with the same values, whatever the order
    /// and the origins.
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len()
            && self
                .entries
                .iter()
                .all(|e| other.get(&e.key) == Some(e.value.as_str()))
    }
}

impl Eq for Params {}

impl fmt::Display for Params {
    /// One `key = value` line per parameter, sorted by key, without a trailing newline.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sorted: Vec<&Entry> = self.entries.iter().collect();
        sorted.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        for (i, entry) in sorted.into_iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{} = {}", entry.key, entry.value)?;
        }
        Ok(())
    }
}

impl fmt::Debug for Params {
    /// The map in insertion order, each value followed by `@ file:line` when its origin is known.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Value<'a>(&'a Entry);
        impl fmt::Debug for Value<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match &self.0.origin {
                    Some(origin) => write!(f, "{:?} @ {origin}", self.0.value),
                    None => write!(f, "{:?}", self.0.value),
                }
            }
        }
        f.debug_map()
            .entries(self.entries.iter().map(|e| (&e.key, Value(e))))
            .finish()
    }
}
