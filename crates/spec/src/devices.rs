//! [`DevicesSpec`]: avocado-vt's other devices — virtio RNGs (`virtio_rngs`), balloons
//! (`balloon`), the 9p export (`9p_export_dir`), OVMF firmware (`ovmf_path`), iothreads
//! (`iothreads`) — read with avocado-vt's keys, declared here.

use crate::keys::KeyDoc;
use crate::problem::ProblemKind;
use crate::read::Reader;

/// VM-level keys of this family.
pub const DEVICES_VM_KEYS: &[KeyDoc] = &[
    KeyDoc::optional(
        "virtio_rngs",
        "the VM's virtio RNGs (objects with `backend`)",
    ),
    KeyDoc::optional("balloon", "the VM's memory balloons (objects; usually one)"),
    KeyDoc::optional(
        "9p_export_dir",
        "a host directory exported to the guest over virtio-9p (mount tag `autotest_tag`)",
    ),
    KeyDoc::with_default("9p_fs_driver", "local", "local, handle or proxy"),
    KeyDoc::with_default(
        "9p_security_model",
        "none",
        "passthrough, mapped or none (local driver)",
    ),
    KeyDoc::with_default("9p_immediate_writeout", "no", "yes: `writeout=immediate`"),
    KeyDoc::with_default("9p_readonly", "no", "yes: a read-only export"),
    KeyDoc::optional(
        "9p_socket_name",
        "the proxy helper's socket (proxy driver; required there)",
    ),
    KeyDoc::optional(
        "ovmf_path",
        "the OVMF firmware directory: UEFI boot from pflash (with at least one image)",
    ),
    KeyDoc::optional(
        "ovmf_code_filename",
        "the firmware code file in `ovmf_path` (required with it)",
    ),
    KeyDoc::optional(
        "ovmf_vars_filename",
        "the variable store template in `ovmf_path`; each VM boots a copy of its own",
    ),
    KeyDoc::optional("iothreads", "the VM's iothreads (`-object iothread`)"),
    KeyDoc::optional(
        "iothread_scheme",
        "avocado-vt's automatic iothread schemes (roundrobin, oto, rhv, …; kvmtest: not built)",
    ),
];

/// Keys of a virtio RNG (`virtio_rngs` objects).
pub const RNG_KEYS: &[KeyDoc] = &[
    KeyDoc::required("backend", "rng-builtin, rng-random or rng-egd"),
    KeyDoc::required(
        "backend_type",
        "builtin, passthrough or chardev: the suffix of the backend's own keys",
    ),
    KeyDoc::optional("max-bytes_virtio-rng", "`max-bytes=` of the RNG device"),
    KeyDoc::optional("period_virtio-rng", "`period=` of the RNG device (ms)"),
    KeyDoc::optional(
        "filename_passthrough",
        "the host source of rng-random (`/dev/urandom`)",
    ),
    KeyDoc::optional("rng_chardev_backend", "the chardev of rng-egd (socket)"),
    KeyDoc::optional(
        "socket_type",
        "tcp or unix: the suffix of the chardev's own keys",
    ),
    KeyDoc::optional("host_tcp", "the EGD daemon's host"),
    KeyDoc::optional("port_tcp", "the EGD daemon's port"),
    KeyDoc::optional("path_unix", "the EGD daemon's unix socket"),
];

/// Keys of a balloon (`balloon` objects).
pub const BALLOON_KEYS: &[KeyDoc] = &[
    KeyDoc::optional("balloon_dev_devid", "the balloon device's id"),
    KeyDoc::with_default(
        "balloon_dev_add_bus",
        "no",
        "yes: a PCI place as avocado-vt's (kvmtest places every PCI device)",
    ),
    KeyDoc::with_default("balloon_use_old_format", "no", "yes: `-balloon virtio`"),
    KeyDoc::optional("balloon_opt_deflate_on_oom", "`deflate-on-oom=`"),
    KeyDoc::optional(
        "balloon_opt_guest_polling",
        "`guest-stats-polling-interval=` (s)",
    ),
    KeyDoc::optional("balloon_opt_free_page_reporting", "`free-page-reporting=`"),
];

/// Keys of an iothread (`iothreads` objects).
pub const IOTHREAD_KEYS: &[KeyDoc] = &[KeyDoc::optional(
    "iothread_poll_max_ns",
    "`poll-max-ns=` of the iothread",
)];

/// One virtio RNG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RngSpec {
    /// Object name.
    pub name: String,
    /// `backend`: the `-object` type.
    pub backend: String,
    /// The backend object's own items (`filename=`).
    pub backend_props: Vec<(&'static str, String)>,
    /// The RNG device's items (`max-bytes=`, `period=`).
    pub device_props: Vec<(&'static str, String)>,
    /// rng-egd's chardev: its backend (`socket`) and items (`host=`, `port=`, `path=`).
    pub chardev: Option<(String, Vec<(&'static str, String)>)>,
}

/// One balloon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalloonSpec {
    /// Object name.
    pub name: String,
    /// `balloon_dev_devid`.
    pub id: Option<String>,
    /// `balloon_use_old_format`.
    pub old_format: bool,
    /// The device's items, in avocado-vt's order.
    pub props: Vec<(&'static str, String)>,
}

/// The 9p export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NinePSpec {
    /// `9p_fs_driver`.
    pub driver: String,
    /// `9p_export_dir`.
    pub dir: String,
    /// `9p_security_model` (local driver).
    pub security_model: String,
    /// `9p_socket_name` (proxy driver).
    pub socket: Option<String>,
    /// `9p_immediate_writeout`.
    pub writeout_immediate: bool,
    /// `9p_readonly`.
    pub readonly: bool,
}

/// OVMF firmware on pflash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OvmfSpec {
    /// `ovmf_path`/`ovmf_code_filename`.
    pub code: String,
    /// `ovmf_path`/`ovmf_vars_filename`: the template each VM copies.
    pub vars_template: Option<String>,
}

/// One iothread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IothreadSpec {
    /// Object name: its id.
    pub name: String,
    /// `iothread_poll_max_ns`.
    pub poll_max_ns: Option<String>,
}

/// The family.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DevicesSpec {
    /// `virtio_rngs`.
    pub rngs: Vec<RngSpec>,
    /// `balloon`.
    pub balloons: Vec<BalloonSpec>,
    /// `9p_export_dir`.
    pub nine_p: Option<NinePSpec>,
    /// `ovmf_path` (only with images, as avocado-vt).
    pub ovmf: Option<OvmfSpec>,
    /// `iothreads`.
    pub iothreads: Vec<IothreadSpec>,
}

impl DevicesSpec {
    /// Reads the family through the VM's reader; `has_images`: whether the VM has disks (OVMF
    /// is avocado-vt's only with one).
    pub fn read(r: &mut Reader<'_, '_>, has_images: bool) -> DevicesSpec {
        let mut rngs = Vec::new();
        for name in r.objects("virtio_rngs") {
            let mut g = r.child("rng", name);
            let backend = g.require("backend").map(str::to_string);
            let backend_type = g.require("backend_type").map(str::to_string);
            let device_props = [
                ("max-bytes_virtio-rng", "max-bytes"),
                ("period_virtio-rng", "period"),
            ]
            .into_iter()
            .filter_map(|(k, p)| g.string(k).map(|v| (p, v)))
            .collect();
            let (Some(backend), Some(backend_type)) = (backend, backend_type) else {
                continue;
            };
            let mut backend_props = Vec::new();
            let mut chardev = None;
            match backend_type.as_str() {
                "builtin" => {}
                "passthrough" => {
                    if let Some(f) = g.string("filename_passthrough") {
                        backend_props.push(("filename", f));
                    }
                }
                "chardev" => {
                    let cb = g
                        .string("rng_chardev_backend")
                        .unwrap_or_else(|| "socket".into());
                    let st = g.string("socket_type").unwrap_or_else(|| "tcp".into());
                    let props = match st.as_str() {
                        "tcp" => [("host_tcp", "host"), ("port_tcp", "port")]
                            .into_iter()
                            .filter_map(|(k, p)| g.string(k).map(|v| (p, v)))
                            .collect(),
                        "unix" => g
                            .string("path_unix")
                            .map(|v| vec![("path", v)])
                            .unwrap_or_default(),
                        _ => {
                            g.problem(
                                "socket_type",
                                ProblemKind::Invalid {
                                    expected: "tcp or unix".into(),
                                },
                            );
                            Vec::new()
                        }
                    };
                    chardev = Some((cb, props));
                }
                _ => g.problem(
                    "backend_type",
                    ProblemKind::Invalid {
                        expected: "builtin, passthrough or chardev".into(),
                    },
                ),
            }
            rngs.push(RngSpec {
                name: name.to_string(),
                backend,
                backend_props,
                device_props,
                chardev,
            });
        }
        let mut balloons = Vec::new();
        for name in r.objects("balloon") {
            let mut g = r.child("balloon", name);
            let _placed_anyway = g.bool("balloon_dev_add_bus", false);
            let props = [
                ("balloon_opt_deflate_on_oom", "deflate-on-oom"),
                ("balloon_opt_guest_polling", "guest-stats-polling-interval"),
                ("balloon_opt_free_page_reporting", "free-page-reporting"),
            ]
            .into_iter()
            .filter_map(|(k, p)| g.string(k).map(|v| (p, v)))
            .collect();
            balloons.push(BalloonSpec {
                name: name.to_string(),
                id: g.string("balloon_dev_devid"),
                old_format: g.bool("balloon_use_old_format", false),
                props,
            });
        }
        let nine_p = r.string("9p_export_dir").map(|dir| {
            let driver = match r.str("9p_fs_driver") {
                Some(d @ ("handle" | "proxy")) => d.to_string(),
                _ => "local".to_string(),
            };
            let socket = r.string("9p_socket_name");
            if driver == "proxy" && socket.is_none() {
                r.problem("9p_socket_name", ProblemKind::Missing);
            }
            NinePSpec {
                security_model: r
                    .string("9p_security_model")
                    .unwrap_or_else(|| "none".into()),
                writeout_immediate: r.bool("9p_immediate_writeout", false),
                readonly: r.bool("9p_readonly", false),
                driver,
                dir,
                socket,
            }
        });
        let ovmf = match r.string("ovmf_path") {
            Some(dir) if has_images => {
                let dir = dir.trim_end_matches('/').to_string();
                let code = r
                    .require("ovmf_code_filename")
                    .map(|f| format!("{dir}/{f}"));
                let vars_template = r.string("ovmf_vars_filename").map(|f| format!("{dir}/{f}"));
                code.map(|code| OvmfSpec {
                    code,
                    vars_template,
                })
            }
            _ => None,
        };
        if let Some(s) = r.str("iothread_scheme") {
            if !s.is_empty() {
                r.problem(
                    "iothread_scheme",
                    ProblemKind::Unsupported {
                        reason: "kvmtest does not build avocado-vt's automatic iothread schemes; \
                                 list `iothreads` and give images `image_iothread`"
                            .into(),
                    },
                );
            }
        }
        let iothreads = r
            .objects("iothreads")
            .into_iter()
            .map(|name| {
                let mut t = r.child("iothread", name);
                IothreadSpec {
                    name: name.to_string(),
                    poll_max_ns: t.string("iothread_poll_max_ns"),
                }
            })
            .collect();
        DevicesSpec {
            rngs,
            balloons,
            nine_p,
            ovmf,
            iothreads,
        }
    }
}
