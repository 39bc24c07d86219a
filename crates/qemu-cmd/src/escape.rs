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

/// Splits a QEMU option list (`a=b,c,d=e,,f`) into `(key, value)` pairs, the inverse of
/// [`escape_into`]: a doubled comma is a literal comma, a single comma separates items, and an
/// item without `=` is a bare flag (`None`).
///
/// Used to read `nic_extra_params`-style keys (re-emitted escaped, so a value can only ever land
/// in its own key) and by tests to check that built arguments split back into what was put in.
///
/// # Errors
///
/// `Err(item)` for an item with an empty key (`=x`, or an empty item between two commas).
pub fn split_opt_list(s: &str) -> Result<Vec<(String, Option<String>)>, String> {
    let mut items = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ',' {
            if chars.peek() == Some(&',') {
                chars.next();
                cur.push(',');
                continue;
            }
            items.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    items.push(cur);
    items
        .into_iter()
        .map(|item| {
            let (k, v) = match item.split_once('=') {
                Some((k, v)) => (k.to_string(), Some(v.to_string())),
                None => (item.clone(), None),
            };
            if k.is_empty() {
                Err(item)
            } else {
                Ok((k, v))
            }
        })
        .collect()
}

#[cfg(test)]
mod split_tests {
    use super::*;

    #[test]
    fn round_trip() {
        let v = "a,,b=c";
        let built = format!("file={},if=ide,snapshot", escape_opt_value(v));
        let got = split_opt_list(&built);
        assert_eq!(
            got,
            Ok(vec![
                ("file".to_string(), Some(v.to_string())),
                ("if".to_string(), Some("ide".to_string())),
                ("snapshot".to_string(), None),
            ])
        );
        assert!(split_opt_list("a=1,,").is_ok());
        assert!(split_opt_list("a=1,").is_err());
        assert!(split_opt_list("=x").is_err());
    }
}
