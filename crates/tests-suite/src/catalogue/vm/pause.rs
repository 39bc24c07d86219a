//! `stop_continue` (tp-qemu's `stop_continue`): stop the VM, check QEMU says `paused` and the
//! guest's shell does not answer, continue it, check `running`, log in again; optional
//! preparation, background, check and clean-up commands around it.

use std::time::Duration;

use super::common::{
    cancellable, expect_status, guest_status_output, login, login_via, main_vm, qmp_cmd as qmp,
};
use super::STOP_CONTINUE;
use crate::future::BoxFuture;
use crate::registry::{read_params, TestContext};
use crate::verdict::{TestError, TestResult};

/// A spawned task that ends with its handle (a cancelled or failed test leaves no background
/// shell behind).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// `type = stop_continue`.
pub fn run(ctx: &TestContext) -> BoxFuture<'_, TestResult> {
    Box::pin(async move {
        let mut k = ctx.keys(&STOP_CONTINUE);
        let via = login_via(&mut k);
        let prepare = k.opt("prepare_op");
        let prepare_timeout = k.secs("prepare_op_timeout");
        let bg = k.bool("start_bg_process");
        let bg_cmd = bg.then(|| k.text("bg_cmd"));
        let bg_timeout = k.secs("bg_cmd_timeout");
        let check = k.opt("check_op");
        let check_timeout = k.secs("check_op_timeout");
        let clean = k.opt("clean_op");
        let clean_timeout = k.secs("clean_op_timeout");
        let (via, prepare_timeout, bg_timeout, check_timeout, clean_timeout) = read_params(
            k,
            (
                via,
                prepare_timeout,
                bg_timeout,
                check_timeout,
                clean_timeout,
            ),
        )?;
        let via = STOP_CONTINUE.declared(via, "serial_login")?;
        let prepare_timeout = STOP_CONTINUE.declared(prepare_timeout, "prepare_op_timeout")?;
        let bg_timeout = STOP_CONTINUE.declared(bg_timeout, "bg_cmd_timeout")?;
        let check_timeout = STOP_CONTINUE.declared(check_timeout, "check_op_timeout")?;
        let clean_timeout = STOP_CONTINUE.declared(clean_timeout, "clean_op_timeout")?;
        let vm = main_vm(ctx)?;
        let mut shell = login(ctx, &vm, via).await?;
        let body = async {
            if let Some(cmd) = &prepare {
                let (st, out) = guest_status_output(ctx, &mut shell, cmd, prepare_timeout).await?;
                if st != 0 {
                    return Err(TestError::error(format!(
                        "prepare_op `{cmd}` exited {st}: {:?}",
                        out.trim_end()
                    )));
                }
            }
            let background = match &bg_cmd {
                Some(cmd) => {
                    let mut bg_shell = login(ctx, &vm, via).await?;
                    let cmd = cmd.clone();
                    ctx.log.info(format_args!("background command `{cmd}`"));
                    Some(AbortOnDrop(tokio::spawn(async move {
                        let out = bg_shell.cmd_output(&cmd, bg_timeout).await;
                        let st = bg_shell
                            .cmd_output("echo $?", Duration::from_secs(60))
                            .await;
                        (cmd, out, st)
                    })))
                }
                None => None,
            };
            qmp(ctx, vm.as_ref(), "stop").await?;
            expect_status(ctx, vm.as_ref(), "paused", "stop").await?;
            // avocado-vt's is_responsive: a new line must not bring the prompt back.
            let responsive = async {
                shell.send_line("").await?;
                shell.read_up_to_prompt(Duration::from_secs(5)).await
            };
            if responsive.await.is_ok() {
                let _ = qmp(ctx, vm.as_ref(), "cont").await;
                return Err(TestError::fail(
                    "the guest's shell still answers after stop",
                ));
            }
            qmp(ctx, vm.as_ref(), "cont").await?;
            expect_status(ctx, vm.as_ref(), "running", "cont").await?;
            shell = login(ctx, &vm, via).await?;
            if let Some(mut task) = background {
                let joined = cancellable(ctx, async {
                    (&mut task.0)
                        .await
                        .map_err(|e| TestError::error(format!("the background command: {e}")))
                })
                .await?;
                let (cmd, out, st) = joined;
                let out = out.map_err(TestError::from)?;
                let st = st.map_err(TestError::from)?;
                if st.trim() != "0" {
                    return Err(TestError::fail(format!(
                        "the background command `{cmd}` exited {} across the stop: {:?}",
                        st.trim(),
                        out.trim_end()
                    )));
                }
            }
            if let Some(cmd) = &check {
                let (st, out) = guest_status_output(ctx, &mut shell, cmd, check_timeout).await?;
                if st != 0 {
                    return Err(TestError::fail(format!(
                        "after stop and continue, check_op `{cmd}` exited {st}: {:?}",
                        out.trim_end()
                    )));
                }
            }
            Ok(())
        };
        let result = body.await;
        if let Some(cmd) = &clean {
            // Errors ignored, as tp-qemu's clean_op (the verdict is the body's).
            if let Ok(mut s) = login(ctx, &vm, via).await {
                let _ = guest_status_output(ctx, &mut s, cmd, clean_timeout).await;
            }
        }
        result
    })
}
