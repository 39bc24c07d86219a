//! Helpers shared by the integration tests: configs from text, quiet run options.

#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;

use params::{Config, Parser, ParserOptions};
use tests_suite::{ProgressMode, RunOptions};

/// A config from cfg text (panics on a parse error: tests give valid text).
pub fn config(text: &str) -> Config {
    let mut p = Parser::new(ParserOptions::default());
    if let Err(e) = p.parse_str(text) {
        panic!("bad test config: {}", e.render());
    }
    p.finish()
}

/// Run options writing under `dir`, without progress output.
pub fn options(dir: &Path) -> RunOptions {
    let mut o = RunOptions::new(dir);
    o.progress = ProgressMode::Quiet;
    o
}

/// Read a file to a string (panics with the path).
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}
