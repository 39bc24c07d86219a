//! The disk guest's recipe: the Debian packages (`mmdebstrap` into a directory tree) and what is
//! changed in the tree afterwards (files written here, a few commands run in it with `chroot`).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use anyhow::{ensure, Context, Result};
use serde_json::{Map, Value};

use crate::host::{run, sha256_bytes, stdout_of};

/// The Debian release installed.
pub(super) const SUITE: &str = "bookworm";
/// Where its packages come from (plus `-updates` and the security archive of the same host).
pub(super) const MIRROR: &str = "http://deb.debian.org/debian";
const SECURITY_MIRROR: &str = "http://deb.debian.org/debian-security";

/// Installed on top of `mmdebstrap --variant=minbase` (Essential packages and apt): an init
/// system and login, the kernel, the services tests talk to, and the tools tp-qemu's tests run
/// in the guest (partitioning and file systems for block tests, `lspci`/`lsusb`/`lsscsi` for
/// device checks, `ethtool` and `ping` for NIC tests, `stress-ng` as a migration workload,
/// `nc` for file transfers, `gawk` for avocado-vt's Linux.cfg commands, such as multi_disk's
/// `show_mount_cmd`).
pub(super) const PACKAGES: &[&str] = &[
    "systemd-sysv",
    "udev",
    "dbus",
    "libpam-systemd",
    "linux-image-amd64",
    "initramfs-tools",
    "openssh-server",
    "qemu-guest-agent",
    "iproute2",
    "iputils-ping",
    "ethtool",
    "procps",
    "kmod",
    "pciutils",
    "usbutils",
    "lsscsi",
    "sg3-utils",
    "e2fsprogs",
    "xfsprogs",
    "dosfstools",
    "fdisk",
    "parted",
    "dmidecode",
    "stress-ng",
    "netcat-openbsd",
    "gawk",
];

/// Modules in the initramfs (`MODULES=list`): what mounting the root file system needs on every
/// disk interface the suite boots from (virtio-blk, virtio-scsi, IDE, AHCI, LSI, NVMe, USB
/// storage, SD). Everything else loads from the root file system via udev.
pub(super) const INITRAMFS_MODULES: &[&str] = &[
    "virtio_pci",
    "virtio_blk",
    "virtio_scsi",
    "sd_mod",
    "sr_mod",
    "ata_piix",
    "ata_generic",
    "ahci",
    "sym53c8xx",
    "nvme",
    "xhci_pci",
    "ehci_pci",
    "uhci_hcd",
    "usb_storage",
    "uas",
    "sdhci_pci",
    "mmc_block",
    "ext4",
];

/// The root file system's label: the kernel command line and `/etc/fstab` find it by label, so
/// the guest boots from whatever disk interface the image is attached to.
pub(super) const ROOT_LABEL: &str = "kvmroot";

/// The kernel command line (syslinux's `APPEND`): the console on the first serial port (and the
/// screen, for screendumps), classic `ethN` NIC names.
pub(super) const KERNEL_CMDLINE: &str =
    "root=LABEL=kvmroot ro console=tty0 console=ttyS0,115200 net.ifnames=0 quiet";

/// avocado-vt's default guest password (`password = 123456` in its base.cfg, for `username =
/// root`): a user's unchanged config logs in.
pub(super) const ROOT_PASSWORD: &str = "123456";

/// Printed on the first serial port once sshd and the network are up (the boot check's timing;
/// the same marker as the initramfs guest's).
const READY_UNIT: &str = "[Unit]
Description=kvmtest: tell the serial console the guest is ready
After=ssh.service systemd-networkd.service getty.target
Wants=ssh.service

[Service]
Type=oneshot
StandardOutput=file:/dev/ttyS0
ExecStart=/usr/bin/echo KVMTEST-GUEST-READY

[Install]
WantedBy=multi-user.target
";

/// The files written into the tree: path, mode, content.
const FILES: &[(&str, u32, &str)] = &[
    ("etc/hostname", 0o644, "kvmtest-guest\n"),
    (
        "etc/hosts",
        0o644,
        "127.0.0.1\tlocalhost\n127.0.1.1\tkvmtest-guest\n::1\tlocalhost ip6-localhost ip6-loopback\n",
    ),
    (
        "etc/fstab",
        0o644,
        "LABEL=kvmroot\t/\text4\tdefaults,errors=remount-ro\t0\t1\n",
    ),
    (
        "etc/initramfs-tools/conf.d/kvmtest",
        0o644,
        "# kvmtest: only the modules listed in ../modules\nMODULES=list\n",
    ),
    // DHCP on every NIC, hotplugged ones included (networkd matches new links as they appear).
    (
        "etc/systemd/network/80-kvmtest-dhcp.network",
        0o644,
        "[Match]\nName=eth* en*\n\n[Network]\nDHCP=yes\n",
    ),
    (
        "etc/ssh/sshd_config.d/kvmtest.conf",
        0o644,
        "PermitRootLogin yes\nPasswordAuthentication yes\nUseDNS no\n",
    ),
    // Hot-plugged CPUs and memory come online by themselves, as on RHEL (its udev rules), which
    // tp-qemu's hotplug tests (cpu_device_hotpluggable, memory hotplug) expect.
    (
        "etc/udev/rules.d/80-kvmtest-hotplug-online.rules",
        0o644,
        "SUBSYSTEM==\"cpu\", ACTION==\"add\", TEST==\"online\", ATTR{online}==\"0\", \
         ATTR{online}=\"1\"\n\
         SUBSYSTEM==\"memory\", ACTION==\"add\", TEST==\"state\", ATTR{state}==\"offline\", \
         ATTR{state}=\"online\"\n",
    ),
    // Modules udev would load for the emulated CPU and platform that no test uses (KVM inside
    // the guest, AMD's crypto co-processor, wireless regulatory, the PC speaker): each costs
    // boot time under TCG.
    (
        "etc/modprobe.d/kvmtest-unused.conf",
        0o644,
        "blacklist kvm\nblacklist kvm_amd\nblacklist kvm_intel\nblacklist ccp\n\
         blacklist cfg80211\nblacklist rfkill\nblacklist pcspkr\n",
    ),
    // avocado-vt's default `shell_prompt` is `^\[.*\][\#\$]\s*$`: a RHEL-style prompt.
    (
        "root/.bashrc",
        0o644,
        "# kvmtest: the prompt avocado-vt's default shell_prompt matches\nPS1='[\\u@\\h \\W]\\$ '\n",
    ),
    (
        "root/.profile",
        0o644,
        "if [ -n \"$BASH\" ] && [ -f ~/.bashrc ]; then . ~/.bashrc; fi\n",
    ),
    (
        "etc/systemd/system/kvmtest-ready.service",
        0o644,
        READY_UNIT,
    ),
];

/// Units that only slow the boot or change the guest behind a test's back.
const MASKED_UNITS: &[&str] = &[
    "systemd-networkd-wait-online.service",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "e2scrub_all.timer",
    "e2scrub_reap.service",
    "fstrim.timer",
];

/// sha256 of every file the recipe writes (and the module list), for the manifest's inputs.
pub(super) fn files_digest() -> Result<Value> {
    let mut out = Map::new();
    for (path, mode, text) in FILES {
        out.insert(
            (*path).to_string(),
            Value::String(format!("{:o} {}", mode, sha256_bytes(text.as_bytes())?)),
        );
    }
    out.insert(
        "etc/initramfs-tools/modules".into(),
        Value::String(sha256_bytes(modules_file().as_bytes())?),
    );
    Ok(Value::Object(out))
}

fn modules_file() -> String {
    let mut s = String::from("# kvmtest: what mounting the root file system needs\n");
    for m in INITRAMFS_MODULES {
        s.push_str(m);
        s.push('\n');
    }
    s
}

/// `mmdebstrap` of [`SUITE`] with [`PACKAGES`] into `tree` (which must not exist).
pub(super) fn bootstrap(tree: &Path) -> Result<()> {
    let mut cmd = Command::new("mmdebstrap");
    cmd.args(["--variant=minbase", "--mode=root"])
        .arg(format!("--include={}", PACKAGES.join(",")))
        // Documentation and translations are of no use to a test guest.
        .args([
            "--dpkgopt=path-exclude=/usr/share/man/*",
            "--dpkgopt=path-exclude=/usr/share/doc/*",
            "--dpkgopt=path-exclude=/usr/share/locale/*",
            "--dpkgopt=path-exclude=/usr/share/info/*",
        ])
        .arg(SUITE)
        .arg(tree)
        .arg(format!("deb {MIRROR} {SUITE} main"))
        .arg(format!("deb {MIRROR} {SUITE}-updates main"))
        .arg(format!("deb {SECURITY_MIRROR} {SUITE}-security main"));
    run(&mut cmd).context("installing the disk guest's packages (mmdebstrap)")
}

/// What the customized tree holds.
pub(super) struct Installed {
    /// `uname -r` of the installed kernel.
    pub(super) kernel_release: String,
    /// `package=version` of every installed package.
    pub(super) packages: Vec<String>,
}

fn chroot(tree: &Path, args: &[&str]) -> Result<()> {
    run(Command::new("chroot").arg(tree).args(args))
}

/// Writes the recipe's files into `tree`, sets root's password and ssh key (the key pair is
/// generated into `out`, the host keys become `out/known_hosts`), enables and masks units and
/// rebuilds the initramfs with [`INITRAMFS_MODULES`].
pub(super) fn customize(tree: &Path, out: &Path) -> Result<Installed> {
    for (path, mode, text) in FILES {
        write(tree, path, *mode, text)?;
    }
    write(tree, "etc/initramfs-tools/modules", 0o644, &modules_file())?;

    // root's password, as avocado-vt's configs expect it.
    let mut chpasswd = Command::new("chroot");
    chpasswd.arg(tree).arg("chpasswd");
    pipe_in(&mut chpasswd, format!("root:{ROOT_PASSWORD}\n").as_bytes())?;

    // A key pair per build: the private half stays beside the image.
    let key = out.join(vm::fixtures::DISK_SSH_KEY);
    for f in [key.clone(), key.with_extension("pub")] {
        if f.exists() {
            fs::remove_file(&f).with_context(|| format!("removing {}", f.display()))?;
        }
    }
    run(Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            vm::fixtures::DISK_HOST_ALIAS,
            "-f",
        ])
        .arg(&key))?;
    let public = fs::read_to_string(key.with_extension("pub")).context("reading the public key")?;
    let ssh_dir = tree.join("root/.ssh");
    fs::create_dir_all(&ssh_dir)?;
    fs::set_permissions(&ssh_dir, fs::Permissions::from_mode(0o700))?;
    write(tree, "root/.ssh/authorized_keys", 0o600, &public)?;

    // The image's host keys (made when openssh-server was installed), pinned for the client.
    let mut known = String::new();
    let mut names: Vec<_> = fs::read_dir(tree.join("etc/ssh"))?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.starts_with("ssh_host_") && n.ends_with("_key.pub"))
        .collect();
    names.sort();
    for name in &names {
        let text = fs::read_to_string(tree.join("etc/ssh").join(name))?;
        let mut parts = text.split_whitespace();
        if let (Some(kind), Some(blob)) = (parts.next(), parts.next()) {
            known.push_str(&format!(
                "{} {kind} {blob}\n",
                vm::fixtures::DISK_HOST_ALIAS
            ));
        }
    }
    ensure!(
        !known.is_empty(),
        "the image has no ssh host keys in /etc/ssh"
    );
    fs::write(out.join(vm::fixtures::DISK_KNOWN_HOSTS), known)?;

    chroot(
        tree,
        &[
            "systemctl",
            "enable",
            "systemd-networkd",
            "kvmtest-ready.service",
        ],
    )?;
    let mut mask = vec!["systemctl", "mask"];
    mask.extend(MASKED_UNITS);
    chroot(tree, &mask)?;
    chroot(tree, &["update-initramfs", "-u", "-k", "all"])?;

    let mut releases: Vec<String> = fs::read_dir(tree.join("usr/lib/modules"))?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    releases.sort();
    ensure!(
        releases.len() == 1,
        "expected one kernel in the image, found {releases:?}"
    );
    let packages = stdout_of(Command::new("chroot").arg(tree).args([
        "dpkg-query",
        "-W",
        "-f",
        "${Package}=${Version}\n",
    ]))?
    .lines()
    .map(str::to_owned)
    .collect();
    Ok(Installed {
        kernel_release: releases.remove(0),
        packages,
    })
}

fn write(tree: &Path, path: &str, mode: u32, text: &str) -> Result<()> {
    let p = tree.join(path);
    if let Some(dir) = p.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?;
    fs::set_permissions(&p, fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", p.display()))
}

/// Runs `cmd` with `input` on its stdin, failing with its stderr.
pub(super) fn pipe_in(cmd: &mut Command, input: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawning {}", crate::host::show(cmd)))?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(input)
        .context("writing stdin")?;
    let out = child.wait_with_output()?;
    ensure!(
        out.status.success(),
        "{} failed ({}): {}",
        crate::host::show(cmd),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// The syslinux configuration of the boot partition.
pub(super) fn syslinux_cfg(kernel: &str, initrd: &str) -> String {
    format!(
        "DEFAULT linux\nPROMPT 0\nTIMEOUT 0\nLABEL linux\n  LINUX /{kernel}\n  INITRD /{initrd}\n  \
         APPEND {KERNEL_CMDLINE}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_label_is_what_the_cmdline_and_fstab_name() {
        assert!(KERNEL_CMDLINE.contains(&format!("root=LABEL={ROOT_LABEL}")));
        let fstab = FILES.iter().find(|f| f.0 == "etc/fstab").map(|f| f.2);
        assert!(fstab.is_some_and(|t| t.starts_with(&format!("LABEL={ROOT_LABEL}\t"))));
    }

    #[test]
    fn syslinux_boots_the_kernel_with_the_cmdline() {
        let cfg = syslinux_cfg("vmlinuz", "initrd.img");
        assert!(cfg.contains("LINUX /vmlinuz\n"));
        assert!(cfg.contains(&format!("APPEND {KERNEL_CMDLINE}\n")));
    }
}
