//! The QEMU under test accepts generated command lines: [`default_binary`], that is
//! `$KVMTEST_QEMU`, else the installed `qemu-system-x86_64`.
//!
//! For each NIC model, disk interface and CD-ROM bus the fixtures use and this QEMU has, a VM
//! is built from params (raw image files in a temp dir, user networking, a QMP socket, `-S`,
//! TCG), started, asked `query-status` over QMP, and told to `quit`
//! ([`qemu_cmd::accepts::start_and_quit`], shared with `cargo xtask qemu-accepts`, which does the
//! same for avocado-vt's variants). The process is killed and reaped on every path and the temp
//! dir is removed on drop, so no process or file outlives the test. Without the binary the test
//! fails: it never skips.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use params::Params;
use qemu_cmd::accepts::start_and_quit;
use qemu_cmd::probe::{default_binary, probe_cached, CacheKey};
use qemu_cmd::{build, main_vm, Capabilities, RunPlan, VmSpec};

/// One VM configuration to try.
struct Case {
    label: String,
    machine: &'static str,
    nic_model: &'static str,
    disk: &'static str,
    cdrom: &'static str,
    /// More params (the platform cases).
    extra: &'static [(&'static str, &'static str)],
}

/// avocado-vt's base.cfg platform and each device and option of `platform.cfg` this QEMU
/// has, on pc.
const PLATFORM_PC: &[(&str, &str)] = &[
    ("qemu_stop", "on"),
    ("defaults", "no"),
    ("catch_monitor", "catch_monitor"),
    ("monitor_type_catch_monitor", "qmp"),
    ("enable_pvpanic", "yes"),
    ("vm_arch_name", "x86_64"),
    ("ioport_pvpanic", "0x505"),
    ("vmcoreinfo", "yes"),
    ("enable_debugcon", "yes"),
    ("anaconda_log", "yes"),
    ("isa_debugexit", "yes"),
    ("enable_watchdog", "yes"),
    ("watchdog_device_type", "i6300esb"),
    ("watchdog_action", "pause"),
    ("rtc_base", "utc"),
    ("rtc_clock", "host"),
    ("rtc_drift", "slew"),
    ("boot_menu", "off"),
    ("boot_order", "cdn"),
    ("boot_once", "c"),
    ("boot_strict", "off"),
    ("boot_reboot_timeout", "1000"),
    ("msg_timestamp", "on"),
    ("realtime_mlock", "off"),
    ("keyboard_layout", "en-us"),
];

/// The q35 forms: the ICH9 TCO watchdog, pvpanic events, the sandbox, `-overcommit cpu-pm`.
const PLATFORM_Q35: &[(&str, &str)] = &[
    ("qemu_stop", "on"),
    ("enable_pvpanic", "yes"),
    ("vm_arch_name", "x86_64"),
    ("ioport_pvpanic", "0x505"),
    ("events_pvpanic", "1"),
    ("enable_watchdog", "yes"),
    ("watchdog_device_type", "itco"),
    ("qemu_sandbox", "on"),
    ("qemu_sandbox_spawn", "allow"),
    ("cpu-pm", "off"),
    ("boot_splash_time", "0"),
];

fn params(dir: &Path, qemu: &Path, c: &Case) -> Params {
    let mut p = Params::new();
    p.insert("qemu_binary", qemu.to_string_lossy().into_owned());
    for (k, v) in [
        ("vms", "vm1"),
        ("machine_type", c.machine),
        ("vm_accelerator", "tcg"),
        ("nodefaults", "yes"),
        ("display", "none"),
        ("mem", "128"),
        ("smp", "1"),
        ("monitors", "qmp1 hmp1"),
        ("monitor_type_qmp1", "qmp"),
        ("serials", "serial0"),
        ("images", "image1 image2"),
        ("image_name", "disk1"),
        ("image_name_image2", "disk2"),
        ("image_format", "raw"),
        ("drive_format", c.disk),
        ("drive_cache_image1", "writeback"),
        ("image_snapshot_image2", "yes"),
        ("drive_serial_image1", "serial,with,commas"),
        ("nics", "nic1 nic2"),
        ("nic_model", c.nic_model),
        ("nic_mode", "user"),
        ("redirs", "ssh"),
        ("guest_port_ssh", "22"),
        ("cdroms", "cd1"),
        ("cdrom_cd1", "cd.iso"),
        ("cd_format", c.cdrom),
        ("uuid", "random"),
        ("testdev", "yes"),
        ("disable_hpet", "yes"),
    ] {
        p.insert(k, v);
    }
    for (k, v) in c.extra {
        p.insert(*k, *v);
    }
    // A literal comma in a path must survive QEMU's option parsing.
    p.insert("image_name_image1", "disk,1");
    let _ = dir;
    p
}

fn run_case(qemu: &Path, caps: &Capabilities, c: &Case) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    for f in ["disk,1.raw", "disk2.raw", "cd.iso"] {
        let file = std::fs::File::create(dir.path().join(f)).map_err(|e| e.to_string())?;
        file.set_len(1 << 20).map_err(|e| e.to_string())?;
    }
    let p = params(dir.path(), qemu, c);
    let spec = VmSpec::new(&p, main_vm(&p)).map_err(|e| e.to_string())?;
    let plan = RunPlan::in_dir(&spec, dir.path(), None);
    let mut cmd = build(&spec, &plan, caps).map_err(|e| e.to_string())?;
    cmd.set_program(qemu);
    if !spec.platform.stop {
        cmd.push_args(["-S"]);
    }
    let shown = cmd.render();
    let sock = dir.path().join(qemu_cmd::names::monitor_socket("qmp1"));
    let status = start_and_quit(&cmd, &sock, Duration::from_secs(20))
        .map_err(|e| format!("{e}\nfor\n{shown}"))?;
    if !status.contains("prelaunch") {
        return Err(format!("not paused by -S: {status}"));
    }
    Ok(())
}

#[test]
fn installed_qemu_accepts_generated_argv() {
    let cache = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let qemu: PathBuf = default_binary();
    let caps = probe_cached(&qemu, cache.path()).unwrap_or_else(|e| panic!("{e}"));
    let path = CacheKey::of(&qemu).map_or_else(|_| qemu.clone(), |k| k.path);
    eprintln!("QEMU under test: {} ({})", path.display(), caps.version);
    // Each model the fixtures use, where this QEMU has it.
    let nic_models = ["rtl8139", "e1000", "virtio"];
    let disks = [
        ("ide", "ide-hd"),
        ("virtio", "virtio-blk-pci"),
        ("scsi-hd", "scsi-hd"),
    ];
    let cdroms = [("ide", "ide-cd"), ("scsi-cd", "scsi-cd")];
    let mut cases = Vec::new();
    for (i, nic) in nic_models.iter().enumerate() {
        let model = if *nic == "virtio" {
            "virtio-net-pci"
        } else {
            nic
        };
        if !caps.has_device_type(model) {
            continue;
        }
        // Pair every NIC with a different disk and cdrom so each model is started once.
        let (disk, _) = disks[i % disks.len()];
        let (cdrom, _) = cdroms[i % cdroms.len()];
        cases.push(Case {
            label: format!("nic {nic}, disk {disk}, cdrom {cdrom}"),
            machine: "pc",
            nic_model: nic,
            disk,
            cdrom,
            extra: &[],
        });
    }
    // SATA: the controller the builder adds on pc, the ICH9's built-in one on q35 (shared with
    // `ide` devices there).
    if caps.has_device_type("ahci") {
        for (machine, disk) in [("pc", "ahci"), ("q35", "ahci"), ("q35", "ide")] {
            cases.push(Case {
                label: format!("{machine}: disk {disk}, cdrom ahci"),
                machine,
                nic_model: "e1000",
                disk,
                cdrom: "ahci",
                extra: &[],
            });
        }
    }
    for (disk, dev) in disks {
        for (cdrom, cdev) in cdroms {
            if caps.has_device_type(dev) && caps.has_device_type(cdev) {
                cases.push(Case {
                    label: format!("disk {disk}, cdrom {cdrom}"),
                    machine: "pc",
                    nic_model: "e1000",
                    disk,
                    cdrom,
                    extra: &[],
                });
            }
        }
    }
    // avocado-vt's platform devices and global options, where this QEMU has them all.
    let platform_devices = [
        "pvpanic",
        "vmcoreinfo",
        "isa-debugcon",
        "isa-debug-exit",
        "i6300esb",
        "virtio-serial-pci",
        "virtserialport",
    ];
    let platform_options = ["sandbox", "rtc", "boot", "msg", "overcommit", "k"];
    if platform_devices.iter().all(|d| caps.has_device_type(d))
        && platform_options.iter().all(|o| caps.has_option(o))
    {
        for (machine, extra) in [("pc", PLATFORM_PC), ("q35", PLATFORM_Q35)] {
            cases.push(Case {
                label: format!("{machine}: avocado-vt's platform devices and options"),
                machine,
                nic_model: "e1000",
                disk: "virtio",
                cdrom: if machine == "q35" { "ahci" } else { "ide" },
                extra,
            });
        }
    }
    assert!(cases.len() >= 6, "this QEMU lacks the common models");
    // Started in parallel (each case has its own temp dir and sockets).
    let failures: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = cases
            .iter()
            .map(|c| s.spawn(|| run_case(&qemu, &caps, c).map_err(|e| format!("{}: {e}", c.label))))
            .collect();
        handles
            .into_iter()
            .filter_map(|h| match h.join() {
                Ok(r) => r.err(),
                Err(_) => Some("a case panicked".to_string()),
            })
            .collect()
    });
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
