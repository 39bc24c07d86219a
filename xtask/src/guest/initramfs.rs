//! The guest build: downloads and unpacks the packages, picks the kernel modules and their
//! dependencies (`ModuleTree`), assembles the initramfs tree, packs it reproducibly (cpio + gzip)
//! and extracts the PVH-bootable `vmlinux` from the package's bzImage; [`build`] runs it all and
//! writes the outputs and the manifest.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::SystemTime;

use anyhow::{bail, ensure, Context, Result};
use serde_json::{json, Value};

use super::files::GUEST_FILES;
use super::packages::Packages;
use super::wire::find;
use super::{MODULES, PROMPT, READY_MARKER};
use crate::apt::{download, extract};
use crate::host::{file_digest, output, show, stdout_of};

/// Module names compare with `-` and `_` as the same character, as the kernel does.
fn module_key(name: &str) -> String {
    name.replace('-', "_")
}

/// The kernel modules of one kernel release, by name.
struct ModuleTree {
    /// `lib/modules/KVER` of the unpacked kernel package.
    base: PathBuf,
    /// Module name → path relative to `base` (`kernel/drivers/net/virtio_net.ko`).
    files: std::collections::BTreeMap<String, PathBuf>,
    builtin: std::collections::BTreeSet<String>,
}

impl ModuleTree {
    fn scan(base: &Path) -> Result<ModuleTree> {
        let mut files = std::collections::BTreeMap::new();
        let mut stack = vec![base.join("kernel")];
        while let Some(dir) = stack.pop() {
            for entry in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
                let path = entry?.path();
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
                let name = name.unwrap_or_default();
                if path.is_dir() {
                    stack.push(path);
                } else if let Some(stem) = name.strip_suffix(".ko") {
                    let rel = path.strip_prefix(base).unwrap_or(&path).to_path_buf();
                    files.insert(module_key(stem), rel);
                } else if name.contains(".ko.") {
                    // Debian 12 ships plain `.ko`; a later release compresses them, which busybox
                    // modprobe cannot load: decompress them here when that day comes.
                    bail!(
                        "compressed kernel module {} is not supported",
                        path.display()
                    );
                }
            }
        }
        let builtin_list = base.join("modules.builtin");
        let builtin = fs::read_to_string(&builtin_list)
            .with_context(|| format!("reading {}", builtin_list.display()))?
            .lines()
            .filter_map(|l| Path::new(l).file_name()?.to_str()?.strip_suffix(".ko"))
            .map(module_key)
            .collect();
        Ok(ModuleTree {
            base: base.to_path_buf(),
            files,
            builtin,
        })
    }

    /// The requested modules that are loadable (not built in), and the files of their closure
    /// under `depends`, sorted.
    fn closure(&self, requested: &[&str]) -> Result<(Vec<String>, Vec<PathBuf>)> {
        let mut load = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        let mut todo: Vec<String> = Vec::new();
        for name in requested {
            let key = module_key(name);
            if self.files.contains_key(&key) {
                load.push((*name).to_owned());
                todo.push(key);
            } else if !self.builtin.contains(&key) {
                bail!("kernel module {name} is neither in the package nor built in");
            }
        }
        while let Some(key) = todo.pop() {
            if !seen.insert(key.clone()) {
                continue;
            }
            let rel = self
                .files
                .get(&key)
                .with_context(|| format!("kernel module {key} (a dependency) is missing"))?;
            let depends = stdout_of(
                Command::new("modinfo")
                    .args(["-F", "depends"])
                    .arg(self.base.join(rel)),
            )?;
            todo.extend(
                depends
                    .trim()
                    .split(',')
                    .filter(|d| !d.is_empty())
                    .map(module_key),
            );
        }
        let files = seen
            .iter()
            .filter_map(|k| self.files.get(k).cloned())
            .collect();
        Ok((load, files))
    }
}

fn write_file(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    fs::write(path, data).with_context(|| format!("writing {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", path.display()))
}

/// Every path under `root` (relative, parents before children), with mode 0755 on directories
/// and the modification time set to the epoch, so that the archive depends on contents only.
fn normalize_tree(root: &Path) -> Result<Vec<PathBuf>> {
    let mut all = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
                    .with_context(|| format!("chmod {}", path.display()))?;
                stack.push(path.clone());
            }
            all.push(path);
        }
    }
    for path in &all {
        File::open(path)
            .and_then(|f| f.set_modified(SystemTime::UNIX_EPOCH))
            .with_context(|| format!("setting the mtime of {}", path.display()))?;
    }
    let mut rel: Vec<PathBuf> = all
        .iter()
        .filter_map(|p| p.strip_prefix(root).ok().map(Path::to_path_buf))
        .collect();
    rel.sort();
    Ok(rel)
}

/// `cpio -o -H newc` of `files` (relative to `root`) piped into `gzip -n`, written to `dest`.
fn pack_initramfs(root: &Path, files: &[PathBuf], dest: &Path) -> Result<()> {
    let mut cpio = Command::new("cpio");
    cpio.current_dir(root)
        .args(["--quiet", "-o", "-H", "newc", "-R", "0:0", "--reproducible"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut gzip = Command::new("gzip");
    gzip.args(["-n", "-9"]);
    eprintln!("$ {} | {} > {}", show(&cpio), show(&gzip), dest.display());
    let mut cpio_child = cpio.spawn().context("spawning cpio")?;
    let cpio_out = cpio_child.stdout.take().context("cpio's stdout")?;
    let out = File::create(dest).with_context(|| format!("creating {}", dest.display()))?;
    let mut gzip_child = gzip
        .stdin(cpio_out)
        .stdout(out)
        .spawn()
        .context("spawning gzip")?;
    let mut list = Vec::new();
    for f in files {
        list.extend_from_slice(f.as_os_str().as_encoded_bytes());
        list.push(b'\n');
    }
    let written = cpio_child
        .stdin
        .take()
        .context("cpio's stdin")?
        .write_all(&list);
    let cpio_status = cpio_child.wait().context("waiting for cpio")?;
    let gzip_status = gzip_child.wait().context("waiting for gzip")?;
    written.context("writing the file list to cpio")?;
    ensure!(cpio_status.success(), "cpio failed: {cpio_status}");
    ensure!(gzip_status.success(), "gzip failed: {gzip_status}");
    Ok(())
}

/// Writes the ELF kernel inside `bzimage` to `dest`. QEMU boots an ELF kernel through its PVH
/// entry point (Debian builds `CONFIG_PVH=y`), skipping the firmware's loader and the
/// decompressor, which under TCG take about 5 s of the boot.
fn extract_vmlinux(bzimage: &Path, dest: &Path) -> Result<()> {
    let data = fs::read(bzimage).with_context(|| format!("reading {}", bzimage.display()))?;
    let start = find(&data, b"\xfd7zXZ\0").with_context(|| {
        format!(
            "no xz stream in {} (Debian compresses its kernels with xz)",
            bzimage.display()
        )
    })?;
    let out = File::create(dest).with_context(|| format!("creating {}", dest.display()))?;
    let mut xz = Command::new("xz");
    xz.args(["-dc", "--single-stream"]);
    eprintln!(
        "$ {} < {}[{start}..] > {}",
        show(&xz),
        bzimage.display(),
        dest.display()
    );
    let mut child = xz
        .stdin(Stdio::piped())
        .stdout(out)
        .spawn()
        .context("spawning xz")?;
    let written = child
        .stdin
        .take()
        .context("xz's stdin")?
        .write_all(&data[start..]);
    let status = child.wait().context("waiting for xz")?;
    // xz stops reading after the first stream, so a broken pipe here is expected.
    if let Err(e) = written {
        ensure!(
            e.kind() == io::ErrorKind::BrokenPipe,
            "writing the kernel to xz: {e}"
        );
    }
    ensure!(
        status.success(),
        "xz failed to decompress the kernel: {status}"
    );
    let mut magic = [0u8; 4];
    File::open(dest)
        .and_then(|mut f| f.read_exact(&mut magic))
        .with_context(|| format!("reading {}", dest.display()))?;
    ensure!(
        &magic == b"\x7fELF",
        "the kernel in {} is not an ELF file",
        bzimage.display()
    );
    Ok(())
}

/// Downloads and unpacks the packages, assembles and packs the initramfs, and replaces the
/// outputs and the manifest in `out` (the manifest last, so an interrupted build is redone).
pub(super) fn build(out: &Path, packages: &Packages, inputs: Value) -> Result<Value> {
    fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix(".build.")
        .tempdir_in(out)
        .with_context(|| format!("creating a build directory in {}", out.display()))?;
    let debs_dir = tmp.path().join("debs");
    fs::create_dir(&debs_dir)?;
    let debs = download(&packages.all(), &debs_dir)?;
    let [kernel_deb, busybox_deb] = debs.as_slice() else {
        bail!("expected two downloaded packages, got {debs:?}");
    };
    let (kernel_pkg, busybox_pkg) = (tmp.path().join("kernel"), tmp.path().join("busybox"));
    extract(kernel_deb, &kernel_pkg)?;
    extract(busybox_deb, &busybox_pkg)?;

    let modules_dir = kernel_pkg.join("lib/modules");
    let releases: Vec<String> = fs::read_dir(&modules_dir)
        .with_context(|| format!("reading {}", modules_dir.display()))?
        .map(|e| Ok(e?.file_name().to_string_lossy().into_owned()))
        .collect::<io::Result<_>>()?;
    let [kver] = releases.as_slice() else {
        bail!(
            "expected one kernel release in {}, found {releases:?}",
            modules_dir.display()
        );
    };
    let tree = ModuleTree::scan(&modules_dir.join(kver))?;
    let (load, module_files) = tree.closure(MODULES)?;

    let root = tmp.path().join("root");
    let busybox = fs::read(busybox_pkg.join("bin/busybox")).context("reading bin/busybox")?;
    write_file(&root.join("bin/busybox"), &busybox, 0o755)?;
    for f in GUEST_FILES {
        write_file(&root.join(f.path), f.text.as_bytes(), f.mode)?;
    }
    write_file(
        &root.join("etc/modules"),
        (load.join("\n") + "\n").as_bytes(),
        0o644,
    )?;
    let guest_modules = root.join("lib/modules").join(kver);
    for rel in &module_files {
        let dest = guest_modules.join(rel);
        let data = fs::read(tree.base.join(rel))
            .with_context(|| format!("reading {}", tree.base.join(rel).display()))?;
        write_file(&dest, &data, 0o644)?;
    }
    for meta in ["modules.builtin", "modules.order"] {
        let data = fs::read(tree.base.join(meta)).with_context(|| format!("reading {meta}"))?;
        write_file(&guest_modules.join(meta), &data, 0o644)?;
    }
    let mut depmod = Command::new("depmod");
    depmod.arg("-b").arg(&root).arg(kver);
    eprintln!("$ {}", show(&depmod));
    output(&mut depmod)?;
    ensure!(
        guest_modules.join("modules.dep").exists(),
        "depmod wrote no {}",
        guest_modules.join("modules.dep").display()
    );

    let files = normalize_tree(&root)?;
    let initrd = tmp.path().join("initrd.gz");
    pack_initramfs(&root, &files, &initrd)?;
    let vmlinuz = kernel_pkg.join("boot").join(format!("vmlinuz-{kver}"));
    let vmlinux = tmp.path().join("vmlinux");
    extract_vmlinux(&vmlinuz, &vmlinux)?;

    let manifest = json!({
        "comment": "written by `cargo xtask fixtures guest`; see fixtures/guest/README.md",
        "inputs": inputs,
        "kernel_release": kver,
        "ready_marker": READY_MARKER,
        "prompt": PROMPT,
        "modules": {
            "load": load,
            "builtin": MODULES.iter().filter(|m| tree.builtin.contains(&module_key(m))).collect::<Vec<_>>(),
            "included": module_files,
        },
        "outputs": {
            "vmlinuz": file_digest(&vmlinuz)?,
            "vmlinux": file_digest(&vmlinux)?,
            "initrd.gz": file_digest(&initrd)?,
        },
    });
    for (from, name) in [
        (&vmlinuz, "vmlinuz"),
        (&vmlinux, "vmlinux"),
        (&initrd, "initrd.gz"),
    ] {
        fs::rename(from, out.join(name))
            .with_context(|| format!("moving {name} into {}", out.display()))?;
    }
    let text = serde_json::to_string_pretty(&manifest)? + "\n";
    let staged = tmp.path().join("manifest.json");
    fs::write(&staged, text).with_context(|| format!("writing {}", staged.display()))?;
    fs::rename(&staged, out.join("manifest.json")).context("moving manifest.json into place")?;
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_names_normalized() {
        assert_eq!(module_key("t10-pi"), "t10_pi");
    }
}
