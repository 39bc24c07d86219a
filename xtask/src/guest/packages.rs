//! The guest's inputs and its manifest: the Debian packages at the versions apt would download
//! now (`apt-cache`), everything the build depends on (`inputs`), and `manifest.json`, which
//! decides whether an existing build is reused ([`stale_reason`]; the decision itself is
//! `build_if_needed` in the parent module).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use serde_json::{json, Value};

use super::files::GUEST_FILES;
use super::{BUSYBOX, KERNEL_META, MODULES, RECIPE};
use crate::apt::Package;
use crate::host::{file_digest, sha256_bytes, stdout_of};

/// The package that `linux-image-amd64` depends on (`Depends: linux-image-6.1.0-56-amd64`).
fn parse_kernel_package(depends: &str) -> Option<String> {
    depends.lines().find_map(|line| {
        let dep = line
            .trim()
            .trim_start_matches('|')
            .strip_prefix("Depends:")?;
        let dep = dep.trim();
        (dep.starts_with("linux-image-") && !dep.contains(' ')).then(|| dep.to_owned())
    })
}

/// `Version:` and `SHA256:` of the candidate in `apt-cache show --no-all-versions` output.
fn parse_apt_show(name: &str, text: &str) -> Result<Package> {
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_owned()))
            .filter(|v| !v.is_empty())
    };
    Ok(Package {
        name: name.to_owned(),
        version: field("Version:").with_context(|| format!("no Version: for {name}"))?,
        sha256: field("SHA256:").with_context(|| format!("no SHA256: for {name}"))?,
    })
}

fn apt_package(name: &str) -> Result<Package> {
    let text = stdout_of(Command::new("apt-cache").args(["show", "--no-all-versions", name]))
        .with_context(|| format!("looking up {name} (run `apt-get update` first?)"))?;
    parse_apt_show(name, &text)
}

/// The two packages the guest is made of.
pub(super) struct Packages {
    pub(super) kernel: Package,
    pub(super) busybox: Package,
}

impl Packages {
    pub(super) fn all(&self) -> [&Package; 2] {
        [&self.kernel, &self.busybox]
    }
}

pub(super) fn resolve_packages() -> Result<Packages> {
    let depends = stdout_of(Command::new("apt-cache").args(["depends", KERNEL_META]))
        .with_context(|| format!("looking up {KERNEL_META} (run `apt-get update` first?)"))?;
    let kernel = parse_kernel_package(&depends).with_context(|| {
        format!("`apt-cache depends {KERNEL_META}` names no linux-image package:\n{depends}")
    })?;
    Ok(Packages {
        kernel: apt_package(&kernel)?,
        busybox: apt_package(BUSYBOX)?,
    })
}

/// Everything the build depends on, as recorded in the manifest's `inputs`.
pub(super) fn inputs(packages: &Packages) -> Result<Value> {
    let mut files = serde_json::Map::new();
    for f in GUEST_FILES {
        let digest = json!({ "sha256": sha256_bytes(f.text.as_bytes())?, "size": f.text.len() });
        files.insert(f.path.to_owned(), digest);
    }
    let packages: Vec<Value> = packages
        .all()
        .into_iter()
        .map(|p| json!({ "name": p.name, "version": p.version, "deb_sha256": p.sha256 }))
        .collect();
    Ok(json!({
        "recipe": RECIPE,
        "packages": packages,
        "modules": MODULES,
        "files": files,
    }))
}

const OUTPUTS: [&str; 3] = ["vmlinuz", "vmlinux", "initrd.gz"];

/// The built guest: where its files are and what the manifest says about them.
pub(super) struct Built {
    pub(super) dir: PathBuf,
    /// The PVH-bootable ELF kernel (boots several seconds faster under TCG than `vmlinuz`).
    pub(super) kernel: PathBuf,
    pub(super) initrd: PathBuf,
    pub(super) kernel_release: String,
}

impl Built {
    pub(super) fn from_manifest(dir: &Path, manifest: &Value) -> Result<Built> {
        let kernel_release = manifest["kernel_release"]
            .as_str()
            .context("manifest has no kernel_release")?
            .to_owned();
        Ok(Built {
            dir: dir.to_path_buf(),
            kernel: dir.join("vmlinux"),
            initrd: dir.join("initrd.gz"),
            kernel_release,
        })
    }
}

/// Why an existing build cannot be reused, or `None` when it can.
pub(super) fn stale_reason(dir: &Path, manifest: &Value, inputs: &Value) -> Result<Option<String>> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_package_from_apt_cache_depends() {
        let text = "linux-image-amd64\n  Depends: linux-image-6.1.0-56-amd64\n";
        assert_eq!(
            parse_kernel_package(text).as_deref(),
            Some("linux-image-6.1.0-56-amd64")
        );
        assert_eq!(parse_kernel_package("linux-image-amd64\n"), None);
        let alt = "x\n |Depends: linux-image-6.12.1-amd64\n  Depends: other\n";
        assert_eq!(
            parse_kernel_package(alt).as_deref(),
            Some("linux-image-6.12.1-amd64")
        );
    }

    #[test]
    fn apt_show_fields() -> Result<()> {
        let text = "Package: busybox-static\nVersion: 1:1.35.0-4+deb12u1+b1\nSize: 928188\n\
                    SHA256: 3d3f\n";
        let p = parse_apt_show("busybox-static", text)?;
        assert_eq!(p.version, "1:1.35.0-4+deb12u1+b1");
        assert_eq!(p.sha256, "3d3f");
        assert!(parse_apt_show("x", "Package: x\n").is_err());
        Ok(())
    }
}
