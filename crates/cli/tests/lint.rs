//! `kvmtest lint` end to end: the binary, its output and its exit status.
#![allow(clippy::disallowed_methods)] // tests and examples start their own peers

use std::process::Command;

fn lint(cfg: &str, extra: &[&str]) -> (i32, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("t.cfg");
    std::fs::write(&path, cfg).expect("write cfg");
    let out = Command::new(env!("CARGO_BIN_EXE_kvmtest"))
        .arg("lint")
        .arg(&path)
        .args(extra)
        .current_dir(dir.path())
        .output()
        .expect("run kvmtest");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn a_typo_is_reported_with_its_line_and_exit_1() {
    let (code, out) = lint("type = boot\nvms = vm1\nmem = 512\nboot_comand = x\n", &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("boot_comand  (1 variant; set at"), "{out}");
    assert!(
        out.contains("t.cfg:4)  did you mean `boot_command`?"),
        "{out}"
    );
    assert!(
        out.ends_with("1 variant: 1 key that kvmtest does not read\n"),
        "{out}"
    );
}

#[test]
fn a_clean_config_exits_0_and_json_is_one_document() {
    let (code, out) = lint("type = boot\nvms = vm1\nmem = 512\n", &["--json"]);
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["variants"], 1);
    assert_eq!(v["unread"].as_array().map(Vec::len), Some(0));
}

#[test]
fn filters_select_the_variants_linted() {
    let cfg = "vms = vm1\nvariants:\n    - a:\n        type = boot\n    - b:\n        type = noop\n        bogus_key = 1\n";
    let (code, out) = lint(cfg, &["--only", "a"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = lint(cfg, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("bogus_key"), "{out}");
}
