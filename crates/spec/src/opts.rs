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

/// A JSON object of QEMU properties as avocado-vt's `*_props` keys hold them
/// (`fs_driver_props = {"queue-size": 1024}`), as `(key, value)` pairs in the text's order,
/// rendered as avocado-vt's `QDevice.set_param` renders them: strings as they are, numbers in
/// decimal, booleans `on`/`off`.
///
/// # Errors
///
/// `Err(why)` for text that is not a JSON object of such scalars (`null`, lists and objects
/// have no rendering as one property).
pub fn json_props(text: &str) -> Result<Vec<(String, String)>, String> {
    let pairs: JsonPairs = serde_json::from_str(text.trim()).map_err(|e| e.to_string())?;
    pairs
        .0
        .into_iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => Ok((k, s)),
            serde_json::Value::Number(n) => Ok((k, n.to_string())),
            serde_json::Value::Bool(b) => Ok((k, if b { "on" } else { "off" }.to_string())),
            other => Err(format!("{k}: {other} is not a string, number or boolean")),
        })
        .collect()
}

/// A JSON object's members in the text's order (`serde_json::Map` sorts them).
struct JsonPairs(Vec<(String, serde_json::Value)>);

impl<'de> serde::Deserialize<'de> for JsonPairs {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = JsonPairs;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<JsonPairs, A::Error> {
                let mut out = Vec::new();
                while let Some(pair) = m.next_entry::<String, serde_json::Value>()? {
                    out.push(pair);
                }
                Ok(JsonPairs(out))
            }
        }
        d.deserialize_map(Visit)
    }
}

/// [`json_props`] of `key` through a reader: none when unset; a bad value is an `Invalid`
/// problem.
pub(crate) fn json_props_of(
    r: &mut crate::read::Reader<'_, '_>,
    key: &str,
) -> Vec<(String, String)> {
    let Some(text) = r.str(key) else {
        return Vec::new();
    };
    json_props(text).unwrap_or_else(|why| {
        r.problem(
            key,
            crate::problem::ProblemKind::Invalid {
                expected: format!(
                    "a JSON object of properties such as {{\"queue-size\": 1024}} ({why})"
                ),
            },
        );
        Vec::new()
    })
}

/// avocado-vt's `Params.get_dict`: `key=value` words separated by white space, as
/// `(key, value)` pairs in order; a word without `=` is an `Invalid` problem.
pub(crate) fn dict_of(r: &mut crate::read::Reader<'_, '_>, key: &str) -> Vec<(String, String)> {
    let Some(text) = r.str(key) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for word in text.split_whitespace() {
        match word.split_once('=') {
            Some((k, v)) if !k.is_empty() => out.push((k.to_string(), v.to_string())),
            _ => {
                r.problem(
                    key,
                    crate::problem::ProblemKind::Invalid {
                        expected: format!(
                            "`key=value` words separated by spaces (bad word {word:?})"
                        ),
                    },
                );
                return Vec::new();
            }
        }
    }
    out
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

    #[test]
    fn json_props_keep_their_order_and_render_as_avocado_does() {
        assert_eq!(
            json_props(r#" {"z": "a,b", "queue-size": 1024, "ppi": false, "on": true} "#),
            Ok(vec![
                ("z".to_string(), "a,b".to_string()),
                ("queue-size".to_string(), "1024".to_string()),
                ("ppi".to_string(), "off".to_string()),
                ("on".to_string(), "on".to_string()),
            ])
        );
        assert!(json_props("{\"a\": null}").is_err());
        assert!(json_props("{\"a\": [1]}").is_err());
        assert!(json_props("[1]").is_err());
        assert!(json_props("a=b").is_err());
    }
}
