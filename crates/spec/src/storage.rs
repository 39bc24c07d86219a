//! [`ImageBackend`]: where an image lives, chosen and described as avocado-vt does it
//! (`storage.get_image_filename` and the per-backend modules it calls, `StorageAuth` for the
//! access options): a local file, or a network or device backend whose server the user sets up.
//!
//! Each backend carries what its `-blockdev` protocol node (and the `-drive` URI of binaries
//! without `-blockdev`) is made of; the keys are avocado-vt's (`nbd_server`, `gluster_volume_name`,
//! `rbd_pool_name`, `portal_ip`, `curl_protocol`, `image_ssh_host`, `nvme_pci_address`…), declared
//! in [`crate::image::IMAGE_KEYS`]. A required key missing is a `Missing` problem on it, a bad
//! value an `Invalid` one.

use crate::problem::ProblemKind;
use crate::read::Reader;
use crate::types::ImageFormat;

/// The storage behind an image, chosen as avocado-vt chooses it (`storage.get_image_filename`):
/// `storage_type = vhost-vdpa` / `vhost-user-blk`, else the first of `enable_curl`,
/// `enable_nbd`, `enable_iscsi` (with `storage_type = iscsi-direct`), `enable_gluster`,
/// `enable_ceph`, `enable_nvme`, `enable_ssh` that is `yes`, else a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageBackend {
    /// A file under the image directory, or `image_raw_device`'s block device.
    File,
    /// `storage_type = vhost-vdpa`: `image_name` is the vdpa device (its name, or the path of
    /// its `/dev/vhost-vdpa-N` character device).
    VhostVdpa {
        /// `image_name`.
        device: String,
    },
    /// `storage_type = vhost-user-blk`: `image_name` is the vhost-user-blk server's socket.
    VhostUserBlk {
        /// `image_name`.
        socket: String,
    },
    /// `enable_curl`.
    Curl(Curl),
    /// `enable_nbd`.
    Nbd(Nbd),
    /// `enable_iscsi` with `storage_type = iscsi-direct` (libiscsi).
    IscsiDirect(Iscsi),
    /// `enable_gluster`.
    Gluster(Gluster),
    /// `enable_ceph`.
    Ceph(Ceph),
    /// `enable_nvme`.
    Nvme(Nvme),
    /// `enable_ssh`.
    Ssh(Ssh),
}

/// An image read over curl (`enable_curl`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Curl {
    /// `curl_protocol`: http, https, ftp or ftps (the block driver's name too).
    pub protocol: &'static str,
    /// `curl_server`: the host (`host[:port]`).
    pub server: String,
    /// `curl_path`: the path on the server, with any query string.
    pub path: String,
    /// `curl_username`.
    pub username: Option<String>,
    /// `curl_password` (a secret object with `-blockdev`, in the URL with `-drive`).
    pub password: Option<String>,
    /// `curl_sslverify`: `on` or `off` (https, ftps).
    pub sslverify: Option<String>,
    /// `curl_readahead`, in bytes.
    pub readahead: Option<u64>,
    /// `curl_timeout`, in seconds.
    pub timeout: Option<u32>,
    /// `curl_cookie_secret`: cookie data, passed as a secret object (http, https).
    pub cookie: Option<String>,
}

/// Where an NBD server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NbdServer {
    /// `nbd_server` and `nbd_port` (unset: 10809).
    Tcp {
        /// `nbd_server`.
        host: String,
        /// `nbd_port`.
        port: Option<u16>,
    },
    /// `nbd_unix_socket`.
    Unix {
        /// `nbd_unix_socket`.
        socket: String,
    },
}

/// An NBD export (`enable_nbd`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nbd {
    /// `nbd_server` + `nbd_port`, else `nbd_unix_socket`.
    pub server: NbdServer,
    /// `nbd_export_name`.
    pub export: Option<String>,
    /// `nbd_reconnect_delay`: seconds to keep reconnecting after a lost connection.
    pub reconnect_delay: Option<u32>,
    /// `nbd_client_tls_creds`: the directory of the client's x509 credentials (TCP only).
    pub tls_creds: Option<String>,
}

/// A LUN of an iSCSI target reached by QEMU's own initiator (`storage_type = iscsi-direct`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iscsi {
    /// `portal_ip`: `host[:port]`.
    pub portal: String,
    /// `target`: the target's IQN.
    pub target: String,
    /// `lun` (default 0).
    pub lun: u32,
    /// `chap_user`.
    pub user: Option<String>,
    /// `chap_passwd`.
    pub password: Option<String>,
    /// `initiator`: the initiator's IQN.
    pub initiator: Option<String>,
}

/// How QEMU reaches a Gluster server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GlusterServer {
    /// `gluster_server`, `gluster_port` (unset: 0, gluster's default) and `gluster_transport`.
    Inet {
        /// `gluster_server`.
        host: String,
        /// `gluster_port`.
        port: Option<u16>,
        /// `gluster_transport` (tcp, rdma; unset: tcp).
        transport: Option<String>,
    },
    /// `gluster_unix_socket`.
    Unix {
        /// `gluster_unix_socket`.
        socket: String,
    },
}

/// One more server of a Gluster volume (`gluster_peers`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GlusterPeer {
    /// `{"host": …, "type": …, "port": …}` (type default inet, port default 0).
    Inet {
        /// `type`.
        kind: String,
        /// `host`.
        host: String,
        /// `port`.
        port: String,
    },
    /// `{"path": …}`: a unix socket.
    Unix {
        /// `path`.
        path: String,
    },
}

/// An image on a Gluster volume (`enable_gluster`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gluster {
    /// The server.
    pub server: GlusterServer,
    /// `gluster_volume_name`.
    pub volume: String,
    /// The image's path in the volume: `image_name`'s last component with its format suffix.
    pub path: String,
    /// `gluster_peers` (`storage_type = glusterfs-direct`): a JSON list of servers.
    pub peers: Vec<GlusterPeer>,
    /// `gluster_debug` (`glusterfs-direct`): libgfapi's log level.
    pub debug: Option<u32>,
    /// `gluster_logfile` (`glusterfs-direct`): libgfapi's log file.
    pub logfile: Option<String>,
}

/// A Ceph RBD image (`enable_ceph`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ceph {
    /// `rbd_pool_name`.
    pub pool: String,
    /// `rbd_namespace_name`.
    pub namespace: Option<String>,
    /// The RBD image: `image_name`'s last component with its format suffix.
    pub image: String,
    /// `ceph_conf`: the Ceph configuration file.
    pub conf: Option<String>,
    /// `ceph_monitor`: the monitor (`host` or `host:port`).
    pub monitor: Option<String>,
    /// `ceph_key`: the client key (base64), passed as a secret object.
    pub key: Option<String>,
}

/// A namespace of a host NVMe controller driven by QEMU's userspace driver (`enable_nvme`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nvme {
    /// `nvme_pci_address`: `DDDD:BB:SS.F`.
    pub address: String,
    /// `nvme_namespace` (default 1).
    pub namespace: u32,
}

/// How QEMU checks an ssh server's host key (`image_ssh_host_key_check`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKeyCheck {
    /// `yes`: against `~/.ssh/known_hosts`.
    KnownHosts,
    /// `no`: not at all.
    None,
    /// `md5:…` or `sha1:…`: against a fingerprint.
    Hash {
        /// md5 or sha1.
        kind: String,
        /// The fingerprint.
        hash: String,
    },
}

/// An image read over ssh (`enable_ssh`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ssh {
    /// `image_ssh_host`.
    pub host: String,
    /// `image_ssh_port` (unset: 22).
    pub port: Option<u16>,
    /// `image_ssh_path`: the absolute path of the image on the server.
    pub path: String,
    /// `image_ssh_user`.
    pub user: Option<String>,
    /// `image_ssh_host_key_check`.
    pub host_key_check: Option<HostKeyCheck>,
    /// The value of `image_ssh_host_key_check` as given (for the URI).
    pub host_key_check_text: Option<String>,
}

/// The image keys a backend's file or URI is made of.
pub(crate) struct ImageFile<'a> {
    pub(crate) name: &'a str,
    pub(crate) format: ImageFormat,
    pub(crate) raw_device: bool,
}

impl ImageFile<'_> {
    /// `image_name`'s last component with the format suffix (none for a raw device when
    /// `raw_suffixless`), as the Gluster and Ceph backends name the image.
    fn leaf(&self, raw_suffixless: bool) -> String {
        let leaf = self.name.rsplit('/').next().unwrap_or(self.name);
        if raw_suffixless && self.raw_device {
            leaf.to_string()
        } else {
            format!("{leaf}.{}", self.format)
        }
    }
}

impl ImageBackend {
    /// The key that selected it (`None` for a file).
    pub fn key(&self) -> Option<&'static str> {
        Some(match self {
            ImageBackend::File => return None,
            ImageBackend::VhostVdpa { .. } | ImageBackend::VhostUserBlk { .. } => "storage_type",
            ImageBackend::Curl(_) => "enable_curl",
            ImageBackend::Nbd(_) => "enable_nbd",
            ImageBackend::IscsiDirect(_) => "enable_iscsi",
            ImageBackend::Gluster(_) => "enable_gluster",
            ImageBackend::Ceph(_) => "enable_ceph",
            ImageBackend::Nvme(_) => "enable_nvme",
            ImageBackend::Ssh(_) => "enable_ssh",
        })
    }

    /// The backend's name as QEMU's block layer calls its driver.
    pub fn as_str(&self) -> &'static str {
        match self {
            ImageBackend::File => "file",
            ImageBackend::VhostVdpa { .. } => "virtio-blk-vhost-vdpa",
            ImageBackend::VhostUserBlk { .. } => "virtio-blk-vhost-user",
            ImageBackend::Curl(c) => c.protocol,
            ImageBackend::Nbd(_) => "nbd",
            ImageBackend::IscsiDirect(_) => "iscsi",
            ImageBackend::Gluster(_) => "gluster",
            ImageBackend::Ceph(_) => "rbd",
            ImageBackend::Nvme(_) => "nvme",
            ImageBackend::Ssh(_) => "ssh",
        }
    }

    /// avocado-vt's file name of a network or device image: the URI `-drive file=` takes
    /// (`nbd://host:port/export`, `rbd:pool/image:conf=…`, `iscsi://user:pass@portal/iqn/0`…);
    /// `None` for a file.
    pub fn uri(&self) -> Option<String> {
        Some(match self {
            ImageBackend::File => return None,
            ImageBackend::VhostVdpa { device } => format!("vdpa://{device}"),
            ImageBackend::VhostUserBlk { socket } => format!("vhost-user-blk://{socket}"),
            ImageBackend::Curl(c) => {
                let auth = match (&c.username, &c.password) {
                    (Some(u), Some(p)) => format!("{u}:{p}@"),
                    (Some(u), None) => format!("{u}@"),
                    _ => String::new(),
                };
                format!("{}://{auth}{}/{}", c.protocol, c.server, c.path)
            }
            ImageBackend::Nbd(n) => {
                let export = n
                    .export
                    .as_ref()
                    .map(|e| format!("/{e}"))
                    .unwrap_or_default();
                match &n.server {
                    NbdServer::Tcp { host, port } => {
                        let port = port.map(|p| format!(":{p}")).unwrap_or_default();
                        format!("nbd://{host}{port}{export}")
                    }
                    NbdServer::Unix { socket } => format!("nbd+unix://{export}?socket={socket}"),
                }
            }
            ImageBackend::IscsiDirect(s) => {
                let auth = match (&s.user, &s.password) {
                    (Some(u), Some(p)) => format!("{u}:{p}@"),
                    _ => String::new(),
                };
                format!("iscsi://{auth}{}/{}/{}", s.portal, s.target, s.lun)
            }
            ImageBackend::Gluster(g) => match &g.server {
                GlusterServer::Inet {
                    host,
                    port,
                    transport,
                } => {
                    let t = transport
                        .as_ref()
                        .map(|t| format!("+{t}"))
                        .unwrap_or_default();
                    let host = if host.contains(':') {
                        format!("[{host}]")
                    } else {
                        host.clone()
                    };
                    let port = port.map(|p| format!(":{p}")).unwrap_or_default();
                    format!("gluster{t}://{host}{port}/{}/{}", g.volume, g.path)
                }
                GlusterServer::Unix { socket } => {
                    format!("gluster+unix:///{}/{}?socket={socket}", g.volume, g.path)
                }
            },
            ImageBackend::Ceph(c) => {
                let ns = c
                    .namespace
                    .as_ref()
                    .map(|n| format!("{n}/"))
                    .unwrap_or_default();
                let conf = c
                    .conf
                    .as_ref()
                    .map(|v| format!(":conf={v}"))
                    .unwrap_or_default();
                let mon = c
                    .monitor
                    .as_ref()
                    .map(|v| format!(":mon_host={v}"))
                    .unwrap_or_default();
                format!("rbd:{}/{ns}{}{conf}{mon}", c.pool, c.image)
            }
            ImageBackend::Nvme(n) => format!("nvme://{}/{}", n.address, n.namespace),
            ImageBackend::Ssh(s) => {
                let user = s.user.as_ref().map(|u| format!("{u}@")).unwrap_or_default();
                let port = s.port.map(|p| format!(":{p}")).unwrap_or_default();
                let check = s
                    .host_key_check_text
                    .as_ref()
                    .map(|c| format!("?host_key_check={c}"))
                    .unwrap_or_default();
                format!("ssh://{user}{}{port}{}{check}", s.host, s.path)
            }
        })
    }

    /// Reads the backend keys of an image (`file`: its `image_name`, format and raw-device
    /// flag, which name the image on Gluster and Ceph).
    pub(crate) fn read(i: &mut Reader<'_, '_>, file: &ImageFile<'_>) -> ImageBackend {
        let storage_type = i.str("storage_type");
        match storage_type {
            Some("vhost-vdpa") => {
                return ImageBackend::VhostVdpa {
                    device: file.name.to_string(),
                }
            }
            Some("vhost-user-blk") => {
                return ImageBackend::VhostUserBlk {
                    socket: file.name.to_string(),
                }
            }
            _ => {}
        }
        // Every flag is read (a bad boolean anywhere is a problem), the first set one wins.
        let curl = i.bool("enable_curl", false);
        let nbd = i.bool("enable_nbd", false);
        let iscsi = i.bool("enable_iscsi", false) && storage_type == Some("iscsi-direct");
        let gluster = i.bool("enable_gluster", false);
        let ceph = i.bool("enable_ceph", false);
        let nvme = i.bool("enable_nvme", false);
        let ssh = i.bool("enable_ssh", false);
        if curl {
            ImageBackend::Curl(read_curl(i))
        } else if nbd {
            ImageBackend::Nbd(read_nbd(i))
        } else if iscsi {
            ImageBackend::IscsiDirect(Iscsi {
                portal: required(i, "portal_ip"),
                target: required(i, "target"),
                lun: i.num("lun", "a LUN number").unwrap_or(0),
                user: i.string("chap_user"),
                password: i.string("chap_passwd"),
                initiator: i.string("initiator"),
            })
        } else if gluster {
            ImageBackend::Gluster(read_gluster(
                i,
                file,
                storage_type == Some("glusterfs-direct"),
            ))
        } else if ceph {
            ImageBackend::Ceph(Ceph {
                pool: required(i, "rbd_pool_name"),
                namespace: i.string("rbd_namespace_name"),
                image: file.leaf(false),
                conf: i.string("ceph_conf"),
                monitor: i.string("ceph_monitor"),
                key: i.string("ceph_key"),
            })
        } else if nvme {
            let address = required(i, "nvme_pci_address");
            if !address.is_empty() && !is_pci_address(&address) {
                i.problem(
                    "nvme_pci_address",
                    ProblemKind::Invalid {
                        expected: "a PCI address DDDD:BB:SS.F such as 0000:44:00.0".into(),
                    },
                );
            }
            ImageBackend::Nvme(Nvme {
                address,
                namespace: i
                    .num("nvme_namespace", "a namespace number (1 or more)")
                    .unwrap_or(1),
            })
        } else if ssh {
            ImageBackend::Ssh(read_ssh(i))
        } else {
            ImageBackend::File
        }
    }
}

/// A required key's value ("" when missing, which is a problem).
fn required(i: &mut Reader<'_, '_>, key: &str) -> String {
    i.require(key).unwrap_or("").to_string()
}

fn is_pci_address(s: &str) -> bool {
    let hex = |t: &str, n: usize| t.len() == n && t.bytes().all(|b| b.is_ascii_hexdigit());
    let Some((dom, rest)) = s.split_once(':') else {
        return false;
    };
    let Some((bus, rest)) = rest.split_once(':') else {
        return false;
    };
    let Some((slot, func)) = rest.split_once('.') else {
        return false;
    };
    hex(dom, 4) && hex(bus, 2) && hex(slot, 2) && func.len() == 1 && hex(func, 1)
}

fn read_curl(i: &mut Reader<'_, '_>) -> Curl {
    let protocol = match i.require("curl_protocol") {
        None => "http",
        Some("http") => "http",
        Some("https") => "https",
        Some("ftp") => "ftp",
        Some("ftps") => "ftps",
        Some(_) => {
            i.problem(
                "curl_protocol",
                ProblemKind::Invalid {
                    expected: "http, https, ftp or ftps".into(),
                },
            );
            "http"
        }
    };
    let sslverify = match i.str("curl_sslverify") {
        None => None,
        Some(v @ ("on" | "off")) => Some(v.to_string()),
        Some(_) => {
            i.problem(
                "curl_sslverify",
                ProblemKind::Invalid {
                    expected: "on or off".into(),
                },
            );
            None
        }
    };
    let readahead = match i.str("curl_readahead") {
        None => None,
        Some(v) => match size_in_bytes(v) {
            Some(n) if n % 512 == 0 => Some(n),
            _ => {
                i.problem(
                    "curl_readahead",
                    ProblemKind::Invalid {
                        expected: "a multiple of 512 bytes, with an optional b, k/K, M, G or T \
                                   suffix (256k)"
                            .into(),
                    },
                );
                None
            }
        },
    };
    Curl {
        protocol,
        server: required(i, "curl_server"),
        path: required(i, "curl_path"),
        username: i.string("curl_username"),
        password: i.string("curl_password"),
        sslverify,
        readahead,
        timeout: i.num("curl_timeout", "a timeout in seconds"),
        cookie: i.string("curl_cookie_secret"),
    }
}

/// A size as avocado-vt's `normalize_data_size` reads `curl_readahead`: a number with an
/// optional `b`, `k`/`K`, `M`, `G` or `T` suffix (powers of 1024), in bytes.
fn size_in_bytes(v: &str) -> Option<u64> {
    let (num, mult) = match v.as_bytes().last()? {
        b'b' | b'B' => (&v[..v.len() - 1], 1),
        b'k' | b'K' => (&v[..v.len() - 1], 1 << 10),
        b'm' | b'M' => (&v[..v.len() - 1], 1 << 20),
        b'g' | b'G' => (&v[..v.len() - 1], 1 << 30),
        b't' | b'T' => (&v[..v.len() - 1], 1 << 40),
        _ => (v, 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mult)
}

fn read_nbd(i: &mut Reader<'_, '_>) -> Nbd {
    let host = i.string("nbd_server");
    let socket = i.string("nbd_unix_socket");
    let port = i.num("nbd_port", "a TCP port");
    let server = match (host, socket) {
        (Some(host), _) => NbdServer::Tcp { host, port },
        (None, Some(socket)) => NbdServer::Unix { socket },
        (None, None) => {
            // avocado-vt: "Either nbd_server or nbd_unix_socket is required."
            i.problem("nbd_server", ProblemKind::Missing);
            NbdServer::Tcp {
                host: String::new(),
                port,
            }
        }
    };
    // TLS credentials apply to a TCP server only (avocado-vt ignores them for a socket).
    let tls_creds = i.string("nbd_client_tls_creds");
    Nbd {
        tls_creds: tls_creds.filter(|_| matches!(server, NbdServer::Tcp { .. })),
        server,
        export: i.string("nbd_export_name"),
        reconnect_delay: i.num("nbd_reconnect_delay", "a delay in seconds"),
    }
}

fn read_gluster(i: &mut Reader<'_, '_>, file: &ImageFile<'_>, direct: bool) -> Gluster {
    let volume = required(i, "gluster_volume_name");
    let socket = i.string("gluster_unix_socket");
    let host = i.string("gluster_server");
    let port = i.num("gluster_port", "a TCP port");
    let transport = match i.str("gluster_transport") {
        None => None,
        Some(t @ ("tcp" | "rdma" | "unix")) => Some(t.to_string()),
        Some(_) => {
            i.problem(
                "gluster_transport",
                ProblemKind::Invalid {
                    expected: "tcp, unix or rdma".into(),
                },
            );
            None
        }
    };
    let server = match (socket, host) {
        (Some(socket), _) => GlusterServer::Unix { socket },
        (None, Some(host)) => GlusterServer::Inet {
            host,
            port,
            transport,
        },
        (None, None) => {
            // avocado-vt falls back to this host's name (a local Gluster server it set up).
            i.problem("gluster_server", ProblemKind::Missing);
            GlusterServer::Inet {
                host: String::new(),
                port,
                transport,
            }
        }
    };
    let (mut peers, mut debug, mut logfile) = (Vec::new(), None, None);
    if direct {
        if let Some(text) = i.str("gluster_peers") {
            match parse_peers(text) {
                Some(p) => peers = p,
                None => i.problem(
                    "gluster_peers",
                    ProblemKind::Invalid {
                        expected: "a JSON list of servers such as \
                                   [{\"host\": \"h\", \"type\": \"inet\", \"port\": \"24007\"}] \
                                   or [{\"path\": \"/run/glusterd.socket\"}]"
                            .into(),
                    },
                ),
            }
        }
        debug = i.num("gluster_debug", "a log level (0-9)");
        logfile = i.string("gluster_logfile");
    }
    Gluster {
        server,
        volume,
        path: file.leaf(true),
        peers,
        debug,
        logfile,
    }
}

/// `gluster_peers`: a JSON list of objects with `path`, or `host` and optional `type` and
/// `port` (strings or numbers).
fn parse_peers(text: &str) -> Option<Vec<GlusterPeer>> {
    let text = text.trim();
    let text = text
        .strip_prefix('\'')
        .and_then(|t| t.strip_suffix('\''))
        .unwrap_or(text);
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    let scalar = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    value
        .as_array()?
        .iter()
        .map(|peer| {
            let peer = peer.as_object()?;
            if let Some(path) = peer.get("path") {
                return Some(GlusterPeer::Unix {
                    path: scalar(path)?,
                });
            }
            Some(GlusterPeer::Inet {
                kind: match peer.get("type") {
                    Some(t) => scalar(t)?,
                    None => "inet".into(),
                },
                host: scalar(peer.get("host")?)?,
                port: match peer.get("port") {
                    Some(p) => scalar(p)?,
                    None => "0".into(),
                },
            })
        })
        .collect()
}

fn read_ssh(i: &mut Reader<'_, '_>) -> Ssh {
    let host = required(i, "image_ssh_host");
    let path = required(i, "image_ssh_path");
    if !path.is_empty() && !path.starts_with('/') {
        i.problem(
            "image_ssh_path",
            ProblemKind::Invalid {
                expected: "an absolute path on the ssh server".into(),
            },
        );
    }
    let text = i.string("image_ssh_host_key_check");
    let host_key_check = match text.as_deref() {
        None => None,
        Some("yes") => Some(HostKeyCheck::KnownHosts),
        Some("no") => Some(HostKeyCheck::None),
        Some(v) => match v.split_once(':') {
            Some((kind @ ("md5" | "sha1"), hash)) if !hash.is_empty() => Some(HostKeyCheck::Hash {
                kind: kind.to_string(),
                hash: hash.to_string(),
            }),
            _ => {
                i.problem(
                    "image_ssh_host_key_check",
                    ProblemKind::Invalid {
                        expected: "yes, no, or a fingerprint md5:… or sha1:…".into(),
                    },
                );
                None
            }
        },
    };
    Ssh {
        host,
        port: i.num("image_ssh_port", "a TCP port"),
        path,
        user: i.string("image_ssh_user"),
        host_key_check_text: text.filter(|_| host_key_check.is_some()),
        host_key_check,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_addresses() {
        assert_eq!(size_in_bytes("256k"), Some(256 * 1024));
        assert_eq!(size_in_bytes("1M"), Some(1 << 20));
        assert_eq!(size_in_bytes("512"), Some(512));
        assert_eq!(size_in_bytes("x"), None);
        assert!(is_pci_address("0000:44:00.0"));
        assert!(!is_pci_address("44:00.0"));
    }

    #[test]
    fn peers() {
        let p = parse_peers(
            r#"[{"host": "h1", "port": 24007}, {"type": "inet", "host": "h2"}, {"path": "/s"}]"#,
        );
        assert_eq!(
            p.as_deref(),
            Some(
                &[
                    GlusterPeer::Inet {
                        kind: "inet".into(),
                        host: "h1".into(),
                        port: "24007".into()
                    },
                    GlusterPeer::Inet {
                        kind: "inet".into(),
                        host: "h2".into(),
                        port: "0".into()
                    },
                    GlusterPeer::Unix { path: "/s".into() },
                ][..]
            )
        );
        assert_eq!(parse_peers("[1]"), None);
    }
}
