//! Character devices: monitors (human and QMP), serial consoles and the test device, as unix
//! sockets and files in the run dir.
//!
//! With `-chardev` and `-mon` every endpoint is a named chardev (`-chardev socket,id=…,path=…`),
//! so paths are ordinary escaped option values; older binaries get the compact
//! `-monitor unix:PATH,server,nowait` forms the seed used.

use super::{qemu_id, Builder, Obj, Opts};
use crate::cmd::WordBuf;
use spec::types::MonitorKind;
use spec::vm::VmSpec;

/// A unix-socket chardev in the run dir: `-chardev socket,id=ID,path=RUN/FILE,server=on,wait=off`.
pub(super) fn socket_chardev(b: &mut Builder<'_>, id: &str, file: &str) {
    let mut o = Opts::new("socket");
    o.kv("id", id);
    o.kv_with("path", |w| b.run_file(w, file, true));
    b.server_nowait(&mut o);
    b.cmd.push2("-chardev", o.finish());
}

/// `unix:RUN/FILE,server,nowait` for the pre-chardev forms.
fn compat_unix(b: &Builder<'_>, file: &str) -> crate::cmd::Word {
    let mut w = WordBuf::new();
    w.raw("unix:");
    b.run_file(&mut w, file, true);
    let mut o = Opts { w, first: false };
    b.server_nowait(&mut o);
    o.finish()
}

/// Every monitor of `monitors`.
pub(super) fn monitors(b: &mut Builder<'_>, v: &VmSpec) {
    let modern = b.caps.has_chardev() && b.caps.has_option("mon");
    for (i, m) in v.monitors.iter().enumerate() {
        let file = crate::names::monitor_socket(&m.name);
        if m.kind == MonitorKind::Qmp && !b.caps.has_qmp() && !modern {
            b.unsupported(
                Obj::Sub("monitor", &m.name),
                "monitor_type",
                format!("QEMU {} has no QMP", b.caps.version),
            );
            continue;
        }
        if modern {
            let id = qemu_id("mon", &m.name, i);
            socket_chardev(b, &id, &file);
            let mut o = Opts::new("");
            o.kv("chardev", &id);
            o.kv(
                "mode",
                match m.kind {
                    MonitorKind::Human => "readline",
                    MonitorKind::Qmp => "control",
                },
            );
            b.cmd.push2("-mon", o.finish());
        } else {
            let opt = match m.kind {
                MonitorKind::Human => "-monitor",
                MonitorKind::Qmp => "-qmp",
            };
            let w = compat_unix(b, &file);
            b.cmd.push2(opt, w);
        }
    }
}

/// Every serial console of `serials`.
pub(super) fn serials(b: &mut Builder<'_>, v: &VmSpec) {
    for (i, name) in v.serials.iter().enumerate() {
        let file = crate::names::serial_socket(name);
        if b.caps.has_chardev() {
            let id = qemu_id("serial", name, i);
            socket_chardev(b, &id, &file);
            let mut w = WordBuf::new();
            w.raw("chardev:").esc(id.as_bytes());
            b.cmd.push2("-serial", w.finish());
        } else {
            let w = compat_unix(b, &file);
            b.cmd.push2("-serial", w);
        }
    }
}

/// `testdev = yes`: the old `testdev` device logging to a file, or its modern equivalent
/// (`pc-testdev` plus an `isa-debugcon` on the old log port 0xf1).
pub(super) fn testdev(b: &mut Builder<'_>, v: &VmSpec) {
    if !v.testdev {
        return;
    }
    let caps = b.caps;
    let old = caps.has_device_type("testdev");
    let new = caps.has_device_type("pc-testdev") && caps.has_device_type("isa-debugcon");
    if !caps.has_chardev() || !(old || new) {
        b.unsupported(
            Obj::Vm,
            "testdev",
            format!("QEMU {} has no test device", caps.version),
        );
        return;
    }
    let mut o = Opts::new("file");
    o.kv("id", "testlog");
    o.kv_with("path", |w| b.run_file(w, "testlog", true));
    b.cmd.push2("-chardev", o.finish());
    if old {
        let mut o = Opts::new("testdev");
        o.kv("chardev", "testlog");
        b.cmd.push2("-device", o.finish());
    } else {
        b.cmd.push2("-device", Opts::new("pc-testdev").finish());
        let mut o = Opts::new("isa-debugcon");
        o.kv("chardev", "testlog").kv("iobase", "0xf1");
        b.cmd.push2("-device", o.finish());
    }
}
