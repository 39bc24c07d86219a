//! Compiled regular expressions shared by every reading of the same pattern.
//!
//! A test matrix reads the same few patterns (`virtio_dev_filter`, the prompts) in every
//! variant, and compiling one costs more than reading all of a VM's other keys: a cache keyed by
//! the pattern text makes the second reading a hash lookup. The cache is process-wide and
//! bounded (emptied when it holds [`CAPACITY`] patterns: configs have a handful).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Patterns kept before the cache starts afresh.
pub const CAPACITY: usize = 512;

type Cache<T> = Mutex<HashMap<String, Result<Arc<T>, String>>>;

fn cached<T>(
    cache: &'static std::sync::OnceLock<Cache<T>>,
    pattern: &str,
    compile: impl FnOnce(&str) -> Result<T, String>,
) -> Result<Arc<T>, String> {
    let cache = cache.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(r) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(pattern) {
        return r.clone();
    }
    // Compiled outside the lock: another thread compiling the same pattern meanwhile only
    // costs the time it would have cost without the cache.
    let r = compile(pattern).map(Arc::new);
    let mut map = cache.lock().unwrap_or_else(|e| e.into_inner());
    if map.len() >= CAPACITY {
        map.clear();
    }
    map.insert(pattern.to_owned(), r.clone());
    r
}

/// `pattern` compiled by `regex` (the error: the compiler's message).
///
/// # Errors
/// The compiler's message.
pub fn regex(pattern: &str) -> Result<Arc<regex::Regex>, String> {
    static CACHE: std::sync::OnceLock<Cache<regex::Regex>> = std::sync::OnceLock::new();
    cached(&CACHE, pattern, |p| {
        regex::Regex::new(p).map_err(|e| e.to_string())
    })
}

/// `pattern` compiled by `fancy-regex` (Python's look-around and back-references).
///
/// # Errors
/// The compiler's message.
pub fn fancy(pattern: &str) -> Result<Arc<fancy_regex::Regex>, String> {
    static CACHE: std::sync::OnceLock<Cache<fancy_regex::Regex>> = std::sync::OnceLock::new();
    cached(&CACHE, pattern, |p| {
        fancy_regex::Regex::new(p).map_err(|e| e.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_pattern_is_compiled_once_and_errors_are_kept_too() {
        let a = regex(r"^\[.*\][#$]\s*$").expect("compiles");
        let b = regex(r"^\[.*\][#$]\s*$").expect("compiles");
        assert!(Arc::ptr_eq(&a, &b));
        assert!(a.is_match("[root@guest ~]# "));
        let f = fancy(r"(?<!virtio-)net").expect("compiles");
        assert!(Arc::ptr_eq(
            &f,
            &fancy(r"(?<!virtio-)net").expect("compiles")
        ));
        assert!(!f.is_match("virtio-net").expect("match"));
        let e = regex("(unclosed").expect_err("not a pattern");
        assert_eq!(regex("(unclosed").expect_err("not a pattern"), e);
        assert!(e.contains("unclosed"), "{e}");
    }
}
