//! Where kvmtest's test fixtures live: the built test guest and the QEMU probe caches.
//!
//! One rule, used by the `vm` and `tests-suite` integration tests, xtask (which builds the guest
//! and runs the benches) and anything else that needs the fixtures:
//!
//! * The **target dir** ([`target_dir`]) is `$CARGO_TARGET_DIR` when it is set and not empty
//!   (a relative value is taken relative to the workspace root); otherwise it is found from the
//!   running executable: test binaries live in `<target>/<profile>/deps/`, xtask and examples in
//!   `<target>/<profile>/[examples/]`, and cargo writes a `CACHEDIR.TAG` file at the root of every
//!   target dir, so the nearest ancestor of [`std::env::current_exe`] holding one is the target
//!   dir. If there is none (an installed binary), it is `<workspace>/target`.
//! * The **guest dir** ([`guest_dir`]) is `$KVMTEST_GUEST_DIR` when it is set and not empty,
//!   else `<target dir>/guest`. `cargo xtask fixtures guest` builds the guest there; nothing
//!   else does. Tests never build it: they call [`require_guest`], which fails at once with an
//!   error naming that command and the directory looked in.
//! * **Probe caches** (QEMU capabilities) go to `<target dir>/qemu-caps-cache`
//!   ([`caps_cache_dir`]).
//! * The **QEMU under test** is the one every layer uses without an explicit choice:
//!   [`default_qemu`] (`qemu_cmd::probe::default_binary`, re-exported here for crates that only
//!   depend on `vm`): `$KVMTEST_QEMU`, else `qemu-system-x86_64` on `PATH`. Tests print it once
//!   as `QEMU under test: <path> (<version>)` ([`describe_qemu`]).
//!
//! So a checkout with `CARGO_TARGET_DIR` pointing elsewhere writes nothing into its own
//! `target/`, and `cargo xtask fixtures guest` followed by `cargo test` agree on the paths
//! without being told.

use std::fmt::Display;
use std::path::{Path, PathBuf};

pub use qemu_cmd::probe::{default_binary as default_qemu, QEMU_ENV};

/// The environment variable naming an already built test guest directory.
pub const GUEST_DIR_ENV: &str = "KVMTEST_GUEST_DIR";

/// The command that builds the test guest (into [`guest_dir`]).
pub const BUILD_GUEST: &str = "cargo xtask fixtures guest";

/// The kernel as a PVH-bootable ELF (boots faster under TCG; what the suite uses).
pub const VMLINUX: &str = "vmlinux";
/// The kernel package's bzImage (what the `vm` tests boot).
pub const VMLINUZ: &str = "vmlinuz";
/// The initramfs.
pub const INITRD: &str = "initrd.gz";
/// The build's inputs and outputs with checksums; written last, so it marks a complete build.
pub const MANIFEST: &str = "manifest.json";

/// Every file `cargo xtask fixtures guest` writes into the guest dir: a guest dir is ready
/// when it holds all of them.
pub const GUEST_FILES: [&str; 4] = [MANIFEST, VMLINUX, VMLINUZ, INITRD];

/// The environment variable naming an already built disk guest directory.
pub const DISK_GUEST_DIR_ENV: &str = "KVMTEST_DISK_GUEST_DIR";

/// The command that builds the disk guest (into [`disk_guest_dir`]).
pub const BUILD_DISK_GUEST: &str = "cargo xtask fixtures disk-guest";

/// The disk guest's image: Debian bookworm, booting from its own disk (syslinux, systemd).
pub const DISK_IMAGE: &str = "disk.qcow2";
/// The private half of the ssh key whose public half is root's `authorized_keys` in the image
/// (generated per build).
pub const DISK_SSH_KEY: &str = "id_ed25519";
/// `known_hosts` lines for the image's host keys, under the alias [`DISK_HOST_ALIAS`].
pub const DISK_KNOWN_HOSTS: &str = "known_hosts";
/// The host name the disk guest's host keys are recorded under in [`DISK_KNOWN_HOSTS`]
/// (`ssh -o HostKeyAlias=…`), whatever address and port reach it.
pub const DISK_HOST_ALIAS: &str = "kvmtest-disk-guest";

/// Every file `cargo xtask fixtures disk-guest` writes into the disk guest dir.
pub const DISK_GUEST_FILES: [&str; 4] = [MANIFEST, DISK_IMAGE, DISK_SSH_KEY, DISK_KNOWN_HOSTS];

/// The workspace root (two levels above this crate's manifest, `crates/vm`).
fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.ancestors().nth(2).unwrap_or(here).to_path_buf()
}

/// A non-empty environment variable as a path.
fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The cargo target dir that fixtures go under: `$CARGO_TARGET_DIR` (relative values against
/// the workspace root), else the nearest ancestor of the running executable that holds cargo's
/// `CACHEDIR.TAG`, else `<workspace>/target`. See the [module docs](self).
pub fn target_dir() -> PathBuf {
    if let Some(dir) = env_path("CARGO_TARGET_DIR") {
        return if dir.is_absolute() {
            dir
        } else {
            workspace_root().join(dir)
        };
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| target_dir_of(&exe))
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// The target dir holding executable `exe`: its nearest ancestor with a `CACHEDIR.TAG` file.
pub fn target_dir_of(exe: &Path) -> Option<PathBuf> {
    exe.ancestors()
        .skip(1)
        .find(|dir| dir.join("CACHEDIR.TAG").is_file())
        .map(Path::to_path_buf)
}

/// The test guest directory: `$KVMTEST_GUEST_DIR`, else `<target dir>/guest`
/// ([`target_dir`]).
pub fn guest_dir() -> PathBuf {
    env_path(GUEST_DIR_ENV).unwrap_or_else(|| target_dir().join("guest"))
}

/// The disk guest directory: `$KVMTEST_DISK_GUEST_DIR`, else `<target dir>/disk-guest`.
pub fn disk_guest_dir() -> PathBuf {
    env_path(DISK_GUEST_DIR_ENV).unwrap_or_else(|| target_dir().join("disk-guest"))
}

/// The disk guest directory ([`disk_guest_dir`]) if it holds every file of
/// [`DISK_GUEST_FILES`].
///
/// # Errors
/// [`GuestMissing`] naming the directory, the missing files and [`BUILD_DISK_GUEST`].
pub fn require_disk_guest() -> Result<PathBuf, GuestMissing> {
    let dir = disk_guest_dir();
    let missing: Vec<&'static str> = DISK_GUEST_FILES
        .into_iter()
        .filter(|f| !dir.join(f).is_file())
        .collect();
    if missing.is_empty() {
        Ok(dir)
    } else {
        Err(GuestMissing {
            dir,
            missing,
            build: BUILD_DISK_GUEST,
            env: DISK_GUEST_DIR_ENV,
        })
    }
}

/// Where tests and tools cache probed QEMU capabilities: `<target dir>/qemu-caps-cache`.
pub fn caps_cache_dir() -> PathBuf {
    target_dir().join("qemu-caps-cache")
}

/// `<path> (<version>)` of a QEMU binary: its canonical path (looked up on `PATH` when it is a
/// bare name; the name itself if it cannot be found) and `version` (from its probed
/// capabilities). Tests print `QEMU under test: {describe_qemu(..)}` once.
pub fn describe_qemu(binary: &Path, version: &impl Display) -> String {
    let path =
        qemu_cmd::probe::CacheKey::of(binary).map_or_else(|_| binary.to_path_buf(), |k| k.path);
    format!("{} ({version})", path.display())
}

/// The test guest is not built (or not completely) in the directory looked in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the test guest is missing in {} (no {}): build it with `{build}` before running the \
     tests (or point {env} at a built guest)",
    dir.display(),
    missing.join(", ")
)]
pub struct GuestMissing {
    /// The directory looked in.
    pub dir: PathBuf,
    /// The files of [`GUEST_FILES`] (or [`DISK_GUEST_FILES`]) it lacks.
    pub missing: Vec<&'static str>,
    /// The command that builds it.
    pub build: &'static str,
    /// The environment variable that points at a built one.
    pub env: &'static str,
}

/// The test guest directory ([`guest_dir`]) if it holds every file of [`GUEST_FILES`].
///
/// # Errors
/// [`GuestMissing`], naming the directory, the missing files and [`BUILD_GUEST`]. Callers in
/// tests panic with it: a missing guest fails a test, it never skips it or builds the guest.
pub fn require_guest() -> Result<PathBuf, GuestMissing> {
    require_guest_in(guest_dir())
}

/// [`require_guest`] for an explicit directory.
///
/// # Errors
/// [`GuestMissing`] when `dir` lacks a file of [`GUEST_FILES`].
pub fn require_guest_in(dir: impl Into<PathBuf>) -> Result<PathBuf, GuestMissing> {
    let dir = dir.into();
    let missing: Vec<&'static str> = GUEST_FILES
        .into_iter()
        .filter(|f| !dir.join(f).is_file())
        .collect();
    if missing.is_empty() {
        Ok(dir)
    } else {
        Err(GuestMissing {
            dir,
            missing,
            build: BUILD_GUEST,
            env: GUEST_DIR_ENV,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_dir_is_the_ancestor_with_cachedir_tag() {
        let t = tempfile::tempdir().expect("tempdir");
        let target = t.path().join("tgt");
        let deps = target.join("debug").join("deps");
        std::fs::create_dir_all(&deps).expect("mkdir");
        std::fs::write(
            target.join("CACHEDIR.TAG"),
            "Signature: 8a477f597d28d172789f06886806bc55",
        )
        .expect("tag");
        assert_eq!(
            target_dir_of(&deps.join("faults-0123")),
            Some(target.clone())
        );
        assert_eq!(
            target_dir_of(&target.join("debug").join("xtask")),
            Some(target)
        );
        assert_eq!(target_dir_of(&t.path().join("bin").join("x")), None);
    }

    #[test]
    fn missing_guest_names_the_command_and_the_dir() {
        let t = tempfile::tempdir().expect("tempdir");
        std::fs::write(t.path().join(VMLINUX), "").expect("write");
        let err = require_guest_in(t.path()).expect_err("incomplete");
        assert_eq!(err.missing, [MANIFEST, VMLINUZ, INITRD]);
        let text = err.to_string();
        assert!(text.contains(BUILD_GUEST), "{text}");
        assert!(text.contains(&t.path().display().to_string()), "{text}");
        for f in GUEST_FILES {
            std::fs::write(t.path().join(f), "").expect("write");
        }
        assert_eq!(require_guest_in(t.path()), Ok(t.path().to_path_buf()));
    }
}
