//! The SPICE display against capabilities the fixtures do not cover (a `-spice` with only
//! `password=`, a SPICE module that does not load) and against real run plans (the generated
//! ports and the host's address as decided, a plan that decided none).

mod common;

use std::path::Path;

use params::Params;
use qemu_cmd::{build, Capabilities, RunPlan, SpiceRun, VmSpec};

fn spec(pairs: &[(&str, &str)]) -> VmSpec {
    let mut p = Params::new();
    for (k, v) in [("vms", "vm1"), ("serials", ""), ("display", "spice")]
        .iter()
        .chain(pairs)
    {
        p.insert(*k, *v);
    }
    VmSpec::new(&p, "vm1").unwrap_or_else(|e| panic!("{e}"))
}

/// The `-spice` word and the words before it (`-object secret…`).
fn spice_args(spec: &VmSpec, plan: &RunPlan, caps: &Capabilities) -> Result<String, String> {
    let cmd = build(spec, plan, caps).map_err(|e| e.to_string())?;
    let text = cmd.render_stable();
    Ok(text
        .lines()
        .filter(|l| l.contains("-spice") || l.contains("-object secret"))
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("\n"))
}

#[test]
fn password_option_where_the_binary_has_no_secret_for_spice() {
    let mut caps = common::caps("qemu-7.2");
    caps.spice_options.remove("password-secret");
    let s = spec(&[("spice_port", "3001"), ("spice_password", "pw")]);
    let text = spice_args(&s, &RunPlan::dry(), &caps).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(text, "-spice port=3001,password=pw");
    // Neither form (QEMU 10's `-spice` without `password-secret`): named, not dropped.
    let mut caps = common::caps("qemu-10.0");
    caps.spice_options.remove("password-secret");
    let e = spice_args(&s, &RunPlan::dry(), &caps)
        .err()
        .unwrap_or_default();
    assert!(
        e.contains("spice_password") && e.contains("has no password= option"),
        "{e}"
    );
}

#[test]
fn a_spice_module_that_does_not_load_is_named() {
    let mut caps = common::caps("qemu-10.0");
    caps.spice_options.clear();
    let e = spice_args(&spec(&[("spice_port", "3001")]), &RunPlan::dry(), &caps)
        .err()
        .unwrap_or_default();
    assert!(
        e.contains("display = \"spice\"") && e.contains("SPICE module"),
        "{e}"
    );
}

#[test]
fn run_time_values_come_from_the_plan() {
    let caps = common::caps("qemu-10.0");
    let s = spec(&[
        ("spice_port", "generate"),
        ("listening_addr", "ipv4"),
        ("spice_ssl", "yes"),
        ("spice_tls_port", "generate"),
        ("spice_gen_x509", "yes"),
        ("spice_x509_dir", "yes"),
        ("spice_x509_key_password", "pw"),
        ("spice_x509_cacert_subj", "/CN=ca"),
        ("spice_x509_server_subj", "/CN="),
    ]);
    let mut plan = RunPlan::in_dir(&s, Path::new("/run/x"), None);
    // A real plan that decided nothing for them: a problem per key, never `port=` missing.
    let e = spice_args(&s, &plan, &caps).err().unwrap_or_default();
    for key in ["spice_port", "spice_tls_port", "listening_addr"] {
        assert!(e.contains(&format!("run plan: {key}")), "{key}: {e}");
    }
    if let Some(v) = plan.values.as_mut() {
        v.spice = SpiceRun {
            port: Some(3007),
            tls_port: Some(3207),
            addr: Some("192.0.2.5".into()),
        };
    }
    let cmd = build(&s, &plan, &caps).unwrap_or_else(|e| panic!("{e}"));
    let argv: Vec<String> = cmd
        .args()
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let at = argv.iter().position(|a| a == "-spice").unwrap_or(0);
    assert_eq!(
        argv.get(at + 1).map(String::as_str),
        Some(
            "port=3007,disable-ticketing=on,addr=192.0.2.5,tls-port=3207,\
             x509-dir=/run/x/spice-x509"
        )
    );
    // The stable rendering (the VM reuse fingerprint) shows the placeholders.
    assert!(
        cmd.render_stable()
            .contains("-spice port=@SPICE_PORT@,disable-ticketing=on,addr=@SPICE_ADDR@"),
        "{}",
        cmd.render_stable()
    );
}
