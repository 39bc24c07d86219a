//! The main VM's session settings, read by the `spec` crate as the VM layer reads them.

use std::time::Duration;

use spec::{SessionSpec, TestTarget};

use crate::env::GuestVm;
use crate::registry::TestContext;
use crate::verdict::TestError;

/// The name of the test's main VM: `main_vm`, else the first of `vms` (`spec::TestTarget`).
pub(crate) fn main_vm_name(ctx: &TestContext) -> Result<String, TestError> {
    let target = TestTarget::read(&ctx.params)?;
    Ok(target.require_vm(&ctx.params)?.to_string())
}

/// `login_timeout` of VM `vm` (default 360 s, as the VM layer and avocado-vt read it). A bad
/// session key (prompts, credentials, timeouts) is the test's error, with every bad key and its
/// `file:line`.
fn login_timeout_of(ctx: &TestContext, vm: &str) -> Result<Duration, TestError> {
    Ok(SessionSpec::of(&ctx.params, vm)?.login_timeout)
}

/// `login_timeout` of the test's main VM.
pub(super) fn login_timeout(ctx: &TestContext) -> Result<Duration, TestError> {
    login_timeout_of(ctx, &main_vm_name(ctx)?)
}

/// A VM of the test with its `login_timeout`.
pub(super) type VmWithTimeout = (std::sync::Arc<dyn GuestVm>, Duration);

/// Every VM of the test (`vms`, in order), alive in the environment, each with its
/// `login_timeout` (read first, so a bad session key is an error before any VM is asked for).
pub(super) fn all_vms(ctx: &TestContext) -> Result<Vec<VmWithTimeout>, TestError> {
    let names: Vec<String> = ctx
        .params
        .get("vms")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    if names.is_empty() {
        return Ok(vec![(main_vm(ctx)?, login_timeout(ctx)?)]);
    }
    let timeouts = names
        .iter()
        .map(|n| login_timeout_of(ctx, n))
        .collect::<Result<Vec<_>, _>>()?;
    names
        .iter()
        .zip(timeouts)
        .map(|(n, t)| Ok((ctx.env.vm(n)?, t)))
        .collect()
}

/// The test's main VM, alive in the environment. Its session keys are read first, so a bad one
/// is an error before the VM is asked for.
pub(super) fn main_vm(ctx: &TestContext) -> Result<std::sync::Arc<dyn GuestVm>, TestError> {
    let name = main_vm_name(ctx)?;
    login_timeout_of(ctx, &name)?;
    Ok(ctx.env.vm(&name)?)
}
