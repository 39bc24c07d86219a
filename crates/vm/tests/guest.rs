//! Integration tests on the real test guest under TCG: boot and log in (serial, telnet, nc),
//! commands and statuses, hotplug, reboot, migration, pause/resume, and teardown without leaks.

#[macro_use]
mod support;

use std::time::{Duration, Instant};

use support::{assert_no_leftovers, guest_params, logs, start};
use vm::{Access, MigrationProtocol, RebootMethod, SessionError, StoppedBy, Teardown, Vm};

/// Counts PCI devices in the guest.
async fn pci_count(s: &mut vm::Session) -> usize {
    let out = s.cmd("ls /sys/bus/pci/devices").await.expect("ls pci");
    out.split_whitespace().count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boot_login_commands_and_graceful_destroy() {
    let logs = logs();
    let t0 = Instant::now();
    let mut vm = start(guest_params(), logs.path()).await.expect("create");
    let created = t0.elapsed();
    let timeout = vm.login_timeout();
    let mut serial = ok!(vm, vm.wait_for_login(Access::Serial, timeout).await);
    let serial_login = t0.elapsed();

    let uname = ok!(vm, serial.cmd("uname -s").await);
    assert_eq!(uname.trim(), "Linux");
    let (status, out) = ok!(vm, serial.cmd_status_output("ls /nonexistent").await);
    assert_ne!(status, 0, "ls of a missing file: {out}");
    match serial.cmd("false").await {
        Err(SessionError::CommandFailed { status: 1, .. }) => {}
        other => panic!("`false` should fail with status 1: {other:?}"),
    }
    // The UUID reached the guest.
    let uuid = vm.plan().values().uuid.to_string();
    let guest_uuid = ok!(vm, serial.cmd("cat /sys/class/dmi/id/product_uuid").await);
    assert_eq!(guest_uuid.trim(), uuid);
    // The generated MAC reached the guest.
    let mac = ok!(vm, vm.get_mac(0)).to_string();
    let guest_mac = ok!(vm, serial.cmd("cat /sys/class/net/eth0/address").await);
    assert_eq!(guest_mac.trim(), mac);
    drop(serial);

    // Telnet through the redirected port.
    let port = ok!(vm, vm.get_port(23, 0));
    assert_ne!(port, 0);
    assert_eq!(ok!(vm, vm.get_address(0, &Default::default())), "localhost");
    assert!(matches!(
        vm.get_port(8080, 0),
        Err(vm::Error::PortNotRedirected {
            guest_port: 8080,
            ..
        })
    ));
    let mut telnet = ok!(
        vm,
        vm.wait_for_login(Access::Remote { nic: 0 }, timeout).await
    );
    let telnet_login = t0.elapsed();
    let addr = ok!(vm, telnet.cmd("ip -4 addr show eth0").await);
    assert!(addr.contains("10.0.2.15"), "{addr}");
    drop(telnet);

    // Raw TCP (`nc`) shell on guest port 2222.
    let mut nc = ok!(vm, vm_nc_session(&mut vm, timeout).await);
    let echo = ok!(vm, nc.cmd("echo hello-nc").await);
    assert_eq!(echo.trim(), "hello-nc");
    drop(nc);

    // The human monitor and QMP agree.
    let hmp = vm.human_monitor("hmp1").expect("hmp1");
    let info = ok!(vm, monitor::HumanMonitor::info(hmp, "status").await);
    assert!(info.contains("running"), "{info}");

    let pid = vm.pid();
    let run_dir = vm.run_dir().to_path_buf();
    let log_dir = vm.log_dir().to_path_buf();
    let t1 = Instant::now();
    let stopped = vm.destroy(Teardown::Graceful).await.expect("destroy");
    let teardown = t1.elapsed();
    assert_eq!(stopped, StoppedBy::GuestCommand);
    assert_no_leftovers(pid, &run_dir);
    let serial_log = std::fs::read_to_string(log_dir.join("serial.log")).expect("serial log");
    assert!(serial_log.contains("KVMTEST-GUEST-READY"), "{serial_log}");
    eprintln!(
        "timings: create {:.2} s, serial login at {:.2} s, telnet login at {:.2} s, \
         graceful teardown {:.2} s",
        created.as_secs_f64(),
        serial_login.as_secs_f64(),
        telnet_login.as_secs_f64(),
        teardown.as_secs_f64()
    );
}

/// A `nc` session: the VM's `shell_client` is telnet, so connect a raw TCP transport directly.
async fn vm_nc_session(vm: &mut Vm, timeout: Duration) -> Result<vm::Session, vm::Error> {
    let port = vm.get_port(2222, 0)?;
    let config = vm.session_spec().clone();
    let deadline = Instant::now() + timeout;
    loop {
        let attempt = async {
            let t = vm::session::RawTcpTransport::connect("127.0.0.1", port)
                .await
                .map_err(|source| SessionError::Connect {
                    session: format!("nc 127.0.0.1:{port}"),
                    source,
                })?;
            let mut s =
                vm::Session::new(Box::new(t), config.clone(), &vm.log_dir().join("nc.log"))?;
            s.login(Duration::from_secs(10)).await?;
            Ok::<_, SessionError>(s)
        };
        match attempt.await {
            Ok(s) => return Ok(s),
            Err(e) if Instant::now() >= deadline => return Err(e.into()),
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hotplug_nic_and_disk_seen_in_guest() {
    let logs = logs();
    let mut vm = start(guest_params(), logs.path()).await.expect("create");
    let timeout = vm.login_timeout();
    let mut s = ok!(vm, vm.wait_for_login(Access::Serial, timeout).await);
    let before = pci_count(&mut s).await;

    let nic = ok!(vm, vm.hotplug_nic("virtio-net-pci").await);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut after = pci_count(&mut s).await;
    while after != before + 1 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(300)).await;
        after = pci_count(&mut s).await;
    }
    assert_eq!(after, before + 1, "hotplugged NIC not seen in the guest");
    // The guest sees the NIC with our MAC.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut macs = ok!(vm, s.cmd("cat /sys/class/net/*/address").await);
    while !macs.contains(&nic.mac.to_string()) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(300)).await;
        macs = ok!(vm, s.cmd("cat /sys/class/net/*/address").await);
    }
    assert!(
        macs.contains(&nic.mac.to_string()),
        "{} not in {macs}",
        nic.mac
    );

    ok!(vm, vm.unplug_nic(&nic).await);
    let mut back = pci_count(&mut s).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while back != before && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(300)).await;
        back = pci_count(&mut s).await;
    }
    assert_eq!(back, before, "unplugged NIC still in the guest");

    // A virtio disk on a fresh qcow2 image made with the real qemu-img.
    let mut ip = params::Params::new();
    ip.insert(
        "image_name",
        logs.path().join("hot").to_string_lossy().into_owned(),
    );
    ip.insert("image_size", "16M");
    let img =
        vm::image::Image::from_params(&ip, "vm1", "hot", std::path::Path::new("/")).expect("image");
    img.create().expect("qemu-img create");
    let disk = ok!(
        vm,
        vm.hotplug_disk(&vm::DiskPlug::new(&img.path, "qcow2", "virtio-blk-pci"))
            .await
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut blocks = ok!(vm, s.cmd("ls /sys/block").await);
    while !blocks.contains("vda") && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(300)).await;
        blocks = ok!(vm, s.cmd("ls /sys/block").await);
    }
    assert!(blocks.contains("vda"), "hotplugged disk not seen: {blocks}");
    ok!(vm, vm.unplug_disk(&disk).await);
    drop(s);

    let pid = vm.pid();
    let run_dir = vm.run_dir().to_path_buf();
    let vm_log = vm.log_dir().join("vm.log");
    vm.destroy(Teardown::Kill).await.expect("destroy");
    assert_no_leftovers(pid, &run_dir);
    // vm.log has two writers (the VM's own lines, QMP commands): every line is whole, none
    // written over, and both kinds are there.
    let text = std::fs::read_to_string(&vm_log).expect("vm.log");
    for line in text.lines() {
        assert!(
            line.starts_with("[+"),
            "a broken line in vm.log: {line:?}\n{text}"
        );
    }
    assert!(text.contains("QMP device_add"), "{text}");
    assert!(text.contains("teardown"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reboot_by_shell_and_by_system_reset() {
    let logs = logs();
    let mut vm = start(guest_params(), logs.path()).await.expect("create");
    let timeout = vm.login_timeout();
    let mut s = ok!(vm, vm.wait_for_login(Access::Serial, timeout).await);
    ok!(vm, s.cmd("touch /tmp/before-reboot").await);

    let t = Instant::now();
    let mut s = ok!(
        vm,
        vm.reboot(RebootMethod::Shell(Box::new(s)), Access::Serial, timeout)
            .await
    );
    eprintln!("shell reboot to login: {:.2} s", t.elapsed().as_secs_f64());
    // A fresh boot: the initramfs is new, the file is gone.
    let (status, _) = ok!(vm, s.cmd_status_output("test -e /tmp/before-reboot").await);
    assert_ne!(status, 0, "the guest did not really reboot");
    drop(s);

    let t = Instant::now();
    let mut s = ok!(
        vm,
        vm.reboot(
            RebootMethod::SystemReset,
            Access::Remote { nic: 0 },
            timeout
        )
        .await,
    );
    eprintln!(
        "system_reset to telnet login: {:.2} s",
        t.elapsed().as_secs_f64()
    );
    ok!(vm, s.cmd("true").await);
    drop(s);

    // Pause and resume.
    ok!(vm, vm.pause().await);
    assert_eq!(ok!(vm, vm.status().await), "paused");
    ok!(vm, vm.resume().await);
    assert_eq!(ok!(vm, vm.status().await), "running");

    let pid = vm.pid();
    let run_dir = vm.run_dir().to_path_buf();
    vm.destroy(Teardown::Kill).await.expect("destroy");
    assert_no_leftovers(pid, &run_dir);
}

/// The UUID QEMU reports (`query-uuid`).
async fn qmp_uuid(vm: &Vm) -> String {
    let reply = ok!(
        vm,
        vm.monitor()
            .execute("query-uuid", serde_json::json!({}))
            .await
    );
    reply["UUID"]
        .as_str()
        .expect("UUID in query-uuid")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_over_tcp_unix_and_exec_live_and_offline() {
    let logs = logs();
    let mut vm = start(guest_params(), logs.path()).await.expect("create");
    let timeout = vm.login_timeout();
    let mut s = ok!(vm, vm.wait_for_login(Access::Serial, timeout).await);
    ok!(vm, s.cmd("echo survived > /tmp/marker").await);
    drop(s);
    let mac = ok!(vm, vm.get_mac(0));
    let uuid = vm.plan().values().uuid.to_string();
    assert_eq!(qmp_uuid(&vm).await, uuid, "source: QMP query-uuid");

    let mut seen = vec![(vm.pid(), vm.run_dir().to_path_buf())];
    for (proto, offline) in [
        (MigrationProtocol::Tcp, false),
        (MigrationProtocol::Unix, false),
        (MigrationProtocol::Exec, false),
        (MigrationProtocol::Tcp, true),
        (MigrationProtocol::Unix, true),
    ] {
        let t = Instant::now();
        ok!(vm, vm.migrate_with(proto, offline).await);
        assert_eq!(
            ok!(vm, vm.status().await),
            "running",
            "{proto:?} (offline: {offline}): the destination runs"
        );
        let took = t.elapsed();
        let (old_pid, old_dir) = seen.last().cloned().expect("previous");
        assert_ne!(vm.pid(), old_pid, "{proto:?}: destination replaces source");
        assert_no_leftovers(old_pid, &old_dir);
        assert_eq!(ok!(vm, vm.get_mac(0)), mac, "{proto:?}: MAC kept");
        assert_eq!(vm.plan().values().uuid.to_string(), uuid, "{proto:?}");
        assert_eq!(
            qmp_uuid(&vm).await,
            uuid,
            "{proto:?}: UUID kept (query-uuid)"
        );
        let mut s = ok!(vm, vm.wait_for_login(Access::Serial, timeout).await);
        let out = ok!(vm, s.cmd("cat /tmp/marker").await);
        assert_eq!(out.trim(), "survived", "{proto:?}: guest state kept");
        let guest_uuid = ok!(vm, s.cmd("cat /sys/class/dmi/id/product_uuid").await);
        assert_eq!(guest_uuid.trim(), uuid, "{proto:?}: the guest's UUID");
        drop(s);
        let mut t2 = ok!(
            vm,
            vm.wait_for_login(Access::Remote { nic: 0 }, timeout).await
        );
        ok!(vm, t2.cmd("true").await);
        drop(t2);
        eprintln!("migration over {proto:?}: {:.2} s", took.as_secs_f64());
        seen.push((vm.pid(), vm.run_dir().to_path_buf()));
    }
    let (pid, run_dir) = seen.last().cloned().expect("last");
    vm.destroy(Teardown::Kill).await.expect("destroy");
    assert_no_leftovers(pid, &run_dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_without_destroy_kills_qemu() {
    let logs = logs();
    let mut p = guest_params();
    p.insert("extra_params", "-S");
    let vm = start(p, logs.path()).await.expect("create");
    let pid = vm.pid();
    let run_dir = vm.run_dir().to_path_buf();
    assert!(support::process_alive(pid));
    drop(vm);
    let deadline = Instant::now() + Duration::from_secs(5);
    while support::process_alive(pid) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_no_leftovers(pid, &run_dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qemu_failure_is_reported_with_its_output() {
    let logs = logs();
    let mut p = guest_params();
    p.insert("extra_params", "-no-such-option");
    let err = start(p, logs.path())
        .await
        .expect_err("QEMU must refuse the option");
    let text = err.to_string();
    assert!(
        matches!(err, vm::Error::QemuExited { .. }) && text.contains("no-such-option"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hmp_only_vm_is_driven_through_an_added_qmp_monitor() {
    let logs = logs();
    let mut p = guest_params();
    p.insert("monitors", "hmp1");
    let vm = start(p, logs.path()).await.expect("an HMP-only VM starts");
    let names: Vec<&str> = vm.spec().monitors.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["hmp1", vm::CONTROL_MONITOR]);
    let status = vm
        .monitor()
        .execute("query-status", serde_json::json!({}))
        .await
        .expect("query-status over the added QMP monitor");
    assert!(status.get("status").is_some(), "{status}");
    let hmp = vm
        .human_monitor("hmp1")
        .expect("the cfg's HMP monitor is kept");
    let info = hmp
        .cmd_timeout("info status", std::time::Duration::from_secs(10))
        .await
        .expect("info status over HMP");
    assert!(info.contains("VM status"), "{info}");
    vm.destroy(Teardown::Kill).await.expect("destroy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_vnc_displays_never_collide() {
    let logs = logs();
    let vnc_params = || {
        let mut p = guest_params();
        p.insert("display", "vnc");
        p.insert("extra_params", "-S");
        p
    };
    // Both started at once: QEMU takes the first free display in 0..=99 (`to=99`), so the
    // second bind of a display fails inside QEMU and it moves on, whatever the timing.
    let (a, b) = tokio::join!(
        start(vnc_params(), logs.path()),
        start(vnc_params(), logs.path()),
    );
    let (a, b) = (a.expect("create a"), b.expect("create b"));
    let ports = [a.vnc_port(), b.vnc_port()];
    let [Some(pa), Some(pb)] = ports else {
        panic!("no VNC port read back: {ports:?}");
    };
    assert_ne!(pa, pb, "two VMs got the same VNC display");
    for port in [pa, pb] {
        assert!((5900..=5999).contains(&port), "{port}");
        // A VNC server answers with its protocol version.
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect to VNC");
        let mut banner = [0u8; 12];
        tokio::io::AsyncReadExt::read_exact(&mut s, &mut banner)
            .await
            .expect("VNC banner");
        assert!(banner.starts_with(b"RFB "), "{banner:?}");
    }
    let runs = [
        (a.pid(), a.run_dir().to_path_buf()),
        (b.pid(), b.run_dir().to_path_buf()),
    ];
    a.destroy(Teardown::Kill).await.expect("destroy a");
    b.destroy(Teardown::Kill).await.expect("destroy b");
    for (pid, dir) in runs {
        assert_no_leftovers(pid, &dir);
    }
}
