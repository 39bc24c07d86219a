//! `kvmtest lint`: the keys of a config that nothing in kvmtest reads.
//!
//! avocado-vt ignores a key it does not know (a typo such as `drive_formt = virtio` silently
//! leaves the default in place). kvmtest knows every key it reads: each family's `KeyDoc` table
//! in `spec` (`spec::vm_keys::FAMILIES`: the VM hardware, sessions, processing, the test target,
//! host tools) and each catalogue test's declared params. For every variant, a key is *read*
//! when its name — after removing the object suffixes the Cartesian format allows
//! (`image_size_image1`, `kill_vm_on_error`, `mem_vm2`) — is declared by one of the families or
//! by the variant's own test type. Every other key is reported once, with the number of variants
//! that set it, where it was first set, and the nearest declared key when the name is a likely
//! typo.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::ControlFlow;
use std::sync::Arc;

use params::{Config, Origin};
use spec::vm_keys::{FAMILIES, OBJECT_LISTS};

use crate::registry::Registry;

/// Keys whose values name the objects of a variant, whose names may suffix other keys: the
/// lists the families read, plus the catalogue's.
const CATALOGUE_OBJECT_LISTS: &[&str] = &["device_data", "descriptors", "test_tags"];

/// Objects a test type names by counting: `(type, count key, prefix)` — tp-qemu's nic_hotplug
/// plugs `hotplug_nic1` … `hotplug_nicN`, N = `nic_hotplug_count` (default 1).
const COUNTED_OBJECTS: &[(&str, &str, &str)] =
    &[("nic_hotplug", "nic_hotplug_count", "hotplug_nic")];

/// What a key means depends on: the test type, the object lists, the sub-test types.
type Context = (Option<Arc<str>>, Vec<Arc<str>>, Vec<Arc<str>>);

/// Keys whose value is a test type run as a sub-test with the variant's params (tp-qemu's
/// `run_virt_sub_test`): that type's keys are read too.
const SUB_TEST_KEYS: &[&str] = &[
    "sub_type_before_plug",
    "sub_type_after_plug",
    "sub_type_before_unplug",
    "sub_type_after_unplug",
];

/// One key that no part of kvmtest reads.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UnreadKey {
    /// The key as the config writes it (suffixes kept).
    pub key: String,
    /// How many variants set it.
    pub variants: usize,
    /// Where the first variant that set it got it from (`file:line`).
    pub origin: Option<String>,
    /// The first variant that set it.
    pub example: String,
    /// The declared key it most likely means, for a near miss.
    pub did_you_mean: Option<String>,
    /// The test types that declare it, when it is one of their keys (then it is read only by
    /// variants of those types).
    pub test_types: Vec<String>,
}

/// What `lint` found.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct LintReport {
    /// Variants read.
    pub variants: usize,
    /// Keys that nothing reads, by key.
    pub unread: Vec<UnreadKey>,
    /// Test types no catalogue entry has, with how many variants name them.
    pub unknown_types: BTreeMap<String, usize>,
}

/// Every key a family of `spec` declares.
fn family_keys() -> std::collections::HashSet<&'static str> {
    FAMILIES
        .iter()
        .flat_map(|(_, _, docs)| docs.iter().map(|d| d.key))
        .chain(params::RESERVED_KEYS)
        .collect()
}

/// `key` without the object suffixes of this variant (`image_size_image1` → `image_size`),
/// longest object name first, repeatedly; the key itself when nothing matches.
fn base_key<'k>(key: &'k str, objects: &BTreeSet<String>) -> &'k str {
    let mut k = key;
    loop {
        let stripped = objects
            .iter()
            .filter_map(|o| k.strip_suffix(o.as_str())?.strip_suffix('_'))
            .filter(|s| !s.is_empty())
            .min_by_key(|s| s.len());
        match stripped {
            Some(s) => k = s,
            None => return k,
        }
    }
}

/// The declared key nearest to `key`, when it is close enough to be a typo of it.
fn nearest<'a>(key: &str, known: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let budget = (key.chars().count() / 4).clamp(1, 2);
    known
        .map(|k| (strsim::damerau_levenshtein(key, k), k))
        .filter(|(d, _)| *d <= budget)
        .min()
        .map(|(_, k)| k)
}

/// Lints every variant of `config` against the families of `spec` and the tests of `registry`.
///
/// # Errors
/// The config's own errors (a bad filter, an include that cannot be read…).
pub fn lint(config: &Config, registry: &Registry) -> Result<LintReport, params::Error> {
    let families = family_keys();
    let mut report = LintReport::default();
    let mut unread: BTreeMap<String, (usize, Option<Origin>, String, String)> = BTreeMap::new();
    // Consecutive variants mostly share their objects and test type: what a key means is
    // remembered until they change (`None`: read; `Some(base)`: unread).
    let mut meaning: HashMap<String, Option<String>> = HashMap::new();
    // The test type, the object lists and the sub-test types of the previous variant.
    let mut last: Context = (None, Vec::new(), Vec::new());
    let mut found: Vec<String> = Vec::new();
    config.for_each(|v| {
        report.variants += 1;
        let ty = v.get_str("type");
        let mut lists: Vec<Arc<str>> = OBJECT_LISTS
            .iter()
            .chain(CATALOGUE_OBJECT_LISTS)
            .filter_map(|l| v.get_str(l))
            .collect();
        for (t, count_key, prefix) in COUNTED_OBJECTS {
            if ty.as_deref() == Some(*t) {
                let n: usize = v
                    .get_str(count_key)
                    .and_then(|c| c.trim().parse().ok())
                    .unwrap_or(1);
                let names: Vec<String> = (1..=n).map(|i| format!("{prefix}{i}")).collect();
                lists.push(Arc::from(names.join(" ")));
            }
        }
        let sub_types: Vec<Arc<str>> = SUB_TEST_KEYS.iter().filter_map(|k| v.get_str(k)).collect();
        if last.0 != ty || last.1 != lists || last.2 != sub_types {
            meaning.clear();
            last = (ty.clone(), lists, sub_types);
        }
        let mut objects: BTreeSet<String> = last
            .1
            .iter()
            .flat_map(|l| l.split_whitespace())
            .map(str::to_string)
            .collect();
        objects.insert("on_error".into());
        let test = ty.as_deref().and_then(|t| match registry.get(t) {
            Some((spec, _)) => Some(spec),
            None => {
                *report.unknown_types.entry(t.to_string()).or_default() += 1;
                None
            }
        });
        let subs: Vec<_> = last
            .2
            .iter()
            .filter_map(|t| registry.get(t).map(|(spec, _)| spec))
            .collect();
        let declared = |k: &str| {
            families.contains(k)
                || test
                    .into_iter()
                    .chain(subs.iter().copied())
                    .any(|t| t.params.iter().any(|d| d.key == k))
        };
        v.for_each_entry(|key, _| {
            let m = meaning.entry(key.to_string()).or_insert_with(|| {
                if declared(key) {
                    return None;
                }
                let base = base_key(key, &objects);
                (!declared(base)).then(|| base.to_string())
            });
            if m.is_some() {
                found.push(key.to_string());
            }
        });
        for key in found.drain(..) {
            let base = meaning.get(&key).cloned().flatten().unwrap_or_default();
            let e = unread
                .entry(key)
                .or_insert_with_key(|k| (0, v.origin(k), v.name(), base));
            e.0 += 1;
        }
        Ok(ControlFlow::Continue(()))
    })?;
    let all_known: BTreeSet<&str> = families
        .iter()
        .copied()
        .chain(
            registry
                .specs()
                .flat_map(|s| s.params.iter().map(|d| d.key)),
        )
        .collect();
    report.unread = unread
        .into_iter()
        .map(|(key, (variants, origin, example, base))| {
            let test_types: Vec<String> = registry
                .specs()
                .filter(|s| s.params.iter().any(|d| d.key == base))
                .map(|s| s.name.to_string())
                .collect();
            UnreadKey {
                did_you_mean: if test_types.is_empty() {
                    nearest(&base, all_known.iter().copied()).map(str::to_string)
                } else {
                    None
                },
                test_types,
                key,
                variants,
                origin: origin.map(|o| o.to_string()),
                example,
            }
        })
        .collect();
    Ok(report)
}

impl LintReport {
    /// The report as text: one line per unread key, near misses first.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut keys: Vec<&UnreadKey> = self.unread.iter().collect();
        keys.sort_by_key(|k| (k.did_you_mean.is_none(), k.key.clone()));
        for k in keys {
            out.push_str(&k.key);
            out.push_str(&format!(
                "  ({} variant{}",
                k.variants,
                if k.variants == 1 { "" } else { "s" }
            ));
            if let Some(o) = &k.origin {
                out.push_str(&format!("; set at {o}"));
            }
            out.push(')');
            if let Some(d) = &k.did_you_mean {
                out.push_str(&format!("  did you mean `{d}`?"));
            }
            if !k.test_types.is_empty() {
                out.push_str(&format!(
                    "  read only by type = {}",
                    k.test_types.join(", ")
                ));
            }
            out.push('\n');
        }
        for (t, n) in &self.unknown_types {
            out.push_str(&format!(
                "type = {t}: no such test type ({n} variant{}); its keys were checked against \
                 the families only\n",
                if *n == 1 { "" } else { "s" }
            ));
        }
        out.push_str(&format!(
            "{} variant{}: {} key{} that kvmtest does not read\n",
            self.variants,
            if self.variants == 1 { "" } else { "s" },
            self.unread.len(),
            if self.unread.len() == 1 { "" } else { "s" }
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        let mut p = params::Parser::new(params::ParserOptions::default());
        p.parse_str(text)
            .unwrap_or_else(|e| panic!("{}", e.render()));
        p.finish()
    }

    fn lint_text(text: &str) -> LintReport {
        lint(&config(text), &crate::catalogue::builtin()).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn object_suffixes_are_stripped() {
        let objects: BTreeSet<String> = ["image1", "vm2", "on_error", "image"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(base_key("image_size_image1", &objects), "image_size");
        assert_eq!(base_key("mem_vm2", &objects), "mem");
        assert_eq!(base_key("kill_vm_on_error", &objects), "kill_vm");
        assert_eq!(base_key("image_size_image1_vm2", &objects), "image_size");
        assert_eq!(base_key("image", &objects), "image");
    }

    #[test]
    fn typos_are_found_with_the_key_they_miss() {
        let r = lint_text(
            "type = boot\nvms = vm1\nimages = image1\nimage_name = x\n\
             drive_formt_image1 = virtio\nmem_vm1 = 512\nkill_vm_on_error = yes\n\
             boot_comand = true\nsomething_else = 1\n",
        );
        assert_eq!(r.variants, 1);
        let keys: Vec<(&str, Option<&str>)> = r
            .unread
            .iter()
            .map(|k| (k.key.as_str(), k.did_you_mean.as_deref()))
            .collect();
        assert_eq!(
            keys,
            [
                ("boot_comand", Some("boot_command")),
                ("drive_formt_image1", Some("drive_format")),
                ("something_else", None),
            ]
        );
        assert_eq!(r.unread[1].origin.as_deref(), Some("<string>:5"));
    }

    #[test]
    fn a_test_types_own_keys_are_read_only_by_it() {
        let r = lint_text(
            "vms = vm1\nvariants:\n    - a:\n        type = boot\n        boot_command = x\n\
             \x20   - b:\n        type = noop\n        boot_command = y\n",
        );
        assert_eq!(r.variants, 2);
        assert_eq!(r.unread.len(), 1, "{r:?}");
        assert_eq!(r.unread[0].key, "boot_command");
        assert_eq!(r.unread[0].variants, 1);
        assert_eq!(r.unread[0].test_types, ["boot"]);
        assert_eq!(r.unread[0].did_you_mean, None);
        assert!(
            r.render().contains("read only by type = boot"),
            "{}",
            r.render()
        );
        assert!(r.unread[0].example.contains('b'), "{r:?}");
    }

    #[test]
    fn a_sub_tests_keys_are_read_where_it_runs() {
        // block_hotplug runs `boot` after the plug: boot's reboot_method is read there, and
        // only there.
        let r = lint_text(
            "vms = vm1\ntype = block_hotplug\nget_disk_cmd = ls\nreboot_method = shell\n\
             variants:\n    - a:\n        sub_type_after_plug = boot\n    - b:\n",
        );
        assert_eq!(r.variants, 2);
        let unread: Vec<(&str, usize)> = r
            .unread
            .iter()
            .map(|k| (k.key.as_str(), k.variants))
            .collect();
        assert_eq!(unread, [("reboot_method", 1)], "{r:?}");
        assert!(r.unread[0].example.contains('b'), "{r:?}");
    }

    #[test]
    fn unknown_types_are_counted() {
        let r = lint_text("type = frobnicate\n");
        assert_eq!(r.unknown_types.get("frobnicate"), Some(&1));
        assert!(r.render().contains("no such test type"));
    }

    #[test]
    fn the_bundled_suite_reads_every_key_it_sets() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/suite");
        let mut p = params::Parser::new(params::ParserOptions::default());
        p.parse_file(dir.join("tests.cfg"))
            .unwrap_or_else(|e| panic!("{}", e.render()));
        let r = lint(&p.finish(), &crate::catalogue::builtin()).unwrap_or_else(|e| panic!("{e}"));
        assert!(r.variants > 10);
        assert!(r.unread.is_empty(), "{}", r.render());
    }
}
