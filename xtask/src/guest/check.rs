//! `cargo xtask fixtures guest --check`: boots the built guest and checks the serial shell,
//! telnet, `nc`, DHCP on three NIC models, disks, PCI hotplug and `system_powerdown`, timing each
//! step.

use std::ffi::OsString;
use std::fs::File;
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use serde_json::json;

use super::boot::{qemu_opt, Boot, BootSpec, Guest};
use super::packages::Built;
use super::wire::{parse_usernet, Protocol, Shell, Stream, Wire};
use super::{
    probe_accel, Accel, AccelChoice, COMMAND_TIMEOUT, KVM_PROBE_TIMEOUT, NC_PORT,
    TCG_READY_TIMEOUT, TELNET_PORT,
};

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// Polls the guest with `cmd` until `done(output)` holds; returns how long it took.
fn poll<S: Stream>(
    shell: &mut Shell<'_, S>,
    cmd: &str,
    timeout: Duration,
    what: &str,
    done: impl Fn(&str) -> bool,
) -> Result<Duration> {
    let started = Instant::now();
    loop {
        let out = shell.run(cmd)?;
        if done(&out) {
            return Ok(started.elapsed());
        }
        ensure!(
            started.elapsed() < timeout,
            "timed out after {:.0} s waiting for {what}; last `{cmd}`:\n{out}",
            timeout.as_secs_f64()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

pub(super) fn check(built: &Built, choice: AccelChoice) -> Result<()> {
    // The QEMU under test: `KVMTEST_QEMU`, else `qemu-system-x86_64`.
    let qemu_binary = qemu_cmd::probe::default_binary();
    let qemu = qemu_binary.as_path();
    let accel = match choice {
        AccelChoice::Auto => probe_accel(qemu, &built.kernel, &built.initrd),
        AccelChoice::Kvm => Accel::Kvm {
            reason: "--accel kvm".into(),
        },
        AccelChoice::Tcg => Accel::Tcg {
            reason: "--accel tcg".into(),
        },
    };
    let logs = built.dir.join("check");
    let run = tempfile::Builder::new()
        .prefix("kvmtest-guest-check.")
        .tempdir()
        .context("creating the check's directory")?;
    let mut extra: Vec<OsString> = Vec::new();
    for (i, (model, fwd)) in [
        (
            "virtio-net-pci",
            format!(",hostfwd=tcp:127.0.0.1:0-:{TELNET_PORT},hostfwd=tcp:127.0.0.1:0-:{NC_PORT}"),
        ),
        ("e1000", String::new()),
        ("rtl8139", String::new()),
    ]
    .into_iter()
    .enumerate()
    {
        extra.push("-netdev".into());
        extra.push(format!("user,id=net{i}{fwd}").into());
        extra.push("-device".into());
        extra.push(format!("{model},netdev=net{i}").into());
    }
    for (name, interface) in [("virtio.img", "virtio"), ("ide.img", "ide")] {
        let path = run.path().join(name);
        File::create(&path)
            .and_then(|f| f.set_len(1 << 20))
            .with_context(|| format!("creating {}", path.display()))?;
        extra.push("-drive".into());
        extra.push(qemu_opt(
            &format!("format=raw,if={interface},file="),
            &path,
            "",
        ));
    }
    let spec = BootSpec {
        qemu,
        accel: accel.qemu_name(),
        boot: Boot::Kernel {
            kernel: &built.kernel,
            initrd: &built.initrd,
        },
        mem_mib: 256,
        smp: 1,
        extra,
        logs: &logs,
    };
    let mut guest = Guest::start(&spec)?;
    let result = check_guest(&mut guest, built, &accel, &logs);
    drop(guest);
    result.with_context(|| {
        format!(
            "guest check failed (QEMU stderr and the serial log are in {})",
            logs.display()
        )
    })
}

fn check_guest(guest: &mut Guest, built: &Built, accel: &Accel, logs: &Path) -> Result<()> {
    let timeout = match accel {
        Accel::Kvm { .. } => KVM_PROBE_TIMEOUT,
        Accel::Tcg { .. } => TCG_READY_TIMEOUT,
    };
    let ready = guest.wait_ready(timeout)?;
    let marker_line =
        guest
            .serial
            .read_until(b"\n", COMMAND_TIMEOUT, "the end of the ready line")?;
    let uptime = String::from_utf8_lossy(&marker_line)
        .split_whitespace()
        .find_map(|w| w.strip_prefix("uptime=").map(str::to_owned))
        .unwrap_or_else(|| "?".into());
    eprintln!(
        "check: {} booted to the ready marker in {} (guest uptime {uptime} s)",
        accel.qemu_name(),
        secs(ready)
    );

    let mut qmp = guest.qmp()?;
    let mut serial = Shell::open(&mut guest.serial, "\n")?;
    let release = serial.run("uname -r")?;
    ensure!(
        release.trim() == built.kernel_release,
        "guest runs {release:?}, built {}",
        built.kernel_release
    );
    let pci = serial.run("lspci")?;
    for (id, what) in [
        ("1af4:1000", "virtio-net"),
        ("8086:100e", "e1000"),
        ("10ec:8139", "rtl8139"),
        ("1af4:1001", "virtio-blk"),
    ] {
        ensure!(pci.contains(id), "lspci shows no {what} ({id}):\n{pci}");
    }
    let blocks = serial.run("ls /sys/block")?;
    for disk in ["vda", "sda"] {
        ensure!(
            blocks.split_whitespace().any(|b| b == disk),
            "no {disk} in /sys/block: {blocks}"
        );
    }
    let drivers = serial.run(
        "for n in eth0 eth1 eth2; do echo $n $(basename $(readlink /sys/class/net/$n/device/driver)); done",
    )?;
    eprintln!(
        "check: serial shell ok: kernel {}, NIC drivers {}, disks vda (virtio) and sda (IDE)",
        release.trim(),
        drivers.split_whitespace().collect::<Vec<_>>().join(" ")
    );

    let forwards = parse_usernet(&qmp.human("info usernet")?);
    let host_port = |guest_port: u16| {
        forwards
            .iter()
            .find(|(_, g)| *g == guest_port)
            .map(|(h, _)| *h)
            .with_context(|| format!("`info usernet` shows no forward to guest port {guest_port}"))
    };

    let telnet_port = host_port(TELNET_PORT)?;
    let started = Instant::now();
    let stream = TcpStream::connect(("127.0.0.1", telnet_port))
        .with_context(|| format!("connecting to the telnet forward 127.0.0.1:{telnet_port}"))?;
    let log = logs.join("telnet.log");
    let mut telnet_wire = Wire::new(stream, "telnet", Protocol::Telnet, Some(&log))?;
    let mut telnet = Shell::open(&mut telnet_wire, "\r\n")?;
    let login = started.elapsed();
    let addrs = telnet.run("ip addr")?;
    let leased = addrs.matches("inet 10.0.2.15/24").count();
    ensure!(
        leased == 3,
        "expected 10.0.2.15/24 on eth0, eth1 and eth2 (DHCP), found {leased}:\n{addrs}"
    );
    let routes = telnet.run("ip route")?;
    // The kernel lists routes to one destination best first: eth0's must win (see the udhcpc hook).
    for dest in ["default ", "10.0.2.0/24 "] {
        let best = routes
            .lines()
            .find(|l| l.starts_with(dest))
            .unwrap_or_default();
        ensure!(
            best.contains(" dev eth0 "),
            "the best route `{}` should be via eth0:\n{routes}",
            dest.trim()
        );
    }
    let netdev = telnet.run("cat /proc/net/dev")?;
    ensure!(
        netdev.contains("eth0:"),
        "no eth0 in /proc/net/dev:\n{netdev}"
    );
    eprintln!(
        "check: telnet ok (127.0.0.1:{telnet_port} -> guest :{TELNET_PORT}, prompt after {}): \
         10.0.2.15/24 on eth0, eth1, eth2",
        secs(login)
    );

    let nc_port = host_port(NC_PORT)?;
    let stream = TcpStream::connect(("127.0.0.1", nc_port))
        .with_context(|| format!("connecting to the nc forward 127.0.0.1:{nc_port}"))?;
    let mut nc_wire = Wire::new(stream, "nc", Protocol::Raw, Some(&logs.join("nc.log")))?;
    let mut nc = Shell::open(&mut nc_wire, "\n")?;
    let who = nc.run("id -u")?;
    ensure!(who.trim() == "0", "nc shell runs as uid {who:?}");
    eprintln!("check: nc ok (127.0.0.1:{nc_port} -> guest :{NC_PORT}), root shell");

    let count = "ls /sys/bus/pci/devices | wc -l";
    let before: u32 = serial
        .run(count)?
        .trim()
        .parse()
        .context("counting PCI devices")?;
    qmp.execute("netdev_add", json!({ "type": "user", "id": "hotnet" }))?;
    qmp.execute(
        "device_add",
        json!({ "driver": "virtio-net-pci", "id": "hotnic", "netdev": "hotnet" }),
    )?;
    let seen = poll(
        &mut serial,
        count,
        COMMAND_TIMEOUT,
        "the hotplugged NIC",
        |o| o.trim().parse::<u32>().is_ok_and(|n| n > before),
    )?;
    let leased = poll(
        &mut serial,
        "ip -4 addr show dev eth3 2>&1 || true",
        COMMAND_TIMEOUT,
        "DHCP on the hotplugged eth3",
        |o| o.contains("inet 10.0.2.15/24"),
    )?;
    qmp.execute("device_del", json!({ "id": "hotnic" }))?;
    let unplug = Instant::now();
    qmp.wait_event(
        "DEVICE_DELETED",
        |data| data["device"] == "hotnic",
        COMMAND_TIMEOUT,
    )?;
    poll(
        &mut serial,
        count,
        COMMAND_TIMEOUT,
        "the unplugged NIC to go",
        |o| o.trim().parse::<u32>().is_ok_and(|n| n == before),
    )?;
    let unplugged = unplug.elapsed();
    eprintln!(
        "check: hotplug ok: virtio-net-pci seen in the guest after {}, eth3 leased {} later; \
         unplugged (DEVICE_DELETED, gone from sysfs) after {}",
        secs(seen),
        secs(leased),
        secs(unplugged)
    );

    qmp.execute("system_powerdown", json!({}))?;
    let started = Instant::now();
    let status = loop {
        if let Some(status) = guest.qemu.child.try_wait().context("polling QEMU")? {
            break status;
        }
        ensure!(
            started.elapsed() < COMMAND_TIMEOUT,
            "QEMU still runs {} s after system_powerdown",
            COMMAND_TIMEOUT.as_secs()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    ensure!(
        status.success(),
        "QEMU exited with {status} after system_powerdown"
    );
    eprintln!(
        "check: system_powerdown ok: QEMU exited after {}",
        secs(started.elapsed())
    );
    eprintln!("check: all passed");
    Ok(())
}
