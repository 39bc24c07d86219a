//! Helpers shared by the VM-based tests: the main VM, logins, bounded polling of guest commands,
//! cancellation, and the PCI ids of the device models the catalogue knows.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use spec::Keys;

use crate::catalogue::session::login_timeout;
use crate::env::{EnvError, GuestVm, LoginVia};
use crate::registry::TestContext;
use crate::shell::RemoteShell;
use crate::verdict::TestError;

pub(super) use crate::catalogue::session::main_vm;

/// `serial_login` of a test that declares it (its table repeats [`super::SERIAL_LOGIN`]):
/// tp-qemu's key — `yes` logs in on the serial console (avocado-vt's `wait_for_serial_login`),
/// `no` over the VM's `shell_client` through its first NIC (`wait_for_login`); `None` when the
/// value is bad (a problem of `k`).
pub(super) fn login_via(k: &mut Keys<'_>) -> Option<LoginVia> {
    k.choice(
        "serial_login",
        &[
            ("yes", LoginVia::Serial),
            ("no", LoginVia::Remote { nic: 0 }),
        ],
    )
}

/// Runs `fut` unless the run is cancelled first.
pub(crate) async fn cancellable<T>(
    ctx: &TestContext,
    fut: impl Future<Output = Result<T, TestError>>,
) -> Result<T, TestError> {
    tokio::select! {
        r = fut => r,
        () = ctx.cancel.cancelled() => Err(TestError::Cancelled),
    }
}

/// Waits `d` unless the run is cancelled first.
pub(super) async fn pause(ctx: &TestContext, d: Duration) -> Result<(), TestError> {
    cancellable(ctx, async {
        tokio::time::sleep(d).await;
        Ok(())
    })
    .await
}

/// Logs into `vm` by `via` within the main VM's `login_timeout`.
pub(super) async fn login(
    ctx: &TestContext,
    vm: &Arc<dyn GuestVm>,
    via: LoginVia,
) -> Result<Box<dyn RemoteShell>, TestError> {
    let timeout = login_timeout(ctx)?;
    ctx.log
        .info(format_args!("logging into {} ({via:?})", vm.name()));
    let shell = cancellable(ctx, async {
        vm.login_via(via, timeout).await.map_err(|e| match e {
            // A guest that never came up is the product's failure (tp-qemu's boot test
            // exists to catch it); its serial log is in the VM's directory.
            e @ EnvError::NoLogin { .. } => fail_env("logging in", &e),
            e => TestError::from(e),
        })
    })
    .await?;
    Ok(shell)
}

/// Runs `cmd` in the guest and returns its output whatever its status (logged).
pub(super) async fn guest_output(
    ctx: &TestContext,
    shell: &mut Box<dyn RemoteShell>,
    cmd: &str,
) -> Result<String, TestError> {
    let out = cancellable(ctx, async {
        shell
            .cmd_output(cmd, Duration::from_secs(60))
            .await
            .map_err(TestError::from)
    })
    .await?;
    ctx.log
        .info(format_args!("guest `{cmd}` printed {:?}", out.trim_end()));
    Ok(out)
}

/// Runs `cmd` in the guest within `timeout` and returns its exit status and output (logged),
/// as avocado-vt's `cmd_status_output`.
pub(crate) async fn guest_status_output(
    ctx: &TestContext,
    shell: &mut Box<dyn RemoteShell>,
    cmd: &str,
    timeout: Duration,
) -> Result<(i64, String), TestError> {
    let (out, status) = cancellable(ctx, async {
        let out = shell.cmd_output(cmd, timeout).await?;
        let status = shell.cmd_output("echo $?", Duration::from_secs(60)).await?;
        Ok((out, status))
    })
    .await?;
    let status = status.trim().parse::<i64>().map_err(|_| {
        TestError::error(format!(
            "the exit status of `{cmd}`: `echo $?` printed {:?}",
            status.trim()
        ))
    })?;
    ctx.log.info(format_args!(
        "guest `{cmd}` exited {status}, printed {:?}",
        out.trim_end()
    ));
    Ok((status, out))
}

/// Runs `cmd` in the guest; a non-zero status is an error carrying the output (logged).
pub(super) async fn guest_cmd(
    ctx: &TestContext,
    shell: &mut Box<dyn RemoteShell>,
    cmd: &str,
) -> Result<String, crate::shell::ShellError> {
    let r = tokio::select! {
        r = shell.cmd(cmd) => r,
        () = ctx.cancel.cancelled() => return Err(crate::shell::ShellError::Io {
            what: "guest command",
            source: std::io::Error::other("cancelled"),
        }),
    };
    match &r {
        Ok(out) => ctx
            .log
            .info(format_args!("guest `{cmd}` printed {:?}", out.trim_end())),
        Err(e) => ctx.log.warn(format_args!(
            "guest `{cmd}`: {}",
            crate::error::error_chain(e)
        )),
    }
    r
}

/// Runs `cmd` every `interval` until `done(output)` holds, for at most `timeout`; returns the
/// last output and whether it held.
pub(super) async fn poll_guest(
    ctx: &TestContext,
    shell: &mut Box<dyn RemoteShell>,
    cmd: &str,
    timeout: Duration,
    interval: Duration,
    mut done: impl FnMut(&str) -> bool,
) -> Result<(String, bool), TestError> {
    let started = Instant::now();
    loop {
        let out = guest_output(ctx, shell, cmd).await?;
        if done(&out) {
            return Ok((out, true));
        }
        if started.elapsed() >= timeout {
            return Ok((out, false));
        }
        cancellable(ctx, async {
            tokio::time::sleep(interval).await;
            Ok(())
        })
        .await?;
    }
}

/// tp-qemu's `verify_supported_device`, before anything is plugged: each `(key, value,
/// driver)` names a device type this VM's QEMU must have; one it lacks is the params' error,
/// naming `key`, its `value` and where it was set.
pub(super) async fn require_device_types(
    ctx: &TestContext,
    vm: &dyn GuestVm,
    wanted: &[(&str, &str, &str)],
) -> Result<(), TestError> {
    let types = cancellable(ctx, async {
        vm.device_types().await.map_err(TestError::from)
    })
    .await?;
    for (key, value, driver) in wanted {
        if !types.iter().any(|t| t == driver) {
            return Err(TestError::error(format!(
                "`{key}` = {value:?}{}: this QEMU has no device type {driver:?}",
                ctx.params
                    .origin(key)
                    .map(|o| format!(" (set at {o})"))
                    .unwrap_or_default()
            )));
        }
    }
    Ok(())
}

/// A failure naming what the product was asked to do, with the environment's error chain — or
/// an error when the host lacks what the params ask for (`/dev/vhost-net`…): that is the
/// setup's problem, not the product's.
pub(super) fn fail_env(what: &str, e: &EnvError) -> TestError {
    let text = format!("{what}: {}", crate::error::error_chain(e));
    let host_lacks = matches!(e, EnvError::Vm { source, .. }
        if matches!(source.downcast_ref::<vm::Error>(), Some(vm::Error::HostFeature { .. })));
    if host_lacks {
        TestError::error(text)
    } else {
        TestError::fail(text)
    }
}

/// The QEMU driver of a `nic_model` / `pci_model` for a NIC (`virtio` → `virtio-net-pci`).
pub(super) fn nic_driver(model: &str) -> &str {
    match model {
        "virtio" => "virtio-net-pci",
        other => other,
    }
}

/// The PCI `vendor:device` id a NIC driver shows (to the host's `query-pci` and the guest's
/// `lspci`), for the models the test guest has drivers for.
pub(super) fn nic_pci_id(driver: &str) -> Option<&'static str> {
    Some(match driver {
        "virtio-net-pci" => "1af4:1000",
        "e1000" => "8086:100e",
        "e1000e" => "8086:10d3",
        "rtl8139" => "10ec:8139",
        _ => return None,
    })
}

/// The PCI `vendor:device` id behind a `drive_format` (the disk's controller).
pub(super) fn disk_pci_id(drive_format: &str) -> Option<&'static str> {
    Some(match drive_format {
        "virtio" | "virtio-blk-pci" => "1af4:1001",
        // The PIIX3 IDE function of the `pc` machine.
        "ide" => "8086:7010",
        "ahci" => "8086:2922",
        _ => return None,
    })
}

/// One PCI function from `query-pci`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PciFunction {
    /// `vendor:device`, lower-case hex.
    pub id: String,
    /// The class code.
    pub class: u64,
    /// The qdev id, if the device has one.
    pub qdev_id: String,
}

/// Every function of a `query-pci` reply, behind bridges too.
pub(super) fn pci_functions(reply: &Value) -> Vec<PciFunction> {
    fn walk(devices: &Value, out: &mut Vec<PciFunction>) {
        for d in devices.as_array().into_iter().flatten() {
            let num = |v: Option<&Value>| v.and_then(Value::as_u64).unwrap_or(0);
            let id = d.get("id");
            out.push(PciFunction {
                id: format!(
                    "{:04x}:{:04x}",
                    num(id.and_then(|i| i.get("vendor"))),
                    num(id.and_then(|i| i.get("device")))
                ),
                class: num(d.get("class_info").and_then(|c| c.get("class"))),
                qdev_id: d
                    .get("qdev_id")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
            });
            if let Some(b) = d.get("pci_bridge").and_then(|b| b.get("devices")) {
                walk(b, out);
            }
        }
    }
    let mut out = Vec::new();
    for bus in reply.as_array().into_iter().flatten() {
        if let Some(d) = bus.get("devices") {
            walk(d, &mut out);
        }
    }
    out
}

/// Runs sub-test `ty` (a catalogue type) with the test's params, as tp-qemu's
/// `run_virt_sub_test` (`key` is the param that named it, for messages).
pub(super) async fn sub_test(ctx: &TestContext, key: &str, ty: &str) -> Result<(), TestError> {
    let Some((_, f)) = super::entries().into_iter().find(|(s, _)| s.name == ty) else {
        return Err(TestError::error(format!("{key} = {ty}: no such test type")));
    };
    ctx.log.info(format_args!("sub-test {ty} ({key})"));
    f(ctx).await.map_err(|e| match e {
        TestError::Fail(m) => TestError::Fail(format!("sub-test {ty} ({key}): {m}")),
        TestError::Error(m) => TestError::Error(format!("sub-test {ty} ({key}): {m}")),
        e => e,
    })
}

/// Whether VM `name` still runs (a shutdown sub-test ends the test).
pub(super) fn vm_alive(ctx: &TestContext, name: &str) -> bool {
    ctx.env.vm(name).is_ok_and(|vm| vm.is_alive())
}

/// Reads the sub-test keys `keys` (`sub_type_after_plug`…): each must name a catalogue type
/// other than `own` (a problem of `k` otherwise).
pub(super) fn sub_types<const N: usize>(
    k: &mut Keys<'_>,
    keys: [&str; N],
    own: &str,
) -> [Option<String>; N] {
    let types = keys.map(|key| k.opt(key));
    for (key, ty) in keys.iter().zip(&types) {
        if let Some(ty) = ty {
            if ty == own || !super::entries().iter().any(|(s, _)| s.name == ty) {
                k.problem(
                    key,
                    spec::ProblemKind::Invalid {
                        expected: format!(
                            "a test type of the catalogue other than {own} (`kvmtest tests` \
                             lists them)"
                        ),
                    },
                );
            }
        }
    }
    types
}

/// QEMU's run state (`query-status`).
pub(super) async fn status(ctx: &TestContext, vm: &dyn GuestVm) -> Result<String, TestError> {
    let reply = cancellable(ctx, async {
        vm.qmp("query-status", serde_json::json!({}))
            .await
            .map_err(TestError::from)
    })
    .await?;
    reply
        .get("status")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| TestError::error(format!("query-status answered {reply}")))
}

/// QEMU's run state must be `want` after `after` (a failure naming both otherwise).
pub(super) async fn expect_status(
    ctx: &TestContext,
    vm: &dyn GuestVm,
    want: &str,
    after: &str,
) -> Result<(), TestError> {
    let seen = status(ctx, vm).await?;
    if seen != want {
        return Err(TestError::fail(format!(
            "after {after}, expected QEMU's status {want:?}; query-status says {seen:?}"
        )));
    }
    Ok(())
}

/// Runs QMP `cmd` without arguments; QEMU refusing it is a failure naming it.
pub(super) async fn qmp_cmd(
    ctx: &TestContext,
    vm: &dyn GuestVm,
    cmd: &str,
) -> Result<(), TestError> {
    cancellable(ctx, async {
        vm.qmp(cmd, serde_json::json!({}))
            .await
            .map(|_| ())
            .map_err(|e| fail_env(cmd, &e))
    })
    .await
}

/// The first number in the output of guest command `cmd` (avocado-vt's way of reading a
/// count or a size); `what` says what was expected, for the error.
pub(super) async fn guest_number(
    ctx: &TestContext,
    shell: &mut Box<dyn RemoteShell>,
    cmd: &str,
    what: &str,
) -> Result<u64, TestError> {
    let out = guest_output(ctx, shell, cmd).await?;
    out.split(|c: char| !c.is_ascii_digit())
        .find(|w| !w.is_empty())
        .and_then(|w| w.parse().ok())
        .ok_or_else(|| {
            TestError::error(format!("`{cmd}` printed {:?}, not {what}", out.trim_end()))
        })
}

/// A random index below `n` (`n` > 0; tp-qemu's `random.randint` draws).
pub(super) fn random_below(n: usize) -> usize {
    rand::random_range(0..n.max(1))
}

/// `os_type = windows` is a problem of `k`: `why` says what of tp-qemu's Windows path kvmtest
/// does not have.
pub(super) fn linux_only(k: &mut Keys<'_>, why: &str) {
    if k.opt("os_type").as_deref() == Some("windows") {
        k.problem(
            "os_type",
            spec::ProblemKind::Invalid {
                expected: format!("linux: {why}"),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_pci_is_flattened_with_ids() {
        let reply = serde_json::json!([{"bus": 0, "devices": [
            {"id": {"vendor": 0x1af4, "device": 0x1000}, "class_info": {"class": 0x200},
             "qdev_id": "nic-nic1"},
            {"id": {"vendor": 0x8086, "device": 0x7010}, "class_info": {"class": 0x101},
             "qdev_id": "", "pci_bridge": {"devices": [
                {"id": {"vendor": 0x10ec, "device": 0x8139}, "class_info": {"class": 0x200}}]}}
        ]}]);
        let f = pci_functions(&reply);
        assert_eq!(f.len(), 3);
        assert_eq!(f[0].id, "1af4:1000");
        assert_eq!(f[0].qdev_id, "nic-nic1");
        assert_eq!(f[2].id, "10ec:8139");
        assert_eq!(f[1].class, 0x101);
    }

    #[test]
    fn models_map_to_drivers_and_ids() {
        assert_eq!(nic_driver("virtio"), "virtio-net-pci");
        assert_eq!(nic_pci_id(nic_driver("rtl8139")), Some("10ec:8139"));
        assert_eq!(disk_pci_id("ide"), Some("8086:7010"));
        assert_eq!(nic_pci_id("ne2k_pci"), None);
    }
}
