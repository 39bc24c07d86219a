//! `noop` and `sleep`: tests that touch nothing, for exercising the runner.

use crate::future::BoxFuture;
use spec::KeyDoc;

use crate::registry::{read_params, TestContext, TestSpec};
use crate::verdict::{TestError, TestResult};

/// `type = noop`.
pub const NOOP: TestSpec = TestSpec {
    name: "noop",
    about: "Does nothing and reports the verdict `noop_verdict` asks for (runner tests).",
    params: &[
        KeyDoc::with_default(
            "noop_verdict",
            "pass",
            "pass, fail, error or skip: the verdict to report",
        ),
        KeyDoc::with_default("noop_message", "noop", "the message of a non-pass verdict"),
    ],
};

/// `type = sleep`.
pub const SLEEP: TestSpec = TestSpec {
    name: "sleep",
    about: "Sleeps `sleep_time` seconds, then passes; stops at once when the run is cancelled.",
    params: &[KeyDoc::required("sleep_time", "seconds to sleep (a float)")],
};

/// The `noop` test.
pub fn run_noop(ctx: &TestContext) -> BoxFuture<'_, TestResult> {
    Box::pin(async move {
        #[derive(Clone, Copy)]
        enum Verdict {
            Pass,
            Fail,
            Error,
            Skip,
        }
        let mut k = ctx.keys(&NOOP);
        let msg = k.text("noop_message");
        let verdict = k.choice(
            "noop_verdict",
            &[
                ("pass", Verdict::Pass),
                ("fail", Verdict::Fail),
                ("error", Verdict::Error),
                ("skip", Verdict::Skip),
            ],
        );
        let verdict = NOOP.declared(read_params(k, verdict)?, "noop_verdict")?;
        ctx.log.info(format_args!("noop: {}", ctx.name));
        match verdict {
            Verdict::Pass => Ok(()),
            Verdict::Fail => Err(TestError::Fail(msg)),
            Verdict::Error => Err(TestError::Error(msg)),
            Verdict::Skip => Err(TestError::Skip(msg)),
        }
    })
}

/// The `sleep` test.
pub fn run_sleep(ctx: &TestContext) -> BoxFuture<'_, TestResult> {
    Box::pin(async move {
        let mut k = ctx.keys(&SLEEP);
        let d = k.secs("sleep_time");
        let d = SLEEP.declared(read_params(k, d)?, "sleep_time")?;
        ctx.log.info(format_args!("sleeping {d:?}"));
        tokio::select! {
            () = tokio::time::sleep(d) => Ok(()),
            () = ctx.cancel.cancelled() => Err(TestError::Cancelled),
        }
    })
}
