//! Parsing an argv into options and items, and normalising what is run-specific.

use std::collections::HashMap;

/// Options that never take a value (so a following word not starting with `-` is no value of
/// theirs).
pub const FLAGS: &[&str] = &[
    "-S",
    "-nodefaults",
    "-enable-kvm",
    "-no-hpet",
    "-nographic",
    "-no-shutdown",
    "-no-reboot",
    "-daemonize",
    "--preconfig",
    "-preconfig",
    "-snapshot",
    "-no-acpi",
    "-enable-fips",
    "-no-user-config",
    "-nodefconfig",
    "-full-screen",
    "-no-fd-bootchk",
    "-no-kvm",
    "-usb",
    "-s",
];

/// One option of an argv: its name (`-device`) and its value, if it takes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgOpt {
    /// The option name, dashes included.
    pub name: String,
    /// Its value word, `None` for a flag.
    pub value: Option<String>,
}

impl ArgOpt {
    /// The option as one shell-like text (`-m 1024`), for reports.
    pub fn text(&self) -> String {
        match &self.value {
            Some(v) => format!("{} {v}", self.name),
            None => self.name.clone(),
        }
    }
}

/// Parses the words after the program into options. A word that does not start with `-` and
/// follows no value-taking option is kept as an option of its own with an empty name (QEMU reads
/// it as the disk image).
pub fn parse_argv<S: AsRef<str>>(args: &[S]) -> Vec<ArgOpt> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let word = args[i].as_ref();
        i += 1;
        if !word.starts_with('-') {
            out.push(ArgOpt {
                name: String::new(),
                value: Some(word.to_string()),
            });
            continue;
        }
        let takes_value = !FLAGS.contains(&word)
            && args
                .get(i)
                .is_some_and(|next| !next.as_ref().starts_with('-'));
        let value = if takes_value {
            i += 1;
            Some(args[i - 1].as_ref().to_string())
        } else {
            None
        };
        out.push(ArgOpt {
            name: word.to_string(),
            value,
        });
    }
    out
}

/// Splits an option value at its single commas, un-escaping `,,` to `,`:
/// `file=a,,b,format=raw` → `["file=a,b", "format=raw"]`.
pub fn split_items(value: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut cur = String::new();
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ',' {
            if chars.peek() == Some(&',') {
                chars.next();
                cur.push(',');
            } else {
                items.push(std::mem::take(&mut cur));
            }
        } else {
            cur.push(c);
        }
    }
    items.push(cur);
    items
}

/// The items of a value as (key, value) pairs, in order. `key=value` items are keyed by their
/// key; bare items (`virtio-blk-pci`, `1024`) by their position among bare items: `value`,
/// `value2`… A key that repeats gets `#2`, `#3`… from its second occurrence on.
pub fn keyed_items(value: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut bare = 0;
    for item in split_items(value) {
        let (key, val) = match item.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => {
                bare += 1;
                let k = if bare == 1 {
                    "value".to_string()
                } else {
                    format!("value{bare}")
                };
                (k, item)
            }
        };
        let n = seen.entry(key.clone()).or_insert(0);
        *n += 1;
        let key = if *n == 1 { key } else { format!("{key}#{n}") };
        out.push((key, val));
    }
    out
}

/// Whether `id` is one of avocado-vt's generated ids (`utils_misc.generate_random_id`): `id` and
/// 6 random letters and digits (`idB5I0tJ`, `idzkgpcw`; so a word such as `identity` counts as
/// one too), or `id` and 8 of them with a capital among them.
pub fn is_random_id(id: &str) -> bool {
    let Some(rest) = id.strip_prefix("id") else {
        return false;
    };
    rest.chars().all(|c| c.is_ascii_alphanumeric())
        && (rest.len() == 6 || (rest.len() == 8 && is_random_suffix(rest)))
}

/// Whether `s` looks like avocado-vt's 8-character random suffix (`virtio-rng-8Z4ROcSv`,
/// `tcp-8B8homLe`, `chardev-ff4xaps7`): 8 letters and digits, a letter and a capital or a digit
/// among them.
pub fn is_random_suffix(s: &str) -> bool {
    s.len() == 8
        && s.chars().all(|c| c.is_ascii_alphanumeric())
        && s.chars().any(|c| c.is_ascii_alphabetic())
        && s.chars()
            .any(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// The run-specific text to take out of both argvs before comparing.
#[derive(Debug, Clone, Default)]
pub struct Normalise {
    /// avocado-vt's data dir (its images and scratch files live there), shown as `@ROOT@`.
    pub data_dir: Option<String>,
}

impl Normalise {
    /// The normalised words: see the module docs.
    pub fn argv<S: AsRef<str>>(&self, args: &[S]) -> Vec<String> {
        let mut out: Vec<String> = Vec::with_capacity(args.len());
        for (i, w) in args.iter().enumerate() {
            let w = w.as_ref();
            if i > 0 && args[i - 1].as_ref() == "-vnc" {
                out.push(normalise_vnc(w));
                continue;
            }
            let mut s = w.to_string();
            if let Some(dir) = self.data_dir.as_deref().filter(|d| !d.is_empty()) {
                s = s.replace(dir.trim_end_matches('/'), "@ROOT@");
            }
            s = drop_timestamps(&s);
            s = replace_tokens(&s);
            out.push(s);
        }
        out
    }
}

/// `-vnc :0,password=on` → `@VNC@,password=on` (kvmtest's `@VNC@` stays).
fn normalise_vnc(w: &str) -> String {
    let (display, rest) = match w.find(',') {
        Some(i) => (&w[..i], &w[i..]),
        None => (w, ""),
    };
    let port = display.rsplit(':').next().unwrap_or("");
    if display.contains(':') && !port.is_empty() && port.chars().all(|c| c.is_ascii_digit()) {
        format!("{}@VNC@{rest}", &display[..display.len() - port.len() - 1])
    } else {
        w.to_string()
    }
}

/// Removes avocado-vt's `-YYYYMMDD-HHMMSS-XXXXXXXX` file name suffixes (and `_YYYY…` id
/// suffixes: `seabioslog_id_20261206-022649-JlPwrC0R` → `seabioslog_id`).
fn drop_timestamps(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        let stamp = b.len() >= i + 25
            && (b[i] == b'-' || b[i] == b'_')
            && b[i + 1..i + 9].iter().all(u8::is_ascii_digit)
            && b[i + 9] == b'-'
            && b[i + 10..i + 16].iter().all(u8::is_ascii_digit)
            && b[i + 16] == b'-'
            && b[i + 17..i + 25].iter().all(u8::is_ascii_alphanumeric)
            && b.get(i + 25).is_none_or(|c| !c.is_ascii_alphanumeric());
        if stamp {
            i += 25;
        } else {
            let c = s[i..].chars().next().unwrap_or(' ');
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// Replaces random ids (`idB5I0tJ` → `@ID@`, `tcp-8B8homLe` → `tcp-@ID@`) and MACs, token by
/// token (tokens: runs of alphanumerics, `_`, `-`, `:`, `@`).
fn replace_tokens(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut tok = String::new();
    let flush = |tok: &mut String, out: &mut String| {
        if is_random_id(tok) {
            out.push_str("@ID@");
        } else if let Some((_, suffix)) = tok.rsplit_once('-').filter(|(_, x)| is_random_suffix(x))
        {
            out.push_str(&tok[..tok.len() - suffix.len()]);
            out.push_str("@ID@");
        } else if is_mac(tok) || (tok.starts_with("@MAC") && tok.ends_with('@') && tok.len() > 4) {
            out.push_str("@MAC@");
        } else {
            out.push_str(tok);
        }
        tok.clear();
    };
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || c == ':' || c == '_' || c == '@' || c == '-' {
            tok.push(c);
        } else {
            flush(&mut tok, &mut out);
            out.push(c);
        }
    }
    flush(&mut tok, &mut out);
    out
}

fn is_mac(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
}
