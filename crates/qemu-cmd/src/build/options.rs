//! avocado-vt's global options: the environment and command prefix, `-S`, `--preconfig`,
//! `-sandbox`, `-nodefaults`, `-nodefconfig`, `-rtc`, `-boot`, `-msg`, `-overcommit` /
//! `-realtime` and `-k`. Each is emitted where avocado-vt's `make_create_command` puts it
//! (`Builder::all` calls them in that order); what the binary lacks is a problem naming the key.

use super::{Builder, Obj, Opts};
use crate::caps::QemuVersion;
use crate::cmd::Word;
use spec::platform::Switch;
use spec::vm::VmSpec;

/// QEMU's environment (`MALLOC_PERTURB_`, `DISPLAY`, `QEMU_AUDIO_DRV`, in avocado-vt's order)
/// and `qemu_command_prefix`'s argv words.
pub(super) fn env_prefix(b: &mut Builder<'_>, v: &VmSpec) {
    let p = &v.platform;
    if p.malloc_perturb {
        b.cmd.env.push(("MALLOC_PERTURB_".into(), "1".into()));
    }
    if let Some(d) = v.x11_display.as_deref() {
        b.cmd.env.push(("DISPLAY".into(), d.to_string()));
    }
    if let Some(a) = p.audio_drv.as_deref() {
        b.cmd.env.push(("QEMU_AUDIO_DRV".into(), a.to_string()));
    }
    b.cmd.prefix = p
        .command_prefix
        .iter()
        .map(|w| Word::from(w.as_str()))
        .collect();
}

/// `-S` (`qemu_stop`) and `--preconfig` (`qemu_preconfig`), right after the binary.
pub(super) fn stop(b: &mut Builder<'_>, v: &VmSpec) {
    let p = &v.platform;
    if p.stop {
        if b.caps.has_option("S") {
            b.cmd.flag("-S");
        } else if v.origins.get("vm", &v.name, "qemu_stop").is_some() {
            // Asked for, not there: a problem. By default, left out (a `cont` to a running
            // guest is harmless).
            let reason = format!("QEMU {} has no -S option", b.caps.version);
            b.unsupported(Obj::Vm, "qemu_stop", reason);
        }
    }
    if p.preconfig {
        if b.caps.has_option("preconfig") {
            b.cmd.flag("--preconfig");
        } else {
            let reason = format!("QEMU {} has no --preconfig option", b.caps.version);
            b.unsupported(Obj::Vm, "qemu_preconfig", reason);
        }
    }
}

/// `-sandbox on|off,elevateprivileges=…,obsolete=…,resourcecontrol=…,spawn=…`.
pub(super) fn sandbox(b: &mut Builder<'_>, v: &VmSpec) {
    let Some(s) = &v.platform.sandbox else { return };
    if !b.caps.has_option("sandbox") {
        let reason = format!(
            "QEMU {} has no -sandbox option (built without seccomp)",
            b.caps.version
        );
        b.unsupported(Obj::Vm, "qemu_sandbox", reason);
        return;
    }
    let mut o = Opts::new(if s.on { "on" } else { "off" });
    for (k, val) in &s.opts {
        o.kv(k, val);
    }
    b.cmd.push2("-sandbox", o.finish());
}

/// `-nodefaults` (unless `defaults = yes` or `nodefaults = no`) and `-nodefconfig`
/// (`defconfig = no`), after the machine.
pub(super) fn defaults(b: &mut Builder<'_>, v: &VmSpec) {
    let p = &v.platform;
    if p.nodefaults.on {
        if b.caps.has_option("nodefaults") {
            b.cmd.flag("-nodefaults");
        } else if let Some(key) = p.nodefaults.key {
            // Unset, avocado-vt's default: left out where the binary lacks it, as avocado-vt
            // does; asked for explicitly, a problem.
            let reason = format!("QEMU {} has no -nodefaults option", b.caps.version);
            b.unsupported(Obj::Vm, key, reason);
        }
    }
    if p.nodefconfig {
        if b.caps.has_option("nodefconfig") {
            b.cmd.flag("-nodefconfig");
        } else {
            let reason = format!(
                "QEMU {} has no -nodefconfig option (later QEMUs have -no-user-config instead)",
                b.caps.version
            );
            b.unsupported(Obj::Vm, "defconfig", reason);
        }
    }
}

/// `-rtc base=…,clock=…,driftfix=…` with the items set; a binary without `-rtc` gets
/// `-rtc-td-hack` where it has it, as avocado-vt gives it.
pub(super) fn rtc(b: &mut Builder<'_>, v: &VmSpec) {
    let rtc = &v.platform.rtc;
    if b.caps.has_option("rtc") {
        if rtc.items().next().is_some() {
            let mut o = Opts::new("");
            for (q, _, val) in rtc.items() {
                o.kv(q, val);
            }
            b.cmd.push2("-rtc", o.finish());
        }
        return;
    }
    let keys: Vec<&str> = rtc.items().map(|(_, k, _)| k).collect();
    for key in keys {
        let reason = format!("QEMU {} has no -rtc option", b.caps.version);
        b.unsupported(Obj::Vm, key, reason);
    }
    if b.caps.has_option("rtc-td-hack") {
        b.cmd.flag("-rtc-td-hack");
    }
}

/// `-boot` with the items set, as avocado-vt's `add_boot`: none on ARM and RISC-V machines
/// (they boot by `bootindex`), `strict=on` alone on s390, the bare drive letter on binaries
/// before QEMU 0.12's `-boot order=,once=,menu=`.
pub(super) fn boot(b: &mut Builder<'_>, v: &VmSpec) {
    let boot = &v.platform.boot;
    let machine = v.machine_type.as_deref().unwrap_or("");
    if machine.starts_with("arm") || machine.starts_with("riscv") {
        return;
    }
    if !b.caps.has_option("boot") {
        let keys: Vec<&str> = boot.items().map(|(_, k, _)| k).collect();
        for key in keys {
            b.unsupported(Obj::Vm, key, "no -boot option".into());
        }
        return;
    }
    if machine.starts_with("s390") {
        b.cmd.push2("-boot", Word::from("strict=on"));
        return;
    }
    let items: Vec<(&str, &str, &str)> = boot.items().collect();
    if items.is_empty() {
        return;
    }
    let old = b.caps.version
        < QemuVersion {
            major: 0,
            minor: 12,
            micro: 0,
        };
    if !old {
        let mut o = Opts::new("");
        for (q, _, val) in &items {
            o.kv(q, val);
        }
        b.cmd.push2("-boot", o.finish());
        return;
    }
    // `-boot [a|c|d|n]`: the drives to boot from, once or in order.
    let drives = boot.once.as_deref().or(boot.order.as_deref());
    for (q, key, _) in items {
        let used = match q {
            "once" => true,
            "order" => boot.once.is_none(),
            _ => false,
        };
        if !used {
            let reason = format!("QEMU {} has only `-boot DRIVES` (no {q}=)", b.caps.version);
            b.unsupported(Obj::Vm, key, reason);
        }
    }
    if let Some(d) = drives {
        b.cmd.push2("-boot", Word::from(d));
    }
}

/// `-msg timestamp=`, `-overcommit mem-lock=` (or `-realtime mlock=`), `-overcommit cpu-pm=`,
/// `-k`: avocado-vt's "qemu options", near the end.
pub(super) fn qemu_options(b: &mut Builder<'_>, v: &VmSpec) {
    let p = &v.platform;
    let caps = b.caps;
    let on_off = |x: bool| if x { "on" } else { "off" };
    if let Some(t) = p.msg_timestamp {
        if caps.has_option("msg") {
            let mut o = Opts::new("");
            o.kv("timestamp", on_off(t));
            b.cmd.push2("-msg", o.finish());
        } else {
            let reason = format!("QEMU {} has no -msg option", caps.version);
            b.unsupported(Obj::Vm, "msg_timestamp", reason);
        }
    }
    if let Some(m) = &p.realtime_mlock {
        if caps.has_option("overcommit") {
            let mut o = Opts::new("");
            o.kv("mem-lock", m.as_qemu());
            b.cmd.push2("-overcommit", o.finish());
        } else if let (true, Switch::Bool(x)) = (caps.has_option("realtime"), m) {
            let mut o = Opts::new("");
            o.kv("mlock", on_off(*x));
            b.cmd.push2("-realtime", o.finish());
        } else {
            let reason = match m {
                Switch::Bool(_) => format!(
                    "QEMU {} has neither -overcommit nor -realtime",
                    caps.version
                ),
                Switch::Word(_) => format!("QEMU {} has no -overcommit option", caps.version),
            };
            b.unsupported(Obj::Vm, "realtime_mlock", reason);
        }
    }
    if let Some(x) = p.cpu_pm {
        if caps.has_option("overcommit") {
            let mut o = Opts::new("");
            o.kv("cpu-pm", on_off(x));
            b.cmd.push2("-overcommit", o.finish());
        } else {
            let reason = format!("QEMU {} has no -overcommit option", caps.version);
            b.unsupported(Obj::Vm, "cpu-pm", reason);
        }
    }
    if let Some(k) = p.keyboard_layout.as_deref() {
        if caps.has_option("k") {
            b.cmd.push2("-k", Word::from(k));
        } else {
            b.unsupported(Obj::Vm, "keyboard_layout", "no -k option".into());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;

    use crate::{cmdline, Capabilities, Params, RunPlan};

    fn caps(name: &str) -> Capabilities {
        let path = format!(
            "{}/../../fixtures/qemu-caps/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        Capabilities::load(path).unwrap_or_else(|e| panic!("{e}"))
    }

    fn params(pairs: &[(&str, &str)]) -> Params {
        let mut p = Params::new();
        for (k, v) in pairs {
            p.insert(*k, *v);
        }
        p
    }

    #[test]
    fn the_prefix_heads_argv_and_the_command_runs_it() {
        let p = params(&[
            ("qemu_binary", "/usr/bin/qemu-system-x86_64"),
            ("serials", ""),
            ("qemu_command_prefix", "taskset -c '1,2'"),
            ("malloc_perturb", "yes"),
        ]);
        let cmd = cmdline(&p, &caps("qemu-7.2"), &RunPlan::dry()).unwrap_or_else(|e| panic!("{e}"));
        let argv = cmd.argv();
        let head: Vec<OsString> = ["taskset", "-c", "1,2", "/usr/bin/qemu-system-x86_64"]
            .iter()
            .map(OsString::from)
            .collect();
        assert_eq!(argv[..4], head[..]);
        assert_eq!(cmd.program(), "/usr/bin/qemu-system-x86_64");
        let c = cmd.command();
        assert_eq!(c.get_program(), "taskset");
        let args: Vec<_> = c.get_args().collect();
        assert_eq!(args.len(), argv.len() - 1);
        assert_eq!(args[2], "/usr/bin/qemu-system-x86_64");
        assert!(c
            .get_envs()
            .any(|(k, v)| k == "MALLOC_PERTURB_" && v == Some("1".as_ref())));
    }

    #[test]
    fn nodefaults_by_default_is_silent_where_the_binary_lacks_it_explicit_is_a_problem() {
        let old = caps("qemu-0.10-pre-device");
        let p = params(&[("serials", "")]);
        let cmd = cmdline(&p, &old, &RunPlan::dry()).unwrap_or_else(|e| panic!("{e}"));
        assert!(!cmd.words().any(|w| w.stable() == "-nodefaults"));
        let p = params(&[("serials", ""), ("defaults", "no")]);
        let err = cmdline(&p, &old, &RunPlan::dry()).err();
        assert_eq!(
            err.map(|e| e.problems()[0].key.clone()).as_deref(),
            Some("defaults")
        );
        let cmd = cmdline(
            &params(&[("serials", "")]),
            &caps("qemu-7.2"),
            &RunPlan::dry(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(cmd.words().any(|w| w.stable() == "-nodefaults"));
    }

    #[test]
    fn boot_follows_the_machine() {
        // Machine names as avocado-vt spells them, not checked against the binary's list here.
        let mut c = caps("qemu-7.2");
        c.machines.clear();
        let boot = |machine: &str| {
            let p = params(&[
                ("serials", ""),
                ("machine_type", machine),
                ("boot_order", "cdn"),
            ]);
            let mut cmd = cmdline(&p, &c, &RunPlan::dry())
                .map(|c| c.words().map(|w| w.stable()).collect::<Vec<_>>())
                .unwrap_or_default();
            let at = cmd.iter().position(|w| w == "-boot");
            at.map(|i| cmd.remove(i + 1))
        };
        assert_eq!(boot("pc").as_deref(), Some("order=cdn"));
        assert_eq!(boot("s390-ccw-virtio").as_deref(), Some("strict=on"));
        assert_eq!(boot("arm64-pci:virt"), None, "ARM boots by bootindex");
        assert_eq!(boot("riscv64-mmio:virt"), None);
    }
}
