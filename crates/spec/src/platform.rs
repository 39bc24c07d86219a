//! [`PlatformSpec`]: avocado-vt's global QEMU options and its ISA platform devices, read with
//! avocado-vt's keys, defaults and spellings.
//!
//! Global options: `-S` (`qemu_stop`), `--preconfig`, the command prefix and environment
//! (`qemu_command_prefix`, `malloc_perturb`, `qemu_audio_drv`), `-nodefaults` (`defaults`, or
//! kvmtest's `nodefaults`), `-nodefconfig`, `-sandbox`, `-msg`, `-overcommit`/`-realtime`, `-k`,
//! `-rtc` and `-boot`. Platform devices: pvpanic, vmcoreinfo, the SeaBIOS debug console, the
//! anaconda log port, isa-debug-exit, the watchdog and sga. Values are checked for shape here;
//! whether the binary can do them is the command-line builder's question.

use crate::problem::ProblemKind;
use crate::read::Reader;

/// Where the `-nodefaults` decision came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nodefaults {
    /// Whether `-nodefaults` is asked for.
    pub on: bool,
    /// The key that decided (`defaults` or `nodefaults`); `None`: avocado-vt's default
    /// (`-nodefaults` where the binary has it, silently left out where it has not).
    pub key: Option<&'static str>,
}

/// `qemu_sandbox`: `-sandbox on|off` and its sub-options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sandbox {
    /// `on` or `off`.
    pub on: bool,
    /// `elevateprivileges`, `obsolete`, `resourcecontrol`, `spawn` in that order: with `on`,
    /// each `qemu_sandbox_*` key or `deny`; with `off`, only those set.
    pub opts: Vec<(&'static str, String)>,
}

/// A value that is a boolean (`on`/`off`) or some other word QEMU knows (`on-fault`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Switch {
    /// yes/on/true or no/off/false.
    Bool(bool),
    /// Anything else, passed as it is.
    Word(String),
}

impl Switch {
    /// The value as QEMU gets it.
    pub fn as_qemu(&self) -> &str {
        match self {
            Switch::Bool(true) => "on",
            Switch::Bool(false) => "off",
            Switch::Word(w) => w,
        }
    }
}

/// `enable_pvpanic = yes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pvpanic {
    /// `pvpanic-pci` (aarch64 guests: `vm_arch_name` contains `aarch64`) rather than the ISA
    /// `pvpanic`.
    pub pci: bool,
    /// `ioport_pvpanic` (ISA only).
    pub ioport: Option<String>,
    /// `events_pvpanic` (ISA only).
    pub events: Option<String>,
}

/// `isa_debugexit = yes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebugExit {
    /// `isa_debugexit_iobase` (default `0xf4`).
    pub iobase: String,
    /// `isa_debugexit_iosize` (default `0x04`).
    pub iosize: String,
}

/// `enable_watchdog = yes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watchdog {
    /// `watchdog_device_type`: a device (`i6300esb`, `ib700`, `diag288`…), or `itco` (the
    /// ICH9 TCO watchdog of q35, enabled with `-global ICH9-LPC.noreboot=off`); unset: only the
    /// action.
    pub device_type: Option<String>,
    /// `watchdog_action` (default `reset`).
    pub action: String,
}

/// `-rtc` items; each unset one is left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rtc {
    /// `rtc_base`: utc, localtime or a date.
    pub base: Option<String>,
    /// `rtc_clock`: host, rt or vm.
    pub clock: Option<String>,
    /// `rtc_drift` (`driftfix=`): none or slew.
    pub driftfix: Option<String>,
}

impl Rtc {
    /// The items set, as `(QEMU name, key, value)`.
    pub fn items(&self) -> impl Iterator<Item = (&'static str, &'static str, &str)> {
        [
            ("base", "rtc_base", &self.base),
            ("clock", "rtc_clock", &self.clock),
            ("driftfix", "rtc_drift", &self.driftfix),
        ]
        .into_iter()
        .filter_map(|(q, k, v)| v.as_deref().map(|v| (q, k, v)))
    }
}

/// `-boot` items; each unset one is left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Boot {
    /// `boot_menu`.
    pub menu: Option<String>,
    /// `boot_order`.
    pub order: Option<String>,
    /// `boot_once`.
    pub once: Option<String>,
    /// `boot_strict`.
    pub strict: Option<String>,
    /// `boot_reboot_timeout` (ms).
    pub reboot_timeout: Option<String>,
    /// `boot_splash_time` (ms).
    pub splash_time: Option<String>,
}

impl Boot {
    /// The items set, in avocado-vt's order, as `(QEMU name, key, value)`.
    pub fn items(&self) -> impl Iterator<Item = (&'static str, &'static str, &str)> {
        [
            ("menu", "boot_menu", &self.menu),
            ("order", "boot_order", &self.order),
            ("once", "boot_once", &self.once),
            ("strict", "boot_strict", &self.strict),
            (
                "reboot-timeout",
                "boot_reboot_timeout",
                &self.reboot_timeout,
            ),
            ("splash-time", "boot_splash_time", &self.splash_time),
        ]
        .into_iter()
        .filter_map(|(q, k, v)| v.as_deref().map(|v| (q, k, v)))
    }
}

/// avocado-vt's global options and platform devices of one VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformSpec {
    /// `qemu_stop`: start with the CPUs stopped (`-S`).
    pub stop: bool,
    /// `qemu_preconfig`: `--preconfig`.
    pub preconfig: bool,
    /// `paused_after_start_vm`: a VM started with `-S` stays paused (the test resumes it).
    pub paused_after_start: bool,
    /// `qemu_command_prefix`, split into argv words as a shell would (never run by a shell).
    pub command_prefix: Vec<String>,
    /// `malloc_perturb`: `MALLOC_PERTURB_=1` in QEMU's environment.
    pub malloc_perturb: bool,
    /// `qemu_audio_drv`: `QEMU_AUDIO_DRV` in QEMU's environment.
    pub audio_drv: Option<String>,
    /// `defaults` / `nodefaults`.
    pub nodefaults: Nodefaults,
    /// `defconfig = no`: `-nodefconfig`.
    pub nodefconfig: bool,
    /// `qemu_sandbox`.
    pub sandbox: Option<Sandbox>,
    /// `msg_timestamp`: `-msg timestamp=on|off`.
    pub msg_timestamp: Option<bool>,
    /// `realtime_mlock`: `-overcommit mem-lock=` (or `-realtime mlock=`).
    pub realtime_mlock: Option<Switch>,
    /// `cpu-pm`: `-overcommit cpu-pm=on|off`.
    pub cpu_pm: Option<bool>,
    /// `keyboard_layout`: `-k`.
    pub keyboard_layout: Option<String>,
    /// `enable_pvpanic`.
    pub pvpanic: Option<Pvpanic>,
    /// `vmcoreinfo`.
    pub vmcoreinfo: bool,
    /// `enable_debugcon`: SeaBIOS's log on a socket in the run dir (`isa-debugcon` at 0x402).
    pub debugcon: bool,
    /// `anaconda_log`: a virtio-serial port `org.fedoraproject.anaconda.log.0` on a socket.
    pub anaconda_log: bool,
    /// `isa_debugexit`.
    pub debugexit: Option<DebugExit>,
    /// `enable_watchdog`.
    pub watchdog: Option<Watchdog>,
    /// `enable_sga`: the serial graphics adapter option ROM.
    pub sga: bool,
    /// `rtc_*`.
    pub rtc: Rtc,
    /// `boot_*`.
    pub boot: Boot,
}

const WATCHDOG_ACTIONS: &[&str] = &[
    "reset",
    "shutdown",
    "poweroff",
    "pause",
    "debug",
    "none",
    "inject-nmi",
];

impl PlatformSpec {
    /// Reads the keys through `r` (the VM's reader).
    pub fn read(r: &mut Reader<'_, '_>) -> PlatformSpec {
        PlatformSpec {
            stop: r.bool("qemu_stop", true),
            preconfig: r.bool("qemu_preconfig", false),
            paused_after_start: r.bool("paused_after_start_vm", false),
            command_prefix: read_prefix(r),
            malloc_perturb: r.bool("malloc_perturb", false),
            audio_drv: r.string("qemu_audio_drv"),
            nodefaults: read_nodefaults(r),
            nodefconfig: !r.bool("defconfig", true),
            sandbox: read_sandbox(r),
            msg_timestamp: r.opt_bool("msg_timestamp"),
            realtime_mlock: r.str("realtime_mlock").map(|v| match bool_word(v) {
                Some(b) => Switch::Bool(b),
                None => Switch::Word(v.to_string()),
            }),
            cpu_pm: r.opt_bool("cpu-pm"),
            keyboard_layout: r.string("keyboard_layout"),
            pvpanic: r.bool("enable_pvpanic", false).then(|| read_pvpanic(r)),
            vmcoreinfo: r.bool("vmcoreinfo", false),
            debugcon: r.bool("enable_debugcon", false),
            anaconda_log: r.bool("anaconda_log", false),
            debugexit: r.bool("isa_debugexit", false).then(|| DebugExit {
                iobase: port(r, "isa_debugexit_iobase", "0xf4"),
                iosize: port(r, "isa_debugexit_iosize", "0x04"),
            }),
            watchdog: r.bool("enable_watchdog", false).then(|| Watchdog {
                device_type: r.string("watchdog_device_type"),
                action: one_of(r, "watchdog_action", WATCHDOG_ACTIONS)
                    .unwrap_or_else(|| "reset".into()),
            }),
            sga: r.bool("enable_sga", false),
            rtc: read_rtc(r),
            boot: read_boot(r),
        }
    }
}

fn bool_word(v: &str) -> Option<bool> {
    match v {
        "yes" | "on" | "true" => Some(true),
        "no" | "off" | "false" => Some(false),
        _ => None,
    }
}

/// A value among `allowed`; anything else is a problem.
fn one_of(r: &mut Reader<'_, '_>, key: &str, allowed: &[&str]) -> Option<String> {
    let v = r.str(key)?;
    if allowed.contains(&v) {
        return Some(v.to_string());
    }
    r.problem(
        key,
        ProblemKind::Invalid {
            expected: format!("one of {}", allowed.join(", ")),
        },
    );
    None
}

/// An I/O port or size: a decimal or `0x` hexadecimal number.
fn port(r: &mut Reader<'_, '_>, key: &str, default: &str) -> String {
    let Some(v) = r.str(key) else {
        return default.to_string();
    };
    let ok = match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(hex) => !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()),
        None => v.bytes().all(|b| b.is_ascii_digit()),
    };
    if ok {
        return v.to_string();
    }
    r.problem(
        key,
        ProblemKind::Invalid {
            expected: "an I/O port number such as 0x505 or 1285".into(),
        },
    );
    default.to_string()
}

fn read_prefix(r: &mut Reader<'_, '_>) -> Vec<String> {
    let Some(s) = r.str("qemu_command_prefix") else {
        return Vec::new();
    };
    shlex::split(s).unwrap_or_else(|| {
        r.problem(
            "qemu_command_prefix",
            ProblemKind::Invalid {
                expected: "a command with balanced quotes (split as a shell splits words)".into(),
            },
        );
        Vec::new()
    })
}

/// avocado-vt's `defaults` (`-nodefaults` unless `yes`), else kvmtest's `nodefaults`; both set
/// must agree.
fn read_nodefaults(r: &mut Reader<'_, '_>) -> Nodefaults {
    let defaults = r.opt_bool("defaults");
    let nodefaults = r.opt_bool("nodefaults");
    match (defaults, nodefaults) {
        (Some(d), Some(n)) if d == n => {
            r.problem(
                "nodefaults",
                ProblemKind::Invalid {
                    expected: format!(
                        "the opposite of `defaults` ({}): set one of the two keys, or both \
                         agreeing",
                        if d { "yes" } else { "no" }
                    ),
                },
            );
            Nodefaults {
                on: !d,
                key: Some("defaults"),
            }
        }
        (Some(d), _) => Nodefaults {
            on: !d,
            key: Some("defaults"),
        },
        (None, Some(n)) => Nodefaults {
            on: n,
            key: Some("nodefaults"),
        },
        (None, None) => Nodefaults {
            on: true,
            key: None,
        },
    }
}

fn read_sandbox(r: &mut Reader<'_, '_>) -> Option<Sandbox> {
    let on = r.opt_bool("qemu_sandbox")?;
    let mut opts = Vec::new();
    for (opt, key) in [
        ("elevateprivileges", "qemu_sandbox_elevateprivileges"),
        ("obsolete", "qemu_sandbox_obsolete"),
        ("resourcecontrol", "qemu_sandbox_resourcecontrol"),
        ("spawn", "qemu_sandbox_spawn"),
    ] {
        match r.string(key) {
            Some(v) => opts.push((opt, v)),
            None if on => opts.push((opt, "deny".to_string())),
            None => {}
        }
    }
    Some(Sandbox { on, opts })
}

fn read_pvpanic(r: &mut Reader<'_, '_>) -> Pvpanic {
    let arch = r.str("vm_arch_name").unwrap_or(std::env::consts::ARCH);
    let pci = arch.contains("aarch64");
    Pvpanic {
        pci,
        ioport: r
            .str("ioport_pvpanic")
            .map(|_| port(r, "ioport_pvpanic", "")),
        events: r.string("events_pvpanic"),
    }
}

fn read_rtc(r: &mut Reader<'_, '_>) -> Rtc {
    let base = r.str("rtc_base").map(|v| {
        let date = |d: &str| {
            d.len() == 10
                && d.bytes().enumerate().all(|(i, b)| {
                    if i == 4 || i == 7 {
                        b == b'-'
                    } else {
                        b.is_ascii_digit()
                    }
                })
        };
        let time = |t: &str| {
            t.len() == 8
                && t.bytes().enumerate().all(|(i, b)| {
                    if i == 2 || i == 5 {
                        b == b':'
                    } else {
                        b.is_ascii_digit()
                    }
                })
        };
        let ok = matches!(v, "utc" | "localtime")
            || match v.split_once('T') {
                Some((d, t)) => date(d) && time(t),
                None => date(v),
            };
        if !ok {
            r.problem(
                "rtc_base",
                ProblemKind::Invalid {
                    expected: "utc, localtime, or a date such as 2006-06-17 or \
                               2006-06-17T16:01:21"
                        .into(),
                },
            );
        }
        v.to_string()
    });
    Rtc {
        base,
        clock: one_of(r, "rtc_clock", &["host", "rt", "vm"]),
        driftfix: one_of(r, "rtc_drift", &["none", "slew"]),
    }
}

fn read_boot(r: &mut Reader<'_, '_>) -> Boot {
    // QEMU's bounds: a reboot timeout of -1 (never) to 65535 ms, a splash time up to 65535 ms.
    let mut int = |key: &str, min: i64, what: &str| {
        let v = r.str(key)?;
        if v.parse::<i64>().is_ok_and(|n| (min..=65535).contains(&n)) {
            Some(v.to_string())
        } else {
            r.problem(
                key,
                ProblemKind::Invalid {
                    expected: what.to_string(),
                },
            );
            None
        }
    };
    let reboot_timeout = int(
        "boot_reboot_timeout",
        -1,
        "milliseconds from 0 to 65535, or -1 (no reboot)",
    );
    let splash_time = int("boot_splash_time", 0, "milliseconds from 0 to 65535");
    Boot {
        menu: r.string("boot_menu"),
        order: r.string("boot_order"),
        once: r.string("boot_once"),
        strict: r.string("boot_strict"),
        reboot_timeout,
        splash_time,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::test_support::params;
    use crate::VmSpec;

    /// Every platform key, set (for the two-way declaration test in `vm_keys`).
    pub(crate) const ALL_KEYS: &[(&str, &str)] = &[
        ("qemu_stop", "on"),
        ("qemu_preconfig", "off"),
        ("paused_after_start_vm", "no"),
        ("qemu_command_prefix", "taskset -c 1"),
        ("malloc_perturb", "yes"),
        ("qemu_audio_drv", "none"),
        ("defaults", "no"),
        ("defconfig", "no"),
        ("qemu_sandbox", "on"),
        ("qemu_sandbox_elevateprivileges", "children"),
        ("qemu_sandbox_obsolete", "allow"),
        ("qemu_sandbox_resourcecontrol", "deny"),
        ("qemu_sandbox_spawn", "deny"),
        ("msg_timestamp", "on"),
        ("realtime_mlock", "on-fault"),
        ("cpu-pm", "on"),
        ("keyboard_layout", "en-us"),
        ("enable_pvpanic", "yes"),
        ("vm_arch_name", "x86_64"),
        ("ioport_pvpanic", "0x505"),
        ("events_pvpanic", "1"),
        ("vmcoreinfo", "yes"),
        ("enable_debugcon", "yes"),
        ("anaconda_log", "yes"),
        ("isa_debugexit", "yes"),
        ("isa_debugexit_iobase", "0xf4"),
        ("isa_debugexit_iosize", "0x4"),
        ("enable_watchdog", "yes"),
        ("watchdog_device_type", "i6300esb"),
        ("watchdog_action", "pause"),
        ("enable_sga", "yes"),
        ("rtc_base", "2006-06-17T16:01:21"),
        ("rtc_clock", "vm"),
        ("rtc_drift", "slew"),
        ("boot_menu", "on"),
        ("boot_order", "cdn"),
        ("boot_once", "c"),
        ("boot_strict", "off"),
        ("boot_reboot_timeout", "-1"),
        ("boot_splash_time", "5000"),
        ("catch_monitor", "catch_monitor"),
    ];

    fn spec(pairs: &[(&str, &str)]) -> PlatformSpec {
        VmSpec::new(&params(pairs), "vm1")
            .unwrap_or_else(|e| panic!("{e}"))
            .platform
    }

    fn problem_keys(pairs: &[(&str, &str)]) -> Vec<String> {
        match VmSpec::new(&params(pairs), "vm1") {
            Ok(_) => Vec::new(),
            Err(e) => e.problems().iter().map(|p| p.key.clone()).collect(),
        }
    }

    #[test]
    fn unset_keys_are_avocado_defaults() {
        let p = spec(&[]);
        assert!(p.stop, "-S, as avocado-vt: the vm crate sends `cont`");
        assert_eq!(
            p.nodefaults,
            Nodefaults {
                on: true,
                key: None
            }
        );
        assert!(!p.nodefconfig);
        assert_eq!(p.sandbox, None);
        assert_eq!(p.pvpanic, None);
        assert_eq!(p.rtc, Rtc::default());
        assert_eq!(p.boot.items().count(), 0);
        assert!(p.command_prefix.is_empty());
    }

    #[test]
    fn defaults_and_nodefaults_agree_or_are_a_problem() {
        let on = |pairs: &[(&str, &str)]| spec(pairs).nodefaults;
        assert_eq!(
            on(&[("defaults", "yes")]),
            Nodefaults {
                on: false,
                key: Some("defaults")
            }
        );
        assert_eq!(
            on(&[("nodefaults", "no")]),
            Nodefaults {
                on: false,
                key: Some("nodefaults")
            }
        );
        assert!(on(&[("defaults", "no"), ("nodefaults", "yes")]).on);
        assert_eq!(
            problem_keys(&[("defaults", "yes"), ("nodefaults", "yes")]),
            ["nodefaults"]
        );
    }

    #[test]
    fn sandbox_on_denies_by_default_off_lists_only_what_is_set() {
        let s = spec(&[("qemu_sandbox", "on"), ("qemu_sandbox_spawn", "allow")]).sandbox;
        let s = s.unwrap_or_else(|| panic!("no sandbox"));
        assert!(s.on);
        assert_eq!(
            s.opts,
            [
                ("elevateprivileges", "deny".to_string()),
                ("obsolete", "deny".into()),
                ("resourcecontrol", "deny".into()),
                ("spawn", "allow".into()),
            ]
        );
        let s = spec(&[("qemu_sandbox", "off"), ("qemu_sandbox_spawn", "allow")]).sandbox;
        assert_eq!(
            s,
            Some(Sandbox {
                on: false,
                opts: vec![("spawn", "allow".into())]
            })
        );
    }

    #[test]
    fn command_prefix_is_split_like_a_shell_and_checked() {
        let p = spec(&[("qemu_command_prefix", "valgrind --log-file='/tmp/v g.log'")]);
        assert_eq!(p.command_prefix, ["valgrind", "--log-file=/tmp/v g.log"]);
        assert_eq!(
            problem_keys(&[("qemu_command_prefix", "valgrind 'open")]),
            ["qemu_command_prefix"]
        );
    }

    #[test]
    fn pvpanic_is_pci_on_aarch64_and_isa_elsewhere() {
        let p = spec(&[
            ("enable_pvpanic", "yes"),
            ("vm_arch_name", "aarch64"),
            ("ioport_pvpanic", "0x505"),
        ]);
        assert!(p.pvpanic.is_some_and(|p| p.pci));
        let p = spec(&[
            ("enable_pvpanic", "yes"),
            ("vm_arch_name", "x86_64"),
            ("ioport_pvpanic", "0x505"),
        ]);
        assert_eq!(
            p.pvpanic,
            Some(Pvpanic {
                pci: false,
                ioport: Some("0x505".into()),
                events: None
            })
        );
        assert_eq!(
            problem_keys(&[("enable_pvpanic", "yes"), ("ioport_pvpanic", "port")]),
            ["ioport_pvpanic"]
        );
    }

    #[test]
    fn bad_values_are_problems() {
        for (k, v) in [
            ("watchdog_action", "explode"),
            ("rtc_clock", "wall"),
            ("rtc_drift", "fast"),
            ("rtc_base", "yesterday"),
            ("boot_splash_time", "long"),
            ("boot_splash_time", "70000"),
            ("boot_reboot_timeout", "-2"),
            ("msg_timestamp", "maybe"),
        ] {
            assert_eq!(
                problem_keys(&[("enable_watchdog", "yes"), (k, v)]),
                [k],
                "{k} = {v}"
            );
        }
        let p = spec(&[("realtime_mlock", "yes"), ("rtc_base", "2020-01-02")]);
        assert_eq!(p.realtime_mlock, Some(Switch::Bool(true)));
        assert_eq!(p.rtc.base.as_deref(), Some("2020-01-02"));
    }
}
