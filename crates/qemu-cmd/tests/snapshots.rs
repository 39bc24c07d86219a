//! Snapshot tests, one per fixture config × capabilities fixture (`disks@qemu-7.2`…): the stable
//! rendering of every variant's command line. Plus `incoming@…`: a migration destination in
//! each `-incoming` form, which the run plan (not the cfg) asks for.
//!
//! Review changes with `cargo insta review` (or `cargo insta test --review`); in CI
//! (`CI=true`) a missing or different snapshot fails the test.

mod common;

use std::process::ExitCode;

use libtest_mimic::{Arguments, Failed, Trial};
use qemu_cmd::types::IncomingMode;
use qemu_cmd::{build, render_matrix, Capabilities, Incoming, RunPlan, VmSpec};

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let cfgs = common::files(&common::fixtures().join("qemu-cmd"), "cfg");
    let caps = common::all_caps();
    let mut trials = vec![Trial::test("fixtures_are_present", {
        let (n_cfg, n_caps) = (cfgs.len(), caps.len());
        move || {
            if n_cfg < 9 || n_caps < 3 {
                return Err(format!("{n_cfg} fixture configs, {n_caps} capabilities").into());
            }
            Ok(())
        }
    })];
    for cfg in &cfgs {
        for (caps_name, c) in &caps {
            let (cfg, c) = (cfg.clone(), c.clone());
            let name = format!("{}@{caps_name}", common::stem(&cfg));
            trials.push(Trial::test(name.clone(), move || {
                matrix_snapshot(&cfg, &c, &name)
            }));
        }
    }
    for (caps_name, c) in &caps {
        let c = c.clone();
        let name = format!("incoming@{caps_name}");
        trials.push(Trial::test(name.clone(), move || {
            incoming_snapshot(&c, &name)
        }));
    }
    libtest_mimic::run(&args, trials).exit_code()
}

/// Runs `f`, turning a failed snapshot assertion (a panic) into this trial's failure.
fn catching(f: impl FnOnce() + std::panic::UnwindSafe) -> Result<(), Failed> {
    std::panic::catch_unwind(f).map_err(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_string()))
            .unwrap_or_else(|| "snapshot assertion failed".into())
            .into()
    })
}

fn settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_snapshot_path("snapshots");
    s.set_prepend_module_to_snapshot(true);
    s
}

fn matrix_snapshot(cfg: &std::path::Path, caps: &Capabilities, name: &str) -> Result<(), Failed> {
    let config = common::config(cfg);
    let mut out = Vec::new();
    let sum = render_matrix(&config, caps, 1, &mut out).map_err(|e| e.to_string())?;
    // several threads give the same text, in the same order
    let mut par = Vec::new();
    let sum2 = render_matrix(&config, caps, 3, &mut par).map_err(|e| e.to_string())?;
    if sum != sum2 {
        return Err(format!("summaries differ: 1 thread {sum:?}, 3 threads {sum2:?}").into());
    }
    if out != par {
        return Err("3 threads rendered differently".into());
    }
    let text = String::from_utf8_lossy(&out).into_owned();
    let header = format!(
        "config: {}\ncaps: {} (QEMU {})\nvariants: {}, ok: {}, errors: {}\n\n",
        cfg.display(),
        name.rsplit_once('@').map_or("", |(_, c)| c),
        caps.version,
        sum.variants,
        sum.ok,
        sum.errors
    );
    let snapshot = format!("{header}{text}");
    let name = name.to_string();
    catching(move || {
        settings().bind(|| insta::assert_snapshot!(name, snapshot));
    })
}

/// The destination VM of `migration.cfg`-like tests, in each `-incoming` form.
fn incoming_snapshot(caps: &Capabilities, name: &str) -> Result<(), Failed> {
    let config = common::config_str(
        "vms = vm1\nmem = 1024\nserials =\nimages = image1\nimage_name = images/f40\n\
         drive_format = virtio\n",
    );
    let variants = config.collect().map_err(|e| e.to_string())?;
    let spec = VmSpec::new(&variants[0].params, "vm1").map_err(|e| e.to_string())?;
    let mut text = format!("caps: QEMU {}\n\n", caps.version);
    let forms = [
        ("tcp", IncomingMode::Tcp, None),
        ("unix", IncomingMode::Unix, None),
        ("exec", IncomingMode::Exec, None),
        (
            "exec_custom",
            IncomingMode::Exec,
            Some("gzip -c -d /var/tmp/state.gz"),
        ),
        ("defer", IncomingMode::Defer, None),
    ];
    for (label, mode, exec_cmd) in forms {
        let plan = RunPlan {
            incoming: Some(Incoming {
                mode,
                exec_cmd: exec_cmd.map(str::to_string),
            }),
            ..RunPlan::dry()
        };
        text.push_str(&format!("# {label}\n"));
        match build(&spec, &plan, caps) {
            Ok(cmd) => text.push_str(&cmd.render_stable()),
            Err(e) => {
                for line in e.to_string().lines() {
                    text.push_str(&format!("# error: {}\n", line.trim_start()));
                }
            }
        }
        text.push('\n');
    }
    let name = name.to_string();
    catching(move || {
        settings().bind(|| insta::assert_snapshot!(name, text));
    })
}
