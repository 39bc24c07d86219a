//! `pci_hotplug` (the seed's `run_pci_hotplug`) and `nic_hotplug`.
//!
//! `pci_hotplug`: `info pci` and the guest's `reference_cmd` as references; `device_add` of a NIC
//! or a disk (`pci_add` only where the QEMU still has it); `info pci` must change and show the
//! device; the guest's `reference_cmd` output must change; `find_pci_cmd` must print
//! `match_string` — otherwise the failure names both what was expected and what the guest
//! printed —; `pci_test_cmd` must succeed; then the device is unplugged, which QEMU must confirm
//! (`DEVICE_DELETED`, `query-pci`), `info pci` must lose it and the guest's `reference_cmd` must
//! show what it showed before. A device plugged by a failing test is unplugged anyway, so a
//! reused VM is left as it was found.

use std::ffi::OsString;
use std::time::Duration;

use spec::HostTools;

use super::common::{
    block_driver, cancellable, fail_env, guest_cmd, guest_output, login, login_via, main_vm,
    nic_driver, poll_guest,
};
use super::{NIC_HOTPLUG, PCI_HOTPLUG};
use crate::env::{GuestVm, Hotplugged, LoginVia};
use crate::future::BoxFuture;
use crate::registry::{read_params, TestContext};
use crate::shell::RemoteShell;
use crate::verdict::{TestError, TestResult};

async fn info_pci(ctx: &TestContext, vm: &dyn GuestVm) -> Result<String, TestError> {
    let out = cancellable(ctx, async {
        vm.human_monitor_cmd("info pci")
            .await
            .map_err(TestError::from)
    })
    .await?;
    Ok(out)
}

/// What is plugged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PciType {
    Nic,
    Block,
}

/// How it is plugged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HotplugMethod {
    DeviceAdd,
    PciAdd,
}

/// The parameters of `pci_hotplug`, read (and checked) before the guest is touched.
#[derive(Debug)]
struct PciParams {
    via: LoginVia,
    modprobe: Option<String>,
    method: HotplugMethod,
    pci_type: PciType,
    model: String,
    reference_cmd: String,
    find_cmd: String,
    match_string: String,
    test_cmd: Option<String>,
    hook_up: Duration,
    find_timeout: Duration,
    stg_format: String,
    stg_size: String,
    qemu_img: std::path::PathBuf,
}

impl PciParams {
    fn read(ctx: &TestContext) -> Result<PciParams, TestError> {
        let mut k = ctx.keys(&PCI_HOTPLUG);
        let via = login_via(&mut k);
        let method = k.choice(
            "hotplug_method",
            &[
                ("device_add", HotplugMethod::DeviceAdd),
                ("pci_add", HotplugMethod::PciAdd),
            ],
        );
        let pci_type = k.choice(
            "pci_type",
            &[("nic", PciType::Nic), ("block", PciType::Block)],
        );
        let hook_up = k.secs("wait_secs_for_hook_up");
        let find_timeout = k.secs("find_pci_timeout");
        let modprobe = k.opt("modprobe_module");
        let model = k.text("pci_model");
        let reference_cmd = k.text("reference_cmd");
        let find_cmd = k.text("find_pci_cmd");
        let match_string = k.text("match_string");
        let test_cmd = k.opt("pci_test_cmd");
        let stg_format = k.text("image_format_stg");
        let stg_size = k.text("image_size_stg");
        let (via, method, pci_type, hook_up, find_timeout) =
            read_params(k, (via, method, pci_type, hook_up, find_timeout))?;
        let qemu_img = HostTools::read(&ctx.params)?.qemu_img;
        Ok(PciParams {
            via: PCI_HOTPLUG.declared(via, "serial_login")?,
            modprobe,
            method: PCI_HOTPLUG.declared(method, "hotplug_method")?,
            pci_type: PCI_HOTPLUG.declared(pci_type, "pci_type")?,
            model,
            reference_cmd,
            find_cmd,
            match_string,
            test_cmd,
            hook_up: PCI_HOTPLUG.declared(hook_up, "wait_secs_for_hook_up")?,
            find_timeout: PCI_HOTPLUG.declared(find_timeout, "find_pci_timeout")?,
            stg_format,
            stg_size,
            qemu_img,
        })
    }

    fn type_name(&self) -> &'static str {
        match self.pci_type {
            PciType::Nic => "nic",
            PciType::Block => "block",
        }
    }
}

/// Creates the hot-plugged disk's image (`stg`) in the test directory.
async fn stg_image(
    ctx: &TestContext,
    p: &PciParams,
) -> Result<(std::path::PathBuf, String), TestError> {
    let format = p.stg_format.clone();
    let path = ctx.dir.join(format!("stg.{format}"));
    let argv: Vec<OsString> = vec![
        p.qemu_img.clone().into(),
        "create".into(),
        "-f".into(),
        format.clone().into(),
        path.clone().into(),
        p.stg_size.clone().into(),
    ];
    let out = crate::command::run(ctx, &argv).await?;
    if !out.success() {
        return Err(TestError::error(out.describe()));
    }
    Ok((path, format))
}

/// `type = pci_hotplug`.
pub fn run_pci_hotplug(ctx: &TestContext) -> BoxFuture<'_, TestResult> {
    Box::pin(async move {
        let p = PciParams::read(ctx)?;
        let vm = main_vm(ctx)?;
        let mut shell = login(ctx, &vm, p.via).await?;
        if let Some(module) = &p.modprobe {
            guest_cmd(ctx, &mut shell, &format!("modprobe {module}"))
                .await
                .map_err(|e| TestError::error(crate::error::error_chain(&e)))?;
        }
        match p.method {
            HotplugMethod::DeviceAdd => {}
            HotplugMethod::PciAdd => {
                let help = info_help(ctx, vm.as_ref()).await?;
                if !help.lines().any(|l| l.starts_with("pci_add")) {
                    return Err(TestError::error(
                        "hotplug_method = pci_add, but this QEMU has no pci_add command (it was \
                         removed in QEMU 1.x); use device_add",
                    ));
                }
                return Err(TestError::error(
                    "hotplug_method = pci_add is not implemented; use device_add",
                ));
            }
        }
        let reference_cmd = p.reference_cmd.as_str();
        let info_ref = info_pci(ctx, vm.as_ref()).await?;
        let reference = guest_output(ctx, &mut shell, reference_cmd).await?;

        let added = match p.pci_type {
            PciType::Nic => {
                let driver = nic_driver(&p.model);
                cancellable(ctx, async {
                    vm.hotplug_nic(driver)
                        .await
                        .map_err(|e| fail_env(&format!("device_add of a {driver} NIC"), &e))
                })
                .await?
            }
            PciType::Block => {
                let driver = block_driver(&p.model);
                let (path, format) = stg_image(ctx, &p).await?;
                cancellable(ctx, async {
                    vm.hotplug_disk(&path, &format, driver)
                        .await
                        .map_err(|e| fail_env(&format!("device_add of a {driver} disk"), &e))
                })
                .await?
            }
        };
        ctx.log
            .info(format_args!("added {} ({})", added.id, added.driver));
        let checked = check_added(
            ctx,
            &p,
            vm.as_ref(),
            &mut shell,
            &added,
            &info_ref,
            &reference,
        )
        .await;
        let unplugged = cancellable(ctx, async {
            vm.unplug(&added)
                .await
                .map_err(|e| fail_env(&format!("removing {} ({})", added.id, added.driver), &e))
        })
        .await;
        checked?;
        unplugged?;
        let after_del = info_pci(ctx, vm.as_ref()).await?;
        if after_del.contains(&format!("\"{}\"", added.id)) {
            return Err(TestError::fail(format!(
                "{} is still in `info pci` after device_del",
                added.id
            )));
        }
        let (now, back) = poll_guest(
            ctx,
            &mut shell,
            reference_cmd,
            Duration::from_secs(30),
            Duration::from_secs(1),
            |o| o == reference,
        )
        .await?;
        if !back {
            return Err(TestError::fail(format!(
                "after unplugging {}, expected `{reference_cmd}` to print what it printed before \
                 ({:?}); the guest printed {:?}",
                added.id,
                reference.trim_end(),
                now.trim_end()
            )));
        }
        Ok(())
    })
}

async fn info_help(ctx: &TestContext, vm: &dyn GuestVm) -> Result<String, TestError> {
    cancellable(ctx, async {
        vm.human_monitor_cmd("help").await.map_err(TestError::from)
    })
    .await
}

/// Steps 2–5 of the seed's test, with the device plugged.
async fn check_added(
    ctx: &TestContext,
    p: &PciParams,
    vm: &dyn GuestVm,
    shell: &mut Box<dyn RemoteShell>,
    added: &Hotplugged,
    info_ref: &str,
    reference: &str,
) -> Result<(), TestError> {
    let (model, pci_type) = (p.model.as_str(), p.type_name());
    let reference_cmd = p.reference_cmd.as_str();
    let (find_cmd, match_string) = (p.find_cmd.as_str(), p.match_string.as_str());
    let after_add = info_pci(ctx, vm).await?;
    if after_add == info_ref {
        return Err(TestError::fail(
            "no new PCI device shown by `info pci` after device_add",
        ));
    }
    if !after_add.contains(&format!("\"{}\"", added.id)) {
        return Err(TestError::fail(format!(
            "`info pci` changed but does not show the new device {}",
            added.id
        )));
    }
    let first = p.hook_up;
    cancellable(ctx, async {
        tokio::time::sleep(first).await;
        Ok(())
    })
    .await?;
    let (now, changed) = poll_guest(
        ctx,
        shell,
        reference_cmd,
        Duration::from_secs(30),
        Duration::from_secs(1),
        |o| o != reference,
    )
    .await?;
    if !changed {
        return Err(TestError::fail(format!(
            "no new device shown by the guest's `{reference_cmd}` within 30 s; it still prints \
             {:?}",
            now.trim_end()
        )));
    }
    let find_timeout = p.find_timeout;
    let (found_out, found) = poll_guest(
        ctx,
        shell,
        find_cmd,
        find_timeout,
        Duration::from_secs(1),
        |o| o.contains(match_string),
    )
    .await?;
    if !found {
        return Err(TestError::fail(format!(
            "PCI {model} {pci_type} device not found in the guest: expected the output of \
             `{find_cmd}` to contain {match_string:?} within {} s; the guest printed {:?}",
            find_timeout.as_secs(),
            found_out.trim_end()
        )));
    }
    if let Some(test_cmd) = p.test_cmd.as_deref() {
        guest_cmd(ctx, shell, test_cmd).await.map_err(|e| {
            TestError::fail(format!(
                "check of the {pci_type} device failed after PCI hotplug: {}",
                crate::error::error_chain(&e)
            ))
        })?;
    }
    Ok(())
}

/// The guest interface that has `mac`, from `name mac` lines.
fn interface_with_mac(listing: &str, mac: &str) -> Option<String> {
    listing.lines().find_map(|l| {
        let (name, addr) = l.trim().split_once(' ')?;
        addr.trim()
            .eq_ignore_ascii_case(mac)
            .then(|| name.to_owned())
    })
}

/// `NAME MAC` per guest interface (kept short: a serial console wraps long command lines).
const LIST_NICS: &str = "(cd /sys/class/net; for i in *; do echo $i $(cat $i/address); done)";

/// `type = nic_hotplug`: plug a NIC, see it in the guest with its MAC, get a DHCP lease through
/// it (proof that frames flow both ways), unplug it and see it go.
pub fn run_nic_hotplug(ctx: &TestContext) -> BoxFuture<'_, TestResult> {
    Box::pin(async move {
        let mut k = ctx.keys(&NIC_HOTPLUG);
        let via = login_via(&mut k);
        // Only user networking: any other backend is a problem of the params, not a skip.
        let _user = k.choice("netdev_type", &[("user", ())]);
        let driver = nic_driver(&k.text("pci_model")).to_owned();
        let timeout = k.secs("nic_hotplug_timeout");
        let (via, timeout) = read_params(k, (via, timeout))?;
        let via = NIC_HOTPLUG.declared(via, "serial_login")?;
        let timeout = NIC_HOTPLUG.declared(timeout, "nic_hotplug_timeout")?;
        let vm = main_vm(ctx)?;
        let mut shell = login(ctx, &vm, via).await?;
        let nic = cancellable(ctx, async {
            vm.hotplug_nic(&driver)
                .await
                .map_err(|e| fail_env(&format!("hotplug of a {driver} NIC"), &e))
        })
        .await?;
        let mac = nic.mac.clone().unwrap_or_default();
        let checked = check_nic(ctx, &mut shell, &driver, &mac, timeout).await;
        let unplugged = cancellable(ctx, async {
            vm.unplug(&nic)
                .await
                .map_err(|e| fail_env(&format!("unplug of the {driver} NIC {}", nic.id), &e))
        })
        .await;
        let ifname = checked?;
        unplugged?;
        let (now, gone) = poll_guest(
            ctx,
            &mut shell,
            LIST_NICS,
            timeout,
            Duration::from_millis(500),
            |o| interface_with_mac(o, &mac).is_none(),
        )
        .await?;
        if !gone {
            return Err(TestError::fail(format!(
                "after the unplug, expected {ifname} ({mac}) to leave the guest; it still lists \
                 {:?}",
                now.trim_end()
            )));
        }
        Ok(())
    })
}

async fn check_nic(
    ctx: &TestContext,
    shell: &mut Box<dyn RemoteShell>,
    driver: &str,
    mac: &str,
    timeout: Duration,
) -> Result<String, TestError> {
    let (listing, seen) = poll_guest(
        ctx,
        shell,
        LIST_NICS,
        timeout,
        Duration::from_millis(500),
        |o| interface_with_mac(o, mac).is_some(),
    )
    .await?;
    let Some(ifname) = interface_with_mac(&listing, mac).filter(|_| seen) else {
        return Err(TestError::fail(format!(
            "expected a guest interface with the hot-plugged {driver}'s MAC {mac} within {} s; \
             the guest lists {:?}",
            timeout.as_secs(),
            listing.trim_end()
        )));
    };
    if let Some(id) = super::common::nic_pci_id(driver) {
        // The PCI function (a virtio NIC's `device` is the virtio device; its parent, which
        // has a `class`, is the PCI function). Short: a serial console wraps long lines.
        let cmd = format!(
            "(cd -P /sys/class/net/{ifname}/device; [ -e class ] || cd -P ..; cat vendor device)"
        );
        let out = guest_output(ctx, shell, &cmd).await?;
        let seen = out
            .split_whitespace()
            .map(|w| w.trim_start_matches("0x"))
            .collect::<Vec<_>>()
            .join(":");
        if seen != id {
            return Err(TestError::fail(format!(
                "{ifname} ({mac}) should be a {driver} ({id}); the guest reports {seen:?}"
            )));
        }
    }
    let addr_cmd = format!("ip -4 -o addr show dev {ifname}");
    let (addr, leased) = poll_guest(
        ctx,
        shell,
        &addr_cmd,
        timeout,
        Duration::from_millis(500),
        |o| o.contains("inet "),
    )
    .await?;
    if !leased {
        return Err(TestError::fail(format!(
            "expected {ifname} ({driver}, {mac}) to lease an IPv4 address by DHCP within {} s; \
             `{addr_cmd}` printed {:?}",
            timeout.as_secs(),
            addr.trim_end()
        )));
    }
    let rx = guest_output(
        ctx,
        shell,
        &format!("cat /sys/class/net/{ifname}/statistics/rx_packets"),
    )
    .await?;
    if rx.trim().parse::<u64>().unwrap_or(0) == 0 {
        return Err(TestError::fail(format!(
            "{ifname} has an address but received no packets (rx_packets = {:?})",
            rx.trim()
        )));
    }
    Ok(ifname)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interfaces_are_found_by_mac() {
        let l = "eth0 52:54:00:12:34:56\neth1 02:AB:cd:00:00:01\nlo 00:00:00:00:00:00\n";
        assert_eq!(
            interface_with_mac(l, "02:ab:cd:00:00:01").as_deref(),
            Some("eth1")
        );
        assert_eq!(interface_with_mac(l, "02:00:00:00:00:09"), None);
    }
}
