//! The SPICE family: `display = spice` with avocado-vt's `spice_*` keys (`VM.make_create_command`'s
//! `spice_keys` and `add_spice`), and the extra QXL adapters of `vga = qxl` (`qxl_dev_nr`,
//! `qxl_base_addr`, `add_qxl`), read into [`SpiceSpec`] and [`QxlSpec`] with their keys declared
//! here.
//!
//! avocado-vt reads the SPICE keys only when `display = spice`, and the TLS keys only when
//! `spice_ssl = yes`; so does this reader: a TLS key of a variant without TLS asks for nothing.
//! Values are typed: ports are a number, `generate` (a free port of avocado-vt's ranges, chosen by
//! the `vm` crate at run time) or `no`; yes/no keys are booleans; compression and channel keys
//! are spice-server's words. A bad value is an `Invalid` problem; a value avocado-vt would render
//! as a broken option (`x509-dir=None`, a key file joined to no directory) is a `Missing` one.

use crate::keys::KeyDoc;
use crate::problem::ProblemKind;
use crate::read::Reader;
use crate::types::{
    IpVersion, SpiceChannel, SpiceImageCompression, SpiceStreamingVideo, SpiceWanCompression,
};

/// The SPICE keys (VM level; read with `display = spice`, `qxl_*` with `vga = qxl`).
pub const SPICE_KEYS: &[KeyDoc] = &[
    KeyDoc::optional(
        "spice_port",
        "`port=`: a TCP port, `generate` (a free one of 3000-3199, chosen when the VM starts) \
         or `no` (none; unset: none)",
    ),
    KeyDoc::optional(
        "spice_password",
        "the SPICE password: a `secret` object and `password-secret=` where `-spice` has it, \
         else `password=` (unset or empty: `disable-ticketing=on`)",
    ),
    KeyDoc::optional("spice_addr", "`addr=`: the address SPICE listens on"),
    KeyDoc::optional(
        "listening_addr",
        "ipv4 or ipv6: listen on the host's address of that version (`host_ip_addr`, else the \
         address of `netdst`'s interface, else of the default route's), in place of `spice_addr`",
    ),
    KeyDoc::optional(
        "host_ip_addr",
        "the host's address, for `listening_addr` and a server certificate subject ending in `CN=`",
    ),
    KeyDoc::optional(
        "netdst",
        "the host interface whose address `listening_addr` (and a subject ending in `CN=`) \
         takes when `host_ip_addr` is unset (unset: the default route's interface)",
    ),
    KeyDoc::optional(
        "disable_copy_paste",
        "yes or no: `disable-copy-paste=on|off` (unset: QEMU's default)",
    ),
    KeyDoc::with_default(
        "spice_ssl",
        "no",
        "yes: TLS (`tls-port=`, the x509 options, the channel lists); the other `spice_x509_*`, \
         `spice_tls_*`, channel and `spice_gen_x509` keys are read only then",
    ),
    KeyDoc::optional(
        "spice_tls_port",
        "`tls-port=`: a TCP port, `generate` (a free one of 3200-3399, chosen when the VM starts) \
         or `no` (unset: none)",
    ),
    KeyDoc::optional(
        "spice_tls_ciphers",
        "`tls-ciphers=`: OpenSSL's cipher list (avocado-vt reads this key but never renders it; \
         kvmtest does)",
    ),
    KeyDoc::with_default(
        "spice_gen_x509",
        "no",
        "yes: when `spice_x509_prefix` does not exist, make it, with a CA and a server \
         certificate (unset prefix: a directory in the run dir, removed with the run)",
    ),
    KeyDoc::optional(
        "spice_x509_dir",
        "yes: `x509-dir=` the prefix; no: the three files under it (`x509-key-file`, \
         `x509-cacert-file`, `x509-cert-file`); unset: no x509 option",
    ),
    KeyDoc::optional(
        "spice_x509_prefix",
        "the directory of the certificates (relative: under the root dir; required unless \
         `spice_gen_x509 = yes`)",
    ),
    KeyDoc::optional(
        "spice_x509_key_file",
        "the server key under the prefix (required with `spice_x509_dir = no`; `server-key.pem` \
         when generated)",
    ),
    KeyDoc::optional(
        "spice_x509_cacert_file",
        "the CA certificate under the prefix (required with `spice_x509_dir = no`; `ca-cert.pem` \
         when generated)",
    ),
    KeyDoc::optional(
        "spice_x509_cert_file",
        "the server certificate under the prefix (required with `spice_x509_dir = no`; \
         `server-cert.pem` when generated)",
    ),
    KeyDoc::optional(
        "spice_x509_key_password",
        "the passphrase of the generated CA key, and of the server key with \
         `spice_x509_secure = yes` (`x509-key-password=`)",
    ),
    KeyDoc::with_default(
        "spice_x509_secure",
        "no",
        "yes: the server key is protected by `spice_x509_key_password`, given to QEMU as \
         `x509-key-password=`",
    ),
    KeyDoc::optional(
        "spice_x509_cacert_subj",
        "the generated CA certificate's subject (`/C=CZ/L=BRNO/O=SPICE/CN=my CA`; required with \
         `spice_gen_x509 = yes`)",
    ),
    KeyDoc::optional(
        "spice_x509_server_subj",
        "the generated server certificate's subject (required with `spice_gen_x509 = yes`; \
         ending in `CN=`: the host's IPv4 address is appended)",
    ),
    KeyDoc::optional(
        "spice_secure_channels",
        "channels only offered over TLS, comma-separated (`main, inputs`): `tls-channel=` each",
    ),
    KeyDoc::optional(
        "spice_plaintext_channels",
        "channels only offered in plain text, comma-separated: `plaintext-channel=` each",
    ),
    KeyDoc::optional(
        "spice_seamless_migration",
        "on or off: `seamless-migration=`",
    ),
    KeyDoc::optional(
        "spice_image_compression",
        "`image-compression=`: auto_glz, auto_lz, quic, glz, lz or off",
    ),
    KeyDoc::optional(
        "spice_jpeg_wan_compression",
        "`jpeg-wan-compression=`: auto, never or always",
    ),
    KeyDoc::optional(
        "spice_zlib_glz_wan_compression",
        "`zlib-glz-wan-compression=`: auto, never or always",
    ),
    KeyDoc::optional(
        "spice_streaming_video",
        "`streaming-video=`: off, all or filter",
    ),
    KeyDoc::optional("spice_agent_mouse", "on or off: `agent-mouse=`"),
    KeyDoc::optional(
        "spice_playback_compression",
        "on or off: `playback-compression=`",
    ),
    KeyDoc::optional("spice_ipv4", "yes or no: `ipv4=on|off`"),
    KeyDoc::optional("spice_ipv6", "yes or no: `ipv6=on|off`"),
    KeyDoc::with_default(
        "qxl_dev_nr",
        "1",
        "with `vga = qxl`: how many QXL adapters; each beyond the first is a `qxl` device at \
         `qxl_base_addr` + its index",
    ),
    KeyDoc::with_default(
        "qxl_base_addr",
        "29",
        "the PCI slot (decimal) the extra QXL adapters count from",
    ),
];

/// A SPICE port: `spice_port`, `spice_tls_port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpicePort {
    /// A fixed port.
    Fixed(u16),
    /// `generate`: a free port of the key's range, chosen at run time (the run plan's).
    Generate,
}

/// The ports avocado-vt generates `spice_port` from.
pub const SPICE_PORT_RANGE: (u16, u16) = (3000, 3199);

/// The ports avocado-vt generates `spice_tls_port` from.
pub const SPICE_TLS_PORT_RANGE: (u16, u16) = (3200, 3399);

/// Where the host's address comes from (`listening_addr`, a server subject ending in `CN=`):
/// avocado-vt's `utils_net.get_host_ip_address`, resolved at run time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostAddress {
    /// The IP version wanted.
    pub version: IpVersion,
    /// `host_ip_addr`: taken as it is when set.
    pub host_ip_addr: Option<String>,
    /// `netdst`: the interface whose address is taken (unset: the default route's).
    pub netdst: Option<String>,
}

/// Where SPICE listens: `addr=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpiceAddr {
    /// `spice_addr`, as given.
    Fixed(String),
    /// `listening_addr`: the host's address, resolved at run time.
    Host(HostAddress),
}

/// How QEMU is told about the certificates (`spice_x509_dir`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum X509Use {
    /// `spice_x509_dir` unset: no x509 option (spice-server's defaults).
    Nothing,
    /// `spice_x509_dir = yes`: `x509-dir=` the prefix.
    Dir,
    /// `spice_x509_dir = no`: `x509-key-file=`, `x509-cacert-file=`, `x509-cert-file=`, each
    /// joined to the prefix (an absolute file name stands alone).
    Files {
        /// `spice_x509_key_file`.
        key: String,
        /// `spice_x509_cacert_file`.
        cacert: String,
        /// `spice_x509_cert_file`.
        cert: String,
    },
}

/// `spice_gen_x509 = yes`: what to generate when the prefix does not exist (avocado-vt's
/// `utils_misc.create_x509_dir`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct X509Generate {
    /// `spice_x509_cacert_subj`.
    pub cacert_subj: String,
    /// `spice_x509_server_subj` (ending in `CN=`: see [`X509Generate::server_cn`]).
    pub server_subj: String,
    /// `spice_x509_key_password`: the CA key's passphrase (and the server key's, when secure).
    pub key_password: String,
    /// `spice_x509_secure`: the server key is encrypted with `key_password`.
    pub secure: bool,
    /// For a server subject ending in `CN=`: the host address appended to it (IPv4).
    pub server_cn: Option<HostAddress>,
}

/// The certificates of SPICE's TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpiceX509 {
    /// `spice_x509_prefix`; `None` only when generated: then a directory in the run dir.
    pub prefix: Option<String>,
    /// How QEMU is told.
    pub use_: X509Use,
    /// `spice_gen_x509 = yes`.
    pub generate: Option<X509Generate>,
}

/// `spice_ssl = yes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpiceTls {
    /// `spice_tls_port` (`no` or unset: none).
    pub port: Option<SpicePort>,
    /// The certificates.
    pub x509: SpiceX509,
    /// `spice_x509_key_password` when `spice_x509_secure = yes`: `x509-key-password=`.
    pub key_password: Option<String>,
    /// `spice_tls_ciphers`: `tls-ciphers=`.
    pub ciphers: Option<String>,
    /// `spice_secure_channels`: `tls-channel=` each.
    pub secure_channels: Vec<SpiceChannel>,
    /// `spice_plaintext_channels`: `plaintext-channel=` each.
    pub plaintext_channels: Vec<SpiceChannel>,
}

/// `display = spice`: the `-spice` option, in avocado-vt's order of its items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpiceSpec {
    /// `spice_port` (`no` or unset: none).
    pub port: Option<SpicePort>,
    /// `spice_password` (unset or empty: `disable-ticketing=on`).
    pub password: Option<String>,
    /// `disable_copy_paste`.
    pub disable_copy_paste: Option<bool>,
    /// `spice_addr`, or the host's address of `listening_addr`.
    pub addr: Option<SpiceAddr>,
    /// `spice_ssl = yes`.
    pub tls: Option<SpiceTls>,
    /// `spice_seamless_migration`.
    pub seamless_migration: Option<bool>,
    /// `spice_image_compression`.
    pub image_compression: Option<SpiceImageCompression>,
    /// `spice_jpeg_wan_compression`.
    pub jpeg_wan_compression: Option<SpiceWanCompression>,
    /// `spice_zlib_glz_wan_compression`.
    pub zlib_glz_wan_compression: Option<SpiceWanCompression>,
    /// `spice_streaming_video`.
    pub streaming_video: Option<SpiceStreamingVideo>,
    /// `spice_agent_mouse`.
    pub agent_mouse: Option<bool>,
    /// `spice_playback_compression`.
    pub playback_compression: Option<bool>,
    /// `spice_ipv4`.
    pub ipv4: Option<bool>,
    /// `spice_ipv6`.
    pub ipv6: Option<bool>,
}

impl SpiceSpec {
    /// Whether a port is generated at run time (`spice_port` or `spice_tls_port` = `generate`).
    pub fn generates_ports(&self) -> bool {
        self.port == Some(SpicePort::Generate)
            || self
                .tls
                .as_ref()
                .is_some_and(|t| t.port == Some(SpicePort::Generate))
    }
}

/// The extra QXL adapters of `vga = qxl` (`qxl_dev_nr` > 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QxlSpec {
    /// `qxl_dev_nr`: the adapters in all, the `qxl-vga` of `vga` included.
    pub devices: u8,
    /// `qxl_base_addr`: extra adapter N (1, 2…) is at slot `base_addr + N`.
    pub base_addr: u8,
}

impl QxlSpec {
    /// The PCI slots of the extra adapters, in order (`video1`, `video2`…).
    pub fn extra_slots(&self) -> impl Iterator<Item = (u8, u8)> + '_ {
        (1..self.devices).map(|i| (i, self.base_addr.saturating_add(i)))
    }
}

/// A port key: a number, `generate` or `no` (`None`: unset or `no`).
fn read_port(r: &mut Reader<'_, '_>, key: &str) -> Option<SpicePort> {
    match r.str(key)? {
        "no" => None,
        "generate" => Some(SpicePort::Generate),
        v => match v.parse::<u16>() {
            Ok(p) if p > 0 => Some(SpicePort::Fixed(p)),
            _ => {
                r.problem(
                    key,
                    ProblemKind::Invalid {
                        expected: "a TCP port (1-65535), `generate` or `no`".into(),
                    },
                );
                None
            }
        },
    }
}

/// A comma-separated channel list (items trimmed, as avocado-vt splits it).
fn read_channels(r: &mut Reader<'_, '_>, key: &str) -> Vec<SpiceChannel> {
    let Some(text) = r.str(key) else {
        return Vec::new();
    };
    let parsed: Result<Vec<SpiceChannel>, _> = text
        .split(',')
        .map(|c| c.trim().parse::<SpiceChannel>())
        .collect();
    parsed.unwrap_or_else(|e| {
        r.problem(
            key,
            ProblemKind::Invalid {
                expected: format!("comma-separated channels: {}", e.0),
            },
        );
        Vec::new()
    })
}

/// `host_ip_addr` and `netdst`, for an address of `version`.
fn host_address(r: &mut Reader<'_, '_>, version: IpVersion) -> HostAddress {
    HostAddress {
        version,
        host_ip_addr: r.string("host_ip_addr"),
        netdst: r.string("netdst"),
    }
}

/// A key required by another key's value: its value, else a `Missing` problem.
fn needed(r: &mut Reader<'_, '_>, key: &str) -> Option<String> {
    r.require(key).map(str::to_string)
}

impl SpiceSpec {
    /// Reads the SPICE keys through the VM's reader (call it only with `display = spice`).
    pub fn read(r: &mut Reader<'_, '_>) -> SpiceSpec {
        let port = read_port(r, "spice_port");
        let password = r.string("spice_password");
        let disable_copy_paste = r.opt_bool("disable_copy_paste");
        let fixed_addr = r.string("spice_addr").map(SpiceAddr::Fixed);
        let addr = match r.parse::<IpVersion>("listening_addr") {
            Some(v) => Some(SpiceAddr::Host(host_address(r, v))),
            None => fixed_addr,
        };
        let tls = r.bool("spice_ssl", false).then(|| read_tls(r));
        SpiceSpec {
            port,
            password,
            disable_copy_paste,
            addr,
            tls,
            seamless_migration: r.opt_bool("spice_seamless_migration"),
            image_compression: r.parse("spice_image_compression"),
            jpeg_wan_compression: r.parse("spice_jpeg_wan_compression"),
            zlib_glz_wan_compression: r.parse("spice_zlib_glz_wan_compression"),
            streaming_video: r.parse("spice_streaming_video"),
            agent_mouse: r.opt_bool("spice_agent_mouse"),
            playback_compression: r.opt_bool("spice_playback_compression"),
            ipv4: r.opt_bool("spice_ipv4"),
            ipv6: r.opt_bool("spice_ipv6"),
        }
    }
}

/// The TLS keys (`spice_ssl = yes`).
fn read_tls(r: &mut Reader<'_, '_>) -> SpiceTls {
    let port = read_port(r, "spice_tls_port");
    let secure = r.bool("spice_x509_secure", false);
    let generating = r.bool("spice_gen_x509", false);
    // The CA key's passphrase when generating, the server key's when secure: one reading.
    let password = if generating || secure {
        needed(r, "spice_x509_key_password")
    } else {
        None
    };
    let generate = if generating {
        let cacert_subj = needed(r, "spice_x509_cacert_subj");
        let server_subj = needed(r, "spice_x509_server_subj");
        let key_password = password.clone();
        let server_cn = server_subj
            .as_deref()
            .is_some_and(|s| s.ends_with("CN="))
            .then(|| host_address(r, IpVersion::Ipv4));
        match (cacert_subj, server_subj, key_password) {
            (Some(cacert_subj), Some(server_subj), Some(key_password)) => Some(X509Generate {
                cacert_subj,
                server_subj,
                key_password,
                secure,
                server_cn,
            }),
            _ => None,
        }
    } else {
        None
    };
    let use_ = match r.opt_bool("spice_x509_dir") {
        None => X509Use::Nothing,
        Some(true) => X509Use::Dir,
        Some(false) => {
            let key = needed(r, "spice_x509_key_file");
            let cacert = needed(r, "spice_x509_cacert_file");
            let cert = needed(r, "spice_x509_cert_file");
            match (key, cacert, cert) {
                (Some(key), Some(cacert), Some(cert)) => X509Use::Files { key, cacert, cert },
                _ => X509Use::Nothing,
            }
        }
    };
    // avocado-vt would write `x509-dir=None`: the prefix is needed unless kvmtest makes one.
    let prefix = if use_ != X509Use::Nothing && !generating {
        needed(r, "spice_x509_prefix")
    } else {
        r.string("spice_x509_prefix")
    };
    let key_password = if secure { password } else { None };
    SpiceTls {
        port,
        x509: SpiceX509 {
            prefix,
            use_,
            generate,
        },
        key_password,
        ciphers: r.string("spice_tls_ciphers"),
        secure_channels: read_channels(r, "spice_secure_channels"),
        plaintext_channels: read_channels(r, "spice_plaintext_channels"),
    }
}

impl QxlSpec {
    /// Reads `qxl_dev_nr` and `qxl_base_addr` (avocado-vt reads them with `vga = qxl`; more
    /// than one adapter with another `vga` is a problem, never a silent no-op).
    pub fn read(r: &mut Reader<'_, '_>, vga: Option<&str>) -> QxlSpec {
        let none = QxlSpec {
            devices: 1,
            base_addr: 29,
        };
        let devices = r
            .num::<u8>("qxl_dev_nr", "a number of QXL adapters (1-32)")
            .unwrap_or(1);
        if devices <= 1 {
            return none;
        }
        if vga != Some("qxl") {
            r.problem(
                "qxl_dev_nr",
                ProblemKind::Invalid {
                    expected: "1 unless `vga = qxl` (the extra adapters go beside a QXL one)"
                        .into(),
                },
            );
            return none;
        }
        let base_addr = r
            .num::<u8>("qxl_base_addr", "a PCI slot number (decimal)")
            .unwrap_or(29);
        let last = u32::from(base_addr) + u32::from(devices) - 1;
        if last > 31 {
            // The key the user set is the one to blame: the base when given, else the count.
            let key = if r.str("qxl_base_addr").is_some() {
                "qxl_base_addr"
            } else {
                "qxl_dev_nr"
            };
            r.problem(
                key,
                ProblemKind::Invalid {
                    expected: format!(
                        "{} extra QXL adapter(s) from slot {base_addr} + 1 on, below slot 32 \
                         (the last would be slot {last})",
                        devices - 1
                    ),
                },
            );
            return none;
        }
        QxlSpec { devices, base_addr }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::params;
    use crate::VmSpec;

    fn spice(pairs: &[(&str, &str)]) -> Result<SpiceSpec, Vec<(String, String)>> {
        let mut all = vec![("display", "spice")];
        all.extend_from_slice(pairs);
        match VmSpec::new(&params(&all), "vm1") {
            Ok(s) => Ok(s.spice.unwrap_or_else(|| panic!("no spice"))),
            Err(e) => Err(e
                .problems()
                .iter()
                .map(|p| (p.key.clone(), p.to_string()))
                .collect()),
        }
    }

    /// The problems' keys, sorted.
    fn keys(e: Vec<(String, String)>) -> Vec<String> {
        let mut k: Vec<String> = e.into_iter().map(|(k, _)| k).collect();
        k.sort();
        k
    }

    #[test]
    fn ports_are_numbers_generate_or_no() {
        let s = spice(&[("spice_port", "3001")]).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(s.port, Some(SpicePort::Fixed(3001)));
        assert!(!s.generates_ports());
        let s = spice(&[("spice_port", "generate")]).unwrap_or_else(|e| panic!("{e:?}"));
        assert!(s.generates_ports());
        let s = spice(&[("spice_port", "no")]).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(s.port, None);
        let e = spice(&[("spice_port", "0")]).err().unwrap_or_default();
        assert_eq!(keys(e), ["spice_port"]);
        let e = spice(&[("spice_port", "auto")]).err().unwrap_or_default();
        assert!(e[0].1.contains("`generate` or `no`"), "{e:?}");
    }

    #[test]
    fn every_bad_value_is_reported_at_once() {
        let e = spice(&[
            ("disable_copy_paste", "maybe"),
            ("spice_image_compression", "zstd"),
            ("spice_jpeg_wan_compression", "sometimes"),
            ("spice_streaming_video", "some"),
            ("spice_agent_mouse", "y"),
            ("spice_ipv6", "2"),
            ("listening_addr", "ipv5"),
        ])
        .err()
        .unwrap_or_default();
        assert_eq!(
            keys(e),
            [
                "disable_copy_paste",
                "listening_addr",
                "spice_agent_mouse",
                "spice_image_compression",
                "spice_ipv6",
                "spice_jpeg_wan_compression",
                "spice_streaming_video",
            ]
        );
    }

    #[test]
    fn tls_keys_are_read_only_with_spice_ssl() {
        let s = spice(&[("spice_tls_port", "bogus"), ("spice_x509_dir", "yes")])
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(s.tls, None);
        let e = spice(&[("spice_ssl", "yes"), ("spice_x509_dir", "yes")])
            .err()
            .unwrap_or_default();
        assert_eq!(
            keys(e),
            ["spice_x509_prefix"],
            "x509-dir=None is not a path"
        );
        let e = spice(&[
            ("spice_ssl", "yes"),
            ("spice_x509_dir", "no"),
            ("spice_x509_prefix", "/etc/pki/spice"),
            ("spice_x509_key_file", "k.pem"),
        ])
        .err()
        .unwrap_or_default();
        assert_eq!(keys(e), ["spice_x509_cacert_file", "spice_x509_cert_file"]);
    }

    #[test]
    fn tls_with_generated_certificates_and_channels() {
        let s = spice(&[
            ("spice_ssl", "yes"),
            ("spice_tls_port", "generate"),
            ("spice_gen_x509", "yes"),
            ("spice_x509_dir", "yes"),
            ("spice_x509_secure", "yes"),
            ("spice_x509_key_password", "pw"),
            ("spice_x509_cacert_subj", "/CN=my CA"),
            ("spice_x509_server_subj", "/O=SPICE/CN="),
            ("host_ip_addr", "192.0.2.7"),
            ("spice_secure_channels", "main, inputs"),
            ("spice_plaintext_channels", "cursor"),
        ])
        .unwrap_or_else(|e| panic!("{e:?}"));
        assert!(s.generates_ports());
        let tls = s.tls.unwrap_or_else(|| panic!("no tls"));
        assert_eq!(tls.x509.prefix, None, "generated in the run dir");
        assert_eq!(tls.x509.use_, X509Use::Dir);
        assert_eq!(tls.key_password.as_deref(), Some("pw"));
        assert_eq!(
            tls.secure_channels,
            [SpiceChannel::Main, SpiceChannel::Inputs]
        );
        let g = tls.x509.generate.unwrap_or_else(|| panic!("no generation"));
        assert!(g.secure);
        assert_eq!(
            g.server_cn.and_then(|a| a.host_ip_addr).as_deref(),
            Some("192.0.2.7")
        );
        let e = spice(&[
            ("spice_ssl", "yes"),
            ("spice_gen_x509", "yes"),
            ("spice_secure_channels", "main,,inputs"),
        ])
        .err()
        .unwrap_or_default();
        assert_eq!(
            keys(e),
            [
                "spice_secure_channels",
                "spice_x509_cacert_subj",
                "spice_x509_key_password",
                "spice_x509_server_subj",
            ]
        );
    }

    #[test]
    fn one_passphrase_for_the_ca_and_a_secure_server_key() {
        let e = spice(&[
            ("spice_ssl", "yes"),
            ("spice_gen_x509", "yes"),
            ("spice_x509_secure", "yes"),
            ("spice_x509_cacert_subj", "/CN=ca"),
            ("spice_x509_server_subj", "/CN=s"),
        ])
        .err()
        .unwrap_or_default();
        assert_eq!(keys(e), ["spice_x509_key_password"], "reported once");
    }

    #[test]
    fn listening_addr_wins_over_spice_addr() {
        let s = spice(&[
            ("spice_addr", "0.0.0.0"),
            ("listening_addr", "ipv6"),
            ("netdst", "br0"),
        ])
        .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(
            s.addr,
            Some(SpiceAddr::Host(HostAddress {
                version: IpVersion::Ipv6,
                host_ip_addr: None,
                netdst: Some("br0".into()),
            }))
        );
    }

    #[test]
    fn extra_qxl_adapters() {
        let spec = |pairs: &[(&str, &str)]| VmSpec::new(&params(pairs), "vm1");
        let v = spec(&[("vga", "qxl"), ("qxl_dev_nr", "3")]).unwrap_or_else(|e| panic!("{e}"));
        let slots: Vec<(u8, u8)> = v.qxl.extra_slots().collect();
        assert_eq!(slots, [(1, 30), (2, 31)]);
        let v = spec(&[("vga", "qxl")]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v.qxl.extra_slots().count(), 0);
        for (pairs, key) in [
            (&[("vga", "std"), ("qxl_dev_nr", "2")][..], "qxl_dev_nr"),
            (&[("vga", "qxl"), ("qxl_dev_nr", "4")][..], "qxl_dev_nr"),
            (
                &[("vga", "qxl"), ("qxl_dev_nr", "2"), ("qxl_base_addr", "31")][..],
                "qxl_base_addr",
            ),
            (&[("vga", "qxl"), ("qxl_dev_nr", "two")][..], "qxl_dev_nr"),
        ] {
            let e = spec(pairs).err().map(|e| e.problems()[0].key.clone());
            assert_eq!(e.as_deref(), Some(key), "{pairs:?}");
        }
    }
}
