//! Bridged networking as avocado-vt makes it (`nettype = bridge`: kvmtest opens the tap, puts
//! it into `netdst` and hands QEMU the fd), on a private bridge kvmtest creates in a network
//! namespace of its own with dnsmasq serving DHCP (`netdst_private = yes`): the disk guest gets
//! a lease, kvmtest reads its address from the lease file and logs in over ssh inside the
//! namespace; afterwards no dnsmasq, bridge or tap is left.
//!
//! Needs root (network namespaces, taps) and dnsmasq (`cargo xtask deps` installs both tools);
//! the guest is never built here: a missing one fails naming the command that builds it.

#[macro_use]
mod support;

use std::time::Instant;

use support::{assert_no_leftovers, disk_guest_params, logs, start};
use vm::privnet::PrivateBridge;
use vm::{Access, Teardown};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_over_a_tap_on_a_private_bridge_with_dhcp_and_nothing_left() {
    let logs = logs();
    let mut p = disk_guest_params("disk_guest.cfg");
    for (k, v) in [
        ("nettype", "bridge"),
        ("netdst", "kvmtbr-test"),
        ("netdst_private", "yes"),
        ("netdst_private_subnet", "192.168.251.0/24"),
        ("redirs", ""),
    ] {
        p.insert(k, v.to_owned());
    }
    let t0 = Instant::now();
    let mut vm = start(p, logs.path()).await.expect("create");
    let bridge = vm
        .private_bridge(0)
        .cloned()
        .expect("NIC 0 is on the private bridge");
    assert_eq!(bridge.name(), "kvmtbr-test");
    let dnsmasq = bridge.dnsmasq_pid().expect("dnsmasq runs");
    assert_eq!(PrivateBridge::live(), ["kvmtbr-test"]);
    let timeout = vm.login_timeout();
    let mut ssh = ok!(
        vm,
        vm.wait_for_login(Access::Remote { nic: 0 }, timeout).await
    );
    let login = t0.elapsed();
    let addr = ok!(vm, vm.get_address(0, &Default::default()));
    assert!(addr.starts_with("192.168.251."), "leased address {addr}");
    // The guest has that address on its NIC, with the MAC kvmtest gave it.
    let shown = ok!(vm, ssh.cmd("ip -4 -br addr show eth0").await);
    assert!(shown.contains(&format!("{addr}/24")), "{shown}");
    let mac = ok!(vm, vm.get_mac(0)).to_string();
    let guest_mac = ok!(vm, ssh.cmd("cat /sys/class/net/eth0/address").await);
    assert_eq!(guest_mac.trim(), mac);
    // The lease file says the same.
    let leases = std::fs::read_to_string(bridge.lease_file()).expect("lease file");
    assert!(leases.contains(&mac) && leases.contains(&addr), "{leases}");
    // The host side of the tap is in the bridge, inside the namespace, not on the host.
    let ifname = ok!(vm, vm.get_ifname(0)).to_string();
    assert!(
        !std::path::Path::new("/sys/class/net")
            .join(&ifname)
            .exists(),
        "the tap {ifname} is in the host's namespace"
    );
    drop(ssh);

    let pid = vm.pid();
    let run_dir = vm.run_dir().to_path_buf();
    vm.destroy(Teardown::Graceful).await.expect("destroy");
    assert_no_leftovers(pid, &run_dir);
    // The test's handle is the last one: dropping it ends dnsmasq and, with the namespace's
    // last handle, the bridge and its taps.
    drop(bridge);
    assert!(
        PrivateBridge::live().is_empty(),
        "{:?}",
        PrivateBridge::live()
    );
    assert!(
        !std::path::Path::new(&format!("/proc/{dnsmasq}")).exists(),
        "dnsmasq {dnsmasq} still runs"
    );
    eprintln!(
        "tap on a private bridge: ssh login {:.1} s after start",
        login.as_secs_f64()
    );
}
