//! Character devices: monitors (human and QMP), serial ports (plain, PCI, virtio ports on
//! virtio-serial buses) and the test device, as unix sockets and files in the run dir, with
//! avocado-vt's ids (`qmp_id_NAME`, `hmp_id_NAME`, `chardev_NAME`, the port's device `NAME`).
//!
//! With `-chardev` and `-mon` every endpoint is a named chardev (`-chardev socket,id=…,path=…`),
//! so paths are ordinary escaped option values; older binaries get the compact
//! `-monitor unix:PATH,server,nowait` forms the seed used.

use super::{pci, Builder, Obj, Opts};
use crate::cmd::WordBuf;
use spec::serial::{SerialBackend, SerialKind, SerialSpec};
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

/// A serial port's chardev `id`: its unix socket in the run dir, or a SPICE channel
/// (`-chardev spicevmc,id=…,name=vdagent[,debug=N]`, `spiceport` likewise, as avocado-vt's
/// `chardev_define_by_params`). `false` (a problem) when the binary has no such backend.
fn serial_chardev(b: &mut Builder<'_>, s: &SerialSpec, id: &str, file: &str) -> bool {
    let (backend, name, debug) = match &s.backend {
        SerialBackend::UnixSocket => {
            socket_chardev(b, id, file);
            return true;
        }
        SerialBackend::SpiceVmc { name, debug } => ("spicevmc", name.as_str(), debug),
        SerialBackend::SpicePort { name, debug } => ("spiceport", name.as_str(), debug),
    };
    if !b.caps.has_chardev_backend(backend) {
        b.unsupported(
            Obj::Sub("serial", &s.name),
            "chardev_backend",
            format!("QEMU {} has no {backend} chardev", b.caps.version),
        );
        return false;
    }
    let mut o = Opts::new(backend);
    o.kv("id", id).kv("name", name);
    if let Some(d) = debug {
        o.kv("debug", d);
    }
    b.cmd.push2("-chardev", o.finish());
    true
}

/// Every monitor of `monitors`.
pub(super) fn monitors(b: &mut Builder<'_>, v: &VmSpec) {
    let modern = b.caps.has_chardev() && b.caps.has_option("mon");
    for m in &v.monitors {
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
            // avocado-vt's ids: tests address monitors' chardevs by them.
            let id = match m.kind {
                MonitorKind::Human => format!("hmp_id_{}", m.name),
                MonitorKind::Qmp => format!("qmp_id_{}", m.name),
            };
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

/// Every port of `serials`, as avocado-vt adds them: `-chardev socket,id=chardev_NAME,…` (or a
/// SPICE channel's `spicevmc`/`spiceport` chardev) plus
/// the guest side: `-device isa-serial,id=NAME,chardev=…` (or another plain model), a PCI
/// serial card at the next PCI place (conventional), or a virtio port on a virtio-serial bus.
/// A port goes on the latest bus with a free port number (1-31), a console always on a new
/// bus (`virtio_serial_pciN`, placed like any virtio PCI device); `serial_bus`/`serial_nr`
/// choose. Binaries without `-chardev` or the model: `-serial chardev:…`, or `-serial unix:…`
/// before `-chardev` (a virtio port there is a problem).
pub(super) fn serials(b: &mut Builder<'_>, v: &VmSpec) {
    // virtio-serial buses created so far: (id, port numbers taken), oldest first.
    let mut buses: Vec<(String, Vec<u32>)> = Vec::new();
    for s in &v.serials {
        let file = crate::names::serial_socket(&s.name);
        let model = s.kind.model();
        let has_model = b.caps.has_device() && b.caps.has_device_type(model);
        if !b.caps.has_chardev() || !has_model {
            if !s.is_socket() {
                b.unsupported(
                    Obj::Sub("serial", &s.name),
                    "chardev_backend",
                    format!(
                        "QEMU {} has no -chardev or no {model} device for a SPICE channel",
                        b.caps.version
                    ),
                );
                continue;
            }
            if let SerialKind::VirtioPort { .. } | SerialKind::Pci(_) = s.kind {
                b.unsupported(
                    Obj::Sub("serial", &s.name),
                    "serial_type",
                    format!("QEMU {} has no {model} device", b.caps.version),
                );
                continue;
            }
            let w = if b.caps.has_chardev() {
                let id = format!("chardev_{}", s.name);
                socket_chardev(b, &id, &file);
                let mut w = WordBuf::new();
                w.raw("chardev:").esc(id.as_bytes());
                w.finish()
            } else {
                compat_unix(b, &file)
            };
            b.cmd.push2("-serial", w);
            continue;
        }
        let chardev = format!("chardev_{}", s.name);
        if !serial_chardev(b, s, &chardev, &file) {
            continue;
        }
        let mut o = Opts::new(model);
        o.kv("id", &s.name);
        match &s.kind {
            SerialKind::Plain(_) => {
                o.kv("chardev", &chardev);
            }
            SerialKind::Pci(_) => {
                o.kv("chardev", &chardev);
                let obj = Obj::Sub("serial", &s.name);
                if let Some(p) = pci::place(b, v, model, true, obj, "serial_type") {
                    p.add_to(&mut o);
                }
            }
            SerialKind::VirtioPort {
                port_name,
                bus,
                nr,
                bus_extra,
                ..
            } => {
                let free = |taken: &[u32]| match nr {
                    Some(n) => (!taken.contains(n)).then_some(*n),
                    None => (1..32).find(|n| !taken.contains(n)),
                };
                let console = model == "virtconsole";
                let found = match bus.as_deref() {
                    Some("<new>") => None,
                    Some(named) => buses.iter().position(|(id, _)| id == named),
                    None if console => None,
                    None => buses.iter().rposition(|(_, taken)| free(taken).is_some()),
                };
                let at = match (found, bus.as_deref()) {
                    (Some(i), _) => i,
                    (None, Some(named)) if named != "<new>" => {
                        b.unsupported(
                            Obj::Sub("serial", &s.name),
                            "serial_bus",
                            format!("no virtio-serial bus {named} was created before this port"),
                        );
                        continue;
                    }
                    _ => {
                        let Some(id) = virtio_serial_bus(b, v, &s.name, buses.len(), bus_extra)
                        else {
                            continue;
                        };
                        buses.push((id, Vec::new()));
                        buses.len() - 1
                    }
                };
                let (bus_id, taken) = &mut buses[at];
                let Some(n) = free(taken) else {
                    b.unsupported(
                        Obj::Sub("serial", &s.name),
                        "serial_nr",
                        format!(
                            "port {} of virtio-serial bus {bus_id} is taken",
                            nr.unwrap_or(0)
                        ),
                    );
                    continue;
                };
                taken.push(n);
                o.kv("name", port_name)
                    .kv("chardev", &chardev)
                    .kv("bus", &format!("{bus_id}.0"))
                    .kv("nr", &n.to_string());
            }
        }
        b.cmd.push2("-device", o.finish());
    }
}

/// A new virtio-serial bus device (`virtio_serial_pciN`); its id, or `None` (a problem).
fn virtio_serial_bus(
    b: &mut Builder<'_>,
    v: &VmSpec,
    port: &str,
    index: usize,
    extra: &[(String, Option<String>)],
) -> Option<String> {
    let model = "virtio-serial-pci";
    if !b.caps.has_device_type(model) {
        b.unsupported(
            Obj::Sub("serial", port),
            "serial_type",
            format!("QEMU {} has no {model} device", b.caps.version),
        );
        return None;
    }
    let id = format!("virtio_serial_pci{index}");
    let mut o = Opts::new(model);
    o.kv("id", &id);
    o.extra(extra);
    if let Some(p) = pci::place(b, v, model, false, Obj::Sub("serial", port), "serial_type") {
        p.add_to(&mut o);
    }
    b.cmd.push2("-device", o.finish());
    Some(id)
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
