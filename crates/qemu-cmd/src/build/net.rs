//! NICs and their host side.
//!
//! * Front end: `-device MODEL,netdev=ID,mac=…` (`virtio` means `virtio-net-pci`), or the
//!   legacy `-net nic,vlan=N,model=…,macaddr=…` on binaries without `-device`.
//! * Back end: `-netdev user|tap|stream|vhost-vdpa,id=ID,…`, or `-net user|tap,vlan=N,…` before
//!   `-netdev`. `nettype = bridge` and `nettype = macvtap` are taps on the fd(s) the `vm`
//!   crate opened, as avocado-vt's `create()` (the bridge's tap, or with `qemu_bridge_helper`
//!   a tap QEMU's bridge helper puts into `netdst`: `br=`, `helper=`) (`fd=`/`fds=`, and
//!   `vhostfd=`/`vhostfds=` with `vhost = on`: run-plan values, `@TAPFD_NIC@`/`@VHOSTFD_NIC@` in
//!   dry runs); `user:passt` a `stream` netdev on passt's socket in the run directory (QEMU ≥
//!   7.2); `vdpa` a `vhost-vdpa` netdev on the device the `vm` crate resolved from `netdst`
//!   (`@VHOSTDEV_NIC@` in dry runs).
//!   User networking carries `tftp=`, `bootfile=` and, on the first user NIC, one
//!   `hostfwd=tcp:127.0.0.1:HOST-:GUEST` per redir (loopback only: a test guest's shell is not
//!   offered to the network; `HOST` is 0 unless the run plan names a port, so the kernel
//!   picks it); binaries without those sub-options get `-tftp`, `-bootp` and `-redir` instead
//!   (`-redir` has no bind address).
//! * MACs and tap names: `nic_mac` / `nic_ifname` when the cfg gives them, else the run plan's
//!   (the `vm` crate generates and reserves them).

use super::{Builder, Obj, Opts};
use crate::cmd::WordBuf;
use spec::vm::{NicMode, NicSpec, VmSpec};

/// Every NIC of `nics`.
pub(super) fn nics(b: &mut Builder<'_>, v: &VmSpec) {
    let first_user = v.nics.iter().position(|n| matches!(n.mode, NicMode::User));
    for nic in &v.nics {
        let id = crate::names::netdev_id(&nic.name, nic.index);
        let fwd = first_user == Some(nic.index);
        backend(b, v, nic, &id, fwd);
        front(b, v, nic, &id);
    }
}

fn backend(b: &mut Builder<'_>, v: &VmSpec, nic: &NicSpec, id: &str, fwd: bool) {
    let caps = b.caps;
    let obj = Obj::Sub("nic", &nic.name);
    let (kind, key) = match nic.mode {
        NicMode::User => ("user", "nic_mode"),
        NicMode::Tap => ("tap", "nic_mode"),
        // A tap in the bridge: opened by the `vm` crate, as avocado-vt's create() does, or
        // created by QEMU's bridge helper with `qemu_bridge_helper`.
        NicMode::Bridge { .. } => ("tap", "nettype"),
        // The macvtap's tap, opened by the `vm` crate and inherited by QEMU.
        NicMode::Macvtap { .. } => ("tap", "nettype"),
        // passt on a unix socket, as avocado-vt: `-netdev stream` (QEMU ≥ 7.2).
        NicMode::Passt(_) => ("stream", "nettype"),
        NicMode::Vdpa { .. } => ("vhost-vdpa", "nettype"),
    };
    let missing = if !caps.has_netdev_backend(kind) {
        Some(kind)
    } else if matches!(nic.mode, NicMode::Bridge { .. })
        && nic.tuning.bridge_helper.is_some()
        && !caps.has_netdev_backend("bridge")
    {
        Some("bridge")
    } else {
        None
    };
    // The stream and vhost-vdpa backends exist only as `-netdev`.
    let missing = missing.or_else(|| {
        (matches!(nic.mode, NicMode::Passt(_) | NicMode::Vdpa { .. }) && !caps.has_netdev())
            .then_some("-netdev")
    });
    if let Some(what) = missing {
        let why = if matches!(nic.mode, NicMode::Passt(_)) {
            " (passt needs QEMU 7.2's stream netdev)"
        } else {
            ""
        };
        b.unsupported(
            obj,
            key,
            format!("QEMU {} has no {what} network backend{why}", caps.version),
        );
        return;
    }
    let mut o = Opts::new(kind);
    if caps.has_netdev() {
        o.kv("id", id);
    } else {
        o.kv("vlan", &nic.index.to_string());
    }
    let t = &nic.tuning;
    let multiqueue = t.queues.is_some_and(|q| q > 1);
    match nic.mode {
        NicMode::User => {
            if let Some(t) = nic.tftp.as_deref() {
                if caps.has_user_net_option("tftp") {
                    o.kv_with("tftp", |w| b.path(w, t, true));
                }
            }
            if let Some(f) = nic.bootfile.as_deref() {
                if caps.has_user_net_option("bootfile") {
                    o.kv("bootfile", f);
                }
            }
            if fwd && caps.has_user_net_option("hostfwd") {
                for (i, r) in v.redirs.iter().enumerate() {
                    let port = b.plan.redir_port(i, &r.name);
                    o.kv_with("hostfwd", |w| {
                        w.raw("tcp:127.0.0.1:").run(&port, true);
                        w.raw("-:").raw(&r.guest_port.to_string());
                    });
                }
            }
        }
        NicMode::Tap => {
            match nic.ifname.as_deref() {
                Some(n) => o.kv("ifname", n),
                None => {
                    let t = b.plan.tap_ifname(nic.index, &nic.name);
                    o.kv_with("ifname", |w| {
                        w.run(&t, true);
                    })
                }
            };
            if let Some(s) = nic.script.as_deref() {
                o.kv_with("script", |w| b.path(w, s, true));
            }
            match nic.downscript.as_deref() {
                Some(s) => o.kv_with("downscript", |w| b.path(w, s, true)),
                None => o.kv("downscript", "no"),
            };
        }
        NicMode::Bridge { ref br, .. } if nic.tuning.bridge_helper.is_some() => {
            o.kv("br", br);
            if let Some(helper) = &nic.tuning.bridge_helper {
                o.kv_with("helper", |w| {
                    w.esc(helper.as_bytes());
                });
            }
        }
        NicMode::Macvtap { .. } | NicMode::Bridge { .. } => {
            // One fd per queue: `fds=` with several (QEMU then takes the queue count from
            // them and refuses `queues=`), else `fd=`.
            let fds = b.plan.tap_fds(nic.index, &nic.name);
            o.kv_with(if multiqueue { "fds" } else { "fd" }, |w| {
                w.run(&fds, true);
            });
        }
        NicMode::Passt(_) => {
            o.kv("addr.type", "unix");
            let sock = crate::names::passt_socket(&nic.name);
            o.kv_with("addr.path", |w| b.run_file(w, &sock, true));
            o.kv("server", "off");
        }
        NicMode::Vdpa { .. } => {
            let dev = b.plan.vhostdev(nic.index, &nic.name);
            o.kv_with("vhostdev", |w| {
                w.run(&dev, true);
            });
        }
    }
    // What the backend takes of vhost and multiqueue (`queues=`; a macvtap's queues are its fds).
    let (vhost_ok, queues_ok, why) = match nic.mode {
        NicMode::User => (
            false,
            false,
            "user networking has no vhost and no multiqueue",
        ),
        NicMode::Passt(_) => (
            false,
            false,
            "passt's stream netdev has no vhost and no multiqueue",
        ),
        NicMode::Vdpa { .. } => (
            false,
            true,
            "a vhost-vdpa netdev is vhost by itself (no vhost=, no vhostforce=)",
        ),
        NicMode::Bridge { .. } if nic.tuning.bridge_helper.is_some() => (true, true, ""),
        NicMode::Macvtap { .. } | NicMode::Bridge { .. } => (true, false, ""),
        NicMode::Tap => (true, true, ""),
    };
    // A tap the `vm` crate opened (macvtap, or a bridge without the helper): its fds are the
    // queues, and vhost-net comes as fds too.
    let fd_tap = match nic.mode {
        NicMode::Macvtap { .. } => true,
        NicMode::Bridge { .. } => nic.tuning.bridge_helper.is_none(),
        _ => false,
    };
    if vhost_ok {
        if let Some(on) = t.vhost {
            o.kv("vhost", if on { "on" } else { "off" });
            if on && fd_tap {
                // avocado-vt opens /dev/vhost-net once per queue and passes the fds.
                let fds = b.plan.vhost_fds(nic.index, &nic.name);
                o.kv_with(if multiqueue { "vhostfds" } else { "vhostfd" }, |w| {
                    w.run(&fds, true);
                });
            }
        }
        if let Some(on) = t.vhostforce {
            o.kv("vhostforce", if on { "on" } else { "off" });
        }
    }
    if queues_ok {
        if let Some(q) = t.queues.filter(|q| *q > 1) {
            o.kv("queues", &q.to_string());
        }
    }
    let refused = [
        ("vhost", !vhost_ok && t.vhost.is_some()),
        ("vhostforce", !vhost_ok && t.vhostforce.is_some()),
        ("queues", !queues_ok && multiqueue && !fd_tap),
    ]
    .into_iter()
    .find_map(|(k, set)| set.then_some(k));
    if let Some(key) = refused {
        b.unsupported(obj, key, why.into());
    }
    o.extra(&nic.netdev_extra);
    let opt = if caps.has_netdev() { "-netdev" } else { "-net" };
    b.cmd.push2(opt, o.finish());
}

fn front(b: &mut Builder<'_>, v: &VmSpec, nic: &NicSpec, id: &str) {
    let caps = b.caps;
    let mac = |o: &mut Opts, key: &str| match nic.mac {
        Some(m) => {
            o.kv(key, &m.to_string());
        }
        None => {
            let t = b.plan.mac(nic.index, &nic.name);
            o.kv_with(key, |w: &mut WordBuf| {
                w.run(&t, true);
            });
        }
    };
    let link = |o: &mut Opts| {
        if caps.has_netdev() {
            o.kv("netdev", id);
        } else {
            o.kv("vlan", &nic.index.to_string());
        }
    };
    if caps.has_device() {
        let model = if nic.model == "virtio" {
            "virtio-net-pci"
        } else {
            nic.model.as_str()
        };
        if !caps.has_device_type(model) {
            b.unsupported(
                Obj::Sub("nic", &nic.name),
                "nic_model",
                format!("QEMU {} has no {model} device", caps.version),
            );
            return;
        }
        let mut o = Opts::new(model);
        o.kv("id", &crate::names::nic_device_id(&nic.name, nic.index));
        link(&mut o);
        mac(&mut o, "mac");
        let t = &nic.tuning;
        if let Some(c) = &t.ctrl_mac_addr {
            o.kv("ctrl_mac_addr", c);
        }
        // avocado-vt: e1000 and rtl8139 are conventional PCI, go behind q35's PCI bridge.
        let legacy = matches!(model, "e1000" | "rtl8139");
        let obj = Obj::Sub("nic", &nic.name);
        let place = match &t.pci_addr {
            Some(addr) => super::pci::place_at(b, addr, obj, "nic_pci_addr"),
            None => super::pci::place(b, v, model, legacy, obj, "nic_model"),
        };
        if let Some(p) = place {
            p.add_to(&mut o);
        }
        if let Some(i) = &t.bootindex {
            o.kv("bootindex", i);
        }
        if let Some(r) = &t.romfile {
            o.kv("romfile", r);
        }
        if model.contains("virtio") {
            if t.queues.is_some_and(|q| q > 1) {
                o.kv("mq", t.mq.as_deref().unwrap_or("on"));
            }
            if let Some(n) = t.vectors {
                o.kv("vectors", &n.to_string());
            }
            if let Some(f) = &t.failover {
                o.kv("failover", f);
            }
        }
        o.extra(&nic.nic_extra);
        b.cmd.push2("-device", o.finish());
    } else {
        if !caps.legacy_nic_models.contains(nic.model.as_str()) {
            b.unsupported(
                Obj::Sub("nic", &nic.name),
                "nic_model",
                format!("QEMU {} has no NIC model {}", caps.version, nic.model),
            );
            return;
        }
        let mut o = Opts::new("nic");
        link(&mut o);
        o.kv("model", &nic.model);
        mac(&mut o, "macaddr");
        o.extra(&nic.nic_extra);
        b.cmd.push2("-net", o.finish());
    }
}

/// `-redir tcp:HOST::GUEST` for each redir, on binaries whose user networking has no
/// `hostfwd=` (only when some NIC uses user networking: redirs are meaningless otherwise).
pub(super) fn legacy_redirs(b: &mut Builder<'_>, v: &VmSpec) {
    if b.caps.has_user_net_option("hostfwd")
        || !v.nics.iter().any(|n| matches!(n.mode, NicMode::User))
    {
        return;
    }
    for (i, r) in v.redirs.iter().enumerate() {
        if !b.caps.has_option("redir") {
            b.unsupported(
                Obj::Sub("redir", &r.name),
                "guest_port",
                "neither hostfwd= nor -redir".into(),
            );
            continue;
        }
        let mut w = WordBuf::new();
        w.raw("tcp:")
            .run(&b.plan.redir_port(i, &r.name), false)
            .raw("::")
            .raw(&r.guest_port.to_string());
        b.cmd.push2("-redir", w.finish());
    }
}
