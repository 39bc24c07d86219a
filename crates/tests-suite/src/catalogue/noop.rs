//! `noop` and `sleep`: tests that touch nothing, for exercising the runner.

use std::time::Duration;

use crate::future::BoxFuture;
use crate::registry::{ParamDoc, TestContext, TestSpec};
use crate::verdict::{TestError, TestResult};

/// `type = noop`.
pub const NOOP: TestSpec = TestSpec {
    name: "noop",
    about: "Does nothing and reports the verdict `noop_verdict` asks for (runner tests).",
    params: &[
        ParamDoc::optional(
            "noop_verdict",
            "pass (default), fail, error or skip: the verdict to report",
        ),
        ParamDoc::optional("noop_message", "the message of a non-pass verdict"),
    ],
};

/// `type = sleep`.
pub const SLEEP: TestSpec = TestSpec {
    name: "sleep",
    about: "Sleeps `sleep_time` seconds, then passes; stops at once when the run is cancelled.",
    params: &[ParamDoc::required(
        "sleep_time",
        "seconds to sleep (a float)",
    )],
};

/// The `noop` test.
pub fn run_noop(ctx: &TestContext) -> BoxFuture<'_, TestResult> {
    Box::pin(async move {
        let msg = ctx.params.get_or("noop_message", "noop").to_string();
        ctx.log.info(format_args!("noop: {}", ctx.name));
        match ctx.params.get_or("noop_verdict", "pass") {
            "pass" => Ok(()),
            "fail" => Err(TestError::Fail(msg)),
            "error" => Err(TestError::Error(msg)),
            "skip" => Err(TestError::Skip(msg)),
            other => Err(TestError::Error(format!(
                "noop_verdict = {other:?}: expected pass, fail, error or skip"
            ))),
        }
    })
}

/// The `sleep` test.
pub fn run_sleep(ctx: &TestContext) -> BoxFuture<'_, TestResult> {
    Box::pin(async move {
        let secs = ctx.params.require_f64("sleep_time")?;
        let d = Duration::try_from_secs_f64(secs)
            .map_err(|e| TestError::error(format!("sleep_time = {secs}: not a duration: {e}")))?;
        ctx.log.info(format_args!("sleeping {d:?}"));
        tokio::select! {
            () = tokio::time::sleep(d) => Ok(()),
            () = ctx.cancel.cancelled() => Err(TestError::Cancelled),
        }
    })
}
