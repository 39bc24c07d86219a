//! [`Capabilities`]: what one QEMU binary accepts, as one typed value.
//!
//! Builders ask questions such as [`Capabilities::has_blockdev`] or
//! [`Capabilities::has_device_type`]; none of them looks at help text. The text is read once, here,
//! by [`Capabilities::from_help`] (pure parsing, fed by [`crate::probe`] or by tests with captured
//! output), and a value round-trips through JSON so that fixtures for QEMU generations that are not
//! installed can be written by hand and reviewed (`fixtures/qemu-caps/`).

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A QEMU release number, `major.minor.micro`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QemuVersion {
    /// Major.
    pub major: u16,
    /// Minor.
    pub minor: u16,
    /// Micro (patch level).
    pub micro: u16,
}

impl QemuVersion {
    /// `major.minor.micro`.
    pub const fn new(major: u16, minor: u16, micro: u16) -> QemuVersion {
        QemuVersion {
            major,
            minor,
            micro,
        }
    }

    /// Finds the version in a banner such as `QEMU emulator version 7.2.22 (Debian …)`.
    pub fn from_banner(text: &str) -> Option<QemuVersion> {
        let at = text.find("version ")? + "version ".len();
        let tail = &text[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(tail.len());
        tail[..end].trim_end_matches('.').parse().ok()
    }
}

impl fmt::Display for QemuVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.micro)
    }
}

/// A version string that is not `N.N[.N]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a QEMU version (expected N.N or N.N.N): {0:?}")]
pub struct BadVersion(pub String);

impl FromStr for QemuVersion {
    type Err = BadVersion;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadVersion(s.to_string());
        let mut it = s.split('.');
        let mut num = |need: bool| -> Result<u16, BadVersion> {
            match it.next() {
                Some(p) => p.parse().map_err(|_| bad()),
                None if need => Err(bad()),
                None => Ok(0),
            }
        };
        let v = QemuVersion::new(num(true)?, num(true)?, num(false)?);
        if it.next().is_some() {
            return Err(bad());
        }
        Ok(v)
    }
}

impl Serialize for QemuVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for QemuVersion {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// How QEMU spells boolean sub-options of `-chardev` and friends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BoolSyntax {
    /// `server,nowait` (the only form before QEMU 6.0, deprecated after).
    Short,
    /// `server=on,wait=off`.
    OnOff,
}

/// Everything the builder needs to know about one QEMU binary.
///
/// Sets hold names as QEMU prints them; option names have no leading `-`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    /// Where this value came from (probed binary, or who wrote the fixture from what).
    pub note: String,
    /// The release.
    pub version: QemuVersion,
    /// Top-level options (`-help`), e.g. `device`, `netdev`, `no-hpet`.
    pub options: BTreeSet<String>,
    /// Sub-options listed for `-drive` (`boot`, `werror`, `serial`…).
    pub drive_options: BTreeSet<String>,
    /// Sub-options listed for user-mode networking (`tftp`, `bootfile`, `hostfwd`…).
    pub user_net_options: BTreeSet<String>,
    /// How boolean sub-options are spelled.
    pub bool_syntax: BoolSyntax,
    /// Device types and their aliases (`-device help`).
    pub devices: BTreeSet<String>,
    /// NIC models of `-net nic,model=` on a QEMU without `-device` (`-net nic,model=?`).
    #[serde(default)]
    pub legacy_nic_models: BTreeSet<String>,
    /// Machine types and aliases (`-machine help`).
    pub machines: BTreeSet<String>,
    /// Properties of the default PC machine (`-machine pc,help`), e.g. `hpet`.
    #[serde(default)]
    pub machine_properties: BTreeSet<String>,
    /// CPU models (`-cpu help`).
    pub cpu_models: BTreeSet<String>,
    /// Network backends (`-netdev help`, or the `-net` forms of old binaries).
    pub netdev_backends: BTreeSet<String>,
    /// Accelerators (`-accel help`); empty when the binary has no `-accel`.
    #[serde(default)]
    pub accelerators: BTreeSet<String>,
    /// Backends listed as `-display NAME` in `-help` (`sdl`, `none`, `gtk`…).
    #[serde(default)]
    pub display_backends: BTreeSet<String>,
    /// Transports listed as `-incoming NAME:` / `-incoming defer` in `-help`; empty on binaries
    /// that only say `-incoming p` (they know tcp, unix and exec).
    #[serde(default)]
    pub incoming: BTreeSet<String>,
    /// Character device backends listed as `-chardev NAME,…` in `-help` (`socket`, `spicevmc`…).
    #[serde(default)]
    pub chardev_backends: BTreeSet<String>,
    /// Sub-options of `-spice` as the binary itself lists them (`-spice help`: `port`,
    /// `password-secret`…); empty when it has no SPICE, or its SPICE module does not load
    /// (QEMU builds SPICE as a loadable module: `-help` lists `-spice` either way).
    #[serde(default)]
    pub spice_options: BTreeSet<String>,
}

/// The raw outputs a probe collects; the input of [`Capabilities::from_help`].
#[derive(Debug, Clone, Default)]
pub struct HelpTexts {
    /// `-version` (or the first line of `-help`).
    pub version: String,
    /// `-help`.
    pub help: String,
    /// `-device help` (empty when unsupported).
    pub device_help: String,
    /// `-machine help`.
    pub machine_help: String,
    /// `-machine pc,help`.
    pub machine_properties_help: String,
    /// `-cpu help`.
    pub cpu_help: String,
    /// `-netdev help` (empty when unsupported).
    pub netdev_help: String,
    /// `-accel help` (empty when unsupported).
    pub accel_help: String,
    /// `-spice help` (QEMU prints the list and exits non-zero; empty without SPICE).
    pub spice_help: String,
}

/// Reading or writing a capabilities file failed.
#[derive(Debug, thiserror::Error)]
pub enum CapsError {
    /// The file could not be read or written.
    #[error("reading {path}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid capabilities document.
    #[error("{path}: not a capabilities file")]
    Format {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The help text had no version banner.
    #[error("no QEMU version found in {0:?}")]
    NoVersion(String),
}

impl Capabilities {
    /// Parses the probe outputs. Pure: no process or file is touched.
    ///
    /// # Errors
    ///
    /// [`CapsError::NoVersion`] when neither the version text nor `-help` names a version.
    pub fn from_help(t: &HelpTexts, note: impl Into<String>) -> Result<Capabilities, CapsError> {
        let version = QemuVersion::from_banner(&t.version)
            .or_else(|| QemuVersion::from_banner(t.help.lines().next().unwrap_or("")))
            .ok_or_else(|| {
                CapsError::NoVersion(t.version.lines().next().unwrap_or("").to_string())
            })?;
        let options = parse_options(&t.help);
        let mut netdev_backends = first_words(&t.netdev_help, |l| !l.ends_with(':'));
        if netdev_backends.is_empty() {
            netdev_backends = legacy_backends(&t.help);
        }
        Ok(Capabilities {
            note: note.into(),
            version,
            drive_options: sub_options(&t.help, "-drive "),
            user_net_options: user_net_options(&t.help),
            bool_syntax: if t.help.contains("[,server=on|off]") {
                BoolSyntax::OnOff
            } else {
                BoolSyntax::Short
            },
            devices: parse_devices(&t.device_help),
            legacy_nic_models: BTreeSet::new(),
            machines: first_words(&t.machine_help, |l| !l.starts_with("Supported machines")),
            machine_properties: parse_properties(&t.machine_properties_help),
            cpu_models: parse_cpus(&t.cpu_help),
            netdev_backends,
            accelerators: first_words(&t.accel_help, |l| !l.ends_with(':')),
            display_backends: option_forms(&t.help, "-display "),
            incoming: option_forms(&t.help, "-incoming ")
                .into_iter()
                .filter(|f| f.chars().all(|c| c.is_ascii_lowercase()) && f.len() > 1)
                .collect(),
            chardev_backends: option_forms(&t.help, "-chardev ")
                .into_iter()
                .filter(|b| b != "help")
                .collect(),
            spice_options: parse_spice_options(&t.spice_help),
            options,
        })
    }

    /// Reads a JSON capabilities file (a fixture or a cache entry's payload).
    ///
    /// # Errors
    ///
    /// [`CapsError::Io`] or [`CapsError::Format`], naming the file.
    pub fn load(path: impl AsRef<Path>) -> Result<Capabilities, CapsError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| CapsError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Capabilities::from_json(&text).map_err(|source| CapsError::Format {
            path: path.display().to_string(),
            source,
        })
    }

    /// Parses the JSON form.
    ///
    /// # Errors
    ///
    /// The `serde_json` error when the text is not a capabilities document.
    pub fn from_json(text: &str) -> Result<Capabilities, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The JSON form, pretty-printed with sorted sets (stable, diffable).
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Whether `-NAME` is accepted (`name` without the dash).
    pub fn has_option(&self, name: &str) -> bool {
        self.options.contains(name)
    }

    /// `-device` exists.
    pub fn has_device(&self) -> bool {
        self.has_option("device")
    }

    /// `-netdev` exists.
    pub fn has_netdev(&self) -> bool {
        self.has_option("netdev")
    }

    /// `-blockdev` exists.
    pub fn has_blockdev(&self) -> bool {
        self.has_option("blockdev")
    }

    /// `-drive` exists.
    pub fn has_drive(&self) -> bool {
        self.has_option("drive")
    }

    /// `-chardev` exists.
    pub fn has_chardev(&self) -> bool {
        self.has_option("chardev")
    }

    /// `-no-hpet` exists.
    pub fn has_no_hpet(&self) -> bool {
        self.has_option("no-hpet")
    }

    /// The PC machine has an `hpet` property (`-machine hpet=off`).
    pub fn has_machine_hpet(&self) -> bool {
        self.machine_properties.contains("hpet")
    }

    /// `-qmp` exists.
    pub fn has_qmp(&self) -> bool {
        self.has_option("qmp")
    }

    /// `-machine` exists (older binaries only have `-M`).
    pub fn has_machine_option(&self) -> bool {
        self.has_option("machine")
    }

    /// The device type (or alias) is known.
    pub fn has_device_type(&self, name: &str) -> bool {
        self.devices.contains(name)
    }

    /// Whether device `driver` has property `prop` (`disable-legacy`, `disable-modern`,
    /// `iommu_platform`, `ats`, `aer`: the `virtio_dev_*` keys), which avocado-vt asks
    /// `-device DRIVER,help`. The answer follows from QEMU's virtio transports instead of a probe
    /// per device: a PCI proxy (`*-pci`, `virtio-vga*`) has all five, a transitional or
    /// non-transitional one all but `disable-legacy`/`disable-modern` (its mode is fixed), a
    /// transport-less or CCW device only `iommu_platform`. `None` when kvmtest cannot tell: a
    /// driver of no virtio transport, another property, or a QEMU before 2.9 (where the five
    /// were not all there yet).
    pub fn virtio_property(&self, driver: &str, prop: &str) -> Option<bool> {
        const ALL: &[&str] = &[
            "disable-legacy",
            "disable-modern",
            "iommu_platform",
            "ats",
            "aer",
        ];
        let virtio = driver.starts_with("virtio-") || driver.starts_with("vhost-");
        if !virtio || !ALL.contains(&prop) || self.version < QemuVersion::new(2, 9, 0) {
            return None;
        }
        if driver.ends_with("-pci-transitional") || driver.ends_with("-pci-non-transitional") {
            Some(!prop.starts_with("disable-"))
        } else if driver.ends_with("-pci") || driver.starts_with("virtio-vga") {
            Some(true)
        } else if driver.ends_with("-device") || driver.ends_with("-ccw") {
            Some(prop == "iommu_platform")
        } else {
            None
        }
    }

    /// `-drive` lists the sub-option (e.g. `boot` on old binaries).
    pub fn has_drive_option(&self, name: &str) -> bool {
        self.drive_options.contains(name)
    }

    /// User-mode networking lists the sub-option (`tftp`, `bootfile`, `hostfwd`).
    pub fn has_user_net_option(&self, name: &str) -> bool {
        self.user_net_options.contains(name)
    }

    /// The network backend exists (`user`, `tap`, `bridge`…).
    pub fn has_netdev_backend(&self, name: &str) -> bool {
        self.netdev_backends.contains(name)
    }

    /// The machine type (or alias) exists.
    pub fn has_machine(&self, name: &str) -> bool {
        self.machines.contains(name)
    }

    /// The CPU model exists (`host` and `max` are accepted whenever the list is empty).
    pub fn has_cpu_model(&self, name: &str) -> bool {
        self.cpu_models.contains(name)
    }

    /// `-accel NAME` exists.
    pub fn has_accelerator(&self, name: &str) -> bool {
        self.accelerators.contains(name)
    }

    /// `-chardev NAME` exists (`spicevmc`, `socket`…).
    pub fn has_chardev_backend(&self, name: &str) -> bool {
        self.chardev_backends.contains(name)
    }

    /// `-spice` works: the binary lists its sub-options (`-spice help`).
    pub fn has_spice(&self) -> bool {
        !self.spice_options.is_empty()
    }

    /// `-spice` takes sub-option `name` (`password-secret`, `tls-port`…).
    pub fn has_spice_option(&self, name: &str) -> bool {
        self.spice_options.contains(name)
    }
}

/// Option names from `-help`: every line starting with `-`, up to the first space, `[`, `,` or
/// `=`; `-fda/-fdb` gives both.
fn parse_options(help: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in help.lines() {
        if !line.starts_with('-') {
            continue;
        }
        let head = line
            .split(|c: char| c.is_whitespace() || c == '[' || c == ',' || c == '=')
            .next()
            .unwrap_or("");
        for name in head.split('/') {
            let name = name.trim_start_matches('-');
            if !name.is_empty() {
                out.insert(name.to_string());
            }
        }
    }
    out
}

/// The `[,name=` / `[,name]` sub-options in the help block of the option starting with `prefix`
/// (its first line and the indented continuation lines).
fn sub_options(help: &str, prefix: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut inside = false;
    for line in help.lines() {
        if line.starts_with(prefix) {
            inside = true;
        } else if !line.starts_with(' ') {
            inside = false;
        }
        if inside {
            collect_bracketed(line, &mut out);
        }
    }
    out
}

/// User-net sub-options: from `-netdev user` or, on old binaries, `-net user`.
fn user_net_options(help: &str) -> BTreeSet<String> {
    let mut out = sub_options(help, "-netdev user");
    out.extend(sub_options(help, "-net user"));
    out
}

fn collect_bracketed(line: &str, out: &mut BTreeSet<String>) {
    for part in line.split("[,").skip(1) {
        let name: String = part
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect();
        if !name.is_empty() {
            out.insert(name);
        }
    }
}

/// The first word after `prefix` on each help line starting with it, cut at `:`, `[`, `,`
/// or `=` (`-display sdl[,gl=…]` → `sdl`, `-incoming tcp:[host]:port` → `tcp`).
fn option_forms(help: &str, prefix: &str) -> BTreeSet<String> {
    help.lines()
        .filter_map(|l| l.strip_prefix(prefix))
        .filter_map(|rest| {
            rest.split(|c: char| c.is_whitespace() || ":[,=".contains(c))
                .next()
        })
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// Backends an old binary names in `-net user|tap|…` lines.
fn legacy_backends(help: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in help.lines() {
        for prefix in ["-netdev ", "-net "] {
            if let Some(rest) = line.strip_prefix(prefix) {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                    .collect();
                if !name.is_empty() && name != "nic" && name != "none" {
                    out.insert(name);
                }
            }
        }
    }
    out
}

/// `name "X", bus …, alias "Y"` lines of `-device help`.
fn parse_devices(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        for key in ["name \"", "alias \""] {
            if let Some(at) = line.find(key) {
                let rest = &line[at + key.len()..];
                if let Some(end) = rest.find('"') {
                    out.insert(rest[..end].to_string());
                }
            }
        }
    }
    out
}

/// The first word of each line that passes `keep` (machine lists, backend lists).
fn first_words(text: &str, keep: impl Fn(&str) -> bool) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && keep(l))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// `  name=<type>  - description` lines of `-machine pc,help`.
fn parse_properties(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.trim_start().split_once('='))
        .map(|(k, _)| k.trim().to_string())
        .filter(|k| !k.is_empty() && !k.contains(' '))
        .collect()
}

/// The `  NAME=<type>` lines under `spice options:` of `-spice help` (nothing when the output
/// is an error: no SPICE, or a module that does not load).
fn parse_spice_options(text: &str) -> BTreeSet<String> {
    let mut lines = text.lines();
    if !lines.any(|l| l.trim_end() == "spice options:") {
        return BTreeSet::new();
    }
    lines
        .take_while(|l| l.starts_with(' '))
        .filter_map(|l| l.trim_start().split_once('='))
        .map(|(k, _)| k.to_string())
        .filter(|k| !k.is_empty() && !k.contains(' '))
        .collect()
}

/// The CPU models of `-cpu help`: the list up to the first blank line after it starts. Up to
/// QEMU 9.x each line is `x86 NAME …` (`x86 [NAME]` in old releases); from 10.0 the architecture
/// prefix is gone and the lines are indented, `  NAME …`, under an `Available CPUs:` header.
/// Both forms are read; unindented lines without the `x86` prefix are headers.
fn parse_cpus(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if out.is_empty() {
                continue;
            }
            break;
        }
        let mut words = line.split_whitespace();
        let first = words.next();
        let name = if line.starts_with(char::is_whitespace) {
            first
        } else if first == Some("x86") {
            words.next()
        } else {
            None
        };
        if let Some(name) = name {
            let name = name.trim_matches(|c| c == '[' || c == ']');
            if !name.is_empty() {
                out.insert(name.to_string());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `-device DRIVER,help` of QEMU 7.2 and 10.0 lists (checked on both binaries).
    #[test]
    fn virtio_properties_follow_the_transport() {
        let caps = Capabilities::from_help(
            &HelpTexts {
                version: "QEMU emulator version 7.2.0".into(),
                ..HelpTexts::default()
            },
            "test",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let has = |d: &str, p: &str| caps.virtio_property(d, p);
        for d in [
            "virtio-net-pci",
            "vhost-vsock-pci",
            "virtio-iommu-pci",
            "virtio-vga",
        ] {
            for p in [
                "disable-legacy",
                "disable-modern",
                "iommu_platform",
                "ats",
                "aer",
            ] {
                assert_eq!(has(d, p), Some(true), "{d} {p}");
            }
        }
        let nt = "virtio-blk-pci-non-transitional";
        assert_eq!(has(nt, "disable-legacy"), Some(false));
        assert_eq!(has(nt, "aer"), Some(true));
        assert_eq!(has("virtio-net-device", "iommu_platform"), Some(true));
        assert_eq!(has("virtio-net-device", "ats"), Some(false));
        assert_eq!(has("VGA", "ats"), None, "not a virtio device");
        assert_eq!(has("vfio-pci", "ats"), None, "not a virtio device");
        assert_eq!(has("virtio-net-pci", "mq"), None, "not one of the five");
        let old = Capabilities {
            version: QemuVersion::new(2, 8, 0),
            ..caps.clone()
        };
        assert_eq!(old.virtio_property("virtio-net-pci", "ats"), None);
    }

    #[test]
    fn versions() {
        assert_eq!(
            QemuVersion::from_banner("QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg)"),
            Some(QemuVersion::new(7, 2, 22))
        );
        assert_eq!(
            QemuVersion::from_banner("QEMU PC emulator version 0.10.50 (qemu-kvm-devel-88), C"),
            Some(QemuVersion::new(0, 10, 50))
        );
        assert_eq!("9.1".parse(), Ok(QemuVersion::new(9, 1, 0)));
        assert!("9".parse::<QemuVersion>().is_err());
        assert!("9.1.2.3".parse::<QemuVersion>().is_err());
        assert!(QemuVersion::new(9, 0, 0) > QemuVersion::new(7, 2, 22));
    }

    #[test]
    fn options_and_sub_options() {
        let help = "QEMU emulator version 1.0\n-fda/-fdb file  floppy\n-drive [file=file][,if=type]\n       [,boot=on|off]\n-no-hpet        disable\n-net user[,vlan=n][,tftp=dir][,bootfile=f]\n-m megs\n";
        let o = parse_options(help);
        for name in ["fda", "fdb", "drive", "no-hpet", "net", "m"] {
            assert!(o.contains(name), "{name}");
        }
        let d = sub_options(help, "-drive ");
        assert!(d.contains("if") && d.contains("boot") && !d.contains("tftp"));
        let u = user_net_options(help);
        assert!(u.contains("tftp") && u.contains("bootfile") && !u.contains("hostfwd"));
        assert_eq!(
            legacy_backends(help).into_iter().collect::<Vec<_>>(),
            ["user"]
        );
    }

    #[test]
    fn devices_cpus_properties() {
        let d = parse_devices("name \"virtio-net-pci\", bus PCI, alias \"virtio-net\"\n");
        assert!(d.contains("virtio-net-pci") && d.contains("virtio-net"));
        let c = parse_cpus("Available CPUs:\nx86 486  (alias)\nx86 [qemu64]\n\nRecognized CPUID flags:\n  x86 fpu\n");
        assert_eq!(c.into_iter().collect::<Vec<_>>(), ["486", "qemu64"]);
        // QEMU 10.0: no architecture prefix, indented, the flags after a blank line
        let c = parse_cpus(
            "Available CPUs:\n  486                   (alias configured by machine type)\n  \
             qemu64-v1             QEMU Virtual CPU version 2.5+\n  max                   \
             Enables all\n\nRecognized CPUID flags:\n  3dnow 3dnowext\n",
        );
        assert_eq!(
            c.into_iter().collect::<Vec<_>>(),
            ["486", "max", "qemu64-v1"]
        );
        let p = parse_properties("pc-i440fx-7.2 options:\n  hpet=<bool>   - Enable\n");
        assert!(p.contains("hpet"));
    }

    #[test]
    fn spice_options_only_from_the_list() {
        let o = parse_spice_options(
            "spice options:\n  addr=<str>\n  password-secret=<str>\n  port=<num>\n",
        );
        assert_eq!(
            o.into_iter().collect::<Vec<_>>(),
            ["addr", "password-secret", "port"]
        );
        // QEMU 10 whose SPICE module is not installed
        let missing = "qemu-system-x86_64: -spice help: There is no option group 'spice'\n\
                       qemu-system-x86_64: -spice help: Perhaps you want to install \
                       qemu-system-modules-spice package?\n";
        assert!(parse_spice_options(missing).is_empty());
        assert!(parse_spice_options("").is_empty());
    }
}
