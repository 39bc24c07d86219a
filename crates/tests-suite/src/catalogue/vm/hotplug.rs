//! `pci_hotplug` (tp-qemu's `pci_hotplug`, which older `nic_hotplug.cfg` variants run too).
//!
//! `pci_hotplug`, `repeat_times` rounds of: plug `pci_num` devices one after the other, each
//! checked as tp-qemu checks it — the device model must exist in this QEMU (`qom-list-types`,
//! an *error* naming `pci_model` otherwise); `info pci` must change and show the device; the
//! guest's `reference_cmd` output must change; `find_pci_cmd` must print, in lines that were
//! not in the reference output, something `match_string` (a regular expression, case
//! insensitive) matches — so a model the VM already had cannot pass by its old devices —;
//! `pci_test_cmd` (`PCI_NUM` or `%s`: the device's number) must succeed — then unplug them
//! newest first, which QEMU must confirm (`DEVICE_DELETED`, gone from `info pci`), and the
//! guest's `reference_cmd` must show what it showed before. A device plugged by a failing test
//! is unplugged anyway, so a reused VM is left as it was found.
//!
//! Block devices: the image of device N is the (N+1)th of `images` when there is one (tp-qemu:
//! `images += " stg"`, `boot_drive_stg = no`, `image_name_stg`…, created by pre-processing),
//! else a new one in the test's directory (`image_format_stg`, `image_size_stg`). Models:
//! `virtio` (virtio-blk-pci), `scsi` (tp-qemu's `scsi-disk` on a hot-plugged `lsi53c895a`;
//! QEMU has since renamed the disk `scsi-hd`), `scsi-hd` (on a hot-plugged `virtio-scsi-pci`
//! unless the VM has a SCSI disk, hence a SCSI bus, already), or any device type QEMU has.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use regex::Regex;
use spec::HostTools;

use super::common::{
    cancellable, fail_env, guest_cmd, guest_output, login, login_via, main_vm, nic_driver,
    poll_guest, require_device_types,
};
use super::PCI_HOTPLUG;
use crate::env::{DiskPlug, GuestVm, Hotplugged, LoginVia};
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
    match_string: Regex,
    test_cmd: Option<String>,
    hook_up: Duration,
    hotplug_timeout: Duration,
    find_timeout: Duration,
    pci_num: u64,
    repeat_times: u64,
    stg_format: String,
    stg_size: String,
    qemu_img: PathBuf,
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
        let hotplug_timeout = k.secs("hotplug_timeout");
        let find_timeout = match k.opt("find_pci_timeout") {
            Some(_) => k.secs("find_pci_timeout"),
            None => hotplug_timeout,
        };
        let pci_num = k.parse("pci_num", |v| match v.parse::<u64>() {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err("a whole number of at least 1".to_owned()),
        });
        let repeat_times = k.parse("repeat_times", |v| match v.parse::<u64>() {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err("a whole number of at least 1".to_owned()),
        });
        let match_string = k.parse("match_string", |v| {
            Regex::new(&format!("(?im){v}"))
                .map_err(|e| format!("a regular expression (tp-qemu searches with it): {e}"))
        });
        let modprobe = k.opt("modprobe_module");
        let model = k.text("pci_model");
        let reference_cmd = k.text("reference_cmd");
        let find_cmd = k.text("find_pci_cmd");
        let test_cmd = k.opt("pci_test_cmd");
        let stg_format = k.text("image_format_stg");
        let stg_size = k.text("image_size_stg");
        let (via, method, pci_type, hook_up, hotplug_timeout, find_timeout, match_string) =
            read_params(
                k,
                (
                    via,
                    method,
                    pci_type,
                    hook_up,
                    hotplug_timeout,
                    find_timeout,
                    match_string,
                ),
            )?;
        let qemu_img = HostTools::read(&ctx.params)?.qemu_img;
        Ok(PciParams {
            via: PCI_HOTPLUG.declared(via, "serial_login")?,
            modprobe,
            method: PCI_HOTPLUG.declared(method, "hotplug_method")?,
            pci_type: PCI_HOTPLUG.declared(pci_type, "pci_type")?,
            model,
            reference_cmd,
            find_cmd,
            match_string: PCI_HOTPLUG.declared(match_string, "match_string")?,
            test_cmd,
            hook_up: PCI_HOTPLUG.declared(hook_up, "wait_secs_for_hook_up")?,
            hotplug_timeout: PCI_HOTPLUG.declared(hotplug_timeout, "hotplug_timeout")?,
            find_timeout: PCI_HOTPLUG.declared(find_timeout, "find_pci_timeout")?,
            pci_num: pci_num.unwrap_or(1),
            repeat_times: repeat_times.unwrap_or(1),
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

    /// The device to plug and the controller it needs plugged first, for `pci_model`.
    fn drivers(&self, ctx: &TestContext) -> (String, Option<String>) {
        match (self.pci_type, self.model.as_str()) {
            (PciType::Nic, m) => (nic_driver(m).to_owned(), None),
            (PciType::Block, "virtio") => ("virtio-blk-pci".into(), None),
            (PciType::Block, "scsi") => ("scsi-hd".into(), Some("lsi53c895a".into())),
            (PciType::Block, m @ ("scsi-hd" | "scsi-block" | "scsi-cd")) => {
                let has_scsi = ctx.params.objects("images").iter().any(|img| {
                    ctx.params
                        .object_params(img)
                        .get("drive_format")
                        .is_some_and(|f| f.starts_with("scsi"))
                });
                (
                    m.to_owned(),
                    (!has_scsi).then(|| "virtio-scsi-pci".to_owned()),
                )
            }
            (PciType::Block, m) => (m.to_owned(), None),
        }
    }
}

/// `pci_test_cmd` for device `n` (1-based): tp-qemu's `PCI_NUM`, or the older `%s`.
fn test_cmd_for(cmd: &str, n: u64) -> String {
    if cmd.contains("PCI_NUM") {
        cmd.replace("PCI_NUM", &n.to_string())
    } else {
        cmd.replacen("%s", &n.to_string(), 1)
    }
}

/// The lines of `output` that `reference` does not have (compared trimmed), joined: what
/// tp-qemu searches `match_string` in.
fn new_lines(output: &str, reference: &str) -> String {
    let old: Vec<&str> = reference.lines().map(str::trim).collect();
    output
        .lines()
        .map(str::trim)
        .filter(|l| !old.contains(l))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The image of block device `n` (0-based): the (n+1)th of `images`, else a new one in the
/// test's directory.
async fn stg_image(
    ctx: &TestContext,
    p: &PciParams,
    vm: &str,
    n: u64,
) -> Result<(PathBuf, String), TestError> {
    let images = ctx.params.objects("images");
    if let Some(name) = usize::try_from(n + 1).ok().and_then(|i| images.get(i)) {
        let (path, format) = ctx
            .env
            .image_file(vm, name, &ctx.params)
            .map_err(TestError::from)?;
        if !path.exists() {
            return Err(TestError::error(format!(
                "image {name} of `images` ({}) does not exist: pre-processing creates it with \
                 `create_image_{name} = yes`",
                path.display()
            )));
        }
        return Ok((path, format));
    }
    let format = p.stg_format.clone();
    let path = ctx.dir.join(format!("stg{n}.{format}"));
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
        // tp-qemu's verify_supported_device: a model this QEMU lacks is the params' fault.
        let (driver, controller) = p.drivers(ctx);
        let wanted: Vec<(&str, &str, &str)> = std::iter::once(&driver)
            .chain(controller.as_ref())
            .map(|d| ("pci_model", p.model.as_str(), d.as_str()))
            .collect();
        require_device_types(ctx, vm.as_ref(), &wanted).await?;
        let reference_cmd = p.reference_cmd.as_str();
        let original = guest_output(ctx, &mut shell, reference_cmd).await?;
        for round in 1..=p.repeat_times {
            if p.repeat_times > 1 {
                ctx.log
                    .info(format_args!("round {round} of {}", p.repeat_times));
            }
            let mut plugged: Vec<Hotplugged> = Vec::new();
            let mut result = Ok(());
            for n in 0..p.pci_num {
                match add_device(ctx, &p, vm.as_ref(), &mut shell, n, &driver, &controller).await {
                    Ok(added) => plugged.push(added),
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
            }
            // Newest first, also after a failure (the failure is the verdict).
            let mut unplugged = Ok(());
            while let Some(added) = plugged.pop() {
                let r = unplug(ctx, vm.as_ref(), &added).await;
                if unplugged.is_ok() {
                    unplugged = r;
                }
            }
            result?;
            unplugged?;
        }
        let (now, back) = poll_guest(
            ctx,
            &mut shell,
            reference_cmd,
            p.hotplug_timeout.min(Duration::from_secs(60)),
            Duration::from_secs(1),
            |o| o == original,
        )
        .await?;
        if !back {
            return Err(TestError::fail(format!(
                "after unplugging, expected `{reference_cmd}` to print what it printed before \
                 ({:?}); the guest printed {:?}",
                original.trim_end(),
                now.trim_end()
            )));
        }
        Ok(())
    })
}

/// Plugs device `n` (0-based) and checks it (tp-qemu's `add_device`); a device that fails
/// its checks is unplugged before the failure is returned.
async fn add_device(
    ctx: &TestContext,
    p: &PciParams,
    vm: &dyn GuestVm,
    shell: &mut Box<dyn RemoteShell>,
    n: u64,
    driver: &str,
    controller: &Option<String>,
) -> Result<Hotplugged, TestError> {
    let info_ref = info_pci(ctx, vm).await?;
    let reference = guest_output(ctx, shell, &p.reference_cmd).await?;
    let added = match p.pci_type {
        PciType::Nic => {
            cancellable(ctx, async {
                vm.hotplug_nic(driver)
                    .await
                    .map_err(|e| fail_env(&format!("device_add of a {driver} NIC"), &e))
            })
            .await?
        }
        PciType::Block => {
            let (path, format) = stg_image(ctx, p, vm.name(), n).await?;
            let plug = DiskPlug {
                controller: controller.clone(),
                ..DiskPlug::new(path, &format, driver)
            };
            cancellable(ctx, async {
                vm.hotplug_disk(&plug)
                    .await
                    .map_err(|e| fail_env(&format!("device_add of a {driver} disk"), &e))
            })
            .await?
        }
    };
    ctx.log
        .info(format_args!("added {} ({})", added.id, added.driver));
    if let Err(e) = check_added(ctx, p, vm, shell, &added, n, &info_ref, &reference).await {
        let _ = unplug(ctx, vm, &added).await;
        return Err(e);
    }
    Ok(added)
}

/// Unplugs `added`; QEMU must confirm it, and `info pci` must lose it.
async fn unplug(ctx: &TestContext, vm: &dyn GuestVm, added: &Hotplugged) -> Result<(), TestError> {
    cancellable(ctx, async {
        vm.unplug(added)
            .await
            .map_err(|e| fail_env(&format!("removing {} ({})", added.id, added.driver), &e))
    })
    .await?;
    let after_del = info_pci(ctx, vm).await?;
    if after_del.contains(&format!("\"{}\"", added.id)) {
        return Err(TestError::fail(format!(
            "{} is still in `info pci` after device_del",
            added.id
        )));
    }
    Ok(())
}

async fn info_help(ctx: &TestContext, vm: &dyn GuestVm) -> Result<String, TestError> {
    cancellable(ctx, async {
        vm.human_monitor_cmd("help").await.map_err(TestError::from)
    })
    .await
}

/// tp-qemu's checks of a plugged device.
#[allow(clippy::too_many_arguments)]
async fn check_added(
    ctx: &TestContext,
    p: &PciParams,
    vm: &dyn GuestVm,
    shell: &mut Box<dyn RemoteShell>,
    added: &Hotplugged,
    n: u64,
    info_ref: &str,
    reference: &str,
) -> Result<(), TestError> {
    let (model, pci_type) = (p.model.as_str(), p.type_name());
    let reference_cmd = p.reference_cmd.as_str();
    let find_cmd = p.find_cmd.as_str();
    let after_add = info_pci(ctx, vm).await?;
    if after_add == info_ref {
        return Err(TestError::fail(
            "no new PCI device shown by `info pci` after device_add",
        ));
    }
    // A PCI device shows by its id; a SCSI disk shows through its controller's new function.
    if added.driver.ends_with("-pci") && !after_add.contains(&format!("\"{}\"", added.id)) {
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
        p.hotplug_timeout,
        Duration::from_secs(1),
        |o| o != reference,
    )
    .await?;
    if !changed {
        return Err(TestError::fail(format!(
            "no new device shown by the guest's `{reference_cmd}` within {} s; it still prints \
             {:?}",
            p.hotplug_timeout.as_secs(),
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
        |o| p.match_string.is_match(&new_lines(o, reference)),
    )
    .await?;
    if !found {
        return Err(TestError::fail(format!(
            "PCI {model} {pci_type} device not found in the guest: expected the new lines of \
             `{find_cmd}` (those `{reference_cmd}` did not print before the plug) to match \
             {:?} within {} s; the new lines are {:?}, the guest printed {:?}",
            p.match_string.as_str().trim_start_matches("(?im)"),
            find_timeout.as_secs(),
            new_lines(&found_out, reference),
            found_out.trim_end()
        )));
    }
    if let Some(test_cmd) = p.test_cmd.as_deref() {
        let cmd = test_cmd_for(test_cmd, n + 1);
        guest_cmd(ctx, shell, &cmd).await.map_err(|e| {
            TestError::fail(format!(
                "check of the {pci_type} device failed after PCI hotplug: {}",
                crate::error::error_chain(&e)
            ))
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_lines_new_since_the_reference_count() {
        let before = "00:03.0 Ethernet controller: Red Hat, Inc. Virtio network device\n";
        let after = format!(
            "{before}  00:05.0 Ethernet controller: Intel 82540EM Gigabit Ethernet Controller\n"
        );
        assert_eq!(
            new_lines(&after, before),
            "00:05.0 Ethernet controller: Intel 82540EM Gigabit Ethernet Controller"
        );
        let virtio = Regex::new("(?im)Virtio network device").expect("regex");
        assert!(virtio.is_match(before));
        assert!(!virtio.is_match(&new_lines(&after, before)));
        assert!(Regex::new("(?im)gigabit ethernet")
            .expect("regex")
            .is_match(&new_lines(&after, before)));
    }

    #[test]
    fn pci_test_cmd_gets_the_device_number() {
        assert_eq!(test_cmd_for("echo PCI_NUM; ls", 2), "echo 2; ls");
        assert_eq!(test_cmd_for("echo %s; ls", 3), "echo 3; ls");
        assert_eq!(test_cmd_for("ls", 3), "ls");
    }
}
