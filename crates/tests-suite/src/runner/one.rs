//! One variant's run: its directory and params file, the test selected by `type`, pre- and
//! post-processing, and the record it leaves (steps 1–5 of the runner's order of work).

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use spec::{Processing, TestTarget};
use tracing::Instrument;

use super::{Planned, Shared};
use crate::env::{Teardown, VmEnv};
use crate::registry::{TestContext, TestLog};
use crate::results::{Attempt, TestRecord};
use crate::verdict::{TestError, Verdict, VerdictKind};

fn sanitize(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    if s.is_empty() {
        "variant".into()
    } else {
        s
    }
}

fn test_dir_name(p: &Planned) -> String {
    let base = if p.shortname.is_empty() {
        &p.name
    } else {
        &p.shortname
    };
    format!("tests/{:05}-{}", p.index, sanitize(base))
}

pub(super) fn record_without_running(shared: &Shared, p: Planned, verdict: Verdict) -> TestRecord {
    let record = TestRecord {
        index: p.index,
        name: p.name,
        shortname: p.shortname,
        test_type: spec::test::test_type(&p.params),
        verdict: verdict.kind(),
        message: verdict.message().map(str::to_string),
        started: crate::time::now_rfc3339(),
        duration_s: 0.0,
        dir: String::new(),
        qemu: None,
        retried: Vec::new(),
        worker: None,
    };
    shared.events.emit(
        "test_finished",
        json!({"index": record.index, "name": record.name, "verdict": record.verdict,
               "message": record.message, "duration_s": 0.0}),
    );
    record
}

fn write_params(dir: &Path, p: &Planned) -> std::io::Result<()> {
    let params: Vec<serde_json::Value> = p
        .params
        .iter_with_origin()
        .map(|(k, v, o)| json!({"key": k, "value": v, "origin": o.map(ToString::to_string)}))
        .collect();
    let doc = json!({"index": p.index, "name": p.name, "shortname": p.shortname, "params": params});
    fs::write(
        dir.join("params.json"),
        serde_json::to_string_pretty(&doc).unwrap_or_default(),
    )
}

pub(super) async fn run_one(shared: &Arc<Shared>, env: &Arc<dyn VmEnv>, p: Planned) -> TestRecord {
    let started = crate::time::now_rfc3339();
    let clock = Instant::now();
    let rel = test_dir_name(&p);
    let dir = shared.job_dir.join(&rel);
    let test_type = spec::test::test_type(&p.params);
    shared.events.emit(
        "test_started",
        json!({"index": p.index, "name": p.name, "type": test_type, "dir": rel}),
    );
    let mut retried: Vec<Attempt> = Vec::new();
    let verdict = loop {
        let attempt_clock = Instant::now();
        // One `test` span per attempt: its events go to this attempt's debug.log (an attempt
        // that is run again has its files, debug.log too, moved to attempt-K/).
        let span = tracing::info_span!(
            "test",
            index = p.index,
            name = %p.name,
            attempt = retried.len() + 1,
            dir = %dir.display()
        );
        let verdict = attempt(shared, env, &p, &dir, &retried)
            .instrument(span)
            .await;
        let failed = matches!(verdict.kind(), VerdictKind::Fail | VerdictKind::Error);
        if !failed || retried.len() >= shared.retries as usize || shared.cancel.is_cancelled() {
            break verdict;
        }
        // A retry on a VM the failure may have broken proves nothing: the worker's VMs go.
        for name in env.vm_names() {
            let _ = env.destroy_vm(&name, Teardown::Kill).await;
        }
        let n = retried.len() + 1;
        let kept = format!("{rel}/attempt-{n}");
        if let Err(e) = keep_attempt(&dir, n) {
            // Without a place for its files the next attempt would overwrite them.
            let msg = format!(
                "{} (not retried: moving its files to {kept}: {e})",
                verdict.message().unwrap_or_default()
            );
            break match verdict {
                Verdict::Error(_) => Verdict::Error(msg),
                _ => Verdict::Fail(msg),
            };
        }
        shared.events.emit(
            "test_retried",
            json!({"index": p.index, "name": p.name, "attempt": n, "verdict": verdict.kind(),
                   "message": verdict.message(), "dir": kept}),
        );
        retried.push(Attempt {
            verdict: verdict.kind(),
            message: verdict.message().map(str::to_string),
            duration_s: attempt_clock.elapsed().as_secs_f64(),
            dir: kept,
        });
    };
    let record = TestRecord {
        index: p.index,
        name: p.name,
        shortname: p.shortname,
        test_type,
        verdict: verdict.kind(),
        message: verdict.message().map(str::to_string),
        started,
        duration_s: clock.elapsed().as_secs_f64(),
        dir: rel,
        qemu: env.qemu(),
        retried,
        worker: None,
    };
    shared.events.emit(
        "test_finished",
        json!({"index": record.index, "name": record.name, "verdict": record.verdict,
               "message": record.message, "duration_s": record.duration_s,
               "attempts": record.retried.len() + 1}),
    );
    record
}

/// Moves what the attempt left in the test directory `dir` (all but the earlier attempts'
/// `attempt-K/`) into `dir/attempt-N`; renames only, so nothing is copied or lost.
fn keep_attempt(dir: &Path, n: usize) -> std::io::Result<()> {
    let into = dir.join(format!("attempt-{n}"));
    fs::create_dir(&into)?;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let earlier = name.to_str().is_some_and(|s| {
            s.strip_prefix("attempt-")
                .is_some_and(|k| k.parse::<usize>().is_ok())
        });
        if !earlier {
            fs::rename(entry.path(), into.join(&name))?;
        }
    }
    Ok(())
}

/// One attempt of a variant in `dir` (steps 1–5): its params and log files, the test and the
/// post-processing. `retried`: the attempts that failed before this one.
async fn attempt(
    shared: &Arc<Shared>,
    env: &Arc<dyn VmEnv>,
    p: &Planned,
    dir: &Path,
    retried: &[Attempt],
) -> Verdict {
    let test_type = spec::test::test_type(&p.params);
    let setup = fs::create_dir_all(dir)
        .and_then(|()| write_params(dir, p))
        .and_then(|()| TestLog::create(&dir.join("test.log")));
    match setup {
        Err(e) => Verdict::Error(format!("creating {}: {e}", dir.display())),
        Ok(log) => {
            let ctx = TestContext {
                params: p.params.clone(),
                name: p.name.clone(),
                shortname: p.shortname.clone(),
                dir: dir.to_path_buf(),
                log,
                cancel: shared.cancel.child_token(),
                env: env.clone(),
                remote: shared.remote.clone(),
                state: shared.state.clone(),
            };
            ctx.log
                .info(format_args!("test {} ({:?})", p.name, test_type));
            if let Some(last) = retried.last() {
                ctx.log.info(format_args!(
                    "attempt {} of {} (--retries {}): attempt {} ended {}: {}; its files are in \
                     attempt-{}/",
                    retried.len() + 1,
                    shared.retries + 1,
                    shared.retries,
                    retried.len(),
                    last.verdict,
                    last.message.as_deref().unwrap_or_default(),
                    retried.len()
                ));
            }
            let result = tokio::select! {
                r = select_and_run(shared, &ctx) => r,
                () = shared.cancel.cancelled() => Err(TestError::Cancelled),
            };
            let mut verdict = Verdict::from(result);
            ctx.log.info(format_args!("verdict: {verdict:?}"));
            if let Err(e) = postprocess(&ctx, &verdict, shared.cancel.is_cancelled()).await {
                ctx.log.warn(format_args!("post-processing: {e}"));
                if verdict == Verdict::Pass {
                    verdict = Verdict::Error(format!("post-processing: {e}"));
                }
            }
            // The VMs that outlive this test leave their share of the logs in its directory.
            env.end_test(dir).await;
            verdict
        }
    }
}

/// Steps 2–4: select the test by `type`, check its parameters, pre-process, run.
async fn select_and_run(shared: &Shared, ctx: &TestContext) -> Result<(), TestError> {
    let target = TestTarget::read(&ctx.params)?;
    let ty = target.test_type.as_str();
    let Some((spec, f)) = shared.registry.get(ty) else {
        let known: Vec<&str> = shared.registry.specs().map(|s| s.name).collect();
        return Err(TestError::Error(format!(
            "unknown test type '{ty}'{}; known types: {}",
            ctx.params
                .origin("type")
                .map(|o| format!(" (set at {o})"))
                .unwrap_or_default(),
            known.join(", ")
        )));
    };
    spec.check_required(&ctx.params)?;
    // avocado-vt cancels a variant whose `required_qemu` excludes the QEMU at hand.
    if let Some(req) = &target.required_qemu {
        if let Some(v) = ctx.env.qemu_version(&ctx.params) {
            if !req.contains(&v) {
                return Err(TestError::Skip(format!(
                    "required_qemu = {req}{}: this is QEMU {}.{}.{}",
                    ctx.params
                        .origin("required_qemu")
                        .map(|o| format!(" (set at {o})"))
                        .unwrap_or_default(),
                    v[0],
                    v[1],
                    v[2]
                )));
            }
        }
    }
    preprocess(ctx).await.map_err(|e| match e {
        // A guest that never came up (waited for to save its state) fails as the test's own
        // login would have.
        TestError::Fail(m) => TestError::Fail(format!("pre-processing: {m}")),
        other => TestError::Error(format!("pre-processing: {}", error_text(&other))),
    })?;
    let n = target.iterations;
    if n == 1 {
        return f(ctx).await;
    }
    for i in 1..=n {
        ctx.log.info(format_args!("iteration {i} of {n}"));
        f(ctx).await.map_err(|e| match e {
            TestError::Fail(m) => TestError::Fail(format!("iteration {i} of {n}: {m}")),
            TestError::Error(m) => TestError::Error(format!("iteration {i} of {n}: {m}")),
            TestError::Skip(m) => TestError::Skip(format!("iteration {i} of {n}: {m}")),
            TestError::Cancelled => TestError::Cancelled,
        })?;
    }
    Ok(())
}

fn error_text(e: &TestError) -> String {
    match e {
        TestError::Fail(m) | TestError::Error(m) | TestError::Skip(m) => m.clone(),
        TestError::Cancelled => "cancelled".into(),
    }
}

/// Before the test, as `spec::Processing` reads the variant: the images of every VM
/// (`create_image`, `force_create_image`), then the VMs (`kill_vm_before_test`, `restart_vm`,
/// `start_vm`) — avocado-vt's order.
async fn preprocess(ctx: &TestContext) -> Result<(), TestError> {
    let processing = Processing::before(&ctx.params)?;
    for vm in &processing.vms {
        for image in vm.images.iter().filter(|i| i.create || i.force_create) {
            ctx.env.prepare_image(&vm.name, image, &ctx.params).await?;
        }
    }
    for vm in &processing.vms {
        if vm.kill_before_test && !vm.start {
            ctx.env.destroy_vm(&vm.name, vm.teardown).await?;
        }
        if vm.restart {
            ctx.env.destroy_vm(&vm.name, Teardown::Kill).await?;
        }
        if vm.start {
            ctx.log.info(format_args!("starting VM {}", vm.name));
            let how = ctx
                .env
                .start_vm(&vm.name, &ctx.params, &ctx.dir)
                .await
                .map_err(|e| match e {
                    e @ crate::env::EnvError::NoLogin { .. } => {
                        TestError::Fail(crate::error_chain(&e))
                    }
                    other => TestError::from(other),
                })?;
            ctx.log.info(format_args!("VM {}: {how}", vm.name));
        }
    }
    Ok(())
}

/// Whether VM `name` of `env` is running.
fn running(env: &dyn VmEnv, name: &str) -> bool {
    env.vm(name).is_ok_and(|vm| vm.is_alive())
}

/// After the test, as `spec::Processing` reads it (with the `on_error` overrides when the test
/// failed): the VMs (`kill_vm` after waiting `kill_vm_timeout` for them to go down by
/// themselves), then their images (`remove_image`; not while the VM runs, which is then
/// destroyed so no later test reuses it with a disk it should not have), then
/// `kill_unresponsive_vms`. Every failure is collected; the first does not stop the rest.
async fn postprocess(
    ctx: &TestContext,
    verdict: &Verdict,
    cancelled: bool,
) -> Result<(), TestError> {
    if cancelled {
        for name in ctx.env.vm_names() {
            ctx.env.destroy_vm(&name, Teardown::Kill).await?;
        }
        return Ok(());
    }
    let failed = matches!(verdict.kind(), VerdictKind::Fail | VerdictKind::Error);
    let processing = Processing::after(&ctx.params, failed)?;
    let env = ctx.env.as_ref();
    if failed || processing.screendump_on_pass {
        super::screendump::take_all(ctx).await;
    }
    let mut problems = Vec::new();
    for vm in processing.vms.iter().filter(|vm| vm.kill) {
        if !vm.kill_wait.is_zero() {
            let until = Instant::now() + vm.kill_wait;
            while running(env, &vm.name) && Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        ctx.log.info(format_args!(
            "post-processing: destroying {} ({:?})",
            vm.name, vm.teardown
        ));
        if let Err(e) = env.destroy_vm(&vm.name, vm.teardown).await {
            problems.push(crate::error_chain(&e));
        }
    }
    let mut holding_removed = Vec::new();
    for vm in &processing.vms {
        for image in vm.images.iter().filter(|i| i.remove) {
            // An image off the command line (`boot_drive = no`, hot-plugged by the test and
            // unplugged again) does not pin the VM.
            if image.boot_drive && running(env, &vm.name) {
                ctx.log.info(format_args!(
                    "post-processing: not removing image {} while {} runs; destroying {} instead",
                    image.name, vm.name, vm.name
                ));
                if !holding_removed.contains(&vm) {
                    holding_removed.push(vm);
                }
                continue;
            }
            if let Err(e) = env.remove_image(&vm.name, &image.name, &ctx.params).await {
                problems.push(crate::error_chain(&e));
            }
        }
    }
    if processing.kill_unresponsive {
        for name in env.vm_names() {
            let responsive = match env.vm(&name) {
                Ok(vm) => !vm.is_alive() || vm.login(Duration::from_secs(30)).await.is_ok(),
                Err(_) => true,
            };
            if !responsive {
                ctx.log.info(format_args!(
                    "post-processing: {name} is unresponsive, killing it"
                ));
                if let Err(e) = env.destroy_vm(&name, Teardown::Kill).await {
                    problems.push(crate::error_chain(&e));
                }
            }
        }
    }
    for vm in holding_removed {
        if let Err(e) = env.destroy_vm(&vm.name, vm.teardown).await {
            problems.push(crate::error_chain(&e));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(TestError::Error(problems.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitized_names() {
        assert_eq!(sanitize("(a=b).c d"), "_a_b_.c_d");
        assert_eq!(sanitize(""), "variant");
    }
}
