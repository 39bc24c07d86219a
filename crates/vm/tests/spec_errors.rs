//! Bad session keys stop `Vm::create` before anything starts: every bad key is reported at
//! once, as the `spec` crate reads it, instead of becoming a default.

mod support;

use support::{guest_params, logs, start};
use vm::Error;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_session_keys_fail_create_with_every_problem() {
    let logs = logs();
    let mut p = guest_params();
    p.insert("login_timeout", "soon");
    p.insert("guest_ready_timeout", "-5");
    p.insert("shell_prompt", "([");
    p.insert("mem", "lots");
    let err = match start(p, logs.path()).await {
        Ok(_) => panic!("a VM was created from bad session keys"),
        Err(e) => e,
    };
    let Error::Spec(spec_err) = &err else {
        panic!("expected the spec's error, got {err}");
    };
    let keys: Vec<&str> = spec_err.problems().iter().map(|p| p.key.as_str()).collect();
    // Hardware and session keys, all at once.
    for k in [
        "login_timeout",
        "guest_ready_timeout",
        "shell_prompt",
        "mem",
    ] {
        assert!(keys.contains(&k), "{k} not reported: {err}");
    }
    assert!(err.to_string().contains("\"soon\""), "{err}");
}
