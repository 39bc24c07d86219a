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

/// Bytes that need escaping in a JSON string.
const NEEDS_ESCAPE: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// Write a JSON string as Python's `json.dumps(ensure_ascii=False)` does.
pub(crate) fn json_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    if !bytes.iter().any(|&b| NEEDS_ESCAPE[b as usize]) {
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
