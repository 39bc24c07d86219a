//! What the run plan decides shows in the build: a real run's plan without the host devices
//! a variant assigns is a problem, never a VM quietly started without them.

use std::path::PathBuf;

use params::Params;
use qemu_cmd::{build, Capabilities, RunPlan, RunValues, VmSpec, VncRange, VsockRun};

fn caps() -> Capabilities {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/qemu-caps");
    Capabilities::load(dir.join("qemu-7.2.json")).unwrap_or_else(|e| panic!("{e}"))
}

fn values(pci_hosts: Vec<&str>) -> RunPlan {
    RunPlan {
        accel: None,
        incoming: None,
        values: Some(RunValues {
            root_dir: "/r".into(),
            image_dir: "/r".into(),
            run_dir: "/run".into(),
            nics: Vec::new(),
            uuid: "6f1e8c2a-0000-4000-8000-000000000001"
                .parse()
                .unwrap_or_else(|e| panic!("{e:?}")),
            vnc: VncRange::DEFAULT,
            redir_ports: Vec::new(),
            migration_port: 0,
            spice: qemu_cmd::SpiceRun::default(),
            pci_hosts: pci_hosts
                .into_iter()
                .map(|h| h.parse().unwrap_or_else(|e| panic!("{e:?}")))
                .collect(),
            vsocks: Vec::new(),
        }),
    }
}

fn spec() -> VmSpec {
    let mut p = Params::new();
    for (k, v) in [
        ("vms", "vm1"),
        ("pci_assignable", "vf"),
        ("devices_requested", "2"),
    ] {
        p.insert(k, v);
    }
    VmSpec::new(&p, "vm1").unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn missing_host_devices_are_a_problem() {
    let err = build(&spec(), &values(vec!["0000:03:10.0"]), &caps())
        .err()
        .unwrap_or_else(|| panic!("built without the second device"));
    let text = err.to_string();
    assert!(text.contains("pci_assignable"), "{text}");
    assert!(text.contains("2 host device(s) requested"), "{text}");
}

#[test]
fn assigned_host_devices_are_on_the_command_line() {
    let cmd = build(
        &spec(),
        &values(vec!["0000:03:10.0", "0000:03:10.1"]),
        &caps(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let text = cmd.render();
    assert!(text.contains("vfio-pci,host=0000:03:10.0"), "{text}");
    assert!(text.contains("vfio-pci,host=0000:03:10.1"), "{text}");
}

/// `vsocks`: the plan's CIDs and held `/dev/vhost-vsock` fds are on the command line, and the
/// stable rendering is the dry run's; a plan that decided another number of vsocks is a problem.
#[test]
fn vsock_cids_and_fds_come_from_the_plan() {
    let mut p = Params::new();
    for (k, v) in [("vms", "vm1"), ("vsocks", "v0 v1"), ("machine_type", "pc")] {
        p.insert(k, v);
    }
    let spec = VmSpec::new(&p, "vm1").unwrap_or_else(|e| panic!("{e}"));
    let mut plan = values(Vec::new());
    if let Some(v) = plan.values.as_mut() {
        v.vsocks = vec![
            VsockRun {
                cid: 3,
                vhostfd: Some(41),
            },
            VsockRun {
                cid: 7,
                vhostfd: Some(42),
            },
        ];
    }
    let cmd = build(&spec, &plan, &caps()).unwrap_or_else(|e| panic!("{e}"));
    let text = cmd.render();
    assert!(
        text.contains("vhost-vsock-pci,id=v0,guest-cid=3,bus=pci.0,addr=0x2,vhostfd=41"),
        "{text}"
    );
    assert!(
        text.contains("id=v1,guest-cid=7,bus=pci.0,addr=0x3,vhostfd=42"),
        "{text}"
    );
    let dry = build(&spec, &plan.placeholders(), &caps()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cmd.render_stable(), dry.render_stable());
    if let Some(v) = plan.values.as_mut() {
        v.vsocks.pop();
    }
    let err = build(&spec, &plan, &caps())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("the run plan decides 1 vsock(s), the spec has 2"),
        "{err}"
    );
}
