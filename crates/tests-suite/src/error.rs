//! Rendering an error with its sources, for messages that must stand alone.

/// An error and its sources, joined by `: ` (for messages that must stand alone, like a
/// verdict's).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.ends_with(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}
