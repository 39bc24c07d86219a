//! The guest agent of the disk guest (`cargo xtask fixtures disk-guest`: Debian with
//! qemu-guest-agent) through the VM layer, configured as tp-qemu configures it
//! (`support/disk_guest_agent.cfg`: a `virtserialport` named `org.qemu.guest_agent.0`):
//! sync, ping, info, network interfaces, `guest-exec` (success, failure, stdin), a file written,
//! read back and closed, fsfreeze freeze → frozen → thaw, the agent stopped in the guest (a
//! timeout naming the command) and started again (the next command resynchronises past the
//! stale reply), and `guest-shutdown` (`Vm::agent_powerdown`) with QEMU seen to exit and
//! nothing left behind.
//!
//! The guest is never built here: a missing one fails the test naming the command that builds it.

#[macro_use]
mod support;

use std::time::{Duration, Instant};

use monitor::qapi::qga::GuestFsfreezeStatus;
use monitor::{Error as MonitorError, EventFilter};
use serde_json::{json, Value};
use support::{
    assert_no_leftovers, disk_guest_params, guest_params, logs, qemu, setup, start, workspace_root,
};
use vm::{Access, Error, PlanOptions, StoppedBy, Teardown, Vm};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_agent_commands_faults_and_shutdown() {
    let logs = logs();
    let t0 = Instant::now();
    let mut vm = start(disk_guest_params("disk_guest_agent.cfg"), logs.path())
        .await
        .expect("create");
    // As tp-qemu does: log in first (the guest is up), then talk to its agent.
    let timeout = vm.login_timeout();
    let mut ssh = ok!(
        vm,
        vm.wait_for_login(Access::Remote { nic: 0 }, timeout).await
    );
    let booted = t0.elapsed();
    let qga = ok!(vm, vm.guest_agent().await);
    ok!(vm, qga.sync().await);
    ok!(vm, qga.ping().await);

    let info = ok!(vm, qga.info().await);
    eprintln!("guest agent version {}", info.version);
    assert!(
        info.version
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit()),
        "{}",
        info.version
    );
    let cmd = |name: &str| info.supported_commands.iter().find(|c| c.name == name);
    assert!(cmd("guest-exec").is_some_and(|c| c.enabled && c.success_response));
    assert!(
        cmd("guest-shutdown").is_some_and(|c| !c.success_response),
        "guest-shutdown has no reply on success"
    );

    let ifaces = ok!(vm, qga.network_get_interfaces().await);
    let eth0 = ifaces
        .iter()
        .find(|i| i.name == "eth0")
        .unwrap_or_else(|| panic!("no eth0 in {ifaces:?}"));
    assert!(
        eth0.ip_addresses
            .iter()
            .flatten()
            .any(|a| a.ip_address == "10.0.2.15" && a.prefix == 24),
        "{eth0:?}"
    );
    assert_eq!(
        eth0.hardware_address.as_deref(),
        Some(ok!(vm, vm.get_mac(0)).to_string().as_str())
    );
    let os = ok!(vm, qga.get_osinfo().await);
    assert_eq!(os.id.as_deref(), Some("debian"), "{os:?}");

    // guest-exec: output decoded from base64, exit codes, stdin.
    let uname = ok!(vm, qga.exec(["uname", "-r"]).await);
    assert!(uname.success(), "{uname:?}");
    let over_ssh = ok!(vm, ssh.cmd("uname -r").await);
    assert_eq!(uname.stdout_text().trim(), over_ssh.trim());
    assert_eq!(os.kernel_release.as_deref(), Some(over_ssh.trim()));
    let failed = ok!(vm, qga.exec(["ls", "/nonexistent"]).await);
    assert_eq!(failed.exit_code, Some(2), "{failed:?}");
    assert!(failed.stderr_text().contains("No such file"), "{failed:?}");
    let code = ok!(vm, qga.exec(["sh", "-c", "exit 7"]).await);
    assert_eq!((code.exit_code, code.success()), (Some(7), false));
    let cat = ok!(
        vm,
        qga.exec_with(monitor::ExecRequest::new(["cat"]).input(&b"stdin \xff bytes"[..]))
            .await
    );
    assert_eq!(cat.stdout, b"stdin \xff bytes");

    // A file written through the agent, read back through it and over ssh.
    let path = "/tmp/kvmtest-qga.bin";
    let data: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();
    ok!(vm, qga.file_write_all(path, &data).await);
    assert_eq!(ok!(vm, qga.file_read_all(path).await), data);
    let sum = ok!(vm, ssh.cmd(&format!("wc -c < {path}")).await);
    assert_eq!(sum.trim(), "300000");
    let err = qga
        .file_read_all("/nonexistent/file")
        .await
        .expect_err("a missing file");
    assert!(
        matches!(&err, MonitorError::Agent { command, .. } if command == "guest-file-open"),
        "{err:?}"
    );
    drop(ssh);

    // fsfreeze: thawed → frozen (other commands refused while frozen) → thawed.
    assert_eq!(
        ok!(vm, qga.fsfreeze_status().await),
        GuestFsfreezeStatus::thawed
    );
    let frozen = ok!(vm, qga.fsfreeze_freeze().await);
    assert!(frozen >= 1, "froze {frozen} filesystems");
    let status = qga.fsfreeze_status().await;
    let refused = qga.file_read_all(path).await;
    let thawed = ok!(vm, qga.fsfreeze_thaw().await);
    assert_eq!(ok!(vm, status), GuestFsfreezeStatus::frozen);
    assert_eq!(thawed, frozen);
    let err = refused.expect_err("guest-file-open is disabled while frozen");
    assert!(
        matches!(&err, MonitorError::Agent { command, desc, .. } if command == "guest-file-open" && desc.contains("frozen")),
        "{err:?}"
    );
    assert_eq!(
        ok!(vm, qga.fsfreeze_status().await),
        GuestFsfreezeStatus::thawed
    );

    // The agent stopped in the guest: the socket stays open (QEMU's end), nothing answers:
    // a timeout naming the command. Started again, the next command resynchronises and the
    // reply to the abandoned ping (the agent reads it once it runs) is discarded.
    let mut ssh = ok!(
        vm,
        vm.wait_for_login(Access::Remote { nic: 0 }, Duration::from_secs(60))
            .await
    );
    ok!(vm, ssh.cmd("systemctl stop qemu-guest-agent").await);
    let short = Duration::from_secs(3);
    let err = qga
        .execute_timeout("guest-get-time", Value::Null, short)
        .await
        .expect_err("no agent runs");
    assert!(
        matches!(&err, MonitorError::AgentTimeout { command, timeout, .. } if command == "guest-get-time" && *timeout == short),
        "{err:?}"
    );
    eprintln!("stopped agent: {err}");
    ok!(vm, ssh.cmd("systemctl start qemu-guest-agent").await);
    drop(ssh);
    let time = ok!(vm, qga.get_time().await);
    assert!(time > 1_600_000_000_000_000_000, "guest time {time} ns");

    // guest-shutdown (powerdown): no reply on success, and the agent's shutdown child may be
    // killed by the very shutdown it started (an error reply although the guest goes down):
    // success is QEMU exiting.
    let mark = vm.monitor().cursor();
    let pid = vm.pid();
    let run_dir = vm.run_dir().to_path_buf();
    let log_dir = vm.log_dir().to_path_buf();
    let status = ok!(vm, vm.agent_powerdown(Duration::from_secs(120)).await);
    assert!(status.success(), "QEMU exit status {status}");
    let ev = ok!(
        vm,
        vm.monitor()
            .wait_event(
                EventFilter::new("SHUTDOWN").since(mark),
                Duration::from_secs(5)
            )
            .await
    );
    assert_eq!(ev.data["guest"], json!(true), "{:?}", ev.data);
    let err = qga.ping().await.expect_err("QEMU is gone");
    assert!(matches!(err, MonitorError::AgentGone { .. }), "{err:?}");
    let stopped = vm.destroy(Teardown::Graceful).await.expect("destroy");
    assert_eq!(stopped, StoppedBy::AlreadyExited);
    assert_no_leftovers(pid, &run_dir);

    let transcript = log_dir.join("qga-org.qemu.guest_agent.0.jsonl");
    let text = std::fs::read_to_string(&transcript)
        .unwrap_or_else(|e| panic!("{}: {e}", transcript.display()));
    for needle in [
        "\"guest-sync-delimited\"",
        "\"guest-exec-status\"",
        "\"guest-shutdown\"",
        "timed out",
    ] {
        assert!(
            text.contains(needle),
            "{needle} not in {}",
            transcript.display()
        );
    }
    eprintln!(
        "guest agent: ssh login {:.1} s after start, whole test {:.1} s",
        booted.as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
}

/// The small test guest (`support/guest.cfg`, no agent in it), not waited for: without the port
/// `Vm::guest_agent` names `gagent_name` and how to add it; with the port but no agent answering
/// (QEMU holds the sync until a guest program opens the port, which never happens) it is a
/// timeout naming the connect's sync, within `Timeouts::agent`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_agent_port_and_no_agent_running_are_named_errors() {
    let logs = logs();
    let mut vm = start(guest_params(), logs.path()).await.expect("create");
    let err = vm.guest_agent().await.expect_err("no agent port");
    let text = err.to_string();
    assert!(
        matches!(err, Error::GuestAgent { .. })
            && text.contains("no serial named `org.qemu.guest_agent.0`")
            && text.contains("serial_type_org.qemu.guest_agent.0 = virtserialport"),
        "{text}"
    );
    vm.destroy(Teardown::Kill).await.expect("destroy");

    let mut params = guest_params();
    params.insert("serials", "serial0 qga0".to_string());
    params.insert("serial_type_qga0", "virtserialport".to_string());
    params.insert("gagent_name", "qga0".to_string());
    let mut s = setup(&params, logs.path()).expect("setup");
    s.timeouts.agent = Duration::from_secs(2);
    let mut vm = Vm::start(qemu(), s, &PlanOptions::new(workspace_root()))
        .await
        .expect("create");
    let t0 = Instant::now();
    let err = vm.guest_agent().await.expect_err("nothing answers");
    let waited = t0.elapsed();
    let source = match &err {
        Error::Monitor { source, .. } => source,
        other => panic!("expected a monitor error, got {other:?}"),
    };
    assert!(
        matches!(&**source, MonitorError::AgentTimeout { command, timeout, .. }
            if command == "guest-sync-delimited (on connect)" && *timeout == Duration::from_secs(2)),
        "{source:?}"
    );
    assert!(waited < Duration::from_secs(10), "{waited:?}");
    eprintln!("no agent: {err}: {source}");
    let pid = vm.pid();
    let run_dir = vm.run_dir().to_path_buf();
    vm.destroy(Teardown::Kill).await.expect("destroy");
    assert_no_leftovers(pid, &run_dir);
}
