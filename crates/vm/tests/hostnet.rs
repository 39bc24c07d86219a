//! avocado-vt's host-side network types on the real QEMU and test guest: `nettype = user:passt`
//! (passt started before QEMU, ended at teardown) and `nettype = macvtap` (a macvtap link in a
//! network namespace of the test's own, its tap fd inherited by QEMU, the link deleted at
//! teardown). `vdpa` needs a vDPA device no test host has: its resolution is unit-tested.

#[macro_use]
mod support;

use std::path::Path;
use std::time::Duration;

use support::{assert_no_leftovers, guest_params, logs, process_alive, start};
use vm::{Access, Teardown};

/// The guest's one NIC as `nettype` (the user-mode NIC and its redirs of `guest.cfg` removed).
fn params_with_nettype(pairs: &[(&str, &str)]) -> params::Params {
    let mut p = guest_params();
    p.insert("nic_mode", "");
    p.insert("redirs", "");
    for (k, v) in pairs {
        p.insert(*k, *v);
    }
    p
}

/// The guest's IPv4 address lines of eth0, once its DHCP client has one (up to `wait`).
async fn guest_ipv4(s: &mut vm::Session, wait: Duration) -> String {
    let deadline = std::time::Instant::now() + wait;
    loop {
        let out = s.cmd("ip -4 addr show eth0").await.unwrap_or_default();
        if out.contains("inet ") || std::time::Instant::now() >= deadline {
            return out;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passt_serves_the_nic_and_ends_with_the_vm() {
    if !Path::new("/usr/bin/passt").exists() && which("passt").is_none() {
        panic!("passt is not installed: `cargo xtask deps` installs Debian's passt package");
    }
    let logs = logs();
    let p = params_with_nettype(&[("nettype", "user:passt"), ("net_mtu", "1500")]);
    let mut vm = start(p, logs.path()).await.expect("create");
    let passt = vm.passt_pid("nic1").expect("a passt process for nic1");
    assert!(process_alive(passt));
    let socket = vm.run_dir().join("passt-nic1.sock");
    assert!(socket.exists(), "{}", socket.display());
    let cmdline = vm.stable_cmdline().to_string();
    assert!(
        cmdline.contains("-netdev stream,id=hostnet-nic1,addr.type=unix,addr.path=@RUN_DIR@/passt-nic1.sock,server=off"),
        "{cmdline}"
    );
    let timeout = vm.login_timeout();
    let mut serial = ok!(vm, vm.wait_for_login(Access::Serial, timeout).await);
    let mac = ok!(vm, vm.get_mac(0)).to_string();
    let guest_mac = ok!(vm, serial.cmd("cat /sys/class/net/eth0/address").await);
    assert_eq!(guest_mac.trim(), mac);
    // passt's DHCP server leased the guest an address, with the MTU of `net_mtu`.
    let addr = guest_ipv4(&mut serial, Duration::from_secs(30)).await;
    assert!(
        addr.contains("inet "),
        "no address from passt's DHCP: {addr}"
    );
    let mtu = ok!(vm, serial.cmd("cat /sys/class/net/eth0/mtu").await);
    assert_eq!(mtu.trim(), "1500");
    eprintln!("guest address from passt: {}", addr.trim());
    drop(serial);

    let pid = vm.pid();
    let run_dir = vm.run_dir().to_path_buf();
    let log_dir = vm.log_dir().to_path_buf();
    vm.destroy(Teardown::Graceful).await.expect("destroy");
    assert_no_leftovers(pid, &run_dir);
    assert!(!process_alive(passt), "passt pid {passt} still runs");
    let vm_log = std::fs::read_to_string(log_dir.join("vm.log")).unwrap_or_default();
    assert!(vm_log.contains("teardown: passt of NIC nic1"), "{vm_log}");
}

/// Live processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(needle))
        })
        .filter(|pid| process_alive(*pid))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passt_ends_when_qemu_fails_to_start() {
    let logs = logs();
    let mut p = params_with_nettype(&[("nettype", "user:passt")]);
    // QEMU refuses the option and exits after passt was started.
    p.insert("extra_params", "-kvmtest-no-such-option");
    let err = start(p, logs.path())
        .await
        .expect_err("QEMU with an unknown option");
    eprintln!("expected failure: {err}");
    let needle = logs.path().to_string_lossy().into_owned();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut left = processes_mentioning(&needle);
    while !left.is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        left = processes_mentioning(&needle);
    }
    assert!(left.is_empty(), "passt left running: pids {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_passt_binary_is_named() {
    let logs = logs();
    let p = params_with_nettype(&[
        ("nettype", "user:passt"),
        ("passt_binary", "/nonexistent/passt"),
    ]);
    let err = start(p, logs.path())
        .await
        .expect_err("a VM without its passt started");
    let msg = err.to_string();
    assert!(
        msg.contains("`passt_binary` = \"/nonexistent/passt\"") && msg.contains("nic1"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_vdpa_device_names_netdst() {
    let logs = logs();
    let p = params_with_nettype(&[("nettype", "vdpa"), ("netdst", "kvmtest-no-vdpa0")]);
    let err = start(p, logs.path())
        .await
        .expect_err("a VM on a vDPA device that does not exist");
    let msg = err.to_string();
    assert!(
        msg.contains("`netdst` = \"kvmtest-no-vdpa0\"") && msg.contains("no vhost-vdpa device"),
        "{msg}"
    );
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// Set in the re-executed test process that runs inside its own network namespace.
const IN_NETNS: &str = "KVMTEST_TEST_IN_NETNS";

/// Runs `ip ARGS` (inside the test's namespace), panicking with its stderr.
fn ip(args: &[&str]) -> String {
    #[allow(clippy::disallowed_methods)]
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .expect("running ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A macvtap NIC for real: the test re-runs itself under `unshare --net` (a network namespace
/// that dies with that process, so nothing can leak), makes a veth pair there as `netdst`, and
/// boots the guest on a macvtap of it. Needs root and `/dev/net/tun`; otherwise it says why it
/// did not run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn macvtap_nic_in_a_private_network_namespace() {
    if std::env::var_os(IN_NETNS).is_none() {
        let why = if !rustix::process::geteuid().is_root() {
            Some("not root (creating a network namespace and a macvtap needs CAP_NET_ADMIN)")
        } else if !Path::new("/dev/net/tun").exists() {
            Some("no /dev/net/tun")
        } else if which("unshare").is_none() || which("ip").is_none() {
            Some("no unshare (util-linux) or ip (iproute2)")
        } else {
            None
        };
        if let Some(why) = why {
            eprintln!("SKIPPED macvtap_nic_in_a_private_network_namespace: {why}");
            return;
        }
        let exe = std::env::current_exe().expect("the test binary");
        #[allow(clippy::disallowed_methods)]
        let out = std::process::Command::new("unshare")
            .arg("--net")
            .arg("--")
            .arg(&exe)
            .args([
                "macvtap_nic_in_a_private_network_namespace",
                "--exact",
                "--nocapture",
            ])
            .env(IN_NETNS, "1")
            .output()
            .expect("running the test in a network namespace");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("{text}");
        assert!(out.status.success(), "in the namespace: {}", out.status);
        assert!(
            text.contains("1 passed"),
            "the namespaced run passed nothing"
        );
        return;
    }
    // Inside the namespace: a veth pair as `netdst`.
    ip(&[
        "link", "add", "kt-lower", "type", "veth", "peer", "name", "kt-peer",
    ]);
    ip(&["link", "set", "kt-lower", "up"]);
    ip(&["link", "set", "kt-peer", "up"]);
    let logs = logs();
    let p = params_with_nettype(&[
        ("nettype", "macvtap"),
        ("netdst", "kt-lower"),
        ("macvtap_mode", "bridge"),
    ]);
    let mut vm = start(p, logs.path()).await.expect("create");
    let ifname = ok!(vm, vm.get_ifname(0)).to_string();
    let mac = ok!(vm, vm.get_mac(0)).to_string();
    let link = ip(&["-d", "link", "show", "dev", &ifname]);
    assert!(
        link.contains("macvtap mode bridge") && link.contains(&mac),
        "{link}"
    );
    let index: String = link.chars().take_while(char::is_ascii_digit).collect();
    // QEMU holds the tap the argv names.
    let fds = std::fs::read_dir(format!("/proc/{}/fd", vm.pid())).expect("QEMU's fds");
    let tap = format!("/dev/tap{index}");
    assert!(
        fds.flatten()
            .any(|e| std::fs::read_link(e.path()).is_ok_and(|t| t == Path::new(&tap))),
        "QEMU does not hold {tap}"
    );
    let timeout = vm.login_timeout();
    let mut serial = ok!(vm, vm.wait_for_login(Access::Serial, timeout).await);
    let guest_mac = ok!(vm, serial.cmd("cat /sys/class/net/eth0/address").await);
    assert_eq!(guest_mac.trim(), mac);
    let carrier = ok!(vm, serial.cmd("cat /sys/class/net/eth0/carrier").await);
    eprintln!(
        "macvtap {ifname} ({tap}) on kt-lower; guest eth0 carrier {}",
        carrier.trim()
    );
    drop(serial);
    let pid = vm.pid();
    let run_dir = vm.run_dir().to_path_buf();
    vm.destroy(Teardown::Kill).await.expect("destroy");
    assert_no_leftovers(pid, &run_dir);
    let links = ip(&["-o", "link", "show"]);
    assert!(!links.contains(&ifname), "{ifname} left behind: {links}");

    // A start that fails after one macvtap was made (the second NIC's `netdst` does not
    // exist): an error naming it, and no link left behind.
    let p = params_with_nettype(&[
        ("nics", "nic1 nic2"),
        ("nettype", "macvtap"),
        ("netdst", "kt-lower"),
        ("netdst_nic2", "kt-none"),
    ]);
    let err = start(p, logs.path())
        .await
        .expect_err("a macvtap on a missing device");
    let msg = err.to_string();
    assert!(msg.contains("nic2") && msg.contains("\"kt-none\""), "{msg}");
    let links = ip(&["-d", "-o", "link", "show"]);
    assert!(!links.contains("macvtap"), "a macvtap left behind: {links}");
}
