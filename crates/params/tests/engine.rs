//! Engine behaviour beyond the reference dumps: origins of values, several errors reported
//! together, early stop, and `explain`.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use params::{Config, Parser, ParserOptions};

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/example/tests.cfg")
}

fn load(text: &str) -> Config {
    let mut p = Parser::new(ParserOptions::default());
    p.parse_str(text)
        .unwrap_or_else(|e| panic!("{}", e.render()));
    p.finish()
}

#[test]
fn every_value_remembers_the_statement_that_set_it() {
    let cfg =
        Config::from_file(example(), ParserOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let mut seen = 0;
    cfg.for_each(|v| {
        if v.name().contains("smp2.qcow2.e1000") && v.name().contains("(subtest=boot)") {
            let p = v.params();
            assert_eq!(p.get("mem"), Some("512"));
            let o = p.origin("mem").expect("mem has an origin");
            assert!(o.file.ends_with("guest-hw.cfg"), "{o}");
            assert_eq!(o.line, 21);
            let o = p.origin("nic_model").expect("nic_model has an origin");
            assert!(o.file.ends_with("guest-hw.cfg") && o.line == 6, "{o}");
            // a value from a plain run of assignments (batched) keeps its own line
            let o = p.origin("login_timeout").expect("origin");
            assert!(o.file.ends_with("base.cfg") && o.line == 13, "{o}");
            seen += 1;
        }
        Ok(ControlFlow::Continue(()))
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(seen, 1);
}

#[test]
fn independent_errors_are_reported_together() {
    let mut p = Parser::new(ParserOptions::default());
    let e = p
        .parse_str(
            "a = 1\nfoo bar\nb = 2\nonly x...y\nvariants:\n  - v:\n      bad $ line\nc = 3\n",
        )
        .expect_err("three mistakes");
    assert_eq!(e.location.as_ref().and_then(|l| l.line), Some(2));
    let lines: Vec<Option<u32>> = e
        .related
        .iter()
        .map(|r| r.location.as_ref().and_then(|l| l.line))
        .collect();
    assert_eq!(lines, [Some(4), Some(7)]);
    let text = e.render();
    assert!(text.contains("3 errors"), "{text}");
    assert!(text.contains("^"), "{text}");
}

#[test]
fn enumeration_stops_when_asked_and_is_lazy() {
    let cfg = load("variants:\n  - a:\n  - b:\nvariants:\n  - x:\n  - y:\n");
    let mut names = Vec::new();
    cfg.for_each(|v| {
        names.push(v.name());
        Ok(if names.len() == 3 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        })
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(names, ["x.a", "x.b", "y.a"]);
    assert_eq!(cfg.count().unwrap_or_else(|e| panic!("{e}")), 4);
}

#[test]
fn explain_gives_each_key_its_history() {
    let mut p = Parser::new(ParserOptions::default());
    p.parse_file(example()).unwrap_or_else(|e| panic!("{e}"));
    p.only_filter("nic_hotplug..e1000..smp2..qcow2")
        .unwrap_or_else(|e| panic!("{e}"));
    let cfg = p.finish();
    let ex = params::explain(&cfg, &["mem".to_string(), "pci_model".to_string()], 5)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ex.len(), 1);
    let ex = &ex[0];
    assert!(ex.entries.iter().any(|e| e.label == "smp2"));
    assert!(ex
        .decisions
        .iter()
        .any(|d| d.text.starts_with("e1000:") && d.applied));
    assert!(ex
        .decisions
        .iter()
        .any(|d| d.text.starts_with("!e1000:") && !d.applied));
    let (k, steps) = &ex.keys[0];
    assert_eq!(k, "mem");
    let values: Vec<&str> = steps.iter().filter_map(|s| s.value.as_deref()).collect();
    assert_eq!(values, ["256", "512"]);
    assert_eq!(steps[1].statement, "mem = 512");
    let (_, pci) = &ex.keys[1];
    assert_eq!(pci.last().and_then(|s| s.value.as_deref()), Some("e1000"));
}

#[test]
fn postfix_caps_plain_keys() {
    let cfg = load("mem = 1024\nmem_max = 512\nsmp_min = 2\nvariants:\n  - a:\n");
    let all = cfg.collect().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(all[0].params.get("mem"), Some("512"));
    assert_eq!(all[0].params.get("smp"), Some("2"));
}

#[test]
fn suffixed_keys_and_postfix_come_out_flattened() {
    let cfg = load("mem = 1024\nmem_max = 512\nvariants:\n  - a:\n    x = 1\n    suffix _a\n");
    let all = cfg.collect().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(all.len(), 1);
    let p = &all[0].params;
    // `suffix` turned every key into a suffixed key, which the postfix pass skips (as in the
    // reference): the cap does not apply, and flattening restores the plain names.
    assert_eq!(p.get("mem"), Some("1024"));
    assert_eq!(p.get("mem_max"), Some("512"));
    assert_eq!(p.get("x"), Some("1"));
}

fn sequential_json(cfg: &Config) -> (String, Option<String>) {
    let mut out = Vec::new();
    let r = cfg.for_each(|v| {
        v.write_json(&mut out);
        Ok(ControlFlow::Continue(()))
    });
    (
        String::from_utf8_lossy(&out).into_owned(),
        r.err().map(|e| e.to_string()),
    )
}

fn parallel_json(cfg: &Config, workers: usize) -> (String, Option<String>) {
    let mut out = Vec::new();
    let r = cfg.write_json_parallel(workers, &mut |b| {
        out.extend_from_slice(b);
        Ok(())
    });
    (
        String::from_utf8_lossy(&out).into_owned(),
        r.err().map(|e| e.to_string()),
    )
}

#[test]
fn parallel_output_is_identical_to_sequential() {
    let stress =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/params/ok/stress_matrix.cfg");
    for path in [example(), stress] {
        let cfg =
            Config::from_file(&path, ParserOptions::default()).unwrap_or_else(|e| panic!("{e}"));
        let seq = sequential_json(&cfg);
        assert!(seq.0.lines().count() > 10);
        for workers in [2, 3] {
            assert_eq!(
                parallel_json(&cfg, workers),
                seq,
                "{} with {workers} workers",
                path.display()
            );
        }
        assert_eq!(
            cfg.count_parallel(2).unwrap_or(0),
            seq.0.lines().count() as u64
        );
    }
    // an error in the middle: the same variants come out before it, and the same error
    let mut text = String::from("variants:\n");
    for i in 0..400 {
        text.push_str(&format!("  - v{i}:\n"));
        if i == 333 {
            text.push_str("    x = abc\n    x_max = 5\n");
        }
    }
    let cfg = load(&text);
    let seq = sequential_json(&cfg);
    assert!(seq.1.is_some());
    assert_eq!(seq.0.lines().count(), 333);
    assert_eq!(parallel_json(&cfg, 2), seq);
    for workers in [1, 3] {
        assert_eq!(parallel_json(&cfg, workers), seq, "{workers} workers");
    }
}

#[test]
fn a_walk_error_in_parallel_comes_after_the_same_variants() {
    // the filter with a broken word is only evaluated once the walk reaches `b`'s block, after
    // every variant of `a`: the error comes from the walk, not from building a dict
    let mut text = String::from("variants:\n");
    for i in 0..300 {
        text.push_str(&format!("  - v{i}:\n"));
    }
    text.push_str("variants:\n  - a:\n  - b:\n    only x .y\n");
    let cfg = load(&text);
    let seq = sequential_json(&cfg);
    assert!(seq.1.is_some(), "the broken filter is reported");
    assert_eq!(seq.0.lines().count(), 300);
    for workers in [2, 3] {
        assert_eq!(parallel_json(&cfg, workers), seq, "{workers} workers");
    }
}

fn mapped_names(cfg: &Config, workers: usize, stop_after: usize) -> (Vec<String>, u64) {
    let mut names = Vec::new();
    let n = cfg
        .map_parallel(workers, &|v| v.name(), &mut |name| {
            names.push(name);
            Ok(if names.len() == stop_after {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            })
        })
        .unwrap_or_else(|e| panic!("{e}"));
    (names, n)
}

#[test]
fn map_parallel_keeps_order_and_stops_when_asked() {
    let mut text = String::from("variants:\n");
    for i in 0..20 {
        text.push_str(&format!("  - a{i}:\n"));
    }
    text.push_str("variants:\n");
    for i in 0..50 {
        text.push_str(&format!("  - b{i}:\n    k = {i}\n"));
    }
    let cfg = load(&text);
    let mut seq = Vec::new();
    cfg.for_each(|v| {
        seq.push(v.name());
        Ok(ControlFlow::Continue(()))
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(seq.len(), 1000);
    for workers in [1, 2, 3] {
        assert_eq!(mapped_names(&cfg, workers, 0), (seq.clone(), 1000));
        // a stop after several chunks: exactly the variants before it came out
        assert_eq!(
            mapped_names(&cfg, workers, 300),
            (seq[..300].to_vec(), 300),
            "{workers} workers"
        );
    }
}

#[test]
fn borrowed_accessors_agree_with_entries() {
    let cfg =
        load("a = 1\nb = x\nvariants:\n  - v:\n    c = 3\n    suffix _s\n  - w:\n    a += 2\n");
    cfg.for_each(|v| {
        let entries = v.entries();
        let mut seen = Vec::new();
        v.for_each_entry(|k, val| seen.push((k.to_string(), val.clone())));
        assert_eq!(
            seen,
            entries
                .iter()
                .map(|e| (e.0.to_string(), e.1.clone()))
                .collect::<Vec<_>>()
        );
        for (k, val, _) in &entries {
            assert_eq!(v.get(k).as_ref(), Some(val), "{k}");
        }
        assert_eq!(v.get("nope"), None);
        Ok(ControlFlow::Continue(()))
    })
    .unwrap_or_else(|e| panic!("{e}"));
}
