//! The SPICE display (`display = spice`) and the extra QXL adapters (`qxl_dev_nr`), as
//! avocado-vt's `add_spice` and `add_qxl` render them.
//!
//! `-spice` items come in avocado-vt's order: `port`, the password (`password-secret=spice_sec0`
//! naming a `-object secret` given just before `-spice`, where the binary's `-spice` has it, else
//! `password=`) or `disable-ticketing=on`, `disable-copy-paste`, `addr`, then with TLS
//! `tls-port`, `x509-dir` or the three x509 files, `x509-key-password`, `tls-ciphers` (kvmtest's
//! addition: avocado-vt reads `spice_tls_ciphers` and drops it), `tls-channel`s,
//! `plaintext-channel`s, and last `seamless-migration`, the compressions, `streaming-video`,
//! `agent-mouse`, `playback-compression`, `ipv4`, `ipv6`. Generated ports and the host's
//! address come from the run plan (`@SPICE_PORT@`, `@SPICE_TLS_PORT@`, `@SPICE_ADDR@` in a dry
//! run); certificates kvmtest generates without a `spice_x509_prefix` are in the run dir
//! ([`crate::names::SPICE_X509_DIR`]). Every item is checked against the sub-options the
//! binary's `-spice help` lists; a binary without SPICE refuses `display = spice`.

use super::{pci, Builder, Obj, Opts};
use crate::cmd::{RunText, WordBuf};
use spec::spice::{SpiceAddr, SpicePort, SpiceSpec, SpiceX509, X509Use};
use spec::vm::VmSpec;

/// `on` / `off`.
fn on_off(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

/// `-spice` items, each checked against what the binary's `-spice` takes.
struct Items<'o> {
    o: &'o mut Opts,
}

impl Items<'_> {
    /// Whether `-spice` takes `name`; if not, a problem naming `key`.
    fn takes(b: &mut Builder<'_>, key: &str, name: &str) -> bool {
        if b.caps.has_spice_option(name) {
            return true;
        }
        let reason = format!("QEMU {}'s -spice has no {name}= option", b.caps.version);
        b.unsupported(Obj::Vm, key, reason);
        false
    }

    /// `name=value` for `key`.
    fn kv(&mut self, b: &mut Builder<'_>, key: &str, name: &str, value: &str) {
        if Items::takes(b, key, name) {
            self.o.kv(name, value);
        }
    }

    /// `name=` followed by what `f` appends.
    fn kv_with(
        &mut self,
        b: &mut Builder<'_>,
        key: &str,
        name: &str,
        f: impl FnOnce(&Builder<'_>, &mut WordBuf),
    ) {
        if Items::takes(b, key, name) {
            self.o.kv_with(name, |w| f(b, w));
        }
    }

    /// `name=RUN-TIME VALUE` for `key`, or a problem when the plan decided none.
    fn run(&mut self, b: &mut Builder<'_>, key: &str, name: &str, value: Option<RunText>) {
        match value {
            Some(t) => self.kv_with(b, key, name, |_, w| {
                w.run(&t, true);
            }),
            None => b.plan_problem(
                key,
                format!("the run plan decided no value for `{key}` (`{name}=`)"),
            ),
        }
    }

    /// A port key: fixed, or the plan's.
    fn port(
        &mut self,
        b: &mut Builder<'_>,
        key: &str,
        name: &str,
        port: Option<SpicePort>,
        planned: Option<RunText>,
    ) {
        match port {
            None => {}
            Some(SpicePort::Fixed(p)) => self.kv(b, key, name, &p.to_string()),
            Some(SpicePort::Generate) => self.run(b, key, name, planned),
        }
    }
}

/// `display = spice`: the password's secret object, then `-spice`.
pub(super) fn display(b: &mut Builder<'_>, v: &VmSpec) {
    let caps = b.caps;
    if !caps.has_spice() {
        let reason = if caps.has_option("spice") {
            format!(
                "QEMU {} lists -spice, but `-spice help` lists no options: its SPICE module is \
                 not installed or does not load",
                caps.version
            )
        } else {
            format!("QEMU {} has no SPICE (no -spice option)", caps.version)
        };
        b.unsupported(Obj::Vm, "display", reason);
        return;
    }
    let Some(s) = &v.spice else { return };
    let mut o = Opts::new("");
    let mut it = Items { o: &mut o };
    let planned = b.plan.spice_port();
    it.port(b, "spice_port", "port", s.port, planned);
    password(b, &mut it, s);
    if let Some(d) = s.disable_copy_paste {
        it.kv(b, "disable_copy_paste", "disable-copy-paste", on_off(d));
    }
    match &s.addr {
        None => {}
        Some(SpiceAddr::Fixed(a)) => it.kv(b, "spice_addr", "addr", a),
        Some(SpiceAddr::Host(_)) => {
            let planned = b.plan.spice_addr();
            it.run(b, "listening_addr", "addr", planned);
        }
    }
    if let Some(tls) = &s.tls {
        let planned = b.plan.spice_tls_port();
        it.port(b, "spice_tls_port", "tls-port", tls.port, planned);
        x509(b, &mut it, &tls.x509);
        if let Some(pw) = &tls.key_password {
            it.kv(b, "spice_x509_secure", "x509-key-password", pw);
        }
        if let Some(c) = &tls.ciphers {
            it.kv(b, "spice_tls_ciphers", "tls-ciphers", c);
        }
        for c in &tls.secure_channels {
            it.kv(b, "spice_secure_channels", "tls-channel", c.as_str());
        }
        for c in &tls.plaintext_channels {
            it.kv(
                b,
                "spice_plaintext_channels",
                "plaintext-channel",
                c.as_str(),
            );
        }
    }
    let tail = [
        (
            "spice_seamless_migration",
            "seamless-migration",
            s.seamless_migration.map(on_off),
        ),
        (
            "spice_image_compression",
            "image-compression",
            s.image_compression.map(|c| c.as_str()),
        ),
        (
            "spice_jpeg_wan_compression",
            "jpeg-wan-compression",
            s.jpeg_wan_compression.map(|c| c.as_str()),
        ),
        (
            "spice_zlib_glz_wan_compression",
            "zlib-glz-wan-compression",
            s.zlib_glz_wan_compression.map(|c| c.as_str()),
        ),
        (
            "spice_streaming_video",
            "streaming-video",
            s.streaming_video.map(|c| c.as_str()),
        ),
        (
            "spice_agent_mouse",
            "agent-mouse",
            s.agent_mouse.map(on_off),
        ),
        (
            "spice_playback_compression",
            "playback-compression",
            s.playback_compression.map(on_off),
        ),
        ("spice_ipv4", "ipv4", s.ipv4.map(on_off)),
        ("spice_ipv6", "ipv6", s.ipv6.map(on_off)),
    ];
    for (key, name, value) in tail {
        if let Some(value) = value {
            it.kv(b, key, name, value);
        }
    }
    b.cmd.push2("-spice", o.finish());
}

/// `spice_password`: a `secret` object (emitted now, before `-spice`) and `password-secret=`
/// where the binary has them, else `password=`; without a password `disable-ticketing=on`.
fn password(b: &mut Builder<'_>, it: &mut Items<'_>, s: &SpiceSpec) {
    let Some(pw) = &s.password else {
        it.kv(b, "spice_password", "disable-ticketing", "on");
        return;
    };
    let caps = b.caps;
    if caps.has_spice_option("password-secret") && caps.has_option("object") {
        let id = crate::names::SPICE_SECRET_ID;
        let mut secret = Opts::new("secret");
        secret.kv("id", id).kv("data", pw);
        b.cmd.push2("-object", secret.finish());
        it.o.kv("password-secret", id);
    } else {
        it.kv(b, "spice_password", "password", pw);
    }
}

/// The certificates: `x509-dir=PREFIX`, or the three files under it (a file name that is an
/// absolute path stands alone, as avocado-vt's `os.path.join` has it).
fn x509(b: &mut Builder<'_>, it: &mut Items<'_>, x: &SpiceX509) {
    let dir = x.prefix.as_deref();
    match &x.use_ {
        X509Use::Nothing => {}
        X509Use::Dir => it.kv_with(b, "spice_x509_dir", "x509-dir", |b, w| {
            x509_prefix(b, w, dir);
        }),
        X509Use::Files { key, cacert, cert } => {
            for (key_name, name, file) in [
                ("spice_x509_key_file", "x509-key-file", key),
                ("spice_x509_cacert_file", "x509-cacert-file", cacert),
                ("spice_x509_cert_file", "x509-cert-file", cert),
            ] {
                it.kv_with(b, key_name, name, |b, w| {
                    if file.starts_with('/') {
                        w.esc(file.as_bytes());
                    } else {
                        x509_prefix(b, w, dir);
                        let sep = dir.is_none_or(|p| !p.ends_with('/'));
                        if sep {
                            w.raw("/");
                        }
                        w.esc(file.as_bytes());
                    }
                });
            }
        }
    }
}

/// The certificates' directory: `spice_x509_prefix` (relative: under the root dir), else the
/// one kvmtest generates in the run dir.
fn x509_prefix(b: &Builder<'_>, w: &mut WordBuf, prefix: Option<&str>) {
    match prefix {
        Some(p) => b.path(w, p, true),
        None => b.run_file(w, crate::names::SPICE_X509_DIR, true),
    }
}

/// `vga = qxl` with `qxl_dev_nr` > 1: `-device qxl,id=videoN,addr=0xSLOT` for each extra
/// adapter, right after the first (avocado-vt writes no `bus=`: the root bus). The slots are
/// marked taken, so a later device never lands on one.
pub(super) fn extra_qxl(b: &mut Builder<'_>, v: &VmSpec) {
    if v.qxl.extra_slots().next().is_none() {
        return;
    }
    if !(b.caps.has_device() && b.caps.has_device_type("qxl")) {
        let reason = format!("QEMU {} has no qxl device", b.caps.version);
        b.unsupported(Obj::Vm, "qxl_dev_nr", reason);
        return;
    }
    for (index, slot) in v.qxl.extra_slots() {
        let addr = format!("{slot:#x}");
        if b.pci.layout != pci::Layout::None
            && pci::place_at(b, &addr, Obj::Vm, "qxl_base_addr").is_none()
        {
            continue;
        }
        let mut o = Opts::new("qxl");
        o.kv("id", &format!("video{index}")).kv("addr", &addr);
        b.cmd.push2("-device", o.finish());
    }
}
