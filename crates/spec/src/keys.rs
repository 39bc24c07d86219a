//! Declared keys and the typed getters that read them.
//!
//! A family of keys (the session's, the runner's processing, one catalogue test's) is a table
//! of [`KeyDoc`]s: name, default as cfg text, whether it is required, what it means. That table
//! is what a reader, a `lint` and a README key table share. [`Keys`] reads values of one object
//! *through* its table: the default comes from the declaration, never from the call site, and
//! every bad value becomes a [`Problem`] naming the key, the value and the cfg `file:line` that
//! set it — all of them collected, then returned at once by [`Keys::finish`].
//!
//! Value syntax is avocado-vt's: booleans `yes`/`no` (also `on`/`off`, `true`/`false`), numbers
//! and seconds as Python's `int()`/`float()` read them.

use std::borrow::Cow;
use std::time::Duration;

use params::Params;
use regex::Regex;

use crate::problem::{sort_problems, Problem, ProblemKind, SpecError};

/// One key of a family: its name, its default as the cfg would write it, whether a variant must
/// set it, and what it means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyDoc {
    /// The parameter.
    pub key: &'static str,
    /// Its default, as cfg text (`None`: no default; see `meaning`).
    pub default: Option<&'static str>,
    /// Whether the object cannot do without it (a missing value is a problem).
    pub required: bool,
    /// What it means.
    pub meaning: &'static str,
}

impl KeyDoc {
    /// A key with a default.
    pub const fn with_default(
        key: &'static str,
        default: &'static str,
        meaning: &'static str,
    ) -> Self {
        KeyDoc {
            key,
            default: Some(default),
            required: false,
            meaning,
        }
    }

    /// An optional key without a default: unset means "not asked for".
    pub const fn optional(key: &'static str, meaning: &'static str) -> Self {
        KeyDoc {
            key,
            default: None,
            required: false,
            meaning,
        }
    }

    /// A key the object cannot do without.
    pub const fn required(key: &'static str, meaning: &'static str) -> Self {
        KeyDoc {
            key,
            default: None,
            required: true,
            meaning,
        }
    }
}

/// The declaration of `key` in `docs`, if any.
pub fn find(docs: &[KeyDoc], key: &str) -> Option<KeyDoc> {
    docs.iter().find(|d| d.key == key).copied()
}

/// Typed reads of one object's keys through their declarations, collecting every problem.
///
/// Reading a key that `docs` does not declare is a bug of the reader (the table is what users
/// and `lint` see), caught by `debug_assert!` in tests.
#[derive(Debug)]
pub struct Keys<'a> {
    params: Cow<'a, Params>,
    object: String,
    docs: &'static [KeyDoc],
    problems: Vec<Problem>,
}

impl<'a> Keys<'a> {
    /// Reads `params` (the object's view, e.g. `params.object_params(vm)`) as object `object`
    /// (`vm vm1`, `test boot`) whose keys `docs` declares.
    pub fn new(params: &'a Params, object: impl Into<String>, docs: &'static [KeyDoc]) -> Self {
        Keys {
            params: Cow::Borrowed(params),
            object: object.into(),
            docs,
            problems: Vec::new(),
        }
    }

    /// The params read.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The keys of sub-object `name` (its object view: `key_NAME` overrides `key`), read as
    /// object `object` through `docs`.
    pub fn object(
        &self,
        name: &str,
        object: impl Into<String>,
        docs: &'static [KeyDoc],
    ) -> Keys<'static> {
        Keys {
            params: Cow::Owned(self.params.object_params(name)),
            object: object.into(),
            docs,
            problems: Vec::new(),
        }
    }

    /// A whitespace-separated list (the names of sub-objects, such as `images`); unset: the
    /// declared default's items, else none.
    pub fn list(&mut self, key: &str) -> Vec<String> {
        self.opt(key)
            .map(|v| v.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default()
    }

    fn doc(&self, key: &str) -> Option<KeyDoc> {
        let doc = find(self.docs, key);
        debug_assert!(
            doc.is_some(),
            "{}: key {key} is read but not declared",
            self.object
        );
        doc
    }

    /// Records a problem about `key` (its value and origin looked up here).
    pub fn problem(&mut self, key: &str, kind: ProblemKind) {
        self.problems.push(Problem {
            object: self.object.clone(),
            key: key.to_string(),
            value: self.params.get(key).map(str::to_string),
            origin: self.params.origin(key).cloned(),
            kind,
        });
    }

    fn invalid(&mut self, key: &str, expected: impl Into<String>) {
        self.problem(
            key,
            ProblemKind::Invalid {
                expected: expected.into(),
            },
        );
    }

    /// The value as set (empty counts as unset), else the declared default; a required key that
    /// is unset is a problem.
    pub fn opt(&mut self, key: &str) -> Option<String> {
        let doc = self.doc(key);
        match self.params.get(key).filter(|v| !v.is_empty()) {
            Some(v) => Some(v.to_string()),
            None => {
                if doc.is_some_and(|d| d.required) {
                    self.problem(key, ProblemKind::Missing);
                }
                doc.and_then(|d| d.default).map(str::to_string)
            }
        }
    }

    /// [`Keys::opt`], or the empty string.
    pub fn text(&mut self, key: &str) -> String {
        self.opt(key).unwrap_or_default()
    }

    /// Like [`Keys::opt`], the value as written, empty included (for keys where an empty value
    /// means something, such as an empty password).
    pub fn raw(&mut self, key: &str) -> String {
        match self.params.get(key) {
            Some(v) => v.to_string(),
            None => self.text(key),
        }
    }

    /// A value parsed by `parse`, which says what it expected when the value is bad.
    pub fn parse<T>(
        &mut self,
        key: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let v = self.opt(key)?;
        match parse(v.trim()) {
            Ok(t) => Some(t),
            Err(expected) => {
                self.invalid(key, expected);
                None
            }
        }
    }

    /// A regular expression; `multi_line`: `^`/`$` match at line ends (prompts).
    pub fn regex(&mut self, key: &str, multi_line: bool) -> Option<Regex> {
        let v = self.opt(key)?;
        let pattern = if multi_line { format!("(?m){v}") } else { v };
        match crate::regex_cache::regex(&pattern) {
            Ok(r) => Some((*r).clone()),
            Err(e) => {
                self.invalid(key, format!("a regular expression ({e})"));
                None
            }
        }
    }

    /// A boolean (`yes`/`no`, `on`/`off`, `true`/`false`); unset: the declared default, else
    /// `false`.
    pub fn bool(&mut self, key: &str) -> bool {
        self.parse(key, |v| match v {
            "yes" | "on" | "true" => Ok(true),
            "no" | "off" | "false" => Ok(false),
            _ => Err("a boolean (yes, no, on, off, true, false)".into()),
        })
        .unwrap_or(false)
    }

    /// A number read by the params' own Python-syntax reader `read`; the declared default (cfg
    /// text too) is read the same way.
    fn number<T>(
        &mut self,
        key: &str,
        expected: &str,
        read: impl Fn(&Params, &str) -> Result<Option<T>, params::ParamError>,
    ) -> Option<T> {
        let set = self.params.get(key).is_some_and(|v| !v.is_empty());
        let (source, owned);
        if set {
            source = &*self.params;
        } else {
            let default = self.opt(key)?;
            let mut p = Params::new();
            p.insert(key, default.as_str());
            owned = p;
            source = &owned;
        }
        match read(source, key) {
            Ok(n) => n,
            Err(_) => {
                self.invalid(key, expected);
                None
            }
        }
    }

    /// An unsigned integer (Python `int()` syntax).
    pub fn u64(&mut self, key: &str) -> Option<u64> {
        self.number(key, "a whole number such as 3", Params::get_u64)
    }

    /// A duration in seconds (Python `float()` syntax), finite and not negative.
    pub fn secs(&mut self, key: &str) -> Option<Duration> {
        let s = self.number(
            key,
            "a number of seconds such as 360 or 2.5",
            Params::get_f64,
        )?;
        match Duration::try_from_secs_f64(s) {
            Ok(d) => Some(d),
            Err(_) => {
                self.invalid(key, "a number of seconds, finite and not negative");
                None
            }
        }
    }

    /// A TCP port, 1–65535.
    pub fn port(&mut self, key: &str) -> Option<u16> {
        self.parse(key, |v| match v.parse::<u16>() {
            Ok(p) if p > 0 => Ok(p),
            _ => Err("a TCP port (1-65535)".into()),
        })
    }

    /// One of `choices` (`(spelling, value)`); anything else is a problem listing them.
    pub fn choice<T: Copy>(&mut self, key: &str, choices: &[(&str, T)]) -> Option<T> {
        self.parse(key, |v| {
            choices
                .iter()
                .find(|(s, _)| *s == v)
                .map(|(_, t)| *t)
                .ok_or_else(|| {
                    let names: Vec<&str> = choices.iter().map(|(s, _)| *s).collect();
                    format!("one of {}", names.join(", "))
                })
        })
    }

    /// The problems found so far.
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }

    /// Moves the problems out (to merge them with another family's).
    pub fn take_problems(&mut self) -> Vec<Problem> {
        std::mem::take(&mut self.problems)
    }

    /// Takes in problems found by other readers (a sub-object's), so [`Keys::finish`] reports
    /// them with this object's.
    pub fn absorb(&mut self, problems: Vec<Problem>) {
        self.problems.extend(problems);
    }

    /// `value` when nothing was wrong, else every problem, in cfg order.
    ///
    /// # Errors
    /// [`SpecError::Object`] listing the problems.
    pub fn finish<T>(self, value: T) -> Result<T, SpecError> {
        if self.problems.is_empty() {
            return Ok(value);
        }
        let mut problems = self.problems;
        sort_problems(&mut problems);
        Err(SpecError::Object {
            object: self.object,
            problems,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::params;

    const DOCS: &[KeyDoc] = &[
        KeyDoc::with_default("count", "2", "how many"),
        KeyDoc::required("target", "what"),
        KeyDoc::optional("wait", "seconds"),
        KeyDoc::with_default("flag", "yes", "a switch"),
        KeyDoc::optional("mode", "a or b"),
    ];

    #[test]
    fn defaults_come_from_the_declaration() {
        let p = params(&[("target", "x")]);
        let mut k = Keys::new(&p, "test t", DOCS);
        assert_eq!(k.u64("count"), Some(2));
        assert!(k.bool("flag"));
        assert_eq!(k.secs("wait"), None);
        assert_eq!(k.opt("target").as_deref(), Some("x"));
        assert!(k.finish(()).is_ok());
    }

    #[test]
    fn every_bad_value_and_missing_key_is_reported() {
        let p = params(&[
            ("count", "many"),
            ("wait", "-1"),
            ("flag", "maybe"),
            ("mode", "c"),
        ]);
        let mut k = Keys::new(&p, "test t", DOCS);
        let _ = (
            k.u64("count"),
            k.secs("wait"),
            k.bool("flag"),
            k.opt("target"),
        );
        let _ = k.choice("mode", &[("a", 1), ("b", 2)]);
        let err = k.finish(()).err().unwrap_or_else(|| panic!("accepted"));
        let keys: Vec<&str> = err.problems().iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys.len(), 5, "{err}");
        for key in ["count", "wait", "flag", "target", "mode"] {
            assert!(keys.contains(&key), "{key} not reported: {err}");
        }
        assert!(err.to_string().contains("one of a, b"), "{err}");
        assert!(err.to_string().contains("test t"), "{err}");
    }

    #[test]
    fn sub_objects_and_lists() {
        const SUB: &[KeyDoc] = &[KeyDoc::optional("name", "a name")];
        const TOP: &[KeyDoc] = &[KeyDoc::optional("items", "the items")];
        let p = params(&[("items", "a b"), ("name", "x"), ("name_b", "y")]);
        let mut k = Keys::new(&p, "test t", TOP);
        let names: Vec<Option<String>> = k
            .list("items")
            .iter()
            .map(|i| k.object(i, format!("item {i}"), SUB).opt("name"))
            .collect();
        assert_eq!(names, [Some("x".into()), Some("y".into())]);
    }

    /// A sub-object's view is owned (it outlives the parent's borrow) and its problems name
    /// the sub-object, the value of its override and where that was set.
    #[test]
    fn sub_object_problems_name_the_object_and_the_origin() {
        const SUB: &[KeyDoc] = &[KeyDoc::with_default("n", "1", "a number")];
        let mut p = params(&[("n", "2")]);
        p.insert_with_origin("n_b", "many", Some(params::Origin::new("t.cfg", 7)));
        let (mut a, mut b) = {
            let k = Keys::new(&p, "test t", SUB);
            (k.object("a", "item a", SUB), k.object("b", "item b", SUB))
        };
        assert_eq!(a.u64("n"), Some(2));
        assert!(a.finish(()).is_ok());
        assert_eq!(b.u64("n"), None);
        let err = b.finish(()).err().unwrap_or_else(|| panic!("accepted"));
        let msg = err.to_string();
        assert!(msg.contains("item b"), "{msg}");
        assert!(msg.contains("\"many\""), "{msg}");
        assert!(msg.contains("t.cfg:7"), "{msg}");
        // Absorbed by the parent, a sub-object's problems are the parent's error.
        let mut parent = Keys::new(&p, "test t", SUB);
        let mut c = parent.object("b", "item b", SUB);
        let _ = c.u64("n");
        parent.absorb(c.take_problems());
        let err = parent
            .finish(())
            .err()
            .unwrap_or_else(|| panic!("accepted"));
        assert!(err.to_string().contains("item b: n = \"many\""), "{err}");
    }

    #[test]
    fn python_number_syntax() {
        let p = params(&[("count", " 1_0 "), ("wait", "2.5")]);
        let mut k = Keys::new(&p, "test t", DOCS);
        assert_eq!(k.u64("count"), Some(10));
        assert_eq!(k.secs("wait"), Some(Duration::from_millis(2500)));
    }
}
