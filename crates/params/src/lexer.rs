//! Reading config text into logical lines, and classifying/tokenizing one line.
//!
//! This follows the reference reader exactly: Python `splitlines()` boundaries, right-strip,
//! `expandtabs(8)` over the whole line, comment lines (`#`, `//`) and blank lines dropped, and
//! indentation counted in characters. Tokenizing has the reference's two personalities: an
//! assignment fast path (any key text, raw value) and a strict character tokenizer for
//! everything else.

use std::sync::Arc;

/// Python `str.isspace()` (close enough: Unicode White_Space plus the ASCII separators
/// `\x1c`–`\x1f`, which Python also counts).
pub(crate) fn py_isspace(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python `str.isalnum()`: a letter (`L*`) or a number (`N*`) by general category.
pub(crate) fn py_isalnum(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphanumeric();
    }
    use unicode_general_category::{get_general_category, GeneralCategory as G};
    matches!(
        get_general_category(c),
        G::UppercaseLetter
            | G::LowercaseLetter
            | G::TitlecaseLetter
            | G::ModifierLetter
            | G::OtherLetter
            | G::DecimalNumber
            | G::LetterNumber
            | G::OtherNumber
    )
}

pub(crate) fn py_lstrip(s: &str) -> &str {
    s.trim_start_matches(py_isspace)
}

pub(crate) fn py_rstrip(s: &str) -> &str {
    s.trim_end_matches(py_isspace)
}

/// Split like Python's `str.splitlines()`.
pub(crate) fn split_lines(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut iter = text.char_indices().peekable();
    while let Some((i, c)) = iter.next() {
        let is_break = matches!(
            c,
            '\n' | '\r'
                | '\u{0b}'
                | '\u{0c}'
                | '\u{1c}'
                | '\u{1d}'
                | '\u{1e}'
                | '\u{85}'
                | '\u{2028}'
                | '\u{2029}'
        );
        if is_break {
            out.push(&text[start..i]);
            let mut end = i + c.len_utf8();
            if c == '\r' {
                if let Some(&(j, '\n')) = iter.peek() {
                    iter.next();
                    end = j + 1;
                }
            }
            start = end;
        }
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

/// Python `str.expandtabs(8)` for one line.
fn expand_tabs(s: &str) -> String {
    if !s.contains('\t') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 16);
    let mut col = 0usize;
    for c in s.chars() {
        if c == '\t' {
            let n = 8 - (col % 8);
            out.extend(std::iter::repeat_n(' ', n));
            col += n;
        } else {
            out.push(c);
            col += 1;
        }
    }
    out
}

/// One logical line of a config: its text (from `start`), its indentation and its number.
#[derive(Debug, Clone)]
pub(crate) struct SrcLine {
    /// The physical line after right-strip and tab expansion.
    pub full: Arc<str>,
    /// Byte offset in `full` where the statement text starts.
    pub start: usize,
    /// Indentation used for block structure (a virtual line gets its parent's + 1).
    pub indent: i64,
    /// 1-based physical line number.
    pub linenum: u32,
}

impl SrcLine {
    pub fn text(&self) -> &str {
        &self.full[self.start..]
    }

    /// 1-based column (characters) of a byte offset in `text()`.
    pub fn col_of(&self, offset: usize) -> u32 {
        let upto = (self.start + offset).min(self.full.len());
        let n = self.full[..upto].chars().count();
        u32::try_from(n + 1).unwrap_or(u32::MAX)
    }
}

/// The lines of one source, with the reference reader's block protocol.
#[derive(Debug)]
pub(crate) struct Reader {
    pub file: Arc<str>,
    pub is_file: bool,
    lines: Vec<SrcLine>,
    index: usize,
    stored: Option<SrcLine>,
}

/// What [`Reader::next_line`] found.
pub(crate) enum NextLine {
    /// A line of the current block.
    Line(SrcLine),
    /// The block ended: the next line's indent and number (`-1`, `None` at end of input).
    End { linenum: Option<u32> },
}

impl Reader {
    pub fn new(file: Arc<str>, is_file: bool, text: &str) -> Reader {
        let mut lines = Vec::new();
        for (i, raw) in split_lines(text).into_iter().enumerate() {
            let line = expand_tabs(py_rstrip(raw));
            let stripped = py_lstrip(&line);
            if stripped.is_empty() || stripped.starts_with('#') || stripped.starts_with("//") {
                continue;
            }
            let start = line.len() - stripped.len();
            let indent = line[..start].chars().count() as i64;
            lines.push(SrcLine {
                full: Arc::from(line.as_str()),
                start,
                indent,
                linenum: u32::try_from(i + 1).unwrap_or(u32::MAX),
            });
        }
        Reader {
            file,
            is_file,
            lines,
            index: 0,
            stored: None,
        }
    }

    /// The next line if its indent is greater than `prev_indent`; a pushed-back virtual line
    /// is returned first whatever its indent.
    pub fn next_line(&mut self, prev_indent: i64) -> NextLine {
        if let Some(l) = self.stored.take() {
            return NextLine::Line(l);
        }
        match self.lines.get(self.index) {
            None => NextLine::End { linenum: None },
            Some(l) if l.indent <= prev_indent => NextLine::End {
                linenum: Some(l.linenum),
            },
            Some(l) => {
                self.index += 1;
                NextLine::Line(l.clone())
            }
        }
    }

    /// Skip the lines deeper than `indent` (and `-` lines deeper than `entries_of`, with their
    /// bodies), dropping any pushed-back line.
    pub fn skip_block(&mut self, indent: i64, entries_of: Option<i64>) {
        self.stored = None;
        let mut body_of: Option<i64> = None;
        while let Some(l) = self.lines.get(self.index) {
            let deeper = l.indent > indent;
            let entry = entries_of.is_some_and(|v| l.indent > v && l.text().starts_with('-'));
            let in_entry_body = body_of.is_some_and(|b| l.indent > b);
            if !(deeper || entry || in_entry_body) {
                break;
            }
            if entry {
                body_of = Some(l.indent);
            }
            self.index += 1;
        }
    }

    /// Push back the rest of a condition line as a virtual line at `indent`.
    pub fn set_next_line(&mut self, line: &SrcLine, offset: usize, indent: i64) {
        let rest = &line.text()[offset..];
        let trimmed = py_lstrip(rest);
        let trimmed = py_rstrip(trimmed);
        if trimmed.is_empty() {
            return;
        }
        let start = line.start + offset + (rest.len() - py_lstrip(rest).len());
        self.stored = Some(SrcLine {
            full: line.full.clone(),
            start,
            indent,
            linenum: line.linenum,
        });
    }
}

/// An assignment operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpKind {
    /// `=`
    Set,
    /// `+=`
    Append,
    /// `<=`
    Prepend,
    /// `~=`
    LazySet,
    /// `?=`
    RegexSet,
    /// `?+=`
    RegexAppend,
    /// `?<=`
    RegexPrepend,
}

impl OpKind {
    /// The operator as written.
    pub fn as_str(self) -> &'static str {
        match self {
            OpKind::Set => "=",
            OpKind::Append => "+=",
            OpKind::Prepend => "<=",
            OpKind::LazySet => "~=",
            OpKind::RegexSet => "?=",
            OpKind::RegexAppend => "?+=",
            OpKind::RegexPrepend => "?<=",
        }
    }

    fn from_prefix(p: &str) -> Option<OpKind> {
        Some(match p {
            "" => OpKind::Set,
            "~" => OpKind::LazySet,
            "+" => OpKind::Append,
            "<" => OpKind::Prepend,
            "?" => OpKind::RegexSet,
            "?+" => OpKind::RegexAppend,
            "?<" => OpKind::RegexPrepend,
            _ => return None,
        })
    }
}

/// A token of a tokenized line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tok {
    Variants,
    Variant,
    Only,
    No,
    Include,
    Del,
    Suffix,
    Join,
    Ident(String),
    White,
    Str(String),
    Colon,
    Dot,
    Default,
    Comma,
    LBracket,
    RBracket,
    LParen,
    RParen,
    Not,
    Op(OpKind),
    EndL,
}

impl Tok {
    /// How the token is named in "expected …" messages.
    pub fn describe(&self) -> String {
        match self {
            Tok::Variants => "`variants`".into(),
            Tok::Variant => "`-`".into(),
            Tok::Only => "`only`".into(),
            Tok::No => "`no`".into(),
            Tok::Include => "`include`".into(),
            Tok::Del => "`del`".into(),
            Tok::Suffix => "`suffix`".into(),
            Tok::Join => "`join`".into(),
            Tok::Ident(s) => format!("identifier `{s}`"),
            Tok::White => "whitespace".into(),
            Tok::Str(s) => format!("string \"{s}\""),
            Tok::Colon => "`:`".into(),
            Tok::Dot => "`.`".into(),
            Tok::Default => "`@`".into(),
            Tok::Comma => "`,`".into(),
            Tok::LBracket => "`[`".into(),
            Tok::RBracket => "`]`".into(),
            Tok::LParen => "`(`".into(),
            Tok::RParen => "`)`".into(),
            Tok::Not => "`!`".into(),
            Tok::Op(o) => format!("`{}`", o.as_str()),
            Tok::EndL => "end of line".into(),
        }
    }

    /// The token's text as the reference's `str(token)` gives it.
    pub fn text(&self) -> String {
        match self {
            Tok::Ident(s) | Tok::Str(s) => s.clone(),
            Tok::Dot => ".".into(),
            Tok::Colon => ":".into(),
            Tok::Comma => ",".into(),
            Tok::Default => "@".into(),
            Tok::Variant => "-".into(),
            Tok::Not => "!".into(),
            Tok::LBracket => "[".into(),
            Tok::RBracket => "]".into(),
            Tok::LParen => "(".into(),
            Tok::RParen => ")".into(),
            Tok::Op(o) => o.as_str().into(),
            Tok::White => " ".into(),
            _ => String::new(),
        }
    }
}

/// A token with its byte offset and length in the line's text.
#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub tok: Tok,
    pub pos: usize,
    pub len: usize,
}

/// A tokenizing failure at a byte offset of the line.
#[derive(Debug, Clone)]
pub(crate) struct LexFail {
    pub message: String,
    pub pos: usize,
    /// The reference crashes with a Python `RuntimeError` here (unterminated quote).
    pub runtime: bool,
}

/// Tokens of one line; `fail` is reached after the last token (tokenizing is lazy in the
/// reference, so an earlier parse error wins over a later bad character).
#[derive(Debug, Clone)]
pub(crate) struct LineTokens {
    pub tokens: Vec<Token>,
    pub fail: Option<LexFail>,
}

fn find_op(text: &str) -> Option<(usize, usize, OpKind)> {
    let b = text.as_bytes();
    for i in 0..b.len() {
        let rest = &b[i..];
        let hit = match rest {
            [b'=', ..] => Some((1, OpKind::Set)),
            [b'+', b'=', ..] => Some((2, OpKind::Append)),
            [b'<', b'=', ..] => Some((2, OpKind::Prepend)),
            [b'~', b'=', ..] => Some((2, OpKind::LazySet)),
            [b'?', b'=', ..] => Some((2, OpKind::RegexSet)),
            [b'?', b'+', b'=', ..] => Some((3, OpKind::RegexAppend)),
            [b'?', b'<', b'=', ..] => Some((3, OpKind::RegexPrepend)),
            _ => None,
        };
        if let Some((n, k)) = hit {
            return Some((i, i + n, k));
        }
    }
    None
}

fn skip_spaces(text: &str, mut pos: usize) -> usize {
    while let Some(c) = text[pos..].chars().next() {
        if !py_isspace(c) {
            break;
        }
        pos += c.len_utf8();
    }
    pos
}

/// Tokenize one statement text (already stripped, non-empty).
pub(crate) fn tokenize(text: &str, fast: bool) -> LineTokens {
    let mut tokens = Vec::new();
    let push = |tokens: &mut Vec<Token>, tok: Tok, pos: usize, len: usize| {
        tokens.push(Token { tok, pos, len })
    };
    let mut pos = 0usize;
    if text.starts_with("variants:") {
        push(&mut tokens, Tok::Variants, 0, 8);
        push(&mut tokens, Tok::Colon, 8, 1);
        pos = 9;
    } else if text.starts_with("variants ") {
        push(&mut tokens, Tok::Variants, 0, 8);
        pos = 8;
    } else if text.starts_with('-') {
        push(&mut tokens, Tok::Variant, 0, 1);
        pos = 1;
    } else if text.starts_with("only ") {
        push(&mut tokens, Tok::Only, 0, 4);
        pos = skip_spaces(text, 4);
    } else if text.starts_with("no ") {
        push(&mut tokens, Tok::No, 0, 2);
        pos = skip_spaces(text, 2);
    } else if text.starts_with("include ") {
        push(&mut tokens, Tok::Include, 0, 7);
        let rest = py_lstrip(&text[7..]);
        let at = text.len() - rest.len();
        push(&mut tokens, Tok::Str(rest.to_string()), at, rest.len());
        push(&mut tokens, Tok::EndL, text.len(), 0);
        return LineTokens { tokens, fail: None };
    } else if text.starts_with("del ") {
        push(&mut tokens, Tok::Del, 0, 3);
        pos = skip_spaces(text, 3);
    } else if text.starts_with("suffix ") {
        push(&mut tokens, Tok::Suffix, 0, 6);
        pos = skip_spaces(text, 6);
    } else if text.starts_with("join ") {
        push(&mut tokens, Tok::Join, 0, 4);
        pos = skip_spaces(text, 4);
    }

    if fast && pos == 0 {
        let colon = text.find(':');
        if let Some((start, end, kind)) = find_op(text) {
            if colon.is_none_or(|c| c > end) {
                let key = py_rstrip(&text[..start]);
                push(&mut tokens, Tok::Ident(key.to_string()), 0, key.len());
                push(&mut tokens, Tok::Op(kind), start, end - start);
                let value = py_lstrip(&text[end..]);
                push(
                    &mut tokens,
                    Tok::Str(value.to_string()),
                    text.len() - value.len(),
                    value.len(),
                );
                push(&mut tokens, Tok::EndL, text.len(), 0);
                return LineTokens { tokens, fail: None };
            }
        }
    }

    let mut fail = None;
    let mut chars = String::new();
    let mut chars_start = pos;
    let mut oper = String::new();
    let mut oper_start = pos;
    let mut it = text[pos..]
        .char_indices()
        .map(|(i, c)| (i + pos, c))
        .peekable();
    'outer: while let Some((mut p, mut c)) = it.next() {
        if py_isalnum(c) || c == '_' || c == '-' {
            if chars.is_empty() {
                chars_start = p;
            }
            chars.push(c);
            continue;
        }
        if matches!(c, '+' | '<' | '?' | '~') {
            if !chars.is_empty() {
                push(
                    &mut tokens,
                    Tok::Ident(std::mem::take(&mut chars)),
                    chars_start,
                    p - chars_start,
                );
                oper.clear();
            }
            if oper.is_empty() {
                oper_start = p;
            }
            oper.push(c);
            continue;
        }
        if !chars.is_empty() {
            push(
                &mut tokens,
                Tok::Ident(std::mem::take(&mut chars)),
                chars_start,
                p - chars_start,
            );
        }
        if py_isspace(c) {
            let ws_start = p;
            let mut found = false;
            for (q, d) in it.by_ref() {
                if !py_isspace(d) {
                    push(&mut tokens, Tok::White, ws_start, q - ws_start);
                    p = q;
                    c = d;
                    found = true;
                    break;
                }
            }
            if !found {
                fail = Some(LexFail {
                    message: format!("unexpected character {c:?}"),
                    pos: p,
                    runtime: false,
                });
                break 'outer;
            }
        }
        let mut token = None;
        if py_isalnum(c) || c == '_' || c == '-' {
            chars_start = p;
            chars.push(c);
        } else if c == '=' {
            match OpKind::from_prefix(&oper) {
                Some(k) => {
                    let s = if oper.is_empty() { p } else { oper_start };
                    push(&mut tokens, Tok::Op(k), s, p + 1 - s);
                }
                None => {
                    fail = Some(LexFail {
                        message: format!("`{oper}=` is not an operator"),
                        pos: oper_start,
                        runtime: false,
                    });
                    break 'outer;
                }
            }
            oper.clear();
        } else if let Some(t) = match c {
            '.' => Some(Tok::Dot),
            ':' => Some(Tok::Colon),
            '@' => Some(Tok::Default),
            ',' => Some(Tok::Comma),
            '[' => Some(Tok::LBracket),
            ']' => Some(Tok::RBracket),
            '(' => Some(Tok::LParen),
            ')' => Some(Tok::RParen),
            '!' => Some(Tok::Not),
            '-' => Some(Tok::Variant),
            _ => None,
        } {
            token = Some(t);
        } else if c == '"' {
            let qstart = p;
            chars.clear();
            let mut closed = false;
            for (_, d) in it.by_ref() {
                if d == '"' {
                    closed = true;
                    break;
                }
                chars.push(d);
            }
            if !closed {
                fail = Some(LexFail {
                    message: "unterminated `\"` in a tokenized line".into(),
                    pos: qstart,
                    runtime: true,
                });
                break 'outer;
            }
            // Quirk kept from the reference: the quoted text is emitted again as an identifier
            // when the next non-identifier character comes.
            let end = it.peek().map_or(text.len(), |&(q, _)| q);
            push(&mut tokens, Tok::Str(chars.clone()), qstart, end - qstart);
            chars_start = qstart;
        } else if c == '#' {
            break 'outer;
        } else if matches!(c, '+' | '<' | '?' | '~') {
            if oper.is_empty() {
                oper_start = p;
            }
            oper.push(c);
        } else {
            fail = Some(LexFail {
                message: format!(
                    "unexpected character `{c}`: special characters are allowed only in the value of an assignment"
                ),
                pos: p,
                runtime: false,
            });
            break 'outer;
        }
        if let Some(t) = token {
            push(&mut tokens, t, p, c.len_utf8());
        }
    }
    if fail.is_none() {
        if !chars.is_empty() {
            push(
                &mut tokens,
                Tok::Ident(chars),
                chars_start,
                text.len() - chars_start,
            );
        }
        push(&mut tokens, Tok::EndL, text.len(), 0);
    }
    LineTokens { tokens, fail }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str, fast: bool) -> Vec<Tok> {
        tokenize(s, fast)
            .tokens
            .into_iter()
            .map(|t| t.tok)
            .collect()
    }

    #[test]
    fn splitlines_like_python() {
        assert_eq!(split_lines("a\r\nb\rc\x0bd\n"), vec!["a", "b", "c", "d"]);
        assert_eq!(split_lines("a\n\nb"), vec!["a", "", "b"]);
    }

    #[test]
    fn fast_path_assignment() {
        assert_eq!(
            toks("a += b", true),
            vec![
                Tok::Ident("a".into()),
                Tok::Op(OpKind::Append),
                Tok::Str("b".into()),
                Tok::EndL
            ]
        );
        assert_eq!(toks("a =+ b", true)[2], Tok::Str("+ b".into()));
        // A colon before the operator makes it a condition.
        assert_eq!(toks("x: a = 1", true)[0], Tok::Ident("x".into()));
        assert_eq!(toks("x: a = 1", true)[1], Tok::Colon);
    }

    #[test]
    fn tabs_expand_over_whole_line() {
        let r = Reader::new(Arc::from("t"), false, "a = x\ty\n\tb = 1\n");
        assert_eq!(r.lines[0].text(), "a = x   y");
        assert_eq!(r.lines[1].indent, 8);
    }

    #[test]
    fn lexer_errors() {
        assert!(tokenize("variants tests$:", true).fail.is_some());
        let t = tokenize("only \"abc", true);
        assert!(t.fail.as_ref().is_some_and(|f| f.runtime));
        assert!(tokenize("only a~+=b", true).fail.is_some());
    }
}
