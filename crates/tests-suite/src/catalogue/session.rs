//! The main VM's session settings, read by the `spec` crate as the VM layer reads them.

use std::time::Duration;

use crate::registry::TestContext;
use crate::verdict::TestError;

/// `login_timeout` of the test's main VM (default 360 s, as the VM layer and avocado-vt read
/// it). A bad session key (prompts, credentials, timeouts) is the test's error, with every bad
/// key and its `file:line`.
pub(super) fn login_timeout(ctx: &TestContext) -> Result<Duration, TestError> {
    let vm = ctx.params.get("main_vm").unwrap_or("vm1");
    let spec = ::vm::SessionSpec::read(&ctx.params.object_params(vm), vm)
        .map_err(|e| TestError::error(e.to_string()))?;
    Ok(spec.login_timeout)
}
