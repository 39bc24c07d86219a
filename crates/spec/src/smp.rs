//! The vCPU topology family: `smp`, `vcpu_maxcpus`, `vcpu_{drawers,books,sockets,dies,clusters,
//! cores,threads}`, `vcpu_prefer_sockets`, `vcpu_devices`, `win_max_vcpu_sockets`.
//!
//! [`SmpSpec`] is what the cfg says; [`SmpSpec::topology`] completes it exactly as avocado-vt's
//! `make_create_command` does, given what the binary supports ([`SmpSupport`]: which levels
//! exist, and whether omitted levels prefer sockets, QEMU before 6.2, or cores, since 6.2):
//!
//! * With `vcpu_maxcpus`: when exactly one level is omitted it becomes
//!   `maxcpus / (product of the others)` and `maxcpus` is rounded down to a multiple of the
//!   product (a `maxcpus` below the product is a problem); with several omitted they stay
//!   omitted (all become 1 when `maxcpus = 1` and no level is above 1). `smp` defaults to
//!   `maxcpus` minus the hotpluggable vCPUs.
//! * Without it: unsupported or unset drawers/books/dies/clusters are 1; with `smp` unset or 0
//!   the other levels default to 1; otherwise the preferred of sockets/cores is derived from
//!   `smp`, then threads. `maxcpus` is the product, and the hotpluggable vCPUs
//!   (`vcpu_devices`; times threads on `pseries`) are taken off `smp`.
//!
//! A level set to `INVALID` (avocado-vt's shipped cfgs do so per architecture) is treated as not
//! supported by the binary: 1 in the arithmetic, left off `-smp`.
//!
//! Host-dependent rule not reproduced: on an AMD host (`amd_vendor_string`, default
//! `AuthenticAMD`, matching the host CPU's vendor) avocado-vt forces `vcpu_threads = 1` unless
//! `test_negative_thread = yes` or the CPU model starts with `EPYC`. kvmtest never looks at the
//! host when rendering a command line, so a variant relying on that rule must set
//! `vcpu_threads = 1` itself.

use crate::read::Reader;

/// Keys of a hotpluggable vCPU (objects of `vcpu_devices`).
pub const VCPU_KEYS: &[crate::keys::KeyDoc] = &[crate::keys::KeyDoc::with_default(
    "vcpu_enable",
    "no",
    "yes: the vCPU is on the command line at start (not built yet: a problem); no: plugged \
     later by the test",
)];
/// One optional topology level (`vcpu_dies`, `vcpu_clusters`, `vcpu_drawers`, `vcpu_books`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Level {
    /// Unset (or 0): computed like an omitted level where the binary has it.
    #[default]
    Unset,
    /// `INVALID`: never on the command line, 1 in the arithmetic.
    Invalid,
    /// A count.
    Count(u32),
}

/// The vCPU keys as the cfg gives them (0 and unset are both "omitted", as in avocado-vt).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmpSpec {
    /// `smp` (0: derived; the builder takes hotpluggable vCPUs off it).
    pub cpus: u32,
    /// `vcpu_maxcpus` (0: derived).
    pub maxcpus: u32,
    /// `vcpu_sockets`.
    pub sockets: u32,
    /// `vcpu_cores`.
    pub cores: u32,
    /// `vcpu_threads`.
    pub threads: u32,
    /// `vcpu_dies`.
    pub dies: Level,
    /// `vcpu_clusters`.
    pub clusters: Level,
    /// `vcpu_drawers`.
    pub drawers: Level,
    /// `vcpu_books`.
    pub books: Level,
    /// `vcpu_prefer_sockets` (unset: the binary's default, see [`SmpSupport::prefer_sockets`]).
    pub prefer_sockets: Option<bool>,
    /// How many `vcpu_devices` (hotpluggable vCPUs) the VM lists.
    pub hotpluggable: u32,
    /// `os_type = windows`: sockets are capped at `win_max_vcpu_sockets` (default 2).
    pub windows: bool,
    /// `win_max_vcpu_sockets`.
    pub win_max_sockets: u32,
}

impl Default for SmpSpec {
    /// No key set: one vCPU on every level (`-smp 1,…`).
    fn default() -> SmpSpec {
        SmpSpec {
            cpus: 0,
            maxcpus: 0,
            sockets: 0,
            cores: 0,
            threads: 0,
            dies: Level::Unset,
            clusters: Level::Unset,
            drawers: Level::Unset,
            books: Level::Unset,
            prefer_sockets: None,
            hotpluggable: 0,
            windows: false,
            win_max_sockets: 2,
        }
    }
}

/// What the binary supports, for [`SmpSpec::topology`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SmpSupport {
    /// `-smp dies=` (QEMU 4.1).
    pub dies: bool,
    /// `-smp clusters=` (QEMU 7.0).
    pub clusters: bool,
    /// `-smp drawers=` (QEMU 8.2).
    pub drawers: bool,
    /// `-smp books=` (QEMU 8.2).
    pub books: bool,
    /// Omitted sockets/cores prefer sockets (QEMU before 6.2) unless `vcpu_prefer_sockets` says.
    pub prefer_sockets: bool,
    /// The machine is `pseries` (a hotpluggable vCPU is a core: its threads count).
    pub pseries: bool,
}

/// The completed topology, as `-smp` shows it; a level of 0 is left off (avocado-vt leaves
/// omitted levels out when `vcpu_maxcpus` leaves several undecided), `None` is a level the
/// binary (or `INVALID`) leaves out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Topology {
    /// vCPUs at start.
    pub cpus: u32,
    /// `maxcpus=`.
    pub maxcpus: u32,
    /// `sockets=`.
    pub sockets: u32,
    /// `cores=`.
    pub cores: u32,
    /// `threads=`.
    pub threads: u32,
    /// `dies=`.
    pub dies: Option<u32>,
    /// `clusters=`.
    pub clusters: Option<u32>,
    /// `drawers=`.
    pub drawers: Option<u32>,
    /// `books=`.
    pub books: Option<u32>,
}

/// An impossible topology: the key to blame and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmpError {
    /// `vcpu_maxcpus` or `vcpu_devices`.
    pub key: &'static str,
    /// What is wrong, avocado-vt's wording.
    pub reason: String,
}

impl SmpSpec {
    /// Reads the family from the VM's reader: `None` when none of its keys is set.
    pub fn read(r: &mut Reader<'_, '_>) -> Option<SmpSpec> {
        let count = |r: &mut Reader<'_, '_>, key: &str| -> u32 {
            r.num::<u32>(key, "a count (0 or more)").unwrap_or(0)
        };
        let smp = count(r, "smp");
        let maxcpus = count(r, "vcpu_maxcpus");
        let sockets = count(r, "vcpu_sockets");
        let cores = count(r, "vcpu_cores");
        let threads = count(r, "vcpu_threads");
        let level = |r: &mut Reader<'_, '_>, key: &str| match r.str(key) {
            None => Level::Unset,
            Some("INVALID") => Level::Invalid,
            Some(_) => match r.num::<u32>(key, "a count, or INVALID") {
                Some(0) | None => Level::Unset,
                Some(n) => Level::Count(n),
            },
        };
        let dies = level(r, "vcpu_dies");
        let clusters = level(r, "vcpu_clusters");
        let drawers = level(r, "vcpu_drawers");
        let books = level(r, "vcpu_books");
        let prefer_sockets = r
            .str("vcpu_prefer_sockets")
            .is_some()
            .then(|| r.bool("vcpu_prefer_sockets", false));
        let vcpus = r.objects("vcpu_devices");
        let hotpluggable = u32::try_from(vcpus.len()).unwrap_or(u32::MAX);
        for name in vcpus {
            let mut v = r.child("vcpu", name);
            if v.bool("vcpu_enable", false) {
                v.problem(
                    "vcpu_enable",
                    crate::problem::ProblemKind::Unsupported {
                        reason: "vCPU devices present at start (avocado-vt's `-device` per \
                                 enabled vcpu_devices entry) are not built by kvmtest yet; \
                                 leave them for hotplug"
                            .into(),
                    },
                );
            }
        }
        let windows = r.str("os_type") == Some("windows");
        let win_max_sockets = r
            .num::<u32>("win_max_vcpu_sockets", "a socket count")
            .unwrap_or(2);
        let s = SmpSpec {
            cpus: smp,
            maxcpus,
            sockets,
            cores,
            threads,
            dies,
            clusters,
            drawers,
            books,
            prefer_sockets,
            hotpluggable,
            windows,
            win_max_sockets,
        };
        (s != SmpSpec::default()).then_some(s)
    }

    /// The topology avocado-vt computes for this binary.
    ///
    /// # Errors
    ///
    /// [`SmpError`] when `vcpu_maxcpus` is below the product of the given levels, or when the
    /// hotpluggable vCPUs leave none at start.
    pub fn topology(&self, sup: &SmpSupport) -> Result<Topology, SmpError> {
        let level = |l: Level, on: bool| -> (bool, u32) {
            match l {
                _ if !on => (false, 1),
                Level::Invalid => (false, 1),
                Level::Unset => (true, 0),
                Level::Count(n) => (true, n),
            }
        };
        let (en_dies, mut dies) = level(self.dies, sup.dies);
        let (en_clusters, mut clusters) = level(self.clusters, sup.clusters);
        let (en_drawers, mut drawers) = level(self.drawers, sup.drawers);
        let (en_books, mut books) = level(self.books, sup.books);
        let mut sockets = self.sockets;
        if sockets != 0 && self.windows && sockets > self.win_max_sockets {
            sockets = self.win_max_sockets;
        }
        let (mut cores, mut threads) = (self.cores, self.threads);
        let prefer_sockets = self.prefer_sockets.unwrap_or(sup.prefer_sockets);
        let mut smp = u64::from(self.cpus);
        let mut maxcpus = u64::from(self.maxcpus);
        let mut err = None;
        let hotplug;
        if maxcpus != 0 {
            let values = [drawers, books, sockets, dies, clusters, cores, threads];
            let zeros = values.iter().filter(|v| **v == 0).count();
            if zeros == 1 {
                let product: u64 = values
                    .iter()
                    .filter(|v| **v != 0)
                    .map(|v| u64::from(*v))
                    .product();
                if maxcpus < product {
                    err = Some(SmpError {
                        key: "vcpu_maxcpus",
                        reason: format!(
                            "maxcpus({maxcpus}) must be equal to or greater than topological \
                             product({product})"
                        ),
                    });
                } else {
                    let missing = u32::try_from(maxcpus / product).unwrap_or(u32::MAX);
                    maxcpus -= maxcpus % product;
                    for v in [
                        &mut drawers,
                        &mut books,
                        &mut sockets,
                        &mut dies,
                        &mut clusters,
                        &mut cores,
                        &mut threads,
                    ] {
                        if *v == 0 {
                            *v = missing;
                        }
                    }
                }
            } else if zeros > 1 && maxcpus == 1 && values.iter().all(|v| *v < 2) {
                (drawers, books, sockets, dies, clusters, cores, threads) = (1, 1, 1, 1, 1, 1, 1);
            }
            hotplug = self.hotplug(sup, threads);
            if smp == 0 {
                smp = maxcpus.saturating_sub(hotplug);
            }
        } else {
            for v in [&mut drawers, &mut books, &mut dies, &mut clusters] {
                if *v == 0 {
                    *v = 1;
                }
            }
            let or1 = |v: u32| if v == 0 { 1 } else { v };
            let others =
                u64::from(clusters) * u64::from(dies) * u64::from(drawers) * u64::from(books);
            let derive = |a: u32, b: u32| -> u32 {
                let d = smp / (u64::from(a) * u64::from(b) * others);
                u32::try_from(d).unwrap_or(u32::MAX).max(1)
            };
            if smp == 0 {
                sockets = or1(sockets);
                cores = or1(cores);
                threads = or1(threads);
            } else {
                if prefer_sockets {
                    if sockets == 0 {
                        cores = or1(cores);
                        threads = or1(threads);
                        sockets = derive(cores, threads);
                    } else if cores == 0 {
                        threads = or1(threads);
                        cores = derive(sockets, threads);
                    }
                } else if cores == 0 {
                    sockets = or1(sockets);
                    threads = or1(threads);
                    cores = derive(sockets, threads);
                } else if sockets == 0 {
                    threads = or1(threads);
                    sockets = derive(cores, threads);
                }
                if threads == 0 {
                    threads = derive(cores, sockets);
                }
            }
            if smp == 0 {
                smp = u64::from(sockets) * u64::from(cores) * u64::from(threads) * others;
            }
            hotplug = self.hotplug(sup, threads);
            maxcpus = smp;
            smp = smp.saturating_sub(hotplug);
        }
        if smp == 0 {
            err = Some(SmpError {
                key: "vcpu_devices",
                reason: format!(
                    "Number of hotpluggable vCPUs({hotplug}) is greater than or equal to the \
                     maxcpus({maxcpus})."
                ),
            });
        }
        if let Some(e) = err {
            return Err(e);
        }
        let big = |what: &str, n: u64| -> Result<u32, SmpError> {
            u32::try_from(n).map_err(|_| SmpError {
                key: "smp",
                reason: format!("{what} {n} is too large"),
            })
        };
        Ok(Topology {
            cpus: big("vCPU count", smp)?,
            maxcpus: big("maxcpus", maxcpus)?,
            sockets,
            cores,
            threads,
            dies: en_dies.then_some(dies),
            clusters: en_clusters.then_some(clusters),
            drawers: en_drawers.then_some(drawers),
            books: en_books.then_some(books),
        })
    }

    fn hotplug(&self, sup: &SmpSupport, threads: u32) -> u64 {
        let n = u64::from(self.hotpluggable);
        if sup.pseries {
            n * u64::from(threads)
        } else {
            n
        }
    }

    /// Whether any key beyond `smp` shapes the topology (what a binary without topology
    /// options cannot honour): the first such key.
    pub fn topology_key(&self) -> Option<&'static str> {
        [
            ("vcpu_maxcpus", self.maxcpus),
            ("vcpu_sockets", self.sockets),
            ("vcpu_cores", self.cores),
            ("vcpu_threads", self.threads),
            ("vcpu_devices", self.hotpluggable),
        ]
        .into_iter()
        .find(|(_, v)| *v != 0)
        .map(|(k, _)| k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A vCPU device enabled at start is refused by name; one left for hotplug is fine.
    #[test]
    fn enabled_vcpu_devices_are_a_named_problem() {
        let p = crate::test_support::params(&[
            ("smp", "2"),
            ("vcpu_maxcpus", "4"),
            ("vcpu_devices", "vcpu1 vcpu2"),
            ("vcpu_enable_vcpu2", "yes"),
        ]);
        let err = crate::VmSpec::new(&p, "vm1").err();
        let problems = err.map(|e| e.problems().to_vec()).unwrap_or_default();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].object, "vcpu vcpu2");
        assert_eq!(problems[0].key, "vcpu_enable");
        let p = crate::test_support::params(&[
            ("smp", "2"),
            ("vcpu_maxcpus", "4"),
            ("vcpu_devices", "vcpu1"),
        ]);
        assert!(crate::VmSpec::new(&p, "vm1").is_ok());
    }

    const OLD: SmpSupport = SmpSupport {
        dies: true,
        clusters: false,
        drawers: false,
        books: false,
        prefer_sockets: true,
        pseries: false,
    };
    const NEW: SmpSupport = SmpSupport {
        prefer_sockets: false,
        ..OLD
    };
    /// x86 before dies (or `vcpu_dies = INVALID`): what `vcpu_maxcpus` arithmetic needs to
    /// leave a single level omitted.
    const NODIES: SmpSupport = SmpSupport { dies: false, ..NEW };

    fn spec(smp: u32, maxcpus: u32, s: u32, c: u32, t: u32) -> SmpSpec {
        SmpSpec {
            cpus: smp,
            maxcpus,
            sockets: s,
            cores: c,
            threads: t,
            ..SmpSpec::default()
        }
    }

    /// (cpus, maxcpus, sockets, cores, threads)
    type Shape = (u32, u32, u32, u32, u32);

    fn ok(r: Result<Topology, SmpError>) -> Topology {
        r.unwrap_or_else(|e| panic!("{e:?}"))
    }

    fn shape(t: Topology) -> (u32, u32, u32, u32, u32) {
        (t.cpus, t.maxcpus, t.sockets, t.cores, t.threads)
    }

    #[test]
    fn avocado_rules() {
        let cases: &[(SmpSpec, SmpSupport, Shape)] = &[
            // 6.2+: cores first; before: sockets first.
            (spec(2, 0, 0, 0, 0), NEW, (2, 2, 1, 2, 1)),
            (spec(2, 0, 0, 0, 0), OLD, (2, 2, 2, 1, 1)),
            (spec(8, 0, 2, 0, 0), NEW, (8, 8, 2, 4, 1)),
            (spec(8, 0, 0, 2, 0), NEW, (8, 8, 4, 2, 1)),
            (spec(8, 0, 0, 2, 0), OLD, (8, 8, 4, 2, 1)),
            (spec(8, 0, 2, 0, 0), OLD, (8, 8, 2, 4, 1)),
            (spec(8, 0, 0, 0, 2), NEW, (8, 8, 1, 4, 2)),
            (spec(8, 0, 0, 0, 2), OLD, (8, 8, 4, 1, 2)),
            // Sockets and cores given: threads derived last.
            (spec(8, 0, 2, 2, 0), NEW, (8, 8, 2, 2, 2)),
            // A smaller product than smp is kept as given (QEMU decides).
            (spec(3, 0, 2, 0, 0), NEW, (3, 3, 2, 1, 1)),
            // smp unset or 0: everything 1, smp the product.
            (spec(0, 0, 0, 0, 0), NEW, (1, 1, 1, 1, 1)),
            (spec(0, 0, 2, 2, 2), NEW, (8, 8, 2, 2, 2)),
            // maxcpus with one level omitted: derived, maxcpus rounded down.
            (spec(2, 9, 2, 0, 1), NODIES, (2, 8, 2, 4, 1)),
            (spec(0, 8, 2, 2, 0), NODIES, (8, 8, 2, 2, 2)),
            // maxcpus with several omitted (an unset `vcpu_dies` counts where dies exist):
            // left omitted.
            (spec(2, 8, 0, 0, 0), NODIES, (2, 8, 0, 0, 0)),
            (spec(2, 8, 2, 0, 1), NEW, (2, 8, 2, 0, 1)),
            (spec(0, 1, 0, 0, 0), NEW, (1, 1, 1, 1, 1)),
        ];
        for (i, (s, sup, want)) in cases.iter().enumerate() {
            let t = s
                .topology(sup)
                .unwrap_or_else(|e| panic!("case {i}: {e:?}"));
            assert_eq!(shape(t), *want, "case {i}: {s:?} {sup:?}");
        }
    }

    #[test]
    fn prefer_sockets_key_overrides_the_version() {
        let mut s = spec(4, 0, 0, 0, 0);
        s.prefer_sockets = Some(true);
        assert_eq!(shape(ok(s.topology(&NEW))), (4, 4, 4, 1, 1));
        s.prefer_sockets = Some(false);
        assert_eq!(shape(ok(s.topology(&OLD))), (4, 4, 1, 4, 1));
    }

    #[test]
    fn levels_and_invalid() {
        let all = SmpSupport {
            dies: true,
            clusters: true,
            drawers: true,
            books: true,
            prefer_sockets: false,
            pseries: false,
        };
        let mut s = spec(8, 0, 0, 0, 0);
        s.dies = Level::Count(2);
        s.clusters = Level::Invalid;
        let t = ok(s.topology(&all));
        assert_eq!(shape(t), (8, 8, 1, 4, 1));
        assert_eq!(
            (t.dies, t.clusters, t.drawers, t.books),
            (Some(2), None, Some(1), Some(1))
        );
        // Not supported: 1 in the arithmetic, left off.
        let t = ok(s.topology(&SmpSupport::default()));
        assert_eq!(shape(t), (8, 8, 1, 8, 1));
        assert_eq!(t.dies, None);
        // maxcpus with dies omitted and every other level given: dies derived.
        let mut s = spec(0, 16, 2, 2, 2);
        s.dies = Level::Unset;
        let t = ok(s.topology(&NEW));
        assert_eq!((shape(t), t.dies), ((16, 16, 2, 2, 2), Some(2)));
    }

    #[test]
    fn hotplug_and_windows() {
        let mut s = spec(4, 0, 0, 0, 0);
        s.hotpluggable = 1;
        assert_eq!(shape(ok(s.topology(&NEW))), (3, 4, 1, 4, 1));
        let mut s = spec(0, 8, 0, 0, 0);
        s.hotpluggable = 2;
        assert_eq!(shape(ok(s.topology(&NEW))), (6, 8, 0, 0, 0));
        let pseries = SmpSupport {
            pseries: true,
            ..NEW
        };
        let mut s = spec(8, 0, 0, 0, 2);
        s.hotpluggable = 1;
        assert_eq!(shape(ok(s.topology(&pseries))), (6, 8, 1, 4, 2));
        let mut s = spec(8, 0, 4, 0, 0);
        s.windows = true;
        assert_eq!(shape(ok(s.topology(&NEW))), (8, 8, 2, 4, 1));
    }

    #[test]
    fn impossible() {
        let e = spec(0, 3, 2, 2, 0)
            .topology(&NODIES)
            .expect_err("impossible");
        assert_eq!(e.key, "vcpu_maxcpus");
        let mut s = spec(2, 0, 0, 0, 0);
        s.hotpluggable = 2;
        assert_eq!(
            s.topology(&NEW).expect_err("impossible").key,
            "vcpu_devices"
        );
        let mut s = spec(0, 2, 0, 0, 0);
        s.hotpluggable = 2;
        assert_eq!(
            s.topology(&NEW).expect_err("impossible").key,
            "vcpu_devices"
        );
    }
}
