//! Errors of the Cartesian config engine, with source positions and a renderer.
//!
//! Every error carries the file and 1-based line of the statement at fault (the same line the
//! reference parser names), a column when one is known, the text of the line, and what was
//! expected. [`Error::render`] prints a one-screen diagnostic with the span underlined, drawn by
//! `annotate-snippets` (rustc's renderer: wide characters and long lines handled, colours with
//! [`Error::render_styled`]).

use std::fmt;
use std::sync::Arc;

/// What kind of problem an [`Error`] describes.
///
/// The kinds follow the reference parser's exception classes, so a user comparing kvmtest with
/// avocado-vt recognises them; the reference's Python-level crashes get kinds of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A statement that does not fit the grammar (reference: `ParserError`).
    Syntax,
    /// A character that may not appear in a tokenized line (reference: `LexerError`).
    Lexer,
    /// An `include` whose file is missing or not a regular file (reference: `MissingIncludeError`).
    MissingInclude,
    /// An `include` chain that includes itself again (reference: `RecursionError`).
    IncludeCycle,
    /// A file that cannot be read or is not UTF-8.
    Io,
    /// A value the engine cannot evaluate while building a variant: a non-numeric `_max`/`_min`
    /// comparison, an invalid key regex, a `join` of identical names (reference: `ValueError`,
    /// `re.error`).
    Value,
}

impl ErrorKind {
    /// Short name used in rendered diagnostics.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Syntax => "syntax error",
            ErrorKind::Lexer => "invalid character",
            ErrorKind::MissingInclude => "missing include",
            ErrorKind::IncludeCycle => "include cycle",
            ErrorKind::Io => "cannot read config",
            ErrorKind::Value => "bad value",
        }
    }
}

/// A position in a config source: file, 1-based line, optional 1-based column.
///
/// `line` is `None` at the end of a file (the reference prints `-1` there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file name as the parser was given it (includes are joined to the including file's
    /// directory), or `<string>` for statements given as text.
    pub file: Arc<str>,
    /// 1-based physical line, or `None` at end of file.
    pub line: Option<u32>,
    /// 1-based column (in characters, after tab expansion), when known.
    pub col: Option<u32>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.col) {
            (Some(l), Some(c)) => write!(f, "{}:{l}:{c}", self.file),
            (Some(l), None) => write!(f, "{}:{l}", self.file),
            (None, _) => write!(f, "{} (end of file)", self.file),
        }
    }
}

/// One error of the config engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// The kind of error.
    pub kind: ErrorKind,
    /// What went wrong, in one sentence.
    pub message: String,
    /// Where, when known.
    pub location: Option<Location>,
    /// The offending line's text (after tab expansion, without indentation changes).
    pub source_line: Option<Arc<str>>,
    /// Width of the caret underline (characters), at least 1.
    pub span_len: u32,
    /// What the parser expected instead, when that can be said.
    pub expected: Option<Box<str>>,
    /// Further independent errors found in the same parse (reported together).
    pub related: Vec<Error>,
}

impl Error {
    /// A new error without position.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            location: None,
            source_line: None,
            span_len: 1,
            expected: None,
            related: Vec::new(),
        }
    }

    /// Attach a location.
    pub fn at(mut self, location: Location) -> Self {
        self.location = Some(location);
        self
    }

    /// Attach the text of the offending line.
    pub fn with_line(mut self, text: impl Into<Arc<str>>) -> Self {
        self.source_line = Some(text.into());
        self
    }

    /// Attach what was expected.
    pub fn expected(mut self, what: impl Into<String>) -> Self {
        self.expected = Some(what.into().into_boxed_str());
        self
    }

    /// Set the caret width.
    pub fn span_len(mut self, len: usize) -> Self {
        self.span_len = u32::try_from(len.max(1)).unwrap_or(u32::MAX);
        self
    }

    /// Render a multi-line diagnostic: headline, `--> file:line:col`, the line with the span
    /// underlined and the expectation; then the related errors, and a count when there are
    /// several.
    pub fn render(&self) -> String {
        self.render_all(&annotate_snippets::Renderer::plain())
    }

    /// [`Error::render_styled`] when `styled`, else [`Error::render`].
    pub fn render_as(&self, styled: bool) -> String {
        if styled {
            self.render_styled()
        } else {
            self.render()
        }
    }

    /// As [`Error::render`], with terminal colours (for a terminal that wants them).
    pub fn render_styled(&self) -> String {
        self.render_all(&annotate_snippets::Renderer::styled())
    }

    fn render_all(&self, renderer: &annotate_snippets::Renderer) -> String {
        let mut out = self.render_with(renderer);
        for e in &self.related {
            out.push('\n');
            out.push_str(&e.render_with(renderer));
        }
        if !self.related.is_empty() {
            out.push_str(&format!("\n{} errors\n", self.related.len() + 1));
        }
        out
    }

    /// This error alone, drawn by `annotate-snippets`: `error[kind]: message`, the location,
    /// the line with the span underlined and labelled with the expectation.
    fn render_with(&self, renderer: &annotate_snippets::Renderer) -> String {
        use annotate_snippets::{AnnotationKind, Group, Level, Origin, Snippet};
        let expected = self.expected.as_deref().map(|e| format!("expected {e}"));
        let title = Level::ERROR
            .primary_title(self.message.as_str())
            .id(self.kind.as_str());
        let group = match &self.location {
            None => Group::with_title(title),
            Some(loc) => match (&self.source_line, loc.line) {
                (Some(text), Some(line)) => {
                    let text: &str = text;
                    // The column counts characters; the span is `span_len` of them (the whole
                    // line's text when no column is known).
                    let (start, end) = match loc.col {
                        Some(col) => {
                            let byte = |n: usize| {
                                text.char_indices().nth(n).map_or(text.len(), |(b, _)| b)
                            };
                            let first = col.saturating_sub(1) as usize;
                            (byte(first), byte(first + self.span_len.max(1) as usize))
                        }
                        None => {
                            let lead = text.len() - text.trim_start().len();
                            (lead, text.trim_end().len().max(lead))
                        }
                    };
                    let mut ann = AnnotationKind::Primary.span(start..end);
                    if let Some(e) = &expected {
                        ann = ann.label(e.as_str());
                    }
                    let snippet = Snippet::source(text)
                        .line_start(line as usize)
                        .path(&*loc.file)
                        .annotation(ann);
                    return renderer.render(&[title.element(snippet)]) + "\n";
                }
                (_, Some(line)) => {
                    let origin = Origin::path(&*loc.file).line(line as usize);
                    title.element(match loc.col {
                        Some(c) => origin.char_column(c.saturating_sub(1) as usize),
                        None => origin,
                    })
                }
                (_, None) => title.element(Origin::path(format!("{} (end of file)", loc.file))),
            },
        };
        let group = match &expected {
            Some(e) => group.element(Level::NOTE.message(e.as_str())),
            None => group,
        };
        renderer.render(&[group]) + "\n"
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Some(loc) => write!(f, "{loc}: {}", self.message)?,
            None => write!(f, "{}", self.message)?,
        }
        if let Some(e) = &self.expected {
            write!(f, " (expected {e})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

/// Several errors found in one pass (a parse reports every independent error it can).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Errors(pub Vec<Error>);

impl Errors {
    /// Render all diagnostics, separated by blank lines, followed by a count when there are
    /// several.
    pub fn render(&self) -> String {
        self.render_list(false)
    }

    /// [`Errors::render_styled`] when `styled`, else [`Errors::render`].
    pub fn render_as(&self, styled: bool) -> String {
        self.render_list(styled)
    }

    /// As [`Errors::render`], with terminal colours.
    pub fn render_styled(&self) -> String {
        self.render_list(true)
    }

    fn render_list(&self, styled: bool) -> String {
        let mut out = String::new();
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            out.push_str(&e.render_as(styled));
        }
        if self.0.len() > 1 {
            out.push_str(&format!("\n{} errors\n", self.0.len()));
        }
        out
    }

    /// The first error.
    pub fn first(&self) -> Option<&Error> {
        self.0.first()
    }
}

impl fmt::Display for Errors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Errors {}

impl From<Error> for Errors {
    fn from(e: Error) -> Self {
        Errors(vec![e])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(line: u32, col: Option<u32>) -> Location {
        Location {
            file: "a.cfg".into(),
            line: Some(line),
            col,
        }
    }

    #[test]
    fn the_underline_sits_under_the_span_after_wide_characters() {
        let e = Error::new(ErrorKind::Syntax, "bad")
            .at(at(3, Some(10)))
            .with_line("only 名前 ..x")
            .span_len(2)
            .expected("a name");
        let text = e.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "error[syntax error]: bad");
        assert_eq!(lines[1], " --> a.cfg:3:10");
        assert_eq!(lines[3], "3 | only 名前 ..x");
        // `名前` takes four columns: the `..` (characters 10 and 11) start at column 12.
        assert_eq!(lines[4], "  |            ^^ expected a name");
    }

    #[test]
    fn without_a_column_the_line_is_underlined_and_without_a_line_the_file_is_named() {
        let e = Error::new(ErrorKind::Value, "no default")
            .at(at(7, None))
            .with_line("    variants:")
            .expected("[default=NAME]");
        // The location's column is the first character's of the underline.
        assert!(
            e.render().contains(
                " --> a.cfg:7:5\n  |\n7 |     variants:\n  |     ^^^^^^^^^ expected [default=NAME]"
            ),
            "{}",
            e.render()
        );
        let eof = Error::new(ErrorKind::Syntax, "unterminated").at(Location {
            file: "b.cfg".into(),
            line: None,
            col: None,
        });
        assert!(
            eof.render().contains("b.cfg (end of file)"),
            "{}",
            eof.render()
        );
        let nowhere = Error::new(ErrorKind::Io, "cannot read").expected("a file");
        assert_eq!(
            nowhere.render(),
            "error[cannot read config]: cannot read\n |\n = note: expected a file\n"
        );
    }

    #[test]
    fn styled_rendering_has_colours_and_the_same_text() {
        let e = Error::new(ErrorKind::Syntax, "bad")
            .at(at(1, Some(1)))
            .with_line("x y");
        let styled = e.render_styled();
        assert!(styled.contains("\u{1b}["), "{styled:?}");
        let mut plain = String::new();
        let mut chars = styled.chars();
        while let Some(c) = chars.next() {
            if c == '\u{1b}' {
                for c in chars.by_ref() {
                    if c == 'm' {
                        break;
                    }
                }
            } else {
                plain.push(c);
            }
        }
        assert_eq!(plain, e.render());
    }
}
