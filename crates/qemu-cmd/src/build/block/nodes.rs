//! The block side of a disk: `-blockdev` nodes, `-drive …,if=none`, or the seed's `-drive`.
//!
//! avocado-vt's `-blockdev` graph: a protocol node (`file_NAME`, driver `file`, or
//! `host_device` for a path under /dev/; `host_device_NAME` for `scsi-block`/`scsi-generic`; a
//! network backend's `DRIVER_NAME`: `remote.rs`), under a format node
//! `drive_NAME`; from QEMU 9.0 on a raw image has no format node and its protocol node is
//! `drive_NAME` itself. `drive_cache` sets `cache.direct` and `cache.no-flush` on every node,
//! `image_aio` the protocol node's `aio`, `image_discard` and `image_auto_readonly` its
//! `discard` and `auto-read-only`, `drv_extra_params` both nodes (`discard=on`/`off` become
//! `unmap`/`ignore`; `detect-zeroes` only the format node), and a luks image's secret the
//! format node's `key-secret`.

use super::remote::{self, Protocol};
use super::{cache_and_aio, cache_items, Builder, Obj, Opts};
use crate::cmd::WordBuf;
use crate::names::DiskIds;
use spec::types::{DiskInterface, ImageFormat};
use spec::vm::ImageSpec;

/// The file of an image: `image_name.format` under the plan's image dir, or the raw device as
/// is.
pub(super) fn image_file(b: &Builder<'_>, w: &mut WordBuf, img: &ImageSpec) {
    if let Some(uri) = img.backend.uri() {
        // A network or device image: avocado-vt's URI (`nbd://…`, `rbd:…`).
        w.esc(uri.as_bytes());
    } else if img.raw_device {
        w.esc(img.image_name.as_bytes());
    } else {
        b.path_under(&b.images, w, &img.file_name(), true);
    }
}

/// The seed's `-drive file=…` with every option in the drive itself.
pub(super) fn legacy_drive(b: &mut Builder<'_>, img: &ImageSpec) {
    let obj = Obj::Sub("image", &img.name);
    if img.format == ImageFormat::Luks {
        b.unsupported(
            obj,
            "image_format",
            format!("QEMU {} cannot open luks images", b.caps.version),
        );
        return;
    }
    let itf = match img.interface {
        None => None,
        Some(DiskInterface::Ide) => Some("ide"),
        Some(DiskInterface::Scsi | DiskInterface::ScsiHd) => Some("scsi"),
        Some(DiskInterface::Virtio | DiskInterface::VirtioBlkPci) => Some("virtio"),
        Some(DiskInterface::Sd) => Some("sd"),
        Some(DiskInterface::Floppy) => Some("floppy"),
        Some(other) => {
            b.unsupported(
                obj,
                "drive_format",
                format!(
                    "QEMU {} has no -device, which a {other} disk needs",
                    b.caps.version
                ),
            );
            return;
        }
    };
    if !b.caps.has_drive() {
        b.unsupported(
            obj,
            "image_name",
            format!("QEMU {} has no -drive", b.caps.version),
        );
        return;
    }
    let remote = match img.backend.key() {
        None => None,
        Some(_) => match remote::protocol(b, img, false) {
            Some(p) => Some(p),
            None => return,
        },
    };
    let (cache, aio) = cache_and_aio(img);
    let mut o = Opts::new("");
    o.kv_with("file", |w| image_file(b, w, img));
    drive_file_opts(&mut o, remote.as_ref());
    if let Some(i) = img.index {
        o.kv("index", &i.to_string());
    }
    if let Some(name) = itf {
        o.kv("if", name);
    }
    if b.caps.has_drive_option("format") {
        o.kv("format", img.format.as_str());
    }
    if let Some(c) = cache {
        o.kv("cache", c.as_str());
    }
    if let Some(a) = aio {
        if b.caps.has_drive_option("aio") {
            o.kv("aio", a);
        } else {
            b.unsupported(
                obj,
                "image_aio",
                format!("QEMU {} has no aio=", b.caps.version),
            );
        }
    }
    if let Some(w) = img.werror {
        o.kv("werror", w.as_str());
    }
    if let Some(r) = img.rerror {
        if b.caps.has_drive_option("rerror") {
            o.kv("rerror", r.as_str());
        }
    }
    if let Some(s) = img.serial.as_deref() {
        o.kv("serial", s);
    }
    if img.snapshot {
        o.kv("snapshot", "on");
    }
    if img.boot && b.caps.has_drive_option("boot") {
        o.kv("boot", "on");
    }
    if img.readonly {
        o.kv("readonly", "on");
    }
    o.extra(&img.attach.drv_extra);
    b.cmd.push2("-drive", o.finish());
}

/// For a `luks` image, the `-object secret` holding `image_secret` (avocado-vt's form); its id.
fn luks_secret(b: &mut Builder<'_>, img: &ImageSpec, node: &str) -> Option<String> {
    if img.format != ImageFormat::Luks {
        return None;
    }
    let secret = img.secret.as_deref()?;
    if !b.caps.has_option("object") {
        b.unsupported(
            Obj::Sub("image", &img.name),
            "image_format",
            format!("QEMU {} has no -object for a luks key", b.caps.version),
        );
        return None;
    }
    // avocado-vt's id: the image's first encryption secret.
    let id = format!("{}_encrypt0", node.strip_prefix("drive_").unwrap_or(node));
    let mut o = Opts::new("secret");
    o.kv("id", &id).kv("data", secret);
    b.cmd.push2("-object", o.finish());
    Some(id)
}

/// The `file.*` options of a network image's `-drive`.
fn drive_file_opts(o: &mut Opts, remote: Option<&Protocol>) {
    for (k, v) in remote.map_or(&[][..], |p| &p.drive[..]) {
        o.kv(k, v);
    }
}

/// `-drive …,if=none,id=NODE` for a `-device` to attach to (`remote`: the image's network or
/// device backend).
pub(super) fn drive_none(
    b: &mut Builder<'_>,
    img: &ImageSpec,
    node: &str,
    remote: Option<&Protocol>,
) {
    let secret = luks_secret(b, img, node);
    let (cache, aio) = cache_and_aio(img);
    let mut o = Opts::new("");
    o.kv_with("file", |w| image_file(b, w, img));
    drive_file_opts(&mut o, remote);
    o.kv("if", "none").kv("id", node);
    o.kv("format", img.format.as_str());
    if let Some(id) = &secret {
        o.kv("key-secret", id);
    }
    if let Some(c) = cache {
        o.kv("cache", c.as_str());
    }
    if let Some(a) = aio {
        o.kv("aio", a);
    }
    if let Some(w) = img.werror {
        o.kv("werror", w.as_str());
    }
    if let Some(r) = img.rerror {
        o.kv("rerror", r.as_str());
    }
    if img.snapshot {
        o.kv("snapshot", "on");
    }
    if img.readonly {
        o.kv("readonly", "on");
    }
    if let Some(d) = &img.attach.discard {
        o.kv("discard", d);
    }
    o.extra(&img.attach.drv_extra);
    b.cmd.push2("-drive", o.finish());
}

/// `discard=on`/`off` of `drv_extra_params` as `-blockdev` spells it.
fn blockdev_value<'v>(key: &str, value: &'v str) -> std::borrow::Cow<'v, str> {
    if key == "discard" {
        value.replace("off", "ignore").replace("on", "unmap").into()
    } else {
        value.into()
    }
}

/// avocado-vt's host-device protocol node: a `scsi-block` or `scsi-generic` disk on a file
/// (its device's `write-cache` is left to QEMU).
pub(super) fn is_host_device_node(img: &ImageSpec, itf: DiskInterface) -> bool {
    img.backend.key().is_none()
        && matches!(itf, DiskInterface::ScsiBlock | DiskInterface::ScsiGeneric)
}

/// The protocol and format `-blockdev` nodes of one disk (`remote`: its network or device
/// backend, else a file).
pub(super) fn blockdev(
    b: &mut Builder<'_>,
    img: &ImageSpec,
    ids: &DiskIds,
    itf: DiskInterface,
    remote: Option<&Protocol>,
) {
    let secret = luks_secret(b, img, &ids.node);
    // avocado-vt's protocol class: a host device for `scsi-block`/`scsi-generic` (node
    // `host_device_NAME`), else a file node (`file_NAME`) whose driver is `host_device` when
    // the path is under /dev/ (`filename_to_file_opts`).
    let host_class = is_host_device_node(img, itf);
    let path = if img.raw_device {
        img.image_name.clone()
    } else {
        img.file_name()
    };
    let (class, driver) = match remote {
        Some(p) => (p.driver, p.driver),
        None if host_class => ("host_device", "host_device"),
        None if path.starts_with("/dev/") => ("file", "host_device"),
        None => ("file", "file"),
    };
    // QEMU 9.0 and later: a raw image is its protocol node alone (avocado-vt's graph there).
    let format_node =
        img.format != ImageFormat::Raw || (b.caps.version.major, b.caps.version.minor) < (9, 0);
    // `image_throttle_group`: a throttle node on top takes `drive_NAME`; the node below is
    // named after its driver (`qcow2_NAME`, `file_NAME`), as avocado-vt names it.
    let throttle = b.spec.throttle.group_of(&img.name).map(str::to_string);
    let top = match (&throttle, format_node) {
        (None, _) => ids.node.clone(),
        (Some(_), true) => ids.protocol_node(img.format.as_str()),
        (Some(_), false) => ids.protocol_node(class),
    };
    let protocol = if format_node {
        ids.protocol_node(class)
    } else {
        top.clone()
    };
    let (cache, aio) = cache_and_aio(img);
    let cache_opts = |o: &mut Opts| {
        if let Some(c) = cache {
            let (direct, no_flush, _) = cache_items(c);
            o.kv("cache.direct", direct).kv("cache.no-flush", no_flush);
        }
    };
    let extra = |o: &mut Opts, protocol_node: bool| {
        for (k, v) in &img.attach.drv_extra {
            if protocol_node && (k == "cache-size" || (k == "detect-zeroes" && format_node)) {
                continue;
            }
            if !protocol_node && k == "pr-manager" {
                continue;
            }
            match v {
                Some(v) => o.kv(k, &blockdev_value(k, v)),
                None => o.flag(k),
            };
        }
    };
    let mut o = Opts::new("");
    o.kv("node-name", &protocol).kv("driver", driver);
    match remote {
        Some(p) => {
            for (k, v) in &p.blockdev {
                o.kv(k, v);
            }
        }
        None => {
            o.kv_with("filename", |w| image_file(b, w, img));
            // avocado-vt gives `aio` to file and host-device nodes only.
            if let Some(a) = aio {
                o.kv("aio", a);
            }
        }
    }
    if format_node {
        if let Some(on) = img.attach.auto_readonly {
            o.kv("auto-read-only", if on { "on" } else { "off" });
        }
    }
    // `drv_extra_params`' own `discard` wins (one key, one value).
    let extra_discard = img.attach.drv_extra.iter().any(|(k, _)| k == "discard");
    if let Some(d) = img.attach.discard.as_ref().filter(|_| !extra_discard) {
        o.kv("discard", d);
    }
    cache_opts(&mut o);
    if img.readonly && !format_node {
        o.kv("read-only", "on");
    }
    extra(&mut o, true);
    b.cmd.push2("-blockdev", o.finish());
    if format_node {
        format(
            b,
            img,
            &top,
            &protocol,
            secret.as_deref(),
            (cache_opts, extra),
        );
    }
    if let Some(group) = throttle {
        let mut o = Opts::new("");
        o.kv("node-name", &ids.node)
            .kv("driver", "throttle")
            .kv("throttle-group", &group)
            .kv("file", &top);
        b.cmd.push2("-blockdev", o.finish());
    }
}

/// The format node `node` of a disk over `protocol`.
fn format(
    b: &mut Builder<'_>,
    img: &ImageSpec,
    node: &str,
    protocol: &str,
    secret: Option<&str>,
    (cache_opts, extra): (impl Fn(&mut Opts), impl Fn(&mut Opts, bool)),
) {
    let mut o = Opts::new("");
    o.kv("node-name", node).kv("driver", img.format.as_str());
    if let Some(id) = secret {
        o.kv("key-secret", id);
    }
    cache_opts(&mut o);
    if img.readonly {
        o.kv("read-only", "on");
    }
    o.kv("file", protocol);
    extra(&mut o, false);
    b.cmd.push2("-blockdev", o.finish());
}
