//! `-smp`: the topology avocado-vt computes ([`spec::smp`]) for what this binary has.
//!
//! Which levels exist follows avocado-vt's capability flags, decided by version alone: dies
//! since QEMU 4.1, clusters since 7.0, drawers and books since 8.2; omitted sockets/cores
//! prefer sockets before 6.2. `maxcpus=` and the topology items exist since QEMU 0.12 (the
//! `-smp [cpus=]n[,maxcpus=…]` syntax); before, `-smp N` alone, and a topology key the cfg
//! sets is reported. Items are emitted in avocado-vt's order: `maxcpus`, `cores`, `threads`,
//! `dies`, `clusters`, `drawers`, `books`, `sockets`.

use super::{Builder, Obj, Opts};
use crate::caps::QemuVersion;
use spec::problem::{Problem, ProblemKind};
use spec::smp::{SmpSpec, SmpSupport};
use spec::vm::VmSpec;

/// The release with `-smp maxcpus=,sockets=,cores=,threads=`.
const TOPOLOGY_SINCE: QemuVersion = QemuVersion::new(0, 12, 0);

/// What this binary supports, as avocado-vt's `Flags.SMP_*` decide it.
pub(super) fn support(b: &Builder<'_>, v: &VmSpec) -> SmpSupport {
    let ver = b.caps.version;
    SmpSupport {
        dies: ver >= QemuVersion::new(4, 1, 0),
        clusters: ver >= QemuVersion::new(7, 0, 0),
        drawers: ver >= QemuVersion::new(8, 2, 0),
        books: ver >= QemuVersion::new(8, 2, 0),
        prefer_sockets: ver < QemuVersion::new(6, 2, 0),
        pseries: v
            .machine_type
            .as_deref()
            .is_some_and(|m| m.starts_with("pseries")),
    }
}

/// `-smp N[,maxcpus=…,cores=…,threads=…,dies=…,clusters=…,drawers=…,books=…,sockets=…]`.
pub(super) fn smp(b: &mut Builder<'_>, v: &VmSpec) {
    let s = v.smp.clone().unwrap_or_default();
    let topo = match s.topology(&support(b, v)) {
        Ok(t) => t,
        Err(e) => {
            invalid(b, e.key, format!("a possible vCPU topology: {}", e.reason));
            return;
        }
    };
    let topology = b.caps.version >= TOPOLOGY_SINCE;
    if !topology {
        if let Some(key) = SmpSpec::topology_key(&s) {
            b.unsupported(
                Obj::Vm,
                key,
                format!("QEMU {} has no -smp topology options", b.caps.version),
            );
            return;
        }
    }
    let mut o = Opts::new(&topo.cpus.to_string());
    if topology {
        o.kv("maxcpus", &topo.maxcpus.to_string());
        for (k, n) in [
            ("cores", Some(topo.cores)),
            ("threads", Some(topo.threads)),
            ("dies", topo.dies),
            ("clusters", topo.clusters),
            ("drawers", topo.drawers),
            ("books", topo.books),
            ("sockets", Some(topo.sockets)),
        ] {
            if let Some(n) = n.filter(|n| *n != 0) {
                o.kv(k, &n.to_string());
            }
        }
    }
    b.cmd.push2("-smp", o.finish());
}

/// A problem with the cfg's value of VM key `key` (found while building: it needs the
/// binary's defaults).
pub(super) fn invalid(b: &mut Builder<'_>, key: &str, expected: String) {
    let read = b.spec.origins.get("vm", &b.spec.name, key);
    b.problems.push(Problem {
        object: format!("vm {}", b.spec.name),
        key: key.to_string(),
        value: read.map(|r| r.value.clone()),
        origin: read.and_then(|r| r.origin.clone()),
        kind: ProblemKind::Invalid { expected },
    });
}
