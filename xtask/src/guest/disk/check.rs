//! `cargo xtask fixtures disk-guest --check`: boots a throw-away overlay of the image (the image
//! itself is never written) and checks what tests rely on, timing the boot: the ready marker on
//! the serial console, an ssh login with the build's key against the pinned host keys (over a
//! user-mode forward), DHCP, the guest agent on its virtio serial port, and `system_powerdown`.

use std::ffi::OsString;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serde_json::{json, Value};

use super::super::boot::{probe_accel_disk, qemu_opt, Boot, BootSpec, Guest};
use super::super::wire::{parse_usernet, Protocol, Wire};
use super::super::{Accel, AccelChoice};
use super::Built;
use crate::host::output;

/// Boot to the ssh login: the bound is 60 s under TCG; a loaded CI machine gets slack
/// for the wait, and the check reports the time it measured.
const READY_TIMEOUT: Duration = Duration::from_secs(180);
const SSH_TIMEOUT: Duration = Duration::from_secs(60);
const AGENT_TIMEOUT: Duration = Duration::from_secs(30);
const POWERDOWN_TIMEOUT: Duration = Duration::from_secs(60);

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

pub(super) fn check(built: &Built, choice: AccelChoice) -> Result<()> {
    let qemu_binary = qemu_cmd::probe::default_binary();
    let qemu = qemu_binary.as_path();
    let run = tempfile::Builder::new()
        .prefix("kvmtest-disk-check.")
        .tempdir()
        .context("creating the check's directory")?;
    let overlay = run.path().join("overlay.qcow2");
    crate::host::run(
        Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
            .arg(&built.image)
            .arg(&overlay),
    )?;
    let accel = match choice {
        AccelChoice::Auto => probe_accel_disk(qemu, &overlay),
        AccelChoice::Kvm => Accel::Kvm {
            reason: "--accel kvm".into(),
        },
        AccelChoice::Tcg => Accel::Tcg {
            reason: "--accel tcg".into(),
        },
    };
    eprintln!("disk-guest check: accelerator {accel:?}");
    let logs = built.dir.join("check");
    let qga_path = run.path().join("qga.sock");
    let extra: Vec<OsString> = vec![
        "-netdev".into(),
        "user,id=net0,hostfwd=tcp:127.0.0.1:0-:22".into(),
        "-device".into(),
        "virtio-net-pci,netdev=net0".into(),
        "-chardev".into(),
        qemu_opt("socket,id=qga0,server=on,wait=off,path=", &qga_path, ""),
        "-device".into(),
        "virtio-serial-pci,id=vser0".into(),
        "-device".into(),
        "virtserialport,bus=vser0.0,chardev=qga0,name=org.qemu.guest_agent.0".into(),
    ];
    let spec = BootSpec {
        qemu,
        accel: accel.qemu_name(),
        boot: Boot::Disk { image: &overlay },
        mem_mib: 1024,
        smp: 2,
        extra,
        logs: &logs,
    };
    let mut guest = Guest::start(&spec)?;
    let result = check_guest(&mut guest, built, &qga_path);
    drop(guest);
    result.with_context(|| {
        format!(
            "disk guest check failed (QEMU stderr and the serial log are in {})",
            logs.display()
        )
    })
}

fn check_guest(guest: &mut Guest, built: &Built, qga_path: &Path) -> Result<()> {
    let ready = guest.wait_ready(READY_TIMEOUT)?;
    eprintln!("disk-guest check: ready marker after {}", secs(ready));
    let mut qmp = guest.qmp()?;
    let fwd = parse_usernet(&qmp.human("info usernet")?);
    let port = fwd
        .iter()
        .find(|(_, guest_port)| *guest_port == 22)
        .map(|(host, _)| *host)
        .context("no forward to the guest's port 22 in `info usernet`")?;
    let login_started = Instant::now();
    let out = ssh_until_up(
        built,
        port,
        "uname -r; systemctl is-system-running; ip -4 -br addr show eth0",
    )?;
    let login = ready + login_started.elapsed();
    eprintln!(
        "disk-guest check: ssh login {} after QEMU started:\n{}",
        secs(login),
        out.trim_end()
    );
    ensure!(
        out.contains("10.0.2.15"),
        "eth0 has no DHCP address from user networking:\n{out}"
    );

    let stream = UnixStream::connect(qga_path)
        .with_context(|| format!("connecting to the guest agent at {}", qga_path.display()))?;
    let mut agent = Wire::new(stream, "the guest agent", Protocol::Raw, None)?;
    let sync_id = std::process::id();
    let started = Instant::now();
    let reply = agent_call(
        &mut agent,
        json!({"execute": "guest-sync-delimited", "arguments": {"id": sync_id}}),
    )?;
    ensure!(
        reply == json!(sync_id),
        "guest-sync-delimited answered {reply}"
    );
    let info = agent_call(&mut agent, json!({"execute": "guest-info"}))?;
    let version = info["version"].as_str().unwrap_or("?").to_owned();
    let ifaces = agent_call(
        &mut agent,
        json!({"execute": "guest-network-get-interfaces"}),
    )?;
    ensure!(
        ifaces.to_string().contains("10.0.2.15"),
        "the agent does not report eth0's address: {ifaces}"
    );
    eprintln!(
        "disk-guest check: guest agent {version} answered sync, info and interfaces in {}",
        secs(started.elapsed())
    );

    let started = Instant::now();
    qmp.execute("system_powerdown", json!({}))?;
    let deadline = Instant::now() + POWERDOWN_TIMEOUT;
    loop {
        if guest.qemu.child.try_wait()?.is_some() {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "the guest did not power off within {} of system_powerdown",
            secs(POWERDOWN_TIMEOUT)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!(
        "disk-guest check: powered off {} after system_powerdown; boot to ssh login {}",
        secs(started.elapsed()),
        secs(login)
    );
    Ok(())
}

/// The ssh client argv for the disk guest: the build's key, its pinned host keys (checked
/// strictly), no agent, no password prompt.
fn ssh(built: &Built, port: u16, remote: &str) -> Command {
    let mut cmd = Command::new("ssh");
    cmd.arg("-i")
        .arg(&built.key)
        .arg("-o")
        .arg({
            let mut o = OsString::from("UserKnownHostsFile=");
            o.push(&built.known_hosts);
            o
        })
        .args([
            "-o",
            &format!("HostKeyAlias={}", vm::fixtures::DISK_HOST_ALIAS),
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "ConnectTimeout=5",
            "-o",
            "LogLevel=ERROR",
            "-p",
            &port.to_string(),
            "root@127.0.0.1",
            "--",
            remote,
        ]);
    cmd
}

/// Runs `remote` over ssh until it succeeds (sshd may not be up yet), for [`SSH_TIMEOUT`].
fn ssh_until_up(built: &Built, port: u16, remote: &str) -> Result<String> {
    let deadline = Instant::now() + SSH_TIMEOUT;
    loop {
        match output(&mut ssh(built, port, remote)) {
            Ok(out) => return Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
            Err(e) if Instant::now() >= deadline => {
                return Err(e).context(format!("no ssh login within {}", secs(SSH_TIMEOUT)))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

/// One guest agent command: its `return`, or an error with the agent's.
fn agent_call(agent: &mut Wire<UnixStream>, msg: Value) -> Result<Value> {
    let delimited = msg["execute"] == "guest-sync-delimited";
    agent.send(&format!("{msg}\n"))?;
    if delimited {
        // The agent answers guest-sync-delimited after a 0xFF byte that flushes a half-read
        // reply of an earlier client.
        agent.read_until(&[0xff], AGENT_TIMEOUT, "the guest agent's sync delimiter")?;
    }
    let line = agent.read_until(b"\n", AGENT_TIMEOUT, "a guest agent reply")?;
    let reply: Value = serde_json::from_slice(&line).context("parsing a guest agent reply")?;
    match reply.get("return") {
        Some(v) => Ok(v.clone()),
        None => bail!("guest agent {} failed: {}", msg["execute"], reply),
    }
}
