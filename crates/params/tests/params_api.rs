//! The public API of [`params::Params`], checked against the behaviour of avocado-vt's
//! `virttest.utils_params.Params`.
//!
//! The first tests port the reference's own `selftests/unit/test_utils_params.py` (same data, same
//! expectations); the rest pin down the corner cases of the reference that cfg files rely on and the
//! places where this crate reports an error instead of guessing.

// A failed unwrap is a failed test, with the value in the message; that is what tests want.
#![allow(clippy::unwrap_used)]

use params::{Origin, ParamError, Params};

/// `BASE_DICT` of the reference's test_utils_params.py, in its order.
const BASE_DICT: [(&str, &str); 15] = [
    ("image_boot", "yes"),
    ("image_boot_stg", "no"),
    ("image_chain", ""),
    ("image_clone_command", "cp --reflink=auto %s %s"),
    ("image_format", "qcow2"),
    ("image_format_stg", "qcow2"),
    ("image_name", "images/f18-64"),
    ("image_name_stg", "enospc"),
    ("image_raw_device", "no"),
    ("image_remove_command", "rm -rf %s"),
    ("image_size", "10G"),
    ("image_snapshot_stg", "no"),
    ("image_unbootable_pattern", "Hard Disk.*not a bootable disk"),
    ("image_verify_bootable", "yes"),
    ("images", "image1 stg"),
];

fn base() -> Params {
    Params::from(BASE_DICT)
}

fn at(file: &str, line: u32) -> Option<Origin> {
    Some(Origin::new(file, line))
}

fn pairs(params: &Params) -> Vec<(&str, &str)> {
    params.iter().collect()
}

// --- ported from test_utils_params.py ---------------------------------------------------------

#[test]
fn objects_lists_images() {
    assert_eq!(base().objects("images"), ["image1", "stg"]);
}

#[test]
fn object_params_match_the_reference_mapping() {
    let params = base();

    // image1 has no suffixed keys: its view is the dict unchanged.
    assert_eq!(params.object_params("image1"), params);
    assert_eq!(pairs(&params.object_params("image1")), BASE_DICT);

    // stg: the `_stg` values override, the suffixed keys stay, and the one new base key
    // (`image_snapshot`) is appended at the end.
    let mut expected = base();
    expected.insert("image_boot", "no");
    expected.insert("image_name", "enospc");
    expected.insert("image_snapshot", "no");
    let stg = params.object_params("stg");
    assert_eq!(stg, expected);
    assert_eq!(pairs(&stg), pairs(&expected));
    assert_eq!(stg.keys().last(), Some("image_snapshot"));
    assert_eq!(stg.get("image_boot_stg"), Some("no"));
    assert_eq!(stg.len(), BASE_DICT.len() + 1);

    // The view is a copy: the original is untouched.
    assert_eq!(params.get("image_name"), Some("images/f18-64"));
    assert!(!params.contains_key("image_snapshot"));
}

#[test]
fn missing_key_is_an_error_with_the_reference_message() {
    let params = base();
    let err = params.require("bogus").unwrap_err();
    assert_eq!(
        err,
        ParamError::Missing {
            key: "bogus".into()
        }
    );
    assert_eq!(err.key(), "bogus");
    assert_eq!(err.origin(), None);
    assert_eq!(
        err.to_string(),
        "Mandatory parameter 'bogus' is missing. Check your cfg files for typos/mistakes"
    );
    // `get` never fails.
    assert_eq!(params.get("bogus"), None);
    assert_eq!(params.get_or("bogus", "dflt"), "dflt");
}

#[test]
fn require_returns_a_present_value() {
    let params = base();
    assert_eq!(params.require("image_size"), Ok("10G"));
    // Empty is present, not missing.
    assert_eq!(params.require("image_chain"), Ok(""));
    assert_eq!(params.get_or("image_chain", "dflt"), "");
}

#[test]
fn get_bool_accepts_the_six_spellings() {
    let mut params = base();
    for (key, value) in [
        ("foo1", "yes"),
        ("foo2", "no"),
        ("foo3", "on"),
        ("foo4", "off"),
        ("foo5", "true"),
        ("foo6", "false"),
    ] {
        params.insert(key, value);
    }
    assert_eq!(params.get_bool("foo1"), Ok(Some(true)));
    assert_eq!(params.get_bool("foo2"), Ok(Some(false)));
    assert_eq!(params.get_bool("foo3"), Ok(Some(true)));
    assert_eq!(params.get_bool("foo4"), Ok(Some(false)));
    assert_eq!(params.get_bool("foo5"), Ok(Some(true)));
    assert_eq!(params.get_bool("foo6"), Ok(Some(false)));
    assert_eq!(params.get_bool("notgiven"), Ok(None));
    assert_eq!(params.get_bool_or("notgiven", false), Ok(false));
    assert_eq!(params.get_bool_or("notgiven", true), Ok(true));
    assert_eq!(params.get_bool_or("foo2", true), Ok(false));
    assert_eq!(params.require_bool("foo5"), Ok(true));
    assert!(matches!(
        params.require_bool("notgiven"),
        Err(ParamError::Missing { .. })
    ));
}

#[test]
fn get_numeric_reads_ints_and_floats() {
    let mut params = base();
    params.insert("something", "7");
    params.insert("foobar", "11");
    params.insert("barsome", "13.17");
    assert_eq!(params.get_i64("something"), Ok(Some(7)));
    assert_eq!(params.get_u64("something"), Ok(Some(7)));
    assert_eq!(params.get_f64("something"), Ok(Some(7.0)));
    assert_eq!(params.get_f64("foobar"), Ok(Some(11.0)));
    assert_eq!(params.get_f64("barsome"), Ok(Some(13.17)));
    // Python's int("13.17") fails too.
    assert!(params.get_i64("barsome").is_err());
    // The reference's default argument is `unwrap_or` on the `Option`.
    assert_eq!(params.get_i64("joke").map(|n| n.unwrap_or(17)), Ok(17));
    assert_eq!(
        params.get_f64("joke").map(|n| n.unwrap_or(17.13)),
        Ok(17.13)
    );
    assert_eq!(params.require_i64("foobar"), Ok(11));
    assert_eq!(params.require_u64("foobar"), Ok(11));
    assert_eq!(params.require_f64("barsome"), Ok(13.17));
    assert!(matches!(
        params.require_i64("joke"),
        Err(ParamError::Missing { .. })
    ));
}

#[test]
fn get_list_splits_on_whitespace_or_a_delimiter() {
    let mut params = base();
    params.insert("primes", "7 11 13 17");
    params.insert("dashed", "7-11-13");
    assert_eq!(params.get_list("primes", None), ["7", "11", "13", "17"]);
    assert_eq!(
        params.get_list("primes", Some(" ")),
        ["7", "11", "13", "17"]
    );
    assert_eq!(params.get_list("dashed", Some("-")), ["7", "11", "13"]);
    let converted: Result<Vec<u32>, _> = params
        .get_list("dashed", Some("-"))
        .into_iter()
        .map(str::parse::<u32>)
        .collect();
    assert_eq!(converted, Ok(vec![7, 11, 13]));
    assert!(params.get_list("missing", Some(" ")).is_empty());
}

#[test]
fn get_dict_keeps_entry_order() {
    let mut params = base();
    params.insert("dummy", "name1=value1 name2=value2");
    let dict = params.get_dict("dummy", None).unwrap();
    assert_eq!(
        dict,
        [
            ("name1".to_owned(), "value1".to_owned()),
            ("name2".to_owned(), "value2".to_owned())
        ]
    );
    assert_ne!(
        dict,
        [
            ("name2".to_owned(), "value2".to_owned()),
            ("name1".to_owned(), "value1".to_owned())
        ]
    );
}

#[test]
fn drop_internals_removes_underscore_keys() {
    // The reference's `dropDictInternals` lacks the `test` prefix and never runs; this is it.
    let mut params = base();
    params.insert("a", "7");
    params.insert("b", "11");
    params.insert_with_origin("_b", "13", at("x.cfg", 1));
    params.insert_with_origin("c_", "17", at("x.cfg", 2));
    let pruned = params.drop_internals();
    assert_eq!(pruned.get("a"), Some("7"));
    assert_eq!(pruned.get("b"), Some("11"));
    assert!(!pruned.contains_key("_b"));
    assert_eq!(pruned.origin("c_"), at("x.cfg", 2).as_ref());
    assert_eq!(pruned.len(), params.len() - 1);
    assert_eq!(pruned.keys().last(), Some("c_"));
}

// --- objects and object views -----------------------------------------------------------------

#[test]
fn objects_dedups_keeping_first_seen_order() {
    let params = Params::from([
        ("vms", "vm2 vm1  vm2\tvm3\nvm1"),
        ("spaced", "\u{3000}a\u{1c}b\u{a0}a\u{2003}"),
        ("empty", ""),
        ("blank", " \t "),
    ]);
    assert_eq!(params.objects("vms"), ["vm2", "vm1", "vm3"]);
    // Any whitespace Python's str.split() knows, including U+001C, which Rust's is_whitespace
    // does not.
    assert_eq!(params.objects("spaced"), ["a", "b"]);
    assert!(params.objects("empty").is_empty());
    assert!(params.objects("blank").is_empty());
    assert!(params.objects("missing").is_empty());
}

#[test]
fn nested_views_follow_param_image_vm_precedence() {
    // Four levels, written from most to least specific so that file order cannot be what decides.
    let params = Params::from([
        ("vms", "vm1 vm2"),
        ("images", "image1 stg"),
        ("image_name_stg_vm1", "stg-of-vm1"),
        ("image_name_vm1", "any-image-of-vm1"),
        ("image_name_stg", "stg-of-any-vm"),
        ("image_name", "default"),
    ]);
    let name = |vm: &str, image: &str| {
        let view = params.object_params(vm).object_params(image);
        view.get("image_name").map(str::to_owned)
    };
    assert_eq!(name("vm1", "stg").as_deref(), Some("stg-of-vm1"));
    assert_eq!(name("vm1", "image1").as_deref(), Some("any-image-of-vm1"));
    assert_eq!(name("vm2", "stg").as_deref(), Some("stg-of-any-vm"));
    assert_eq!(name("vm2", "image1").as_deref(), Some("default"));

    // And the same in the opposite file order.
    let reversed: Params = params.iter().rev().collect();
    let view = reversed.object_params("vm1").object_params("stg");
    assert_eq!(view.get("image_name"), Some("stg-of-vm1"));
    let view = reversed.object_params("vm2").object_params("image1");
    assert_eq!(view.get("image_name"), Some("default"));
}

#[test]
fn object_params_cuts_at_the_first_occurrence_of_the_suffix() {
    let params = Params::from([("a_1_b_1", "x"), ("_1", "empty-key"), ("b_10", "not-mine")]);
    let view = params.object_params("1");
    assert_eq!(view.get("a"), Some("x"));
    assert!(!view.contains_key("a_1_b"));
    assert_eq!(view.get(""), Some("empty-key"));
    // `b_10` does not end in `_1`.
    assert!(!view.contains_key("b"));
    assert_eq!(
        view.keys().collect::<Vec<_>>(),
        ["a_1_b_1", "_1", "b_10", "a", ""]
    );
}

#[test]
fn object_params_last_writer_in_map_order_wins() {
    let params = Params::from([("mem", "512"), ("mem_vm1", "1024"), ("mem_vm1_vm1", "2048")]);
    assert_eq!(params.object_params("vm1").get("mem"), Some("2048"));
    let params = Params::from([("mem", "512"), ("mem_vm1_vm1", "2048"), ("mem_vm1", "1024")]);
    assert_eq!(params.object_params("vm1").get("mem"), Some("1024"));
    // The overridden base keeps its position.
    assert_eq!(params.object_params("vm1").keys().next(), Some("mem"));
}

#[test]
fn object_params_carries_origins() {
    let mut params = Params::new();
    params.insert_with_origin("nic_model", "rtl8139", at("base.cfg", 3));
    params.insert_with_origin("nic_model_nic1", "e1000", at("nics.cfg", 9));
    let view = params.object_params("nic1");
    assert_eq!(view.get("nic_model"), Some("e1000"));
    assert_eq!(view.origin("nic_model"), at("nics.cfg", 9).as_ref());
    assert_eq!(params.origin("nic_model"), at("base.cfg", 3).as_ref());
}

#[test]
fn object_counts_yields_numbered_keys() {
    let params = Params::from([("disks", "3"), ("disk1", "a"), ("disk3", "c")]);
    let counted: Vec<_> = params.object_counts("disks", "disk").unwrap().collect();
    assert_eq!(
        counted,
        [
            ("disk1".to_owned(), Some("a")),
            ("disk2".to_owned(), None),
            ("disk3".to_owned(), Some("c")),
        ]
    );
    // A missing count means one object.
    let counted: Vec<_> = params.object_counts("nothing", "disk").unwrap().collect();
    assert_eq!(counted, [("disk1".to_owned(), Some("a"))]);
    let zero = Params::from([("n", "0")]);
    assert_eq!(zero.object_counts("n", "x").unwrap().count(), 0);
    let bad = Params::from([("n", "three")]);
    assert!(matches!(
        bad.object_counts("n", "x"),
        Err(ParamError::Invalid { .. })
    ));
}

#[test]
fn copy_from_keys_keeps_listed_non_empty_values_in_listed_order() {
    let mut params = base();
    params.insert_with_origin("mem", "1024", at("a.cfg", 4));
    let copy = params.copy_from_keys(["mem", "image_chain", "nonexistent", "image_size"]);
    assert_eq!(pairs(&copy), [("mem", "1024"), ("image_size", "10G")]);
    assert_eq!(copy.origin("mem"), at("a.cfg", 4).as_ref());
    let owned_keys = vec!["images".to_owned()];
    assert_eq!(
        pairs(&params.copy_from_keys(&owned_keys)),
        [("images", "image1 stg")]
    );
}

// --- the map itself ---------------------------------------------------------------------------

#[test]
fn insertion_order_survives_overwrite_and_removal() {
    let mut params = Params::new();
    assert!(params.is_empty());
    assert_eq!(params.insert("a", "1"), None);
    params.insert("b", "2");
    params.insert("c", "3");
    params.insert("d", "4");
    assert_eq!(params.insert("b", "20"), Some("2".to_owned()));
    assert_eq!(
        pairs(&params),
        [("a", "1"), ("b", "20"), ("c", "3"), ("d", "4")]
    );

    assert_eq!(params.remove("b"), Some("20".to_owned()));
    assert_eq!(params.remove("b"), None);
    assert_eq!(pairs(&params), [("a", "1"), ("c", "3"), ("d", "4")]);
    // Lookups after the removal still find the shifted entries.
    assert_eq!(params.get("c"), Some("3"));
    assert_eq!(params.get("d"), Some("4"));
    params.insert("d", "40");
    params.insert("b", "2again");
    assert_eq!(
        pairs(&params),
        [("a", "1"), ("c", "3"), ("d", "40"), ("b", "2again")]
    );
    assert_eq!(params.len(), 4);
    assert!(params.contains_key("b"));
    assert_eq!(
        params.values().collect::<Vec<_>>(),
        ["1", "3", "40", "2again"]
    );
}

#[test]
fn an_origin_belongs_to_the_value_it_came_with() {
    let mut params = Params::new();
    params.insert_with_origin("mem", "1024", at("base.cfg", 1));
    assert_eq!(
        params.origin("mem").map(ToString::to_string).as_deref(),
        Some("base.cfg:1")
    );
    params.insert_with_origin("mem", "2048", at("guest.cfg", 40));
    assert_eq!(params.origin("mem"), at("guest.cfg", 40).as_ref());
    // A value set by code has no origin, and does not inherit the old one.
    params.insert("mem", "4096");
    assert_eq!(params.origin("mem"), None);
    assert_eq!(params.origin("missing"), None);
    let triples: Vec<_> = params.iter_with_origin().collect();
    assert_eq!(triples, [("mem", "4096", None)]);
}

#[test]
fn collect_extend_and_update() {
    let mut params: Params = vec![
        ("a".to_owned(), "1".to_owned()),
        ("b".to_owned(), "2".to_owned()),
    ]
    .into_iter()
    .collect();
    params.extend([("c", "3"), ("a", "10")]);
    assert_eq!(pairs(&params), [("a", "10"), ("b", "2"), ("c", "3")]);

    let mut other = Params::new();
    other.insert_with_origin("b", "20", at("o.cfg", 2));
    other.insert_with_origin("z", "26", at("o.cfg", 3));
    params.update(&other);
    assert_eq!(
        pairs(&params),
        [("a", "10"), ("b", "20"), ("c", "3"), ("z", "26")]
    );
    assert_eq!(params.origin("z"), at("o.cfg", 3).as_ref());

    let mut seen = Vec::new();
    for (key, value) in &params {
        seen.push(format!("{key}={value}"));
    }
    assert_eq!(seen, ["a=10", "b=20", "c=3", "z=26"]);
}

#[test]
fn equality_is_map_equality() {
    let ab = Params::from([("a", "1"), ("b", "2")]);
    let mut ba = Params::new();
    ba.insert_with_origin("b", "2", at("x.cfg", 1));
    ba.insert("a", "1");
    assert_eq!(ab, ba);
    ba.insert("a", "2");
    assert_ne!(ab, ba);
    assert_ne!(ab, Params::from([("a", "1")]));
}

#[test]
fn display_sorts_and_debug_shows_origins() {
    let mut params = Params::new();
    params.insert("vms", "vm1");
    params.insert_with_origin("mem", "1024", at("base.cfg", 7));
    params.insert("image_name", "");
    assert_eq!(params.to_string(), "image_name = \nmem = 1024\nvms = vm1");
    assert_eq!(
        format!("{params:?}"),
        r#"{"vms": "vm1", "mem": "1024" @ base.cfg:7, "image_name": ""}"#
    );
    assert_eq!(Params::new().to_string(), "");
}

// --- typed getters ----------------------------------------------------------------------------

#[test]
fn get_bool_is_exact_and_errors_on_anything_else() {
    let mut params = Params::new();
    params.insert_with_origin("kvm", "Yes", at("host.cfg", 5));
    params.insert("padded", " yes");
    params.insert("empty", "");
    let err = params.get_bool("kvm").unwrap_err();
    assert_eq!(err.origin(), at("host.cfg", 5).as_ref());
    assert_eq!(
        err.to_string(),
        "host.cfg:5: parameter 'kvm' = \"Yes\": expected a boolean: \
         accepted spellings are yes, on, true, no, off, false"
    );
    assert!(params.get_bool("padded").is_err());
    assert!(params.get_bool("empty").is_err());
    // A default does not hide a bad value.
    assert!(params.get_bool_or("kvm", true).is_err());
}

#[test]
fn integers_accept_python_literals() {
    // Expected values computed with CPython 3.11 `int(s)` and `int(s, 0)`; accepted is what
    // either accepts.
    let good: [(&str, i64); 16] = [
        ("7", 7),
        (" 7 ", 7),
        ("\u{a0}7\u{3000}", 7),
        ("+7", 7),
        ("-7", -7),
        ("0x1F", 31),
        ("0X1f", 31),
        ("0o17", 15),
        ("0b101", 5),
        ("0x_1f", 31),
        ("-0x10", -16),
        ("1_000", 1000),
        ("010", 10),
        ("00", 0),
        ("0_0", 0),
        ("-9223372036854775808", i64::MIN),
    ];
    for (literal, expected) in good {
        let params = Params::from([("n", literal)]);
        assert_eq!(params.get_i64("n"), Ok(Some(expected)), "{literal:?}");
    }
    let bad = [
        "",
        "  ",
        "1__000",
        "_1",
        "1_",
        "0x",
        "0x__1",
        "12a",
        "1.5",
        "0b2",
        "+ 5",
        "--5",
        "0_x1",
        "\u{1c}5",
        "9223372036854775808",
    ];
    for literal in bad {
        let params = Params::from([("n", literal)]);
        assert!(
            matches!(params.get_i64("n"), Err(ParamError::Invalid { .. })),
            "{literal:?} should be rejected"
        );
    }
}

#[test]
fn unsigned_integers_have_their_own_range() {
    let params = Params::from([
        ("max", "18446744073709551615"),
        ("over", "18446744073709551616"),
        ("neg", "-1"),
        ("negzero", "-0"),
        ("hex", "0xffff_ffff"),
    ]);
    assert_eq!(params.get_u64("max"), Ok(Some(u64::MAX)));
    assert_eq!(params.get_u64("negzero"), Ok(Some(0)));
    assert_eq!(params.get_u64("hex"), Ok(Some(0xffff_ffff)));
    assert!(params.get_i64("max").is_err());
    let err = params.get_u64("over").unwrap_err();
    assert!(err.to_string().contains("out of range for u64"), "{err}");
    let err = params.get_u64("neg").unwrap_err();
    assert_eq!(
        err.to_string(),
        "parameter 'neg' = \"-1\": expected an unsigned integer: negative"
    );
}

#[test]
fn floats_accept_python_literals() {
    let good: [(&str, f64); 9] = [
        ("1.5", 1.5),
        (" 1_0.5e1_0 ", 105_000_000_000.0),
        (".5", 0.5),
        ("5.", 5.0),
        ("1E5", 100_000.0),
        ("+.5e-3", 0.0005),
        ("inf", f64::INFINITY),
        ("-Infinity", f64::NEG_INFINITY),
        ("-7", -7.0),
    ];
    for (literal, expected) in good {
        let params = Params::from([("x", literal)]);
        assert_eq!(params.get_f64("x"), Ok(Some(expected)), "{literal:?}");
    }
    let params = Params::from([("x", "nan")]);
    assert!(params.get_f64("x").unwrap().unwrap().is_nan());
    for literal in ["1e", "1_.5", "1._5", "1e_5", "1__0", "0x10", "", "1,5"] {
        let params = Params::from([("x", literal)]);
        assert!(
            params.get_f64("x").is_err(),
            "{literal:?} should be rejected"
        );
    }
}

#[test]
fn get_number_uses_the_types_own_parser() {
    let mut params = Params::from([("port", "5900"), ("addr", "10.0.0.1")]);
    params.insert_with_origin("big", "70000", at("net.cfg", 2));
    assert_eq!(params.get_number::<u16>("port"), Ok(Some(5900)));
    assert_eq!(
        params.require_number::<std::net::Ipv4Addr>("addr"),
        Ok(std::net::Ipv4Addr::new(10, 0, 0, 1))
    );
    assert_eq!(params.get_number::<u16>("missing"), Ok(None));
    let err = params.get_number::<u16>("big").unwrap_err();
    assert_eq!(
        err.to_string(),
        "net.cfg:2: parameter 'big' = \"70000\": expected u16: \
         number too large to fit in target type"
    );
    assert!(matches!(
        params.require_number::<u16>("missing"),
        Err(ParamError::Missing { .. })
    ));
}

#[test]
fn get_list_corner_cases_follow_python_split() {
    let params = Params::from([
        ("commas", "a,,b,"),
        ("empty", ""),
        ("blank", "   "),
        ("multi", "a::b::c"),
        ("word", "abc"),
    ]);
    assert_eq!(params.get_list("commas", Some(",")), ["a", "", "b", ""]);
    assert!(params.get_list("empty", Some(",")).is_empty());
    assert!(params.get_list("blank", None).is_empty());
    // With a delimiter, blanks are an item, as in Python.
    assert_eq!(params.get_list("blank", Some(",")), ["   "]);
    assert_eq!(params.get_list("multi", Some("::")), ["a", "b", "c"]);
    // Python rejects an empty delimiter; here it does not split.
    assert_eq!(params.get_list("word", Some("")), ["abc"]);
}

#[test]
fn get_dict_strips_splits_at_first_equals_and_merges_duplicates() {
    let params = Params::from([("opts", " x = 1 , y=a=b,z= , x=2"), ("empty", "")]);
    let dict = params.get_dict("opts", Some(",")).unwrap();
    let dict: Vec<(&str, &str)> = dict.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    // `x` keeps its first position and takes its last value, like a Python dict.
    assert_eq!(dict, [("x", "2"), ("y", "a=b"), ("z", "")]);
    assert_eq!(params.get_dict("empty", None), Ok(Vec::new()));
    assert_eq!(params.get_dict("missing", None), Ok(Vec::new()));
}

#[test]
fn get_dict_entry_without_equals_names_key_value_entry_and_origin() {
    let mut params = Params::new();
    params.insert_with_origin("extra", "a=1 b = 2", at("guest.cfg", 31));
    let err = params.get_dict("extra", None).unwrap_err();
    match &err {
        ParamError::Invalid {
            key,
            value,
            origin,
            reason,
            ..
        } => {
            assert_eq!(key, "extra");
            assert_eq!(value, "a=1 b = 2");
            assert_eq!(origin, &at("guest.cfg", 31));
            assert_eq!(reason, "entry \"b\" has no '='");
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "guest.cfg:31: parameter 'extra' = \"a=1 b = 2\": expected name=value entries: \
         entry \"b\" has no '='"
    );
    // With a delimiter that keeps the spaces inside entries, the same text is fine.
    let mut params = Params::new();
    params.insert("extra", "a=1, b = 2");
    assert_eq!(
        params.get_dict("extra", Some(",")),
        Ok(vec![
            ("a".to_owned(), "1".to_owned()),
            ("b".to_owned(), "2".to_owned())
        ])
    );
}

#[test]
fn errors_report_the_origin_when_known_and_only_then() {
    let mut params = Params::new();
    params.insert_with_origin("mem", "lots", at("base.cfg", 12));
    params.insert("smp", "many");
    let err = params.get_u64("mem").unwrap_err();
    assert_eq!(err.key(), "mem");
    assert_eq!(err.origin(), at("base.cfg", 12).as_ref());
    assert_eq!(
        err.to_string(),
        "base.cfg:12: parameter 'mem' = \"lots\": expected an unsigned integer: \
         invalid digit 'l' for base 10"
    );
    let err = params.get_i64("smp").unwrap_err();
    assert_eq!(err.origin(), None);
    assert_eq!(
        err.to_string(),
        "parameter 'smp' = \"many\": expected an integer: invalid digit 'm' for base 10"
    );
}
