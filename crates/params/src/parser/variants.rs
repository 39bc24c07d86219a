//! A `variants` block: its header (`variants NAME [meta=...]:`) and its `- name: deps` entries,
//! each parsed as a block of its own below the node built so far.

use std::path::Path;
use std::sync::Arc;

use super::cursor::{is_endl, Lexer, Next};
use super::filter::parse_filter;
use super::{Parser, Target};
use crate::error::{Error, ErrorKind};
use crate::filter::{CtxLabel, Filter};
use crate::lexer::{OpKind, Tok, Token};
use crate::tree::{Item, NodeId, Op, OpData, Pos};

impl Parser {
    pub(super) fn variants_header(&mut self, lx: &mut Lexer) -> Result<Header, Error> {
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
    pub(super) fn entries(
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
pub(super) type Header = (Option<String>, Vec<(String, MetaVal)>);

#[derive(Debug, Clone)]
pub(super) enum MetaVal {
    Flag,
    Tokens(Vec<String>),
}
