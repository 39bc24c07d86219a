//! The main VM's session settings, read by the `spec` crate as the VM layer reads them.

use std::time::Duration;

use spec::{SessionSpec, TestTarget};

use crate::env::GuestVm;
use crate::registry::TestContext;
use crate::verdict::TestError;

/// `login_timeout` of the test's main VM (`main_vm`, else the first of `vms`; default 360 s,
/// as the VM layer and avocado-vt read it). A bad session key (prompts, credentials, timeouts)
/// is the test's error, with every bad key and its `file:line`.
pub(super) fn login_timeout(ctx: &TestContext) -> Result<Duration, TestError> {
    let spec_err = |e: spec::SpecError| TestError::error(crate::error::error_chain(&e));
    let target = TestTarget::read(&ctx.params).map_err(spec_err)?;
    let vm = target.require_vm(&ctx.params).map_err(spec_err)?;
    Ok(SessionSpec::of(&ctx.params, vm)
        .map_err(spec_err)?
        .login_timeout)
}

/// The test's main VM (`main_vm`, else the first of `vms`), alive in the environment. Its
/// session keys are read first, so a bad one is an error before the VM is asked for.
pub(super) fn main_vm(ctx: &TestContext) -> Result<std::sync::Arc<dyn GuestVm>, TestError> {
    let spec_err = |e: spec::SpecError| TestError::error(crate::error::error_chain(&e));
    let target = TestTarget::read(&ctx.params).map_err(spec_err)?;
    let name = target.require_vm(&ctx.params).map_err(spec_err)?;
    login_timeout(ctx)?;
    Ok(ctx.env.vm(name)?)
}
