//! Shell quoting for display only: logs, dry runs and snapshots.
//!
//! The argv QEMU receives never goes through a shell; this module exists so that a rendered
//! command line can be read unambiguously and pasted into a terminal (after replacing the
//! `@PLACEHOLDER@`s of a stable rendering).

use std::borrow::Cow;

/// `s` quoted for a POSIX shell: unchanged when it only holds characters no shell treats
/// specially, else in single quotes (a `'` becomes `'\''`).
///
/// ```
/// assert_eq!(qemu_cmd::shell_quote("file=a.img,if=ide"), "file=a.img,if=ide");
/// assert_eq!(qemu_cmd::shell_quote("a b"), "'a b'");
/// assert_eq!(qemu_cmd::shell_quote("it's"), r"'it'\''s'");
/// assert_eq!(qemu_cmd::shell_quote(""), "''");
/// ```
pub fn shell_quote(s: &str) -> Cow<'_, str> {
    let safe = |c: char| c.is_ascii_alphanumeric() || "@%+=:,./-_".contains(c);
    if !s.is_empty() && s.chars().all(safe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' {
            out.push_str(r"'\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    Cow::Owned(out)
}

/// An argv as one line for logs: each word [`shell_quote`]d (lossy for non-UTF-8 bytes),
/// separated by spaces. Never executed.
///
/// ```
/// assert_eq!(qemu_cmd::render_argv(&["qemu", "-name", "a b"]), "qemu -name 'a b'");
/// ```
pub fn render_argv<S: AsRef<std::ffi::OsStr>>(argv: &[S]) -> String {
    argv.iter()
        .map(|a| shell_quote(&a.as_ref().to_string_lossy()).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}
