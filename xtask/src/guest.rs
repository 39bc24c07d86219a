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
//! boot/serial/QMP/telnet helpers here are the seed of the future `crates/vm`, which will own them.
//! Every external tool runs as an argv (never a shell string); every QEMU started here is killed
//! when its guard drops, and is started under `setpriv --pdeathsig KILL` so that it also dies
//! with this process.

use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, bail, ensure, Context, Result};
use serde_json::{json, Value};

/// Printed on the serial console by the guest's `/init` once every service is up.
pub const READY_MARKER: &str = "KVMTEST-GUEST-READY";
/// The guest shell's prompt (serial console, telnet and `nc`).
pub const PROMPT: &str = "kvmtest# ";
/// Guest port of the telnet shell (`telnetd -l /bin/sh`).
pub const TELNET_PORT: u16 = 23;
/// Guest port of the `nc -ll -e` shell.
pub const NC_PORT: u16 = 2222;

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
    let opts = Options::parse(args)?;
    let built = build_if_needed(&opts.out)?;
    if let Some(accel) = opts.check {
        check(&built, accel)?;
    }
    Ok(())
}

const USAGE: &str = "usage: cargo xtask fixtures guest [--out DIR] [--check [--accel auto|kvm|tcg]]
  builds the test guest (Debian kernel + busybox initramfs) into DIR
  (default: $KVMTEST_GUEST_DIR, else guest/ under the target dir: $CARGO_TARGET_DIR or target/);
  --check boots it and checks serial, telnet, nc, DHCP, disks, hotplug and powerdown";

/// Which accelerator `--check` boots with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AccelChoice {
    /// Whatever [`probe_accel`] picks.
    Auto,
    Kvm,
    Tcg,
}

struct Options {
    out: PathBuf,
    /// `Some` with `--check`.
    check: Option<AccelChoice>,
}

impl Options {
    fn parse(args: &[String]) -> Result<Options> {
        let mut it = args.iter();
        match it.next().map(String::as_str) {
            Some("guest") => {}
            Some(other) => bail!("unknown fixture `{other}` (the one fixture is `guest`)\n{USAGE}"),
            None => bail!("which fixture?\n{USAGE}"),
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
                    eprintln!("{USAGE}");
                    std::process::exit(0);
                }
                other => bail!("unknown argument `{other}`\n{USAGE}"),
            }
        }
        ensure!(
            check || accel == AccelChoice::Auto,
            "--accel only applies to --check"
        );
        Ok(Options {
            out: out.unwrap_or_else(guest_dir),
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

// ---------------------------------------------------------------------------------------------
// Running host tools

/// Runs `cmd` to completion, failing with its stderr when it fails.
fn output(cmd: &mut Command) -> Result<Output> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("spawning {}", show(cmd)))?;
    if !out.status.success() {
        bail!(
            "{} failed ({}): {}",
            show(cmd),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out)
}

/// Runs `cmd` and returns its stdout as text.
fn stdout_of(cmd: &mut Command) -> Result<String> {
    let out = output(cmd)?;
    String::from_utf8(out.stdout).with_context(|| format!("{} printed non-UTF-8", show(cmd)))
}

/// Shell-like rendering of an argv, for logs only.
fn show(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| {
            let a = a.to_string_lossy();
            if !a.is_empty()
                && a.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b))
            {
                a.into_owned()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn sha256_file(path: &Path) -> Result<String> {
    let text = stdout_of(Command::new("sha256sum").arg("--").arg(path))?;
    parse_sha256sum(&text).with_context(|| format!("sha256sum of {}", path.display()))
}

fn sha256_bytes(data: &[u8]) -> Result<String> {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("spawning sha256sum")?;
    child
        .stdin
        .take()
        .context("sha256sum's stdin")?
        .write_all(data)
        .context("writing to sha256sum")?;
    let out = child.wait_with_output().context("waiting for sha256sum")?;
    ensure!(out.status.success(), "sha256sum failed: {}", out.status);
    parse_sha256sum(&String::from_utf8_lossy(&out.stdout))
}

fn parse_sha256sum(text: &str) -> Result<String> {
    let hash = text.split_whitespace().next().unwrap_or_default();
    ensure!(
        hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
        "unexpected sha256sum output {text:?}"
    );
    Ok(hash.to_owned())
}

/// `{"sha256": …, "size": …}` of a file.
fn file_digest(path: &Path) -> Result<Value> {
    let size = fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    Ok(json!({ "sha256": sha256_file(path)?, "size": size }))
}

// ---------------------------------------------------------------------------------------------
// Inputs and the manifest

/// A Debian package at the exact version apt would download now.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Package {
    name: String,
    version: String,
    /// From the archive's index; `apt-get download` checks it, and so do we.
    sha256: String,
}

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
struct Packages {
    kernel: Package,
    busybox: Package,
}

impl Packages {
    fn all(&self) -> [&Package; 2] {
        [&self.kernel, &self.busybox]
    }
}

fn resolve_packages() -> Result<Packages> {
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
fn inputs(packages: &Packages) -> Result<Value> {
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
struct Built {
    dir: PathBuf,
    /// The PVH-bootable ELF kernel (boots several seconds faster under TCG than `vmlinuz`).
    kernel: PathBuf,
    initrd: PathBuf,
    kernel_release: String,
}

impl Built {
    fn from_manifest(dir: &Path, manifest: &Value) -> Result<Built> {
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

// ---------------------------------------------------------------------------------------------
// The build

/// Whether this process runs as root (the owner of `/proc/self` is the effective uid).
fn is_root() -> bool {
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// `apt-get download NAME=VERSION…` into `dir`, then the path of each package's `.deb`, checked
/// against the archive's sha256.
fn download(packages: &[&Package], dir: &Path) -> Result<Vec<PathBuf>> {
    let mut cmd = Command::new("apt-get");
    cmd.current_dir(dir).args(["download", "-q"]);
    if is_root() {
        // The sandbox user `_apt` cannot write into our private temporary directory.
        cmd.args(["-o", "APT::Sandbox::User=root"]);
    }
    cmd.args(packages.iter().map(|p| format!("{}={}", p.name, p.version)));
    eprintln!("$ {}", show(&cmd));
    output(&mut cmd).context("downloading the guest's packages (run `apt-get update` first?)")?;
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

fn extract(deb: &Path, dir: &Path) -> Result<()> {
    let mut cmd = Command::new("dpkg-deb");
    cmd.arg("-x").arg(deb).arg(dir);
    eprintln!("$ {}", show(&cmd));
    output(&mut cmd).map(drop)
}

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
fn build(out: &Path, packages: &Packages, inputs: Value) -> Result<Value> {
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

// ---------------------------------------------------------------------------------------------
// The guest's own files (busybox sh scripts and configuration, not host-side commands)

struct GuestFile {
    /// Path inside the initramfs, relative to its root.
    path: &'static str,
    mode: u32,
    text: &'static str,
}

const GUEST_FILES: &[GuestFile] = &[
    GuestFile {
        path: "init",
        mode: 0o755,
        text: r#"#!/bin/busybox sh
# kvmtest test guest: sets the system up as PID 1, then execs busybox init (console shell).
/bin/busybox mkdir -p /proc /sys /dev /tmp /run /var/log /root /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
export PATH=/sbin:/usr/sbin:/bin:/usr/bin HOME=/root ENV=/etc/profile PS1='kvmtest# '
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts
mount -t devpts devpts /dev/pts
exec </dev/console >/dev/console 2>&1
# Keep kernel messages off the console, where tests talk to the shell.
dmesg -n 1
ln -s /run /var/run
hostname kvmtest
while read -r m; do
    modprobe "$m" || echo "kvmtest-init: modprobe $m failed"
done </etc/modules
ip link set lo up
# DHCP on the NICs present at boot, in parallel; each returns leased or after about 5 s.
for d in /sys/class/net/eth*; do
    [ -e "$d" ] && kvmtest-dhcp "${d##*/}" &
done
wait
kvmtest-netwatch &
telnetd -l /bin/sh
(while :; do nc -ll -p 2222 -e /sbin/kvmtest-ncsh; sleep 1; done) &
acpid
echo "KVMTEST-GUEST-READY kernel=$(uname -r) uptime=$(cut -d' ' -f1 /proc/uptime)"
exec /bin/busybox init
"#,
    },
    GuestFile {
        path: "etc/inittab",
        mode: 0o644,
        text: "# busybox init: a root shell on the console, respawned when it exits.
::respawn:/bin/cttyhack /bin/sh
::ctrlaltdel:/sbin/reboot -f
::shutdown:/bin/sync
",
    },
    GuestFile {
        path: "etc/profile",
        mode: 0o644,
        text: "export PATH=/sbin:/usr/sbin:/bin:/usr/bin
PS1='kvmtest# '
",
    },
    GuestFile {
        path: "etc/passwd",
        mode: 0o644,
        text: "root:x:0:0:root:/root:/bin/sh\n",
    },
    GuestFile {
        path: "etc/group",
        mode: 0o644,
        text: "root:x:0:\n",
    },
    GuestFile {
        path: "sbin/kvmtest-dhcp",
        mode: 0o755,
        text: r#"#!/bin/sh
# kvmtest-dhcp IFACE: brings IFACE up with a DHCP client, unless one already serves it.
# Returns once leased, or after 5 tries (the client then keeps trying in the background).
i=$1
p=/run/udhcpc.$i.$(cat "/sys/class/net/$i/ifindex" 2>/dev/null).pid
[ -f "$p" ] && kill -0 "$(cat "$p")" 2>/dev/null && exit 0
ip link set "$i" up
exec udhcpc -b -t 5 -T 1 -A 3 -i "$i" -p "$p" -s /etc/udhcpc.script -x hostname:kvmtest \
    >>"/var/log/udhcpc.$i.log" 2>&1
"#,
    },
    GuestFile {
        path: "sbin/kvmtest-netwatch",
        mode: 0o755,
        text: r#"#!/bin/sh
# Gives every NIC that appears later (hotplug) a DHCP client.
while :; do
    for d in /sys/class/net/eth*; do
        [ -e "$d" ] && kvmtest-dhcp "${d##*/}"
    done
    sleep 1
done
"#,
    },
    GuestFile {
        path: "sbin/kvmtest-ncsh",
        mode: 0o755,
        text: "#!/bin/sh
# The shell behind `nc -ll -e`: busybox nc connects stdin and stdout only.
exec /bin/sh -i 2>&1
",
    },
    GuestFile {
        path: "etc/udhcpc.script",
        mode: 0o755,
        text: r#"#!/bin/sh
# udhcpc hook: configures the leased address, routes and resolv.conf.
# Every route of a NIC gets metric = its ifindex. QEMU's user networking gives every NIC the same
# 10.0.2.0/24, and the kernel's own subnet routes all have metric 0, so replies would leave by
# whichever NIC got its lease first; with these metrics the lowest-numbered NIC always wins.
case "$1" in
deconfig)
    ip -4 addr flush dev "$interface"
    ip link set "$interface" up
    ;;
bound|renew)
    metric=$(cat "/sys/class/net/$interface/ifindex")
    prefix=${mask:-24}
    if ! ip -4 addr show dev "$interface" | grep -q "inet $ip/$prefix "; then
        ip -4 addr flush dev "$interface"
        ip addr add "$ip/$prefix" dev "$interface"
        net=$(ipcalc -n "$ip/$prefix" | cut -d= -f2)
        ip route del "$net/$prefix" dev "$interface" 2>/dev/null
        ip route add "$net/$prefix" dev "$interface" src "$ip" metric "$metric"
    fi
    for r in $router; do
        ip route replace default via "$r" dev "$interface" metric "$metric"
        break
    done
    if [ -n "$dns" ]; then
        : >/etc/resolv.conf
        for d in $dns; do echo "nameserver $d" >>/etc/resolv.conf; done
    fi
    ;;
esac
exit 0
"#,
    },
    GuestFile {
        path: "etc/acpi/PWRF/00000080",
        mode: 0o755,
        text: "#!/bin/sh
# busybox acpid runs this on an ACPI power-button press (QMP system_powerdown).
sync
exec poweroff -f
",
    },
    GuestFile {
        path: "sbin/shutdown",
        mode: 0o755,
        text: "#!/bin/sh
# `shutdown [ARGS]`: powers off at once (disks synced first); the guest has nothing to stop.
sync
exec poweroff -f
",
    },
    GuestFile {
        path: "bin/lspci",
        mode: 0o755,
        text: r#"#!/bin/sh
# busybox has no lspci: prints `lspci -n` lines ("00:03.0 0200: 1af4:1000") from sysfs.
for d in /sys/bus/pci/devices/*; do
    [ -e "$d/vendor" ] || continue
    read -r v <"$d/vendor"
    read -r dev <"$d/device"
    read -r c <"$d/class"
    c=${c#0x}
    a=${d##*/}
    echo "${a#0000:} ${c%??}: ${v#0x}:${dev#0x}"
done
"#,
    },
];

// ---------------------------------------------------------------------------------------------
// Booting the guest

/// The accelerator to run guests with, and why it was chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accel {
    /// A guest reached its ready marker under KVM.
    Kvm { reason: String },
    /// KVM is unusable (or was not asked for); QEMU emulates the CPU.
    Tcg { reason: String },
}

impl Accel {
    /// The `-accel` value.
    pub fn qemu_name(&self) -> &'static str {
        match self {
            Accel::Kvm { .. } => "kvm",
            Accel::Tcg { .. } => "tcg",
        }
    }
}

impl fmt::Display for Accel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (Accel::Kvm { reason } | Accel::Tcg { reason }) = self;
        write!(f, "{} ({reason})", self.qemu_name())
    }
}

/// How long a guest under KVM may take to print its ready marker before KVM is judged unusable.
const KVM_PROBE_TIMEOUT: Duration = Duration::from_secs(20);
/// Boot-to-ready under TCG takes about 5 s here; a loaded CI machine gets generous slack.
const TCG_READY_TIMEOUT: Duration = Duration::from_secs(90);
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// Picks KVM only if a guest actually runs under it: `/dev/kvm` opens read-write, the host CPU
/// has `vmx` or `svm`, and `kernel` + `initrd` (the kvmtest guest) boot under `-accel kvm` to
/// the ready marker within 20 s; TCG otherwise. Prints the choice and the reason.
///
/// On the machines this project runs on `/dev/kvm` exists and QEMU accepts `-accel kvm`, but the
/// CPU exposes no virtualization extensions and a KVM guest hangs in early boot, hence the boot.
pub fn probe_accel(qemu: &Path, kernel: &Path, initrd: &Path) -> Accel {
    let accel = match kvm_blocker() {
        Some(reason) => Accel::Tcg { reason },
        None => match boot_under_kvm(qemu, kernel, initrd) {
            Ok(took) => Accel::Kvm {
                reason: format!(
                    "a guest reached its ready marker under KVM in {:.1} s",
                    took.as_secs_f64()
                ),
            },
            Err(e) => Accel::Tcg {
                reason: format!("/dev/kvm looks usable but a guest under KVM failed: {e:#}"),
            },
        },
    };
    eprintln!("accelerator: {accel}");
    accel
}

/// Why KVM cannot work here, judged without starting a guest: the vm crate's cheap probe
/// (`/dev/kvm` opens read-write and the CPU shows vmx or svm).
fn kvm_blocker() -> Option<String> {
    let choice = vm::probe_accel();
    match choice.accel {
        qemu_cmd::types::Accel::Kvm => None,
        _ => Some(choice.reason),
    }
}

fn boot_under_kvm(qemu: &Path, kernel: &Path, initrd: &Path) -> Result<Duration> {
    let run = tempfile::Builder::new()
        .prefix("kvmtest-kvm-probe.")
        .tempdir()
        .context("creating the probe's directory")?;
    let mut guest = Guest::start(&BootSpec {
        qemu,
        accel: "kvm",
        kernel,
        initrd,
        extra: Vec::new(),
        logs: run.path(),
    })?;
    guest.wait_ready(KVM_PROBE_TIMEOUT)
}

/// One QEMU invocation of the guest.
struct BootSpec<'a> {
    qemu: &'a Path,
    accel: &'a str,
    kernel: &'a Path,
    initrd: &'a Path,
    /// Devices and other options after the common ones.
    extra: Vec<OsString>,
    /// Where `serial.log` and `qemu.stderr` go.
    logs: &'a Path,
}

/// A QEMU process, SIGKILLed (and reaped) when dropped unless it has exited; its socket
/// directory is removed after that.
struct QemuGuard {
    child: Child,
    _sockets: tempfile::TempDir,
}

impl Drop for QemuGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // Best effort: the process may exit on its own between the check and the kill.
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// A running guest: its QEMU, serial console and QMP socket.
struct Guest {
    qemu: QemuGuard,
    serial: Wire<UnixStream>,
    qmp_path: PathBuf,
    stderr_path: PathBuf,
    started: Instant,
}

impl Guest {
    fn start(spec: &BootSpec<'_>) -> Result<Guest> {
        // Unix socket paths are limited to 108 bytes: keep them in a short temporary directory.
        let sockets = tempfile::Builder::new()
            .prefix("kvmtest-guest.")
            .tempdir()
            .context("creating a socket directory")?;
        let serial_path = sockets.path().join("serial.sock");
        let qmp_path = sockets.path().join("qmp.sock");
        fs::create_dir_all(spec.logs)
            .with_context(|| format!("creating {}", spec.logs.display()))?;
        let stderr_path = spec.logs.join("qemu.stderr");
        let stderr = File::create(&stderr_path)
            .with_context(|| format!("creating {}", stderr_path.display()))?;

        let mut argv: Vec<OsString> = Vec::new();
        let mut push = |a: &str| argv.push(a.into());
        for a in ["-nodefaults", "-no-user-config", "-display", "none"] {
            push(a);
        }
        for a in ["-accel", spec.accel, "-m", "256", "-smp", "1", "-no-reboot"] {
            push(a);
        }
        push("-chardev");
        // wait=on: QEMU starts the guest only once we are connected, so no output is lost.
        argv.push(qemu_opt(
            "socket,id=serial0,server=on,wait=on,path=",
            &serial_path,
            "",
        ));
        argv.extend(["-serial".into(), "chardev:serial0".into(), "-qmp".into()]);
        argv.push(qemu_opt("unix:", &qmp_path, ",server=on,wait=off"));
        argv.extend(["-kernel".into(), spec.kernel.as_os_str().to_owned()]);
        argv.extend(["-initrd".into(), spec.initrd.as_os_str().to_owned()]);
        argv.extend(["-append".into(), "console=ttyS0 quiet panic=-1".into()]);
        argv.extend(spec.extra.iter().cloned());

        // setpriv makes the kernel SIGKILL QEMU if this process dies without dropping the guard.
        let mut cmd = Command::new("setpriv");
        cmd.args(["--pdeathsig", "KILL", "--"])
            .arg(spec.qemu)
            .args(&argv)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        eprintln!("$ {}", show(&cmd));
        let started = Instant::now();
        let child = cmd
            .spawn()
            .with_context(|| format!("spawning {}", spec.qemu.display()))?;
        let mut qemu = QemuGuard {
            child,
            _sockets: sockets,
        };
        let stream = connect_unix(&mut qemu, &serial_path, &stderr_path)?;
        let log = spec.logs.join("serial.log");
        let serial = Wire::new(stream, "the serial console", Protocol::Raw, Some(&log))?;
        Ok(Guest {
            qemu,
            serial,
            qmp_path,
            stderr_path,
            started,
        })
    }

    /// Waits for the ready marker; returns the time since QEMU was spawned.
    fn wait_ready(&mut self, timeout: Duration) -> Result<Duration> {
        let remaining = timeout.saturating_sub(self.started.elapsed());
        self.serial
            .read_until(READY_MARKER.as_bytes(), remaining, "the ready marker")
            .map_err(|e| with_stderr(e, &self.stderr_path))?;
        Ok(self.started.elapsed())
    }

    fn qmp(&mut self) -> Result<Qmp> {
        let stream = connect_unix(&mut self.qemu, &self.qmp_path, &self.stderr_path)?;
        Qmp::new(stream)
    }
}

/// `before` + `path` + `after` as one QEMU option value, with the commas in `path` doubled as
/// QEMU's option syntax requires.
fn qemu_opt(before: &str, path: &Path, after: &str) -> OsString {
    let mut bytes = before.as_bytes().to_vec();
    for &b in path.as_os_str().as_encoded_bytes() {
        bytes.push(b);
        if b == b',' {
            bytes.push(b',');
        }
    }
    bytes.extend_from_slice(after.as_bytes());
    <OsString as std::os::unix::ffi::OsStringExt>::from_vec(bytes)
}

/// Adds QEMU's stderr to an error, as its innermost cause (printed last).
fn with_stderr(e: anyhow::Error, stderr_path: &Path) -> anyhow::Error {
    let stderr = fs::read_to_string(stderr_path).unwrap_or_default();
    if stderr.trim().is_empty() {
        e
    } else {
        anyhow!(
            "QEMU's stderr:\n---- QEMU stderr ----\n{}\n---- end of QEMU stderr ----",
            stderr.trim()
        )
        .context(format!("{e:#}"))
    }
}

/// Connects to a socket QEMU creates, retrying for up to 10 s while QEMU runs.
fn connect_unix(qemu: &mut QemuGuard, path: &Path, stderr_path: &Path) -> Result<UnixStream> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let err = match UnixStream::connect(path) {
            Ok(s) => return Ok(s),
            Err(e) => e,
        };
        if let Some(status) = qemu.child.try_wait().context("polling QEMU")? {
            return Err(with_stderr(
                anyhow!("QEMU exited ({status}) before {} appeared", path.display()),
                stderr_path,
            ));
        }
        if Instant::now() >= deadline {
            return Err(err).with_context(|| format!("connecting to {} for 10 s", path.display()));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ---------------------------------------------------------------------------------------------
// Byte streams: serial console, telnet, nc, QMP

/// A stream whose reads can time out.
trait Stream: Read + Write {
    fn set_timeout(&self, timeout: Duration) -> io::Result<()>;
}

impl Stream for UnixStream {
    fn set_timeout(&self, timeout: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(timeout))
    }
}

impl Stream for TcpStream {
    fn set_timeout(&self, timeout: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(timeout))
    }
}

/// What is on the wire besides data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Protocol {
    Raw,
    /// Telnet: every option the server offers or asks for is refused.
    Telnet,
}

// The telnet side (refuse every option, strip commands) is the vm crate's own client filter.
use vm::session::{telnet_filter, TelnetState};

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The last few hundred bytes of `buf` (the output since the last match), for error messages.
fn tail(buf: &[u8]) -> String {
    if buf.is_empty() {
        return "no output since the last match".into();
    }
    let start = buf.len().saturating_sub(600);
    format!(
        "output since the last match ends with:\n{}",
        String::from_utf8_lossy(&buf[start..])
    )
}

/// A byte stream read up to expected text, with deadlines, optionally logged to a file.
struct Wire<S> {
    stream: S,
    name: &'static str,
    protocol: Protocol,
    telnet: TelnetState,
    /// Received data not consumed yet.
    buf: Vec<u8>,
    log: Option<File>,
}

impl<S: Stream> Wire<S> {
    fn new(stream: S, name: &'static str, protocol: Protocol, log: Option<&Path>) -> Result<Self> {
        let log = match log {
            Some(path) => {
                Some(File::create(path).with_context(|| format!("creating {}", path.display()))?)
            }
            None => None,
        };
        Ok(Wire {
            stream,
            name,
            protocol,
            telnet: TelnetState::Data,
            buf: Vec::new(),
            log,
        })
    }

    fn send(&mut self, text: &str) -> Result<()> {
        self.stream
            .write_all(text.as_bytes())
            .with_context(|| format!("writing to {}", self.name))
    }

    /// Reads until `needle`; returns everything up to and including it.
    fn read_until(&mut self, needle: &[u8], timeout: Duration, what: &str) -> Result<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(pos) = find(&self.buf, needle) {
                return Ok(self.buf.drain(..pos + needle.len()).collect());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!(
                    "timed out after {:.1} s waiting for {what} on {}; {}",
                    timeout.as_secs_f64(),
                    self.name,
                    tail(&self.buf)
                );
            }
            self.stream
                .set_timeout(left)
                .with_context(|| format!("setting a timeout on {}", self.name))?;
            let n = match self.stream.read(&mut chunk) {
                Ok(0) => bail!(
                    "{} closed while waiting for {what}; {}",
                    self.name,
                    tail(&self.buf)
                ),
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) =>
                {
                    continue
                }
                Err(e) => return Err(e).with_context(|| format!("reading {}", self.name)),
            };
            if let Some(log) = &mut self.log {
                log.write_all(&chunk[..n])
                    .with_context(|| format!("logging {}", self.name))?;
            }
            match self.protocol {
                Protocol::Raw => self.buf.extend_from_slice(&chunk[..n]),
                Protocol::Telnet => {
                    let mut replies = Vec::new();
                    telnet_filter(&mut self.telnet, &chunk[..n], &mut self.buf, &mut replies);
                    if !replies.is_empty() {
                        self.stream.write_all(&replies).with_context(|| {
                            format!("answering telnet options on {}", self.name)
                        })?;
                    }
                }
            }
        }
    }
}

/// A guest shell on a [`Wire`]: runs one command at a time between unique markers.
struct Shell<'w, S> {
    wire: &'w mut Wire<S>,
    newline: &'static str,
    count: u32,
}

impl<'w, S: Stream> Shell<'w, S> {
    /// Waits for the first prompt.
    fn open(wire: &'w mut Wire<S>, newline: &'static str) -> Result<Self> {
        wire.read_until(PROMPT.as_bytes(), COMMAND_TIMEOUT, "the shell prompt")?;
        Ok(Shell {
            wire,
            newline,
            count: 0,
        })
    }

    /// Runs `cmd`, returning its output (`\r` removed); fails with the output on a non-zero
    /// status. The markers are split by `''` in the command line, so that the terminal's echo of
    /// the command never matches them.
    fn run(&mut self, cmd: &str) -> Result<String> {
        self.count += 1;
        let n = self.count;
        let line = format!(
            "echo KVMTEST''-BEGIN-{n}; {cmd}; echo KVMTEST''-END-{n}:$?{}",
            self.newline
        );
        self.wire.send(&line)?;
        let what = format!("the end of `{cmd}`");
        let end = format!("KVMTEST-END-{n}:");
        let mut got = self
            .wire
            .read_until(end.as_bytes(), COMMAND_TIMEOUT, &what)?;
        got.extend(self.wire.read_until(b"\n", COMMAND_TIMEOUT, &what)?);
        let text = String::from_utf8_lossy(&got).replace('\r', "");
        let begin = format!("KVMTEST-BEGIN-{n}\n");
        let start = text
            .find(&begin)
            .map(|i| i + begin.len())
            .with_context(|| format!("no start marker before the output of `{cmd}` in {text:?}"))?;
        let (out, status) = text[start..]
            .rsplit_once(&end)
            .with_context(|| format!("no end marker after the output of `{cmd}`"))?;
        let status = status.trim();
        ensure!(
            status == "0",
            "`{cmd}` on {} exited with status {status}; output:\n{out}",
            self.wire.name
        );
        Ok(out.to_owned())
    }
}

/// A minimal synchronous QMP client (the async `monitor` crate is for the real harness).
struct Qmp {
    wire: Wire<UnixStream>,
    events: Vec<Value>,
}

impl Qmp {
    fn new(stream: UnixStream) -> Result<Qmp> {
        let mut qmp = Qmp {
            wire: Wire::new(stream, "QMP", Protocol::Raw, None)?,
            events: Vec::new(),
        };
        let greeting = qmp.message()?;
        ensure!(greeting.get("QMP").is_some(), "no QMP greeting: {greeting}");
        qmp.execute("qmp_capabilities", json!({}))?;
        Ok(qmp)
    }

    fn message(&mut self) -> Result<Value> {
        let line = self
            .wire
            .read_until(b"\n", COMMAND_TIMEOUT, "a QMP message")?;
        serde_json::from_slice(&line).context("parsing a QMP message")
    }

    fn execute(&mut self, command: &str, arguments: Value) -> Result<Value> {
        let msg = json!({ "execute": command, "arguments": arguments });
        self.wire.send(&format!("{msg}\n"))?;
        loop {
            let reply = self.message()?;
            if reply.get("event").is_some() {
                self.events.push(reply);
            } else if let Some(ret) = reply.get("return") {
                return Ok(ret.clone());
            } else {
                bail!("QMP {command} failed: {}", reply["error"]);
            }
        }
    }

    fn human(&mut self, command_line: &str) -> Result<String> {
        let out = self.execute(
            "human-monitor-command",
            json!({ "command-line": command_line }),
        )?;
        Ok(out.as_str().unwrap_or_default().to_owned())
    }

    /// Waits for event `name` whose `data` satisfies `matches` (events already received count).
    fn wait_event(
        &mut self,
        name: &str,
        matches: impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let found = self
                .events
                .iter()
                .position(|e| e["event"] == name && matches(&e["data"]));
            if let Some(i) = found {
                return Ok(self.events.remove(i));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            ensure!(
                !left.is_zero(),
                "timed out after {:.1} s waiting for QMP event {name}",
                timeout.as_secs_f64()
            );
            let line = self
                .wire
                .read_until(b"\n", left, &format!("QMP event {name}"))?;
            self.events
                .push(serde_json::from_slice(&line).context("parsing a QMP message")?);
        }
    }
}

/// Host port → guest port of each TCP forward in HMP `info usernet` output (QEMU chose the host
/// ports: `hostfwd=tcp:127.0.0.1:0-:23` binds port 0, which is race-free).
fn parse_usernet(text: &str) -> Vec<(u16, u16)> {
    text.lines()
        .filter(|l| l.contains("TCP[HOST_FORWARD]"))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((f.get(3)?.parse().ok()?, f.get(5)?.parse().ok()?))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// `--check`

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// Polls the guest with `cmd` until `done(output)` holds; returns how long it took.
fn poll<S: Stream>(
    shell: &mut Shell<'_, S>,
    cmd: &str,
    timeout: Duration,
    what: &str,
    done: impl Fn(&str) -> bool,
) -> Result<Duration> {
    let started = Instant::now();
    loop {
        let out = shell.run(cmd)?;
        if done(&out) {
            return Ok(started.elapsed());
        }
        ensure!(
            started.elapsed() < timeout,
            "timed out after {:.0} s waiting for {what}; last `{cmd}`:\n{out}",
            timeout.as_secs_f64()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn check(built: &Built, choice: AccelChoice) -> Result<()> {
    // The QEMU under test: `KVMTEST_QEMU`, else `qemu-system-x86_64`.
    let qemu_binary = qemu_cmd::probe::default_binary();
    let qemu = qemu_binary.as_path();
    let accel = match choice {
        AccelChoice::Auto => probe_accel(qemu, &built.kernel, &built.initrd),
        AccelChoice::Kvm => Accel::Kvm {
            reason: "--accel kvm".into(),
        },
        AccelChoice::Tcg => Accel::Tcg {
            reason: "--accel tcg".into(),
        },
    };
    let logs = built.dir.join("check");
    let run = tempfile::Builder::new()
        .prefix("kvmtest-guest-check.")
        .tempdir()
        .context("creating the check's directory")?;
    let mut extra: Vec<OsString> = Vec::new();
    for (i, (model, fwd)) in [
        (
            "virtio-net-pci",
            format!(",hostfwd=tcp:127.0.0.1:0-:{TELNET_PORT},hostfwd=tcp:127.0.0.1:0-:{NC_PORT}"),
        ),
        ("e1000", String::new()),
        ("rtl8139", String::new()),
    ]
    .into_iter()
    .enumerate()
    {
        extra.push("-netdev".into());
        extra.push(format!("user,id=net{i}{fwd}").into());
        extra.push("-device".into());
        extra.push(format!("{model},netdev=net{i}").into());
    }
    for (name, interface) in [("virtio.img", "virtio"), ("ide.img", "ide")] {
        let path = run.path().join(name);
        File::create(&path)
            .and_then(|f| f.set_len(1 << 20))
            .with_context(|| format!("creating {}", path.display()))?;
        extra.push("-drive".into());
        extra.push(qemu_opt(
            &format!("format=raw,if={interface},file="),
            &path,
            "",
        ));
    }
    let spec = BootSpec {
        qemu,
        accel: accel.qemu_name(),
        kernel: &built.kernel,
        initrd: &built.initrd,
        extra,
        logs: &logs,
    };
    let mut guest = Guest::start(&spec)?;
    let result = check_guest(&mut guest, built, &accel, &logs);
    drop(guest);
    result.with_context(|| {
        format!(
            "guest check failed (QEMU stderr and the serial log are in {})",
            logs.display()
        )
    })
}

fn check_guest(guest: &mut Guest, built: &Built, accel: &Accel, logs: &Path) -> Result<()> {
    let timeout = match accel {
        Accel::Kvm { .. } => KVM_PROBE_TIMEOUT,
        Accel::Tcg { .. } => TCG_READY_TIMEOUT,
    };
    let ready = guest.wait_ready(timeout)?;
    let marker_line =
        guest
            .serial
            .read_until(b"\n", COMMAND_TIMEOUT, "the end of the ready line")?;
    let uptime = String::from_utf8_lossy(&marker_line)
        .split_whitespace()
        .find_map(|w| w.strip_prefix("uptime=").map(str::to_owned))
        .unwrap_or_else(|| "?".into());
    eprintln!(
        "check: {} booted to the ready marker in {} (guest uptime {uptime} s)",
        accel.qemu_name(),
        secs(ready)
    );

    let mut qmp = guest.qmp()?;
    let mut serial = Shell::open(&mut guest.serial, "\n")?;
    let release = serial.run("uname -r")?;
    ensure!(
        release.trim() == built.kernel_release,
        "guest runs {release:?}, built {}",
        built.kernel_release
    );
    let pci = serial.run("lspci")?;
    for (id, what) in [
        ("1af4:1000", "virtio-net"),
        ("8086:100e", "e1000"),
        ("10ec:8139", "rtl8139"),
        ("1af4:1001", "virtio-blk"),
    ] {
        ensure!(pci.contains(id), "lspci shows no {what} ({id}):\n{pci}");
    }
    let blocks = serial.run("ls /sys/block")?;
    for disk in ["vda", "sda"] {
        ensure!(
            blocks.split_whitespace().any(|b| b == disk),
            "no {disk} in /sys/block: {blocks}"
        );
    }
    let drivers = serial.run(
        "for n in eth0 eth1 eth2; do echo $n $(basename $(readlink /sys/class/net/$n/device/driver)); done",
    )?;
    eprintln!(
        "check: serial shell ok: kernel {}, NIC drivers {}, disks vda (virtio) and sda (IDE)",
        release.trim(),
        drivers.split_whitespace().collect::<Vec<_>>().join(" ")
    );

    let forwards = parse_usernet(&qmp.human("info usernet")?);
    let host_port = |guest_port: u16| {
        forwards
            .iter()
            .find(|(_, g)| *g == guest_port)
            .map(|(h, _)| *h)
            .with_context(|| format!("`info usernet` shows no forward to guest port {guest_port}"))
    };

    let telnet_port = host_port(TELNET_PORT)?;
    let started = Instant::now();
    let stream = TcpStream::connect(("127.0.0.1", telnet_port))
        .with_context(|| format!("connecting to the telnet forward 127.0.0.1:{telnet_port}"))?;
    let log = logs.join("telnet.log");
    let mut telnet_wire = Wire::new(stream, "telnet", Protocol::Telnet, Some(&log))?;
    let mut telnet = Shell::open(&mut telnet_wire, "\r\n")?;
    let login = started.elapsed();
    let addrs = telnet.run("ip addr")?;
    let leased = addrs.matches("inet 10.0.2.15/24").count();
    ensure!(
        leased == 3,
        "expected 10.0.2.15/24 on eth0, eth1 and eth2 (DHCP), found {leased}:\n{addrs}"
    );
    let routes = telnet.run("ip route")?;
    // The kernel lists routes to one destination best first: eth0's must win (see the udhcpc hook).
    for dest in ["default ", "10.0.2.0/24 "] {
        let best = routes
            .lines()
            .find(|l| l.starts_with(dest))
            .unwrap_or_default();
        ensure!(
            best.contains(" dev eth0 "),
            "the best route `{}` should be via eth0:\n{routes}",
            dest.trim()
        );
    }
    let netdev = telnet.run("cat /proc/net/dev")?;
    ensure!(
        netdev.contains("eth0:"),
        "no eth0 in /proc/net/dev:\n{netdev}"
    );
    eprintln!(
        "check: telnet ok (127.0.0.1:{telnet_port} -> guest :{TELNET_PORT}, prompt after {}): \
         10.0.2.15/24 on eth0, eth1, eth2",
        secs(login)
    );

    let nc_port = host_port(NC_PORT)?;
    let stream = TcpStream::connect(("127.0.0.1", nc_port))
        .with_context(|| format!("connecting to the nc forward 127.0.0.1:{nc_port}"))?;
    let mut nc_wire = Wire::new(stream, "nc", Protocol::Raw, Some(&logs.join("nc.log")))?;
    let mut nc = Shell::open(&mut nc_wire, "\n")?;
    let who = nc.run("id -u")?;
    ensure!(who.trim() == "0", "nc shell runs as uid {who:?}");
    eprintln!("check: nc ok (127.0.0.1:{nc_port} -> guest :{NC_PORT}), root shell");

    let count = "ls /sys/bus/pci/devices | wc -l";
    let before: u32 = serial
        .run(count)?
        .trim()
        .parse()
        .context("counting PCI devices")?;
    qmp.execute("netdev_add", json!({ "type": "user", "id": "hotnet" }))?;
    qmp.execute(
        "device_add",
        json!({ "driver": "virtio-net-pci", "id": "hotnic", "netdev": "hotnet" }),
    )?;
    let seen = poll(
        &mut serial,
        count,
        COMMAND_TIMEOUT,
        "the hotplugged NIC",
        |o| o.trim().parse::<u32>().is_ok_and(|n| n > before),
    )?;
    let leased = poll(
        &mut serial,
        "ip -4 addr show dev eth3 2>&1 || true",
        COMMAND_TIMEOUT,
        "DHCP on the hotplugged eth3",
        |o| o.contains("inet 10.0.2.15/24"),
    )?;
    qmp.execute("device_del", json!({ "id": "hotnic" }))?;
    let unplug = Instant::now();
    qmp.wait_event(
        "DEVICE_DELETED",
        |data| data["device"] == "hotnic",
        COMMAND_TIMEOUT,
    )?;
    poll(
        &mut serial,
        count,
        COMMAND_TIMEOUT,
        "the unplugged NIC to go",
        |o| o.trim().parse::<u32>().is_ok_and(|n| n == before),
    )?;
    let unplugged = unplug.elapsed();
    eprintln!(
        "check: hotplug ok: virtio-net-pci seen in the guest after {}, eth3 leased {} later; \
         unplugged (DEVICE_DELETED, gone from sysfs) after {}",
        secs(seen),
        secs(leased),
        secs(unplugged)
    );

    qmp.execute("system_powerdown", json!({}))?;
    let started = Instant::now();
    let status = loop {
        if let Some(status) = guest.qemu.child.try_wait().context("polling QEMU")? {
            break status;
        }
        ensure!(
            started.elapsed() < COMMAND_TIMEOUT,
            "QEMU still runs {} s after system_powerdown",
            COMMAND_TIMEOUT.as_secs()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    ensure!(
        status.success(),
        "QEMU exited with {status} after system_powerdown"
    );
    eprintln!(
        "check: system_powerdown ok: QEMU exited after {}",
        secs(started.elapsed())
    );
    eprintln!("check: all passed");
    Ok(())
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

    #[test]
    fn usernet_forwards() {
        let text = "Hub -1 (#net059):\n  Protocol[State]    FD  Source Address  Port   Dest. \
                    Address  Port RecvQ SendQ\n  TCP[HOST_FORWARD]   8       127.0.0.1 40667  \
                    10.0.2.15    23     0     0\n  TCP[HOST_FORWARD]   3       127.0.0.1 35677  \
                    10.0.2.15  2222     0     0\n  UDP[236 sec]       33      10.0.2.15    68  \
                    10.0.2.2    67     0     0\n";
        assert_eq!(parse_usernet(text), vec![(40667, 23), (35677, 2222)]);
    }

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

    #[test]
    fn qemu_option_paths_escape_commas() {
        let opt = qemu_opt("file=", Path::new("/tmp/a,b"), ",if=virtio");
        assert_eq!(opt, OsString::from("file=/tmp/a,,b,if=virtio"));
    }

    #[test]
    fn module_names_normalized() {
        assert_eq!(module_key("t10-pi"), "t10_pi");
    }
}
