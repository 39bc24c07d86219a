//! Snapshot tests: every fixture config × every capabilities fixture → the stable rendering.
//!
//! Review changes with `cargo insta review` (or `cargo insta test --review`); in CI
//! (`CI=true`) a missing or different snapshot fails the test.

mod common;

use qemu_cmd::render_matrix;

#[test]
fn fixture_configs_by_qemu_generation() {
    let cfgs = common::files(&common::fixtures().join("qemu-cmd"), "cfg");
    let caps = common::all_caps();
    assert!(cfgs.len() >= 10, "fixture configs missing");
    assert!(caps.len() >= 3, "capability fixtures missing");
    for cfg in &cfgs {
        let config = common::config(cfg);
        for (caps_name, caps) in &caps {
            let mut out = Vec::new();
            let sum = render_matrix(&config, caps, 1, &mut out).unwrap_or_else(|e| panic!("{e}"));
            // several threads give the same text, in the same order
            let mut par = Vec::new();
            let sum2 = render_matrix(&config, caps, 3, &mut par).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                sum,
                sum2,
                "{} with {caps_name}: summaries differ",
                cfg.display()
            );
            assert!(
                out == par,
                "{} with {caps_name}: 3 threads rendered differently",
                cfg.display()
            );
            let text = String::from_utf8_lossy(&out);
            let header = format!(
                "config: {}\ncaps: {} (QEMU {})\nvariants: {}, ok: {}, errors: {}\n\n",
                cfg.display(),
                caps_name,
                caps.version,
                sum.variants,
                sum.ok,
                sum.errors
            );
            insta::assert_snapshot!(
                format!("{}@{}", common::stem(cfg), caps_name),
                format!("{header}{text}")
            );
        }
    }
}
