//! `throttle_groups`: one `-object throttle-group` per group, its limits as QEMU's `x-LIMIT`
//! properties (avocado-vt's `QThrottleGroup`), after the iothreads and before the disks whose
//! `image_throttle_group` puts a `throttle` node on top of their graph (`block::nodes`).

use super::{Builder, Opts};
use spec::vm::VmSpec;

/// `throttle_groups`.
pub(super) fn groups(b: &mut Builder<'_>, v: &VmSpec) {
    for g in &v.throttle.groups {
        let mut o = Opts::new("throttle-group");
        let limits: Vec<(String, String)> = g
            .limits
            .iter()
            .map(|(k, val)| (format!("x-{k}"), val.clone()))
            .collect();
        o.pairs(&limits);
        o.kv("id", &g.name);
        b.cmd.push2("-object", o.finish());
    }
}
