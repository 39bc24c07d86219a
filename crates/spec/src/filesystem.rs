//! The shared file systems family: `filesystems`, each a virtio-fs export (`fs_driver =
//! virtio-fs`): a `vhost-user-fs` device whose chardev connects to a virtiofsd serving
//! `fs_source_dir` — a virtiofsd the `vm` crate starts beside QEMU on a socket in the run dir,
//! or the user's own (`fs_source_user_config`). Read as avocado-vt reads them
//! (`qcontainer.fs_define_by_params`, `QVirtioFSDev`), with the keys declared here.
//!
//! virtiofsd maps the guest's memory, so the guest memory must be shared: avocado-vt leaves
//! that to the config (`vm_mem_backend = memory-backend-memfd` with `vm_mem_share = yes`, or a
//! shared `mem_devs` backend behind the NUMA nodes), and so does kvmtest: the memory family
//! renders those keys; QEMU refuses a vhost-user device on private memory when it starts.

use crate::keys::KeyDoc;
use crate::problem::ProblemKind;
use crate::read::Reader;

/// VM-level keys of this family.
pub const FS_VM_KEYS: &[KeyDoc] = &[KeyDoc::optional(
    "filesystems",
    "the VM's shared file systems (objects with the file system keys); virtio-fs runs a \
     virtiofsd beside QEMU",
)];

/// Keys of a shared file system (`filesystems` objects).
pub const FS_KEYS: &[KeyDoc] = &[
    KeyDoc::required("fs_driver", "virtio-fs (the only driver avocado-vt knows)"),
    KeyDoc::required("fs_target", "the mount tag the guest mounts (`tag=`)"),
    KeyDoc::with_default(
        "fs_source_type",
        "mount",
        "mount: virtiofsd exports the host directory `fs_source_dir`",
    ),
    KeyDoc::optional(
        "fs_source_dir",
        "the exported host directory (relative: under `fs_source_base_dir`); required unless \
         `fs_source_user_config = yes`",
    ),
    KeyDoc::optional(
        "fs_source_base_dir",
        "the directory a relative `fs_source_dir` is under (unset: the root dir, avocado-vt's \
         data dir)",
    ),
    KeyDoc::with_default(
        "fs_source_user_config",
        "no",
        "yes: the user runs virtiofsd on `fs_source_user_sock_path`; kvmtest starts none",
    ),
    KeyDoc::optional(
        "fs_source_user_sock_path",
        "the socket of the user's virtiofsd (with `fs_source_user_config = yes`; required there)",
    ),
    KeyDoc::optional(
        "fs_binary",
        "virtiofsd (unset: avocado-vt's /usr/libexec/virtiofsd, else Debian's \
         /usr/lib/qemu/virtiofsd, where QEMU 7.2's package has it)",
    ),
    KeyDoc::optional(
        "fs_log_level",
        "virtiofsd's log level (`--log-level`; a virtiofsd without separate options knows \
         `debug` only: `-d`)",
    ),
    KeyDoc::optional(
        "fs_binary_extra_options",
        "more words for virtiofsd's command line (` -o cache=none`; split as a shell splits \
         words, never run by one)",
    ),
    KeyDoc::optional(
        "fs_driver_props",
        "more properties of the vhost-user-fs device, a JSON object (`{\"queue-size\": 1024}`)",
    ),
];

/// Who serves a file system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FsDaemon {
    /// A virtiofsd kvmtest starts, exporting `dir`.
    Virtiofsd(VirtiofsdSpec),
    /// The user's own daemon, on this socket (`fs_source_user_sock_path`).
    User {
        /// The socket.
        socket: String,
    },
}

/// The virtiofsd kvmtest starts for a file system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtiofsdSpec {
    /// `fs_source_dir`.
    pub source_dir: String,
    /// `fs_source_base_dir` (a relative source is under it; unset: the root dir).
    pub base_dir: Option<String>,
    /// `fs_binary` (unset: the first of avocado-vt's and Debian's paths that exists).
    pub binary: Option<String>,
    /// `fs_log_level`.
    pub log_level: Option<String>,
    /// `fs_binary_extra_options`, split into words.
    pub extra: Vec<String>,
}

/// One shared file system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsSpec {
    /// Object name (`fs`).
    pub name: String,
    /// `fs_target`: the mount tag.
    pub target: String,
    /// `fs_driver_props`, in the JSON's order.
    pub driver_props: Vec<(String, String)>,
    /// Who serves it.
    pub daemon: FsDaemon,
}

/// Reads `filesystems` through the VM's reader.
pub fn read_filesystems(r: &mut Reader<'_, '_>) -> Vec<FsSpec> {
    let mut out = Vec::new();
    for name in r.objects("filesystems") {
        let mut f = r.child("filesystem", name);
        let driver_ok = match f.require("fs_driver") {
            None => false,
            Some("virtio-fs") => true,
            Some(_) => {
                f.problem(
                    "fs_driver",
                    ProblemKind::Invalid {
                        expected: "virtio-fs".into(),
                    },
                );
                false
            }
        };
        let target = f.require("fs_target").map(str::to_string);
        let driver_props = crate::opts::json_props_of(&mut f, "fs_driver_props");
        let daemon = if f.bool("fs_source_user_config", false) {
            f.require("fs_source_user_sock_path")
                .map(|s| FsDaemon::User {
                    socket: s.to_string(),
                })
        } else {
            read_virtiofsd(&mut f).map(FsDaemon::Virtiofsd)
        };
        if let (true, Some(target), Some(daemon)) = (driver_ok, target, daemon) {
            out.push(FsSpec {
                name: name.to_string(),
                target,
                driver_props,
                daemon,
            });
        }
    }
    out
}

/// The virtiofsd of a `fs_source_type = mount` file system.
fn read_virtiofsd(f: &mut Reader<'_, '_>) -> Option<VirtiofsdSpec> {
    match f.str("fs_source_type") {
        None | Some("mount") => {}
        Some(_) => {
            f.problem(
                "fs_source_type",
                ProblemKind::Invalid {
                    expected: "mount (avocado-vt exports a host directory only)".into(),
                },
            );
            return None;
        }
    }
    let source_dir = f.require("fs_source_dir")?.to_string();
    let extra = crate::tpm::words(f, "fs_binary_extra_options");
    Some(VirtiofsdSpec {
        source_dir,
        base_dir: f.string("fs_source_base_dir"),
        binary: f.string("fs_binary"),
        log_level: f.string("fs_log_level"),
        extra,
    })
}

#[cfg(test)]
mod tests {
    use crate::test_support::params;
    use crate::VmSpec;

    use super::*;

    #[test]
    fn a_virtiofsd_export_and_a_users_daemon() {
        let p = params(&[
            ("filesystems", "fs1 fs2"),
            ("fs_driver", "virtio-fs"),
            ("fs_target_fs1", "myfs"),
            ("fs_source_dir", "virtio_fs_test/"),
            ("fs_binary_extra_options", " -o cache=none"),
            ("fs_driver_props", r#"{"queue-size": 1024}"#),
            ("fs_target_fs2", "other"),
            ("fs_source_user_config_fs2", "yes"),
            ("fs_source_user_sock_path_fs2", "/run/vfsd.sock"),
        ]);
        let spec = VmSpec::new(&p, "vm1").unwrap_or_else(|e| panic!("{e}"));
        let fs = &spec.filesystems;
        assert_eq!(fs.len(), 2);
        assert_eq!(fs[0].target, "myfs");
        assert_eq!(fs[0].driver_props, [("queue-size".into(), "1024".into())]);
        let FsDaemon::Virtiofsd(d) = &fs[0].daemon else {
            panic!("{:?}", fs[0].daemon)
        };
        assert_eq!(d.extra, ["-o", "cache=none"]);
        assert_eq!(d.source_dir, "virtio_fs_test/");
        assert_eq!(
            fs[1].daemon,
            FsDaemon::User {
                socket: "/run/vfsd.sock".into()
            }
        );
    }

    #[test]
    fn bad_filesystems_name_their_keys() {
        let keys = |pairs: &[(&str, &str)]| -> Vec<String> {
            match VmSpec::new(&params(pairs), "vm1") {
                Ok(_) => Vec::new(),
                Err(e) => e.problems().iter().map(|p| p.key.clone()).collect(),
            }
        };
        let base = [
            ("filesystems", "fs"),
            ("fs_target", "t"),
            ("fs_source_dir", "d"),
        ];
        assert_eq!(keys(&base), ["fs_driver"]);
        let with = |k, v| {
            let mut p = base.to_vec();
            p.push(("fs_driver", "virtio-fs"));
            p.push((k, v));
            keys(&p)
        };
        assert_eq!(with("fs_driver", "9p"), ["fs_driver"]);
        assert_eq!(with("fs_source_type", "nfs"), ["fs_source_type"]);
        assert_eq!(
            with("fs_source_user_config", "yes"),
            ["fs_source_user_sock_path"]
        );
        assert_eq!(
            with("fs_binary_extra_options", "-o 'x"),
            ["fs_binary_extra_options"]
        );
    }
}
