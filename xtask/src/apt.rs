//! Debian packages for the fixtures: a package at an exact version with its archive SHA256,
//! downloaded with `apt-get download` and checked, and unpacked with `dpkg-deb -x`. The test
//! guest's build and `fixtures qemu` both go through here.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{ensure, Context, Result};

use crate::host::{is_root, output, sha256_file, show, stdout_of};

/// A Debian package at an exact version, with the archive index's SHA256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Package {
    pub(crate) name: String,
    pub(crate) version: String,
    /// From the archive's index; `apt-get download` checks it, and so do we.
    pub(crate) sha256: String,
}

impl Package {
    /// `name` at exactly `version`, with the SHA256 apt's index gives for it.
    pub(crate) fn exact(name: &str, version: &str) -> Result<Package> {
        let text =
            stdout_of(Command::new("apt-cache").args(["show", &format!("{name}={version}")]))?;
        let sha256 = text
            .lines()
            .find_map(|l| l.strip_prefix("SHA256:"))
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .with_context(|| format!("apt-cache show {name}={version} has no SHA256"))?;
        Ok(Package {
            name: name.to_owned(),
            version: version.to_owned(),
            sha256,
        })
    }
}

/// `apt-get download NAME=VERSION…` into `dir`, then the path of each package's `.deb`, checked
/// against the archive's sha256.
pub(crate) fn download(packages: &[&Package], dir: &Path) -> Result<Vec<PathBuf>> {
    let mut cmd = Command::new("apt-get");
    cmd.current_dir(dir).args(["download", "-q"]);
    if is_root() {
        // The sandbox user `_apt` cannot write into our private temporary directory.
        cmd.args(["-o", "APT::Sandbox::User=root"]);
    }
    cmd.args(packages.iter().map(|p| format!("{}={}", p.name, p.version)));
    eprintln!("$ {}", show(&cmd));
    output(&mut cmd).context("downloading packages (run `apt-get update` first?)")?;
    let names: Vec<String> = fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .map(|e| Ok(e?.file_name().to_string_lossy().into_owned()))
        .collect::<io::Result<_>>()?;
    packages
        .iter()
        .map(|p| {
            let prefix = format!("{}_", p.name);
            let deb = names
                .iter()
                .find(|n| n.starts_with(&prefix) && n.ends_with(".deb"))
                .with_context(|| format!("apt-get download left no .deb for {}", p.name))?;
            let path = dir.join(deb);
            let sha = sha256_file(&path)?;
            ensure!(
                sha == p.sha256,
                "{} has sha256 {sha}, the archive index says {}",
                path.display(),
                p.sha256
            );
            Ok(path)
        })
        .collect()
}

/// `dpkg-deb -x DEB DIR`.
pub(crate) fn extract(deb: &Path, dir: &Path) -> Result<()> {
    let mut cmd = Command::new("dpkg-deb");
    cmd.arg("-x").arg(deb).arg(dir);
    eprintln!("$ {}", show(&cmd));
    output(&mut cmd).map(drop)
}
