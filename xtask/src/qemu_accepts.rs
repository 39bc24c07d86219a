//! `cargo xtask qemu-accepts [--qemu PATH] [--only GLOB]… [--set KEY=VALUE]… [--keep]`: the real
//! QEMU accepts the command lines kvmtest renders for avocado-vt's hardware variants.
//!
//! For every reference record of `fixtures/avocado/qemu-X.Y/` (X.Y: the version of `--qemu`,
//! default `qemu-system-x86_64` on `PATH`; `--only` keeps the records whose file stem matches one
//! of the globs, `*` and `?`), the variant's params get these host-independence overrides:
//!
//! * `nettype = user` (and every `nettype_NIC`): the CI host has no bridge, tap, macvtap or vDPA
//!   device to give QEMU (a tap in a network namespace is a possible later step);
//! * `vm_accelerator = tcg` unless KVM works here (`vm::probe_accel`: `/dev/kvm` opens and the
//!   CPU has vmx/svm); with KVM the plan's accelerator is KVM, as avocado-vt's `-enable-kvm`;
//! * hugepages off (`hugepage = no`, `setup_hugepages = no`, no `hugepage_path`, and no
//!   `-mem-path MOUNT` in `extra_params`, where avocado-vt's `hugepages` variant puts it): the
//!   host has no hugetlbfs mount with free pages;
//! * a `spice_x509_prefix` becomes its last component, relative (so in the temp dir), with
//!   `spice_gen_x509 = yes`: the host has no certificate directory of the user's, and the `vm`
//!   crate's generator makes one there as it does at run time (`vm::spice`).
//!
//! Then kvmtest renders the command line with a real [`RunPlan`] whose root, image and run
//! directories are one fresh temp dir; every image it references is created there with
//! `qemu-img create` in its format (64M; a luks one with its `image_secret` and a 10 ms PBKDF
//! iteration time, so opening it does not cost QEMU two seconds of CPU), every ISO as an empty
//! file, the 9p export as a directory, OVMF's variables copied from the firmware's template,
//! SPICE's certificates generated and its `generate`d ports claimed (`vm::spice`). A
//! variant that needs what the host lacks (firmware that is not installed, a host block device,
//! a network image backend, host PCI devices, a host TPM, swtpm or virtiofsd that is not
//! installed, an exported directory outside the temp dir) is reported as "needs host feature"
//! and not faked: the `vm` crate's own check ([`vm::daemons::host_feature_missing`]). The
//! daemons a variant needs beside QEMU (swtpm for an emulated TPM, virtiofsd for a virtio-fs
//! export; a relative `fs_source_dir` is created in the temp dir) are started by the `vm`
//! crate's code ([`vm::daemons::Daemons`]) on the run dir's sockets before QEMU, and stopped
//! after it.
//! QEMU is started (the command line holds `-S`), asked `qmp_capabilities` and `query-status` on
//! its QMP monitor and told to `quit` ([`qemu_cmd::accepts::start_and_quit`], 10 s, killed on
//! timeout). A variant kvmtest refuses to render is fine ("refused: <first problem>"); a command
//! line QEMU rejects is a failure, printed with QEMU's stderr and the argv. The temp dirs are
//! removed unless `--keep`. `--set KEY=VALUE` adds params after the overrides (e.g.
//! `ovmf_path=DIR` for firmware unpacked elsewhere). Ends with one line:
//!
//! ```text
//! qemu-accepts: QEMU X.Y: N variants: A accepted, R refused by kvmtest (named problems), H need
//! a host feature, F rejected by QEMU
//! ```
//!
//! (one line in the output) and fails when F > 0.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use qemu_cmd::accepts::{start_and_quit, Rejected};
use qemu_cmd::probe::{default_cache_dir, probe_cached};
use qemu_cmd::types::{Accel, MonitorKind};
use qemu_cmd::{build, main_vm, Capabilities, Params, RunPlan, VmSpec};

/// How long one QEMU may take from start to exit.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The size of each image created.
const IMAGE_SIZE: &str = "64M";

/// What became of one variant.
enum Verdict {
    Accepted,
    /// kvmtest refused to render it: its first problem.
    Refused(String),
    /// The host lacks what it needs.
    NeedsHost(String),
    /// QEMU rejected the rendered command line: why, with stderr and argv.
    Rejected(String),
}

/// The options.
struct Options {
    qemu: PathBuf,
    only: Vec<String>,
    keep: bool,
    /// `--set KEY=VALUE`: more params, after the overrides.
    set: Vec<(String, String)>,
}

pub fn main(args: &[String]) -> Result<()> {
    let mut opts = Options {
        qemu: PathBuf::from(qemu_cmd::probe::DEFAULT_QEMU),
        only: Vec::new(),
        keep: false,
        set: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .with_context(|| format!("{name} needs a value"))
        };
        match a.as_str() {
            "--qemu" => opts.qemu = PathBuf::from(value("--qemu")?),
            "--only" => opts.only.push(value("--only")?),
            "--keep" => opts.keep = true,
            "--set" => {
                let kv = value("--set")?;
                let (k, v) = kv.split_once('=').context("--set needs KEY=VALUE")?;
                opts.set.push((k.to_string(), v.to_string()));
            }
            _ => bail!(
                "usage: cargo xtask qemu-accepts [--qemu PATH] [--only GLOB]… [--set KEY=VALUE]… \
                 [--keep]"
            ),
        }
    }
    let _egd = egd_stand_in();
    check(&opts).map(drop)
}

/// avocado-vt's `rng_egd` variants connect QEMU's rng-egd chardev to an EGD daemon on
/// `localhost:8000` (avocado-vt starts `egd.pl` there: `setup_egd = yes`). For the start check
/// a listener that accepts and holds connections stands in for it, when the port is free; the
/// thread ends with the process.
fn egd_stand_in() -> Option<std::thread::JoinHandle<()>> {
    let listener = std::net::TcpListener::bind("127.0.0.1:8000").ok()?;
    Some(std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().flatten() {
            held.push(conn);
        }
    }))
}

/// Every variant on `qemu` (what `cargo xtask ci` runs on each QEMU of its matrix): the summary
/// line, or an error when QEMU rejected a command line.
pub fn check_all(qemu: &Path) -> Result<String> {
    check(&Options {
        qemu: qemu.to_path_buf(),
        only: Vec::new(),
        keep: false,
        set: Vec::new(),
    })
}

fn check(opts: &Options) -> Result<String> {
    let (line, rejected) = run(opts)?;
    println!("{line}");
    if rejected > 0 {
        bail!("QEMU rejected {rejected} command line(s) kvmtest rendered");
    }
    Ok(line)
}

/// Runs every selected variant; returns the summary line and the number QEMU rejected.
fn run(opts: &Options) -> Result<(String, usize)> {
    let caps = probe_cached(&opts.qemu, &default_cache_dir())
        .with_context(|| format!("probing {}", opts.qemu.display()))?;
    let version = format!("{}.{}", caps.version.major, caps.version.minor);
    let dir = crate::root().join(format!("fixtures/avocado/qemu-{version}"));
    if !dir.is_dir() {
        bail!(
            "no reference records for QEMU {version} ({} is missing)",
            dir.display()
        );
    }
    let accel = vm::probe_accel();
    eprintln!(
        "qemu-accepts: {} (QEMU {}), accelerator {accel}",
        opts.qemu.display(),
        caps.version
    );
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .filter(|p| {
            let stem = stem(p);
            opts.only.is_empty() || opts.only.iter().any(|g| glob_match(g, &stem))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("no record of {} matches {:?}", dir.display(), opts.only);
    }
    let mut luks = LuksImages::new()?;
    let (mut accepted, mut refused, mut host, mut rejected) = (0, 0, 0, 0);
    for file in &files {
        let name = stem(file);
        let verdict = variant(file, opts, &caps, accel.accel, &mut luks)
            .unwrap_or_else(|e| Verdict::Rejected(format!("{e:#}")));
        match verdict {
            Verdict::Accepted => {
                accepted += 1;
                println!("{name:<32} accepted");
            }
            Verdict::Refused(p) => {
                refused += 1;
                println!("{name:<32} refused: {p}");
            }
            Verdict::NeedsHost(f) => {
                host += 1;
                println!("{name:<32} needs host feature: {f}");
            }
            Verdict::Rejected(why) => {
                rejected += 1;
                println!("{name:<32} REJECTED BY QEMU");
                for line in why.lines() {
                    println!("    {line}");
                }
            }
        }
    }
    let line = format!(
        "qemu-accepts: QEMU {version}: {} variants: {accepted} accepted, {refused} refused by \
         kvmtest (named problems), {host} need a host feature, {rejected} rejected by QEMU",
        files.len()
    );
    Ok((line, rejected))
}

fn stem(p: &Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `*` (any run) and `?` (any one character) against the whole of `name`.
fn glob_match(glob: &str, name: &str) -> bool {
    fn go(g: &[char], n: &[char]) -> bool {
        match g.split_first() {
            None => n.is_empty(),
            Some(('*', rest)) => (0..=n.len()).any(|i| go(rest, &n[i..])),
            Some((c, rest)) => n
                .split_first()
                .is_some_and(|(h, nr)| (*c == '?' || c == h) && go(rest, nr)),
        }
    }
    let g: Vec<char> = glob.chars().collect();
    let n: Vec<char> = name.chars().collect();
    go(&g, &n)
}

/// A record's params with the host-independence overrides (see the module docs).
fn params_of(record: &serde_json::Value, accel: Accel) -> Params {
    let mut params = Params::new();
    if let Some(map) = record.get("params").and_then(serde_json::Value::as_object) {
        for (k, v) in map {
            // `dep`, `_name_map_file`…: the parser's own lists and maps, no test params
            if let Some(v) = v.as_str() {
                params.insert(k.as_str(), v);
            }
        }
    }
    let nettypes: Vec<String> = params
        .keys()
        .filter(|k| *k == "nettype" || k.starts_with("nettype_"))
        .map(str::to_string)
        .collect();
    for k in nettypes {
        params.insert(k, "user");
    }
    params.insert("nettype", "user");
    if accel != Accel::Kvm {
        params.insert("vm_accelerator", "tcg");
    }
    let prefixes: Vec<String> = params
        .keys()
        .filter(|k| *k == "spice_x509_prefix" || k.starts_with("spice_x509_prefix_"))
        .map(str::to_string)
        .collect();
    for k in prefixes {
        let v = params.get(&k).unwrap_or_default().to_string();
        let last = v.trim_end_matches('/').rsplit('/').next().unwrap_or("");
        let last = if last.is_empty() { "spice_x509" } else { last };
        params.insert(k, last.to_string());
        params.insert("spice_gen_x509", "yes");
    }
    params.insert("hugepage", "no");
    params.insert("setup_hugepages", "no");
    params.remove("hugepage_path");
    // avocado-vt's `hugepages` variant also appends `-mem-path MOUNT` to `extra_params`.
    let extra: Vec<String> = params
        .keys()
        .filter(|k| *k == "extra_params" || k.starts_with("extra_params_"))
        .map(str::to_string)
        .collect();
    for k in extra {
        let v = params.get(&k).map(without_mem_path).unwrap_or_default();
        params.insert(k, v);
    }
    params
}

/// `extra_params` without its `-mem-path MOUNT` words.
fn without_mem_path(extra: &str) -> String {
    let mut out = Vec::new();
    let mut words = extra.split_whitespace();
    while let Some(w) = words.next() {
        if w == "-mem-path" {
            words.next();
        } else {
            out.push(w);
        }
    }
    out.join(" ")
}

/// Tries one record.
fn variant(
    file: &Path,
    opts: &Options,
    caps: &Capabilities,
    accel: Accel,
    luks: &mut LuksImages,
) -> Result<Verdict> {
    let text = std::fs::read_to_string(file)?;
    let record: serde_json::Value =
        serde_json::from_str(&text).with_context(|| file.display().to_string())?;
    let mut params = params_of(&record, accel);
    for (k, v) in &opts.set {
        params.insert(k.as_str(), v.as_str());
    }
    let spec = match VmSpec::new(&params, main_vm(&params)) {
        Ok(s) => s,
        Err(e) => return Ok(Verdict::Refused(first_problem(&e))),
    };
    let tmp = tempfile::Builder::new()
        .prefix(&format!("kvmtest-accepts-{}.", stem(file)))
        .tempdir()
        .context("creating a temp dir")?;
    let dir = tmp.path().to_path_buf();
    if opts.keep {
        // Kept for inspection: the caller removes it.
        let _ = tmp.keep();
        eprintln!("{}: kept in {}", stem(file), dir.display());
    }
    let mut plan = RunPlan::in_dir(&spec, &dir, Some(accel));
    // SPICE's generated ports, claimed until QEMU has quit.
    let (spice, _spice_ports) = match vm::spice::decide(&spec, &dir) {
        Ok(d) => d,
        Err(what) => return Ok(Verdict::NeedsHost(format!("SPICE: {what}"))),
    };
    if let Some(v) = plan.values.as_mut() {
        v.spice = spice;
    }
    let mut cmd = match build(&spec, &plan, caps) {
        Ok(c) => c,
        Err(e) => return Ok(Verdict::Refused(first_problem(&e))),
    };
    cmd.set_program(&opts.qemu);
    if !cmd.args().iter().any(|a| a == "-S") {
        cmd.push_args(["-S"]);
    }
    if let Some(missing) = prepare(&spec, &dir, luks)? {
        return Ok(Verdict::NeedsHost(missing));
    }
    if let Some(missing) = missing_host_path(&cmd.args(), &dir) {
        return Ok(Verdict::NeedsHost(missing));
    }
    if let Some(missing) = vm::daemons::host_feature_missing(&spec, &dir) {
        return Ok(Verdict::NeedsHost(missing.to_string()));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("a tokio runtime for the daemons")?;
    let dirs = vm::daemons::DaemonDirs {
        vm: &spec.name,
        run_dir: &dir,
        root_dir: &dir,
        log_dir: &dir,
    };
    let mut daemons = rt
        .block_on(vm::daemons::Daemons::start(&spec, dirs, TIMEOUT))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let Some(qmp) = spec.monitors.iter().find(|m| m.kind == MonitorKind::Qmp) else {
        return Ok(Verdict::NeedsHost(
            "a QMP monitor (`monitors` has none to talk to)".into(),
        ));
    };
    let socket = dir.join(qemu_cmd::names::monitor_socket(&qmp.name));
    let result = start_and_quit(&cmd, &socket, TIMEOUT);
    rt.block_on(daemons.stop(Duration::from_secs(2)));
    match result {
        Ok(status) if status.contains("prelaunch") => Ok(Verdict::Accepted),
        Ok(status) => Ok(Verdict::Rejected(format!(
            "not paused by -S: {status}\n--- argv ---\n{}",
            cmd.render()
        ))),
        Err(e @ Rejected::Spawn(_)) => Err(e.into()),
        Err(e) => Ok(Verdict::Rejected(format!(
            "{e}\n--- argv ---\n{}",
            cmd.render()
        ))),
    }
}

/// The first problem of a refusal, on one line.
fn first_problem(e: &qemu_cmd::BuildError) -> String {
    e.problems()
        .first()
        .map_or_else(|| e.to_string(), ToString::to_string)
}

/// Creates the files the command line references in `dir`: images, ISOs, the 9p export, OVMF's
/// variables. `Some(what)`: the host lacks something the variant needs.
fn prepare(spec: &VmSpec, dir: &Path, luks: &mut LuksImages) -> Result<Option<String>> {
    for img in &spec.images {
        if img.raw_device {
            return Ok(Some(format!(
                "image {}: image_raw_device = yes (a host block device)",
                img.name
            )));
        }
        if let Some(key) = img.backend.key() {
            return Ok(Some(format!(
                "image {}: {key} = {} (a storage backend)",
                img.name,
                img.backend.as_str()
            )));
        }
        let path = dir.join(img.file_name());
        if path.exists() {
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let format = img.format.to_string();
        if format == "luks" {
            let template = luks.get(img.secret.as_deref().unwrap_or_default())?;
            std::fs::copy(template, &path)
                .with_context(|| format!("copying a luks image to {}", path.display()))?;
        } else {
            qemu_img_create(&format, None, &path)?;
        }
    }
    for cd in &spec.cdroms {
        let path = dir.join(&cd.iso);
        if cd.iso.starts_with('/') {
            if !path.exists() {
                return Ok(Some(format!(
                    "cdrom {}: {} (not on this host)",
                    cd.name, cd.iso
                )));
            }
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::File::create(&path)?.set_len(1 << 20)?;
    }
    if let Some(p) = &spec.devices.nine_p {
        let path = dir.join(&p.dir);
        if !p.dir.starts_with('/') {
            std::fs::create_dir_all(&path)?;
        }
    }
    for f in &spec.filesystems {
        if let spec::filesystem::FsDaemon::Virtiofsd(d) = &f.daemon {
            if !d.source_dir.starts_with('/') && d.base_dir.is_none() {
                std::fs::create_dir_all(vm::daemons::source_dir(d, dir))?;
            }
        }
    }
    if let Some(ovmf) = &spec.devices.ovmf {
        if !Path::new(&ovmf.code).exists() {
            return Ok(Some(format!("OVMF firmware {} (not installed)", ovmf.code)));
        }
        if let Some(vars) = &ovmf.vars_template {
            if !Path::new(vars).exists() {
                return Ok(Some(format!("OVMF variables {vars} (not installed)")));
            }
            std::fs::copy(vars, dir.join(qemu_cmd::names::OVMF_VARS_FILE))?;
        }
    }
    if let Some(name) = spec.peripherals.vsocks.first() {
        // The run plan here holds no fds: QEMU opens the device and claims the CIDs itself.
        if !Path::new("/dev/vhost-vsock").exists() {
            return Ok(Some(format!(
                "vsocks = {name}: /dev/vhost-vsock (the vhost_vsock kernel module is not loaded)"
            )));
        }
    }
    if let Err(what) = vm::spice::prepare_certificates(spec, dir, dir) {
        bail!("generating SPICE certificates: {what}");
    }
    for rng in &spec.devices.rngs {
        let Some((_, items)) = &rng.chardev else {
            continue;
        };
        let item = |k: &str| items.iter().find(|(p, _)| *p == k).map(|(_, v)| v.as_str());
        let reachable = match (item("host"), item("port"), item("path")) {
            (Some(h), Some(p), _) => std::net::TcpStream::connect(format!("{h}:{p}")).is_ok(),
            (_, _, Some(path)) => std::os::unix::net::UnixStream::connect(path).is_ok(),
            _ => true,
        };
        if !reachable {
            let at: Vec<String> = items.iter().map(|(k, v)| format!("{k}={v}")).collect();
            return Ok(Some(format!(
                "rng {}: an EGD daemon at {} (the chardev connects to it)",
                rng.name,
                at.join(",")
            )));
        }
    }
    Ok(None)
}

/// `qemu-img create -q -f FORMAT [luks secret] PATH 64M`, retrying luks's "Unable to get
/// accurate CPU usage" (its PBKDF benchmark measured no CPU time on a loaded host).
fn qemu_img_create(format: &str, secret: Option<&str>, path: &Path) -> Result<()> {
    let mut tries = 0;
    loop {
        #[allow(clippy::disallowed_methods)] // xtask runs programs
        let mut c = Command::new("qemu-img");
        c.args(["create", "-q", "-f", format]);
        if let Some(secret) = secret {
            c.arg("--object")
                .arg(format!(
                    "secret,id=sec0,data={}",
                    qemu_cmd::escape_opt_value(secret)
                ))
                .args(["-o", "key-secret=sec0,iter-time=10"]);
        }
        c.arg(path).arg(IMAGE_SIZE);
        let out = c.output().context("running qemu-img")?;
        if out.status.success() {
            return Ok(());
        }
        let err = String::from_utf8_lossy(&out.stderr);
        if tries < 5 && err.contains("Unable to get accurate CPU usage") {
            tries += 1;
            std::thread::sleep(Duration::from_millis(100 << tries));
            continue;
        }
        bail!(
            "qemu-img create -f {format} {}: {}",
            path.display(),
            err.trim()
        );
    }
}

/// One luks image per secret, created once and copied into each variant's directory: `qemu-img`
/// benchmarks PBKDF for half a second of CPU on every luks create, so doing it once keeps the
/// run short. Its 10 ms iteration time keeps QEMU's opening of it cheap too.
struct LuksImages {
    dir: tempfile::TempDir,
    made: Vec<(String, PathBuf)>,
}

impl LuksImages {
    fn new() -> Result<LuksImages> {
        Ok(LuksImages {
            dir: tempfile::Builder::new()
                .prefix("kvmtest-accepts-luks.")
                .tempdir()?,
            made: Vec::new(),
        })
    }

    /// The template for `secret`.
    fn get(&mut self, secret: &str) -> Result<&Path> {
        let i = match self.made.iter().position(|(s, _)| s == secret) {
            Some(i) => i,
            None => {
                let path = self.dir.path().join(format!("{}.luks", self.made.len()));
                qemu_img_create("luks", Some(secret), &path)?;
                self.made.push((secret.to_string(), path));
                self.made.len() - 1
            }
        };
        Ok(&self.made[i].1)
    }
}

/// The first absolute path of the argv, outside `dir`, that does not exist (firmware, host
/// devices): the values of `key=value` items and whole words.
fn missing_host_path(args: &[std::ffi::OsString], dir: &Path) -> Option<String> {
    for a in args {
        let a = a.to_string_lossy();
        for item in a.split(',') {
            let value = item.split_once('=').map_or(item, |(_, v)| v);
            if value.starts_with('/')
                && !Path::new(value).starts_with(dir)
                && !Path::new(value).exists()
            {
                return Some(format!("{value} (not on this host; in `{a}`)"));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::{glob_match, params_of};
    use qemu_cmd::types::Accel;

    #[test]
    fn overrides_make_a_variant_host_independent() {
        let record = serde_json::json!({"params": {
            "nettype": "bridge",
            "nettype_nic2": "macvtap",
            "hugepage": "yes",
            "hugepage_path": "/mnt/huge",
            "extra_params": " -mem-path /mnt/kvm_hugepage -device foo",
            "spice_x509_prefix": "/tmp/kvmtest-avocado-ref/spice_x509d/",
            "dep": ["not", "a", "param"],
        }});
        let p = params_of(&record, Accel::Tcg);
        assert_eq!(p.get("nettype"), Some("user"));
        assert_eq!(p.get("nettype_nic2"), Some("user"));
        assert_eq!(p.get("vm_accelerator"), Some("tcg"));
        assert_eq!(p.get("hugepage"), Some("no"));
        assert_eq!(p.get("setup_hugepages"), Some("no"));
        assert_eq!(p.get("hugepage_path"), None);
        assert_eq!(p.get("extra_params"), Some("-device foo"));
        assert_eq!(p.get("dep"), None);
        assert_eq!(p.get("spice_x509_prefix"), Some("spice_x509d"));
        assert_eq!(p.get("spice_gen_x509"), Some("yes"));
        assert_eq!(params_of(&record, Accel::Kvm).get("vm_accelerator"), None);
    }

    #[test]
    fn globs() {
        assert!(glob_match("q35-*", "q35-first"));
        assert!(glob_match("*virtio*", "i440fx-virtio_net"));
        assert!(glob_match("i440fx-e1000-8254?em", "i440fx-e1000-82540em"));
        assert!(!glob_match("q35-*", "i440fx-first"));
        assert!(glob_match("*", ""));
    }
}
