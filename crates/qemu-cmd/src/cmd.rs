//! [`QemuCommand`]: the built command line, as argv words that remember their stable form.
//!
//! Each [`Word`] holds the exact bytes QEMU receives and, when a run-specific part (a socket
//! directory, a generated MAC, a port…) went into it, the same word with that part replaced by a
//! placeholder such as `@RUN_DIR@`. The argv is therefore built once and can be shown two ways:
//! as it runs ([`QemuCommand::argv`]) and as it is reviewed ([`QemuCommand::render_stable`]).
//! Words are grouped into options (`-drive` and its value) only for display.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use crate::escape::escape_into;
use crate::render;

/// One argv word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    real: Vec<u8>,
    stable: Option<Vec<u8>>,
}

impl Word {
    /// The bytes QEMU receives.
    pub fn as_os_str(&self) -> &OsStr {
        OsStr::from_bytes(&self.real)
    }

    /// The word with run-specific parts replaced by placeholders (lossy for non-UTF-8 bytes).
    pub fn stable(&self) -> String {
        String::from_utf8_lossy(self.stable.as_deref().unwrap_or(&self.real)).into_owned()
    }

    /// Whether a run-specific part went into this word.
    pub fn is_run_specific(&self) -> bool {
        self.stable.is_some()
    }

    /// Appends fixed text (an item added once the word was built) to both renderings.
    pub(crate) fn push_str(&mut self, s: &str) {
        self.real.extend_from_slice(s.as_bytes());
        if let Some(st) = &mut self.stable {
            st.extend_from_slice(s.as_bytes());
        }
    }

    fn real_lossy(&self) -> String {
        String::from_utf8_lossy(&self.real).into_owned()
    }
}

/// A run-specific piece of text: what QEMU gets, and the placeholder shown in stable renderings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunText {
    /// The concrete bytes (equal to the placeholder in a dry run).
    pub real: Vec<u8>,
    /// The stable placeholder, e.g. `@RUN_DIR@`.
    pub placeholder: String,
}

/// Builds one [`Word`] from literal, escaped and run-specific pieces.
#[derive(Debug, Default)]
pub(crate) struct WordBuf {
    real: Vec<u8>,
    stable: Option<Vec<u8>>,
}

impl WordBuf {
    pub(crate) fn new() -> WordBuf {
        WordBuf {
            real: Vec::with_capacity(64),
            stable: None,
        }
    }

    /// Appends fixed syntax (option names, `=`, `,`) verbatim.
    pub(crate) fn raw(&mut self, s: &str) -> &mut Self {
        self.real.extend_from_slice(s.as_bytes());
        if let Some(st) = &mut self.stable {
            st.extend_from_slice(s.as_bytes());
        }
        self
    }

    /// Appends a value inside a QEMU option list, commas escaped.
    pub(crate) fn esc(&mut self, v: &[u8]) -> &mut Self {
        escape_into(&mut self.real, v);
        if let Some(st) = &mut self.stable {
            escape_into(st, v);
        }
        self
    }

    /// Appends a value verbatim (a whole argv word needs no escaping).
    pub(crate) fn verbatim(&mut self, v: &[u8]) -> &mut Self {
        self.real.extend_from_slice(v);
        if let Some(st) = &mut self.stable {
            st.extend_from_slice(v);
        }
        self
    }

    /// Appends a run-specific piece; `escape` when it sits inside an option list.
    pub(crate) fn run(&mut self, t: &RunText, escape: bool) -> &mut Self {
        let st = self.stable.get_or_insert_with(|| self.real.clone());
        st.extend_from_slice(t.placeholder.as_bytes());
        if escape {
            escape_into(&mut self.real, &t.real);
        } else {
            self.real.extend_from_slice(&t.real);
        }
        self
    }

    pub(crate) fn finish(self) -> Word {
        Word {
            real: self.real,
            stable: self.stable,
        }
    }
}

impl From<&str> for Word {
    fn from(s: &str) -> Word {
        Word {
            real: s.as_bytes().to_vec(),
            stable: None,
        }
    }
}

/// One option as displayed: its name and its values (`-drive`, `file=…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opt {
    pub(crate) words: Vec<Word>,
}

impl Opt {
    /// The words of this option, name first.
    pub fn words(&self) -> &[Word] {
        &self.words
    }
}

/// A complete QEMU invocation: environment additions, a command prefix (`valgrind`,
/// `taskset -c 1`…), program and options.
///
/// Nothing here runs anything: hand [`QemuCommand::command`] (or [`QemuCommand::argv`] and
/// [`QemuCommand::env`]) to whatever spawns processes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuCommand {
    pub(crate) env: Vec<(String, String)>,
    /// argv words before the program (`qemu_command_prefix`).
    pub(crate) prefix: Vec<Word>,
    pub(crate) program: Word,
    pub(crate) options: Vec<Opt>,
}

impl QemuCommand {
    pub(crate) fn new(program: Word) -> QemuCommand {
        QemuCommand {
            env: Vec::new(),
            prefix: Vec::new(),
            program,
            options: Vec::with_capacity(48),
        }
    }

    /// Adds an option made of the given words.
    pub(crate) fn push(&mut self, words: Vec<Word>) {
        self.options.push(Opt { words });
    }

    /// Adds `-name value` where `value` is one verbatim word.
    pub(crate) fn push2(&mut self, name: &str, value: Word) {
        self.options.push(Opt {
            words: vec![Word::from(name), value],
        });
    }

    /// Adds a bare flag such as `-nodefaults`.
    pub(crate) fn flag(&mut self, name: &str) {
        self.options.push(Opt {
            words: vec![Word::from(name)],
        });
    }

    /// Variables to set in the child's environment (`DISPLAY` from `x11_display`,
    /// `MALLOC_PERTURB_`, `QEMU_AUDIO_DRV`).
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// The QEMU program (run through [`QemuCommand::prefix`] when there is one).
    pub fn program(&self) -> &OsStr {
        self.program.as_os_str()
    }

    /// The argv words before the QEMU program (`qemu_command_prefix`); empty when QEMU runs
    /// directly.
    pub fn prefix(&self) -> impl Iterator<Item = &OsStr> + '_ {
        self.prefix.iter().map(Word::as_os_str)
    }

    /// The options, grouped as displayed.
    pub fn options(&self) -> &[Opt] {
        &self.options
    }

    /// The arguments after the program, one `OsString` per argv element.
    pub fn args(&self) -> Vec<OsString> {
        self.words()
            .map(|w| OsString::from_vec(w.real.clone()))
            .collect()
    }

    /// The whole argv: the prefix words (if any), then the program, then the arguments.
    pub fn argv(&self) -> Vec<OsString> {
        let mut v = Vec::with_capacity(self.options.len() * 2 + 1 + self.prefix.len());
        v.extend(self.prefix().map(OsStr::to_os_string));
        v.push(self.program.as_os_str().to_os_string());
        v.extend(self.args());
        v
    }

    /// Every word after the program, in order.
    pub fn words(&self) -> impl Iterator<Item = &Word> + '_ {
        self.options.iter().flat_map(|o| o.words.iter())
    }

    /// Replaces the program (e.g. with the binary that was probed).
    pub fn set_program(&mut self, program: impl AsRef<OsStr>) {
        self.program = Word {
            real: program.as_ref().as_bytes().to_vec(),
            stable: None,
        };
    }

    /// Appends extra argv words at the end (e.g. `-S` for a paused start), grouped as one
    /// option for display.
    pub fn push_args<I, S>(&mut self, words: I)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let words: Vec<Word> = words.into_iter().map(|s| Word::from(s.as_ref())).collect();
        if !words.is_empty() {
            self.options.push(Opt { words });
        }
    }

    /// A `std::process::Command` with this argv (prefix first) and environment (not spawned).
    pub fn command(&self) -> std::process::Command {
        let (program, prefix_rest) = match self.prefix.split_first() {
            Some((first, rest)) => (first, rest),
            None => (&self.program, &[][..]),
        };
        // The `Command` is handed to the caller (the `vm` crate spawns it), not run here.
        #[allow(clippy::disallowed_methods)]
        let mut c = std::process::Command::new(program.as_os_str());
        c.args(prefix_rest.iter().map(Word::as_os_str));
        if !self.prefix.is_empty() {
            c.arg(self.program());
        }
        c.args(self.args());
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// The stable rendering: shell-quoted, one option per line, run-specific parts as
    /// placeholders. This is what the snapshots hold.
    pub fn render_stable(&self) -> String {
        self.render_with(Word::stable)
    }

    /// The same layout with the real values, for logs before spawning.
    pub fn render(&self) -> String {
        self.render_with(Word::real_lossy)
    }

    fn render_with(&self, text: impl Fn(&Word) -> String) -> String {
        let mut lines = Vec::with_capacity(self.options.len() + 2);
        for (k, v) in &self.env {
            lines.push(format!("{}={}", k, render::shell_quote(v)));
        }
        let head: Vec<String> = self
            .prefix
            .iter()
            .chain(std::iter::once(&self.program))
            .map(|w| render::shell_quote(&text(w)).into_owned())
            .collect();
        lines.push(head.join(" "));
        for o in &self.options {
            let parts: Vec<String> = o
                .words
                .iter()
                .map(|w| render::shell_quote(&text(w)).into_owned())
                .collect();
            lines.push(format!("    {}", parts.join(" ")));
        }
        let mut out = lines.join(" \\\n");
        out.push('\n');
        out
    }
}
