//! Running host commands from tests: argv vectors only, logged before spawning, killed when the
//! test is cancelled or dropped.

use std::ffi::OsString;
use std::process::Stdio;

use crate::registry::TestContext;
use crate::verdict::TestError;

/// What a finished command produced.
#[derive(Debug, Clone)]
pub struct CmdOutput {
    /// The argv, rendered for messages.
    pub display: String,
    /// The exit code (`None` when killed by a signal).
    pub code: Option<i32>,
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Standard error, lossily decoded.
    pub stderr: String,
}

impl CmdOutput {
    /// Whether it exited with 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// A one-paragraph description for failure messages: argv, status and stderr.
    pub fn describe(&self) -> String {
        let code = self
            .code
            .map_or_else(|| "a signal".to_string(), |c| c.to_string());
        format!(
            "`{}` exited with {code}: {}",
            self.display,
            self.stderr.trim()
        )
    }
}

/// Run `argv` in `ctx.dir`, log it and its result, and return its output. Failing to spawn
/// (binary missing) is a [`TestError::Error`]; a non-zero exit is returned for the caller to
/// judge. The child is killed if the test is cancelled.
pub async fn run(ctx: &TestContext, argv: &[OsString]) -> Result<CmdOutput, TestError> {
    let display = vm::render_argv(argv);
    let Some((prog, args)) = argv.split_first() else {
        return Err(TestError::error("empty command"));
    };
    ctx.log.info(format_args!("run: {display}"));
    // This module is the runner's one way to run a program.
    #[allow(clippy::disallowed_methods)]
    let child = tokio::process::Command::new(prog)
        .args(args)
        .current_dir(&ctx.dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| TestError::error(format!("cannot run `{display}`: {e}")))?;
    let out = tokio::select! {
        r = child.wait_with_output() => r
            .map_err(|e| TestError::error(format!("waiting for `{display}`: {e}")))?,
        () = ctx.cancel.cancelled() => return Err(TestError::Cancelled),
    };
    let out = CmdOutput {
        display,
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    ctx.log.info(format_args!(
        "exit {:?}; stdout: {}; stderr: {}",
        out.code,
        out.stdout.trim(),
        out.stderr.trim()
    ));
    Ok(out)
}
