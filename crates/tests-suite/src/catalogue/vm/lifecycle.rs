//! `boot`, `reboot`, `shutdown` and `migration`: the guest's life cycle.
//!
//! Reboots and migrations are proven from inside the guest: the kernel's `boot_id` (a random
//! UUID drawn at every boot) must change across a reboot and stay across a migration, and a
//! token written to the guest's RAM-backed root must vanish with a reboot and survive a
//! migration.

use super::common::{cancellable, fail_env, guest_cmd, guest_output, login, login_via, main_vm};
use super::{BOOT, MIGRATION, REBOOT, SHUTDOWN};
use crate::catalogue::session::login_timeout;
use crate::env::{MigrationMode, MigrationProtocol, RebootMethod, ShutdownMethod};
use crate::future::BoxFuture;
use crate::registry::{read_params, TestContext};
use crate::shell::RemoteShell;
use crate::verdict::{TestError, TestResult};

pub(super) const BOOT_ID: &str = "cat /proc/sys/kernel/random/boot_id";
const TOKEN_FILE: &str = "/tmp/kvmtest-token";

/// `type = boot`: log in and run `boot_command`.
pub fn run_boot(ctx: &TestContext) -> BoxFuture<'_, TestResult> {
    Box::pin(async move {
        let mut k = ctx.keys(&BOOT);
        let via = login_via(&mut k);
        let cmd = k.text("boot_command");
        let expect = k.regex("boot_expect", false);
        let via = read_params(k, via)?;
        let via = BOOT.declared(via, "login_via")?;
        let cmd = cmd.as_str();
        let vm = main_vm(ctx)?;
        let mut shell = login(ctx, &vm, via).await?;
        let out = guest_cmd(ctx, &mut shell, cmd).await.map_err(|e| {
            TestError::fail(format!("after login, {}", crate::error::error_chain(&e)))
        })?;
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
        let mut k = ctx.keys(&REBOOT);
        let via = login_via(&mut k);
        let method = k.choice(
            "reboot_method",
            &[
                ("shell", RebootMethod::Shell),
                ("system_reset", RebootMethod::SystemReset),
            ],
        );
        let count = k.u64("reboot_count");
        let (via, method, count) = read_params(k, (via, method, count))?;
        let via = REBOOT.declared(via, "login_via")?;
        let method = REBOOT.declared(method, "reboot_method")?;
        let count = REBOOT.declared(count, "reboot_count")?;
        let timeout = login_timeout(ctx)?;
        let vm = main_vm(ctx)?;
        for round in 1..=count {
            let mut shell = login(ctx, &vm, via).await?;
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
        let mut k = ctx.keys(&SHUTDOWN);
        let via = login_via(&mut k);
        let method = k.choice(
            "shutdown_method",
            &[
                ("shell", ShutdownMethod::Shell),
                ("system_powerdown", ShutdownMethod::SystemPowerdown),
            ],
        );
        let timeout = k.secs("shutdown_timeout");
        let (via, method, timeout) = read_params(k, (via, method, timeout))?;
        let via = SHUTDOWN.declared(via, "login_via")?;
        let method = SHUTDOWN.declared(method, "shutdown_method")?;
        let timeout = SHUTDOWN.declared(timeout, "shutdown_timeout")?;
        let vm = main_vm(ctx)?;
        // Make sure the guest is up (and its ACPI daemon running) before pressing the button.
        let mut shell = login(ctx, &vm, via).await?;
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
        let mode = if k.bool("mig_offline") {
            MigrationMode::Offline
        } else {
            MigrationMode::Live
        };
        let timeout = k.secs("mig_timeout");
        let cmd = k.text("migration_test_command");
        let (via, protocol, timeout) = read_params(k, (via, protocol, timeout))?;
        let via = MIGRATION.declared(via, "login_via")?;
        let protocol = MIGRATION.declared(protocol, "migration_protocol")?;
        let timeout = MIGRATION.declared(timeout, "mig_timeout")?;
        let vm = main_vm(ctx)?;
        let mut shell = login(ctx, &vm, via).await?;
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
        let mut shell = login(ctx, &vm, via).await.map_err(|e| match e {
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
