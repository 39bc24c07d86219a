//! Devices with a host side on the real QEMU and test guest: an emulated TPM (swtpm set up and
//! started before QEMU, `query-tpm` over QMP, swtpm gone after teardown), a virtio-fs export
//! (virtiofsd beside QEMU on the guest's shared memory, gone after teardown; the C virtiofsd
//! of QEMU 7.2's package runs as root only, so the test names that when it is not root), and a
//! host device the host does not have (a host-feature error naming the key, nothing started).
//! Run on each QEMU of the matrix (`KVMTEST_QEMU`).

mod support;

use std::time::Duration;

use serde_json::json;
use support::{assert_no_leftovers, guest_params, logs, process_alive, start};
use vm::{Error, Teardown};

/// The guest with `pairs` added.
fn params_with(pairs: &[(&str, &str)]) -> params::Params {
    let mut p = guest_params();
    for (k, v) in pairs {
        p.insert(*k, *v);
    }
    p
}

/// Live processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let me = std::process::id();
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(needle))
        })
        .filter(|pid| process_alive(*pid))
        .collect()
}

/// Waits up to 5 s for no live process to mention `needle`; the ones left.
async fn none_left(needle: &str) -> Vec<u32> {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut left = processes_mentioning(needle);
    while !left.is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        left = processes_mentioning(needle);
    }
    left
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emulated_tpm_answers_query_tpm_and_swtpm_ends_with_the_vm() {
    let logs = logs();
    let p = params_with(&[
        ("tpms", "tpm0"),
        ("tpm_type", "emulator"),
        ("tpm_model", "tpm-crb"),
        ("tpm_version", "2.0"),
    ]);
    let vm = match start(p, logs.path()).await {
        Ok(vm) => vm,
        Err(e @ Error::HostFeature { .. }) => {
            panic!("{e} (`cargo xtask deps` installs swtpm and swtpm-tools)")
        }
        Err(e) => panic!("{e}"),
    };
    let swtpm: Vec<u32> = vm
        .daemon_pids()
        .into_iter()
        .filter(|(what, _)| what.starts_with("swtpm"))
        .map(|(_, pid)| pid)
        .collect();
    assert_eq!(swtpm.len(), 1, "{:?}", vm.daemon_pids());
    assert!(process_alive(swtpm[0]));
    assert!(vm.run_dir().join("swtpm-tpm0.sock").exists());
    let reply = vm
        .monitor()
        .execute("query-tpm", json!({}))
        .await
        .unwrap_or_else(|e| panic!("query-tpm: {e}\n{}", vm.debug_report()));
    let tpms = reply.as_array().cloned().unwrap_or_default();
    assert_eq!(tpms.len(), 1, "{reply}");
    assert_eq!(tpms[0]["model"], "tpm-crb", "{reply}");
    assert_eq!(tpms[0]["options"]["type"], "emulator", "{reply}");
    assert_eq!(
        tpms[0]["options"]["data"]["chardev"], "char_vtpm_vm1_tpm0",
        "{reply}"
    );
    let pid = vm.pid();
    let run_dir = vm.run_dir().to_path_buf();
    let log_dir = vm.log_dir().to_path_buf();
    vm.destroy(Teardown::Graceful).await.expect("destroy");
    assert_no_leftovers(pid, &run_dir);
    assert!(
        !process_alive(swtpm[0]),
        "swtpm pid {} still runs",
        swtpm[0]
    );
    let vm_log = std::fs::read_to_string(log_dir.join("vm.log")).unwrap_or_default();
    assert!(vm_log.contains("teardown: swtpm of TPM tpm0"), "{vm_log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swtpm_ends_when_qemu_fails_to_start() {
    let logs = logs();
    let p = params_with(&[
        ("tpms", "tpm0"),
        ("tpm_type", "emulator"),
        ("tpm_model", "tpm-crb"),
        ("tpm_version", "2.0"),
        ("extra_params", "-kvmtest-no-such-option"),
    ]);
    let err = start(p, logs.path())
        .await
        .expect_err("QEMU with an unknown option");
    eprintln!("expected failure: {err}");
    let left = none_left(&logs.path().to_string_lossy()).await;
    assert!(left.is_empty(), "swtpm left running: pids {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_swtpm_is_a_host_feature_naming_tpms() {
    let logs = logs();
    let p = params_with(&[
        ("tpms", "tpm0"),
        ("tpm_type", "emulator"),
        ("tpm_model", "tpm-crb"),
        ("tpm_bin", "/nonexistent/swtpm"),
    ]);
    let err = start(p, logs.path()).await.expect_err("no swtpm");
    let Error::HostFeature { feature, .. } = &err else {
        panic!("not a host feature: {err}");
    };
    assert_eq!(
        (feature.key.as_str(), feature.value.as_str()),
        ("tpms", "tpm0")
    );
    assert!(err.to_string().contains("/nonexistent/swtpm"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_host_pci_device_is_a_host_feature() {
    let logs = logs();
    let p = params_with(&[
        ("vm_hostdevs", "hostdev1"),
        ("vm_hostdev_driver", "vfio-pci"),
        ("vm_hostdev_host", "0000:ff:1f.7"),
    ]);
    let err = start(p, logs.path())
        .await
        .expect_err("no such host device");
    let Error::HostFeature { feature, .. } = &err else {
        panic!("not a host feature: {err}");
    };
    assert_eq!(
        (feature.key.as_str(), feature.value.as_str()),
        ("vm_hostdev_host", "0000:ff:1f.7")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtiofsd_serves_the_export_and_ends_with_the_vm() {
    let logs = logs();
    let share = tempfile::tempdir().expect("a directory to export");
    std::fs::write(share.path().join("hello"), "from the host\n").expect("a file");
    let p = params_with(&[
        ("filesystems", "fs"),
        ("fs_driver", "virtio-fs"),
        ("fs_target", "myfs"),
        ("fs_source_dir", &share.path().to_string_lossy()),
        ("vm_mem_backend", "memory-backend-memfd"),
        ("vm_mem_share", "yes"),
    ]);
    let root = rustix::process::geteuid().is_root();
    let vm = match start(p, logs.path()).await {
        Ok(vm) => vm,
        Err(e @ Error::HostFeature { .. }) => panic!("{e}"),
        Err(e) if !root => {
            // The C virtiofsd sets up namespaces and cannot run unprivileged: named, as the
            // error the user would see.
            eprintln!("virtiofsd cannot run without root here: {e}");
            assert!(matches!(e, Error::Daemon { .. }), "{e}");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    let fsd: Vec<u32> = vm
        .daemon_pids()
        .into_iter()
        .filter(|(what, _)| what.starts_with("virtiofsd"))
        .map(|(_, pid)| pid)
        .collect();
    assert_eq!(fsd.len(), 1, "{:?}", vm.daemon_pids());
    let reply = vm
        .monitor()
        .execute(
            "qom-get",
            json!({"path": "vufs_virtiofs_fs", "property": "tag"}),
        )
        .await
        .unwrap_or_else(|e| panic!("qom-get: {e}\n{}", vm.debug_report()));
    assert_eq!(reply, "myfs");
    let pid = vm.pid();
    let run_dir = vm.run_dir().to_path_buf();
    vm.destroy(Teardown::Graceful).await.expect("destroy");
    assert_no_leftovers(pid, &run_dir);
    let left = none_left(&logs.path().to_string_lossy()).await;
    assert!(left.is_empty(), "daemons left running: pids {left:?}");
    assert!(
        !process_alive(fsd[0]),
        "virtiofsd pid {} still runs",
        fsd[0]
    );
}
