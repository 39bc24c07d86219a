//! Capabilities: the captured 7.2 outputs parse into the committed fixture, every fixture
//! round-trips through JSON unchanged, and probing the installed binary goes through the cache.

mod common;

use std::path::Path;

use qemu_cmd::probe::{probe_cached, CacheKey};
use qemu_cmd::{Capabilities, HelpTexts, QemuVersion};

fn raw(name: &str) -> String {
    let p = common::fixtures().join("qemu-caps/raw/qemu-7.2").join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn captured_help_parses_into_the_7_2_fixture() {
    let texts = HelpTexts {
        version: raw("version.txt"),
        help: raw("help.txt"),
        device_help: raw("device-help.txt"),
        machine_help: raw("machine-help.txt"),
        machine_properties_help: raw("machine-pc-help.txt"),
        cpu_help: raw("cpu-help.txt"),
        netdev_help: raw("netdev-help.txt"),
        accel_help: raw("accel-help.txt"),
    };
    let fixture = common::caps("qemu-7.2");
    let parsed = Capabilities::from_help(&texts, fixture.note.clone());
    assert_eq!(parsed.ok().as_ref(), Some(&fixture));
    assert!(fixture.has_device() && fixture.has_netdev() && fixture.has_blockdev());
    assert!(fixture.has_no_hpet() && fixture.has_machine_hpet());
    assert!(fixture.has_device_type("virtio-net-pci") && fixture.has_machine("pc"));
}

#[test]
fn fixtures_round_trip_and_differ_where_it_matters() {
    for (name, caps) in common::all_caps() {
        let path = common::fixtures().join(format!("qemu-caps/{name}.json"));
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(caps.to_json(), text, "{name} is not in canonical form");
        assert!(!caps.note.is_empty(), "{name} has no note on its origin");
    }
    let old = common::caps("qemu-0.10-pre-device");
    let new = common::caps("qemu-9.2");
    assert!(!old.has_device() && !old.has_netdev() && old.has_option("redir"));
    assert!(old.has_drive_option("boot") && !old.has_user_net_option("hostfwd"));
    assert!(new.version >= QemuVersion::new(9, 0, 0));
    assert!(!new.has_no_hpet() && new.has_machine_hpet() && new.has_blockdev());
}

#[test]
fn probing_the_installed_qemu_uses_the_cache() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let bin = Path::new("qemu-system-x86_64");
    let caps = probe_cached(bin, dir.path()).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        caps.version >= QemuVersion::new(7, 0, 0),
        "{}",
        caps.version
    );
    assert!(caps.has_device() && caps.has_device_type("virtio-blk-pci"));
    assert!(caps.note.starts_with("probed from /"));
    let entries: Vec<_> = std::fs::read_dir(dir.path())
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    assert_eq!(
        entries.len(),
        1,
        "one cache entry, no temp files: {entries:?}"
    );
    // A cache hit returns the stored value: prove it by editing the entry.
    let text = std::fs::read_to_string(&entries[0]).unwrap_or_default();
    std::fs::write(&entries[0], text.replace("probed from", "cached from"))
        .unwrap_or_else(|e| panic!("{e}"));
    let again = probe_cached(bin, dir.path()).unwrap_or_else(|e| panic!("{e}"));
    assert!(again.note.starts_with("cached from"));
    // A corrupt entry is probed again and rewritten.
    std::fs::write(&entries[0], "{").unwrap_or_else(|e| panic!("{e}"));
    let third = probe_cached(bin, dir.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(third, caps);
    assert!(CacheKey::of(bin).is_ok());
    assert!(CacheKey::of(Path::new("/nonexistent/qemu")).is_err());
}
