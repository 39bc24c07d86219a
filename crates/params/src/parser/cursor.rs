//! The statement parser's token cursor: [`Lexer`] walks a source's logical lines (through the
//! lexer's `Reader`), tokenizes each line when it is first read, and builds errors located at the
//! current line and token.

use crate::error::{Error, ErrorKind, Location};
use crate::lexer::{tokenize, LineTokens, NextLine, Reader, SrcLine, Tok, Token};
use crate::tree::FileId;

pub(super) enum Next {
    Indent(i64),
    EndBlock,
    Tok(Token),
}

enum LexState {
    LineStart,
    Pending,
    InLine,
}

pub(super) struct Lexer {
    pub(super) reader: Reader,
    pub(super) file: FileId,
    pub(super) prev_indent: i64,
    pub(super) fast: bool,
    state: LexState,
    pub(super) line: Option<SrcLine>,
    pub(super) linenum: Option<u32>,
    toks: LineTokens,
    idx: usize,
}

impl Lexer {
    pub(super) fn new(reader: Reader, file: FileId) -> Lexer {
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
    pub(super) fn error(
        &self,
        kind: ErrorKind,
        msg: impl Into<String>,
        tok: Option<&Token>,
    ) -> Error {
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

    pub(super) fn next(&mut self) -> Result<Next, Error> {
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
    pub(super) fn tok(&mut self) -> Result<Token, Error> {
        match self.next()? {
            Next::Tok(t) => Ok(t),
            Next::Indent(_) | Next::EndBlock => {
                Err(self.error(ErrorKind::Syntax, "unexpected end of line", None))
            }
        }
    }

    pub(super) fn tok_nw(&mut self) -> Result<Token, Error> {
        loop {
            let t = self.tok()?;
            if t.tok != Tok::White {
                return Ok(t);
            }
        }
    }

    pub(super) fn expect(
        &self,
        t: Token,
        ok: fn(&Tok) -> bool,
        what: &str,
    ) -> Result<Token, Error> {
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

    pub(super) fn expect_with(
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
    pub(super) fn until_no_white(&mut self, end: fn(&Tok) -> bool) -> Result<Vec<Token>, Error> {
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
    pub(super) fn rest_line(&mut self) -> Result<Vec<Token>, Error> {
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
    pub(super) fn skip_line(&mut self) {
        self.state = LexState::LineStart;
    }

    /// After an error in a statement at `indent`: drop the rest of its line and every line of
    /// its block (deeper lines), and with `entries_of = Some(v)` also the `-` entries of a
    /// failed `variants` block at column `v`, so one mistake gives one error.
    pub(super) fn recover(&mut self, indent: i64, entries_of: Option<i64>) {
        self.state = LexState::LineStart;
        self.fast = true;
        self.reader.skip_block(indent, entries_of);
    }
}

pub(super) fn is_endl(t: &Tok) -> bool {
    matches!(t, Tok::EndL)
}
