//! `nic_hotplug`, as tp-qemu's `nic_hotplug.py` runs it, on the serial console (the test takes
//! the guest's network away).
//!
//! `repeat_times` rounds of: for each of `nic_hotplug_count` NICs `hotplug_nic1`,
//! `hotplug_nic2`… (object params: `pci_model`, and the NIC keys — `nettype`, `netdst`,
//! `netdst_private`, `queues`, `vhost`, `nic_mac`, `netdev_extra_params`, `nic_extra_params` —
//! read by the spec layer as for a NIC of `nics`):
//! 1. the other NICs (the VM's own and those plugged before) lose their address in the guest
//!    (`ip addr flush`; tp-qemu's `ifconfig IF 0.0.0.0`) and their link (`set_link` down), so
//!    only the new NIC can carry traffic;
//! 2. the NIC is hot-plugged (a bridged one on a tap kvmtest opens in `netdst` and hands QEMU
//!    over QMP);
//! 3. the guest must show an interface with its MAC (of the model plugged: its PCI id, for
//!    the models kvmtest knows) and an IPv4 address on it within
//!    `nic_hotplug_timeout`; when it has none, tp-qemu's renewal runs (`make_change`'s ifcfg file
//!    or nmcli profile, `ip link set dev IF up`, `dhcp_cmd` with `%s` = the interface) and the
//!    wait starts again; when there is still none, the guest is rebooted and waited for once
//!    more;
//! 4. reachability: on a private bridge (`netdst_private = yes`) the host pings the address
//!    dnsmasq leased to the NIC, which must be the guest's; with user networking the host has no
//!    route to the guest, so the DHCP lease over the new NIC (frames both ways) and its received
//!    packets are the proof;
//! 5. `stop`/`cont` (the status must be `paused`, then `running`) and the reachability check
//!    again;
//! 6. with `do_random_unhotplug`, one plugged NIC, drawn at random, may be unplugged and the
//!    guest rebooted.
//!
//! Then the VM's own links come back up, `sub_type_after_plug` runs (a VM it shut down ends the
//! test), every plugged NIC is unplugged (QEMU must confirm it, and the guest must lose the
//! interface), and `sub_type_after_unplug` runs. With `used_sameid = yes` the plug instead
//! reuses the first NIC's netdev and must be refused with `devadd_match_string` in QEMU's
//! error. The VM is not reused by a later test: its own NICs lost their addresses.

use std::time::Duration;

use spec::NicSpec;

use super::common::{
    cancellable, expect_status, fail_env, guest_output, guest_status_output, linux_only, main_vm,
    nic_driver, poll_guest, qmp_cmd, random_below, require_device_types, sub_test, sub_types,
    vm_alive,
};
use super::NIC_HOTPLUG;
use crate::catalogue::session::login_timeout;
use crate::env::{GuestVm, Hotplugged, LoginVia, NicIds, RebootMethod};
use crate::future::BoxFuture;
use crate::registry::{read_params, TestContext};
use crate::shell::RemoteShell;
use crate::verdict::{TestError, TestResult};

/// `NAME MAC` per guest interface (kept short: a serial console wraps long command lines).
pub(super) const LIST_NICS: &str =
    "(cd /sys/class/net; for i in *; do echo $i $(cat $i/address); done)";

/// The guest interface that has `mac`, from `name mac` lines.
pub(super) fn interface_with_mac(listing: &str, mac: &str) -> Option<String> {
    listing.lines().find_map(|l| {
        let (name, addr) = l.trim().split_once(' ')?;
        addr.trim()
            .eq_ignore_ascii_case(mac)
            .then(|| name.to_owned())
    })
}

/// The first IPv4 address of `ip -4 -o addr show` output.
fn ipv4_of(output: &str) -> Option<String> {
    output.lines().find_map(|l| {
        let mut words = l.split_whitespace();
        words.find(|w| *w == "inet")?;
        let addr = words.next()?;
        Some(addr.split('/').next().unwrap_or(addr).to_owned())
    })
}

/// Keys tp-qemu's nic_hotplug runs sub-tests under.
const SUB_TYPE_KEYS: [&str; 2] = ["sub_type_after_plug", "sub_type_after_unplug"];

/// The params of one run.
struct NicParams {
    count: u64,
    repeat_times: u64,
    timeout: Duration,
    used_sameid: bool,
    devadd_match: Option<String>,
    dhcp_cmd: Option<String>,
    make_change: bool,
    modprobe: Option<String>,
    random_unplug: bool,
    sub_types: [Option<String>; 2],
}

impl NicParams {
    fn read(ctx: &TestContext) -> Result<NicParams, TestError> {
        let mut k = ctx.keys(&NIC_HOTPLUG);
        let count = k.u64("nic_hotplug_count");
        let repeat_times = k.u64("repeat_times");
        let timeout = k.secs("nic_hotplug_timeout");
        let used_sameid = k.bool("used_sameid");
        let devadd_match = k.opt("devadd_match_string");
        if used_sameid && devadd_match.is_none() {
            k.problem(
                "devadd_match_string",
                spec::ProblemKind::Invalid {
                    expected: "the text QEMU's refusal must contain (tp-qemu: \"it's in use\"), \
                               as `used_sameid = yes` asks for a refused plug"
                        .into(),
                },
            );
        }
        let dhcp_cmd = k.opt("dhcp_cmd");
        let make_change = k.bool("make_change");
        let modprobe = k.opt("modprobe_module");
        let random_unplug = k.bool("do_random_unhotplug");
        let sub_types = sub_types(&mut k, SUB_TYPE_KEYS, NIC_HOTPLUG.name);
        linux_only(
            &mut k,
            "the Windows network restart of tp-qemu is not supported",
        );
        let (count, repeat_times, timeout) = read_params(k, (count, repeat_times, timeout))?;
        Ok(NicParams {
            count: NIC_HOTPLUG.declared(count, "nic_hotplug_count")?,
            repeat_times: NIC_HOTPLUG.declared(repeat_times, "repeat_times")?,
            timeout: NIC_HOTPLUG.declared(timeout, "nic_hotplug_timeout")?,
            used_sameid,
            devadd_match,
            dhcp_cmd,
            make_change,
            modprobe,
            random_unplug,
            sub_types,
        })
    }
}

/// NIC object `name`: its spec (the spec layer's reading of the NIC keys) and its driver
/// (`pci_model`, whose `virtio` is `virtio-net-pci`).
fn hot_nic_spec(
    ctx: &TestContext,
    vm: &str,
    name: &str,
    index: usize,
) -> Result<(NicSpec, String), TestError> {
    let op = ctx.params.object_params(name);
    let Some(model) = op.get("pci_model") else {
        return Err(TestError::error(format!(
            "`pci_model` (or `pci_model_{name}`) is not set: the model of the NIC {name} to plug"
        )));
    };
    let driver = nic_driver(model).to_owned();
    let spec = NicSpec::of(&ctx.params, vm, name, index)
        .map_err(|e| TestError::error(crate::error::error_chain(&e)))?;
    Ok((spec, driver))
}

/// One NIC of the guest, by MAC.
struct GuestNic {
    /// The QEMU device id (`set_link`).
    device_id: String,
    mac: String,
}

/// The test's view of the guest: its VM and a serial shell.
struct Guest {
    vm: std::sync::Arc<dyn GuestVm>,
    /// `None` while a reboot or sub-test has the serial console.
    session: Option<Box<dyn RemoteShell>>,
}

impl Guest {
    async fn login(ctx: &TestContext) -> Result<Guest, TestError> {
        let vm = main_vm(ctx)?;
        let shell = super::common::login(ctx, &vm, LoginVia::Serial).await?;
        Ok(Guest {
            vm,
            session: Some(shell),
        })
    }

    /// The serial session.
    fn shell(&mut self) -> Result<&mut Box<dyn RemoteShell>, TestError> {
        self.session
            .as_mut()
            .ok_or_else(|| TestError::error("no guest session (a reboot failed to log in)"))
    }

    /// The guest's interface with `mac`, waited for up to `timeout`.
    async fn ifname(
        &mut self,
        ctx: &TestContext,
        mac: &str,
        timeout: Duration,
    ) -> Result<Option<String>, TestError> {
        let (listing, seen) = poll_guest(
            ctx,
            self.shell()?,
            LIST_NICS,
            timeout,
            Duration::from_millis(500),
            |o| interface_with_mac(o, mac).is_some(),
        )
        .await?;
        Ok(seen.then(|| interface_with_mac(&listing, mac)).flatten())
    }

    /// Reboots from the guest's shell and logs in again on the serial console (which this
    /// session holds: it is closed first).
    async fn reboot(&mut self, ctx: &TestContext, why: &str) -> TestResult {
        self.session = None;
        let timeout = login_timeout(ctx)?;
        let vm = self.vm.clone();
        let shell = cancellable(ctx, async {
            vm.reboot(RebootMethod::Shell, timeout)
                .await
                .map_err(|e| fail_env(&format!("rebooting {why}"), &e))
        })
        .await?;
        self.session = Some(shell);
        Ok(())
    }

    /// Runs `cmd`, logging a failure but not failing (tp-qemu's `cmd_output_safe`).
    async fn run_safe(&mut self, ctx: &TestContext, cmd: &str) -> Result<(), TestError> {
        // tp-qemu gives a lease renewal 240 s.
        let (status, out) =
            guest_status_output(ctx, self.shell()?, cmd, Duration::from_secs(240)).await?;
        if status != 0 {
            ctx.log.info(format_args!(
                "`{cmd}` exited {status} (ignored): {:?}",
                out.trim_end()
            ));
        }
        Ok(())
    }
}

/// Takes the address and the link of each NIC of `nics` away (step 1).
async fn disable_links(ctx: &TestContext, g: &mut Guest, nics: &[GuestNic]) -> TestResult {
    for nic in nics {
        if let Some(ifname) = g.ifname(ctx, &nic.mac, Duration::ZERO).await? {
            g.run_safe(ctx, &format!("ip addr flush dev {ifname}"))
                .await?;
        } else {
            ctx.log.info(format_args!(
                "no guest interface has {} (its address cannot be flushed)",
                nic.mac
            ));
        }
        let vm = g.vm.clone();
        cancellable(ctx, async {
            vm.set_link(&nic.device_id, false)
                .await
                .map_err(|e| fail_env(&format!("set_link {} down", nic.device_id), &e))
        })
        .await?;
    }
    Ok(())
}

/// tp-qemu's `renew_ip_address` for a Linux guest.
async fn renew(ctx: &TestContext, g: &mut Guest, p: &NicParams, ifname: &str) -> TestResult {
    let make_conf = if p.make_change {
        let cfg = format!("/etc/sysconfig/network-scripts/ifcfg-{ifname}");
        format!(
            "test -f {cfg} || printf 'DEVICE={ifname}\\nBOOTPROTO=dhcp\\nONBOOT=yes\\n' > {cfg}"
        )
    } else {
        format!(
            "nmcli connection add type ethernet con-name {ifname} ifname {ifname} autoconnect yes"
        )
    };
    g.run_safe(ctx, &make_conf).await?;
    g.run_safe(ctx, &format!("ip link set dev {ifname} up"))
        .await?;
    if let Some(dhcp) = &p.dhcp_cmd {
        g.run_safe(ctx, &dhcp.replace("%s", ifname)).await?;
    }
    g.run_safe(ctx, &format!("ip neigh flush dev {ifname}"))
        .await
}

/// The guest's IPv4 address on the NIC with `mac` (and, on a private bridge, the address
/// dnsmasq leased to it, which must be the same), within `timeout`: `None` when it has none.
async fn wait_address(
    ctx: &TestContext,
    g: &mut Guest,
    nic: &Hotplugged,
    mac: &str,
    timeout: Duration,
) -> Result<Option<String>, TestError> {
    let Some(ifname) = g.ifname(ctx, mac, timeout).await? else {
        return Ok(None);
    };
    let cmd = format!("ip -4 -o addr show dev {ifname}");
    let (out, got) = poll_guest(
        ctx,
        g.shell()?,
        &cmd,
        timeout,
        Duration::from_millis(500),
        |o| ipv4_of(o).is_some(),
    )
    .await?;
    if !got {
        return Ok(None);
    }
    let ip = ipv4_of(&out).unwrap_or_default();
    let vm = g.vm.clone();
    let lease = cancellable(ctx, async {
        vm.hot_nic_lease(nic).await.map_err(TestError::from)
    })
    .await?;
    if let Some(leased) = lease {
        if leased != ip {
            return Err(TestError::fail(format!(
                "{ifname} ({mac}) has {ip} in the guest, but the bridge's DHCP server leased \
                 {leased} to its MAC"
            )));
        }
    }
    Ok(Some(ip))
}

/// The interface is the model plugged: its PCI function's `vendor:device` is the driver's id
/// (for the models whose id kvmtest knows).
async fn check_model(
    ctx: &TestContext,
    g: &mut Guest,
    ifname: &str,
    nic: &Hotplugged,
) -> TestResult {
    let Some(id) = super::common::nic_pci_id(&nic.driver) else {
        return Ok(());
    };
    // A virtio NIC's `device` is the virtio device; its parent, which has a `class`, is the
    // PCI function. Short: a serial console wraps long lines.
    let cmd = format!(
        "(cd -P /sys/class/net/{ifname}/device; [ -e class ] || cd -P ..; cat vendor device)"
    );
    let out = guest_output(ctx, g.shell()?, &cmd).await?;
    let seen = out
        .split_whitespace()
        .map(|w| w.trim_start_matches("0x"))
        .collect::<Vec<_>>()
        .join(":");
    if seen != id {
        return Err(TestError::fail(format!(
            "{ifname} should be the hot-plugged {} ({id}); the guest reports {seen:?}",
            nic.driver
        )));
    }
    Ok(())
}

/// Steps 3's address, with tp-qemu's renewal and reboot when there is none.
async fn address_of(
    ctx: &TestContext,
    g: &mut Guest,
    p: &NicParams,
    nic: &Hotplugged,
) -> Result<String, TestError> {
    let mac = nic.mac.clone().unwrap_or_default();
    if let Some(ifname) = g.ifname(ctx, &mac, p.timeout).await? {
        check_model(ctx, g, &ifname, nic).await?;
    }
    if let Some(ip) = wait_address(ctx, g, nic, &mac, p.timeout).await? {
        return Ok(ip);
    }
    let Some(ifname) = g.ifname(ctx, &mac, Duration::ZERO).await? else {
        let listing = guest_output(ctx, g.shell()?, LIST_NICS).await?;
        return Err(TestError::fail(format!(
            "expected a guest interface with the hot-plugged {}'s MAC {mac} within {} s; the \
             guest lists {:?}",
            nic.driver,
            p.timeout.as_secs(),
            listing.trim_end()
        )));
    };
    ctx.log.info(format_args!(
        "{ifname} has no IPv4 address after {} s: renewing it",
        p.timeout.as_secs()
    ));
    renew(ctx, g, p, &ifname).await?;
    if let Some(ip) = wait_address(ctx, g, nic, &mac, p.timeout).await? {
        return Ok(ip);
    }
    ctx.log.info(format_args!(
        "{ifname} still has no address: rebooting the guest (tp-qemu does)"
    ));
    g.reboot(ctx, "after the hotplug").await?;
    if let Some(ip) = wait_address(ctx, g, nic, &mac, p.timeout).await? {
        return Ok(ip);
    }
    let shown = guest_output(ctx, g.shell()?, "ip -4 -o addr show").await?;
    Err(TestError::fail(format!(
        "the hot-plugged {} ({mac}) got no IPv4 address, even after renewal and a reboot; the \
         guest's addresses: {:?}",
        nic.driver,
        shown.trim_end()
    )))
}

/// Step 4: the new NIC carries traffic.
async fn check_reachable(
    ctx: &TestContext,
    g: &mut Guest,
    nic: &Hotplugged,
    ip: &str,
    when: &str,
) -> TestResult {
    let vm = g.vm.clone();
    let lease = cancellable(ctx, async {
        vm.hot_nic_lease(nic).await.map_err(TestError::from)
    })
    .await?;
    if lease.is_some() {
        let (ok, out) = cancellable(ctx, async {
            vm.ping_from_host(nic, ip, 10)
                .await
                .map_err(TestError::from)
        })
        .await?;
        if !ok {
            return Err(TestError::fail(format!(
                "the hot-plugged {} failed the ping from the host{when}: {}",
                nic.driver,
                out.trim_end()
            )));
        }
        ctx.log.info(format_args!(
            "the host pinged {ip} through {}{when}",
            nic.id
        ));
        return Ok(());
    }
    // User networking: the host has no route to the guest; the guest pings its gateway (user
    // networking's virtual host answers) through the new NIC instead.
    let mac = nic.mac.clone().unwrap_or_default();
    let Some(ifname) = g.ifname(ctx, &mac, Duration::ZERO).await? else {
        return Err(TestError::fail(format!(
            "the guest no longer has an interface with {mac}{when}"
        )));
    };
    let routes = guest_output(ctx, g.shell()?, &format!("ip -4 route show dev {ifname}")).await?;
    let Some(gateway) = gateway_of(&routes) else {
        return Err(TestError::fail(format!(
            "{ifname} ({ip}) has no default route{when}: `ip -4 route show dev {ifname}` printed \
             {:?}",
            routes.trim_end()
        )));
    };
    let cmd = format!("ping -c 3 -W 2 -I {ifname} {gateway}");
    let (status, out) = guest_status_output(ctx, g.shell()?, &cmd, Duration::from_secs(30)).await?;
    if status != 0 {
        return Err(TestError::fail(format!(
            "the hot-plugged {} ({ifname}, {ip}) could not reach its gateway {gateway}{when} (the \
             host has no route to a user-mode guest; the guest pings out instead): `{cmd}` \
             exited {status}: {}",
            nic.driver,
            out.trim_end()
        )));
    }
    ctx.log.info(format_args!(
        "{ifname} ({ip}) reached its gateway {gateway}{when}"
    ));
    Ok(())
}

/// The default gateway in `ip -4 route show` output.
fn gateway_of(routes: &str) -> Option<String> {
    routes.lines().find_map(|l| {
        let mut w = l.split_whitespace();
        (w.next()? == "default").then_some(())?;
        (w.next()? == "via").then_some(())?;
        w.next().map(str::to_owned)
    })
}

/// `used_sameid = yes`: plugging a NIC on a netdev in use must be refused.
async fn plug_on_used_netdev(
    ctx: &TestContext,
    vm: &std::sync::Arc<dyn GuestVm>,
    p: &NicParams,
    primary: &[NicIds],
    driver: &str,
    name: &str,
) -> TestResult {
    let Some(first) = primary.first() else {
        return Err(TestError::error(
            "used_sameid = yes plugs on the first NIC's netdev, and the VM has no NIC (`nics`)",
        ));
    };
    let want = p.devadd_match.clone().unwrap_or_default();
    let args = serde_json::json!({"driver": driver, "id": name, "netdev": first.netdev_id});
    let r = cancellable(ctx, async { Ok(vm.qmp("device_add", args.clone()).await) }).await?;
    match r {
        Ok(_) => {
            // Leave the VM as it was found before failing.
            let _ = vm.qmp("device_del", serde_json::json!({"id": name})).await;
            Err(TestError::fail(format!(
                "QEMU accepted a {driver} on the netdev {} that {} already uses",
                first.netdev_id, first.device_id
            )))
        }
        Err(e) => {
            let text = crate::error::error_chain(&e);
            if text.contains(&want) {
                ctx.log
                    .info(format_args!("QEMU refused the plug as expected: {text}"));
                Ok(())
            } else {
                Err(TestError::fail(format!(
                    "hot-plug error message is not as expected: expected {want:?} in {text:?}"
                )))
            }
        }
    }
}

/// `type = nic_hotplug`.
pub fn run(ctx: &TestContext) -> BoxFuture<'_, TestResult> {
    Box::pin(async move {
        let p = NicParams::read(ctx)?;
        let mut g = Guest::login(ctx).await?;
        let vm_name = g.vm.name().to_owned();
        if let Some(module) = &p.modprobe {
            g.run_safe(ctx, &format!("modprobe {module}")).await?;
        }
        let vm = g.vm.clone();
        let primary =
            cancellable(ctx, async { vm.nic_ids().await.map_err(TestError::from) }).await?;
        // Read every NIC first: a bad key is an error before anything changes.
        let mut nics = Vec::new();
        for i in 1..=p.count {
            let name = format!("hotplug_nic{i}");
            let index = primary.len() + usize::try_from(i - 1).unwrap_or(0);
            let (spec, driver) = hot_nic_spec(ctx, &vm_name, &name, index)?;
            nics.push((name, spec, driver));
        }
        let wanted: Vec<(&str, &str, &str)> = nics
            .iter()
            .map(|(_, _, d)| ("pci_model", d.as_str(), d.as_str()))
            .collect();
        require_device_types(ctx, g.vm.as_ref(), &wanted).await?;
        if p.used_sameid {
            let (name, _, driver) = &nics[0];
            return plug_on_used_netdev(ctx, &g.vm, &p, &primary, driver, name).await;
        }
        // The VM's own NICs lose their addresses: no later test may inherit it.
        g.vm.retire();
        let own: Vec<GuestNic> = primary
            .iter()
            .map(|n| GuestNic {
                device_id: n.device_id.clone(),
                mac: n.mac.to_string(),
            })
            .collect();
        for round in 1..=p.repeat_times {
            if p.repeat_times > 1 {
                ctx.log
                    .info(format_args!("round {round} of {}", p.repeat_times));
            }
            let mut plugged: Vec<Hotplugged> = Vec::new();
            let result = plug_round(ctx, &mut g, &p, &own, &nics, &mut plugged).await;
            // The VM's links come back whatever happened.
            for nic in &own {
                let vm = g.vm.clone();
                let up = cancellable(ctx, async {
                    vm.set_link(&nic.device_id, true)
                        .await
                        .map_err(|e| fail_env(&format!("set_link {} up", nic.device_id), &e))
                })
                .await;
                if result.is_ok() {
                    up?;
                }
            }
            if let Err(e) = result {
                for d in plugged.iter().rev() {
                    let _ = g.vm.unplug(d).await;
                }
                return Err(e);
            }
            if let Some(ty) = &p.sub_types[0] {
                // The sub-test logs in on the serial console itself.
                g.session = None;
                sub_test(ctx, SUB_TYPE_KEYS[0], ty).await?;
                if !vm_alive(ctx, &vm_name) {
                    ctx.log
                        .info(format_args!("{vm_name} is down after the sub-test: done"));
                    return Ok(());
                }
                g = Guest::login(ctx).await?;
            }
            for nic in &plugged {
                unplug_one(ctx, &mut g, &p, nic).await?;
            }
            if let Some(ty) = &p.sub_types[1] {
                g.session = None;
                sub_test(ctx, SUB_TYPE_KEYS[1], ty).await?;
                if !vm_alive(ctx, &vm_name) {
                    return Ok(());
                }
                g = Guest::login(ctx).await?;
            }
        }
        Ok(())
    })
}

/// Steps 1–6 for every NIC of one round; `plugged` gets each NIC as soon as it exists.
async fn plug_round(
    ctx: &TestContext,
    g: &mut Guest,
    p: &NicParams,
    own: &[GuestNic],
    nics: &[(String, NicSpec, String)],
    plugged: &mut Vec<Hotplugged>,
) -> TestResult {
    for (name, spec, driver) in nics {
        let mut others: Vec<GuestNic> = own
            .iter()
            .map(|n| GuestNic {
                device_id: n.device_id.clone(),
                mac: n.mac.clone(),
            })
            .collect();
        others.extend(plugged.iter().map(|h| GuestNic {
            device_id: h.id.clone(),
            mac: h.mac.clone().unwrap_or_default(),
        }));
        disable_links(ctx, g, &others).await?;
        ctx.log.info(format_args!("hot-plugging {name} ({driver})"));
        let vm = g.vm.clone();
        let nic = cancellable(ctx, async {
            vm.hotplug_nic_spec(spec, driver)
                .await
                .map_err(|e| fail_env(&format!("hotplug of the {driver} NIC {name}"), &e))
        })
        .await?;
        plugged.push(nic.clone());
        let ip = address_of(ctx, g, p, &nic).await?;
        ctx.log.info(format_args!("{name} has the address {ip}"));
        check_reachable(ctx, g, &nic, &ip, "").await?;
        let vm = g.vm.clone();
        qmp_cmd(ctx, vm.as_ref(), "stop").await?;
        expect_status(ctx, vm.as_ref(), "paused", "stop").await?;
        qmp_cmd(ctx, vm.as_ref(), "cont").await?;
        expect_status(ctx, vm.as_ref(), "running", "cont").await?;
        check_reachable(ctx, g, &nic, &ip, " after stop/cont").await?;
        if p.random_unplug && random_below(2) == 1 {
            let which = random_below(plugged.len());
            let gone = plugged.remove(which);
            ctx.log.info(format_args!(
                "do_random_unhotplug: unplugging {} and rebooting",
                gone.id
            ));
            unplug_one(ctx, g, p, &gone).await?;
            g.reboot(ctx, "after the random unplug").await?;
        }
    }
    Ok(())
}

/// Unplugs `nic` (QEMU confirms it) and waits for the guest to lose its interface.
async fn unplug_one(
    ctx: &TestContext,
    g: &mut Guest,
    p: &NicParams,
    nic: &Hotplugged,
) -> TestResult {
    let vm = g.vm.clone();
    cancellable(ctx, async {
        vm.unplug(nic)
            .await
            .map_err(|e| fail_env(&format!("unplug of the {} NIC {}", nic.driver, nic.id), &e))
    })
    .await?;
    let mac = nic.mac.clone().unwrap_or_default();
    let (now, gone) = poll_guest(
        ctx,
        g.shell()?,
        LIST_NICS,
        p.timeout,
        Duration::from_millis(500),
        |o| interface_with_mac(o, &mac).is_none(),
    )
    .await?;
    if !gone {
        return Err(TestError::fail(format!(
            "after the unplug of {}, expected the guest's interface with {mac} to go; it still \
             lists {:?}",
            nic.id,
            now.trim_end()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interface_is_found_by_mac_in_any_case() {
        let listing = "eth0 52:54:00:12:34:56\nlo 00:00:00:00:00:00\n";
        assert_eq!(
            interface_with_mac(listing, "52:54:00:12:34:56").as_deref(),
            Some("eth0")
        );
        assert_eq!(
            interface_with_mac(listing, "52:54:00:12:34:5A").as_deref(),
            None
        );
        assert_eq!(
            interface_with_mac("ens4 52:54:00:AB:CD:EF\n", "52:54:00:ab:cd:ef").as_deref(),
            Some("ens4")
        );
    }

    #[test]
    fn the_gateway_is_the_default_route() {
        let r = "default via 10.0.2.2 proto dhcp src 10.0.2.15 metric 1024\n10.0.2.0/24 proto kernel scope link src 10.0.2.15\n";
        assert_eq!(gateway_of(r).as_deref(), Some("10.0.2.2"));
        assert_eq!(gateway_of("10.0.2.0/24 scope link"), None);
    }

    #[test]
    fn the_address_is_the_first_inet_of_ip_addr() {
        let out = "3: ens4    inet 192.168.233.57/24 brd 192.168.233.255 scope global dynamic ens4\\       valid_lft 3599sec preferred_lft 3599sec\n";
        assert_eq!(ipv4_of(out).as_deref(), Some("192.168.233.57"));
        assert_eq!(ipv4_of(""), None);
        assert_eq!(ipv4_of("3: ens4 inet6 fe80::1/64 scope link"), None);
    }
}
