//! Fuzz target `parse`: arbitrary text through the whole Cartesian config engine.
//!
//! The `params` crate promises that no input panics it (ARCHITECTURE.md). This target feeds it
//! any UTF-8 text and, when the text parses, enumerates a bounded number of variants and renders
//! each one the way `kvmtest show --json` does, so the lexer, the parser, `Config::finish`, the
//! walk (filters, conditions, substitutions, suffixes) and the JSON writer are all exercised.
//! Errors are fine (they are rendered, to exercise the diagnostics); panics, hangs and runaway
//! memory are the findings.
//!
//! Includes: NUL bytes split the input into up to three files, `main.cfg`, `a.cfg` and `b.cfg`,
//! written to a fresh temporary directory; `main.cfg` is then parsed as a file, so
//! `include a.cfg` lines written (or found) by the fuzzer reach real include handling. Inputs
//! without NUL are parsed from a string, the fast path. Each input is run twice: with default
//! options, and in defaults mode with suffixed duplicates kept, two different walks.
//!
//! Run with `cargo xtask fuzz [SECONDS]` (seeds the corpus from the conformance cases), or by
//! hand: `cargo +nightly fuzz run parse -- -max_len=4096`.

#![no_main]

use std::ops::ControlFlow;

use libfuzzer_sys::fuzz_target;
use params::{Parser, ParserOptions};

/// Variants rendered per run: enough to cover every code path of the walk, few enough that
/// a matrix of millions still finishes in milliseconds.
const MAX_VARIANTS: usize = 500;

/// Names of the files an input with NUL separators is split into; the first one is parsed.
const FILES: [&str; 3] = ["main.cfg", "a.cfg", "b.cfg"];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let options = [
        ParserOptions::default(),
        ParserOptions {
            defaults: true,
            expand_defaults: Vec::new(),
            keep_dups: true,
        },
    ];
    if text.contains('\0') {
        // A temporary directory failing to appear is the host's problem, not a finding.
        let Ok(dir) = tempfile::tempdir() else {
            return;
        };
        for (name, part) in FILES.iter().zip(text.splitn(FILES.len(), '\0')) {
            if std::fs::write(dir.path().join(name), part).is_err() {
                return;
            }
        }
        let main = dir.path().join(FILES[0]);
        for o in options {
            let mut p = Parser::new(o);
            run(p.parse_file(&main).map(|()| p));
        }
    } else {
        for o in options {
            let mut p = Parser::new(o);
            run(p.parse_str(text).map(|()| p));
        }
    }
});

/// Enumerate (at most [`MAX_VARIANTS`]) and render the variants of a parsed config, or render
/// its error.
fn run(parsed: Result<Parser, params::Error>) {
    let parser = match parsed {
        Ok(p) => p,
        Err(e) => {
            std::hint::black_box(e.render());
            return;
        }
    };
    let cfg = parser.finish();
    let mut json = Vec::new();
    let mut n = 0usize;
    let walked = cfg.for_each(|v| {
        json.clear();
        v.write_json(&mut json);
        std::hint::black_box((v.name(), v.shortname(), v.params().get("name")));
        n += 1;
        Ok(if n >= MAX_VARIANTS {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        })
    });
    if let Err(e) = walked {
        std::hint::black_box(e.render());
    }
    std::hint::black_box(json);
}
