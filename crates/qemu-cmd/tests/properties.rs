//! Property tests: arbitrary strings in params never split an argv element or leave an
//! unescaped comma in an option value; `ObjParams` agrees with `Params::object_params`.

mod common;

use params::Params;
use proptest::prelude::*;
use qemu_cmd::{cmdline, split_opt_list, Capabilities, ObjParams, RunPlan};

/// The keys whose values are fuzzed, with the option key each must land in verbatim.
const FUZZED: &[&str] = &[
    "image_name",
    "drive_serial",
    "nic_ifname",
    "tftp",
    "bootp",
    "kernel",
    "kernel_params",
    "netdst",
    "x11_display",
];

fn params(values: &[String]) -> Params {
    let mut p = Params::new();
    for (k, v) in [
        ("vms", "vm1"),
        ("images", "image1"),
        ("drive_format", "virtio"),
        ("nics", "nic1 nic2"),
        ("nic_mode_nic1", "tap"),
        ("nettype_nic2", "bridge"),
        ("serials", "s0"),
        ("monitors", "m0"),
        ("cdroms", "cd1"),
        ("cdrom_cd1", "x.iso"),
    ] {
        p.insert(k, v);
    }
    for (k, v) in FUZZED.iter().zip(values) {
        p.insert(*k, v.clone());
    }
    p
}

fn check(caps: &Capabilities, values: &[String]) -> Result<(), TestCaseError> {
    let benign: Vec<String> = FUZZED.iter().map(|_| "x".to_string()).collect();
    let base = cmdline(&params(&benign), caps, &RunPlan::dry())
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let p = params(values);
    match cmdline(&p, caps, &RunPlan::dry()) {
        Ok(cmd) => {
            // Same number of argv elements: no value split into or merged with another.
            prop_assert_eq!(cmd.args().len(), base.args().len());
            let args: Vec<String> = cmd
                .args()
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            for pair in args.windows(2) {
                let opt = pair[0].as_str();
                if !["-drive", "-device", "-netdev", "-blockdev", "-chardev"].contains(&opt) {
                    continue;
                }
                // Splits back into well-formed items whose keys are the builder's own.
                let items = split_opt_list(&pair[1]).map_err(TestCaseError::fail)?;
                let base_keys: Vec<String> = base
                    .args()
                    .iter()
                    .map(|a| a.to_string_lossy().into_owned())
                    .filter(|a| a.split(',').next() == pair[1].split(',').next())
                    .flat_map(|a| split_opt_list(&a).unwrap_or_default())
                    .map(|(k, _)| k)
                    .collect();
                for (k, _) in &items[1..] {
                    prop_assert!(base_keys.contains(k), "injected key {k} in {}", pair[1]);
                }
            }
            // The values arrive verbatim.
            let has = |key: &str, want: &str| {
                args.iter().any(|a| {
                    split_opt_list(a)
                        .unwrap_or_default()
                        .iter()
                        .any(|(k, v)| k == key && v.as_deref().is_some_and(|v| v.ends_with(want)))
                })
            };
            prop_assert!(has("serial", &values[1]));
            prop_assert!(has("ifname", &values[2]));
            let file = format!("{}.qcow2", values[0]);
            prop_assert!(has("filename", &file));
            prop_assert!(args.iter().any(|a| a == &values[6]), "-append word");
            let display = cmd.env().iter().find(|(k, _)| k == "DISPLAY");
            prop_assert_eq!(display.map(|(_, v)| v.as_str()), Some(values[8].as_str()));
        }
        Err(e) => {
            // Only values that cannot be argv at all are refused (NUL bytes), or empty ones
            // that leave a required key unset.
            for pr in e.problems() {
                let v = pr.value.clone().unwrap_or_default();
                prop_assert!(v.contains('\0') || v.is_empty(), "unexpected problem: {pr}");
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn arbitrary_values_stay_single_escaped_words(
        values in proptest::collection::vec(any::<String>().prop_filter("non-empty", |s| !s.is_empty()), FUZZED.len())
    ) {
        check(&common::caps("qemu-7.2"), &values)?;
    }

    #[test]
    fn hostile_values_stay_single_escaped_words(
        values in proptest::collection::vec("[a-z ,=;'\"$`|&\\\\-]{1,12}", FUZZED.len())
    ) {
        check(&common::caps("qemu-7.2"), &values)?;
    }

    #[test]
    fn object_views_match_object_params(
        entries in proptest::collection::vec(("(mem|image_name|a|x_vm1)(_vm1|_image1|_1|)(_image1|_vm1|)", "[a-z]{0,3}"), 0..12),
    ) {
        let mut p = Params::new();
        for (k, v) in &entries {
            p.insert(k.clone(), v.clone());
        }
        let reference = p.object_params("vm1").object_params("image1");
        let view = ObjParams::root(&p).object("vm1").object("image1");
        for (k, v) in reference.iter() {
            prop_assert_eq!(view.get(k), Some(v), "key {}", k);
        }
        for k in ["mem", "image_name", "a", "x", ""] {
            prop_assert_eq!(view.get(k), reference.get(k), "key {}", k);
        }
    }

    /// The same over the borrowed `FlatParams` (the matrix's base, indexed by last segment),
    /// with object names that hold `_`.
    #[test]
    fn flat_object_views_match_object_params(
        entries in proptest::collection::vec(("(mem|image_name|a|x_1)(_vm_1|_1|_b_1|_vm1|)(_b_1|_1|_vm_1|)", "[a-z]{0,3}"), 0..16),
    ) {
        let mut p = Params::new();
        for (k, v) in &entries {
            p.insert(k.clone(), v.clone());
        }
        let owned: Vec<(std::sync::Arc<str>, params::Value, Option<params::Origin>)> = p
            .iter()
            .map(|(k, v)| (k.into(), params::Value::from(v), None))
            .collect();
        let flat = qemu_cmd::FlatParams::new(&owned);
        for (outer, inner) in [("vm_1", "b_1"), ("vm1", "1"), ("b_1", "vm_1")] {
            let reference = p.object_params(outer).object_params(inner);
            let view = ObjParams::flat(&flat).object(outer).object(inner);
            for (k, v) in reference.iter() {
                prop_assert_eq!(view.get(k), Some(v), "key {} of {}/{}", k, outer, inner);
            }
            for k in ["mem", "image_name", "a", "x", "x_1", ""] {
                prop_assert_eq!(view.get(k), reference.get(k), "key {} of {}/{}", k, outer, inner);
            }
        }
    }
}

#[test]
fn nul_bytes_are_reported_not_passed() {
    let mut values: Vec<String> = FUZZED.iter().map(|_| "x".to_string()).collect();
    values[1] = "a\0b".into();
    let r = cmdline(&params(&values), &common::caps("qemu-7.2"), &RunPlan::dry());
    let problems = r.err().map(|e| e.problems().to_vec()).unwrap_or_default();
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].key, "drive_serial");
}
