//! Reading numbers the way Python's `int()` and `float()` do: one reader, two dialects.
//!
//! Both dialects share the reader's steps: strip the surrounding whitespace, take one sign,
//! read the digits with single underscores allowed only between two digits, and, for floats,
//! hand the normalised text to Rust's `f64` grammar (which is Python's once the digits are ASCII
//! and the underscores gone). They differ on purpose, because they serve two different callers:
//!
//! * [`Dialect::Reference`] is how the reference parser itself reads numbers, for `_max`/`_min`
//!   postfix comparisons (`eval`, through [`compare_sizes`]): decimal `int()` of arbitrary
//!   precision, decimal digits of any script (`str.isdecimal`), Python's `str.isspace` stripped
//!   (U+001C..U+001F included), and Python's own `ValueError` messages. Output there must equal
//!   the reference's, so this dialect follows it exactly, conformance tests included.
//! * [`Dialect::Typed`] is the typed getters of [`crate::Params`] (`get_i64`, `get_u64`,
//!   `get_f64`): the union of `int(s)` and `int(s, 0)` (so `0x`/`0o`/`0b` prefixes too), ASCII
//!   digits only, bounded to `u128`, `str::trim` whitespace, and short messages that end up in a
//!   `ParamError`. Their contract is the documented API of those getters.
//!
//! Neither dialect may change without its callers' tests: the conformance fixtures for the
//! first, `tests/params_api.rs` for the second.

use std::cmp::Ordering;

/// Which way of reading Python numbers; see the module documentation for why there are two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// The reference parser's own reading (`_max`/`_min`): decimal, any script, arbitrary
    /// precision, Python's messages.
    Reference,
    /// The typed getters of `Params`: ASCII, radix prefixes, bounded, short messages.
    Typed,
}

/// What went wrong while reading a run of digits.
enum DigitsError<E> {
    /// A `_` not between two digits.
    Underscore,
    /// A character that is not a digit of the radix.
    NotDigit(char),
    /// The consumer of the digits refused one (an overflow).
    Refused(E),
}

/// An integer literal cut into its parts, before its digits are read.
struct IntParts<'a> {
    /// The literal without the surrounding whitespace.
    literal: &'a str,
    negative: bool,
    radix: u32,
    /// The digits after the sign and the radix prefix (and its optional `_`).
    digits: &'a str,
}

impl Dialect {
    /// Whitespace stripped around a literal.
    fn is_space(self, c: char) -> bool {
        match self {
            // Python's `str.isspace()`.
            Dialect::Reference => crate::lexer::py_isspace(c),
            // What `str::trim` strips.
            Dialect::Typed => c.is_whitespace(),
        }
    }

    /// The value of `c` as a digit of `radix`.
    fn digit(self, c: char, radix: u32) -> Option<u32> {
        match self {
            Dialect::Reference => py_digit(c),
            Dialect::Typed => c.to_digit(radix),
        }
    }

    /// Strips, takes the sign and (in the typed dialect) the radix prefix.
    fn int_parts(self, text: &str) -> IntParts<'_> {
        let literal = text.trim_matches(|c| self.is_space(c));
        let (negative, unsigned) = split_sign(literal);
        let bytes = unsigned.as_bytes();
        let radix = match (self, bytes.first(), bytes.get(1)) {
            (Dialect::Reference, _, _) => 10,
            (Dialect::Typed, Some(b'0'), Some(b'x' | b'X')) => 16,
            (Dialect::Typed, Some(b'0'), Some(b'o' | b'O')) => 8,
            (Dialect::Typed, Some(b'0'), Some(b'b' | b'B')) => 2,
            (Dialect::Typed, _, _) => 10,
        };
        let digits = if radix == 10 {
            unsigned
        } else {
            // Python allows one underscore between the prefix and the first digit: `0x_ff`.
            let after_prefix = &unsigned[2..];
            after_prefix.strip_prefix('_').unwrap_or(after_prefix)
        };
        IntParts {
            literal,
            negative,
            radix,
            digits,
        }
    }

    /// Reads `digits` in `radix`, allowing single underscores between digits, and hands each
    /// digit's value to `push` in order; stops at the first problem.
    fn scan_digits<E>(
        self,
        digits: &str,
        radix: u32,
        mut push: impl FnMut(u32) -> Result<(), E>,
    ) -> Result<(), DigitsError<E>> {
        let mut previous_was_digit = false;
        let mut chars = digits.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '_' {
                let next_is_digit = chars
                    .peek()
                    .is_some_and(|&n| self.digit(n, radix).is_some());
                if !previous_was_digit || !next_is_digit {
                    return Err(DigitsError::Underscore);
                }
                previous_was_digit = false;
                continue;
            }
            let d = self.digit(c, radix).ok_or(DigitsError::NotDigit(c))?;
            push(d).map_err(DigitsError::Refused)?;
            previous_was_digit = true;
        }
        Ok(())
    }

    /// The decimal digits of `s` as ASCII, underscores removed; `None` when `s` is empty or
    /// not such digits.
    fn ascii_digits(self, s: &str) -> Option<String> {
        let mut out = String::with_capacity(s.len());
        self.scan_digits(s, 10, |d| {
            out.push(char::from_digit(d, 10).ok_or(())?);
            Ok::<(), ()>(())
        })
        .ok()?;
        (!out.is_empty()).then_some(out)
    }

    /// A float literal, stripped, with its decimal digits made ASCII and the underscores
    /// between them removed (`None` when an underscore is misplaced). Other characters are
    /// kept for the `f64` grammar to judge.
    fn float_text(self, text: &str) -> Option<String> {
        let t = text.trim_matches(|c| self.is_space(c));
        let mut norm = String::with_capacity(t.len());
        let mut part = String::new();
        let flush = |part: &mut String, norm: &mut String| -> Option<()> {
            if !part.is_empty() {
                norm.push_str(&self.ascii_digits(part)?);
                part.clear();
            }
            Some(())
        };
        for c in t.chars() {
            if c == '_' || self.digit(c, 10).is_some() {
                part.push(c);
            } else {
                flush(&mut part, &mut norm)?;
                norm.push(c);
            }
        }
        flush(&mut part, &mut norm)?;
        Some(norm)
    }
}

/// A leading `-` or `+`, at most one.
fn split_sign(literal: &str) -> (bool, &str) {
    match literal.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, literal.strip_prefix('+').unwrap_or(literal)),
    }
}

/// Python decimal digit value of a character (`str.isdecimal` digits of any script).
fn py_digit(c: char) -> Option<u32> {
    if c.is_ascii_digit() {
        return c.to_digit(10);
    }
    // zeros of the Unicode `Nd` blocks (each block is ten consecutive code points)
    const ZEROS: [u32; 37] = [
        0x660, 0x6F0, 0x7C0, 0x966, 0x9E6, 0xA66, 0xAE6, 0xB66, 0xBE6, 0xC66, 0xCE6, 0xD66, 0xDE6,
        0xE50, 0xED0, 0xF20, 0x1040, 0x1090, 0x17E0, 0x1810, 0x1946, 0x19D0, 0x1A80, 0x1A90,
        0x1B50, 0x1BB0, 0x1C40, 0x1C50, 0xA620, 0xA8D0, 0xA900, 0xA9D0, 0xA9F0, 0xAA50, 0xABF0,
        0xFF10, 0x104A0,
    ];
    let u = c as u32;
    ZEROS
        .iter()
        .find(|&&z| u >= z && u < z + 10)
        .map(|&z| u - z)
}

// ---- The reference dialect ----

/// Python `int(s)` as (negative, digits without leading zeros): arbitrary precision.
pub(crate) fn reference_int(s: &str) -> Result<(bool, String), String> {
    let parts = Dialect::Reference.int_parts(s);
    let digits = Dialect::Reference
        .ascii_digits(parts.digits)
        .ok_or_else(|| format!("invalid literal for int() with base 10: '{s}'"))?;
    let digits = digits.trim_start_matches('0').to_string();
    Ok((parts.negative && !digits.is_empty(), digits))
}

/// Orders two [`reference_int`] results.
fn cmp_big(a: &(bool, String), b: &(bool, String)) -> Ordering {
    let mag = |x: &String, y: &String| x.len().cmp(&y.len()).then_with(|| x.cmp(y));
    match (a.0, b.0) {
        (false, true) => Ordering::Greater,
        (true, false) => Ordering::Less,
        (false, false) => mag(&a.1, &b.1),
        (true, true) => mag(&b.1, &a.1),
    }
}

/// Python `float(s)`.
pub(crate) fn reference_float(s: &str) -> Result<f64, String> {
    let bad = || format!("could not convert string to float: '{s}'");
    let t = s.trim_matches(crate::lexer::py_isspace);
    let lower = t.to_ascii_lowercase();
    let unsigned = lower.trim_start_matches(['+', '-']);
    if matches!(unsigned, "inf" | "infinity" | "nan") && lower.len() - unsigned.len() <= 1 {
        return lower.parse::<f64>().map_err(|_| bad());
    }
    let norm = Dialect::Reference.float_text(s).ok_or_else(bad)?;
    if norm.is_empty()
        || !norm
            .chars()
            .all(|c| c.is_ascii_digit() || "+-.eE".contains(c))
    {
        return Err(bad());
    }
    norm.parse::<f64>().map_err(|_| bad())
}

/// Python `convert_data_size(s, "M")`: `int(float(number) * unit)`.
fn size_value(s: &str) -> Result<f64, String> {
    let last = s.chars().last();
    let (num, mult) = match last {
        Some(c) if "BbKkMmGgTt".contains(c) => {
            let m = match c.to_ascii_uppercase() {
                'B' => 1.0,
                'K' => 1024.0,
                'M' => 1024.0 * 1024.0,
                'G' => 1024.0f64.powi(3),
                _ => 1024.0f64.powi(4),
            };
            (&s[..s.len() - c.len_utf8()], m)
        }
        _ => (s, 1024.0 * 1024.0),
    };
    let v = reference_float(num)? * mult;
    if v.is_nan() {
        return Err("cannot convert float NaN to integer".into());
    }
    if v.is_infinite() {
        return Err("cannot convert float infinity to integer".into());
    }
    Ok(v.trunc())
}

/// The reference's `compare_string`: sizes with units when either side has a unit letter,
/// else exact integers.
pub(crate) fn compare_sizes(a: &str, b: &str) -> Result<Ordering, String> {
    let units = a.chars().chain(b.chars()).any(|c| "BbKkMmGgTt".contains(c));
    if units {
        let x = size_value(a)?;
        let y = size_value(b)?;
        Ok(x.partial_cmp(&y).unwrap_or(Ordering::Equal))
    } else {
        Ok(cmp_big(&reference_int(a)?, &reference_int(b)?))
    }
}

// ---- The typed dialect ----

/// Parses a Python integer literal, accepting the union of what `int(text)` and `int(text, 0)`
/// accept (see [`crate::Params::get_i64`]). Returns the sign and the magnitude.
///
/// Python's `int()` strips exactly the characters `char::is_whitespace` matches (not U+001C..U+001F,
/// unlike `str.split()`), so `str::trim` is the right strip here.
pub(crate) fn typed_int(text: &str) -> Result<(bool, u128), String> {
    let parts = Dialect::Typed.int_parts(text);
    if parts.literal.is_empty() {
        return Err("empty".to_owned());
    }
    typed_digits(parts.digits, parts.radix).map(|magnitude| (parts.negative, magnitude))
}

/// Parses ASCII digits in `radix`, allowing single underscores between digits.
fn typed_digits(digits: &str, radix: u32) -> Result<u128, String> {
    if digits.is_empty() {
        return Err("no digits".to_owned());
    }
    let mut magnitude: u128 = 0;
    Dialect::Typed
        .scan_digits(digits, radix, |digit| {
            magnitude = magnitude
                .checked_mul(u128::from(radix))
                .and_then(|m| m.checked_add(u128::from(digit)))
                .ok_or(())?;
            Ok(())
        })
        .map_err(|e| match e {
            DigitsError::Underscore => "'_' is only allowed between digits".to_owned(),
            DigitsError::NotDigit(c) => format!("invalid digit {c:?} for base {radix}"),
            DigitsError::Refused(()) => "out of range".to_owned(),
        })?;
    Ok(magnitude)
}

/// Parses a Python `float()` literal: Rust's `f64` grammar already matches it (including `inf`,
/// `infinity` and `nan` in any case) once surrounding whitespace and the underscores Python
/// allows between digits are removed.
pub(crate) fn typed_float(text: &str) -> Result<f64, String> {
    let literal = text.trim();
    if !literal.contains('_') {
        return literal.parse::<f64>().map_err(|e| e.to_string());
    }
    let cleaned = Dialect::Typed
        .float_text(literal)
        .ok_or_else(|| "'_' is only allowed between digits".to_owned())?;
    cleaned.parse::<f64>().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dialects_differ_where_documented() {
        // Prefixes: typed only.
        assert_eq!(typed_int("0x_ff"), Ok((false, 255)));
        assert!(reference_int("0xff").is_err());
        // Any script's decimal digits: reference only.
        assert_eq!(reference_int("\u{664}2"), Ok((false, "42".into())));
        assert!(typed_int("\u{664}2").is_err());
        // Arbitrary precision: reference only.
        let big = "1".repeat(50);
        assert_eq!(reference_int(&big), Ok((false, big.clone())));
        assert_eq!(typed_int(&big), Err("out of range".into()));
        // The same underscore rule in both.
        for s in ["1__0", "_1", "1_"] {
            assert!(reference_int(s).is_err(), "{s}");
            assert!(typed_int(s).is_err(), "{s}");
            assert!(reference_float(s).is_err(), "{s}");
            assert!(typed_float(s).is_err(), "{s}");
        }
        assert_eq!(reference_float(" 1_0.2_5e1 "), Ok(102.5));
        assert_eq!(typed_float(" 1_0.2_5e1 "), Ok(102.5));
    }
}
