//! tp-qemu's `stg_params`: the disks `multi_disk` adds to a VM, described as a matrix of
//! `key:values` items, expanded into `images += stgN` and `KEY_stgN` params.
//!
//! The text is split at blanks (`\ ` keeps a blank inside an item); each item is `key:value`.
//! A value is either `range(…)` — Python's `range` with 1 to 3 arguments, or with a 4th that
//! repeats each value (`range(0,4,1,2)` = 0 0 1 1 2 2 3 3), any argument `n` standing for the
//! number of disks — or a `,`-separated list (`\,` keeps a comma). Disk `i` takes value
//! `i mod len` of each key. The number of disks is `stg_image_num` when set, else the longest
//! list. The compatibility keys `stg_image_size`, `stg_image_format`, `stg_image_boot`
//! (default `no`), `stg_drive_format` and `stg_drive_cache` add one item each, and unless
//! `stg_assign_index = no` the disks get `drive_index` `range(2,n)` (0 and 1 being the system
//! disk and the CD-ROM). Disks without an `image_name` item are named `stg_image_name` with
//! `%s` = the disk (default `images/%s`).

use std::collections::BTreeMap;

use params::Params;

/// An error in the stg params: what is wrong, naming the item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct StgError(pub(super) String);

/// A value list: known values, or a `range(…)` waiting for the number of disks.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Values {
    List(Vec<String>),
    Range(Vec<RangeArg>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RangeArg {
    Int(i64),
    N,
}

/// The disks to add: their names (`stg0`…) and, per disk, its `(key, value)` params.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct StgDisks {
    pub(super) disks: Vec<(String, Vec<(String, String)>)>,
}

impl StgDisks {
    /// `params` with the disks added: `images += " stgN"` and each `KEY_stgN`.
    pub(super) fn apply(&self, params: &Params) -> Params {
        let mut out = params.clone();
        let mut images = params.get("images").unwrap_or_default().to_owned();
        for (name, kv) in &self.disks {
            if !images.is_empty() {
                images.push(' ');
            }
            images.push_str(name);
            for (k, v) in kv {
                out.insert(format!("{k}_{name}"), v.clone());
            }
        }
        out.insert("images", images);
        out
    }
}

/// Splits `text` at blanks, a `\` before a blank keeping it in the item.
fn split_items(text: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut cur = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&' ') => {
                cur.push(' ');
                chars.next();
            }
            ' ' | '\t' | '\n' => {
                if !cur.is_empty() {
                    items.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        items.push(cur);
    }
    items
}

/// Splits a value list at commas, `\,` keeping one.
fn split_values(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&',') => {
                cur.push(',');
                chars.next();
            }
            ',' => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// Parses `range(a[, b[, c[, d]]])` (`None`: not a range).
fn parse_range(key: &str, text: &str) -> Result<Option<Vec<RangeArg>>, StgError> {
    let t = text.trim();
    let Some(inner) = t.strip_prefix("range(").and_then(|r| r.strip_suffix(')')) else {
        return Ok(None);
    };
    let args: Vec<RangeArg> = inner
        .split(',')
        .map(|a| match a.trim() {
            "n" => Ok(RangeArg::N),
            a => a.parse::<i64>().map(RangeArg::Int).map_err(|_| {
                StgError(format!(
                    "stg_params item {key}:{text}: {a:?} is not a number (nor n)"
                ))
            }),
        })
        .collect::<Result<_, _>>()?;
    if args.is_empty() || args.len() > 4 {
        return Err(StgError(format!(
            "stg_params item {key}:{text}: range() takes 1 to 4 arguments"
        )));
    }
    Ok(Some(args))
}

/// Python's `range(start, stop, step)`.
fn py_range(start: i64, stop: i64, step: i64) -> Result<Vec<i64>, String> {
    if step == 0 {
        return Err("a step of 0".into());
    }
    let mut out = Vec::new();
    let mut i = start;
    while (step > 0 && i < stop) || (step < 0 && i > stop) {
        out.push(i);
        if out.len() > 100_000 {
            return Err("more than 100000 values".into());
        }
        i += step;
    }
    Ok(out)
}

/// Expands a range, `n` being the number of disks.
fn expand_range(key: &str, args: &[RangeArg], n: i64) -> Result<Vec<String>, StgError> {
    let err = |why: String| StgError(format!("stg_params item {key}: range(): {why}"));
    let mut v: Vec<Option<i64>> = args
        .iter()
        .map(|a| match a {
            RangeArg::Int(i) => Some(*i),
            RangeArg::N => None,
        })
        .collect();
    // tp-qemu's substitution of `n`, position by position.
    if v[0].is_none() {
        v[0] = Some(n);
    }
    let a0 = v[0].unwrap_or(n);
    if v.len() > 1 && v[1].is_none() {
        v[1] = Some(a0 + n);
    }
    if v.len() > 2 && v[2].is_none() {
        let a1 = v[1].unwrap_or(0);
        v[2] = Some(if n == 0 { 0 } else { (a1 - a0) / n });
    }
    if v.len() > 3 && v[3].is_none() {
        let len = i64::try_from(
            py_range(a0, v[1].unwrap_or(0), v[2].unwrap_or(1))
                .map_err(err)?
                .len(),
        )
        .unwrap_or(i64::MAX);
        v[3] = Some(if len == 0 {
            0
        } else {
            n / len + i64::from(n % len != 0)
        });
    }
    let v: Vec<i64> = v.into_iter().map(|x| x.unwrap_or(0)).collect();
    let values = match v.as_slice() {
        [stop] => py_range(0, *stop, 1),
        [start, stop] => py_range(*start, *stop, 1),
        [start, stop, step] => py_range(*start, *stop, *step),
        [start, stop, step, times] => py_range(*start, *stop, *step).map(|r| {
            r.into_iter()
                .flat_map(|x| std::iter::repeat_n(x, usize::try_from(*times).unwrap_or(0)))
                .collect()
        }),
        _ => Err("1 to 4 arguments".into()),
    }
    .map_err(err)?;
    Ok(values.into_iter().map(|x| x.to_string()).collect())
}

/// The disks `params` describe (see the module docs).
///
/// # Errors
/// A malformed item (no `:`, a bad `range()`), a bad `stg_image_num`, or no disk at all.
pub(super) fn expand(params: &Params) -> Result<StgDisks, StgError> {
    let mut text = params.get("stg_params").unwrap_or_default().to_owned();
    let mut add = |name: &str, value: Option<&str>| {
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            text.push_str(&format!(" {name}:{} ", v.replace(' ', "\\ ")));
        }
    };
    add("image_size", params.get("stg_image_size"));
    add("image_format", params.get("stg_image_format"));
    add(
        "image_boot",
        Some(params.get("stg_image_boot").unwrap_or("no")),
    );
    add("drive_format", params.get("stg_drive_format"));
    add("drive_cache", params.get("stg_drive_cache"));
    if params.get("stg_assign_index") != Some("no") {
        add("drive_index", Some("range(2,n)"));
    }
    // Keys in first-seen order; a later item of the same key replaces the earlier.
    let mut order: Vec<String> = Vec::new();
    let mut matrix: BTreeMap<String, Values> = BTreeMap::new();
    let mut longest = 0usize;
    for item in split_items(&text) {
        let Some((key, value)) = item.split_once(':') else {
            return Err(StgError(format!(
                "stg_params item {item:?} is not KEY:VALUE"
            )));
        };
        let values = match parse_range(key, value)? {
            Some(args) if args.contains(&RangeArg::N) => Values::Range(args),
            Some(args) => {
                let v = expand_range(key, &args, 0)?;
                longest = longest.max(v.len());
                Values::List(v)
            }
            None => {
                let v = split_values(value);
                longest = longest.max(v.len());
                Values::List(v)
            }
        };
        if !order.iter().any(|k| k == key) {
            order.push(key.to_owned());
        }
        matrix.insert(key.to_owned(), values);
    }
    let count = match params.get("stg_image_num") {
        Some(n) => n
            .trim()
            .parse::<usize>()
            .map_err(|_| StgError(format!("stg_image_num = {n:?}: expected a number of disks")))?,
        None => longest,
    };
    if count == 0 {
        return Err(StgError(
            "no disk to add: set stg_image_num or list values in stg_params".into(),
        ));
    }
    let n = i64::try_from(count).unwrap_or(i64::MAX);
    let mut columns: Vec<(String, Vec<String>)> = Vec::new();
    for key in &order {
        let values = match &matrix[key] {
            Values::List(v) => v.clone(),
            Values::Range(args) => expand_range(key, args, n)?,
        };
        if values.is_empty() {
            return Err(StgError(format!(
                "stg_params item {key}: its range is empty"
            )));
        }
        columns.push((key.clone(), values));
    }
    let has_name = columns.iter().any(|(k, _)| k == "image_name");
    let pattern = params.get("stg_image_name").unwrap_or("images/%s");
    let disks = (0..count)
        .map(|i| {
            let name = format!("stg{i}");
            let mut kv = Vec::new();
            if !has_name {
                kv.push(("image_name".to_owned(), pattern.replace("%s", &name)));
            }
            for (k, v) in &columns {
                kv.push((k.clone(), v[i % v.len()].clone()));
            }
            (name, kv)
        })
        .collect();
    Ok(StgDisks { disks })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(kv: &[(&str, &str)]) -> Params {
        let mut p = Params::new();
        for (k, v) in kv {
            p.insert(*k, *v);
        }
        p
    }

    fn value(d: &StgDisks, disk: usize, key: &str) -> Option<String> {
        d.disks[disk]
            .1
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }

    #[test]
    fn ranges_follow_python_with_n_and_the_repeat_argument() {
        let r = |args: &[RangeArg], n| expand_range("k", args, n).expect("range");
        use RangeArg::{Int, N};
        assert_eq!(r(&[Int(3)], 0), ["0", "1", "2"]);
        assert_eq!(r(&[Int(2), N], 3), ["2", "3", "4"]);
        assert_eq!(r(&[Int(0), Int(10), Int(4)], 0), ["0", "4", "8"]);
        assert_eq!(r(&[Int(-9), Int(0)], 0).len(), 9);
        assert_eq!(
            r(&[Int(0), Int(4), Int(1), Int(2)], 0),
            ["0", "0", "1", "1", "2", "2", "3", "3"]
        );
        // n disks over 2 values: each repeated ceil(n / 2) times.
        assert_eq!(r(&[Int(0), Int(2), Int(1), N], 3), ["0", "0", "1", "1"]);
        assert_eq!(r(&[N], 2), ["0", "1"]);
        assert!(expand_range("k", &[Int(0), Int(5), Int(0)], 0).is_err());
    }

    #[test]
    fn the_compatibility_keys_make_one_disk_with_tp_qemu_defaults() {
        let p = params(&[
            ("images", "image1"),
            ("stg_image_num", "1"),
            ("stg_image_size", "1G"),
            ("stg_image_format", "qcow2"),
        ]);
        let d = expand(&p).expect("expand");
        assert_eq!(d.disks.len(), 1);
        assert_eq!(value(&d, 0, "image_name").as_deref(), Some("images/stg0"));
        assert_eq!(value(&d, 0, "image_size").as_deref(), Some("1G"));
        assert_eq!(value(&d, 0, "image_boot").as_deref(), Some("no"));
        assert_eq!(value(&d, 0, "drive_index").as_deref(), Some("2"));
        let applied = d.apply(&p);
        assert_eq!(applied.get("images"), Some("image1 stg0"));
        assert_eq!(applied.get("image_format_stg0"), Some("qcow2"));
    }

    #[test]
    fn lists_cycle_and_the_longest_sets_the_count() {
        let p = params(&[
            (
                "stg_params",
                "image_format:qcow2,qcow2,raw drive_format:virtio,scsi-hd",
            ),
            ("stg_assign_index", "no"),
            ("stg_image_name", "/var/tmp/%s"),
        ]);
        let d = expand(&p).expect("expand");
        assert_eq!(d.disks.len(), 3);
        let fmts: Vec<_> = (0..3).map(|i| value(&d, i, "image_format")).collect();
        assert_eq!(
            fmts,
            [
                Some("qcow2".into()),
                Some("qcow2".into()),
                Some("raw".into())
            ]
        );
        assert_eq!(value(&d, 2, "drive_format").as_deref(), Some("virtio"));
        assert_eq!(value(&d, 1, "image_name").as_deref(), Some("/var/tmp/stg1"));
        assert_eq!(value(&d, 0, "drive_index"), None);
    }

    #[test]
    fn escapes_keep_blanks_and_commas_and_later_items_win() {
        let p = params(&[
            (
                "stg_params",
                "image_name:/a\\ b drive_extra:x\\,y drive_format:ide drive_format:scsi-hd",
            ),
            ("stg_image_num", "2"),
        ]);
        let d = expand(&p).expect("expand");
        assert_eq!(value(&d, 1, "image_name").as_deref(), Some("/a b"));
        assert_eq!(value(&d, 0, "drive_extra").as_deref(), Some("x,y"));
        assert_eq!(value(&d, 1, "drive_format").as_deref(), Some("scsi-hd"));
        assert_eq!(value(&d, 1, "drive_index").as_deref(), Some("3"));
    }

    #[test]
    fn bad_items_are_errors_naming_them() {
        for (text, want) in [
            ("noseparator", "noseparator"),
            ("drive_port:range(a,3)", "drive_port"),
            ("drive_port:range(1,2,3,4,5)", "1 to 4"),
        ] {
            let e =
                expand(&params(&[("stg_params", text), ("stg_image_num", "2")])).expect_err(text);
            assert!(e.0.contains(want), "{text}: {}", e.0);
        }
        let e = expand(&params(&[("stg_image_num", "x")])).expect_err("count");
        assert!(e.0.contains("stg_image_num"), "{}", e.0);
        let e = expand(&params(&[
            ("stg_assign_index", "no"),
            ("stg_image_boot", ""),
        ]))
        .expect_err("nothing");
        assert!(e.0.contains("no disk"), "{}", e.0);
    }
}
