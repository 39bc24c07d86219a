//! Explaining differences (the deliberate-differences table) and comparing a reference record.

use std::fmt::Write as _;

use super::*;
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
