//! `boot`, `reboot`, `shutdown` and `migration`: the guest's life cycle.
//!
//! Reboots and migrations are proven from inside the guest: the kernel's `boot_id` (a random
//! UUID drawn at every boot) must change across a reboot and stay across a migration, and a
//! token written to the guest's RAM-backed root must vanish with a reboot and survive a
//! migration.

use regex::Regex;

use super::common::{cancellable, fail_env, guest_cmd, guest_output, login, main_vm, secs};
use crate::catalogue::session::login_timeout;
use crate::env::{MigrationMode, MigrationProtocol, RebootMethod, ShutdownMethod};
use crate::future::BoxFuture;
use crate::registry::TestContext;
use crate::shell::RemoteShell;
use crate::verdict::{TestError, TestResult};

const BOOT_ID: &str = "cat /proc/sys/kernel/random/boot_id";
const TOKEN_FILE: &str = "/tmp/kvmtest-token";

/// `type = boot`: log in and run `boot_command`.
pub fn run_boot(ctx: &TestContext) -> BoxFuture<'_, TestResult> {
    Box::pin(async move {
        let vm = main_vm(ctx)?;
        let mut shell = login(ctx, &vm).await?;
        let cmd = ctx.params.get("boot_command").unwrap_or("uname -r");
        let out = guest_cmd(ctx, &mut shell, cmd).await.map_err(|e| {
            TestError::fail(format!("after login, {}", crate::error::error_chain(&e)))
        })?;
        match ctx.params.get("boot_expect") {
            Some(pattern) => {
                let re = Regex::new(pattern).map_err(|e| {
                    TestError::error(format!("boot_expect = {pattern:?} is not a regex: {e}"))
                })?;
                if !re.is_match(&out) {
                    return Err(TestError::fail(format!(
                        "expected the output of `{cmd}` to match /{pattern}/; the guest printed \
                         {:?}",
                        out.trim_end()
                    )));
                }
            }
            None if out.trim().is_empty() => {
                return Err(TestError::fail(format!(
                    "`{cmd}` printed nothing after login"
                )))
            }
            None => {}
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

/// A random token for the guest's RAM-backed root.
fn token() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("kvmtest-{t:x}-{}", std::process::id())
}

/// `type = reboot`: `reboot_count` reboots by `reboot_method`; each must give a new boot.
pub fn run_reboot(ctx: &TestContext) -> BoxFuture<'_, TestResult> {
    Box::pin(async move {
        let method = match ctx.params.get("reboot_method").unwrap_or("shell") {
            "shell" => RebootMethod::Shell,
            "system_reset" => RebootMethod::SystemReset,
            other => {
                return Err(TestError::error(format!(
                    "reboot_method = {other:?}: expected shell or system_reset"
                )))
            }
        };
        let count = ctx.params.get_u64("reboot_count")?.unwrap_or(1);
        let timeout = login_timeout(ctx)?;
        let vm = main_vm(ctx)?;
        for round in 1..=count {
            let mut shell = login(ctx, &vm).await?;
            let before = boot_id(ctx, &mut shell).await?;
            let tok = token();
            guest_cmd(ctx, &mut shell, &format!("echo {tok} > {TOKEN_FILE}"))
                .await
                .map_err(|e| TestError::error(crate::error::error_chain(&e)))?;
            // The serial console is free again for the reboot's own login.
            drop(shell);
            ctx.log
                .info(format_args!("reboot {round}/{count} by {method:?}"));
            let mut shell = cancellable(ctx, async {
                vm.reboot(method, timeout).await.map_err(|e| {
                    fail_env(
                        &format!("the guest did not come back from reboot {round} ({method:?})"),
                        &e,
                    )
                })
            })
            .await?;
            let after = boot_id(ctx, &mut shell).await?;
            if after == before {
                return Err(TestError::fail(format!(
                    "reboot {round} ({method:?}): expected a new boot_id, the guest still shows \
                     {before}"
                )));
            }
            let left = guest_output(ctx, &mut shell, &format!("cat {TOKEN_FILE} 2>&1")).await?;
            if left.contains(&tok) {
                return Err(TestError::fail(format!(
                    "reboot {round} ({method:?}): {TOKEN_FILE} written before the reboot is \
                     still there"
                )));
            }
        }
        Ok(())
    })
}

/// `type = shutdown`: power the guest off by `shutdown_method`; QEMU must exit.
pub fn run_shutdown(ctx: &TestContext) -> BoxFuture<'_, TestResult> {
    Box::pin(async move {
        let method = match ctx.params.get("shutdown_method").unwrap_or("shell") {
            "shell" => ShutdownMethod::Shell,
            "system_powerdown" => ShutdownMethod::SystemPowerdown,
            other => {
                return Err(TestError::error(format!(
                    "shutdown_method = {other:?}: expected shell or system_powerdown"
                )))
            }
        };
        let timeout = secs(ctx, "shutdown_timeout", 240.0)?;
        let vm = main_vm(ctx)?;
        // Make sure the guest is up (and its ACPI daemon running) before pressing the button.
        let mut shell = login(ctx, &vm).await?;
        guest_cmd(ctx, &mut shell, "true")
            .await
            .map_err(|e| TestError::error(crate::error::error_chain(&e)))?;
        drop(shell);
        ctx.log.info(format_args!("shutdown by {method:?}"));
        cancellable(ctx, async {
            vm.shutdown(method, timeout).await.map_err(|e| {
                fail_env(
                    &format!("expected QEMU to exit after the {method:?} shutdown"),
                    &e,
                )
            })
        })
        .await?;
        if vm.is_alive() {
            return Err(TestError::fail("QEMU still runs after the shutdown"));
        }
        Ok(())
    })
}

/// `type = migration`: migrate over `migration_protocol`; the guest's state must be kept.
pub fn run_migration(ctx: &TestContext) -> BoxFuture<'_, TestResult> {
    Box::pin(async move {
        let proto = ctx.params.require("migration_protocol")?;
        let protocol = match proto {
            "tcp" => MigrationProtocol::Tcp,
            "unix" => MigrationProtocol::Unix,
            "exec" => MigrationProtocol::Exec,
            other => {
                return Err(TestError::error(format!(
                    "migration_protocol = {other:?}: expected tcp, unix or exec"
                )))
            }
        };
        let mode = if ctx.params.get_bool_or("mig_offline", false)? {
            MigrationMode::Offline
        } else {
            MigrationMode::Live
        };
        let timeout = secs(ctx, "mig_timeout", 3600.0)?;
        let cmd = ctx
            .params
            .get("migration_test_command")
            .unwrap_or(BOOT_ID)
            .to_owned();
        let vm = main_vm(ctx)?;
        let mut shell = login(ctx, &vm).await?;
        let before = guest_cmd(ctx, &mut shell, &cmd)
            .await
            .map_err(|e| TestError::error(crate::error::error_chain(&e)))?;
        let tok = token();
        guest_cmd(ctx, &mut shell, &format!("echo {tok} > {TOKEN_FILE}"))
            .await
            .map_err(|e| TestError::error(crate::error::error_chain(&e)))?;
        drop(shell);
        ctx.log
            .info(format_args!("migrating over {protocol:?} ({mode:?})"));
        let migrated = tokio::time::timeout(timeout, vm.migrate(protocol, mode));
        cancellable(ctx, async {
            match migrated.await {
                Ok(r) => r.map_err(|e| fail_env("the migration failed", &e)),
                Err(_) => Err(TestError::fail(format!(
                    "the migration did not finish within mig_timeout = {} s",
                    timeout.as_secs()
                ))),
            }
        })
        .await?;
        let mut shell = login(ctx, &vm).await.map_err(|e| match e {
            TestError::Error(m) => TestError::fail(format!("no login after the migration: {m}")),
            other => other,
        })?;
        let after = guest_cmd(ctx, &mut shell, &cmd).await.map_err(|e| {
            TestError::fail(format!(
                "after the migration, {}",
                crate::error::error_chain(&e)
            ))
        })?;
        if after.trim() != before.trim() {
            return Err(TestError::fail(format!(
                "expected `{cmd}` to print {:?} after the migration as before; the guest printed \
                 {:?}",
                before.trim(),
                after.trim()
            )));
        }
        let kept = guest_output(ctx, &mut shell, &format!("cat {TOKEN_FILE} 2>&1")).await?;
        if !kept.contains(&tok) {
            return Err(TestError::fail(format!(
                "expected {TOKEN_FILE} to hold {tok} after the migration; the guest printed {:?}",
                kept.trim()
            )));
        }
        Ok(())
    })
}
