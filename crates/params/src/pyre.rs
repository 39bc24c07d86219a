//! Python `re` dialect for the key regexes of `?=`, `?+=`, `?<=`.
//!
//! The reference matches keys with `re.match(PATTERN + "$", key)`. Patterns are checked for
//! syntax Python rejects (so a config that fails there fails here), translated where the
//! dialects differ (`\Z`, `{,n}`, a literal `{`, `[` inside a class), and run with
//! `fancy-regex`, which has Python's look-around and back-references.

/// A compiled key regex.
#[derive(Debug, Clone)]
pub(crate) struct KeyRegex(fancy_regex::Regex);

impl KeyRegex {
    /// Compile like `re.compile(pattern + "$")` used with `re.match`.
    pub(crate) fn new(pattern: &str) -> Result<KeyRegex, String> {
        let translated =
            translate(pattern).map_err(|m| format!("invalid key regex `{pattern}`: {m}"))?;
        fancy_regex::Regex::new(&format!("^(?:{translated}$)"))
            .map(KeyRegex)
            .map_err(|e| format!("invalid key regex `{pattern}`: {e}"))
    }

    /// Does the key match? (A pathological pattern that exhausts the backtracking limit counts
    /// as no match.)
    pub(crate) fn is_match(&self, key: &str) -> bool {
        self.0.is_match(key).unwrap_or(false)
    }
}

/// Is `s[i..]` a Python repeat `{m}`, `{m,}`, `{,n}`, `{m,n}`? Returns (min, max, len).
fn quantifier(s: &[char], i: usize) -> Option<(String, Option<String>, usize)> {
    let mut j = i + 1;
    let mut lo = String::new();
    while j < s.len() && s[j].is_ascii_digit() {
        lo.push(s[j]);
        j += 1;
    }
    if j < s.len() && s[j] == '}' {
        return if lo.is_empty() {
            None
        } else {
            Some((lo.clone(), Some(lo), j + 1 - i))
        };
    }
    if j >= s.len() || s[j] != ',' {
        return None;
    }
    j += 1;
    let mut hi = String::new();
    while j < s.len() && s[j].is_ascii_digit() {
        hi.push(s[j]);
        j += 1;
    }
    if j < s.len() && s[j] == '}' {
        let lo = if lo.is_empty() { "0".to_string() } else { lo };
        return Some((lo, if hi.is_empty() { None } else { Some(hi) }, j + 1 - i));
    }
    None
}

fn translate(p: &str) -> Result<String, String> {
    let s: Vec<char> = p.chars().collect();
    let mut out = String::with_capacity(p.len() + 8);
    let mut i = 0;
    let mut in_class = false;
    let mut class_start = 0;
    while i < s.len() {
        let c = s[i];
        match c {
            '\\' => {
                let Some(&n) = s.get(i + 1) else {
                    return Err("bad escape (end of pattern)".into());
                };
                if n.is_ascii_alphabetic() && !"abBdDfnrsStvwWZAxuU".contains(n) {
                    return Err(format!("bad escape \\{n}"));
                }
                match n {
                    'Z' => out.push_str("\\z"),
                    'b' if in_class => out.push_str("\\x08"),
                    _ => {
                        out.push('\\');
                        out.push(n);
                    }
                }
                i += 2;
                continue;
            }
            '[' if !in_class => {
                in_class = true;
                class_start = i;
                out.push('[');
                // a `]` or `^]` right after the opening is literal in both dialects
                if s.get(i + 1) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                if s.get(i + 1) == Some(&']') {
                    out.push_str("\\]");
                    i += 1;
                }
            }
            '[' => out.push_str("\\["),
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            '&' | '~' | '-' if in_class && s.get(i + 1) == Some(&c) => {
                out.push('\\');
                out.push(c);
            }
            '{' if !in_class => match quantifier(&s, i) {
                Some((lo, hi, len)) => {
                    match hi {
                        Some(h) => out.push_str(&format!("{{{lo},{h}}}")),
                        None => out.push_str(&format!("{{{lo},}}")),
                    }
                    i += len;
                    continue;
                }
                None => out.push_str("\\{"),
            },
            '}' if !in_class => out.push_str("\\}"),
            '(' if !in_class && s.get(i + 1) == Some(&'?') && s.get(i + 2) == Some(&'<') => {
                if !matches!(s.get(i + 3), Some('=') | Some('!')) {
                    return Err("unknown extension ?<".into());
                }
                out.push(c);
            }
            _ => out.push(c),
        }
        i += 1;
    }
    if in_class {
        return Err(format!(
            "unterminated character set at position {class_start}"
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, k: &str) -> bool {
        KeyRegex::new(p).map(|r| r.is_match(k)).unwrap_or(false)
    }

    #[test]
    fn python_semantics() {
        assert!(m("kill_vm.*", "kill_vm_gracefully"));
        assert!(
            m("a|b", "abc"),
            "re.match('a|b$') matches a prefix through the first branch"
        );
        assert!(!m("a|b", "cb"));
        assert!(m(r"image_(?!name).*", "image_size"));
        assert!(!m(r"image_(?!name).*", "image_name"));
        assert!(m(r"(a)\1", "aa"));
        assert!(m(r"ab{,1}", "a"));
        assert!(m(r"x\Z", "x"));
        assert!(m(r"a{x}", "a{x}"));
    }

    #[test]
    fn rust_only_syntax_is_rejected() {
        assert!(KeyRegex::new(r"\pL").is_err());
        assert!(KeyRegex::new(r"(?<n>a)").is_err());
        assert!(KeyRegex::new(r"[a").is_err());
    }
}
