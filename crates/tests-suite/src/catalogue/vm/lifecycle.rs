//! `boot`, `reboot`, `shutdown` and `migration`: the guest's life cycle.
//!
//! Reboots and migrations are proven from inside the guest: the kernel's `boot_id` (a random
//! UUID drawn at every boot) must change across a reboot and stay across a migration, and a
//! token written to the guest's RAM-backed root must vanish with a reboot and survive a
//! migration.

use super::common::{
    cancellable, fail_env, guest_cmd, guest_output, login, login_via, main_vm, pause,
};
use super::{BOOT, MIGRATION, REBOOT, SHUTDOWN};
use crate::catalogue::session::{all_vms, login_timeout};
use crate::env::{
    MigrationMode, MigrationOutcome, MigrationProtocol, MigrationRequest, RebootMethod,
    ShutdownMethod,
};
use crate::future::BoxFuture;
use crate::registry::{read_params, TestContext};
use crate::shell::RemoteShell;
use crate::verdict::{TestError, TestResult};

pub(super) const BOOT_ID: &str = "cat /proc/sys/kernel/random/boot_id";
/// Where the reboot and migration tokens go: `/dev` is a RAM file system on every Linux guest
/// (devtmpfs), whether its root is an initramfs or a disk (a disk's `/tmp` survives a reboot).
const TOKEN_DIR: &str = "/dev/shm";
const TOKEN_FILE: &str = "/dev/shm/kvmtest-token";

/// tp-qemu's `reboot_method`: `None` when unset.
fn reboot_method(k: &mut spec::Keys<'_>) -> Option<RebootMethod> {
    k.choice(
        "reboot_method",
        &[
            ("shell", RebootMethod::Shell),
            ("system_reset", RebootMethod::SystemReset),
        ],
    )
}

/// Runs `boot_command` (if any) in `shell` and checks `boot_expect`.
async fn boot_check(
    ctx: &TestContext,
    shell: &mut Box<dyn RemoteShell>,
    cmd: Option<&str>,
    expect: Option<&regex::Regex>,
) -> Result<(), TestError> {
    let Some(cmd) = cmd else { return Ok(()) };
    let out = guest_cmd(ctx, shell, cmd)
        .await
        .map_err(|e| TestError::fail(format!("after login, {}", crate::error::error_chain(&e))))?;
    match expect {
        Some(re) if !re.is_match(&out) => Err(TestError::fail(format!(
            "expected the output of `{cmd}` to match /{re}/; the guest printed {:?}",
            out.trim_end()
        ))),
        None if out.trim().is_empty() => Err(TestError::fail(format!(
            "`{cmd}` printed nothing after login"
        ))),
        _ => Ok(()),
    }
}

/// `type = boot` (tp-qemu's `boot.py`): log into every VM; with `reboot_method`, reboot each
/// `reboot_count` times and log in again.
pub fn run_boot(ctx: &TestContext) -> BoxFuture<'_, TestResult> {
    Box::pin(async move {
        let mut k = ctx.keys(&BOOT);
        let via = login_via(&mut k);
        // Unset: no reboot (a bad value is a problem of `k`, so read_params fails).
        let method = reboot_method(&mut k);
        let count = k.u64("reboot_count");
        let sleep = k.secs("sleep_before_reset");
        let cmd = k.opt("boot_command");
        let expect = k.regex("boot_expect", false);
        let (via, method, count, sleep) = read_params(k, (via, method, count, sleep))?;
        let via = BOOT.declared(via, "serial_login")?;
        let count = BOOT.declared(count, "reboot_count")?;
        let sleep = BOOT.declared(sleep, "sleep_before_reset")?;
        let vms = all_vms(ctx)?;
        for (vm, _) in &vms {
            let mut shell = login(ctx, vm, via).await?;
            boot_check(ctx, &mut shell, cmd.as_deref(), expect.as_ref()).await?;
        }
        if let Some(method) = method {
            for (vm, timeout) in &vms {
                reboots(ctx, vm, via, method, count, sleep, *timeout).await?;
                let mut shell = login(ctx, vm, via).await?;
                boot_check(ctx, &mut shell, cmd.as_deref(), expect.as_ref()).await?;
            }
        }
        Ok(())
    })
}

async fn boot_id(ctx: &TestContext, shell: &mut Box<dyn RemoteShell>) -> Result<String, TestError> {
    let out = guest_cmd(ctx, shell, BOOT_ID)
        .await
        .map_err(|e| TestError::error(crate::error::error_chain(&e)))?;
    Ok(out.trim().to_owned())
}

/// A random token for the guest's RAM-backed `/dev`.
fn token() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("kvmtest-{t:x}-{}", std::process::id())
}

/// `count` reboots of `vm` by `method`, each proven by a new boot_id and by the loss of a token
/// written to RAM before it.
async fn reboots(
    ctx: &TestContext,
    vm: &std::sync::Arc<dyn crate::env::GuestVm>,
    via: crate::env::LoginVia,
    method: RebootMethod,
    count: u64,
    sleep_before_reset: std::time::Duration,
    timeout: std::time::Duration,
) -> Result<(), TestError> {
    for round in 1..=count {
        let mut shell = login(ctx, vm, via).await?;
        let before = boot_id(ctx, &mut shell).await?;
        let tok = token();
        guest_cmd(
            ctx,
            &mut shell,
            &format!("mkdir -p {TOKEN_DIR} && echo {tok} > {TOKEN_FILE}"),
        )
        .await
        .map_err(|e| TestError::error(crate::error::error_chain(&e)))?;
        // The serial console is free again for the reboot's own login.
        drop(shell);
        if method == RebootMethod::SystemReset && !sleep_before_reset.is_zero() {
            ctx.log.info(format_args!(
                "sleeping {} s before system_reset (sleep_before_reset)",
                sleep_before_reset.as_secs_f64()
            ));
            pause(ctx, sleep_before_reset).await?;
        }
        ctx.log.info(format_args!(
            "{}: reboot {round}/{count} by {method:?}",
            vm.name()
        ));
        let mut shell = cancellable(ctx, async {
            vm.reboot(method, timeout).await.map_err(|e| {
                fail_env(
                    &format!(
                        "{}: the guest did not come back from reboot {round} ({method:?})",
                        vm.name()
                    ),
                    &e,
                )
            })
        })
        .await?;
        let after = boot_id(ctx, &mut shell).await?;
        if after == before {
            return Err(TestError::fail(format!(
                "{}: reboot {round} ({method:?}): expected a new boot_id, the guest still shows \
                 {before}",
                vm.name()
            )));
        }
        let left = guest_output(ctx, &mut shell, &format!("cat {TOKEN_FILE} 2>&1")).await?;
        if left.contains(&tok) {
            return Err(TestError::fail(format!(
                "{}: reboot {round} ({method:?}): {TOKEN_FILE} written before the reboot is \
                 still there",
                vm.name()
            )));
        }
    }
    Ok(())
}

/// `type = reboot`: `reboot_count` reboots of the main VM by `reboot_method` (default shell).
pub fn run_reboot(ctx: &TestContext) -> BoxFuture<'_, TestResult> {
    Box::pin(async move {
        let mut k = ctx.keys(&REBOOT);
        let via = login_via(&mut k);
        let method = reboot_method(&mut k);
        let count = k.u64("reboot_count");
        let sleep = k.secs("sleep_before_reset");
        let (via, method, count, sleep) = read_params(k, (via, method, count, sleep))?;
        let via = REBOOT.declared(via, "serial_login")?;
        let method = REBOOT.declared(method, "reboot_method")?;
        let count = REBOOT.declared(count, "reboot_count")?;
        let sleep = REBOOT.declared(sleep, "sleep_before_reset")?;
        let timeout = login_timeout(ctx)?;
        let vm = main_vm(ctx)?;
        reboots(ctx, &vm, via, method, count, sleep, timeout).await
    })
}

/// `type = shutdown` (tp-qemu's `shutdown.py`): power the guest off by `shutdown_method`;
/// QEMU must exit; `shutdown_count` rounds, the VM started again between them.
pub fn run_shutdown(ctx: &TestContext) -> BoxFuture<'_, TestResult> {
    Box::pin(async move {
        let mut k = ctx.keys(&SHUTDOWN);
        let via = login_via(&mut k);
        let method = k.choice(
            "shutdown_method",
            &[
                ("shell", ShutdownMethod::Shell),
                ("system_powerdown", ShutdownMethod::SystemPowerdown),
            ],
        );
        let count = k.u64("shutdown_count");
        let sleep = k.secs("sleep_before_powerdown");
        let timeout = k.secs("shutdown_timeout");
        // Read for its problems only: with -no-shutdown the env always checks the status.
        let _check_from_monitor = k.bool("check_from_monitor");
        let (via, method, count, sleep, timeout) =
            read_params(k, (via, method, count, sleep, timeout))?;
        let via = SHUTDOWN.declared(via, "serial_login")?;
        let method = SHUTDOWN.declared(method, "shutdown_method")?;
        let count = SHUTDOWN.declared(count, "shutdown_count")?;
        let sleep = SHUTDOWN.declared(sleep, "sleep_before_powerdown")?;
        let timeout = SHUTDOWN.declared(timeout, "shutdown_timeout")?;
        let name = crate::catalogue::session::main_vm_name(ctx)?;
        for round in 1..=count {
            if round > 1 {
                ctx.log
                    .info(format_args!("starting {name} again for shutdown {round}"));
                cancellable(ctx, async {
                    ctx.env
                        .start_vm(&name, &ctx.params, &ctx.dir)
                        .await
                        .map_err(|e| fail_env(&format!("restarting {name}"), &e))
                })
                .await?;
            }
            let vm = main_vm(ctx)?;
            // The guest is up (and its ACPI handling running) before the button is pressed.
            let mut shell = login(ctx, &vm, via).await?;
            guest_cmd(ctx, &mut shell, "true")
                .await
                .map_err(|e| TestError::error(crate::error::error_chain(&e)))?;
            drop(shell);
            if method == ShutdownMethod::SystemPowerdown && !sleep.is_zero() {
                ctx.log.info(format_args!(
                    "sleeping {} s before system_powerdown (sleep_before_powerdown)",
                    sleep.as_secs_f64()
                ));
                pause(ctx, sleep).await?;
            }
            ctx.log
                .info(format_args!("shutdown {round}/{count} by {method:?}"));
            cancellable(ctx, async {
                vm.shutdown(method, timeout).await.map_err(|e| {
                    fail_env(
                        &format!(
                            "shutdown {round}: expected QEMU to exit after the {method:?} shutdown"
                        ),
                        &e,
                    )
                })
            })
            .await?;
            if vm.is_alive() {
                return Err(TestError::fail(format!(
                    "shutdown {round}: QEMU still runs after the shutdown"
                )));
            }
        }
        Ok(())
    })
}

/// `mig_speed` as tp-qemu writes it (`1G`, `125M`, `1b`; no suffix: MiB) in bytes per second.
pub(super) fn parse_speed(text: &str) -> Option<u64> {
    let t = text.trim();
    let (num, mult) = match t.char_indices().last()? {
        (i, 'b' | 'B') => (&t[..i], 1u64),
        (i, 'k' | 'K') => (&t[..i], 1 << 10),
        (i, 'm' | 'M') => (&t[..i], 1 << 20),
        (i, 'g' | 'G') => (&t[..i], 1 << 30),
        (i, 't' | 'T') => (&t[..i], 1 << 40),
        (_, c) if c.is_ascii_digit() => (t, 1 << 20),
        _ => return None,
    };
    let n: f64 = num.trim().parse().ok()?;
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let bytes = (n * mult as f64) as u64;
    (n.is_finite() && n > 0.0)
        .then_some(bytes)
        .filter(|&b| b > 0)
}

/// `migrate_capabilities` as tp-qemu writes it, a Python dict of names to `on`/`off`:
/// `{'postcopy-ram': 'on', 'xbzrle': 'off'}`.
pub(super) fn parse_capabilities(text: &str) -> Option<Vec<(String, bool)>> {
    let inner = text.trim().strip_prefix('{')?.strip_suffix('}')?;
    let mut out = Vec::new();
    for item in inner.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (k, v) = item.split_once(':')?;
        let unquote = |s: &str| s.trim().trim_matches(|c| c == '\'' || c == '"').to_owned();
        let state = match unquote(v).as_str() {
            "on" | "yes" | "true" | "True" => true,
            "off" | "no" | "false" | "False" => false,
            _ => return None,
        };
        let name = unquote(k);
        if name.is_empty() {
            return None;
        }
        out.push((name, state));
    }
    Some(out)
}

/// The background-command keys of a migration test.
struct Background {
    start: Option<String>,
    check: Option<String>,
    kill: Option<String>,
    kill_ignore_status: u64,
}

/// `type = migration` (tp-qemu's `migration.py`): migrate `ping_pong` times over
/// `migration_protocol`; the guest's state and its background command must survive.
pub fn run_migration(ctx: &TestContext) -> BoxFuture<'_, TestResult> {
    Box::pin(async move {
        let mut k = ctx.keys(&MIGRATION);
        let via = login_via(&mut k);
        let protocol = k.choice(
            "migration_protocol",
            &[
                ("tcp", MigrationProtocol::Tcp),
                ("unix", MigrationProtocol::Unix),
                ("exec", MigrationProtocol::Exec),
            ],
        );
        let offline = k.bool("offline");
        let cancel = k.bool("mig_cancel");
        let timeout = k.secs("mig_timeout");
        let ping_pong = k.u64("ping_pong");
        let exec_src = k.opt("migration_exec_cmd_src");
        let exec_dst = k.opt("migration_exec_cmd_dst");
        let cmd = k.text("migration_test_command");
        let living = k.bool("migration_living_guest");
        let bg = Background {
            start: k.opt("migration_bg_command"),
            check: k.opt("migration_bg_check_command"),
            kill: k.opt("migration_bg_kill_command"),
            kill_ignore_status: k.u64("migration_bg_kill_ignore_status").unwrap_or(1),
        };
        let pre = k.list("pre_migrate");
        let post = k.list("post_migrate");
        let speed_text = k.text("mig_speed");
        let caps_text = k.opt("migrate_capabilities");
        let stress = k.opt("guest_stress_test");
        let inner = k.opt("migrate_inner_funcs");
        let vmstate = k.bool("vmstate_check");
        let (via, protocol, timeout, ping_pong) =
            read_params(k, (via, protocol, timeout, ping_pong))?;
        let via = MIGRATION.declared(via, "serial_login")?;
        let protocol = MIGRATION.declared(protocol, "migration_protocol")?;
        let timeout = MIGRATION.declared(timeout, "mig_timeout")?;
        let ping_pong = MIGRATION.declared(ping_pong, "ping_pong")?;
        // What kvmtest cannot do is the test's error, naming the key: never skipped silently.
        if let Some(f) = inner {
            return Err(TestError::error(format!(
                "migrate_inner_funcs = {f}: functions during the migration (postcopy switch-over) \
                 are not supported by kvmtest yet"
            )));
        }
        if vmstate {
            return Err(TestError::error(
                "vmstate_check = yes: comparing device state dumps is not supported by kvmtest yet",
            ));
        }
        let mut max_bandwidth = None;
        for f in &pre {
            match f.as_str() {
                "mig_set_speed" => {
                    max_bandwidth = Some(parse_speed(&speed_text).ok_or_else(|| {
                        TestError::error(format!(
                            "mig_speed = {speed_text}: expected a size per second such as 1G, \
                             125M or 1b"
                        ))
                    })?);
                }
                other => {
                    return Err(TestError::error(format!(
                        "pre_migrate = {}: unknown function {other} (kvmtest knows mig_set_speed)",
                        pre.join(" ")
                    )))
                }
            }
        }
        if let Some(f) = post.first() {
            return Err(TestError::error(format!(
                "post_migrate = {}: unknown function {f} (kvmtest knows none)",
                post.join(" ")
            )));
        }
        let capabilities = match &caps_text {
            Some(t) => parse_capabilities(t).ok_or_else(|| {
                TestError::error(format!(
                    "migrate_capabilities = {t}: expected a dict of capability names to on/off, \
                     such as {{'postcopy-ram': 'on'}}"
                ))
            })?,
            None => Vec::new(),
        };
        let exec_commands = match (exec_src, exec_dst) {
            (Some(s), Some(d)) => Some((s, d)),
            (None, None) => None,
            (s, _) => {
                return Err(TestError::error(format!(
                    "{} is set without {}: an exec migration needs both commands",
                    if s.is_some() {
                        "migration_exec_cmd_src"
                    } else {
                        "migration_exec_cmd_dst"
                    },
                    if s.is_some() {
                        "migration_exec_cmd_dst"
                    } else {
                        "migration_exec_cmd_src"
                    },
                )))
            }
        };
        let stress_cmd = match stress.as_deref() {
            None => None,
            Some("dd") => Some(
                "sh -c 'while true; do dd if=/dev/zero of=/tmp/kvmtest-stress bs=5M count=100 \
                 2>/dev/null; rm -f /tmp/kvmtest-stress; done'"
                    .to_owned(),
            ),
            Some(other) => {
                return Err(TestError::error(format!(
                    "guest_stress_test = {other}: kvmtest runs the dd stress only"
                )))
            }
        };
        let request = MigrationRequest {
            protocol,
            mode: if offline {
                MigrationMode::Offline
            } else {
                MigrationMode::Live
            },
            cancel_after: cancel.then_some(std::time::Duration::from_secs(2)),
            exec_commands,
            max_bandwidth,
            capabilities,
            timeout,
        };
        let vm = main_vm(ctx)?;
        if !living {
            for round in 1..=ping_pong {
                migrate_once(ctx, &vm, &request, round, ping_pong).await?;
            }
            return Ok(());
        }

        let mut shell = login(ctx, &vm, via).await?;
        let before = guest_output(ctx, &mut shell, &cmd).await?;
        let tok = token();
        guest_cmd(
            ctx,
            &mut shell,
            &format!("mkdir -p {TOKEN_DIR} && echo {tok} > {TOKEN_FILE}"),
        )
        .await
        .map_err(|e| TestError::error(crate::error::error_chain(&e)))?;
        // The serial console is one shell: there the commands go to the background, so that it
        // stays free for the next login (over ssh or telnet each gets a session of its own).
        let detach = |c: &str| match via {
            crate::env::LoginVia::Serial => format!("{c} >/dev/null 2>&1 &"),
            _ => c.to_owned(),
        };
        let mut kept: Vec<Box<dyn RemoteShell>> = Vec::new();
        for c in [bg.start.as_deref(), stress_cmd.as_deref()]
            .into_iter()
            .flatten()
        {
            ctx.log
                .info(format_args!("starting in the background: {c}"));
            cancellable(ctx, async {
                shell.send_line(&detach(c)).await.map_err(TestError::from)
            })
            .await?;
            kept.push(shell);
            pause(ctx, std::time::Duration::from_secs(5)).await?;
            if matches!(via, crate::env::LoginVia::Serial) {
                kept.clear();
            }
            shell = login(ctx, &vm, via).await?;
        }
        let result = async {
            if let Some(check) = &bg.check {
                guest_cmd(ctx, &mut shell, check).await.map_err(|e| {
                    TestError::error(format!(
                        "before migrating, migration_bg_check_command failed: {}",
                        crate::error::error_chain(&e)
                    ))
                })?;
            }
            drop(shell);
            // The sessions running the background commands stay open across the migration, as
            // tp-qemu's do (whether they survive it depends on the network: user networking's
            // forwards belong to the source QEMU).
            for round in 1..=ping_pong {
                migrate_once(ctx, &vm, &request, round, ping_pong).await?;
            }
            kept.clear();
            let mut shell = login(ctx, &vm, via).await.map_err(|e| match e {
                TestError::Error(m) => {
                    TestError::fail(format!("no login after the migration: {m}"))
                }
                other => other,
            })?;
            if let Some(check) = &bg.check {
                guest_cmd(ctx, &mut shell, check).await.map_err(|e| {
                    TestError::fail(format!(
                        "after the migration, the background command no longer runs: {}",
                        crate::error::error_chain(&e)
                    ))
                })?;
            }
            let after = guest_output(ctx, &mut shell, &cmd).await?;
            if after.trim_end() != before.trim_end() {
                return Err(TestError::fail(format!(
                    "`{cmd}` printed {:?} before the migration and {:?} after",
                    before.trim_end(),
                    after.trim_end()
                )));
            }
            let kept = guest_output(ctx, &mut shell, &format!("cat {TOKEN_FILE} 2>&1")).await?;
            if !kept.contains(&tok) {
                return Err(TestError::fail(format!(
                    "expected {TOKEN_FILE} to hold {tok} after the migration; the guest printed \
                     {:?}",
                    kept.trim()
                )));
            }
            Ok(shell)
        }
        .await;
        // Kill the background command whatever happened (tp-qemu's `finally`).
        let kill = [
            bg.kill.as_deref(),
            stress_cmd.as_ref().map(|_| "pkill -f kvmtest-stress"),
        ];
        let mut shell = match result {
            Ok(shell) => shell,
            Err(e) => {
                if kill.iter().any(Option::is_some) && vm.is_alive() {
                    if let Ok(mut s) = login(ctx, &vm, via).await {
                        for c in kill.into_iter().flatten() {
                            let _ = guest_cmd(ctx, &mut s, c).await;
                        }
                    }
                }
                return Err(e);
            }
        };
        for c in kill.into_iter().flatten() {
            match guest_cmd(ctx, &mut shell, c).await {
                Ok(_) => {}
                Err(crate::shell::ShellError::Status { status, .. })
                    if status.trim() == bg.kill_ignore_status.to_string() => {}
                Err(e) => {
                    return Err(TestError::error(format!(
                        "stopping the background command: {}",
                        crate::error::error_chain(&e)
                    )))
                }
            }
        }
        Ok(())
    })
}

/// One migration of `vm` as `request` says, its figures logged and added to the test's
/// `migration.json`; with `mig_cancel`, it must end cancelled with the source still running.
async fn migrate_once(
    ctx: &TestContext,
    vm: &std::sync::Arc<dyn crate::env::GuestVm>,
    request: &MigrationRequest,
    round: u64,
    rounds: u64,
) -> Result<(), TestError> {
    ctx.log.info(format_args!(
        "migration {round}/{rounds} ({}) over {:?} ({:?}){}",
        if round % 2 == 1 { "ping" } else { "pong" },
        request.protocol,
        request.mode,
        if request.cancel_after.is_some() {
            ", to be cancelled"
        } else {
            ""
        }
    ));
    let outcome = cancellable(ctx, async {
        vm.migrate(request)
            .await
            .map_err(|e| fail_env(&format!("migration {round}/{rounds} failed"), &e))
    })
    .await?;
    ctx.log.info(format_args!(
        "migration {round}/{rounds}: {} in {} ms (QEMU: total {} ms, downtime {} ms, {} bytes)",
        if outcome.cancelled {
            "cancelled"
        } else {
            "completed"
        },
        outcome.wall_ms,
        outcome.total_time_ms.map_or("?".into(), |v| v.to_string()),
        outcome.downtime_ms.map_or("?".into(), |v| v.to_string()),
        outcome
            .transferred_bytes
            .map_or("?".into(), |v| v.to_string()),
    ));
    record_migration(ctx, round, request, &outcome);
    if request.cancel_after.is_some() && !vm.is_alive() {
        return Err(TestError::fail(
            "after the cancelled migration, the source QEMU is gone",
        ));
    }
    Ok(())
}

/// Appends one migration's figures to `migration.json` in the test's directory (best effort:
/// the figures are also in the test log).
fn record_migration(
    ctx: &TestContext,
    round: u64,
    request: &MigrationRequest,
    outcome: &MigrationOutcome,
) {
    let path = ctx.dir.join("migration.json");
    let mut all: Vec<serde_json::Value> = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    all.push(serde_json::json!({
        "round": round,
        "protocol": format!("{:?}", request.protocol).to_lowercase(),
        "offline": request.mode == MigrationMode::Offline,
        "cancelled": outcome.cancelled,
        "total_time_ms": outcome.total_time_ms,
        "downtime_ms": outcome.downtime_ms,
        "transferred_bytes": outcome.transferred_bytes,
        "wall_ms": outcome.wall_ms,
    }));
    if let Ok(text) = serde_json::to_string_pretty(&all) {
        if let Err(e) = std::fs::write(&path, text + "\n") {
            ctx.log
                .warn(format_args!("writing {}: {e}", path.display()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mig_speed_as_tp_qemu_writes_it() {
        assert_eq!(parse_speed("1G"), Some(1 << 30));
        assert_eq!(parse_speed("125M"), Some(125 << 20));
        assert_eq!(parse_speed("350"), Some(350 << 20));
        assert_eq!(parse_speed("1b"), Some(1));
        assert_eq!(parse_speed("0.5K"), Some(512));
        assert_eq!(parse_speed("fast"), None);
        assert_eq!(parse_speed("0"), None);
        assert_eq!(parse_speed(""), None);
    }

    #[test]
    fn migrate_capabilities_as_tp_qemu_writes_them() {
        assert_eq!(
            parse_capabilities("{'postcopy-ram': 'on'}"),
            Some(vec![("postcopy-ram".into(), true)])
        );
        assert_eq!(
            parse_capabilities(r#"{"xbzrle": "off", 'events': 'on'}"#),
            Some(vec![("xbzrle".into(), false), ("events".into(), true)])
        );
        assert_eq!(parse_capabilities("{}"), Some(vec![]));
        assert_eq!(parse_capabilities("postcopy-ram"), None);
        assert_eq!(parse_capabilities("{'x': 'maybe'}"), None);
    }
}
