//! Integration tests against a real `qemu-system-x86_64` (TCG, `-S`, no guest).
//!
//! Each test owns its QEMU through the [`support::Qemu`] guard, which kills
//! and reaps it and removes its tempdir even when the test panics.

mod support;

use std::time::{Duration, Instant};

use monitor::{Disconnect, Error, ErrorClass, EventFilter, HumanMonitor, QmpClient, QmpConfig};
use serde_json::{json, Value};
use support::{chain, pci_ids, Qemu};

const T: Duration = Duration::from_secs(10);

#[tokio::test]
async fn greeting_version_and_query_status() {
    let qemu = Qemu::pc();
    let qmp = qemu.qmp().await;
    let (major, _, _) = qmp.greeting().version_triple();
    assert!(major >= 2, "QEMU version {:?}", qmp.greeting().version);
    assert!(qmp.greeting().capabilities.iter().any(|c| c == "oob"));
    assert!(qmp.oob_enabled(), "oob offered, so it is negotiated");

    // Typed through the qapi crate…
    let status = qmp
        .run(&qapi::qmp::query_status {})
        .await
        .expect("query-status");
    assert!(!status.running);
    assert!(matches!(status.status, qapi::qmp::RunState::prelaunch));
    // …and untyped, which works for any command.
    let raw = qmp
        .execute("query-status", Value::Null)
        .await
        .expect("query-status");
    assert_eq!(raw["status"], "prelaunch");
    let version = qmp
        .run(&qapi::qmp::query_version {})
        .await
        .expect("query-version");
    assert_eq!(version.qemu.major, major);
}

#[tokio::test]
async fn qemu_errors_are_typed_and_name_the_command() {
    let qemu = Qemu::pc();
    let qmp = qemu.qmp().await;
    let err = qmp
        .execute("no-such-command", json!({}))
        .await
        .expect_err("must fail");
    assert_eq!(err.qmp_class(), Some(&ErrorClass::CommandNotFound));
    assert_eq!(err.command(), Some("no-such-command"));
    let err = qmp
        .execute("device_del", json!({"id": "nope"}))
        .await
        .expect_err("must fail");
    assert!(matches!(err, Error::Qmp { .. }), "{err:?}");
    assert!(err.to_string().contains("device_del"), "{err}");
    // The connection is still fine afterwards.
    qmp.execute("query-status", Value::Null)
        .await
        .expect("still usable");
}

#[tokio::test]
async fn stop_cont_and_their_events() {
    let qemu = Qemu::pc();
    let qmp = qemu.qmp().await;
    let mut listener = qmp.listen(qmp.cursor());

    let mark = qmp.cursor();
    qmp.execute("cont", json!({})).await.expect("cont");
    // Let the event arrive before the wait begins: the wait must still see it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let resume = qmp
        .wait_event(EventFilter::new("RESUME").since(mark), T)
        .await
        .expect("RESUME");
    assert!(
        qmp.run(&qapi::qmp::query_status {})
            .await
            .expect("status")
            .running
    );

    let mark = qmp.cursor();
    qmp.execute("stop", json!({})).await.expect("stop");
    let stop = qmp
        .wait_event(EventFilter::new("STOP").since(mark), T)
        .await
        .expect("STOP");
    assert!(stop.seq > resume.seq);
    assert!(stop.decode::<qapi::qmp::STOP>().is_some());
    assert!(matches!(stop.typed(), Some(qapi::qmp::Event::STOP { .. })));
    assert!(
        !qmp.run(&qapi::qmp::query_status {})
            .await
            .expect("status")
            .running
    );

    // A second, independent listener sees the same events in order.
    let mut names = Vec::new();
    while names.len() < 2 {
        let ev = tokio::time::timeout(T, listener.next())
            .await
            .expect("listener timed out")
            .expect("listener")
            .expect("an event");
        names.push(ev.name.clone());
    }
    assert_eq!(names, ["RESUME", "STOP"]);

    // Waiting from a cursor after the last STOP must not see the old one.
    let err = qmp
        .wait_event(
            EventFilter::new("STOP").since(stop.next_cursor()),
            Duration::from_millis(200),
        )
        .await
        .expect_err("no new STOP");
    assert!(matches!(err, Error::EventTimeout { .. }), "{err:?}");
}

#[tokio::test]
async fn hmp_info_pci_is_the_same_through_qmp_and_the_human_socket() {
    let qemu = Qemu::pc();
    let qmp = qemu.qmp().await;
    let hmp = qemu.hmp().await;
    assert!(hmp.banner().contains("QEMU"), "{:?}", hmp.banner());

    let via_qmp = qmp.info("pci").await.expect("info pci via QMP");
    let via_hmp = hmp.info("pci").await.expect("info pci via HMP socket");
    assert!(via_qmp.contains("Host bridge"), "{via_qmp}");
    assert_eq!(via_qmp, via_hmp);

    // A generic test body runs unchanged on either monitor type.
    async fn add_nic(mon: &impl HumanMonitor, id: &str) -> String {
        let out = mon
            .cmd(&format!("device_add e1000,id={id}"))
            .await
            .expect("device_add");
        assert_eq!(out, "", "device_add printed an error");
        mon.info("pci").await.expect("info pci")
    }
    let after_hmp = add_nic(&hmp, "nic1").await;
    let after_qmp = add_nic(&qmp, "nic2").await;
    assert_eq!(pci_ids(&after_hmp), ["nic1"]);
    assert_eq!(pci_ids(&after_qmp), ["nic1", "nic2"]);
    assert_eq!(after_qmp, hmp.info("pci").await.expect("info pci"));

    let err = hmp
        .cmd("info pci\ninfo network")
        .await
        .expect_err("two commands");
    assert!(matches!(err, Error::InvalidCommandLine { .. }));
    let net = hmp.info("network").await.expect("info network");
    assert!(net.contains("nic1") && net.contains("nic2"), "{net}");
}

/// `device_del` of a PCI NIC on the `pc` machine only *requests* removal
/// through ACPI; the guest's OSPM must acknowledge before QEMU finishes it and
/// emits `DEVICE_DELETED`. With no guest (`-S`, or even running SeaBIOS
/// without an OS) it never completes. A USB device has no such handshake:
/// unplugging `usb-net` from an xHCI controller completes at once.
#[tokio::test]
async fn device_add_del_of_a_nic_with_device_deleted() {
    let qemu = Qemu::start("pc", &["-device", "qemu-xhci,id=xhci"]);
    let qmp = qemu.qmp().await;

    // PCI NIC: added, then unplug requested but never completed without a guest.
    qmp.run(&qapi::qmp::device_add::new(
        "e1000",
        Some("pcinic".to_owned()),
        None,
        [],
    ))
    .await
    .expect("device_add e1000");
    let mark = qmp.cursor();
    qmp.execute("device_del", json!({"id": "pcinic"}))
        .await
        .expect("device_del e1000");
    let filter = EventFilter::new("DEVICE_DELETED")
        .data(json!({"device": "pcinic"}))
        .since(mark);
    let err = qmp
        .wait_event(filter, Duration::from_secs(1))
        .await
        .expect_err("needs a guest");
    assert!(matches!(err, Error::EventTimeout { .. }), "{err:?}");
    assert!(err.to_string().contains("DEVICE_DELETED"), "{err}");
    assert_eq!(
        pci_ids(&qmp.info("pci").await.expect("info pci")),
        ["xhci", "pcinic"]
    );

    // USB NIC: removal needs no guest, DEVICE_DELETED arrives.
    qmp.execute(
        "device_add",
        json!({"driver": "usb-net", "id": "nic1", "bus": "xhci.0"}),
    )
    .await
    .expect("device_add usb-net");
    assert!(qmp.info("usb").await.expect("info usb").contains("nic1"));
    let mark = qmp.cursor();
    qmp.execute("device_del", json!({"id": "nic1"}))
        .await
        .expect("device_del usb-net");
    let filter = EventFilter::new("DEVICE_DELETED")
        .data(json!({"device": "nic1"}))
        .since(mark);
    let ev = qmp
        .wait_event(filter, T)
        .await
        .expect("DEVICE_DELETED nic1");
    let typed = ev
        .decode::<qapi::qmp::DEVICE_DELETED>()
        .expect("is DEVICE_DELETED")
        .expect("decodes");
    assert_eq!(typed.path, "/machine/peripheral/nic1");
    assert!(!qmp.info("usb").await.expect("info usb").contains("nic1"));
}

#[tokio::test]
async fn quit_emits_shutdown_and_then_the_connection_is_lost() {
    let mut qemu = Qemu::pc();
    let qmp = qemu.qmp().await;
    let mark = qmp.cursor();
    // QEMU sends SHUTDOWN and the reply, then closes; depending on timing
    // the reply may or may not make it before the socket closes.
    match qmp.execute("quit", json!({})).await {
        Ok(_) | Err(Error::ConnectionLost { .. }) => {}
        Err(e) => panic!("quit: {}", chain(&e)),
    }
    let ev = qmp
        .wait_event(EventFilter::new("SHUTDOWN").since(mark), T)
        .await
        .expect("SHUTDOWN");
    assert_eq!(ev.data["reason"], "host-qmp-quit");
    assert!(qemu.wait_exit(T).is_some(), "QEMU did not exit after quit");
    let err = qmp
        .execute("query-status", Value::Null)
        .await
        .expect_err("QEMU is gone");
    match &err {
        Error::ConnectionLost { command, cause } => {
            assert_eq!(command, "query-status");
            assert!(matches!(**cause, Disconnect::Eof), "{cause:?}");
        }
        other => panic!("expected ConnectionLost, got {other:?}"),
    }
    // Waiting for an event that will never come fails at once, not at timeout.
    let start = Instant::now();
    let err = qmp
        .wait_event("RESET", T)
        .await
        .expect_err("no more events");
    assert!(matches!(err, Error::EventStreamEnded { .. }), "{err:?}");
    assert!(start.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn sigkill_while_a_command_is_pending_fails_it_within_a_second() {
    let mut qemu = Qemu::pc();
    let qmp = qemu.qmp().await;
    // Freeze QEMU so the command really stays pending, then kill it.
    qemu.signal("STOP");
    let pending = qmp.send("query-status", Value::Null).expect("sent");
    let waiter = tokio::spawn(pending.wait());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !waiter.is_finished(),
        "QEMU is frozen, the reply cannot have come"
    );
    let killed = Instant::now();
    qemu.kill();
    let result = tokio::time::timeout(Duration::from_secs(1), waiter)
        .await
        .expect("no error within 1 s of SIGKILL")
        .expect("task");
    let elapsed = killed.elapsed();
    match result {
        Err(Error::ConnectionLost { command, .. }) => assert_eq!(command, "query-status"),
        other => panic!("expected ConnectionLost, got {other:?}"),
    }
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
    eprintln!("connection-lost error {elapsed:?} after SIGKILL");
}

#[tokio::test]
async fn many_commands_in_flight_are_matched_by_id() {
    let qemu = Qemu::pc();
    let qmp = qemu.qmp().await;
    let names = ["query-status", "query-version", "query-name", "query-uuid"];
    let pending: Vec<_> = (0..400)
        .map(|i| {
            let name = names[i % names.len()];
            (name, qmp.send(name, Value::Null).expect("sent"))
        })
        .collect();
    for (name, p) in pending {
        let v = p.wait().await.expect("reply");
        let ok = match name {
            "query-status" => v.get("status").is_some(),
            "query-version" => v.get("qemu").is_some(),
            "query-name" => v.is_object(),
            _ => v.get("UUID").is_some(),
        };
        assert!(ok, "{name} got {v}");
    }
    // Concurrent tasks sharing one client.
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let qmp = qmp.clone();
        set.spawn(async move {
            for _ in 0..50 {
                qmp.run(&qapi::qmp::query_status {}).await.expect("status");
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.expect("task");
    }
}

#[tokio::test]
async fn qmp_over_tcp_with_a_kernel_chosen_port() {
    let qemu = Qemu::start(
        "none",
        &[
            "-chardev",
            "socket,id=qmptcp,host=127.0.0.1,port=0,server=on,wait=off",
            "-mon",
            "chardev=qmptcp,mode=control",
        ],
    );
    let unix = qemu.qmp().await;
    // Read the port back: query-chardev says "disconnected:tcp:127.0.0.1:PORT,server=on".
    let chardevs = unix
        .execute("query-chardev", Value::Null)
        .await
        .expect("query-chardev");
    let filename = chardevs
        .as_array()
        .and_then(|a| a.iter().find(|c| c["label"] == "qmptcp"))
        .and_then(|c| c["filename"].as_str())
        .expect("qmptcp chardev")
        .to_owned();
    let addr = filename
        .split("tcp:")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .expect("address in filename");
    let tcp = QmpClient::connect_tcp(addr, QmpConfig::default())
        .await
        .expect("QMP over TCP");
    let status = tcp
        .run(&qapi::qmp::query_status {})
        .await
        .expect("query-status over TCP");
    assert!(!status.running);
}

#[tokio::test]
async fn transcripts_are_json_lines_with_time_direction_and_message() {
    let qemu = Qemu::pc();
    let qmp = qemu.qmp().await;
    let hmp = qemu.hmp().await;
    qmp.execute("query-status", Value::Null)
        .await
        .expect("status");
    hmp.info("status").await.expect("info status");
    qmp.close().await;
    hmp.close().await;
    for (name, needle) in [("qmp.jsonl", "query-status"), ("hmp.jsonl", "info status")] {
        let text = std::fs::read_to_string(qemu.dir().join(name)).expect("transcript");
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("each line is JSON"))
            .collect();
        assert!(lines
            .iter()
            .all(|l| l["time"].as_f64().is_some_and(|t| t > 1.6e9)));
        assert!(lines
            .iter()
            .any(|l| l["dir"] == "out" && l["msg"].to_string().contains(needle)));
        assert!(lines.iter().any(|l| l["dir"] == "in"));
    }
    // QMP lines are embedded as JSON, not strings.
    let text = std::fs::read_to_string(qemu.dir().join("qmp.jsonl")).expect("transcript");
    assert!(
        text.lines().any(|l| l.contains(r#""msg":{"QMP""#)),
        "{text}"
    );
}

#[tokio::test]
async fn a_descriptor_sent_with_getfd_reaches_qemu_under_its_name() {
    use std::os::fd::AsFd;
    let qemu = Qemu::pc();
    let qmp = qemu.qmp().await;
    // Without a descriptor attached, QEMU refuses getfd: the test below is not vacuous.
    let err = qmp
        .execute("getfd", json!({"fdname": "kt-none"}))
        .await
        .expect_err("getfd without a descriptor must fail");
    assert!(matches!(err, Error::Qmp { .. }), "{err:?}");
    let (a, _b) = std::os::unix::net::UnixStream::pair().expect("socketpair");
    qmp.execute_with_fds("getfd", json!({"fdname": "kt-fd"}), &[a.as_fd()])
        .await
        .expect("getfd with the descriptor");
    drop(a);
    // QEMU holds it by name: the first closefd succeeds, a second finds nothing.
    qmp.execute("closefd", json!({"fdname": "kt-fd"}))
        .await
        .expect("closefd of the passed descriptor");
    let err = qmp
        .execute("closefd", json!({"fdname": "kt-fd"}))
        .await
        .expect_err("the descriptor was closed already");
    assert!(err.to_string().contains("closefd"), "{err}");
    // Plain commands still flow on the connection afterwards.
    qmp.execute("query-status", Value::Null)
        .await
        .expect("still usable");
}
