//! `kvmtest explain CFG FILTER [KEY…]`: the variants FILTER selects, why they exist, and where
//! each key's value came from.

use std::io::Write;
use std::path::Path;

use params::{Parser, ParserOptions};

use crate::Failure;

fn loc(l: &Option<params::Location>) -> String {
    match l {
        Some(l) => l.to_string(),
        None => "(computed)".to_string(),
    }
}

pub(crate) fn run(
    cfg: &Path,
    filter: &str,
    keys: &[String],
    limit: usize,
    out: &mut impl Write,
) -> Result<(), Failure> {
    let mut p = Parser::new(ParserOptions::default());
    p.parse_file(cfg)?;
    p.only_filter(filter)?;
    let config = p.finish();
    let found = params::explain(&config, keys, limit)?;
    if found.is_empty() {
        return Err(Failure::Usage(format!(
            "no variant of {} matches `{filter}`",
            cfg.display()
        )));
    }
    for (i, ex) in found.iter().enumerate() {
        writeln!(out, "variant {}: {}", i + 1, ex.name)?;
        writeln!(out, "  shortname: {}", ex.shortname)?;
        writeln!(out, "  entries (outermost block first):")?;
        for e in &ex.entries {
            let d = if e.default {
                "  (default: not in shortname)"
            } else {
                ""
            };
            writeln!(out, "    {:<40} {}{d}", e.label, loc(&e.at))?;
        }
        writeln!(out, "  filters and conditions on its path (file order):")?;
        if ex.decisions.is_empty() {
            writeln!(out, "    (none)")?;
        }
        for d in &ex.decisions {
            let verdict = match d.kind {
                "only" | "no" => "passed",
                _ if d.applied => "applied",
                _ => "not applied",
            };
            writeln!(out, "    {:<40} {:<11} {}", d.text, verdict, loc(&d.at))?;
        }
        writeln!(out, "  keys:")?;
        for (k, steps) in &ex.keys {
            let fin = steps.last().and_then(|s| s.value.clone());
            match fin {
                Some(v) => writeln!(out, "    {k} = {v}")?,
                None => writeln!(out, "    {k} (not set)")?,
            }
            for s in steps {
                let v = s
                    .value
                    .as_deref()
                    .map_or_else(|| "(deleted)".to_string(), |v| format!("-> {v}"));
                writeln!(out, "      {:<32} {:<40} {v}", loc(&s.at), s.statement)?;
            }
        }
        writeln!(out)?;
    }
    Ok(())
}
