//! QEMU's option-value escaping, in exactly one place.
//!
//! QEMU splits `-drive`, `-device`, `-netdev`, `-chardev`… arguments at commas into `key=value`
//! pairs; a literal comma inside a value is written as two commas. Every value that reaches one of
//! those arguments goes through [`escape_into`] (the crate's `Opts` builder calls nothing else), so
//! a file name such as `disk,format=raw` can never smuggle in an extra option. Shell quoting is a
//! different concern: argv never passes through a shell, and [`crate::render`] quotes only for
//! display.

use std::borrow::Cow;

/// Appends `value` to `out`, doubling every comma, the way QEMU's option parser expects.
///
/// Works on bytes because paths on Linux need not be UTF-8.
pub fn escape_into(out: &mut Vec<u8>, value: &[u8]) {
    for &b in value {
        out.push(b);
        if b == b',' {
            out.push(b',');
        }
    }
}

/// `value` escaped for use inside a QEMU option list (`a,b` → `a,,b`); borrowed when there is
/// nothing to escape.
///
/// ```
/// assert_eq!(qemu_cmd::escape_opt_value("disk,format=raw"), "disk,,format=raw");
/// assert_eq!(qemu_cmd::escape_opt_value("plain"), "plain");
/// ```
pub fn escape_opt_value(value: &str) -> Cow<'_, str> {
    if !value.contains(',') {
        return Cow::Borrowed(value);
    }
    let mut out = Vec::with_capacity(value.len() + 4);
    escape_into(&mut out, value.as_bytes());
    // Doubling an ASCII comma keeps UTF-8 valid.
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_every_comma() {
        assert_eq!(escape_opt_value(",a,,b,"), ",,a,,,,b,,");
        assert_eq!(escape_opt_value("é,ü"), "é,,ü");
        let mut out = Vec::new();
        escape_into(&mut out, b"\xff,");
        assert_eq!(out, b"\xff,,");
    }
}

#[cfg(test)]
mod split_tests {
    use super::escape_opt_value;

    #[test]
    fn round_trip() {
        let v = "a,,b=c";
        let built = format!("file={},if=ide,snapshot", escape_opt_value(v));
        let got = spec::opts::split_opt_list(&built);
        assert_eq!(
            got,
            Ok(vec![
                ("file".to_string(), Some(v.to_string())),
                ("if".to_string(), Some("ide".to_string())),
                ("snapshot".to_string(), None),
            ])
        );
    }
}
