//! `balloon_check`: tp-qemu's memory ballooning test on a Linux guest.
//!
//! As tp-qemu's `balloon_check.py` (`BallooningTestLinux`): wait for the guest to settle, take
//! the guest's total memory and the balloon's size (`query-balloon`) as the origin (ballooning
//! back to `mem` first if they differ), then for each tag of `test_tags` pick the target — the
//! tag's `expect_memory` (MiB), or `expect_memory_ratio` of `mem`, or a random size within the
//! legal range of its `balloon_type` (`evict`: from what the guest uses plus `balloon_buffer`,
//! at least `minmem`, up to the current size; `enlarge`: from the current size up to `mem`) —
//! balloon to it (QMP `balloon`), wait up to `balloon_timeout` for QEMU to report it, and check
//! that QEMU's size moved by exactly the ballooned amount and the guest's `MemTotal` by the
//! same within `guest_compare_threshold` MiB. The memory is ballooned back to `mem` at the end,
//! also after a failure. The first check runs before any ballooning, as tp-qemu's does.
//!
//! Not here: tp-qemu's sub-tests after ballooning (`run_sub_test_after_balloon`,
//! `sub_test_after_balloon`: migration, reboot, shutdown, suspend): a tag asking for one is an
//! error saying so, never a silent pass; Windows guests (`os_type = windows`, the balloon
//! service) likewise.

use std::time::{Duration, Instant};

use serde_json::json;

use super::common::{cancellable, fail_env, guest_number, login, login_via, main_vm, pause};
use super::BALLOON_CHECK;
use crate::env::GuestVm;
use crate::future::BoxFuture;
use crate::registry::{read_params, TestContext};
use crate::shell::RemoteShell;
use crate::verdict::{TestError, TestResult};

const MIB: u64 = 1024 * 1024;

/// One step of `test_tags`, as its tag's params give it.
#[derive(Debug, Clone, PartialEq)]
enum Target {
    /// `expect_memory` (MiB).
    Fixed(u64),
    /// `expect_memory_ratio` of `mem`.
    Ratio(f64),
    /// A random size in the legal range of `balloon_type`.
    Random { enlarge: bool },
}

/// QEMU's balloon size (`query-balloon`'s `actual`), in MiB.
async fn balloon_size(ctx: &TestContext, vm: &dyn GuestVm) -> Result<u64, TestError> {
    let reply = cancellable(ctx, async {
        vm.qmp("query-balloon", json!({}))
            .await
            .map_err(|e| fail_env("query-balloon", &e))
    })
    .await?;
    reply
        .get("actual")
        .and_then(serde_json::Value::as_u64)
        .map(|b| b / MIB)
        .ok_or_else(|| TestError::fail(format!("query-balloon answered {reply}, without `actual`")))
}

/// The first number of `cmd`'s output in KiB (a `/proc/meminfo` line), in MiB.
async fn guest_mib(
    ctx: &TestContext,
    shell: &mut Box<dyn RemoteShell>,
    cmd: &str,
) -> Result<u64, TestError> {
    Ok(guest_number(ctx, shell, cmd, "a /proc/meminfo size in kB").await? / 1024)
}

/// A uniformly random whole number in `[a, b]` (either order).
fn uniform(a: u64, b: u64) -> u64 {
    rand::random_range(a.min(b)..=a.max(b))
}

struct Balloon<'a> {
    ctx: &'a TestContext,
    vm: &'a dyn GuestVm,
    shell: Box<dyn RemoteShell>,
    total_cmd: String,
    free_cmd: String,
    /// `mem`, MiB.
    ori_mem: u64,
    /// The guest's total memory at the start, MiB.
    ori_gmem: u64,
    /// QEMU's balloon size now, MiB.
    current: u64,
    threshold: u64,
    timeout: Duration,
}

impl Balloon<'_> {
    /// Balloons to `target` MiB and waits for QEMU to report what it will reach (`mem` at
    /// most).
    async fn balloon(&mut self, target: u64) -> Result<(), TestError> {
        self.ctx
            .log
            .info(format_args!("ballooning to {target} MiB"));
        cancellable(self.ctx, async {
            self.vm
                .qmp("balloon", json!({"value": target * MIB}))
                .await
                .map_err(|e| fail_env(&format!("balloon to {target} MiB"), &e))
        })
        .await?;
        let expect = target.min(self.ori_mem);
        let started = Instant::now();
        loop {
            let now = balloon_size(self.ctx, self.vm).await?;
            if now == expect {
                self.current = now;
                return Ok(());
            }
            if started.elapsed() >= self.timeout {
                return Err(TestError::fail(format!(
                    "ballooned to {target} MiB: QEMU still reports {now} MiB after {} s \
                     (balloon_timeout), expected {expect} MiB",
                    self.timeout.as_secs()
                )));
            }
            pause(self.ctx, Duration::from_millis(500)).await?;
        }
    }

    /// tp-qemu's `memory_check`: QEMU's size moved by exactly `ballooned` MiB from `mem`, the
    /// guest's total by the same within the threshold.
    async fn check(&mut self, step: &str, ballooned: u64) -> Result<(), TestError> {
        let mmem = balloon_size(self.ctx, self.vm).await?;
        let total_cmd = self.total_cmd.clone();
        let gmem = guest_mib(self.ctx, &mut self.shell, &total_cmd).await?;
        let guest_ballooned = gmem.abs_diff(self.ori_gmem);
        self.ctx.log.info(format_args!(
            "{step}: QEMU reports {mmem} MiB of {} MiB, the guest {gmem} MiB total (was {} MiB)",
            self.ori_mem, self.ori_gmem
        ));
        if mmem.abs_diff(self.ori_mem) != ballooned
            || guest_ballooned.abs_diff(ballooned) > self.threshold
        {
            return Err(TestError::fail(format!(
                "balloon check {step}: expected {ballooned} MiB ballooned out of {} MiB; QEMU \
                 reports {mmem} MiB ({} MiB ballooned), the guest's total memory is {gmem} MiB \
                 ({guest_ballooned} MiB less than its {} MiB at the start; \
                 guest_compare_threshold {} MiB)",
                self.ori_mem,
                mmem.abs_diff(self.ori_mem),
                self.ori_gmem,
                self.threshold
            )));
        }
        Ok(())
    }

    /// The legal range of a random target (tp-qemu's `get_memory_boundary`).
    async fn boundary(
        &mut self,
        enlarge: bool,
        minmem: u64,
        buffer: u64,
    ) -> Result<(u64, u64), TestError> {
        let free_cmd = self.free_cmd.clone();
        let free = guest_mib(self.ctx, &mut self.shell, &free_cmd).await?;
        let used = (self.ori_mem.saturating_sub(free) + buffer).min(self.ori_mem);
        let (mut min, mut max) = (minmem, self.ori_mem);
        if enlarge {
            min = self.current;
        } else {
            max = self.current;
        }
        min = min.max(used);
        Ok((min, max))
    }
}

/// `type = balloon_check`.
pub fn run(ctx: &TestContext) -> BoxFuture<'_, TestResult> {
    Box::pin(async move {
        let mut k = ctx.keys(&BALLOON_CHECK);
        let via = login_via(&mut k);
        let tags = k.list("test_tags");
        let settle = k.secs("sleep_before_balloon");
        let timeout = k.secs("balloon_timeout");
        let threshold = k.u64("guest_compare_threshold");
        let buffer = k.u64("balloon_buffer");
        let minmem = k.parse("minmem", |v| {
            v.parse::<spec::types::MemSize>()
                .map(|m| m.mib())
                .map_err(|e| e.to_string())
        });
        let total_cmd = k.text("total_mem_cmd");
        let free_cmd = k.text("free_mem_cmd");
        let windows = k.opt("os_type").is_some_and(|o| o == "windows");
        let mut steps = Vec::new();
        for tag in &tags {
            let p = ctx.params.object_params(tag);
            let sub = p
                .get("run_sub_test_after_balloon")
                .is_some_and(|v| v == "yes")
                && p.get("sub_test_after_balloon")
                    .is_some_and(|v| !v.is_empty());
            if sub {
                k.problem(
                    &format!("run_sub_test_after_balloon_{tag}"),
                    spec::ProblemKind::Invalid {
                        expected: "no: sub-tests after ballooning (tp-qemu's \
                                   sub_test_after_balloon) are not supported by kvmtest yet"
                            .into(),
                    },
                );
            }
            let target = if let Some(m) = p.get("expect_memory") {
                m.trim().parse().ok().map(Target::Fixed)
            } else if let Some(r) = p.get("expect_memory_ratio") {
                r.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|r| *r > 0.0)
                    .map(Target::Ratio)
            } else {
                match p.get("balloon_type") {
                    Some("evict") => Some(Target::Random { enlarge: false }),
                    Some("enlarge") => Some(Target::Random { enlarge: true }),
                    _ => None,
                }
            };
            match target {
                Some(t) => steps.push((tag.clone(), t)),
                None => k.problem(
                    &format!("balloon_type_{tag}"),
                    spec::ProblemKind::Invalid {
                        expected: format!(
                            "for tag {tag} of test_tags: `expect_memory` (MiB), \
                             `expect_memory_ratio` (above 0) or `balloon_type` (evict, enlarge)"
                        ),
                    },
                ),
            }
        }
        if windows {
            k.problem(
                "os_type",
                spec::ProblemKind::Invalid {
                    expected: "a Linux guest: the Windows balloon service is not supported by \
                               kvmtest yet"
                        .into(),
                },
            );
        }
        let (via, settle, timeout, threshold, buffer, minmem) =
            read_params(k, (via, settle, timeout, threshold, buffer, minmem))?;
        let via = BALLOON_CHECK.declared(via, "serial_login")?;
        let settle = BALLOON_CHECK.declared(settle, "sleep_before_balloon")?;
        let timeout = BALLOON_CHECK.declared(timeout, "balloon_timeout")?;
        let threshold = BALLOON_CHECK.declared(threshold, "guest_compare_threshold")?;
        let buffer = BALLOON_CHECK.declared(buffer, "balloon_buffer")?;
        let minmem = BALLOON_CHECK.declared(minmem, "minmem")?;
        let vm_name = crate::catalogue::session::main_vm_name(ctx)?;
        let spec = spec::vm::VmSpec::new(&ctx.params, &vm_name)?;
        let Some(mem) = spec.mem else {
            return Err(TestError::error(format!(
                "vm {vm_name}: mem is not set: ballooning needs the memory the VM was given"
            )));
        };
        if spec.devices.balloons.is_empty() {
            return Err(TestError::error(format!(
                "vm {vm_name} has no balloon device: set `balloon` (tp-qemu: balloon = balloon0)"
            )));
        }
        let vm = main_vm(ctx)?;
        let shell = login(ctx, &vm, via).await?;
        ctx.log.info(format_args!(
            "waiting {} s for the guest's applications to settle",
            settle.as_secs()
        ));
        pause(ctx, settle).await?;
        let mut b = Balloon {
            ctx,
            vm: vm.as_ref(),
            shell,
            total_cmd,
            free_cmd,
            ori_mem: mem.mib(),
            ori_gmem: 0,
            current: 0,
            threshold,
            timeout,
        };
        let total_cmd = b.total_cmd.clone();
        b.ori_gmem = guest_mib(ctx, &mut b.shell, &total_cmd).await?;
        b.current = balloon_size(ctx, b.vm).await?;
        if b.current != b.ori_mem {
            let ori = b.ori_mem;
            b.balloon(ori).await?;
            b.ori_gmem = guest_mib(ctx, &mut b.shell, &total_cmd).await?;
        }
        let result = run_steps(&mut b, &steps, minmem, buffer).await;
        // Back to `mem`, also after a failure; the failure is the verdict.
        let ori = b.ori_mem;
        let reset = b.balloon(ori).await;
        result?;
        reset
    })
}

async fn run_steps(
    b: &mut Balloon<'_>,
    steps: &[(String, Target)],
    minmem: u64,
    buffer: u64,
) -> Result<(), TestError> {
    b.check("before ballooning", 0).await?;
    for (tag, target) in steps {
        let expect = match *target {
            Target::Fixed(m) => m,
            Target::Ratio(r) => (b.ori_mem as f64 * r) as u64,
            Target::Random { enlarge } => {
                let (min, max) = b.boundary(enlarge, minmem, buffer).await?;
                uniform(min, max)
            }
        };
        b.ctx
            .log
            .info(format_args!("{tag}: target {expect} MiB ({target:?})"));
        b.balloon(expect).await?;
        let ballooned = match b.ori_mem.checked_sub(expect) {
            None => 0,
            Some(d) if d == b.ori_mem => 0,
            Some(d) => d,
        };
        b.check(&format!("after {tag}"), ballooned).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_targets_stay_in_their_range() {
        for _ in 0..1000 {
            let v = uniform(600, 700);
            assert!((600..=700).contains(&v), "{v}");
            let v = uniform(700, 600);
            assert!((600..=700).contains(&v), "{v}");
        }
        assert_eq!(uniform(5, 5), 5);
    }
}
