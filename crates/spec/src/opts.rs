//! Reading QEMU option lists that users write in params (`nic_extra_params = ",ctrl_vq=on"`).
//!
//! The inverse of `qemu_cmd::escape_into`: a doubled comma is a literal comma, a single comma
//! separates items. Values read here are re-escaped by the builder when emitted, so a value can
//! only ever land in its own key.

/// Splits a QEMU option list (`a=b,c,d=e,,f`) into `(key, value)` pairs: a doubled comma is a
/// literal comma, a single comma separates items, and an item without `=` is a bare flag
/// (`None`). One leading comma is allowed: avocado-vt appends `*_extra_params` to an option
/// string as they are, so its configs write them `,ctrl_vq=on`.
///
/// # Errors
///
/// `Err(item)` for an item with an empty key (`=x`, or an empty item between two commas).
pub fn split_opt_list(s: &str) -> Result<Vec<(String, Option<String>)>, String> {
    let s = match s.strip_prefix(',') {
        Some(rest) if !rest.starts_with(',') => rest,
        _ => s,
    };
    let mut items = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ',' {
            if chars.peek() == Some(&',') {
                chars.next();
                cur.push(',');
                continue;
            }
            items.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    items.push(cur);
    items
        .into_iter()
        .map(|item| {
            let (k, v) = match item.split_once('=') {
                Some((k, v)) => (k.to_string(), Some(v.to_string())),
                None => (item.clone(), None),
            };
            if k.is_empty() {
                Err(item)
            } else {
                Ok((k, v))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubled_commas_are_literal_and_bare_items_are_flags() {
        assert_eq!(
            split_opt_list("file=a,,b=c,if=ide,snapshot"),
            Ok(vec![
                ("file".to_string(), Some("a,b=c".to_string())),
                ("if".to_string(), Some("ide".to_string())),
                ("snapshot".to_string(), None),
            ])
        );
        assert!(split_opt_list("a=1,,").is_ok());
        assert!(split_opt_list("a=1,").is_err());
        assert!(split_opt_list("=x").is_err());
        // avocado-vt's convention: the value is appended to an option string.
        assert_eq!(
            split_opt_list(",ctrl_vq=on,mq=on"),
            Ok(vec![
                ("ctrl_vq".to_string(), Some("on".to_string())),
                ("mq".to_string(), Some("on".to_string())),
            ])
        );
        assert!(split_opt_list(",").is_err(), "nothing after the comma");
    }
}
