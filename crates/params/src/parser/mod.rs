//! The parser: config text → [`Config`] tree, following the reference's `_parse` statement by
//! statement so that errors happen in the same cases and at the same lines.
//!
//! This file holds the public face ([`Parser`], [`ParserOptions`]), the parse of one source, the
//! tree-building helpers every statement uses, and reading (and resolving) included files. The
//! statements themselves are in the submodules:
//!
//! * `cursor`: the token cursor over a source's lines (`Lexer`) and its located errors;
//! * `block`: one block of statements (`parse_block`) and conditions;
//! * `assign`: assignments and the reference's pre-dict batching of plain `k = v`;
//! * `variants`: a `variants` header and its `- name:` entries;
//! * `filter`: filter expressions (`only`, `no`, `join`, conditions, entry dependencies).

mod assign;
mod block;
mod cursor;
mod filter;
mod variants;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, ErrorKind};
use crate::lexer::Reader;
use crate::tree::{CondId, Item, NodeId, Op, OpData, Pos};
use crate::Config;

use cursor::Lexer;

/// Options of a [`Parser`].
#[derive(Debug, Clone, Default)]
pub struct ParserOptions {
    /// Defaults mode: only the default entry of each block is used, unless it yields nothing.
    pub defaults: bool,
    /// Names of `variants NAME:` blocks that are fully expanded in defaults mode.
    pub expand_defaults: Vec<String>,
    /// Keep suffixed duplicates when flattening (the reference CLI's `-s`).
    pub keep_dups: bool,
}

/// Builds a [`Config`] from files and strings, in order.
///
/// ```
/// let mut p = params::Parser::new(Default::default());
/// p.parse_str("a = 1\nvariants:\n    - x:\n    - y:\n        a += 2\n").unwrap();
/// let cfg = p.finish();
/// let names: Vec<String> = cfg.collect().unwrap().into_iter().map(|v| v.name).collect();
/// assert_eq!(names, ["x", "y"]);
/// ```
#[derive(Debug)]
pub struct Parser {
    cfg: Config,
    root: NodeId,
    includes: Vec<PathBuf>,
    /// Independent errors found so far in the current parse call.
    errors: Vec<Error>,
}
#[derive(Clone, Copy)]
enum Target {
    Node(NodeId),
    Cond(CondId),
}
impl Parser {
    /// A parser with the given options and an empty config.
    pub fn new(options: ParserOptions) -> Parser {
        let mut cfg = Config::empty(options);
        let root = cfg.new_node();
        Parser {
            cfg,
            root,
            includes: Vec::new(),
            errors: Vec::new(),
        }
    }

    /// Parse a file; relative includes are resolved against its directory.
    pub fn parse_file(&mut self, path: impl AsRef<Path>) -> Result<(), Error> {
        let path = path.as_ref();
        let name: Arc<str> = Arc::from(path.to_string_lossy().as_ref());
        let text = read_config(path, None)?;
        self.includes.clear();
        if let Ok(c) = path.canonicalize() {
            self.includes.push(c);
        }
        let r = self.parse_source(name, true, &text);
        self.includes.clear();
        r
    }

    /// Parse config text (file name `<string>`; relative includes use the working directory).
    pub fn parse_str(&mut self, text: &str) -> Result<(), Error> {
        self.includes.clear();
        self.parse_source(Arc::from("<string>"), false, text)
    }

    /// `only FILTER`, as the reference's `only_filter`.
    pub fn only_filter(&mut self, filter: &str) -> Result<(), Error> {
        self.parse_str(&format!("only {filter}"))
    }

    /// `no FILTER`, as the reference's `no_filter`.
    pub fn no_filter(&mut self, filter: &str) -> Result<(), Error> {
        self.parse_str(&format!("no {filter}"))
    }

    /// `key = value`, as the reference's `assign`.
    pub fn assign(&mut self, key: &str, value: &str) -> Result<(), Error> {
        self.parse_str(&format!("{key} = {value}"))
    }

    /// Freeze the parsed config.
    pub fn finish(mut self) -> Config {
        self.cfg.root = self.root;
        self.cfg.finish();
        self.cfg
    }

    fn parse_source(&mut self, name: Arc<str>, is_file: bool, text: &str) -> Result<(), Error> {
        let file = self.cfg.add_file(name.clone(), text);
        let mut lx = Lexer::new(Reader::new(name, is_file, text), file);
        let root = self.root;
        self.errors.clear();
        let r = self.parse_block(&mut lx, Target::Node(root), -1);
        let mut errors = std::mem::take(&mut self.errors);
        match r {
            Ok(Target::Node(n)) if errors.is_empty() => {
                self.root = n;
                Ok(())
            }
            Ok(_) if errors.is_empty() => Ok(()),
            other => {
                if let Err(e) = other {
                    errors.push(e);
                }
                let mut first = errors.remove(0);
                first.related = errors;
                Err(first)
            }
        }
    }

    fn content(&mut self, t: Target) -> &mut Vec<Item> {
        match t {
            Target::Node(n) => &mut self.cfg.nodes[n as usize].content,
            Target::Cond(c) => &mut self.cfg.conds[c as usize].body,
        }
    }

    fn push_op(&mut self, t: Target, data: OpData, pos: Pos) {
        let id = self.cfg.add_op(Op { data, pos });
        self.content(t).push(Item::Op(id));
    }
}

fn resolve_include(raw: &str, reader: &Reader) -> PathBuf {
    let expanded = if raw == "~" || raw.starts_with("~/") {
        match std::env::var_os("HOME") {
            Some(h) => PathBuf::from(h).join(raw.trim_start_matches('~').trim_start_matches('/')),
            None => PathBuf::from(raw),
        }
    } else {
        PathBuf::from(raw)
    };
    if reader.is_file && !expanded.is_absolute() {
        let dir = Path::new(&*reader.file)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        dir.join(expanded)
    } else {
        expanded
    }
}

fn read_config(path: &Path, at: Option<Error>) -> Result<String, Error> {
    let bytes = std::fs::read(path).map_err(|e| {
        // the top-level file has no location of its own: the message names it
        let base = at.clone().unwrap_or_else(|| Error::new(ErrorKind::Io, ""));
        Error {
            kind: ErrorKind::Io,
            message: format!("cannot read `{}`: {e}", path.display()),
            ..base
        }
    })?;
    String::from_utf8(bytes).map_err(|e| {
        let base = at.unwrap_or_else(|| Error::new(ErrorKind::Io, ""));
        Error {
            kind: ErrorKind::Io,
            message: format!(
                "`{}` is not valid UTF-8 (byte offset {})",
                path.display(),
                e.utf8_error().valid_up_to()
            ),
            ..base
        }
    })
}
