//! `cargo xtask fixtures disk-guest`: the disk guest, a Debian bookworm system installed from
//! Debian's packages into a qcow2 image that boots from its own disk, as a tp-qemu user's guest
//! does: systemd, a serial getty, sshd (root's key generated per build, and avocado-vt's default
//! password), DHCP on every NIC (systemd-networkd, including hotplugged NICs), qemu-guest-agent on
//! its virtio serial port, and Debian's whole kernel module tree.
//!
//! * `cargo xtask fixtures disk-guest [--out DIR]` builds `disk.qcow2`, `id_ed25519` (+ `.pub`),
//!   `known_hosts` and `manifest.json` into the disk guest dir (`vm::fixtures::disk_guest_dir`:
//!   `KVMTEST_DISK_GUEST_DIR`, else `disk-guest/` under the cargo target dir). The manifest
//!   records the inputs (the recipe: suite, mirror, packages, initramfs modules, kernel command
//!   line, the checksum of every file written into the image) and the outputs (sha256, size) and
//!   the installed package versions; when the inputs and outputs still match, nothing is rebuilt.
//! * `--check [--accel auto|kvm|tcg]` then boots a throw-away overlay of the image and checks the
//!   boot-to-ssh time, the ssh login (key and pinned host key), the guest agent and
//!   `system_powerdown`.
//!
//! Submodules: `recipe` (the guest's packages and files, `mmdebstrap` and the changes made inside
//! the tree), `image` (the tree → ext4 root, FAT boot partition with syslinux, MBR, qcow2: no loop
//! device or mount needed), `check` (`--check`). Every tool runs as an argv.

mod check;
mod image;
mod recipe;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{ensure, Context, Result};
use serde_json::{json, Value};

use super::Options;
use crate::host::file_digest;

/// Bump when the build steps change in a way the recorded inputs do not show.
const RECIPE: u32 = 1;

/// `cargo xtask fixtures disk-guest ARGS…` (`args[0]` is `disk-guest`).
pub fn main(args: &[String]) -> Result<()> {
    let opts = Options::parse_fixture(args, "disk-guest", vm::fixtures::disk_guest_dir, USAGE)?;
    let built = build_if_needed(&opts.out)?;
    if let Some(accel) = opts.check {
        check::check(&built, accel)?;
    }
    Ok(())
}

/// A built disk guest.
pub(super) struct Built {
    pub(super) dir: PathBuf,
    pub(super) image: PathBuf,
    pub(super) key: PathBuf,
    pub(super) known_hosts: PathBuf,
}

impl Built {
    fn in_dir(dir: &Path) -> Built {
        Built {
            dir: dir.to_path_buf(),
            image: dir.join(vm::fixtures::DISK_IMAGE),
            key: dir.join(vm::fixtures::DISK_SSH_KEY),
            known_hosts: dir.join(vm::fixtures::DISK_KNOWN_HOSTS),
        }
    }
}

/// The outputs the manifest vouches for (the manifest itself is written last).
const OUTPUTS: [&str; 3] = [
    vm::fixtures::DISK_IMAGE,
    vm::fixtures::DISK_SSH_KEY,
    vm::fixtures::DISK_KNOWN_HOSTS,
];

/// The build's inputs, as recorded in the manifest.
fn inputs() -> Result<Value> {
    Ok(json!({
        "recipe": RECIPE,
        "suite": recipe::SUITE,
        "mirror": recipe::MIRROR,
        "packages": recipe::PACKAGES,
        "initramfs_modules": recipe::INITRAMFS_MODULES,
        "kernel_cmdline": recipe::KERNEL_CMDLINE,
        "files": recipe::files_digest()?,
        "root_size_mib": image::ROOT_MIB,
    }))
}

/// Why an existing build cannot be reused, or `None` when it can.
fn stale_reason(dir: &Path, manifest: &Value, inputs: &Value) -> Result<Option<String>> {
    if manifest["inputs"] != *inputs {
        return Ok(Some("inputs changed".into()));
    }
    for name in OUTPUTS {
        let path = dir.join(name);
        if !path.exists() {
            return Ok(Some(format!("{name} is missing")));
        }
        if manifest["outputs"][name] != file_digest(&path)? {
            return Ok(Some(format!("{name} does not match the manifest")));
        }
    }
    Ok(None)
}

fn build_if_needed(out: &Path) -> Result<Built> {
    let inputs = inputs()?;
    let manifest_path = out.join(vm::fixtures::MANIFEST);
    let reason = match fs::read(&manifest_path) {
        Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
            Ok(manifest) => match stale_reason(out, &manifest, &inputs)? {
                None => {
                    eprintln!(
                        "disk-guest: up to date in {} (kernel {})",
                        out.display(),
                        manifest["kernel_release"].as_str().unwrap_or("?")
                    );
                    return Ok(Built::in_dir(out));
                }
                Some(reason) => reason,
            },
            Err(e) => format!("unreadable manifest ({e})"),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => "no previous build".into(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", manifest_path.display())),
    };
    ensure!(
        crate::host::is_root(),
        "building the disk guest needs root (mmdebstrap installs packages into a chroot, and \
         the tree's files must belong to root in the image); run `{}` as root",
        vm::fixtures::BUILD_DISK_GUEST
    );
    eprintln!("disk-guest: building in {} ({reason})", out.display());
    let started = Instant::now();
    fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    // An interrupted build leaves no manifest, so the next one starts over.
    match fs::remove_file(&manifest_path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing {}", manifest_path.display())),
    }
    let work = tempfile::Builder::new()
        .prefix(".build.")
        .tempdir_in(out)
        .context("creating the build dir")?;
    let tree = work.path().join("root");
    recipe::bootstrap(&tree)?;
    let installed = recipe::customize(&tree, out)?;
    let kernel_release = installed.kernel_release.clone();
    image::assemble(&tree, work.path(), &out.join(vm::fixtures::DISK_IMAGE))?;
    drop(work);
    let mut outputs = serde_json::Map::new();
    for name in OUTPUTS {
        outputs.insert(name.to_string(), file_digest(&out.join(name))?);
    }
    let manifest = json!({
        "inputs": inputs,
        "outputs": outputs,
        "kernel_release": kernel_release,
        "installed": installed.packages,
    });
    let text = serde_json::to_string_pretty(&manifest)?;
    fs::write(&manifest_path, text + "\n")
        .with_context(|| format!("writing {}", manifest_path.display()))?;
    eprintln!(
        "disk-guest: built in {:.0} s: {} {} bytes, kernel {kernel_release}",
        started.elapsed().as_secs_f64(),
        vm::fixtures::DISK_IMAGE,
        manifest["outputs"][vm::fixtures::DISK_IMAGE]["size"],
    );
    Ok(Built::in_dir(out))
}

const USAGE: &str =
    "usage: cargo xtask fixtures disk-guest [--out DIR] [--check [--accel auto|kvm|tcg]]
  builds the disk guest (Debian bookworm on a qcow2 disk, from Debian's packages; needs root)
  into DIR (default: $KVMTEST_DISK_GUEST_DIR, else disk-guest/ under the target dir);
  --check boots it and checks the ssh login, the guest agent and system_powerdown";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options() -> Result<()> {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let parse = |a: &[&str]| {
            Options::parse_fixture(&args(a), "disk-guest", vm::fixtures::disk_guest_dir, USAGE)
        };
        let o = parse(&["disk-guest", "--out", "/x", "--check"])?;
        assert_eq!(o.out, Path::new("/x"));
        assert_eq!(o.check, Some(super::super::AccelChoice::Auto));
        assert!(parse(&["disk-guest", "--accel", "kvm"]).is_err());
        assert!(parse(&["disk-guest", "--bogus"]).is_err());
        assert!(parse(&["guest"]).is_err());
        Ok(())
    }

    #[test]
    fn inputs_name_the_recipe() -> Result<()> {
        let i = inputs()?;
        assert_eq!(i["suite"], "bookworm");
        assert!(i["packages"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p == "qemu-guest-agent")));
        assert!(i["files"].as_object().is_some_and(|f| !f.is_empty()));
        Ok(())
    }
}
