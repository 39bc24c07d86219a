//! Shared helpers of the integration tests: fixture paths, loading configs and capabilities.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use params::{Config, Parser, ParserOptions};
use qemu_cmd::Capabilities;

/// `fixtures/` of the workspace, relative to the crate (cargo runs tests from the crate dir,
/// so origins in error messages stay machine-independent).
pub fn fixtures() -> PathBuf {
    PathBuf::from("../../fixtures")
}

/// The files with extension `ext` in `dir`, sorted by name.
pub fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    v.sort();
    v
}

/// Every capabilities fixture: (file stem, value).
pub fn all_caps() -> Vec<(String, Capabilities)> {
    files(&fixtures().join("qemu-caps"), "json")
        .into_iter()
        .map(|p| {
            let caps = Capabilities::load(&p).unwrap_or_else(|e| panic!("{e}"));
            (stem(&p), caps)
        })
        .collect()
}

/// One capabilities fixture by stem (`qemu-7.2`).
pub fn caps(name: &str) -> Capabilities {
    Capabilities::load(fixtures().join("qemu-caps").join(format!("{name}.json")))
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The file name without extension.
pub fn stem(p: &Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Parses a cfg file.
pub fn config(path: &Path) -> Config {
    let mut p = Parser::new(ParserOptions::default());
    p.parse_file(path).unwrap_or_else(|e| panic!("{e}"));
    p.finish()
}

/// Parses cfg text.
pub fn config_str(text: &str) -> Config {
    let mut p = Parser::new(ParserOptions::default());
    p.parse_str(text).unwrap_or_else(|e| panic!("{e}"));
    p.finish()
}
