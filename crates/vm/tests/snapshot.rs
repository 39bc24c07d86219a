//! Saved states (`Vm::save_state`, `Vm::restore`) on the disk guest with its guest agent
//! (`support/disk_guest_agent.cfg`, its disk an overlay of the built image): a booted guest is
//! saved and runs on; restored twice, each restored VM sees the disk as it was at the save (not
//! the writes made after it, nor those of the other restore), the same MAC and SMBIOS UUID, and
//! a clock set to the host's; a VM whose disk cannot be copied is refused naming the image.
//!
//! The guest is never built here: a missing one fails the test naming the command that builds it.
#![allow(clippy::disallowed_methods)] // the test makes its overlay with qemu-img

#[macro_use]
mod support;

use std::process::Command;
use std::time::{Instant, SystemTime};

use support::{assert_no_leftovers, disk_guest_params, logs, qemu, setup, start, workspace_root};
use vm::fixtures::{require_disk_guest, DISK_IMAGE};
use vm::{Access, Error, PlanOptions, Teardown, Vm};

/// The guest's answer to `cmd` over a fresh ssh login.
async fn guest(vm: &mut Vm, cmd: &str) -> String {
    let timeout = vm.login_timeout();
    let mut ssh = ok!(
        vm,
        vm.wait_for_login(Access::Remote { nic: 0 }, timeout).await
    );
    let out = ok!(vm, ssh.cmd(cmd).await);
    out.trim().to_string()
}

fn host_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_state_restores_the_guest_as_it_was_with_its_identity_and_a_current_clock() {
    let logs = logs();
    let base = require_disk_guest()
        .map(|d| d.join(DISK_IMAGE))
        .unwrap_or_else(|e| panic!("{e}"));
    let overlay = logs.path().join("overlay.qcow2");
    let made = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
        .arg(&base)
        .arg(&overlay)
        .status()
        .expect("running qemu-img");
    assert!(made.success(), "qemu-img create: {made}");
    let mut params = disk_guest_params("disk_guest_agent.cfg");
    params.insert("image_snapshot", "no");
    params.insert("uuid", "random");
    params.insert(
        "image_name",
        overlay.with_extension("").to_string_lossy().into_owned(),
    );

    let t0 = Instant::now();
    let mut vm = start(params.clone(), logs.path()).await.expect("create");
    assert_eq!(
        guest(&mut vm, "echo saved > /root/marker && sync && echo ok").await,
        "ok"
    );
    let booted = t0.elapsed();
    let mac = ok!(vm, vm.get_mac(0)).to_string();
    let uuid = guest(&mut vm, "cat /sys/class/dmi/id/product_uuid").await;

    let states = tempfile::tempdir().expect("tempdir");
    let t1 = Instant::now();
    let saved = ok!(vm, vm.save_state(&states.path().join("s1")).await);
    let save_time = t1.elapsed();
    assert!(saved.bytes() > 0);
    // The guest runs on after the save; what it writes now belongs to it only.
    assert_eq!(
        guest(
            &mut vm,
            "echo later > /root/later && sync && cat /root/marker"
        )
        .await,
        "saved"
    );
    let pid = vm.pid();
    let run_dir = vm.run_dir().to_path_buf();
    vm.destroy(Teardown::Kill).await.expect("destroy");
    assert_no_leftovers(pid, &run_dir);

    let root = PlanOptions::new(workspace_root());
    for round in 1..=2 {
        let t2 = Instant::now();
        let mut r = Vm::restore(
            qemu(),
            setup(&params, logs.path()).expect("setup"),
            &root,
            &saved,
        )
        .await
        .unwrap_or_else(|e| panic!("restore {round}: {e}"));
        let restored = t2.elapsed();
        let seen = guest(
            &mut r,
            "cat /root/marker; ls /root/later /root/mine 2>&1 | wc -l; \
             cat /sys/class/net/eth0/address; cat /sys/class/dmi/id/product_uuid; date +%s",
        )
        .await;
        let lines: Vec<&str> = seen.lines().map(str::trim).collect();
        assert_eq!(lines.len(), 5, "restore {round}: {seen}");
        assert_eq!(lines[0], "saved", "restore {round}: the disk at the save");
        // Two lines of `ls` errors: neither the source's later file nor the other restore's.
        assert_eq!(
            lines[1], "2",
            "restore {round}: files written after the save: {seen}"
        );
        assert_eq!(lines[2], mac, "restore {round}: the guest's MAC");
        assert_eq!(ok!(r, r.get_mac(0)).to_string(), mac, "the VM's MAC");
        assert_eq!(lines[3], uuid, "restore {round}: SMBIOS UUID");
        let skew = lines[4].parse::<i64>().expect("date +%s") - host_now();
        assert!(
            skew.abs() <= 10,
            "restore {round}: guest clock off by {skew} s"
        );
        assert_eq!(
            guest(&mut r, "echo mine > /root/mine && sync && echo ok").await,
            "ok"
        );
        eprintln!(
            "restore {round}: {:.1} s to a running guest (booting took {:.1} s to the first \
             login; the save {:.1} s)",
            restored.as_secs_f64(),
            booted.as_secs_f64(),
            save_time.as_secs_f64()
        );
        let pid = r.pid();
        let run_dir = r.run_dir().to_path_buf();
        r.destroy(Teardown::Kill).await.expect("destroy");
        assert_no_leftovers(pid, &run_dir);
    }
    let dir = states.path().join("s1");
    assert!(dir.is_dir());
    drop(saved);
    assert!(!dir.exists(), "a dropped state removes its files");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_whose_disk_is_a_temporary_snapshot_is_not_saved() {
    let logs = logs();
    // `image_snapshot = yes` (the cfg's): the guest's writes go to a file QEMU deletes.
    let mut vm = start(disk_guest_params("disk_guest_agent.cfg"), logs.path())
        .await
        .expect("create");
    let states = tempfile::tempdir().expect("tempdir");
    let err = vm
        .save_state(&states.path().join("s"))
        .await
        .err()
        .unwrap_or_else(|| panic!("a VM on a temporary snapshot was saved"));
    assert!(
        matches!(&err, Error::Snapshot { why, .. } if why.contains("image image1") && why.contains("image_snapshot")),
        "{err}"
    );
    assert!(!states.path().join("s").exists(), "nothing left: {err}");
    // Refused before anything was done: the VM was never paused.
    assert_eq!(ok!(vm, vm.status().await), "running");
    vm.destroy(Teardown::Kill).await.expect("destroy");
}
