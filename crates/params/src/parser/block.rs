//! One block of statements: [`Parser::parse_block`] reads statements at one indentation until
//! the block ends (dispatching on the first token: assignment, condition, `variants`, entry,
//! `only`/`no`/`join`, `suffix`, `include`, `del`, `!cond:`), recovers after an error so that
//! independent mistakes are all reported, and parses a condition's body.

use std::sync::Arc;

use super::assign::PreDict;
use super::cursor::{is_endl, Lexer, Next};
use super::filter::parse_filter;
use super::variants::MetaVal;
use super::{read_config, resolve_include, Parser, Target};
use crate::error::{Error, ErrorKind};
use crate::filter::Filter;
use crate::lexer::{Reader, Tok, Token};
use crate::tree::{Cond, Item, OpData, Pos};

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
impl Parser {
    #[allow(clippy::too_many_lines)]
    pub(super) fn parse_block(
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
