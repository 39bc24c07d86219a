//! `cargo xtask fixtures qemu X.Y`: another QEMU version, unpacked beside the build, never
//! installed system-wide.
//!
//! The tests run against the system QEMU and against this one (`KVMTEST_QEMU`). Steps, all
//! resolved at run time from apt's own data (no build string is written down anywhere):
//!
//! 1. the newest `qemu-system-x86` version of upstream `X.Y` that apt knows (`apt-cache
//!    madison`; for the other major version the host's release does not carry, the backports
//!    suite that `cargo xtask deps` adds in its own list file);
//! 2. what installing it here would need (`apt-get install -s`): exactly the packages that are
//!    missing or at another version on this host (QEMU's own packages, the firmware it requires
//!    at a newer version such as SeaBIOS, any newer library);
//! 3. `apt-get download` of each, checked against apt's SHA256, and `dpkg-deb -x` into
//!    `<target>/qemu/X.Y/root/`;
//! 4. a launcher `<target>/qemu/X.Y/bin/qemu-system-x86_64`: it runs the unpacked binary with
//!    the unpacked libraries first on the loader path (`LD_LIBRARY_PATH`), its own modules
//!    (`QEMU_MODULE_DIR`) and its own firmware and data (`-L` for each of the binary's configured
//!    data directories, `-L help`, that exists under the unpacked root, in front of the system
//!    ones);
//! 5. checks: `ldd` finds every library, `-version` prints `X.Y`, and `-L help` lists the
//!    unpacked directories first.
//!
//! The result is recorded in `manifest.json` (packages, versions, SHA256); a second run with the
//! same resolution and an intact tree does nothing. Prints the launcher's path on stdout.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};
use serde_json::{json, Value};

use crate::apt::{self, Package};
use crate::deps::major_minor;
use crate::host::stdout_of;

/// The QEMU version CI runs beside the system's (bookworm's 7.2): the current major version.
pub const OTHER_QEMU: &str = "10.0";

/// The binary the launcher stands for.
const BINARY: &str = "qemu-system-x86_64";

/// Bump when the layout or the launcher changes.
const RECIPE: u64 = 1;

/// `<target>/qemu/X.Y`.
pub fn fixture_dir(version: &str) -> PathBuf {
    crate::bench::target_dir().join("qemu").join(version)
}

/// The launcher of an unpacked QEMU `X.Y` (it may not exist yet).
pub fn launcher(version: &str) -> PathBuf {
    fixture_dir(version).join("bin").join(BINARY)
}

/// A package to unpack, as `(name, version)`.
type NameVersion = (String, String);

/// Debian's upstream part of a version: `1:10.0.2+ds-2+deb13u1~bpo12+1` → `10.0.2`.
fn upstream(version: &str) -> &str {
    let v = version.split_once(':').map_or(version, |(_, v)| v);
    let end = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    &v[..end]
}

/// Whether a Debian version is upstream `X.Y` (`10.0` matches `10.0.2` and `10.0`, not `10.01`).
pub fn is_series(version: &str, series: &str) -> bool {
    let up = upstream(version);
    up == series || up.strip_prefix(series).is_some_and(|r| r.starts_with('.'))
}

/// The `(version, suite)` pairs `apt-cache madison` prints, in apt's order (newest first).
pub fn madison_versions(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        let mut cols = line.split('|').map(str::trim);
        let (Some(_), Some(v), Some(source)) = (cols.next(), cols.next(), cols.next()) else {
            continue;
        };
        // `http://deb.debian.org/debian bookworm-backports/main amd64 Packages`
        let suite = source
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.split('/').next())
            .unwrap_or_default();
        if !v.is_empty() && !suite.is_empty() && !out.iter().any(|(o, _)| o == v) {
            out.push((v.to_string(), suite.to_string()));
        }
    }
    out
}

/// `Inst NAME [OLD] (NEW RELEASE [ARCH])` lines of `apt-get install -s`.
pub fn simulated_installs(text: &str) -> Vec<NameVersion> {
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("Inst ")?;
            let (name, rest) = rest.split_once(' ')?;
            let open = rest.find('(')?;
            let version = rest[open + 1..].split_whitespace().next()?;
            Some((name.to_string(), version.to_string()))
        })
        .collect()
}

/// The data directories a QEMU binary prints for `-L help`, in order.
fn data_dirs(binary: &Path, envs: &[(String, String)]) -> Result<Vec<PathBuf>> {
    let mut c = Command::new(binary);
    c.args(["-L", "help"]);
    for (k, v) in envs {
        c.env(k, v);
    }
    Ok(stdout_of(&mut c)?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(PathBuf::from)
        .collect())
}

/// `path` (absolute, as the binary was configured) under `root`, normalized lexically.
fn under_root(root: &Path, path: &Path) -> PathBuf {
    let mut out = root.to_path_buf();
    for c in path.components() {
        match c {
            std::path::Component::Normal(n) => out.push(n),
            std::path::Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// The launcher script: fixed paths only, every argument passed on as given.
fn launcher_text(
    real: &Path,
    lib_dirs: &[PathBuf],
    module_dir: Option<&Path>,
    l_dirs: &[PathBuf],
) -> String {
    let q = |p: &Path| sh_quote(&p.to_string_lossy());
    let mut s = String::from(
        "#!/bin/sh\n# Written by `cargo xtask fixtures qemu`: runs an unpacked QEMU with its own \
         libraries, modules and firmware.\n",
    );
    if !lib_dirs.is_empty() {
        let joined: Vec<String> = lib_dirs
            .iter()
            .map(|d| d.to_string_lossy().into_owned())
            .collect();
        s.push_str(&format!(
            "LD_LIBRARY_PATH={}${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}\nexport LD_LIBRARY_PATH\n",
            sh_quote(&joined.join(":"))
        ));
    }
    if let Some(m) = module_dir {
        s.push_str(&format!(
            "QEMU_MODULE_DIR={}\nexport QEMU_MODULE_DIR\n",
            q(m)
        ));
    }
    s.push_str(&format!("exec {}", q(real)));
    for d in l_dirs {
        s.push_str(&format!(" -L {}", q(d)));
    }
    s.push_str(" \"$@\"\n");
    s
}

/// Quotes `s` for the launcher script (`qemu_cmd::shell_quote`).
fn sh_quote(s: &str) -> String {
    qemu_cmd::shell_quote(s).into_owned()
}

/// The packages `qemu-system-x86` at `version` recommends at exactly its own version: the
/// same build's loadable modules (`qemu-system-modules-opengl`, `-spice`, `qemu-system-gui`,
/// `qemu-block-extra`). They are unpacked too: QEMU looks for a module in `QEMU_MODULE_DIR` and
/// then in its compiled-in module directory, where the system QEMU's modules are, and a module
/// of another build makes it fail ("Only modules from the same build can be loaded"; 7.2 ships
/// `ui-opengl.so` in `qemu-system-common`, which 10.0's `-device help` then finds).
fn same_build_recommends(version: &str) -> Result<Vec<String>> {
    let mut c = Command::new("apt-cache");
    c.args(["show", &format!("qemu-system-x86={version}")]);
    let text = stdout_of(&mut c)?;
    let recommends = text
        .lines()
        .find_map(|l| l.strip_prefix("Recommends:"))
        .unwrap_or_default();
    Ok(exact_version_relations(recommends, version))
}

/// The package names of a relation field that require exactly `(= version)`.
pub fn exact_version_relations(field: &str, version: &str) -> Vec<String> {
    field
        .split(',')
        .filter_map(|rel| {
            let rel = rel.trim();
            let (name, constraint) = rel.split_once('(')?;
            let constraint = constraint.trim_end_matches(')').trim();
            (constraint.strip_prefix('=')?.trim() == version).then(|| name.trim().to_string())
        })
        .collect()
}

/// Resolves the packages of QEMU `series` for this host.
fn resolve(series: &str) -> Result<(String, Vec<Package>)> {
    let mut c = Command::new("apt-cache");
    c.args(["madison", "qemu-system-x86"]);
    let versions = madison_versions(&stdout_of(&mut c)?);
    let Some((version, suite)) = versions.iter().find(|(v, _)| is_series(v, series)).cloned()
    else {
        bail!(
            "apt knows no qemu-system-x86 {series} (it has: {}). The other QEMU major version \
             comes from the backports suite: run `cargo xtask deps` once (it adds {}), then retry",
            versions
                .iter()
                .map(|(v, s)| format!("{v} from {s}"))
                .collect::<Vec<_>>()
                .join(", "),
            crate::deps::LIST_FILE
        );
    };
    let mut sim = Command::new("apt-get");
    sim.env("LC_ALL", "C").args([
        "install",
        "-s",
        "-q",
        "--no-install-recommends",
        "--allow-downgrades",
    ]);
    // `PACKAGE/SUITE` also takes the dependencies that need it (SeaBIOS) from that suite. The
    // same build's module packages come along (see `same_build_recommends`), with whatever
    // libraries they need that the host lacks.
    sim.arg(format!("qemu-system-x86/{suite}"));
    for m in same_build_recommends(&version)? {
        sim.arg(format!("{m}/{suite}"));
    }
    let mut packages = simulated_installs(&stdout_of(&mut sim)?);
    if !packages.iter().any(|(name, _)| name == "qemu-system-x86") {
        // Already the installed version: unpack its packages all the same.
        packages.push(("qemu-system-x86".into(), version.clone()));
    }
    for common in ["qemu-system-common", "qemu-system-data"] {
        if !packages.iter().any(|(name, _)| name == common) {
            let mut c = Command::new("apt-cache");
            c.args(["madison", common]);
            let vs = madison_versions(&stdout_of(&mut c)?);
            let (v, _) = vs
                .iter()
                .find(|(v, _)| upstream(v) == upstream(&version))
                .with_context(|| format!("apt knows no {common} for {version}"))?;
            packages.push((common.into(), v.clone()));
        }
    }
    packages.sort();
    let packages = packages
        .iter()
        .map(|(name, v)| Package::exact(name, v))
        .collect::<Result<_>>()?;
    Ok((version, packages))
}

fn manifest_of(version: &str, packages: &[Package]) -> Value {
    json!({
        "recipe": RECIPE,
        "qemu-system-x86": version,
        "packages": packages.iter().map(|p| json!({
            "name": p.name, "version": p.version, "sha256": p.sha256,
        })).collect::<Vec<_>>(),
    })
}

/// Checks the unpacked QEMU through its launcher; returns its `-version` line.
fn check(launcher: &Path, root: &Path, series: &str) -> Result<String> {
    let mut v = Command::new(launcher);
    v.arg("-version");
    let text = stdout_of(&mut v)?;
    let line = text.lines().next().unwrap_or_default().to_string();
    ensure!(
        major_minor(&text).as_deref() == Some(series),
        "{} -version says {line:?}, not {series}",
        launcher.display()
    );
    let dirs = data_dirs(launcher, &[])?;
    ensure!(
        dirs.first().is_some_and(|d| d.starts_with(root)),
        "{} -L help does not list the unpacked data first: {dirs:?}",
        launcher.display()
    );
    Ok(line)
}

/// Unpacks QEMU `series` (e.g. `10.0`) under the target dir; returns the launcher.
pub fn fetch(series: &str) -> Result<PathBuf> {
    let dir = fixture_dir(series);
    let root = dir.join("root");
    let debs = dir.join("debs");
    let (version, packages) = resolve(series)?;
    let manifest_path = dir.join("manifest.json");
    let want = manifest_of(&version, &packages);
    let have: Option<Value> = fs::read_to_string(&manifest_path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let launcher = launcher(series);
    if have.as_ref() == Some(&want) {
        if let Ok(line) = check(&launcher, &root, series) {
            eprintln!("fixtures qemu {series}: up to date ({line})");
            return Ok(launcher);
        }
    }
    eprintln!(
        "fixtures qemu {series}: unpacking qemu-system-x86 {version}: {}",
        packages
            .iter()
            .map(|p| format!("{}={}", p.name, p.version))
            .collect::<Vec<_>>()
            .join(" ")
    );
    if dir.exists() {
        fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    fs::create_dir_all(&debs).with_context(|| format!("creating {}", debs.display()))?;
    let refs: Vec<&Package> = packages.iter().collect();
    for deb in apt::download(&refs, &debs)? {
        apt::extract(&deb, &root)?;
    }
    let real = root.join("usr/bin").join(BINARY);
    ensure!(real.is_file(), "{} missing after unpacking", real.display());
    // Libraries unpacked (newer than the host's): first on the loader path.
    let lib_dirs: Vec<PathBuf> = ["usr/lib/x86_64-linux-gnu", "lib/x86_64-linux-gnu"]
        .iter()
        .map(|d| root.join(d))
        .filter(|d| {
            fs::read_dir(d).is_ok_and(|mut it| {
                it.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().contains(".so")))
            })
        })
        .collect();
    let module_dir = root.join("usr/lib/x86_64-linux-gnu/qemu");
    let module_dir = module_dir.is_dir().then_some(module_dir);
    let lib_env: Vec<(String, String)> = if lib_dirs.is_empty() {
        Vec::new()
    } else {
        vec![(
            "LD_LIBRARY_PATH".into(),
            lib_dirs
                .iter()
                .map(|d| d.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(":"),
        )]
    };
    let mut ldd = Command::new("ldd");
    ldd.arg(&real);
    for (k, v) in &lib_env {
        ldd.env(k, v);
    }
    let ldd_out = stdout_of(&mut ldd)?;
    let missing: Vec<&str> = ldd_out
        .lines()
        .filter(|l| l.contains("not found"))
        .map(str::trim)
        .collect();
    ensure!(
        missing.is_empty(),
        "{} needs libraries neither the host nor the unpacked packages have: {missing:?}",
        real.display()
    );
    let l_dirs: Vec<PathBuf> = data_dirs(&real, &lib_env)?
        .iter()
        .map(|d| under_root(&root, d))
        .filter(|d| d.is_dir())
        .collect();
    let bin = dir.join("bin");
    fs::create_dir_all(&bin)?;
    let text = launcher_text(&real, &lib_dirs, module_dir.as_deref(), &l_dirs);
    fs::write(&launcher, text).with_context(|| format!("writing {}", launcher.display()))?;
    fs::set_permissions(&launcher, fs::Permissions::from_mode(0o755))?;
    let line = check(&launcher, &root, series)?;
    fs::write(&manifest_path, serde_json::to_string_pretty(&want)? + "\n")?;
    fs::remove_dir_all(&debs).ok();
    eprintln!(
        "fixtures qemu {series}: {line}; use it with KVMTEST_QEMU={}",
        launcher.display()
    );
    Ok(launcher)
}

/// `cargo xtask fixtures qemu X.Y`.
pub fn main(args: &[String]) -> Result<()> {
    let [series] = args else {
        bail!("usage: cargo xtask fixtures qemu X.Y   (e.g. {OTHER_QEMU})");
    };
    ensure!(
        series.split('.').count() == 2 && series.split('.').all(|p| p.parse::<u32>().is_ok()),
        "cargo xtask fixtures qemu: {series:?} is not a MAJOR.MINOR version such as {OTHER_QEMU}"
    );
    let launcher = fetch(series)?;
    println!("{}", launcher.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_match_upstream_versions_only() {
        assert!(is_series("1:10.0.2+ds-2+deb13u1~bpo12+1", "10.0"));
        assert!(is_series("1:7.2+dfsg-7+deb12u18+b3", "7.2"));
        assert!(!is_series("1:7.2+dfsg-7", "7.20"));
        assert!(!is_series("1:10.01-1", "10.0"));
        assert!(!is_series("1:10.1.0-1", "10.0"));
    }

    #[test]
    fn madison_and_simulation_outputs_are_read() {
        let m = "qemu-system-x86 | 1:10.0.2+ds-2+deb13u1~bpo12+1 | http://deb.debian.org/debian bookworm-backports/main amd64 Packages\n\
                 qemu-system-x86 | 1:7.2+dfsg-7+deb12u18+b3 | http://deb.debian.org/debian bookworm/main amd64 Packages\n";
        assert_eq!(
            madison_versions(m),
            vec![
                (
                    "1:10.0.2+ds-2+deb13u1~bpo12+1".to_string(),
                    "bookworm-backports".to_string()
                ),
                (
                    "1:7.2+dfsg-7+deb12u18+b3".to_string(),
                    "bookworm".to_string()
                )
            ]
        );
        let s = "NOTE: This is only a simulation!\n\
                 Inst qemu-system-x86 [1:7.2+dfsg-7+deb12u18+b3] (1:10.0.2+ds-2+deb13u1~bpo12+1 Debian Backports:oldstable-backports [amd64]) []\n\
                 Inst seabios (1.16.3-2~bpo12+1 Debian Backports:oldstable-backports [all])\n\
                 Conf seabios (1.16.3-2~bpo12+1 Debian Backports:oldstable-backports [all])\n";
        assert_eq!(
            simulated_installs(s),
            vec![
                (
                    "qemu-system-x86".to_string(),
                    "1:10.0.2+ds-2+deb13u1~bpo12+1".to_string()
                ),
                ("seabios".to_string(), "1.16.3-2~bpo12+1".to_string()),
            ]
        );
    }

    #[test]
    fn same_build_relations_are_the_exact_version_ones() {
        let v = "1:10.0.2+ds-2+deb13u1~bpo12+1";
        let field = " qemu-utils, ovmf, qemu-system-gui (= 1:10.0.2+ds-2+deb13u1~bpo12+1), \
                     qemu-system-modules-spice (= 1:10.0.2+ds-2+deb13u1~bpo12+1), \
                     seabios (>> 1.16.3-1~)";
        assert_eq!(
            exact_version_relations(field, v),
            vec!["qemu-system-gui", "qemu-system-modules-spice"]
        );
    }

    #[test]
    fn the_launcher_puts_the_unpacked_parts_first() {
        let t = launcher_text(
            Path::new("/t/q/root/usr/bin/qemu-system-x86_64"),
            &[PathBuf::from("/t/q/root/usr/lib/x86_64-linux-gnu")],
            Some(Path::new("/t/q/root/usr/lib/x86_64-linux-gnu/qemu")),
            &[
                PathBuf::from("/t/q/root/usr/share/qemu"),
                PathBuf::from("/t/q/root/usr/share/seabios"),
            ],
        );
        assert!(t.starts_with("#!/bin/sh\n"));
        assert!(t.contains(
            "LD_LIBRARY_PATH=/t/q/root/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
        ));
        assert!(t.contains("QEMU_MODULE_DIR=/t/q/root/usr/lib/x86_64-linux-gnu/qemu"));
        assert!(t.ends_with(
            "exec /t/q/root/usr/bin/qemu-system-x86_64 -L /t/q/root/usr/share/qemu -L /t/q/root/usr/share/seabios \"$@\"\n"
        ));
        assert_eq!(
            under_root(Path::new("/t/r"), Path::new("/usr/bin/../share/qemu")),
            PathBuf::from("/t/r/usr/share/qemu")
        );
        // A path with a shell metacharacter is quoted.
        let t = launcher_text(Path::new("/t/a b/qemu"), &[], None, &[]);
        assert!(t.contains("exec '/t/a b/qemu' \"$@\""), "{t}");
    }
}
