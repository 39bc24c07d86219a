//! `cargo xtask fixtures guest`: builds kvmtest's real test guest from Debian's packages, and checks it.
//!
//! The guest is Debian's kernel plus a busybox initramfs (recipe in `fixtures/guest/README.md` and
//! `../shared/docs/guest.md`): a root shell on the serial console, over telnet (guest port 23) and
//! over `nc` (guest port 2222), DHCP on every NIC (including hotplugged ones), drivers for
//! virtio-net/blk/scsi, e1000, e1000e, rtl8139, IDE and AHCI, and ACPI power-button handling.
//!
//! * `cargo xtask fixtures guest [--out DIR]` builds `vmlinux` (the kernel as a PVH-bootable ELF),
//!   `vmlinuz` (the package's bzImage), `initrd.gz` and `manifest.json` into the guest directory
//!   ([`guest_dir`]: `KVMTEST_GUEST_DIR`, else `guest/` under the cargo target dir,
//!   `CARGO_TARGET_DIR` when it is set; the rule is `vm::fixtures`). The manifest records the inputs (package names, versions and `.deb`
//!   checksums, the requested modules, the checksum of every file written into the initramfs) and
//!   the outputs (sha256 and size); when the inputs and outputs still match, nothing is rebuilt.
//! * `--check [--accel auto|kvm|tcg]` then boots the guest and checks the serial shell, telnet,
//!   `nc`, DHCP on three NIC models, disks, PCI hotplug and `system_powerdown`, timing each step.
//!
//! [`probe_accel`] picks the accelerator by booting the guest under KVM; it and the small
//! boot/serial/QMP/telnet helpers in `boot` and `wire` are the seed of the future `crates/vm`,
//! which will own them.
//! Every external tool runs as an argv (never a shell string); every QEMU started here is killed
//! when its guard drops, and is started under `setpriv --pdeathsig KILL` so that it also dies
//! with this process.
//!
//! Host tools and sha256 digests come from `crate::host`, package download and unpacking from
//! `crate::apt` (shared with `fixtures qemu`). This module holds the options, the entry point
//! (`build_if_needed`: resolve the packages, reuse the build the manifest vouches for, else run
//! `initramfs`'s build) and the constants shared by the submodules:
//! * `packages`: the Debian packages (apt resolution), the build's inputs and the manifest
//!   (`stale_reason` says why an existing build cannot be reused);
//! * `initramfs`: the build: download and unpack the `.deb`s, pick the kernel modules, assemble
//!   and pack the initramfs, extract the PVH-bootable `vmlinux`;
//! * `files`: the guest's own files (`/init`, busybox configuration, helper scripts);
//! * `boot`: the accelerator probe ([`probe_accel`], [`Accel`]) and the boot harness (QEMU guard,
//!   serial console and QMP sockets);
//! * `wire`: the byte streams (serial, telnet, `nc`), the guest shell and a minimal QMP client;
//! * `check`: `--check`, the boot check of the built guest.

mod boot;
mod check;
mod disk;
mod files;
mod initramfs;
mod packages;
mod wire;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;

pub use boot::{probe_accel, Accel};
use check::check;
use initramfs::build;
use packages::{inputs, resolve_packages, stale_reason, Built};

/// Printed on the serial console by the guest's `/init` once every service is up.
pub const READY_MARKER: &str = "KVMTEST-GUEST-READY";
/// The guest shell's prompt (serial console, telnet and `nc`).
pub const PROMPT: &str = "kvmtest# ";
/// Guest port of the telnet shell (`telnetd -l /bin/sh`).
pub const TELNET_PORT: u16 = 23;
/// Guest port of the `nc -ll -e` shell.
pub const NC_PORT: u16 = 2222;

/// How long a guest under KVM may take to print its ready marker before KVM is judged unusable.
const KVM_PROBE_TIMEOUT: Duration = Duration::from_secs(20);
/// Boot-to-ready under TCG takes about 5 s here; a loaded CI machine gets generous slack.
const TCG_READY_TIMEOUT: Duration = Duration::from_secs(90);
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// Bump when the build steps change in a way the recorded inputs do not show (the guest files'
/// contents, packages and module list are recorded on their own).
const RECIPE: u32 = 1;
/// The Debian metapackage whose dependency names the current kernel package.
const KERNEL_META: &str = "linux-image-amd64";
const BUSYBOX: &str = "busybox-static";

/// Modules the guest loads at boot, in this order (`modprobe` adds their dependencies). The PCI
/// hotplug drivers (ACPI, PCIe native, SHPC) are built into Debian's kernel.
const MODULES: &[&str] = &[
    "virtio",
    "virtio_ring",
    "virtio_pci_legacy_dev",
    "virtio_pci_modern_dev",
    "virtio_pci",
    "failover",
    "net_failover",
    "virtio_net",
    "virtio_blk",
    "scsi_mod",
    "virtio_scsi",
    "sd_mod",
    "sr_mod",
    "isofs",
    "e1000",
    "e1000e",
    // 8139cp drives QEMU's rtl8139 (a C+ chip); 8139too for the older chips.
    "8139cp",
    "8139too",
    "ata_piix",
    "ahci",
    // The ACPI power button as an input device, read by busybox acpid.
    "button",
    "evdev",
];

/// `cargo xtask fixtures ARGS…`.
pub fn main(args: &[String]) -> Result<()> {
    if args.first().map(String::as_str) == Some("disk-guest") {
        return disk::main(args);
    }
    let opts = Options::parse(args)?;
    let built = build_if_needed(&opts.out)?;
    if let Some(accel) = opts.check {
        check(&built, accel)?;
    }
    Ok(())
}

/// Builds the guest into `out` unless the manifest there shows the same inputs and outputs.
fn build_if_needed(out: &Path) -> Result<Built> {
    let packages = resolve_packages()?;
    let inputs = inputs(&packages)?;
    let manifest_path = out.join("manifest.json");
    let reason = match fs::read(&manifest_path) {
        Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
            Ok(manifest) => match stale_reason(out, &manifest, &inputs)? {
                None => {
                    eprintln!(
                        "guest: up to date in {} ({} {}, {} {})",
                        out.display(),
                        packages.kernel.name,
                        packages.kernel.version,
                        packages.busybox.name,
                        packages.busybox.version
                    );
                    return Built::from_manifest(out, &manifest);
                }
                Some(reason) => reason,
            },
            Err(e) => format!("unreadable manifest ({e})"),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => "no previous build".into(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", manifest_path.display())),
    };
    eprintln!("guest: building in {} ({reason})", out.display());
    let started = Instant::now();
    let manifest = build(out, &packages, inputs)?;
    eprintln!(
        "guest: built in {:.1} s: vmlinuz {} bytes, vmlinux {} bytes, initrd.gz {} bytes, \
         {} modules",
        started.elapsed().as_secs_f64(),
        manifest["outputs"]["vmlinuz"]["size"],
        manifest["outputs"]["vmlinux"]["size"],
        manifest["outputs"]["initrd.gz"]["size"],
        manifest["modules"]["included"]
            .as_array()
            .map_or(0, Vec::len),
    );
    Built::from_manifest(out, &manifest)
}

const USAGE: &str = "usage: cargo xtask fixtures guest [--out DIR] [--check [--accel auto|kvm|tcg]]
  builds the test guest (Debian kernel + busybox initramfs) into DIR
  (default: $KVMTEST_GUEST_DIR, else guest/ under the target dir: $CARGO_TARGET_DIR or target/);
  --check boots it and checks serial, telnet, nc, DHCP, disks, hotplug and powerdown";

/// Which accelerator `--check` boots with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum AccelChoice {
    /// Whatever [`probe_accel`] picks.
    Auto,
    Kvm,
    Tcg,
}

/// `fixtures guest|disk-guest [--out DIR] [--check [--accel auto|kvm|tcg]]`.
pub(super) struct Options {
    pub(super) out: PathBuf,
    /// `Some` with `--check`.
    pub(super) check: Option<AccelChoice>,
}

impl Options {
    fn parse(args: &[String]) -> Result<Options> {
        Options::parse_fixture(args, "guest", guest_dir, USAGE)
    }

    /// The options of fixture `name` (`args[0]`), `--out` defaulting to `default_out()`.
    pub(super) fn parse_fixture(
        args: &[String],
        name: &str,
        default_out: fn() -> PathBuf,
        usage: &str,
    ) -> Result<Options> {
        let mut it = args.iter();
        match it.next().map(String::as_str) {
            Some(n) if n == name => {}
            Some(other) => bail!(
                "unknown fixture `{other}` (the fixtures are `guest`, `disk-guest` and `qemu X.Y`)\n{usage}"
            ),
            None => bail!("which fixture?\n{usage}"),
        }
        let mut out = None;
        let mut check = false;
        let mut accel = AccelChoice::Auto;
        while let Some(arg) = it.next() {
            match arg.as_str() {
                "--out" => {
                    let dir = it.next().context("--out needs a directory")?;
                    out = Some(PathBuf::from(dir));
                }
                "--check" => check = true,
                "--accel" => {
                    accel = match it.next().map(String::as_str) {
                        Some("auto") => AccelChoice::Auto,
                        Some("kvm") => AccelChoice::Kvm,
                        Some("tcg") => AccelChoice::Tcg,
                        other => bail!("--accel takes auto, kvm or tcg, not {other:?}"),
                    }
                }
                "-h" | "--help" => {
                    eprintln!("{usage}");
                    std::process::exit(0);
                }
                other => bail!("unknown argument `{other}`\n{usage}"),
            }
        }
        ensure!(
            check || accel == AccelChoice::Auto,
            "--accel only applies to --check"
        );
        Ok(Options {
            out: out.unwrap_or_else(default_out),
            check: check.then_some(accel),
        })
    }
}

/// Where the guest is built and looked for: `KVMTEST_GUEST_DIR`, else `guest/` under the cargo
/// target dir (`CARGO_TARGET_DIR` when it is set, else the one this xtask was built in), so the
/// tests, which look there through the same rule ([`vm::fixtures::guest_dir`]), find it.
pub fn guest_dir() -> PathBuf {
    vm::fixtures::guest_dir()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn options() -> Result<()> {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let o = Options::parse(&args(&[
            "guest", "--out", "/x", "--check", "--accel", "tcg",
        ]))?;
        assert_eq!(o.out, Path::new("/x"));
        assert_eq!(o.check, Some(AccelChoice::Tcg));
        assert!(Options::parse(&args(&["guest", "--accel", "kvm"])).is_err());
        assert!(Options::parse(&args(&["image"])).is_err());
        assert!(Options::parse(&args(&[])).is_err());
        Ok(())
    }
}
