//! The parser: config text → [`Config`] tree, following the reference's `_parse` statement by
//! statement so that errors happen in the same cases and at the same lines.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, ErrorKind, Location};
use crate::filter::{CtxLabel, FLabel, Filter};
use crate::intern::{Sym, RESERVED};
use crate::lexer::{tokenize, LineTokens, NextLine, OpKind, Reader, SrcLine, Tok, Token};
use crate::tree::{Cond, CondId, FileId, Item, NodeId, Op, OpData, Pos};
use crate::Config;

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

/// At most this many errors are collected from one parse call.
const MAX_ERRORS: usize = 20;

/// Errors after which parsing can go on with the next statement.
fn recoverable(e: &Error) -> bool {
    matches!(
        e.kind,
        ErrorKind::Syntax
            | ErrorKind::Lexer
            | ErrorKind::MissingInclude
            | ErrorKind::IncludeCycle
            | ErrorKind::Io
    )
}

#[derive(Clone, Copy)]
enum Target {
    Node(NodeId),
    Cond(CondId),
}

enum Next {
    Indent(i64),
    EndBlock,
    Tok(Token),
}

enum LexState {
    LineStart,
    Pending,
    InLine,
}

struct Lexer {
    reader: Reader,
    file: FileId,
    prev_indent: i64,
    fast: bool,
    state: LexState,
    line: Option<SrcLine>,
    linenum: Option<u32>,
    toks: LineTokens,
    idx: usize,
}

impl Lexer {
    fn new(reader: Reader, file: FileId) -> Lexer {
        Lexer {
            reader,
            file,
            prev_indent: 0,
            fast: false,
            state: LexState::LineStart,
            line: None,
            linenum: None,
            toks: LineTokens {
                tokens: Vec::new(),
                fail: None,
            },
            idx: 0,
        }
    }

    fn location(&self, col: Option<u32>) -> Location {
        Location {
            file: self.reader.file.clone(),
            line: self.linenum,
            col,
        }
    }

    /// An error at the current line, pointing at `tok` when given.
    fn error(&self, kind: ErrorKind, msg: impl Into<String>, tok: Option<&Token>) -> Error {
        let col = match (tok, &self.line) {
            (Some(t), Some(l)) => Some(l.col_of(t.pos)),
            _ => None,
        };
        let mut e = Error::new(kind, msg).at(self.location(col));
        if let Some(l) = &self.line {
            e = e.with_line(l.full.clone());
        }
        if let Some(t) = tok {
            e = e.span_len(t.len);
        }
        e
    }

    fn next(&mut self) -> Result<Next, Error> {
        loop {
            match self.state {
                LexState::LineStart => {
                    return Ok(match self.reader.next_line(self.prev_indent) {
                        NextLine::End { linenum, .. } => {
                            self.line = None;
                            self.linenum = linenum;
                            Next::EndBlock
                        }
                        NextLine::Line(l) => {
                            let indent = l.indent;
                            self.linenum = Some(l.linenum);
                            self.line = Some(l);
                            self.state = LexState::Pending;
                            Next::Indent(indent)
                        }
                    });
                }
                LexState::Pending => {
                    let text = self
                        .line
                        .as_ref()
                        .map(|l| l.text().to_string())
                        .unwrap_or_default();
                    self.toks = tokenize(&text, self.fast);
                    self.idx = 0;
                    self.state = LexState::InLine;
                }
                LexState::InLine => {
                    if let Some(t) = self.toks.tokens.get(self.idx) {
                        let t = t.clone();
                        self.idx += 1;
                        if t.tok == Tok::EndL {
                            self.state = LexState::LineStart;
                        }
                        return Ok(Next::Tok(t));
                    }
                    let fail = self.toks.fail.clone();
                    let (msg, pos, runtime) = match fail {
                        Some(f) => (f.message, f.pos, f.runtime),
                        None => ("unexpected end of line".to_string(), 0, false),
                    };
                    let tok = Token {
                        tok: Tok::EndL,
                        pos,
                        len: 1,
                    };
                    let kind = if runtime {
                        ErrorKind::Syntax
                    } else {
                        ErrorKind::Lexer
                    };
                    return Err(self.error(kind, msg, Some(&tok)));
                }
            }
        }
    }

    /// The next token of the current line (a line start here is an internal error).
    fn tok(&mut self) -> Result<Token, Error> {
        match self.next()? {
            Next::Tok(t) => Ok(t),
            Next::Indent(_) | Next::EndBlock => {
                Err(self.error(ErrorKind::Syntax, "unexpected end of line", None))
            }
        }
    }

    fn tok_nw(&mut self) -> Result<Token, Error> {
        loop {
            let t = self.tok()?;
            if t.tok != Tok::White {
                return Ok(t);
            }
        }
    }

    fn expect(&self, t: Token, ok: fn(&Tok) -> bool, what: &str) -> Result<Token, Error> {
        if ok(&t.tok) {
            Ok(t)
        } else {
            Err(self
                .error(
                    ErrorKind::Syntax,
                    format!("unexpected {}", t.tok.describe()),
                    Some(&t),
                )
                .expected(what))
        }
    }

    fn expect_with(
        &self,
        t: Token,
        ok: fn(&Tok) -> bool,
        msg: &str,
        what: &str,
    ) -> Result<Token, Error> {
        if ok(&t.tok) {
            Ok(t)
        } else {
            Err(self.error(ErrorKind::Syntax, msg, Some(&t)).expected(what))
        }
    }

    /// Tokens up to and including the first one `end` accepts, whitespace dropped.
    fn until_no_white(&mut self, end: fn(&Tok) -> bool) -> Result<Vec<Token>, Error> {
        let mut out = Vec::new();
        loop {
            let t = self.tok()?;
            let stop = end(&t.tok);
            if t.tok != Tok::White {
                out.push(t);
            }
            if stop {
                return Ok(out);
            }
        }
    }

    /// The rest of the line's tokens, end of line consumed but not returned.
    fn rest_line(&mut self) -> Result<Vec<Token>, Error> {
        let mut out = Vec::new();
        loop {
            let t = self.tok()?;
            if t.tok == Tok::EndL {
                return Ok(out);
            }
            out.push(t);
        }
    }

    /// Drop what is left of the current line (used after a condition's colon).
    fn skip_line(&mut self) {
        self.state = LexState::LineStart;
    }

    /// After an error in a statement at `indent`: drop the rest of its line and every line of
    /// its block (deeper lines), and with `entries_of = Some(v)` also the `-` entries of a
    /// failed `variants` block at column `v`, so one mistake gives one error.
    fn recover(&mut self, indent: i64, entries_of: Option<i64>) {
        self.state = LexState::LineStart;
        self.fast = true;
        self.reader.skip_block(indent, entries_of);
    }
}

fn is_endl(t: &Tok) -> bool {
    matches!(t, Tok::EndL)
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

    fn flush(&mut self, t: Target, pre: &mut PreDict, file: FileId) {
        if pre.entries.is_empty() {
            return;
        }
        let entries = std::mem::take(&mut pre.entries);
        pre.index.clear();
        let line = entries.last().map_or(0, |e| e.2);
        self.push_op(t, OpData::Batch { entries }, Pos { file, line });
    }

    #[allow(clippy::too_many_lines)]
    fn parse_block(
        &mut self,
        lx: &mut Lexer,
        start: Target,
        prev_indent: i64,
    ) -> Result<Target, Error> {
        let mut target = start;
        let mut variants_next = false;
        let mut var_indent = 0i64;
        let mut var_name: Option<String> = None;
        let mut meta: Vec<(String, MetaVal)> = Vec::new();
        let mut pre = PreDict::default();
        let mut suffix: Option<(Arc<str>, u32)> = None;
        let file = lx.file;
        lx.fast = true;
        loop {
            lx.prev_indent = prev_indent;
            let indent = match lx.next()? {
                Next::EndBlock => {
                    self.flush(target, &mut pre, file);
                    if let Some((s, line)) = suffix.take() {
                        self.push_op(target, OpData::Suffix { suffix: s }, Pos { file, line });
                    }
                    return Ok(target);
                }
                Next::Indent(i) => i,
                Next::Tok(t) => {
                    return Err(lx.error(ErrorKind::Syntax, "unexpected token", Some(&t)));
                }
            };
            let mut header_stmt = false;
            let result = (|| -> Result<(), Error> {
                let tok = lx.tok()?;
                if variants_next && tok.tok != Tok::Variant {
                    return Err(lx
                        .error(
                            ErrorKind::Syntax,
                            format!("unexpected {}", tok.tok.describe()),
                            Some(&tok),
                        )
                        .expected("a `- name:` entry after `variants`"));
                }
                let line_no = lx.linenum.unwrap_or(0);
                let pos = Pos {
                    file,
                    line: line_no,
                };
                header_stmt = matches!(tok.tok, Tok::Variants | Tok::Variant);
                match tok.tok.clone() {
                    Tok::Ident(key) => {
                        let rest = lx
                            .until_no_white(|t| matches!(t, Tok::Op(_) | Tok::Colon | Tok::EndL))?;
                        let last = rest.last().map(|t| t.tok.clone());
                        match last {
                            Some(Tok::Op(kind)) => {
                                let mut key_text = key;
                                for t in &rest[..rest.len() - 1] {
                                    key_text.push_str(&t.tok.text());
                                }
                                let v = lx.tok()?;
                                let Tok::Str(value) = v.tok.clone() else {
                                    return Err(lx
                                        .error(
                                            ErrorKind::Syntax,
                                            format!("unexpected {}", v.tok.describe()),
                                            Some(&v),
                                        )
                                        .expected("a value after the operator"));
                                };
                                let value = strip_quotes(&value);
                                self.assignment(target, &mut pre, kind, &key_text, value, pos)
                                    .map_err(|m| lx.error(ErrorKind::Value, m, Some(&tok)))?;
                                let e = lx.tok()?;
                                lx.expect(e, is_endl, "end of line")?;
                            }
                            Some(Tok::Colon) => {
                                let colon = rest.last().cloned();
                                let mut ftoks = vec![tok.clone()];
                                ftoks.extend(rest[..rest.len() - 1].iter().cloned());
                                let filter = parse_filter(lx, &mut self.cfg, &ftoks)?;
                                self.condition(
                                    lx, target, &mut pre, false, filter, colon, indent, pos,
                                )?;
                            }
                            _ => {
                                let at = lx.line.as_ref().map(|l| Token {
                                    tok: Tok::EndL,
                                    pos: 0,
                                    len: l.text().chars().count(),
                                });
                                return Err(lx
                                    .error(ErrorKind::Syntax, "statement has no operator and no `:`", at.as_ref().or(Some(&tok)))
                                    .expected("`:` (a condition) or an assignment operator (=, +=, <=, ~=, ?=, ?+=, ?<=)"));
                            }
                        }
                    }
                    Tok::Variant => {
                        if !variants_next {
                            return Err(lx
                                .error(ErrorKind::Syntax, "a `-` entry where a statement is expected", Some(&tok))
                                .expected("a statement (entries must be indented under `variants:`, bodies deeper than the first `-`)"));
                        }
                        self.flush(target, &mut pre, file);
                        let Target::Node(cur) = target else {
                            return Err(lx.error(
                                ErrorKind::Syntax,
                                "entry inside a condition",
                                Some(&tok),
                            ));
                        };
                        let container =
                            self.entries(lx, cur, indent, var_indent, var_name.as_deref(), &meta)?;
                        target = Target::Node(container);
                        variants_next = false;
                    }
                    Tok::Variants => {
                        if matches!(target, Target::Cond(_)) {
                            return Err(lx.error(
                                ErrorKind::Syntax,
                                "'variants' is not allowed inside a conditional block",
                                Some(&tok),
                            ));
                        }
                        lx.fast = false;
                        let (name, m) = self.variants_header(lx)?;
                        var_name = name;
                        meta = m;
                        variants_next = true;
                        var_indent = indent;
                    }
                    Tok::Only | Tok::No | Tok::Join => {
                        let toks = lx.rest_line()?;
                        let filter = parse_filter(lx, &mut self.cfg, &toks)?;
                        self.flush(target, &mut pre, file);
                        let id = self.cfg.add_filter(filter, Some(pos));
                        let item = match tok.tok {
                            Tok::Only => Item::Only(id),
                            Tok::No => Item::No(id),
                            _ => Item::Join(id),
                        };
                        self.content(target).push(item);
                    }
                    Tok::Suffix => {
                        self.flush(target, &mut pre, file);
                        let t = lx.tok()?;
                        let t = lx.expect(
                            t,
                            |t| matches!(t, Tok::Ident(_)),
                            "one identifier after `suffix`",
                        )?;
                        let e = lx.tok()?;
                        lx.expect_with(
                            e,
                            is_endl,
                            "nothing may follow `suffix NAME`, not even a comment",
                            "end of line",
                        )?;
                        suffix = Some((Arc::from(t.tok.text().as_str()), line_no));
                    }
                    Tok::Include => {
                        let t = lx.tok()?;
                        let raw = t.tok.text();
                        let _ = lx.tok()?;
                        let path = resolve_include(&raw, &lx.reader);
                        if !path.is_file() {
                            return Err(lx.error(
                                ErrorKind::MissingInclude,
                                format!(
                                    "included file `{}` does not exist or is not a regular file",
                                    path.display()
                                ),
                                Some(&t),
                            ));
                        }
                        let canon = path.canonicalize().unwrap_or_else(|_| path.clone());
                        if self.includes.contains(&canon) {
                            let chain: Vec<String> = self
                                .includes
                                .iter()
                                .map(|p| p.display().to_string())
                                .collect();
                            return Err(lx.error(
                                ErrorKind::IncludeCycle,
                                format!(
                                    "`{}` includes itself (include chain: {} -> {})",
                                    path.display(),
                                    chain.join(" -> "),
                                    canon.display()
                                ),
                                Some(&t),
                            ));
                        }
                        self.flush(target, &mut pre, file);
                        let name: Arc<str> = Arc::from(path.to_string_lossy().as_ref());
                        let text = read_config(&path, Some(lx.error(ErrorKind::Io, "", Some(&t))))?;
                        let fid = self.cfg.add_file(name.clone(), &text);
                        let mut sub = Lexer::new(Reader::new(name, true, &text), fid);
                        self.includes.push(canon);
                        let r = self.parse_block(&mut sub, target, -1);
                        self.includes.pop();
                        target = r?;
                        lx.prev_indent = prev_indent;
                    }
                    Tok::Del => {
                        let t = lx.tok_nw()?;
                        let t = lx.expect(
                            t,
                            |t| matches!(t, Tok::Ident(_)),
                            "one key name (del takes no regex)",
                        )?;
                        let e = lx.tok_nw()?;
                        lx.expect_with(
                            e,
                            is_endl,
                            "`del` takes exactly one key name (no regex, no dots)",
                            "end of line after the key name",
                        )?;
                        self.flush(target, &mut pre, file);
                        self.push_op(
                            target,
                            OpData::Del {
                                key: Arc::from(t.tok.text().as_str()),
                            },
                            pos,
                        );
                    }
                    Tok::Not => {
                        let toks = lx.until_no_white(|t| matches!(t, Tok::Colon | Tok::EndL))?;
                        let (colon, ftoks) = match toks.split_last() {
                            Some((c, f)) => (c.clone(), f.to_vec()),
                            None => {
                                return Err(lx.error(
                                    ErrorKind::Syntax,
                                    "empty condition",
                                    Some(&tok),
                                ))
                            }
                        };
                        let filter = parse_filter(lx, &mut self.cfg, &ftoks)?;
                        if colon.tok != Tok::Colon {
                            return Err(lx
                                .error(
                                    ErrorKind::Syntax,
                                    "negative condition without `:`",
                                    Some(&colon),
                                )
                                .expected("`:` after `!FILTER`"));
                        }
                        self.condition(
                            lx,
                            target,
                            &mut pre,
                            true,
                            filter,
                            Some(colon),
                            indent,
                            pos,
                        )?;
                        lx.prev_indent = prev_indent;
                    }
                    other => {
                        return Err(lx
                            .error(ErrorKind::Syntax, format!("unexpected {} at the start of a statement", other.describe()), Some(&tok))
                            .expected("a statement: `variants`, `- entry:`, `only`, `no`, `include`, `del`, `suffix`, `join`, `!cond:`, `cond:` or `key = value`"));
                    }
                }
                Ok(())
            })();
            if let Err(e) = result {
                if !recoverable(&e) || self.errors.len() >= MAX_ERRORS {
                    return Err(e);
                }
                self.errors.push(e);
                let skip_entries = header_stmt || variants_next;
                lx.recover(indent, skip_entries.then_some(var_indent));
                variants_next = false;
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn condition(
        &mut self,
        lx: &mut Lexer,
        target: Target,
        pre: &mut PreDict,
        neg: bool,
        filter: Filter,
        colon: Option<Token>,
        indent: i64,
        pos: Pos,
    ) -> Result<(), Error> {
        if let (Some(c), Some(line)) = (colon, lx.line.clone()) {
            lx.reader.set_next_line(&line, c.pos + 1, indent + 1);
        }
        lx.skip_line();
        let fid = self.cfg.add_filter(filter, Some(pos));
        let cid = self.cfg.add_cond(Cond {
            neg,
            filter: fid,
            body: Vec::new(),
            file: pos.file,
            line: pos.line,
        });
        self.parse_block(lx, Target::Cond(cid), indent)?;
        self.flush(target, pre, lx.file);
        self.content(target).push(Item::Cond(cid));
        Ok(())
    }

    fn assignment(
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

    fn variants_header(&mut self, lx: &mut Lexer) -> Result<Header, Error> {
        let stop = |t: &Tok| matches!(t, Tok::LBracket | Tok::Colon | Tok::Ident(_) | Tok::EndL);
        let toks = lx.until_no_white(stop)?;
        let mut var_name: Option<String> = None;
        let mut meta: Vec<(String, MetaVal)> = Vec::new();
        let mut first = Some(toks);
        let mut cur = first.as_ref().and_then(|t| t.last().cloned());
        while let Some(t) = cur.clone() {
            match &t.tok {
                Tok::Colon | Tok::EndL => break,
                Tok::Ident(_) => {
                    if var_name.is_some() {
                        return Err(lx
                            .error(
                                ErrorKind::Syntax,
                                "a second name in a `variants` header",
                                Some(&t),
                            )
                            .expected("`[` or `:`"));
                    }
                    var_name = Some(match first.as_ref() {
                        Some(toks) => toks[0].tok.text(),
                        // Quirk kept from the reference: a name after a meta block becomes the
                        // text of a Python class object.
                        None => "<class 'virttest.cartesian_config.LIdentifier'>".to_string(),
                    });
                }
                Tok::LBracket => {
                    let ident = lx.tok_nw()?;
                    let ident = lx.expect(
                        ident,
                        |t| matches!(t, Tok::Ident(_)),
                        "a meta name after `[`",
                    )?;
                    let op = lx.tok_nw()?;
                    let op = lx.expect(
                        op,
                        |t| matches!(t, Tok::Op(OpKind::Set) | Tok::RBracket),
                        "`=` or `]`",
                    )?;
                    let name = ident.tok.text();
                    if op.tok == Tok::RBracket {
                        meta.push((name, MetaVal::Flag));
                    } else {
                        let vals = lx.until_no_white(|t| matches!(t, Tok::RBracket | Tok::EndL))?;
                        match vals.split_last() {
                            Some((last, v)) if last.tok == Tok::RBracket => {
                                meta.push((
                                    name,
                                    MetaVal::Tokens(v.iter().map(|t| t.tok.text()).collect()),
                                ));
                            }
                            _ => {
                                let at = vals.last().cloned();
                                return Err(lx
                                    .error(
                                        ErrorKind::Syntax,
                                        "unclosed `[` in a `variants` header",
                                        at.as_ref(),
                                    )
                                    .expected("`]`"));
                            }
                        }
                    }
                }
                _ => {}
            }
            first = None;
            let t = lx.tok_nw()?;
            let t = lx.expect(t, stop, "`[`, `:` or a name")?;
            cur = Some(t);
        }
        for (k, v) in &meta {
            if k == "default" && matches!(v, MetaVal::Flag) {
                return Err(lx
                    .error(ErrorKind::Syntax, "`[default]` needs a value", None)
                    .expected("[default=NAME]"));
            }
        }
        if cur.as_ref().is_none_or(|t| t.tok == Tok::EndL) {
            return Err(lx
                .error(
                    ErrorKind::Syntax,
                    "`variants` header without `:`",
                    cur.as_ref(),
                )
                .expected("`:` at the end of the header"));
        }
        let e = lx.tok_nw()?;
        lx.expect(
            e,
            is_endl,
            "end of line after `variants ...:` (entries go on the following lines)",
        )?;
        Ok((var_name, meta))
    }

    #[allow(clippy::too_many_arguments)]
    fn entries(
        &mut self,
        lx: &mut Lexer,
        cur: NodeId,
        indent: i64,
        var_indent: i64,
        var_name: Option<&str>,
        meta: &[(String, MetaVal)],
    ) -> Result<NodeId, Error> {
        let mut defaults: Vec<Vec<String>> = meta
            .iter()
            .filter(|(k, _)| k == "default")
            .filter_map(|(_, v)| match v {
                MetaVal::Tokens(t) => Some(t.clone()),
                MetaVal::Flag => None,
            })
            .collect();
        let had_default_meta = !defaults.is_empty();
        let expand = self.cfg.options.expand_defaults.clone();
        let expand_ok = !expand.iter().any(|e| e == var_name.unwrap_or(""));
        let mut already_default = false;
        let container = self.cfg.new_node();
        let var_sym = var_name.map(|n| self.cfg.syms.intern(n));
        loop {
            lx.prev_indent = var_indent;
            let first = match lx.next()? {
                Next::EndBlock => break,
                Next::Indent(_) => {
                    let t = lx.tok_nw()?;
                    lx.expect(
                        t,
                        |t| matches!(t, Tok::Variant),
                        "`-` (a new entry of this `variants` block)",
                    )?;
                    let t = lx.tok_nw()?;
                    lx.expect(
                        t,
                        |t| matches!(t, Tok::Ident(_) | Tok::Default),
                        "an entry name",
                    )?
                }
                Next::Tok(t) => {
                    let t = if t.tok == Tok::White { lx.tok_nw()? } else { t };
                    lx.expect(
                        t,
                        |t| matches!(t, Tok::Ident(_) | Tok::Default),
                        "an entry name",
                    )?
                }
            };
            let mut is_default = first.tok == Tok::Default;
            let mut raw: Vec<Token> = if is_default {
                Vec::new()
            } else {
                vec![first.clone()]
            };
            loop {
                let t = lx.tok()?;
                match t.tok {
                    Tok::Colon => break,
                    Tok::Ident(_) | Tok::Dot => raw.push(t),
                    _ => {
                        return Err(lx
                            .error(
                                ErrorKind::Syntax,
                                format!("unexpected {} in an entry name", t.tok.describe()),
                                Some(&t),
                            )
                            .expected("`name:` or `name.part:` with no space before the colon"))
                    }
                }
            }
            let names: Vec<String> = if raw.len() == 1 {
                vec![raw[0].tok.text()]
            } else {
                raw.iter()
                    .filter(|t| matches!(t.tok, Tok::Ident(_)))
                    .map(|t| t.tok.text())
                    .collect()
            };
            let raw_text: Vec<String> = raw.iter().map(|t| t.tok.text()).collect();
            // deps
            let mut t = lx.tok()?;
            while t.tok == Tok::White {
                t = lx.tok()?;
            }
            let deps = if t.tok == Tok::EndL {
                Filter::default()
            } else {
                let mut toks = vec![t];
                toks.extend(lx.rest_line()?);
                parse_filter(lx, &mut self.cfg, &toks)?
            };
            let node2 = self.cfg.new_node();
            self.cfg.nodes[node2 as usize].children = vec![cur];
            let joined = names.join(".");
            if let Some(v) = var_sym {
                let value: Arc<str> = Arc::from(joined.as_str());
                let line = lx.linenum.unwrap_or(0);
                let id = self.cfg.add_op(Op {
                    data: OpData::Assign {
                        kind: OpKind::Set,
                        key: v,
                        value,
                        subst: false,
                    },
                    pos: Pos {
                        file: lx.file,
                        line,
                    },
                });
                self.cfg.nodes[node2 as usize].content.push(Item::Op(id));
            }
            let entry_line = lx.linenum.unwrap_or(0);
            let node3 = match self.parse_block(lx, Target::Node(node2), indent)? {
                Target::Node(n) => n,
                Target::Cond(_) => node2,
            };
            let labels: Vec<CtxLabel> = names
                .iter()
                .map(|n| {
                    let name = self.cfg.syms.intern(n);
                    let long = match var_name {
                        Some(v) => self.cfg.syms.intern(&format!("({v}={n})")),
                        None => name,
                    };
                    CtxLabel { name, long }
                })
                .collect();
            if had_default_meta {
                let mut i = 0;
                while i < defaults.len() {
                    if defaults[i].iter().zip(raw_text.iter()).all(|(a, b)| a == b) {
                        is_default = true;
                        defaults.remove(i);
                    }
                    i += 1;
                }
            }
            let long_text = labels
                .iter()
                .map(|l| self.cfg.syms.resolve(l.long).to_string())
                .collect::<Vec<_>>()
                .join(".");
            let short_text = names.join(".");
            let basename = if lx.reader.is_file {
                Path::new(&*lx.reader.file).file_name().map_or_else(
                    || lx.reader.file.to_string(),
                    |n| n.to_string_lossy().into_owned(),
                )
            } else {
                "<string>".to_string()
            };
            let basename: Arc<str> = Arc::from(basename.as_str());
            let pos = Pos {
                file: lx.file,
                line: entry_line,
            };
            let a = self.cfg.add_op(Op {
                data: OpData::FileMap {
                    short: false,
                    file: basename.clone(),
                    text: Arc::from(long_text.as_str()),
                },
                pos,
            });
            let b = self.cfg.add_op(Op {
                data: OpData::FileMap {
                    short: true,
                    file: basename,
                    text: Arc::from(short_text.as_str()),
                },
                pos,
            });
            let is_the_default = is_default && !already_default && expand_ok;
            {
                let n = &mut self.cfg.nodes[node3 as usize];
                n.name = labels;
                n.deps = deps;
                n.pos = Some(pos);
                n.expanded = var_name.is_some_and(|v| expand.iter().any(|e| e == v));
                if is_the_default {
                    n.default = true;
                }
                n.append_to_shortname = !is_default;
                n.content.push(Item::Op(a));
                n.content.push(Item::Op(b));
            }
            if is_the_default {
                already_default = true;
            }
            let c = &mut self.cfg.nodes[container as usize];
            if is_the_default && self.cfg.options.defaults {
                c.children.insert(0, node3);
            } else {
                c.children.push(node3);
            }
        }
        if !defaults.is_empty() {
            let names: Vec<String> = defaults.iter().map(|d| d.join("")).collect();
            return Err(lx
                .error(
                    ErrorKind::Syntax,
                    format!(
                        "missing default variant {}: no entry of this block matches",
                        names.join(", ")
                    ),
                    None,
                )
                .expected("`[default=NAME]` to name an entry of the block"));
        }
        Ok(container)
    }
}

/// A parsed `variants` header: the block name and its meta values.
type Header = (Option<String>, Vec<(String, MetaVal)>);

#[derive(Debug, Clone)]
enum MetaVal {
    Flag,
    Tokens(Vec<String>),
}

/// The reference's pre-dict: a run of plain assignments applied as one update.
#[derive(Default)]
struct PreDict {
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

fn strip_quotes(v: &str) -> &str {
    let b = v.as_bytes();
    if !b.is_empty() && b[0] == b[b.len() - 1] && (b[0] == b'"' || b[0] == b'\'') {
        if v.len() == 1 {
            ""
        } else {
            &v[1..v.len() - 1]
        }
    } else {
        v
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

/// Parse filter tokens (the reference's `parse_filter`).
fn parse_filter(lx: &Lexer, cfg: &mut Config, toks: &[Token]) -> Result<Filter, Error> {
    let endl = Token {
        tok: Tok::EndL,
        pos: toks.last().map_or(0, |t| t.pos + t.len),
        len: 1,
    };
    let mut it = toks.iter().cloned().chain(std::iter::once(endl.clone()));
    let next = |it: &mut dyn Iterator<Item = Token>| it.next().unwrap_or_else(|| endl.clone());
    let mut words: Vec<Vec<Vec<FLabel>>> = Vec::new();
    let mut and_f: Vec<Vec<FLabel>> = Vec::new();
    let mut con_f: Vec<FLabel> = Vec::new();
    let mut dots = 1u32;
    let bad = |t: &Token, what: &str| {
        lx.error(
            ErrorKind::Syntax,
            format!("unexpected {} in a filter", t.tok.describe()),
            Some(t),
        )
        .expected(what)
    };
    let next_nw = |it: &mut dyn Iterator<Item = Token>| loop {
        let t = it.next().unwrap_or_else(|| endl.clone());
        if t.tok != Tok::White {
            return t;
        }
    };
    let mut token = next(&mut it);
    if !matches!(
        token.tok,
        Tok::Ident(_) | Tok::LParen | Tok::EndL | Tok::White
    ) {
        return Err(bad(&token, "a variant name or `(`"));
    }
    loop {
        match &token.tok {
            Tok::EndL => break,
            Tok::Ident(_) | Tok::LParen => {
                let label = if token.tok == Tok::LParen {
                    let ident = next_nw(&mut it);
                    if !matches!(ident.tok, Tok::Ident(_)) {
                        return Err(bad(&ident, "a name after `(`"));
                    }
                    let t = next_nw(&mut it);
                    match t.tok {
                        Tok::RParen => FLabel {
                            sym: cfg.syms.intern(&ident.tok.text()),
                            named: false,
                        },
                        Tok::Op(OpKind::Set) => {
                            let v = next_nw(&mut it);
                            if !matches!(v.tok, Tok::Ident(_) | Tok::Str(_)) {
                                return Err(bad(&v, "a value in `(name=value)`"));
                            }
                            let c = next_nw(&mut it);
                            if c.tok != Tok::RParen {
                                return Err(bad(&c, "`)`"));
                            }
                            let long = format!("({}={})", ident.tok.text(), v.tok.text());
                            FLabel {
                                sym: cfg.syms.intern(&long),
                                named: true,
                            }
                        }
                        _ => return Err(bad(&t, "`)` or `=`")),
                    }
                } else {
                    FLabel {
                        sym: cfg.syms.intern(&token.tok.text()),
                        named: false,
                    }
                };
                match dots {
                    1 => con_f.push(label),
                    2 => {
                        and_f.push(std::mem::take(&mut con_f));
                        con_f.push(label);
                    }
                    _ => {
                        return Err(lx
                            .error(
                                ErrorKind::Syntax,
                                "two names without a separator, or three or more dots",
                                Some(&token),
                            )
                            .expected(
                                "`.` (followed by), `..` (and), `,` or a space (or) between names",
                            ))
                    }
                }
                dots = 0;
            }
            Tok::Dot => dots += 1,
            Tok::Comma | Tok::White => {
                if dots > 0 {
                    return Err(lx
                        .error(ErrorKind::Syntax, "a separator right after `.` or another separator", Some(&token))
                        .expected("a name between \".\" and \",\" (a separator must be followed directly by a name)"));
                }
                if !and_f.is_empty() {
                    if !con_f.is_empty() {
                        and_f.push(std::mem::take(&mut con_f));
                    }
                    words.push(std::mem::take(&mut and_f));
                } else if !con_f.is_empty() {
                    words.push(vec![std::mem::take(&mut con_f)]);
                } else {
                    return Err(bad(&token, "a name before the separator"));
                }
                dots = 1;
                let t = next_nw(&mut it);
                if !matches!(
                    t.tok,
                    Tok::Ident(_) | Tok::Comma | Tok::Dot | Tok::LParen | Tok::EndL
                ) {
                    return Err(bad(&t, "a variant name"));
                }
                token = t;
                continue;
            }
            _ => {}
        }
        let t = next(&mut it);
        if !matches!(
            t.tok,
            Tok::Ident(_) | Tok::Comma | Tok::Dot | Tok::LParen | Tok::EndL | Tok::White
        ) {
            return Err(bad(&t, "a variant name, `.`, `..`, `,` or end of line"));
        }
        token = t;
    }
    if !and_f.is_empty() {
        if !con_f.is_empty() {
            and_f.push(std::mem::take(&mut con_f));
        }
        words.push(and_f);
    }
    if !con_f.is_empty() {
        words.push(vec![con_f]);
    }
    Ok(Filter { words })
}
