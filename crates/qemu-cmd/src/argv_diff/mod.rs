//! Option-by-option differences between two QEMU command lines: avocado-vt's (the reference) and
//! kvmtest's, as `cargo xtask compare-avocado` and the `avocado` test report them.
//!
//! Both argvs (without the program) are parsed into [`ArgOpt`]s: `-name value`, or a flag when
//! the name is a known flag ([`FLAGS`]) or the next word starts with `-`. Each option gets an
//! identity ([`identify`]): `-device` its `id` (`-device virtio-blk-pci[image1]`), else its driver
//! and occurrence (`-device usb-tablet#1`); `-blockdev` its `node-name`; `-chardev`, `-netdev`,
//! `-object` their `id`; `-drive` its `id` or `file`; any other option its name and occurrence
//! (`-m`, `-m#2`). Options with the same identity on both sides are compared item by item (the
//! value split at single commas, `,,` being an escaped comma: [`split_items`]); what is left is
//! then paired by option name and driver, in order, so a device that avocado-vt gave a random id
//! still meets its kvmtest counterpart. Whatever has no counterpart is missing in kvmtest or only
//! in kvmtest.
//!
//! Before comparing, run-specific text is normalised ([`Normalise`]): avocado-vt's random ids
//! (`idB5I0tJ` → `@ID@`, `virtio-rng-8Z4ROcSv` → `virtio-rng-@ID@`), its timestamped file names (`-20261206-020644-6O7sKtVx` dropped), its
//! data dir (→ `@ROOT@`), MACs (→ `@MAC@`, kvmtest's `@MAC_nic1@` too) and `-vnc` displays
//! (→ `@VNC@`). kvmtest's other `@PLACEHOLDERS@` stay as they are.
//!
//! Each [`Difference`] has a one-line [`Difference::key`], such as
//! `-device virtio-blk-pci[image1]: addr missing in kvmtest (avocado-vt: 0x3)`, matched against
//! the patterns of an [`Explanations`] table (`*` matches any text) to tell deliberate
//! differences from gaps.
//!
//! ```
//! use qemu_cmd::argv_diff::{diff, Normalise};
//!
//! let avocado = ["-m", "1024", "-device", "virtio-blk-pci,id=image1,addr=0x3", "-S"];
//! let kvmtest = ["-m", "1024", "-device", "virtio-blk-pci,id=image1"];
//! let n = Normalise::default();
//! let d = diff(&n.argv(&avocado), &n.argv(&kvmtest));
//! let keys: Vec<String> = d.iter().map(|d| d.key()).collect();
//! assert_eq!(
//!     keys,
//!     [
//!         "-device virtio-blk-pci[image1]: addr missing in kvmtest (avocado-vt: 0x3)",
//!         "-S: missing in kvmtest (avocado-vt: -S)",
//!     ]
//! );
//! ```

mod parse;
mod reference;

pub use parse::*;
pub use reference::*;

use std::collections::HashMap;

/// An option's driver (what kind of thing it makes): `-device`'s driver, `-object`'s qom-type,
/// `-blockdev`'s `driver`, `-chardev`/`-netdev`'s backend; empty for other options.
pub fn driver(opt: &ArgOpt) -> String {
    let Some(v) = &opt.value else {
        return String::new();
    };
    let items = keyed_items(v);
    let get = |k: &str| {
        items
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    match opt.name.as_str() {
        "-device" => get("driver").or_else(|| get("value")),
        "-object" => get("qom-type").or_else(|| get("value")),
        "-blockdev" => get("driver"),
        "-chardev" => get("backend").or_else(|| get("value")),
        "-netdev" | "-nic" => get("type").or_else(|| get("value")),
        _ => None,
    }
    .unwrap_or_default()
}

/// The identities of `opts`, in order (see the module docs).
pub fn identify(opts: &[ArgOpt]) -> Vec<String> {
    let mut count: HashMap<String, usize> = HashMap::new();
    let mut numbered = |base: String| {
        let n = count.entry(base.clone()).or_insert(0);
        *n += 1;
        if *n == 1 {
            base
        } else {
            format!("{base}#{n}")
        }
    };
    opts.iter()
        .map(|o| {
            let items = o.value.as_deref().map(keyed_items).unwrap_or_default();
            let get = |k: &str| {
                items
                    .iter()
                    .find(|(key, v)| key == k && !v.is_empty() && !v.contains("@ID@"))
                    .map(|(_, v)| v.clone())
            };
            let name = if o.name.is_empty() {
                "(image)"
            } else {
                o.name.as_str()
            };
            match o.name.as_str() {
                "-device" => match get("id") {
                    Some(id) => numbered(format!("-device {}[{id}]", driver(o))),
                    None => numbered(format!("-device {}", driver(o))),
                },
                "-blockdev" => match get("node-name") {
                    Some(n) => numbered(format!("-blockdev {}[{n}]", driver(o))),
                    None => numbered(format!("-blockdev {}", driver(o))),
                },
                "-chardev" | "-netdev" | "-object" => match get("id") {
                    Some(id) => numbered(format!("{name} {}[{id}]", driver(o))),
                    None => numbered(format!("{name} {}", driver(o))),
                },
                "-mon" => match get("chardev") {
                    Some(c) => numbered(format!("-mon [{c}]")),
                    None => numbered("-mon".into()),
                },
                "-drive" => match get("id").or_else(|| get("file")) {
                    Some(id) => numbered(format!("-drive [{id}]")),
                    None => numbered("-drive".into()),
                },
                _ => numbered(name.to_string()),
            }
        })
        .collect()
}

/// One difference between avocado-vt's and kvmtest's command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    /// An option avocado-vt gives and kvmtest does not.
    Missing {
        /// The option's identity.
        opt: String,
        /// avocado-vt's option text.
        avocado: String,
    },
    /// An option only kvmtest gives.
    Extra {
        /// The option's identity.
        opt: String,
        /// kvmtest's option text.
        kvmtest: String,
    },
    /// An item both give, with different values.
    Differs {
        /// The option's identity (avocado-vt's).
        opt: String,
        /// The item's key.
        item: String,
        /// avocado-vt's value.
        avocado: String,
        /// kvmtest's value.
        kvmtest: String,
    },
    /// An item avocado-vt gives and kvmtest does not.
    ItemMissing {
        /// The option's identity (avocado-vt's).
        opt: String,
        /// The item's key.
        item: String,
        /// avocado-vt's value.
        avocado: String,
    },
    /// An item only kvmtest gives.
    ItemExtra {
        /// The option's identity (avocado-vt's).
        opt: String,
        /// The item's key.
        item: String,
        /// kvmtest's value.
        kvmtest: String,
    },
}

impl Difference {
    /// The one-line description, values included: what explanation patterns are matched against.
    pub fn key(&self) -> String {
        match self {
            Difference::Missing { opt, avocado } => {
                format!("{opt}: missing in kvmtest (avocado-vt: {avocado})")
            }
            Difference::Extra { opt, kvmtest } => {
                format!("{opt}: only in kvmtest (kvmtest: {kvmtest})")
            }
            Difference::Differs {
                opt,
                item,
                avocado,
                kvmtest,
            } => format!("{opt}: {item} differs (avocado-vt: {avocado}, kvmtest: {kvmtest})"),
            Difference::ItemMissing { opt, item, avocado } => {
                format!("{opt}: {item} missing in kvmtest (avocado-vt: {avocado})")
            }
            Difference::ItemExtra { opt, item, kvmtest } => {
                format!("{opt}: {item} only in kvmtest (kvmtest: {kvmtest})")
            }
        }
    }

    /// The description without values (`-device virtio-blk-pci[image1]: addr missing in
    /// kvmtest`), for grouping the same gap across variants.
    pub fn kind(&self) -> String {
        let key = self.key();
        match key.rfind(" (") {
            Some(i) if key.ends_with(')') => key[..i].to_string(),
            _ => key,
        }
    }
}

/// The differences between two normalised argvs (words after the program), in avocado-vt's
/// option order, then kvmtest's extra options in theirs.
pub fn diff<A: AsRef<str>, K: AsRef<str>>(avocado: &[A], kvmtest: &[K]) -> Vec<Difference> {
    let a = parse_argv(avocado);
    let k = parse_argv(kvmtest);
    let a_id = identify(&a);
    let k_id = identify(&k);
    let mut pair: Vec<Option<usize>> = vec![None; a.len()];
    let mut taken = vec![false; k.len()];
    let k_index: HashMap<&str, usize> = k_id
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    for (i, id) in a_id.iter().enumerate() {
        if let Some(&j) = k_index.get(id.as_str()) {
            pair[i] = Some(j);
            taken[j] = true;
        }
    }
    // leftovers: same option name and driver, the most alike first, then in order
    let mut candidates = Vec::new();
    for i in (0..a.len()).filter(|&i| pair[i].is_none()) {
        let d = driver(&a[i]);
        for j in (0..k.len()).filter(|&j| !taken[j] && k[j].name == a[i].name) {
            if driver(&k[j]) == d {
                candidates.push((std::cmp::Reverse(likeness(&a[i], &k[j])), i, j));
            }
        }
    }
    candidates.sort();
    for (_, i, j) in candidates {
        if pair[i].is_none() && !taken[j] {
            pair[i] = Some(j);
            taken[j] = true;
        }
    }
    let mut out = Vec::new();
    for (i, p) in pair.iter().enumerate() {
        match p {
            None => out.push(Difference::Missing {
                opt: a_id[i].clone(),
                avocado: a[i].text(),
            }),
            Some(j) => item_diff(&a_id[i], &a[i], &k[*j], &mut out),
        }
    }
    for (j, t) in taken.iter().enumerate() {
        if !t {
            out.push(Difference::Extra {
                opt: k_id[j].clone(),
                kvmtest: k[j].text(),
            });
        }
    }
    out
}

/// How alike two options are: their items with equal values, paths counting as equal when their
/// file names without extension are (`@ROOT@/serial-serial0`, `@RUN_DIR@/serial-serial0.sock`).
fn likeness(a: &ArgOpt, k: &ArgOpt) -> usize {
    let stem = |v: &str| {
        let base = v.rsplit('/').next().unwrap_or(v);
        base.split('.').next().unwrap_or(base).to_string()
    };
    let ai = a.value.as_deref().map(keyed_items).unwrap_or_default();
    let ki = k.value.as_deref().map(keyed_items).unwrap_or_default();
    ai.iter()
        .filter(|(key, av)| {
            ki.iter().any(|(kk, kv)| {
                kk == key && (kv == av || (av.contains('/') && stem(av) == stem(kv)))
            })
        })
        .count()
}

fn item_diff(opt: &str, a: &ArgOpt, k: &ArgOpt, out: &mut Vec<Difference>) {
    let ai = a.value.as_deref().map(keyed_items).unwrap_or_default();
    let ki = k.value.as_deref().map(keyed_items).unwrap_or_default();
    for (key, av) in &ai {
        match ki.iter().find(|(kk, _)| kk == key) {
            Some((_, kv)) if kv == av => {}
            Some((_, kv)) => out.push(Difference::Differs {
                opt: opt.to_string(),
                item: key.clone(),
                avocado: av.clone(),
                kvmtest: kv.clone(),
            }),
            None => out.push(Difference::ItemMissing {
                opt: opt.to_string(),
                item: key.clone(),
                avocado: av.clone(),
            }),
        }
    }
    for (key, kv) in &ki {
        if !ai.iter().any(|(ak, _)| ak == key) {
            out.push(Difference::ItemExtra {
                opt: opt.to_string(),
                item: key.clone(),
                kvmtest: kv.clone(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(a: &[&str], k: &[&str]) -> Vec<String> {
        let n = Normalise::default();
        diff(&n.argv(a), &n.argv(k))
            .iter()
            .map(Difference::key)
            .collect()
    }

    #[test]
    fn escaped_commas_stay_in_their_item() {
        assert_eq!(
            split_items("file=a,,b,,,format=raw"),
            ["file=a,b,", "format=raw"]
        );
        assert_eq!(split_items(""), [""]);
        assert_eq!(
            keyed_items("virtio-blk-pci,id=x,id=y,z"),
            [
                ("value".into(), "virtio-blk-pci".into()),
                ("id".into(), "x".into()),
                ("id#2".into(), "y".into()),
                ("value2".into(), "z".into())
            ]
        );
    }

    #[test]
    fn flags_take_no_value() {
        let o = parse_argv(&[
            "-S",
            "-m",
            "512",
            "-nodefaults",
            "-usb",
            "x.img",
            "-vga",
            "std",
        ]);
        let t: Vec<String> = o.iter().map(ArgOpt::text).collect();
        assert_eq!(
            t,
            ["-S", "-m 512", "-nodefaults", "-usb", " x.img", "-vga std"]
        );
        let o = parse_argv(&["-snapshot", "-foo"]);
        assert_eq!(o[0].value, None);
        assert_eq!(o[1].value, None);
    }

    #[test]
    fn random_ids_match_by_driver_and_order() {
        assert!(is_random_id("idB5I0tJ"));
        assert!(is_random_id("idzkgpcw"));
        assert!(is_random_suffix("8B8homLe"));
        assert!(is_random_suffix("ff4xaps7"));
        assert!(!is_random_suffix("abcdefgh"));
        assert!(!is_random_suffix("12345678"));
        assert!(!is_random_id("identifier"));
        assert!(!is_random_id("id-1234"));
        assert!(!is_random_id("image1"));
        let d = keys(
            &[
                "-device",
                "usb-tablet,id=idB5I0tJ,bus=usb1.0",
                "-device",
                "usb-tablet,id=idaaaa9a,bus=usb1.0,port=2",
            ],
            &[
                "-device",
                "usb-tablet,bus=usb1.0",
                "-device",
                "usb-tablet,id=t2,bus=usb1.0",
            ],
        );
        assert_eq!(
            d,
            [
                "-device usb-tablet: id missing in kvmtest (avocado-vt: @ID@)",
                "-device usb-tablet#2: id differs (avocado-vt: @ID@, kvmtest: t2)",
                "-device usb-tablet#2: port missing in kvmtest (avocado-vt: 2)",
            ]
        );
    }

    #[test]
    fn item_and_option_differences() {
        let d = keys(
            &[
                "-m",
                "1024",
                "-blockdev",
                "driver=file,node-name=f1,filename=/a,,b,aio=threads",
                "-chardev",
                "socket,id=qmp,path=/x",
            ],
            &[
                "-m",
                "2048",
                "-blockdev",
                "driver=file,node-name=f1,filename=/a,,b,cache.direct=on",
                "-nodefaults",
            ],
        );
        assert_eq!(
            d,
            [
                "-m: value differs (avocado-vt: 1024, kvmtest: 2048)",
                "-blockdev file[f1]: aio missing in kvmtest (avocado-vt: threads)",
                "-blockdev file[f1]: cache.direct only in kvmtest (kvmtest: on)",
                "-chardev socket[qmp]: missing in kvmtest (avocado-vt: -chardev socket,id=qmp,path=/x)",
                "-nodefaults: only in kvmtest (kvmtest: -nodefaults)",
            ]
        );
        assert_eq!(
            Difference::ItemMissing {
                opt: "-m".into(),
                item: "slots".into(),
                avocado: "4".into()
            }
            .kind(),
            "-m: slots missing in kvmtest"
        );
    }

    #[test]
    fn leftovers_pair_with_the_most_alike() {
        let d = keys(
            &[
                "-chardev",
                "socket,id=qmp_a,path=/r/monitor-a",
                "-chardev",
                "socket,id=ser,path=/r/serial-serial0",
            ],
            &[
                "-chardev",
                "socket,id=serial0,path=@RUN_DIR@/serial-serial0.sock",
            ],
        );
        assert_eq!(
            d,
            [
                "-chardev socket[qmp_a]: missing in kvmtest (avocado-vt: -chardev socket,id=qmp_a,path=/r/monitor-a)",
                "-chardev socket[ser]: id differs (avocado-vt: ser, kvmtest: serial0)",
                "-chardev socket[ser]: path differs (avocado-vt: /r/serial-serial0, kvmtest: @RUN_DIR@/serial-serial0.sock)",
            ]
        );
    }

    #[test]
    fn run_specific_text_is_normalised() {
        let n = Normalise {
            data_dir: Some("/tmp/ref/".into()),
        };
        let w = n.argv(&[
            "-chardev",
            "socket,id=idAb3dEf9h,path=/tmp/ref/avocado_x/monitor-qmp-20261206-020644-6O7sKtVx",
            "-device",
            "e1000,mac=9a:b4:0c:11:22:33,netdev=@MAC_nic1@",
            "-vnc",
            ":0",
            "-vnc",
            "@VNC@",
            "-chardev",
            "socket,id=seabioslog_id_20261206-022649-JlPwrC0R",
            "-object",
            "rng-egd,id=chardev-D8LhSmsw,chardev=tcp-8B8homLe",
        ]);
        assert_eq!(
            w,
            [
                "-chardev",
                "socket,id=@ID@,path=@ROOT@/avocado_x/monitor-qmp",
                "-device",
                "e1000,mac=@MAC@,netdev=@MAC@",
                "-vnc",
                "@VNC@",
                "-vnc",
                "@VNC@",
                "-chardev",
                "socket,id=seabioslog_id",
                "-object",
                "rng-egd,id=chardev-@ID@,chardev=tcp-@ID@",
            ]
        );
    }

    #[test]
    fn explanations_from_a_markdown_table() {
        let md =
            "# x\n## Deliberate differences from avocado-vt\n\n| difference | why |\n|---|---|\n\
                  | `-chardev *: path differs *` | run dir |\n| -vnc*: value* | port |\n## Other\n\
                  | `*` | never |\n";
        let e = Explanations::from_markdown(md);
        assert_eq!(e.rows.len(), 2);
        assert_eq!(
            e.explain("-chardev socket[qmp]: path differs (avocado-vt: a, kvmtest: b)"),
            Some("run dir")
        );
        assert_eq!(e.explain("-m: value differs"), None);
        assert!(glob_match("a*b*c", "aXbYc"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("a*b", "aXc"));
        assert!(glob_match("a**", "a"));
    }
}
