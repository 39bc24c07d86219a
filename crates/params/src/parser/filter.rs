//! Filter expressions (the reference's `parse_filter`): the tokens after `only`, `no` and
//! `join`, before a condition's `:` and after an entry's `:` become a [`Filter`] of words, each a
//! conjunction of `.`-chains of labels.

use super::cursor::Lexer;
use crate::error::{Error, ErrorKind};
use crate::filter::{FLabel, Filter};
use crate::lexer::{OpKind, Tok, Token};
use crate::Config;

/// Parse filter tokens (the reference's `parse_filter`).
pub(super) fn parse_filter(lx: &Lexer, cfg: &mut Config, toks: &[Token]) -> Result<Filter, Error> {
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
