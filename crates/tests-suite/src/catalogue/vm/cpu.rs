//! `cpu_device_hotpluggable` (tp-qemu's `cpu_device_hotpluggable.py`): vCPU devices
//! (`vcpu_devices`, each `vcpus_count` vCPUs) are plugged into the running VM (optionally while
//! it is paused), the guest must then count that many more CPUs (`cpu_chk_cmd`, after
//! `sleep_after_cpu_change`, within `verify_wait_timeout`); then a sub-test (`sub_test_type`):
//! `reboot` (`reboot_method`), `shutdown` (`shutdown_method`), `pause_resume` (the vCPUs
//! unplugged while the VM is paused, released once it runs), `online_offline` (the new CPUs
//! taken offline — the guest must count the old number — and online again); afterwards the
//! count is checked again and, with every slot taken, the guest's topology (`lscpu`: sockets,
//! cores per socket, threads per core) must be QEMU's (`query-hotpluggable-cpus`).
//!
//! What kvmtest does not do (an error naming the key): `hotpluggable_test = hotunplug` needs
//! the vCPU devices on the command line (`vcpu_enable = yes`), which `qemu-cmd` does not build
//! yet (the VM's start says so); `sub_test_type = migrate` would need the destination started
//! with the plugged vCPUs; Windows guests (tp-qemu counts their CPUs another way).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::common::{
    cancellable, fail_env, guest_number, guest_output, linux_only, login, login_via, main_vm, pause,
};
use super::CPU_DEVICE_HOTPLUGGABLE as SPEC;
use crate::env::{GuestVm, Hotplugged, LoginVia, RebootMethod, ShutdownMethod};
use crate::future::BoxFuture;
use crate::registry::{read_params, TestContext};
use crate::shell::RemoteShell;
use crate::verdict::{TestError, TestResult};

/// `sub_test_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sub {
    Reboot,
    Shutdown,
    PauseResume,
    OnlineOffline,
}

/// What the test read.
struct Setup {
    via: LoginVia,
    devices: Vec<String>,
    per_device: u64,
    settle: Duration,
    verify: Duration,
    sub: Option<Sub>,
    reboot: Option<RebootMethod>,
    shutdown: Option<ShutdownMethod>,
    pause_first: bool,
    count_cmd: String,
}

fn read(ctx: &TestContext) -> Result<Setup, TestError> {
    let mut k = ctx.keys(&SPEC);
    linux_only(
        &mut k,
        "tp-qemu's Windows path (NUMBER_OF_PROCESSORS, WMI topology) is not implemented",
    );
    let via = login_via(&mut k);
    let test = k.choice(
        "hotpluggable_test",
        &[("hotplug", true), ("hotunplug", false)],
    );
    if test == Some(false) {
        k.problem(
            "hotpluggable_test",
            spec::ProblemKind::Invalid {
                expected: "hotplug: hotunplug unplugs vCPU devices of the command line \
                           (`vcpu_enable = yes`), which kvmtest does not build yet"
                    .into(),
            },
        );
    }
    let devices = k.list("vcpu_devices");
    if devices.is_empty() {
        k.problem(
            "vcpu_devices",
            spec::ProblemKind::Invalid {
                expected: "the vCPU devices to plug (e.g. `vcpu1 vcpu2`)".into(),
            },
        );
    }
    let per_device = k.u64("vcpus_count");
    let settle = k.secs("sleep_after_cpu_change");
    let verify = k.secs("verify_wait_timeout");
    let sub = k.choice(
        "sub_test_type",
        &[
            ("reboot", Some(Sub::Reboot)),
            ("shutdown", Some(Sub::Shutdown)),
            ("pause_resume", Some(Sub::PauseResume)),
            ("online_offline", Some(Sub::OnlineOffline)),
            ("migrate", None),
        ],
    );
    if matches!(sub, Some(None)) {
        k.problem(
            "sub_test_type",
            spec::ProblemKind::Invalid {
                expected: "reboot, shutdown, pause_resume or online_offline: kvmtest cannot \
                           migrate a VM with plugged vCPUs yet (the destination starts from \
                           the command line)"
                    .into(),
            },
        );
    }
    let sub = sub.flatten();
    let reboot = k.choice(
        "reboot_method",
        &[
            ("shell", RebootMethod::Shell),
            ("system_reset", RebootMethod::SystemReset),
        ],
    );
    let shutdown = k.choice(
        "shutdown_method",
        &[
            ("shell", ShutdownMethod::Shell),
            ("system_powerdown", ShutdownMethod::SystemPowerdown),
        ],
    );
    if sub == Some(Sub::Reboot) && reboot.is_none() {
        k.problem("reboot_method", spec::ProblemKind::Missing);
    }
    if sub == Some(Sub::Shutdown) && shutdown.is_none() {
        k.problem("shutdown_method", spec::ProblemKind::Missing);
    }
    let pause_first = k.bool("pause_vm_before_hotplug");
    let count_cmd = k.text("cpu_chk_cmd");
    let (via, per_device, settle, verify) = read_params(k, (via, per_device, settle, verify))?;
    Ok(Setup {
        via: SPEC.declared(via, "serial_login")?,
        devices,
        per_device: SPEC.declared(per_device, "vcpus_count")?,
        settle: SPEC.declared(settle, "sleep_after_cpu_change")?,
        verify: SPEC.declared(verify, "verify_wait_timeout")?,
        sub,
        reboot,
        shutdown,
        pause_first,
        count_cmd,
    })
}

/// The guest's CPU count: the first number `cpu_chk_cmd` prints (avocado-vt's
/// `get_cpu_count`).
async fn guest_count(
    ctx: &TestContext,
    shell: &mut Box<dyn RemoteShell>,
    cmd: &str,
) -> Result<u64, TestError> {
    guest_number(ctx, shell, cmd, "a CPU count (cpu_chk_cmd)").await
}

/// Waits `settle`, then until the guest counts `want` CPUs (polled for `verify`).
async fn expect_count(
    ctx: &TestContext,
    shell: &mut Box<dyn RemoteShell>,
    s: &Setup,
    want: u64,
    when: &str,
) -> Result<(), TestError> {
    pause(ctx, s.settle).await?;
    let started = Instant::now();
    loop {
        let seen = guest_count(ctx, shell, &s.count_cmd).await?;
        if seen == want {
            ctx.log
                .info(format_args!("{when}: the guest counts {seen} CPUs"));
            return Ok(());
        }
        if started.elapsed() >= s.verify {
            return Err(TestError::fail(format!(
                "{when}: expected the guest to count {want} CPUs (`{}`); it counts {seen} \
                 after {:.0} s",
                s.count_cmd,
                (s.settle + s.verify).as_secs_f64()
            )));
        }
        pause(ctx, Duration::from_secs(1)).await?;
    }
}

/// The guest's CPU ids (`grep processor /proc/cpuinfo`, tp-qemu's `get_guest_cpu_ids`).
async fn guest_cpu_ids(
    ctx: &TestContext,
    shell: &mut Box<dyn RemoteShell>,
) -> Result<BTreeSet<u64>, TestError> {
    let out = guest_output(ctx, shell, "grep processor /proc/cpuinfo").await?;
    Ok(out
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .filter_map(|n| n.trim().parse().ok())
        .collect())
}

/// QEMU's vCPU slots (`query-hotpluggable-cpus`): (slots in all, taken, sockets, cores per
/// socket, threads per core).
pub(super) async fn slots(
    ctx: &TestContext,
    vm: &dyn GuestVm,
) -> Result<(u64, u64, Topology), TestError> {
    let reply = cancellable(ctx, async {
        vm.qmp("query-hotpluggable-cpus", json!({}))
            .await
            .map_err(|e| fail_env("query-hotpluggable-cpus", &e))
    })
    .await?;
    let all = reply.as_array().cloned().unwrap_or_default();
    let vcpus = |s: &Value| s.get("vcpus-count").and_then(Value::as_u64).unwrap_or(1);
    let total = all.iter().map(vcpus).sum();
    let taken = all
        .iter()
        .filter(|s| s.get("qom-path").is_some())
        .map(vcpus)
        .sum();
    Ok((total, taken, Topology::of(&all)))
}

/// A topology as `lscpu` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Topology {
    pub(super) sockets: u64,
    pub(super) cores: u64,
    pub(super) threads: u64,
}

impl Topology {
    /// QEMU's, from its slots' ids (a level QEMU does not list counts 1).
    fn of(slots: &[Value]) -> Topology {
        let id = |s: &Value, k: &str| {
            s.get("props")
                .and_then(|p| p.get(k))
                .and_then(Value::as_u64)
        };
        let mut cores: BTreeMap<u64, BTreeSet<(u64, u64, u64)>> = BTreeMap::new();
        let mut threads: BTreeMap<(u64, u64, u64, u64), u64> = BTreeMap::new();
        for s in slots {
            let socket = id(s, "socket-id").unwrap_or(0);
            let core = (
                id(s, "die-id").unwrap_or(0),
                id(s, "cluster-id").unwrap_or(0),
                id(s, "core-id").unwrap_or(0),
            );
            cores.entry(socket).or_default().insert(core);
            *threads.entry((socket, core.0, core.1, core.2)).or_default() += 1;
        }
        Topology {
            sockets: cores.len().max(1) as u64,
            cores: cores.values().map(BTreeSet::len).max().unwrap_or(1) as u64,
            threads: threads.values().copied().max().unwrap_or(1),
        }
    }

    /// The guest's, from `lscpu` (tp-qemu's `check_if_vm_vcpu_topology_match`).
    fn lscpu(out: &str) -> Option<Topology> {
        let field = |name: &str| {
            out.lines()
                .find_map(|l| l.trim().strip_prefix(name))
                .and_then(|v| v.trim().trim_start_matches(':').trim().parse().ok())
        };
        Some(Topology {
            sockets: field("Socket(s):")?,
            cores: field("Core(s) per socket:")?,
            threads: field("Thread(s) per core:")?,
        })
    }
}

/// Sends `device_del` for each of `devices` without waiting (the guest releases them once it
/// runs again), then — once resumed — waits until their slots are free.
async fn unplug_paused(
    ctx: &TestContext,
    vm: &dyn GuestVm,
    devices: &[Hotplugged],
    timeout: Duration,
) -> Result<(), TestError> {
    for d in devices.iter().rev() {
        cancellable(ctx, async {
            vm.qmp("device_del", json!({"id": d.id}))
                .await
                .map_err(|e| fail_env(&format!("device_del {}", d.id), &e))
        })
        .await?;
    }
    cancellable(ctx, async {
        vm.qmp("cont", json!({}))
            .await
            .map_err(|e| fail_env("cont", &e))
    })
    .await?;
    let started = Instant::now();
    loop {
        let reply = cancellable(ctx, async {
            vm.qmp("query-hotpluggable-cpus", json!({}))
                .await
                .map_err(|e| fail_env("query-hotpluggable-cpus", &e))
        })
        .await?;
        let left: Vec<&str> = devices
            .iter()
            .map(|d| d.id.as_str())
            .filter(|id| {
                let path = format!("/machine/peripheral/{id}");
                reply
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|s| s.get("qom-path").and_then(Value::as_str) == Some(path.as_str()))
            })
            .collect();
        if left.is_empty() {
            return Ok(());
        }
        if started.elapsed() >= timeout {
            return Err(TestError::fail(format!(
                "vCPU devices {} still plugged {:.0} s after the resume (device_del sent while \
                 paused)",
                left.join(", "),
                timeout.as_secs_f64()
            )));
        }
        pause(ctx, Duration::from_millis(500)).await?;
    }
}

/// `type = cpu_device_hotpluggable`.
pub fn run(ctx: &TestContext) -> BoxFuture<'_, TestResult> {
    Box::pin(async move {
        let s = read(ctx)?;
        let vm = main_vm(ctx)?;
        let login_timeout = crate::catalogue::session::login_timeout(ctx)?;
        let mut shell = login(ctx, &vm, s.via).await?;
        let (maxcpus, smp, topology) = slots(ctx, vm.as_ref()).await?;
        let before_ids = guest_cpu_ids(ctx, &mut shell).await?;
        let before = guest_count(ctx, &mut shell, &s.count_cmd).await?;
        let plugged_vcpus = s.per_device * s.devices.len() as u64;
        let mut expected = before + plugged_vcpus;
        ctx.log.info(format_args!(
            "QEMU: {smp} of {maxcpus} vCPU slots taken; the guest counts {before}; plugging {}",
            s.devices.join(", ")
        ));
        if s.pause_first {
            cancellable(ctx, async {
                vm.qmp("stop", json!({}))
                    .await
                    .map_err(|e| fail_env("stop", &e))
            })
            .await?;
        }
        let mut plugged = Vec::new();
        for d in &s.devices {
            let h = cancellable(ctx, async {
                vm.hotplug_vcpu(d)
                    .await
                    .map_err(|e| fail_env(&format!("plugging vCPU {d}"), &e))
            })
            .await?;
            plugged.push(h);
        }
        if s.pause_first {
            cancellable(ctx, async {
                vm.qmp("cont", json!({}))
                    .await
                    .map_err(|e| fail_env("cont", &e))
            })
            .await?;
        }
        expect_count(ctx, &mut shell, &s, expected, "after the hotplug").await?;
        let now_ids = guest_cpu_ids(ctx, &mut shell).await?;

        match s.sub {
            Some(Sub::Reboot) => {
                let method = s.reboot.unwrap_or(RebootMethod::Shell);
                drop(shell);
                let _ = cancellable(ctx, async {
                    vm.reboot(method, login_timeout)
                        .await
                        .map_err(|e| fail_env("rebooting after the hotplug", &e))
                })
                .await?;
            }
            Some(Sub::Shutdown) => {
                let method = s.shutdown.unwrap_or(ShutdownMethod::Shell);
                drop(shell);
                cancellable(ctx, async {
                    vm.shutdown(method, Duration::from_secs(360))
                        .await
                        .map_err(|e| fail_env("shutting down after the hotplug", &e))
                })
                .await?;
            }
            Some(Sub::PauseResume) => {
                cancellable(ctx, async {
                    vm.qmp("stop", json!({}))
                        .await
                        .map_err(|e| fail_env("stop", &e))
                })
                .await?;
                // tp-qemu waits `verify_wait_timeout` for the guest's count after the resume.
                unplug_paused(ctx, vm.as_ref(), &plugged, s.verify).await?;
                expected -= plugged_vcpus;
            }
            Some(Sub::OnlineOffline) => {
                let new: Vec<u64> = now_ids.difference(&before_ids).copied().collect();
                for id in new.iter().rev() {
                    guest_output(
                        ctx,
                        &mut shell,
                        &format!("echo 0 > /sys/devices/system/cpu/cpu{id}/online"),
                    )
                    .await?;
                }
                expect_count(ctx, &mut shell, &s, before, "with the new CPUs offline").await?;
                for id in &new {
                    guest_output(
                        ctx,
                        &mut shell,
                        &format!("echo 1 > /sys/devices/system/cpu/cpu{id}/online"),
                    )
                    .await?;
                }
            }
            None => {}
        }
        if !vm.is_alive() {
            return Ok(());
        }
        let mut shell = login(ctx, &vm, s.via).await?;
        expect_count(ctx, &mut shell, &s, expected, "at the end").await?;
        if expected == maxcpus {
            let out = guest_output(ctx, &mut shell, "lscpu").await?;
            let guest = Topology::lscpu(&out).ok_or_else(|| {
                TestError::error(format!("lscpu printed no topology: {:?}", out.trim_end()))
            })?;
            if guest != topology {
                return Err(TestError::fail(format!(
                    "with every vCPU slot taken the guest's topology (lscpu) is {guest:?}, \
                     QEMU's (query-hotpluggable-cpus) {topology:?}"
                )));
            }
            ctx.log
                .info(format_args!("the guest's topology is QEMU's: {guest:?}"));
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topologies_of_qemu_slots_and_of_lscpu() {
        let slot = |s: u64, c: u64, t: u64| json!({"props": {"socket-id": s, "core-id": c, "thread-id": t}, "vcpus-count": 1});
        let all = [slot(0, 0, 0), slot(0, 1, 0), slot(1, 0, 0), slot(1, 1, 0)];
        let want = Topology {
            sockets: 2,
            cores: 2,
            threads: 1,
        };
        assert_eq!(Topology::of(&all), want);
        let lscpu = "Architecture:            x86_64\n    Thread(s) per core:  1\n    \
                     Core(s) per socket:  2\n    Socket(s):           2\n";
        assert_eq!(Topology::lscpu(lscpu), Some(want));
        assert_eq!(Topology::lscpu("Architecture: x86_64"), None);
    }
}
