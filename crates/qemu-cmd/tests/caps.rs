//! Capabilities: the captured 7.2 and 10.0 outputs parse into the committed fixtures, every fixture
//! round-trips through JSON unchanged, and probing the installed binary goes through the cache.
//! The binary is the QEMU under test, [`default_binary`] (`KVMTEST_QEMU`, else
//! `qemu-system-x86_64`).

mod common;

use std::path::Path;

use qemu_cmd::probe::{default_binary, probe_cached, CacheKey};
use qemu_cmd::{Capabilities, HelpTexts, QemuVersion};

/// The raw outputs captured from a real binary (`raw/<fixture>/`), as [`HelpTexts`].
fn raw_texts(fixture: &str) -> HelpTexts {
    let raw = |name: &str| {
        let p = common::fixtures()
            .join("qemu-caps/raw")
            .join(fixture)
            .join(name);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    };
    HelpTexts {
        version: raw("version.txt"),
        help: raw("help.txt"),
        device_help: raw("device-help.txt"),
        machine_help: raw("machine-help.txt"),
        machine_properties_help: raw("machine-pc-help.txt"),
        cpu_help: raw("cpu-help.txt"),
        netdev_help: raw("netdev-help.txt"),
        accel_help: raw("accel-help.txt"),
        spice_help: raw("spice-help.txt"),
    }
}

/// A captured fixture is exactly what its raw outputs parse into.
fn parses_into_its_fixture(fixture: &str) -> Capabilities {
    let caps = common::caps(fixture);
    let parsed = Capabilities::from_help(&raw_texts(fixture), caps.note.clone());
    assert_eq!(parsed.ok().as_ref(), Some(&caps), "{fixture}");
    assert!(caps.has_device() && caps.has_netdev() && caps.has_blockdev());
    assert!(caps.has_device_type("virtio-net-pci") && caps.has_machine("pc"));
    assert!(caps.has_cpu_model("qemu64") && caps.has_cpu_model("max"));
    caps
}

#[test]
fn captured_help_parses_into_the_7_2_fixture() {
    let caps = parses_into_its_fixture("qemu-7.2");
    assert_eq!(caps.version, QemuVersion::new(7, 2, 22));
    assert!(caps.has_no_hpet() && caps.has_machine_hpet());
    // `-spice help`: both password forms; the SPICE chardevs in `-help`.
    assert!(caps.has_spice() && caps.has_spice_option("password"));
    assert!(caps.has_spice_option("password-secret") && caps.has_chardev_backend("spicevmc"));
}

/// 10.0 dropped options the builder knows (`-no-hpet`, `-no-acpi`, `-runas`, `-chroot`,
/// `-singlestep`) and printed `-cpu help` without the `x86` prefix.
#[test]
fn captured_help_parses_into_the_10_0_fixture() {
    let caps = parses_into_its_fixture("qemu-10.0");
    assert_eq!(caps.version, QemuVersion::new(10, 0, 2));
    for gone in ["no-hpet", "no-acpi", "runas", "chroot", "singlestep"] {
        assert!(!caps.has_option(gone), "{gone}");
    }
    assert!(caps.has_option("run-with") && caps.has_machine_hpet());
    assert!(caps.has_device_type("igb") && !caps.has_device_type("pvrdma"));
    // SPICE is a module here (`-spice help` loads it); `password=` is gone, only the secret.
    assert!(caps.has_spice() && caps.has_spice_option("password-secret"));
    assert!(!caps.has_spice_option("password"));
    assert!(
        caps.cpu_models.len() > 100,
        "{} CPU models",
        caps.cpu_models.len()
    );
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
    let new = common::caps("qemu-10.0");
    assert!(!old.has_device() && !old.has_netdev() && old.has_option("redir"));
    assert!(old.has_drive_option("boot") && !old.has_user_net_option("hostfwd"));
    assert!(new.version >= QemuVersion::new(10, 0, 0));
    assert!(!new.has_no_hpet() && new.has_machine_hpet() && new.has_blockdev());
}

#[test]
fn probing_the_installed_qemu_uses_the_cache() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let bin = &default_binary();
    let caps = probe_cached(bin, dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let path = CacheKey::of(bin).map_or_else(|_| bin.clone(), |k| k.path);
    eprintln!("QEMU under test: {} ({})", path.display(), caps.version);
    assert!(
        caps.version >= QemuVersion::new(7, 0, 0),
        "{}",
        caps.version
    );
    assert!(caps.has_device() && caps.has_device_type("virtio-blk-pci"));
    // The note names the binary probed: found on PATH (absolute) for a bare name.
    let probed_from = if bin.components().count() == 1 {
        "probed from /".to_owned()
    } else {
        format!("probed from {}", bin.display())
    };
    assert!(caps.note.starts_with(&probed_from), "{}", caps.note);
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
