//! The protocol side of a network or device image (avocado-vt's `image_backend`s): the options
//! of its `-blockdev` protocol node, as avocado-vt's `filename_to_file_opts` derives them from
//! the image's URI plus the access options of `images_define_by_variables`, and the `-drive`
//! spelling (`file=URI` plus `file.*` options) of binaries without `-blockdev`.
//!
//! | backend | driver | options |
//! | --- | --- | --- |
//! | nbd | `nbd` | `server.type=inet,server.host,server.port` (10809) or `server.type=unix,server.path`; `export`, `tls-creds`, `reconnect-delay` |
//! | gluster | `gluster` | `volume`, `path`, `server.0.type/host/port` (port 0) or `server.0.type=unix,server.0.path`; `debug`, `logfile`, peers `server.N.*` |
//! | ceph | `rbd` | `pool`, `image`, `conf`, `namespace`, `server.0.host/port` (the monitor), `key-secret` |
//! | iscsi-direct | `iscsi` | `transport=tcp`, `portal`, `target`, `lun`, `user`, `password-secret`, `initiator-name` |
//! | curl | `http`, `https`, `ftp`, `ftps` | `url`, `username`, `password-secret`, `cookie-secret`, `sslverify`, `readahead`, `timeout` |
//! | ssh | `ssh` | `server.host`, `server.port` (22), `path`, `user`, `host-key-check.*` |
//! | nvme | `nvme` | `device`, `namespace` (cache forced to writethrough) |
//! | vhost-vdpa | `virtio-blk-vhost-vdpa` | `path` |
//! | vhost-user-blk | `virtio-blk-vhost-user` | `path` |
//!
//! Secrets are `-object secret` with avocado-vt's ids: `IMAGE_access` (the Ceph key, the CHAP or
//! curl password), `IMAGE_cookie_secret` (curl's cookie); NBD's TLS credentials
//! `-object tls-creds-x509,id=IMAGE_access,endpoint=client,dir=…`. With `-drive` the passwords
//! are in the URI (as avocado-vt has them) and no password secret is made.

use super::{Builder, Obj, Opts};
use spec::storage::{GlusterPeer, GlusterServer, HostKeyCheck, NbdServer};
use spec::vm::{ImageBackend, ImageSpec};

/// What a network or device backend adds to the command line.
pub(super) struct Protocol {
    /// The protocol node's driver.
    pub driver: &'static str,
    /// The protocol node's options after `node-name` and `driver`.
    pub blockdev: Vec<(String, String)>,
    /// The `file.*` options of a `-drive`.
    pub drive: Vec<(String, String)>,
}

impl Protocol {
    fn new(driver: &'static str) -> Protocol {
        Protocol {
            driver,
            blockdev: Vec::new(),
            drive: Vec::new(),
        }
    }

    fn node(&mut self, key: &str, value: impl Into<String>) {
        self.blockdev.push((key.to_string(), value.into()));
    }

    /// An access option: on the node, and as `file.KEY` on a `-drive`.
    fn both(&mut self, key: &str, value: impl Into<String>) {
        let value = value.into();
        self.drive.push((format!("file.{key}"), value.clone()));
        self.blockdev.push((key.to_string(), value));
    }
}

/// `-object secret,id=ID,format=FORMAT,data=DATA`.
fn secret(b: &mut Builder<'_>, id: &str, format: &str, data: &str) {
    let mut o = Opts::new("secret");
    o.kv("id", id).kv("format", format).kv("data", data);
    b.cmd.push2("-object", o.finish());
}

/// The protocol of `img`'s backend (`None` for a file, or when this binary cannot have it: a
/// problem is recorded then), its secret and TLS objects pushed. `blockdev`: the image is
/// given as `-blockdev` nodes, else as a `-drive`.
pub(super) fn protocol(b: &mut Builder<'_>, img: &ImageSpec, blockdev: bool) -> Option<Protocol> {
    let obj = Obj::Sub("image", &img.name);
    img.backend.key()?;
    let access = format!("{}_access", img.name);
    let objects = b.caps.has_option("object");
    let mut p = match &img.backend {
        ImageBackend::File => return None,
        ImageBackend::VhostVdpa { device } | ImageBackend::VhostUserBlk { socket: device } => {
            let driver = img.backend.as_str();
            let v = b.caps.version;
            if (v.major, v.minor) < (7, 2) || !blockdev {
                let why = if img.snapshot && (v.major, v.minor) >= (7, 2) {
                    (
                        "image_snapshot",
                        format!("a {driver} image cannot be a snapshot (-drive)"),
                    )
                } else {
                    (
                        "storage_type",
                        format!("QEMU {v} has no {driver} block driver (QEMU 7.2 added it)"),
                    )
                };
                b.unsupported(obj, why.0, why.1);
                return None;
            }
            if !device.starts_with('/') {
                // avocado-vt looks the vdpa device's character device up in sysfs; kvmtest
                // renders without touching the host.
                b.unsupported(
                    obj,
                    "image_name",
                    format!(
                        "kvmtest does not look up the /dev/vhost-vdpa-N device of vdpa device \
                         {device}: give its path as image_name"
                    ),
                );
                return None;
            }
            let mut p = Protocol::new(driver);
            p.node("path", device.as_str());
            p
        }
        ImageBackend::Curl(c) => {
            let mut p = Protocol::new(c.protocol);
            p.node("url", format!("{}://{}/{}", c.protocol, c.server, c.path));
            if let Some(u) = &c.username {
                p.node("username", u.as_str());
            }
            if let Some(cookie) = &c.cookie {
                let id = format!("{}_cookie_secret", img.name);
                if objects {
                    secret(b, &id, "raw", cookie);
                    p.both("cookie-secret", id);
                }
            }
            if let Some(pw) = c.password.as_deref().filter(|_| blockdev) {
                secret(b, &access, "raw", pw);
                p.node("password-secret", access.as_str());
            }
            if let Some(v) = &c.sslverify {
                p.both("sslverify", v.as_str());
            }
            if let Some(n) = c.readahead {
                p.both("readahead", n.to_string());
            }
            if let Some(n) = c.timeout {
                p.both("timeout", n.to_string());
            }
            p
        }
        ImageBackend::Nbd(n) => {
            let mut p = Protocol::new("nbd");
            match &n.server {
                NbdServer::Tcp { host, port } => {
                    p.node("server.type", "inet");
                    p.node("server.host", host.as_str());
                    p.node("server.port", port.unwrap_or(10809).to_string());
                }
                NbdServer::Unix { socket } => {
                    p.node("server.type", "unix");
                    p.node("server.path", socket.as_str());
                }
            }
            if let Some(e) = &n.export {
                p.node("export", e.as_str());
            }
            if let Some(dir) = &n.tls_creds {
                if objects {
                    let mut o = Opts::new("tls-creds-x509");
                    o.kv("id", &access).kv("endpoint", "client").kv("dir", dir);
                    b.cmd.push2("-object", o.finish());
                    p.both("tls-creds", access.as_str());
                }
            }
            if let Some(d) = n.reconnect_delay {
                p.both("reconnect-delay", d.to_string());
            }
            p
        }
        ImageBackend::IscsiDirect(s) => {
            let mut p = Protocol::new("iscsi");
            p.node("transport", "tcp");
            p.node("portal", s.portal.as_str());
            p.node("target", s.target.as_str());
            p.node("lun", s.lun.to_string());
            if let (Some(u), Some(_)) = (&s.user, &s.password) {
                p.node("user", u.as_str());
            }
            if let Some(pw) = s.password.as_deref().filter(|_| blockdev) {
                secret(b, &access, "raw", pw);
                p.node("password-secret", access.as_str());
            }
            if let Some(i) = &s.initiator {
                p.both("initiator-name", i.as_str());
            }
            p
        }
        ImageBackend::Gluster(g) => {
            let mut p = Protocol::new("gluster");
            p.node("volume", g.volume.as_str());
            p.node("path", g.path.as_str());
            match &g.server {
                GlusterServer::Inet {
                    host,
                    port,
                    transport,
                } => {
                    let kind = match transport.as_deref() {
                        None | Some("tcp") => "inet",
                        Some(t) => t,
                    };
                    p.node("server.0.type", kind);
                    p.node("server.0.host", host.as_str());
                    p.node("server.0.port", port.unwrap_or(0).to_string());
                }
                GlusterServer::Unix { socket } => {
                    p.node("server.0.type", "unix");
                    p.node("server.0.path", socket.as_str());
                }
            }
            if let Some(d) = g.debug {
                p.both("debug", d.to_string());
            }
            if let Some(l) = &g.logfile {
                p.both("logfile", l.as_str());
            }
            for (n, peer) in g.peers.iter().enumerate() {
                let k = |key: &str| format!("server.{}.{key}", n + 1);
                match peer {
                    GlusterPeer::Inet { kind, host, port } => {
                        p.node(&k("host"), host.as_str());
                        p.node(&k("type"), kind.as_str());
                        p.node(&k("port"), port.as_str());
                    }
                    GlusterPeer::Unix { path } => {
                        p.node(&k("type"), "unix");
                        p.node(&k("path"), path.as_str());
                    }
                }
            }
            p
        }
        ImageBackend::Ceph(c) => {
            let mut p = Protocol::new("rbd");
            p.node("pool", c.pool.as_str());
            p.node("image", c.image.as_str());
            if let Some(conf) = &c.conf {
                p.node("conf", conf.as_str());
            }
            if let Some(ns) = &c.namespace {
                p.node("namespace", ns.as_str());
            }
            if let Some(mon) = &c.monitor {
                // QEMU's rbd server list wants host and port; Ceph's monitor port is 6789.
                let (host, port) = match mon.rsplit_once(':') {
                    Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => (h, port),
                    _ => (mon.as_str(), "6789"),
                };
                p.node("server.0.host", host);
                p.node("server.0.port", port);
            }
            if let Some(key) = &c.key {
                if objects {
                    secret(b, &access, "base64", key);
                    p.both("key-secret", access.as_str());
                }
            }
            p
        }
        ImageBackend::Nvme(n) => {
            let mut p = Protocol::new("nvme");
            p.node("device", n.address.as_str());
            p.node("namespace", n.namespace.to_string());
            p
        }
        ImageBackend::Ssh(s) => {
            let mut p = Protocol::new("ssh");
            p.node("server.host", s.host.as_str());
            p.node("server.port", s.port.unwrap_or(22).to_string());
            p.node("path", s.path.as_str());
            if let Some(u) = &s.user {
                p.node("user", u.as_str());
            }
            match &s.host_key_check {
                None => {}
                Some(HostKeyCheck::None) => p.node("host-key-check.mode", "none"),
                Some(HostKeyCheck::KnownHosts) => p.node("host-key-check.mode", "known_hosts"),
                Some(HostKeyCheck::Hash { kind, hash }) => {
                    p.node("host-key-check.mode", "hash");
                    p.node("host-key-check.type", kind.as_str());
                    p.node("host-key-check.hash", hash.as_str());
                }
            }
            p
        }
    };
    if !blockdev {
        p.blockdev.clear();
    }
    Some(p)
}
