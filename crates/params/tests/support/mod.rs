//! Shared by the conformance and fixture tests: run one case exactly as
//! the reference dump (`xtask/reference/dump.py`) does.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use params::{Parser, ParserOptions};

/// Run one case the way the reference dump does: Ok(stdout) or Err(the first error).
pub fn run_case(cfg: &Path, args: &[String]) -> Result<String, params::Error> {
    let mut options = ParserOptions::default();
    let mut pos = Vec::new();
    let (mut only, mut no, mut assign) = (Vec::new(), Vec::new(), Vec::new());
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--defaults" => options.defaults = true,
            "--keep-dups" => options.keep_dups = true,
            "--expand" => {
                i += 1;
                options.expand_defaults = args[i]
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect();
            }
            "--only" => {
                i += 1;
                only.push(args[i].clone());
            }
            "--no" => {
                i += 1;
                no.push(args[i].clone());
            }
            "--assign" => {
                i += 1;
                assign.push(args[i].clone());
            }
            other => pos.push(other.to_string()),
        }
        i += 1;
    }
    let mut p = Parser::new(options);
    p.parse_file(cfg)?;
    for s in &pos {
        p.parse_str(s)?;
    }
    for f in &only {
        p.only_filter(f)?;
    }
    for f in &no {
        p.no_filter(f)?;
    }
    for kv in &assign {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        p.assign(k.trim(), v.trim())?;
    }
    let cfg = p.finish();
    let mut out = Vec::new();
    let mut n = 0u64;
    cfg.for_each(|v| {
        v.write_json(&mut out);
        n += 1;
        Ok(ControlFlow::Continue(()))
    })?;
    // The counts agree with the dicts built, whichever way they are made (a walk without
    // dicts when no dict can fail to build).
    for (how, count) in [
        ("count", cfg.count()?),
        ("count_parallel(2)", cfg.count_parallel(2)?),
    ] {
        if count != n {
            return Err(params::Error::new(
                params::ErrorKind::Value,
                format!(
                    "{how} says {count} variants, {n} were built (build_can_fail: {})",
                    cfg.build_can_fail()
                ),
            ));
        }
    }
    Ok(String::from_utf8(out).unwrap_or_default())
}

/// The cases of a folder: its top-level `*.cfg` files, sorted (sub-folders hold included files).
pub fn case_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("reading the cases in {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "cfg"))
        .collect();
    cases.sort();
    Ok(cases)
}

/// A case's name: its file name without `.cfg`.
pub fn stem(cfg: &Path) -> String {
    cfg.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}
