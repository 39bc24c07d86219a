//! `cargo xtask deps`: installs what kvmtest's tests need on a Debian host, from any starting state.
//!
//! The system QEMU is the one of the host's own Debian release (bookworm: 7.2). A new machine of
//! this kind may ship `qemu-utils` from `<codename>-backports` (10.x), whose `Breaks:
//! qemu-system-common (<< 8.0)` makes a plain `apt-get install qemu-system-x86 qemu-utils` fail.
//! So every package of the `qemu` source that is installed, plus the ones we need, is requested
//! as `PACKAGE/<codename>` (apt's "take the version of this release" form) with
//! `--allow-downgrades`: one consistent QEMU, whatever was there before. Nothing is pinned to a
//! build string; the release is read from `/etc/os-release` at run time.
//!
//! The other QEMU major version is not installed system-wide: `cargo xtask fixtures qemu 10.0`
//! unpacks it beside the build (see `qemu_fixture.rs`). For that, `deps` adds the backports suite
//! in a list file of its own, `/etc/apt/sources.list.d/kvmtest-backports.list`, on the mirror the
//! host already uses for its release (from `apt-get indextargets`). Backports are
//! `NotAutomatic`, so the list never upgrades anything by itself. The host's own source files
//! are never edited.
//!
//! Idempotent: a second run installs nothing (`check-install` asserts it). Runs `apt-get` as
//! root, through `sudo` when not root.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};

use crate::host::{is_root, run, stdout_of};

/// Our own apt list file (the host's `debian.sources` is never touched).
pub const LIST_FILE: &str = "/etc/apt/sources.list.d/kvmtest-backports.list";

/// The system QEMU: the packages requested from the host's release.
const QEMU_PACKAGES: &[&str] = &[
    "qemu-system-x86",
    "qemu-system-common",
    "qemu-system-data",
    "qemu-utils",
];

/// Everything else the tests, the guest build and the benches use.
const TOOLS: &[&str] = &[
    // the test guest (xtask/src/guest.rs): apt-get download + dpkg-deb, cpio, modules, xz
    "busybox-static",
    "cpio",
    "kmod",
    "xz-utils",
    // the disk guest (xtask/src/guest/disk): mmdebstrap into a tree, ext4 from the tree, a FAT
    // boot partition with syslinux (through mtools), the partition table
    "mmdebstrap",
    "e2fsprogs",
    "dosfstools",
    "mtools",
    "syslinux",
    "syslinux-common",
    "fdisk",
    // bench qmp: PyPI's qemu.qmp in a venv
    "python3-venv",
    // crates/vm/tests/ssh.rs: a private `sshd -i`
    "openssh-client",
    "openssh-server",
    // the tests' VMs and QEMU's pdeath helper
    "util-linux",
    "iproute2",
    // `nettype = user:passt` NICs (crates/vm/tests/hostnet.rs)
    "passt",
    // `netdst_private = yes`: DHCP on kvmtest's private bridges (crates/vm/tests/tap_network.rs)
    "dnsmasq-base",
    // `nic_hotplug` on a private bridge: the host pings the plugged NIC (tests-suite's suite)
    "iputils-ping",
    // avocado-vt's `ovmf` variants (`ovmf_path = /usr/share/OVMF`): `cargo xtask qemu-accepts`
    "ovmf", // `tpms` with `tpm_type = emulator` (crates/vm/tests/hostdevs.rs, `qemu-accepts`): swtpm
    // and its swtpm_setup. virtio-fs's virtiofsd needs no package of its own on bookworm: its
    // QEMU 7.2 `qemu-system-common` ships the C one as /usr/lib/qemu/virtiofsd (later releases
    // have a `virtiofsd` package, added by `release_tools`).
    "swtpm",
    "swtpm-tools",
    // `cargo xtask slurm-check`: a private single-host Slurm runs the suite as a job array
    "slurmctld",
    "slurmd",
    "slurm-client",
    "munge",
    // crates/tests-suite/tests/report.rs: the HTML report opened in headless Chromium
    "chromium",
];

/// Packages a release has beyond [`TOOLS`]: virtiofsd is a package of its own after bookworm
/// (whose QEMU 7.2 ships it; QEMU 8.0 dropped the C virtiofsd).
fn release_tools(codename: &str) -> &'static [&'static str] {
    match codename {
        "bookworm" | "bullseye" => &[],
        _ => &["virtiofsd"],
    }
}

/// `ID` and `VERSION_CODENAME` of `/etc/os-release`.
pub fn os_release() -> Result<(String, String)> {
    let text = std::fs::read_to_string("/etc/os-release").context("reading /etc/os-release")?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
            .map(|v| v.trim().trim_matches('"').to_string())
    };
    let id = field("ID").unwrap_or_default();
    let codename = field("VERSION_CODENAME").unwrap_or_default();
    ensure!(
        id == "debian" && !codename.is_empty(),
        "cargo xtask deps knows Debian only (this is ID={id:?}, VERSION_CODENAME={codename:?}); \
         install qemu-system-x86 and qemu-utils of one QEMU version, and {} by hand",
        TOOLS.join(" ")
    );
    Ok((id, codename))
}

/// A command, through `sudo` unless we are root.
pub fn as_root(program: &str) -> Command {
    if is_root() {
        Command::new(program)
    } else {
        let mut c = Command::new("sudo");
        c.arg(program);
        c
    }
}

/// The host's own suites of its release (`bookworm`, `bookworm-updates`, `bookworm-security`),
/// with their URIs, as apt lists them (`apt-get indextargets`); backports excluded.
pub fn host_suites(codename: &str) -> Result<Vec<(String, String)>> {
    let mut c = Command::new("apt-get");
    c.args(["indextargets", "--format", "$(REPO_URI) $(RELEASE)"]);
    let mut out: Vec<(String, String)> = Vec::new();
    for line in stdout_of(&mut c)?.lines() {
        let Some((uri, suite)) = line.trim().split_once(' ') else {
            continue;
        };
        let ours = suite == codename
            || suite
                .strip_prefix(codename)
                .is_some_and(|r| r.starts_with('-'));
        let pair = (uri.to_string(), suite.to_string());
        if ours && !suite.ends_with("-backports") && !out.contains(&pair) {
            out.push(pair);
        }
    }
    ensure!(
        !out.is_empty(),
        "no apt source for `{codename}` on this host (apt-get indextargets lists none); run \
         `apt-get update` or configure the release's mirror first"
    );
    Ok(out)
}

/// The mirror the host uses for `codename` itself.
pub fn mirror_of(codename: &str) -> Result<String> {
    host_suites(codename)?
        .into_iter()
        .find(|(_, suite)| suite == codename)
        .map(|(uri, _)| uri)
        .with_context(|| format!("no apt source for `{codename}` itself on this host"))
}

/// The content of our backports list file for `codename`.
pub fn backports_line(mirror: &str, codename: &str) -> String {
    format!(
        "# written by kvmtest's `cargo xtask deps`: the other QEMU major version for \
         `cargo xtask fixtures qemu` (NotAutomatic: nothing is upgraded from here by itself)\n\
         deb {mirror} {codename}-backports main\n"
    )
}

/// Writes [`LIST_FILE`] when it is missing or different. Returns whether it changed.
fn ensure_backports_list(codename: &str) -> Result<bool> {
    let mirror = mirror_of(codename)?;
    let want = backports_line(&mirror, codename);
    if std::fs::read_to_string(LIST_FILE).is_ok_and(|have| have == want) {
        return Ok(false);
    }
    let tmp = tempfile::NamedTempFile::new().context("a temp file for the apt list")?;
    std::fs::write(tmp.path(), &want).context("writing the apt list")?;
    let mut install = as_root("install");
    install.args(["-m", "0644"]).arg(tmp.path()).arg(LIST_FILE);
    run(&mut install)?;
    Ok(true)
}

/// Installed packages built from the `qemu` source package (whatever their origin).
fn installed_qemu_family() -> Result<BTreeSet<String>> {
    let mut c = Command::new("dpkg-query");
    c.args([
        "-W",
        "-f",
        "${db:Status-Abbrev} ${Package} ${source:Package}\n",
    ]);
    let text = stdout_of(&mut c)?;
    Ok(text
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let (status, package, source) = (w.next()?, w.next()?, w.next()?);
            (status.starts_with("ii") && source == "qemu").then(|| package.to_string())
        })
        .collect())
}

/// The packages to request, QEMU's pinned to the host's release.
pub fn install_list(codename: &str, installed_qemu: &BTreeSet<String>) -> Vec<String> {
    let mut qemu: BTreeSet<&str> = QEMU_PACKAGES.iter().copied().collect();
    qemu.extend(installed_qemu.iter().map(String::as_str));
    let mut list: Vec<String> = qemu.iter().map(|p| format!("{p}/{codename}")).collect();
    list.extend(TOOLS.iter().map(|t| (*t).to_string()));
    list.extend(release_tools(codename).iter().map(|t| (*t).to_string()));
    list
}

/// `major.minor` of the first `version X.Y.Z` in a `--version` text.
pub fn major_minor(version_text: &str) -> Option<String> {
    let rest = &version_text[version_text.find("version ")? + "version ".len()..];
    let v: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let mut parts = v.split('.');
    Some(format!("{}.{}", parts.next()?, parts.next()?))
}

/// `cargo xtask deps [--no-update]`.
pub fn main(args: &[String]) -> Result<()> {
    let mut update = true;
    for a in args {
        match a.as_str() {
            "--no-update" => update = false,
            other => bail!("cargo xtask deps: unknown argument {other:?} (known: --no-update)"),
        }
    }
    let (_, codename) = os_release()?;
    let changed = ensure_backports_list(&codename)?;
    if update || changed {
        let mut c = as_root("apt-get");
        c.args(["update", "-qq"]);
        run(&mut c)?;
    }
    let list = install_list(&codename, &installed_qemu_family()?);
    let mut c = as_root("apt-get");
    c.env("DEBIAN_FRONTEND", "noninteractive").args([
        "install",
        "-y",
        "-q",
        "--no-install-recommends",
        "--allow-downgrades",
    ]);
    c.args(&list);
    run(&mut c)?;
    // sshd's privilege separation directory (crates/vm/tests/ssh.rs runs a private `sshd -i`)
    if !Path::new("/run/sshd").is_dir() {
        let mut c = as_root("mkdir");
        c.args(["-p", "/run/sshd"]);
        run(&mut c)?;
    }
    let mut check = as_root("apt-get");
    check.args(["check", "-q"]);
    run(&mut check)?;
    let system = stdout_of(Command::new("qemu-system-x86_64").arg("--version"))?;
    let img = stdout_of(Command::new("qemu-img").arg("--version"))?;
    let (s, i) = (major_minor(&system), major_minor(&img));
    ensure!(
        s.is_some() && s == i,
        "inconsistent QEMU after install: qemu-system-x86_64 {s:?}, qemu-img {i:?}"
    );
    eprintln!(
        "deps: ok: system QEMU {} ({}), qemu-img {}",
        s.unwrap_or_default(),
        system.lines().next().unwrap_or_default().trim(),
        i.unwrap_or_default()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_installed_qemu_package_is_pinned_to_the_release() {
        let installed: BTreeSet<String> = ["qemu-utils", "qemu-block-extra"]
            .iter()
            .map(|s| (*s).to_string())
            .collect();
        let list = install_list("bookworm", &installed);
        assert!(list.contains(&"qemu-utils/bookworm".to_string()));
        assert!(list.contains(&"qemu-block-extra/bookworm".to_string()));
        assert!(list.contains(&"qemu-system-x86/bookworm".to_string()));
        assert!(list.contains(&"cpio".to_string()));
        assert!(list.contains(&"swtpm-tools".to_string()));
        assert!(
            !list.contains(&"virtiofsd".to_string()),
            "bookworm's QEMU ships it"
        );
        assert!(install_list("trixie", &installed).contains(&"virtiofsd".to_string()));
        assert_eq!(
            list.iter().filter(|p| p.starts_with("qemu-utils")).count(),
            1
        );
    }

    #[test]
    fn versions_are_read_from_version_texts() {
        assert_eq!(
            major_minor("QEMU emulator version 7.2.19 (Debian 1:7.2+dfsg-7+deb12u18)\n"),
            Some("7.2".into())
        );
        assert_eq!(
            major_minor("qemu-img version 10.0.2 (Debian 1:10.0.2+ds-2+deb13u1~bpo12+1)"),
            Some("10.0".into())
        );
        assert_eq!(major_minor("nothing here"), None);
    }

    #[test]
    fn the_list_file_names_the_backports_suite_of_the_host_mirror() {
        let line = backports_line("http://deb.debian.org/debian/", "bookworm");
        assert!(line.ends_with("deb http://deb.debian.org/debian/ bookworm-backports main\n"));
    }
}
