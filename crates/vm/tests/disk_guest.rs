//! The disk guest (`cargo xtask fixtures disk-guest`: Debian from its own qcow2 disk) under the VM
//! layer, configured as an avocado-vt user configures a VM (`support/disk_guest.cfg`): logins as
//! avocado-vt makes them — ssh with the password answering ssh's own prompt, ssh with a key
//! (`ssh_identity_file`), the serial console's getty — and a graceful shutdown through the
//! guest's `shutdown_command`, with nothing left behind.
//!
//! The guest is never built here: a missing one fails the test naming the command that builds it.

#[macro_use]
mod support;

use std::time::Instant;

use support::{assert_no_leftovers, disk_guest_params, logs, start};
use vm::fixtures::{require_disk_guest, DISK_SSH_KEY};
use vm::{Access, StoppedBy, Teardown};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_password_and_key_logins_serial_login_and_shutdown() {
    let logs = logs();
    let t0 = Instant::now();
    let mut vm = start(disk_guest_params("disk_guest.cfg"), logs.path())
        .await
        .expect("create");
    let timeout = vm.login_timeout();

    // ssh with avocado-vt's password: the session answers ssh's prompt on its terminal.
    let mut ssh = ok!(
        vm,
        vm.wait_for_login(Access::Remote { nic: 0 }, timeout).await
    );
    let login = t0.elapsed();
    let who = ok!(vm, ssh.cmd("id -un").await);
    assert_eq!(who.trim(), "root");
    let addr = ok!(vm, ssh.cmd("ip -4 -br addr show eth0").await);
    assert!(addr.contains("10.0.2.15"), "DHCP address on eth0: {addr}");
    let mac = ok!(vm, vm.get_mac(0)).to_string();
    let guest_mac = ok!(vm, ssh.cmd("cat /sys/class/net/eth0/address").await);
    assert_eq!(guest_mac.trim(), mac);
    let (status, out) = ok!(vm, ssh.cmd_status_output("ls /nonexistent").await);
    assert_ne!(status, 0, "ls of a missing file: {out}");
    drop(ssh);

    // A wrong password is a login failure that says so, not a hang.
    let mut wrong = vm.session_spec().clone();
    wrong.password = "not-the-password".into();
    let err = vm
        .remote_login_with(0, wrong, std::time::Duration::from_secs(60))
        .await
        .err()
        .unwrap_or_else(|| panic!("a wrong password logged in\n{}", vm.debug_report()));
    assert!(
        err.to_string().contains("Permission denied"),
        "the error shows ssh's refusal: {err}"
    );

    // ssh with the build's key (`ssh_identity_file`), no password.
    let key = require_disk_guest()
        .map(|d| d.join(DISK_SSH_KEY))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut keyed = vm.session_spec().clone();
    keyed.password = String::new();
    keyed.ssh_identity_file = Some(key);
    let mut ssh = ok!(
        vm,
        vm.remote_login_with(0, keyed, std::time::Duration::from_secs(60))
            .await
    );
    let kernel = ok!(vm, ssh.cmd("uname -r").await);
    assert!(kernel.trim().ends_with("-amd64"), "{kernel}");
    drop(ssh);

    // The serial console's getty, with the same username and password.
    let mut serial = ok!(
        vm,
        vm.wait_for_login(Access::Serial, std::time::Duration::from_secs(60))
            .await
    );
    let tty = ok!(vm, serial.cmd("tty").await);
    assert_eq!(tty.trim(), "/dev/ttyS0");
    drop(serial);

    let pid = vm.pid();
    let run_dir = vm.run_dir().to_path_buf();
    let stopped = vm.destroy(Teardown::Graceful).await.expect("destroy");
    assert_eq!(stopped, StoppedBy::GuestCommand);
    assert_no_leftovers(pid, &run_dir);
    eprintln!(
        "disk guest: ssh login {:.1} s after start, whole test {:.1} s",
        login.as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
}
