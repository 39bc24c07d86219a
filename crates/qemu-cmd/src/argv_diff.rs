//! Option-by-option differences between two QEMU command lines: avocado-vt's (the reference) and
//! kvmtest's, as `cargo xtask compare-avocado` and the `avocado` test report them.
//!
//! Both argvs (without the program) are parsed into [`ArgOpt`]s: `-name value`, or a flag when
//! the name is a known flag ([`FLAGS`]) or the next word starts with `-`. Each option gets an
//! identity ([`identify`]): `-device` its `id` (`-device virtio-blk-pci[image1]`), else its driver
//! and occurrence (`-device usb-tablet#1`); `-blockdev` its `node-name`; `-chardev`, `-netdev`,
//! `-object` their `id`; `-drive` its `id` or `file`; any other option its name and occurrence
//! (`-m`, `-m#2`). Options with the same identity on both sides are compared item by item (the
//! value split at single commas, `,,` being an escaped comma: [`split_items`]); what is left is
//! then paired by option name and driver, in order, so a device that avocado-vt gave a random id
//! still meets its kvmtest counterpart. Whatever has no counterpart is missing in kvmtest or only
//! in kvmtest.
//!
//! Before comparing, run-specific text is normalised ([`Normalise`]): avocado-vt's random ids
//! (`idB5I0tJ` → `@ID@`, `virtio-rng-8Z4ROcSv` → `virtio-rng-@ID@`), its timestamped file names (`-20261206-020644-6O7sKtVx` dropped), its
//! data dir (→ `@ROOT@`), MACs (→ `@MAC@`, kvmtest's `@MAC_nic1@` too) and `-vnc` displays
//! (→ `@VNC@`). kvmtest's other `@PLACEHOLDERS@` stay as they are.
//!
//! Each [`Difference`] has a one-line [`Difference::key`], such as
//! `-device virtio-blk-pci[image1]: addr missing in kvmtest (avocado-vt: 0x3)`, matched against
//! the patterns of an [`Explanations`] table (`*` matches any text) to tell deliberate
//! differences from gaps.
//!
//! ```
//! use qemu_cmd::argv_diff::{diff, Normalise};
//!
//! let avocado = ["-m", "1024", "-device", "virtio-blk-pci,id=image1,addr=0x3", "-S"];
//! let kvmtest = ["-m", "1024", "-device", "virtio-blk-pci,id=image1"];
//! let n = Normalise::default();
//! let d = diff(&n.argv(&avocado), &n.argv(&kvmtest));
//! let keys: Vec<String> = d.iter().map(|d| d.key()).collect();
//! assert_eq!(
//!     keys,
//!     [
//!         "-device virtio-blk-pci[image1]: addr missing in kvmtest (avocado-vt: 0x3)",
//!         "-S: missing in kvmtest (avocado-vt: -S)",
//!     ]
//! );
//! ```

use std::collections::HashMap;
use std::fmt::Write as _;

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

/// An option's driver (what kind of thing it makes): `-device`'s driver, `-object`'s qom-type,
/// `-blockdev`'s `driver`, `-chardev`/`-netdev`'s backend; empty for other options.
pub fn driver(opt: &ArgOpt) -> String {
    let Some(v) = &opt.value else {
        return String::new();
    };
    let items = keyed_items(v);
    let get = |k: &str| {
        items
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    match opt.name.as_str() {
        "-device" => get("driver").or_else(|| get("value")),
        "-object" => get("qom-type").or_else(|| get("value")),
        "-blockdev" => get("driver"),
        "-chardev" => get("backend").or_else(|| get("value")),
        "-netdev" | "-nic" => get("type").or_else(|| get("value")),
        _ => None,
    }
    .unwrap_or_default()
}

/// The identities of `opts`, in order (see the module docs).
pub fn identify(opts: &[ArgOpt]) -> Vec<String> {
    let mut count: HashMap<String, usize> = HashMap::new();
    let mut numbered = |base: String| {
        let n = count.entry(base.clone()).or_insert(0);
        *n += 1;
        if *n == 1 {
            base
        } else {
            format!("{base}#{n}")
        }
    };
    opts.iter()
        .map(|o| {
            let items = o.value.as_deref().map(keyed_items).unwrap_or_default();
            let get = |k: &str| {
                items
                    .iter()
                    .find(|(key, v)| key == k && !v.is_empty() && !v.contains("@ID@"))
                    .map(|(_, v)| v.clone())
            };
            let name = if o.name.is_empty() {
                "(image)"
            } else {
                o.name.as_str()
            };
            match o.name.as_str() {
                "-device" => match get("id") {
                    Some(id) => numbered(format!("-device {}[{id}]", driver(o))),
                    None => numbered(format!("-device {}", driver(o))),
                },
                "-blockdev" => match get("node-name") {
                    Some(n) => numbered(format!("-blockdev {}[{n}]", driver(o))),
                    None => numbered(format!("-blockdev {}", driver(o))),
                },
                "-chardev" | "-netdev" | "-object" => match get("id") {
                    Some(id) => numbered(format!("{name} {}[{id}]", driver(o))),
                    None => numbered(format!("{name} {}", driver(o))),
                },
                "-mon" => match get("chardev") {
                    Some(c) => numbered(format!("-mon [{c}]")),
                    None => numbered("-mon".into()),
                },
                "-drive" => match get("id").or_else(|| get("file")) {
                    Some(id) => numbered(format!("-drive [{id}]")),
                    None => numbered("-drive".into()),
                },
                _ => numbered(name.to_string()),
            }
        })
        .collect()
}

/// One difference between avocado-vt's and kvmtest's command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    /// An option avocado-vt gives and kvmtest does not.
    Missing {
        /// The option's identity.
        opt: String,
        /// avocado-vt's option text.
        avocado: String,
    },
    /// An option only kvmtest gives.
    Extra {
        /// The option's identity.
        opt: String,
        /// kvmtest's option text.
        kvmtest: String,
    },
    /// An item both give, with different values.
    Differs {
        /// The option's identity (avocado-vt's).
        opt: String,
        /// The item's key.
        item: String,
        /// avocado-vt's value.
        avocado: String,
        /// kvmtest's value.
        kvmtest: String,
    },
    /// An item avocado-vt gives and kvmtest does not.
    ItemMissing {
        /// The option's identity (avocado-vt's).
        opt: String,
        /// The item's key.
        item: String,
        /// avocado-vt's value.
        avocado: String,
    },
    /// An item only kvmtest gives.
    ItemExtra {
        /// The option's identity (avocado-vt's).
        opt: String,
        /// The item's key.
        item: String,
        /// kvmtest's value.
        kvmtest: String,
    },
}

impl Difference {
    /// The one-line description, values included: what explanation patterns are matched against.
    pub fn key(&self) -> String {
        match self {
            Difference::Missing { opt, avocado } => {
                format!("{opt}: missing in kvmtest (avocado-vt: {avocado})")
            }
            Difference::Extra { opt, kvmtest } => {
                format!("{opt}: only in kvmtest (kvmtest: {kvmtest})")
            }
            Difference::Differs {
                opt,
                item,
                avocado,
                kvmtest,
            } => format!("{opt}: {item} differs (avocado-vt: {avocado}, kvmtest: {kvmtest})"),
            Difference::ItemMissing { opt, item, avocado } => {
                format!("{opt}: {item} missing in kvmtest (avocado-vt: {avocado})")
            }
            Difference::ItemExtra { opt, item, kvmtest } => {
                format!("{opt}: {item} only in kvmtest (kvmtest: {kvmtest})")
            }
        }
    }

    /// The description without values (`-device virtio-blk-pci[image1]: addr missing in
    /// kvmtest`), for grouping the same gap across variants.
    pub fn kind(&self) -> String {
        let key = self.key();
        match key.rfind(" (") {
            Some(i) if key.ends_with(')') => key[..i].to_string(),
            _ => key,
        }
    }
}

/// The differences between two normalised argvs (words after the program), in avocado-vt's
/// option order, then kvmtest's extra options in theirs.
pub fn diff<A: AsRef<str>, K: AsRef<str>>(avocado: &[A], kvmtest: &[K]) -> Vec<Difference> {
    let a = parse_argv(avocado);
    let k = parse_argv(kvmtest);
    let a_id = identify(&a);
    let k_id = identify(&k);
    let mut pair: Vec<Option<usize>> = vec![None; a.len()];
    let mut taken = vec![false; k.len()];
    let k_index: HashMap<&str, usize> = k_id
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    for (i, id) in a_id.iter().enumerate() {
        if let Some(&j) = k_index.get(id.as_str()) {
            pair[i] = Some(j);
            taken[j] = true;
        }
    }
    // leftovers: same option name and driver, the most alike first, then in order
    let mut candidates = Vec::new();
    for i in (0..a.len()).filter(|&i| pair[i].is_none()) {
        let d = driver(&a[i]);
        for j in (0..k.len()).filter(|&j| !taken[j] && k[j].name == a[i].name) {
            if driver(&k[j]) == d {
                candidates.push((std::cmp::Reverse(likeness(&a[i], &k[j])), i, j));
            }
        }
    }
    candidates.sort();
    for (_, i, j) in candidates {
        if pair[i].is_none() && !taken[j] {
            pair[i] = Some(j);
            taken[j] = true;
        }
    }
    let mut out = Vec::new();
    for (i, p) in pair.iter().enumerate() {
        match p {
            None => out.push(Difference::Missing {
                opt: a_id[i].clone(),
                avocado: a[i].text(),
            }),
            Some(j) => item_diff(&a_id[i], &a[i], &k[*j], &mut out),
        }
    }
    for (j, t) in taken.iter().enumerate() {
        if !t {
            out.push(Difference::Extra {
                opt: k_id[j].clone(),
                kvmtest: k[j].text(),
            });
        }
    }
    out
}

/// How alike two options are: their items with equal values, paths counting as equal when their
/// file names without extension are (`@ROOT@/serial-serial0`, `@RUN_DIR@/serial-serial0.sock`).
fn likeness(a: &ArgOpt, k: &ArgOpt) -> usize {
    let stem = |v: &str| {
        let base = v.rsplit('/').next().unwrap_or(v);
        base.split('.').next().unwrap_or(base).to_string()
    };
    let ai = a.value.as_deref().map(keyed_items).unwrap_or_default();
    let ki = k.value.as_deref().map(keyed_items).unwrap_or_default();
    ai.iter()
        .filter(|(key, av)| {
            ki.iter().any(|(kk, kv)| {
                kk == key && (kv == av || (av.contains('/') && stem(av) == stem(kv)))
            })
        })
        .count()
}

fn item_diff(opt: &str, a: &ArgOpt, k: &ArgOpt, out: &mut Vec<Difference>) {
    let ai = a.value.as_deref().map(keyed_items).unwrap_or_default();
    let ki = k.value.as_deref().map(keyed_items).unwrap_or_default();
    for (key, av) in &ai {
        match ki.iter().find(|(kk, _)| kk == key) {
            Some((_, kv)) if kv == av => {}
            Some((_, kv)) => out.push(Difference::Differs {
                opt: opt.to_string(),
                item: key.clone(),
                avocado: av.clone(),
                kvmtest: kv.clone(),
            }),
            None => out.push(Difference::ItemMissing {
                opt: opt.to_string(),
                item: key.clone(),
                avocado: av.clone(),
            }),
        }
    }
    for (key, kv) in &ki {
        if !ai.iter().any(|(ak, _)| ak == key) {
            out.push(Difference::ItemExtra {
                opt: opt.to_string(),
                item: key.clone(),
                kvmtest: kv.clone(),
            });
        }
    }
}

/// Whether `text` matches `pattern`, where `*` matches any run of characters (none included)
/// and every other character itself.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// The deliberate differences: (pattern, why) rows.
#[derive(Debug, Clone, Default)]
pub struct Explanations {
    /// The rows, in table order; the first matching row explains a difference.
    pub rows: Vec<(String, String)>,
}

impl Explanations {
    /// Reads the table of the `## Deliberate differences from avocado-vt` section of a markdown
    /// text: rows `| pattern | why |`, the pattern possibly in backticks (header and separator
    /// rows are skipped).
    pub fn from_markdown(text: &str) -> Explanations {
        let mut rows = Vec::new();
        let mut inside = false;
        for line in text.lines() {
            if line.starts_with("## ") {
                inside = line.trim() == "## Deliberate differences from avocado-vt";
                continue;
            }
            let line = line.trim();
            if !inside || !line.starts_with('|') {
                continue;
            }
            let cells: Vec<&str> = line.trim_matches('|').splitn(2, " | ").collect();
            if cells.len() != 2 {
                continue;
            }
            let pattern = cells[0].trim();
            if pattern == "difference" || pattern.chars().all(|c| c == '-' || c == ':') {
                continue;
            }
            let pattern = pattern
                .strip_prefix('`')
                .and_then(|p| p.strip_suffix('`'))
                .unwrap_or(pattern);
            rows.push((pattern.to_string(), cells[1].trim().to_string()));
        }
        Explanations { rows }
    }

    /// The reason of the first row whose pattern matches `key`.
    pub fn explain(&self, key: &str) -> Option<&str> {
        self.rows
            .iter()
            .find(|(p, _)| glob_match(p, key))
            .map(|(_, why)| why.as_str())
    }
}

/// The comparison of one variant.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Both made a command line: the differences, each with its explanation if there is one.
    Compared(Vec<(Difference, Option<String>)>),
    /// Both refused the variant.
    BothRefused {
        /// avocado-vt's error.
        avocado: String,
        /// kvmtest's error.
        kvmtest: String,
    },
    /// Only kvmtest refused it.
    KvmtestRefused(String),
    /// Only avocado-vt refused it.
    AvocadoRefused(String),
}

impl Outcome {
    /// Compares avocado-vt's result (argv after the program, or its error) with kvmtest's.
    pub fn new(
        avocado: Result<Vec<String>, String>,
        kvmtest: Result<Vec<String>, String>,
        normalise: &Normalise,
        explanations: &Explanations,
    ) -> Outcome {
        match (avocado, kvmtest) {
            (Ok(a), Ok(k)) => Outcome::Compared(
                diff(&normalise.argv(&a), &normalise.argv(&k))
                    .into_iter()
                    .map(|d| {
                        let why = explanations.explain(&d.key()).map(str::to_string);
                        (d, why)
                    })
                    .collect(),
            ),
            (Err(a), Err(k)) => Outcome::BothRefused {
                avocado: a,
                kvmtest: k,
            },
            (Ok(_), Err(k)) => Outcome::KvmtestRefused(k),
            (Err(a), Ok(_)) => Outcome::AvocadoRefused(a),
        }
    }

    /// The unexplained differences (a refusal by one side only counts as one).
    pub fn unexplained(&self) -> usize {
        match self {
            Outcome::Compared(d) => d.iter().filter(|(_, why)| why.is_none()).count(),
            Outcome::BothRefused { .. } => 0,
            Outcome::KvmtestRefused(_) | Outcome::AvocadoRefused(_) => 1,
        }
    }

    /// The report: one line per difference, explained ones marked `[explained: why]`.
    pub fn report(&self) -> String {
        let mut s = String::new();
        match self {
            Outcome::Compared(d) if d.is_empty() => s.push_str("identical\n"),
            Outcome::Compared(d) => {
                let explained = d.iter().filter(|(_, w)| w.is_some()).count();
                let _ = writeln!(
                    s,
                    "{} differences: {} unexplained, {explained} explained",
                    d.len(),
                    d.len() - explained
                );
                for (diff, why) in d {
                    match why {
                        None => {
                            let _ = writeln!(s, "- {}", diff.key());
                        }
                        Some(w) => {
                            let _ = writeln!(s, "  {} [explained: {w}]", diff.key());
                        }
                    }
                }
            }
            Outcome::BothRefused { avocado, kvmtest } => {
                let _ = writeln!(
                    s,
                    "refused by both\navocado-vt: {avocado}\nkvmtest: {kvmtest}"
                );
            }
            Outcome::KvmtestRefused(k) => {
                let _ = writeln!(s, "- refused only by kvmtest: {k}");
            }
            Outcome::AvocadoRefused(a) => {
                let _ = writeln!(s, "- refused only by avocado-vt: {a}");
            }
        }
        s
    }
}

/// Compares one reference record (a JSON file of `fixtures/avocado/`, written by
/// `xtask/avocado/reference.py`: `params`, and `argv` or `error`, and `data_dir`) with the command
/// line kvmtest builds from the same `params` for `caps`, in a dry run
/// ([`crate::RunPlan::dry`]) on a KVM host (the accelerator KVM, as avocado-vt's reference
/// assumes).
pub fn compare_reference(
    record: &serde_json::Value,
    caps: &crate::Capabilities,
    explanations: &Explanations,
) -> Outcome {
    let mut params = crate::Params::new();
    if let Some(map) = record.get("params").and_then(serde_json::Value::as_object) {
        for (k, v) in map {
            // `dep`, `_name_map_file`…: the parser's own lists and maps, no test params
            if let Some(v) = v.as_str() {
                params.insert(k.as_str(), v);
            }
        }
    }
    let avocado = match (record.get("argv"), record.get("error")) {
        (Some(serde_json::Value::Array(argv)), _) => Ok(argv
            .iter()
            .skip(1)
            .map(|w| w.as_str().unwrap_or_default().to_string())
            .collect()),
        (_, Some(e)) => Err(e.as_str().unwrap_or_default().to_string()),
        _ => Err("the record has neither `argv` nor `error`".into()),
    };
    // a dry run on a KVM host, as avocado-vt's reference assumes
    let plan = crate::RunPlan {
        accel: Some(crate::types::Accel::Kvm),
        ..crate::RunPlan::dry()
    };
    let kvmtest = crate::cmdline(&params, caps, &plan)
        .map(|cmd| cmd.words().map(crate::Word::stable).collect())
        .map_err(|e| e.to_string());
    let normalise = Normalise {
        data_dir: record
            .get("data_dir")
            .and_then(serde_json::Value::as_str)
            .map(str::to_string),
    };
    Outcome::new(avocado, kvmtest, &normalise, explanations)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(a: &[&str], k: &[&str]) -> Vec<String> {
        let n = Normalise::default();
        diff(&n.argv(a), &n.argv(k))
            .iter()
            .map(Difference::key)
            .collect()
    }

    #[test]
    fn escaped_commas_stay_in_their_item() {
        assert_eq!(
            split_items("file=a,,b,,,format=raw"),
            ["file=a,b,", "format=raw"]
        );
        assert_eq!(split_items(""), [""]);
        assert_eq!(
            keyed_items("virtio-blk-pci,id=x,id=y,z"),
            [
                ("value".into(), "virtio-blk-pci".into()),
                ("id".into(), "x".into()),
                ("id#2".into(), "y".into()),
                ("value2".into(), "z".into())
            ]
        );
    }

    #[test]
    fn flags_take_no_value() {
        let o = parse_argv(&[
            "-S",
            "-m",
            "512",
            "-nodefaults",
            "-usb",
            "x.img",
            "-vga",
            "std",
        ]);
        let t: Vec<String> = o.iter().map(ArgOpt::text).collect();
        assert_eq!(
            t,
            ["-S", "-m 512", "-nodefaults", "-usb", " x.img", "-vga std"]
        );
        let o = parse_argv(&["-snapshot", "-foo"]);
        assert_eq!(o[0].value, None);
        assert_eq!(o[1].value, None);
    }

    #[test]
    fn random_ids_match_by_driver_and_order() {
        assert!(is_random_id("idB5I0tJ"));
        assert!(is_random_id("idzkgpcw"));
        assert!(is_random_suffix("8B8homLe"));
        assert!(is_random_suffix("ff4xaps7"));
        assert!(!is_random_suffix("abcdefgh"));
        assert!(!is_random_suffix("12345678"));
        assert!(!is_random_id("identifier"));
        assert!(!is_random_id("id-1234"));
        assert!(!is_random_id("image1"));
        let d = keys(
            &[
                "-device",
                "usb-tablet,id=idB5I0tJ,bus=usb1.0",
                "-device",
                "usb-tablet,id=idaaaa9a,bus=usb1.0,port=2",
            ],
            &[
                "-device",
                "usb-tablet,bus=usb1.0",
                "-device",
                "usb-tablet,id=t2,bus=usb1.0",
            ],
        );
        assert_eq!(
            d,
            [
                "-device usb-tablet: id missing in kvmtest (avocado-vt: @ID@)",
                "-device usb-tablet#2: id differs (avocado-vt: @ID@, kvmtest: t2)",
                "-device usb-tablet#2: port missing in kvmtest (avocado-vt: 2)",
            ]
        );
    }

    #[test]
    fn item_and_option_differences() {
        let d = keys(
            &[
                "-m",
                "1024",
                "-blockdev",
                "driver=file,node-name=f1,filename=/a,,b,aio=threads",
                "-chardev",
                "socket,id=qmp,path=/x",
            ],
            &[
                "-m",
                "2048",
                "-blockdev",
                "driver=file,node-name=f1,filename=/a,,b,cache.direct=on",
                "-nodefaults",
            ],
        );
        assert_eq!(
            d,
            [
                "-m: value differs (avocado-vt: 1024, kvmtest: 2048)",
                "-blockdev file[f1]: aio missing in kvmtest (avocado-vt: threads)",
                "-blockdev file[f1]: cache.direct only in kvmtest (kvmtest: on)",
                "-chardev socket[qmp]: missing in kvmtest (avocado-vt: -chardev socket,id=qmp,path=/x)",
                "-nodefaults: only in kvmtest (kvmtest: -nodefaults)",
            ]
        );
        assert_eq!(
            Difference::ItemMissing {
                opt: "-m".into(),
                item: "slots".into(),
                avocado: "4".into()
            }
            .kind(),
            "-m: slots missing in kvmtest"
        );
    }

    #[test]
    fn leftovers_pair_with_the_most_alike() {
        let d = keys(
            &[
                "-chardev",
                "socket,id=qmp_a,path=/r/monitor-a",
                "-chardev",
                "socket,id=ser,path=/r/serial-serial0",
            ],
            &[
                "-chardev",
                "socket,id=serial0,path=@RUN_DIR@/serial-serial0.sock",
            ],
        );
        assert_eq!(
            d,
            [
                "-chardev socket[qmp_a]: missing in kvmtest (avocado-vt: -chardev socket,id=qmp_a,path=/r/monitor-a)",
                "-chardev socket[ser]: id differs (avocado-vt: ser, kvmtest: serial0)",
                "-chardev socket[ser]: path differs (avocado-vt: /r/serial-serial0, kvmtest: @RUN_DIR@/serial-serial0.sock)",
            ]
        );
    }

    #[test]
    fn run_specific_text_is_normalised() {
        let n = Normalise {
            data_dir: Some("/tmp/ref/".into()),
        };
        let w = n.argv(&[
            "-chardev",
            "socket,id=idAb3dEf9h,path=/tmp/ref/avocado_x/monitor-qmp-20261206-020644-6O7sKtVx",
            "-device",
            "e1000,mac=9a:b4:0c:11:22:33,netdev=@MAC_nic1@",
            "-vnc",
            ":0",
            "-vnc",
            "@VNC@",
            "-chardev",
            "socket,id=seabioslog_id_20261206-022649-JlPwrC0R",
            "-object",
            "rng-egd,id=chardev-D8LhSmsw,chardev=tcp-8B8homLe",
        ]);
        assert_eq!(
            w,
            [
                "-chardev",
                "socket,id=@ID@,path=@ROOT@/avocado_x/monitor-qmp",
                "-device",
                "e1000,mac=@MAC@,netdev=@MAC@",
                "-vnc",
                "@VNC@",
                "-vnc",
                "@VNC@",
                "-chardev",
                "socket,id=seabioslog_id",
                "-object",
                "rng-egd,id=chardev-@ID@,chardev=tcp-@ID@",
            ]
        );
    }

    #[test]
    fn explanations_from_a_markdown_table() {
        let md =
            "# x\n## Deliberate differences from avocado-vt\n\n| difference | why |\n|---|---|\n\
                  | `-chardev *: path differs *` | run dir |\n| -vnc*: value* | port |\n## Other\n\
                  | `*` | never |\n";
        let e = Explanations::from_markdown(md);
        assert_eq!(e.rows.len(), 2);
        assert_eq!(
            e.explain("-chardev socket[qmp]: path differs (avocado-vt: a, kvmtest: b)"),
            Some("run dir")
        );
        assert_eq!(e.explain("-m: value differs"), None);
        assert!(glob_match("a*b*c", "aXbYc"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("a*b", "aXc"));
        assert!(glob_match("a**", "a"));
    }
}
