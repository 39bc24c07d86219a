//! Values of a variant dict and their renderings (Python `str()` and the reference JSON dump).

use std::sync::Arc;

/// A value in a variant dict. Everything is a string except the reserved `dep` (a list) and the
/// two file maps (ordered maps).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A string value.
    Str(Arc<str>),
    /// `dep`.
    List(Arc<Vec<String>>),
    /// `_name_map_file` / `_short_name_map_file`: basename → dotted name, insertion ordered.
    Map(Arc<Vec<(Arc<str>, Arc<str>)>>),
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Str(Arc::from(s))
    }
}

impl Value {
    /// The value as Python's `str()` renders it (lists and maps in Python syntax).
    pub fn to_python_string(&self) -> String {
        py_str(self)
    }

    /// The string, if this is a string value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// Python `repr()` of a str.
pub(crate) fn py_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || (0x7f..=0xa0).contains(&(c as u32)) => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Python `str()` of a value (what `${key}` substitutes).
pub(crate) fn py_str(v: &Value) -> String {
    match v {
        Value::Str(s) => s.to_string(),
        Value::List(l) => {
            let items: Vec<String> = l.iter().map(|s| py_repr(s)).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Map(m) => {
            let items: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{}: {}", py_repr(k), py_repr(v)))
                .collect();
            format!("{{{}}}", items.join(", "))
        }
    }
}

/// Whether any byte of `bytes` must be escaped in JSON (a control character, `"` or `\\`).
/// The JSON dump scans hundreds of megabytes of mostly short values, so no byte is tested
/// on its own: blocks of 16 bytes are folded without branches (the compiler vectorises
/// them), the last block overlaps the one before it, and strings of 8 to 15 bytes are two
/// overlapping words tested bytewise in parallel ([`word_needs_escape`]).
#[inline]
fn needs_escape(bytes: &[u8]) -> bool {
    let special = |b: u8| (b < 0x20) | (b == b'"') | (b == b'\\');
    let block = |b: &[u8]| b.iter().fold(false, |acc, &b| acc | special(b));
    let n = bytes.len();
    if n >= 16 {
        bytes.chunks_exact(16).any(block) || block(&bytes[n - 16..])
    } else if n >= 8 {
        let word = |b: &[u8]| {
            let mut w = [0u8; 8];
            w.copy_from_slice(b);
            word_needs_escape(u64::from_le_bytes(w))
        };
        word(&bytes[..8]) || word(&bytes[n - 8..])
    } else {
        block(bytes)
    }
}

/// Whether one of the 8 bytes of `x` is below 0x20, `"` or `\\` (the classic "has a zero
/// byte" / "has a byte less than n" bit tricks, exact for whether such a byte exists).
#[inline]
fn word_needs_escape(x: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let below_space = x.wrapping_sub(ONES * 0x20) & !x & HIGH;
    let quote = has_zero(x ^ (ONES * u64::from(b'"')));
    let backslash = has_zero(x ^ (ONES * u64::from(b'\\')));
    (below_space | quote | backslash) != 0
}

/// Write a JSON string as Python's `json.dumps(ensure_ascii=False)` does.
pub(crate) fn json_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    if !needs_escape(bytes) {
        out.reserve(bytes.len() + 2);
        out.push(b'"');
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    out.push(b'"');
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if esc.is_empty() {
            out.extend_from_slice(format!("\\u{:04x}", b).as_bytes());
        } else {
            out.extend_from_slice(esc);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Write a value as JSON (maps with sorted keys).
pub(crate) fn json_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Str(s) => json_str(out, s),
        Value::List(l) => {
            out.push(b'[');
            for (i, s) in l.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b", ");
                }
                json_str(out, s);
            }
            out.push(b']');
        }
        Value::Map(m) => {
            let mut items: Vec<&(Arc<str>, Arc<str>)> = m.iter().collect();
            items.sort_by(|a, b| a.0.cmp(&b.0));
            out.push(b'{');
            for (i, (k, v)) in items.into_iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b", ");
                }
                json_str(out, k);
                out.extend_from_slice(b": ");
                json_str(out, v);
            }
            out.push(b'}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_found_in_blocks_and_in_the_remainder() {
        for len in 0usize..=40 {
            let plain = "a".repeat(len);
            assert!(!needs_escape(plain.as_bytes()), "{len}");
            for at in 0..len {
                for c in [b'"', b'\\', b'\n', 0x1f] {
                    let mut b = plain.clone().into_bytes();
                    b[at] = c;
                    assert!(needs_escape(&b), "{len} {at} {c}");
                }
            }
        }
        assert!(!needs_escape("é ~ \u{7f}".as_bytes()));
        assert!(!needs_escape("ÿÿÿÿ ~~~ é !#[]".as_bytes()));
        assert!(!needs_escape(&[
            0x20, 0x21, 0x23, 0x5b, 0x5d, 0x7f, 0x80, 0xff, 0xa2
        ]));
    }

    #[test]
    fn escape_scan_agrees_with_a_bytewise_test_for_every_byte() {
        let naive = |b: &[u8]| b.iter().any(|&c| c < 0x20 || c == b'"' || c == b'\\');
        for fill in [b'a', 0xff, 0x21, 0x5d] {
            for len in 1usize..=20 {
                for at in 0..len {
                    for c in 0..=255u8 {
                        let mut b = vec![fill; len];
                        b[at] = c;
                        assert_eq!(needs_escape(&b), naive(&b), "{fill} {len} {at} {c}");
                    }
                }
            }
        }
    }

    #[test]
    fn python_renderings() {
        assert_eq!(
            py_str(&Value::List(Arc::new(vec!["a".into(), "b'c".into()]))),
            "['a', \"b'c\"]"
        );
        let mut out = Vec::new();
        json_str(&mut out, "a\"b\\c\n\u{1}é");
        assert_eq!(
            String::from_utf8(out).unwrap_or_default(),
            "\"a\\\"b\\\\c\\n\\u0001é\""
        );
    }
}
