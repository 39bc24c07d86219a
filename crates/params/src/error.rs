//! Errors of the Cartesian config engine, with source positions and a renderer.
//!
//! Every error carries the file and 1-based line of the statement at fault (the same line the
//! reference parser names), a column when one is known, the text of the line, and what was
//! expected. [`Error::render`] prints a one-screen diagnostic with a caret under the column.

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

    /// Render a multi-line diagnostic: headline, `--> file:line:col`, the line with a caret,
    /// and the expectation; then the related errors, and a count when there are several.
    pub fn render(&self) -> String {
        let mut out = self.render_one();
        for e in &self.related {
            out.push('\n');
            out.push_str(&e.render_one());
        }
        if !self.related.is_empty() {
            out.push_str(&format!("\n{} errors\n", self.related.len() + 1));
        }
        out
    }

    fn render_one(&self) -> String {
        let mut out = format!("error[{}]: {}\n", self.kind.as_str(), self.message);
        if let Some(loc) = &self.location {
            out.push_str(&format!("  --> {loc}\n"));
            if let (Some(text), Some(line)) = (&self.source_line, loc.line) {
                let num = line.to_string();
                let pad = " ".repeat(num.len());
                out.push_str(&format!("{pad} |\n{num} | {text}\n"));
                if let Some(col) = loc.col {
                    let lead: String = text
                        .chars()
                        .take(col.saturating_sub(1) as usize)
                        .map(|c| if c == '\t' { '\t' } else { ' ' })
                        .collect();
                    let carets = "^".repeat(self.span_len.max(1) as usize);
                    match &self.expected {
                        Some(e) => out.push_str(&format!("{pad} | {lead}{carets} expected {e}\n")),
                        None => out.push_str(&format!("{pad} | {lead}{carets}\n")),
                    }
                } else if let Some(e) = &self.expected {
                    out.push_str(&format!("{pad} = expected {e}\n"));
                }
            } else if let Some(e) = &self.expected {
                out.push_str(&format!("  = expected {e}\n"));
            }
        } else if let Some(e) = &self.expected {
            out.push_str(&format!("  = expected {e}\n"));
        }
        out
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
        let mut out = String::new();
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            out.push_str(&e.render());
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
