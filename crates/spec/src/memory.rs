//! The memory family, as avocado-vt's `add_memorys`, `memory_define_by_params` and the
//! `-numa` part of `make_create_command` read it.
//!
//! * `mem` (MiB; capped by `vm_mem_limit`, at least `vm_mem_minimum`), `maxmem` and `slots`
//!   (read like avocado-vt through the `mem` object: `maxmem_mem` wins over `maxmem`).
//! * The machine's memory backend (where the binary has `-machine memory-backend=` and the VM
//!   has no `guest_numa_nodes`): `vm_mem_backend` (ram, file, memfd), `vm_mem_backend_path`,
//!   `vm_mem_policy`, `vm_mem_host_nodes`, `vm_mem_prealloc`, `vm_mem_share`; hugepages
//!   (`hugepage_path`, else the mount point `vm_hugepage_mountpoint` when `hugepage` or
//!   `setup_hugepages` is set) make it a file backend on that path, preallocated unless
//!   `vm_mem_prealloc` says otherwise. Reserving and mounting the huge pages, and avocado-vt's
//!   `mem` suggestion from them, are host setup, not the command line.
//! * `mem_devs`: one memory backend object each (`backend`, default `memory-backend-ram`, and
//!   the properties of that backend, read through the device's `mem` object: `size_mem_NAME`
//!   or `size_mem` or `size`…) plus, unless `use_mem = no`, a `pc-dimm` (an `nvdimm` when
//!   `nv_backend` is set) from the `*_dimm` keys and `dimm_extra_params`.
//! * `guest_numa_nodes` (`numa_mem`/`numa_memdev`, `numa_cpus`, `numa_nodeid`,
//!   `numa_initiator`, `numa_dist`) and `guest_numa_cpus` (`numa_cpu_nodeid` and the
//!   `numa_cpu_*id` keys).
//!
//! Not read (yet): `vm_memdev_model = virtio-mem` is reported, SGX EPC devices, `-numa hmat-*`,
//! thread contexts and `numa_consistency_check_cpu_mem`. Unset `mem` renders no `-m`
//! (avocado-vt sizes it from the host's free memory).

use crate::keys::KeyDoc;
use crate::problem::ProblemKind;
use crate::read::Reader;
use crate::types::MemSize;

/// The memory backend object types and their properties, in the order avocado-vt emits them
/// (`size` first, `id` last; `backend` is the type).
pub const BACKENDS: &[(&str, &[&str])] = &[
    (
        "memory-backend-ram",
        &[
            "size",
            "prealloc",
            "policy",
            "host-nodes",
            "share",
            "merge",
            "dump",
            "prealloc-threads",
            "prealloc-context",
            "reserve",
            "x-use-canonical-path-for-ramblock-id",
        ],
    ),
    (
        "memory-backend-file",
        &[
            "size",
            "prealloc",
            "mem-path",
            "policy",
            "host-nodes",
            "share",
            "merge",
            "dump",
            "pmem",
            "discard-data",
            "align",
            "prealloc-threads",
            "readonly",
            "prealloc-context",
            "reserve",
            "x-use-canonical-path-for-ramblock-id",
        ],
    ),
    (
        "memory-backend-memfd",
        &[
            "size",
            "prealloc",
            "seal",
            "policy",
            "host-nodes",
            "share",
            "merge",
            "dump",
            "hugetlb",
            "hugetlbsize",
            "prealloc-threads",
            "prealloc-context",
            "reserve",
            "x-use-canonical-path-for-ramblock-id",
        ],
    ),
    (
        "memory-backend-epc",
        &[
            "size",
            "prealloc",
            "policy",
            "host-nodes",
            "share",
            "merge",
            "dump",
            "prealloc-threads",
            "prealloc-context",
            "reserve",
            "x-use-canonical-path-for-ramblock-id",
        ],
    ),
];

/// The properties of backend type `backend`, when it is one.
pub fn backend_properties(backend: &str) -> Option<&'static [&'static str]> {
    BACKENDS
        .iter()
        .find(|(b, _)| *b == backend)
        .map(|(_, p)| *p)
}

/// The id avocado-vt gives the machine's memory backend.
pub const MACHINE_MEM_ID: &str = "mem-machine_mem";

/// A memory backend object: its type and properties (values as the cfg wrote them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemObject {
    /// `memory-backend-ram`, `-file`, `-memfd` or `-epc`.
    pub backend: String,
    /// `size`, `prealloc`… in [`BACKENDS`] order, set ones only.
    pub props: Vec<(&'static str, String)>,
}

/// The machine's memory as the machine backend would hold it: the VM-level `vm_mem_*` keys.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MachineMem {
    /// `vm_mem_backend`.
    pub backend: Option<String>,
    /// `vm_mem_backend_path` (required with a file backend).
    pub path: Option<String>,
    /// `vm_mem_policy`.
    pub policy: Option<String>,
    /// `vm_mem_host_nodes`.
    pub host_nodes: Option<String>,
    /// `vm_mem_prealloc`.
    pub prealloc: Option<String>,
    /// `vm_mem_share`.
    pub share: Option<String>,
}

impl MachineMem {
    /// The VM-level keys set, for a binary that cannot honour them.
    pub fn keys_set(&self) -> Vec<&'static str> {
        [
            ("vm_mem_backend", &self.backend),
            ("vm_mem_policy", &self.policy),
            ("vm_mem_host_nodes", &self.host_nodes),
            ("vm_mem_prealloc", &self.prealloc),
            ("vm_mem_share", &self.share),
        ]
        .into_iter()
        .filter(|(_, v)| v.is_some())
        .map(|(k, _)| k)
        .collect()
    }

    /// The backend object of `mib` MiB (`hugepages`: the hugetlbfs mount backing it).
    pub fn object(&self, mib: u64, hugepages: Option<&str>) -> MemObject {
        let mut backend = self
            .backend
            .clone()
            .unwrap_or_else(|| "memory-backend-ram".into());
        let mut path = match backend.as_str() {
            "memory-backend-file" => self.path.clone(),
            _ => None,
        };
        let mut prealloc = self.prealloc.clone();
        if let Some(h) = hugepages {
            backend = "memory-backend-file".into();
            path = Some(h.to_string());
            prealloc = Some(prealloc.unwrap_or_else(|| "yes".into()));
        }
        let given = [
            ("size", Some(format!("{mib}M"))),
            ("prealloc", prealloc),
            ("mem-path", path),
            ("policy", self.policy.clone()),
            ("host-nodes", self.host_nodes.clone()),
            ("share", self.share.clone()),
        ];
        let attrs = backend_properties(&backend).unwrap_or(&[]);
        let props = attrs
            .iter()
            .filter_map(|a| {
                given
                    .iter()
                    .find(|(k, _)| k == a)
                    .and_then(|(k, v)| Some((*k, v.clone()?)))
            })
            .collect();
        MemObject { backend, props }
    }
}

/// The device a `mem_devs` entry plugs its backend into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DimmSpec {
    /// `pc-dimm`, or `nvdimm` when `nv_backend` is set.
    pub driver: &'static str,
    /// Its properties from the `*_dimm` keys (in avocado-vt's order), then `id`, then
    /// `dimm_extra_params` (a property already set keeps its place); `memdev` comes last.
    pub props: Vec<(String, String)>,
}

/// One `mem_devs` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemDevSpec {
    /// Object name.
    pub name: String,
    /// Its backend object (id `mem-NAME`).
    pub object: MemObject,
    /// Its DIMM (id `dimm-NAME`), unless `use_mem = no`.
    pub dimm: Option<DimmSpec>,
}

/// One `guest_numa_nodes` entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NumaNodeSpec {
    /// Object name.
    pub name: String,
    /// `numa_mem` (wins over `numa_memdev`, as in avocado-vt).
    pub mem: Option<String>,
    /// `numa_memdev`.
    pub memdev: Option<String>,
    /// `numa_cpus`, comma-separated ranges (one `cpus=` each).
    pub cpus: Option<String>,
    /// `numa_nodeid`.
    pub nodeid: Option<String>,
    /// `numa_initiator`.
    pub initiator: Option<String>,
    /// `numa_dist`: (destination node, distance) pairs (only with `numa_nodeid`).
    pub dist: Vec<(String, String)>,
}

/// One `guest_numa_cpus` entry: `-numa cpu,node-id=…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumaCpuSpec {
    /// Object name.
    pub name: String,
    /// `numa_cpu_nodeid`.
    pub node: String,
    /// `drawer-id`, `book-id`, `socket-id`, `die-id`, `cluster-id`, `core-id`, `thread-id`
    /// that are set, in that order.
    pub ids: Vec<(&'static str, String)>,
}

/// The memory family of a VM (`mem` itself is [`crate::VmSpec::mem`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemorySpec {
    /// `maxmem` (of the `mem` object).
    pub maxmem: Option<String>,
    /// `slots` (only with `maxmem`).
    pub slots: Option<String>,
    /// The `vm_mem_*` keys.
    pub machine: MachineMem,
    /// The hugetlbfs mount backing guest memory.
    pub hugepages: Option<String>,
    /// `mem_devs`.
    pub devs: Vec<MemDevSpec>,
    /// `guest_numa_nodes`.
    pub numa_nodes: Vec<NumaNodeSpec>,
    /// `guest_numa_cpus`.
    pub numa_cpus: Vec<NumaCpuSpec>,
}

/// Keys of the `mem` object (avocado-vt's `object_params("mem")` of the VM).
pub const MEM_KEYS: &[KeyDoc] = &[
    KeyDoc::optional(
        "maxmem",
        "`-m maxmem=`: memory hotplug's ceiling (`maxmem_mem` wins over `maxmem`)",
    ),
    KeyDoc::optional("slots", "`-m slots=` (with `maxmem` only)"),
    KeyDoc::optional(
        "vm_mem_limit",
        "`mem` is cut down to this size (with its unit: 512M, 2G)",
    ),
    KeyDoc::optional(
        "vm_mem_minimum",
        "a `mem` below this size (with its unit) is a problem (avocado-vt cancels the test)",
    ),
];

const DIMM_KEYS: [(&str, &str); 7] = [
    ("memdev_dimm", "memdev"),
    ("slot_dimm", "slot"),
    ("addr_dimm", "addr"),
    ("node_dimm", "node"),
    ("unarmed_dimm", "unarmed"),
    ("size_dimm", "size"),
    ("label-size_dimm", "label-size"),
];

/// Keys of a memory device (objects of `mem_devs`).
pub const MEM_DEV_KEYS: &[KeyDoc] = &[
    KeyDoc::with_default(
        "backend",
        "memory-backend-ram",
        "the backend object type (read through the `mem` object: `backend_mem_NAME`)",
    ),
    KeyDoc::optional("size", "backend `size=` (also `size_mem`, `size_mem_NAME`)"),
    KeyDoc::optional("prealloc", "backend `prealloc=`"),
    KeyDoc::optional("mem-path", "backend `mem-path=` (file)"),
    KeyDoc::optional("policy", "backend `policy=`"),
    KeyDoc::optional("host-nodes", "backend `host-nodes=`"),
    KeyDoc::optional("share", "backend `share=`"),
    KeyDoc::optional("merge", "backend `merge=`"),
    KeyDoc::optional("dump", "backend `dump=`"),
    KeyDoc::optional("pmem", "backend `pmem=` (file)"),
    KeyDoc::optional("discard-data", "backend `discard-data=` (file)"),
    KeyDoc::optional("align", "backend `align=` (file)"),
    KeyDoc::optional("readonly", "backend `readonly=` (file)"),
    KeyDoc::optional("seal", "backend `seal=` (memfd)"),
    KeyDoc::optional("hugetlb", "backend `hugetlb=` (memfd)"),
    KeyDoc::optional("hugetlbsize", "backend `hugetlbsize=` (memfd)"),
    KeyDoc::optional("prealloc-threads", "backend `prealloc-threads=`"),
    KeyDoc::optional("prealloc-context", "backend `prealloc-context=`"),
    KeyDoc::optional("reserve", "backend `reserve=`"),
    KeyDoc::optional(
        "x-use-canonical-path-for-ramblock-id",
        "backend `x-use-canonical-path-for-ramblock-id=`",
    ),
    KeyDoc::with_default(
        "use_mem",
        "yes",
        "no: the backend object only, no DIMM device",
    ),
    KeyDoc::with_default(
        "vm_memdev_model",
        "dimm",
        "dimm (pc-dimm/nvdimm); virtio-mem is not built yet (a problem)",
    ),
    KeyDoc::optional("nv_backend", "set: the DIMM is an `nvdimm`"),
    KeyDoc::optional(
        "memdev_dimm",
        "DIMM `memdev=` (unset: the device's backend)",
    ),
    KeyDoc::optional("slot_dimm", "DIMM `slot=`"),
    KeyDoc::optional("addr_dimm", "DIMM `addr=`"),
    KeyDoc::optional("node_dimm", "DIMM `node=`"),
    KeyDoc::optional("unarmed_dimm", "nvdimm `unarmed=`"),
    KeyDoc::optional("size_dimm", "DIMM `size=`"),
    KeyDoc::optional("label-size_dimm", "nvdimm `label-size=`"),
    KeyDoc::optional(
        "uuid_dimm",
        "nvdimm `uuid=`: a UUID (any form Python's `uuid.UUID` reads); `<auto>` is not \
         supported",
    ),
    KeyDoc::optional(
        "dimm_extra_params",
        "more DIMM properties, `name=value` separated by spaces",
    ),
];

/// Keys of a guest NUMA node (objects of `guest_numa_nodes`).
pub const NUMA_NODE_KEYS: &[KeyDoc] = &[
    KeyDoc::optional("numa_mem", "`-numa node,mem=` (MiB)"),
    KeyDoc::optional(
        "numa_memdev",
        "`-numa node,memdev=` (e.g. `mem-NAME` of a `mem_devs` entry; unused with `numa_mem`)",
    ),
    KeyDoc::optional("numa_cpus", "CPU ranges, comma-separated: one `cpus=` each"),
    KeyDoc::optional("numa_nodeid", "`nodeid=`"),
    KeyDoc::optional("numa_initiator", "`initiator=`"),
    KeyDoc::optional(
        "numa_dist",
        "distances to other nodes, `[[node, distance], …]` (with `numa_nodeid`): `-numa dist`",
    ),
];

const NUMA_CPU_IDS: [(&str, &str); 7] = [
    ("numa_cpu_drawerid", "drawer-id"),
    ("numa_cpu_bookid", "book-id"),
    ("numa_cpu_socketid", "socket-id"),
    ("numa_cpu_dieid", "die-id"),
    ("numa_cpu_clusterid", "cluster-id"),
    ("numa_cpu_coreid", "core-id"),
    ("numa_cpu_threadid", "thread-id"),
];

/// Keys of a `-numa cpu` entry (objects of `guest_numa_cpus`).
pub const NUMA_CPU_KEYS: &[KeyDoc] = &[
    KeyDoc::required("numa_cpu_nodeid", "`node-id=`"),
    KeyDoc::optional("numa_cpu_drawerid", "`drawer-id=`"),
    KeyDoc::optional("numa_cpu_bookid", "`book-id=`"),
    KeyDoc::optional("numa_cpu_socketid", "`socket-id=`"),
    KeyDoc::optional("numa_cpu_dieid", "`die-id=`"),
    KeyDoc::optional("numa_cpu_clusterid", "`cluster-id=`"),
    KeyDoc::optional("numa_cpu_coreid", "`core-id=`"),
    KeyDoc::optional("numa_cpu_threadid", "`thread-id=`"),
];

impl MemorySpec {
    /// Reads the family from the VM's reader: `mem` (after `vm_mem_limit`) and the rest.
    pub fn read(r: &mut Reader<'_, '_>) -> (Option<MemSize>, MemorySpec) {
        let mut mem: Option<MemSize> = r.parse("mem");
        let (maxmem, slots) = {
            let mut m = r.child("mem", "mem");
            let maxmem = m.string("maxmem");
            let slots = maxmem.as_ref().and_then(|_| m.string("slots"));
            if let (Some(limit), Some(cur)) = (sized(&mut m, "vm_mem_limit"), mem) {
                if cur.mib() >= limit.mib() {
                    mem = Some(limit);
                }
            }
            if let (Some(min), Some(cur)) = (sized(&mut m, "vm_mem_minimum"), mem) {
                if cur.mib() < min.mib() {
                    m.problem(
                        "vm_mem_minimum",
                        ProblemKind::Invalid {
                            expected: format!("at most `mem` ({} MiB)", cur.mib()),
                        },
                    );
                }
            }
            (maxmem, slots)
        };
        let numa_nodes: Vec<NumaNodeSpec> = r
            .objects("guest_numa_nodes")
            .into_iter()
            .map(|name| read_numa_node(&mut r.child("numa_node", name), name))
            .collect();
        let machine = MachineMem {
            backend: r.string("vm_mem_backend"),
            path: r.string("vm_mem_backend_path"),
            policy: r.string("vm_mem_policy"),
            host_nodes: r.string("vm_mem_host_nodes"),
            prealloc: r.string("vm_mem_prealloc"),
            share: r.string("vm_mem_share"),
        };
        if let Some(b) = machine.backend.as_deref() {
            if backend_properties(b).is_none() {
                r.problem("vm_mem_backend", bad_backend());
            } else if b == "memory-backend-file" && machine.path.is_none() && numa_nodes.is_empty()
            {
                r.problem("vm_mem_backend_path", ProblemKind::Missing);
            }
        }
        let hugepages = r.string("hugepage_path").or_else(|| {
            let on = r.str("hugepage") == Some("yes") || r.str("setup_hugepages") == Some("yes");
            on.then(|| {
                r.string("vm_hugepage_mountpoint")
                    .unwrap_or_else(|| "/mnt/kvm_hugepage".into())
            })
        });
        if mem.is_none() && maxmem.is_some() {
            r.problem("mem", ProblemKind::Missing);
        }
        let devs = r
            .objects("mem_devs")
            .into_iter()
            .filter_map(|name| read_mem_dev(&mut r.child("mem_dev", name), name))
            .collect();
        let numa_cpus = r
            .objects("guest_numa_cpus")
            .into_iter()
            .filter_map(|name| {
                let mut c = r.child("numa_cpu", name);
                let node = c.require("numa_cpu_nodeid")?.to_string();
                let ids = NUMA_CPU_IDS
                    .iter()
                    .filter_map(|(k, p)| Some((*p, c.string(k)?)))
                    .collect();
                Some(NumaCpuSpec {
                    name: name.to_string(),
                    node,
                    ids,
                })
            })
            .collect();
        let spec = MemorySpec {
            maxmem,
            slots,
            machine,
            hugepages,
            devs,
            numa_nodes,
            numa_cpus,
        };
        (mem, spec)
    }
}

/// A size with its unit: avocado-vt reads these keys with `normalize_data_size`, which takes a
/// bare number as bytes (so `512` would be 0 MiB); a bare number is reported instead.
fn sized(m: &mut Reader<'_, '_>, key: &str) -> Option<MemSize> {
    if m.str(key)?.bytes().all(|b| b.is_ascii_digit()) {
        m.problem(
            key,
            ProblemKind::Invalid {
                expected: "a size with its unit, such as 512M or 2G (avocado-vt reads a bare \
                           number as bytes)"
                    .into(),
            },
        );
        return None;
    }
    m.parse(key)
}

fn bad_backend() -> ProblemKind {
    ProblemKind::Invalid {
        expected: format!(
            "a memory backend type: {}",
            BACKENDS
                .iter()
                .map(|(b, _)| *b)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn read_numa_node(n: &mut Reader<'_, '_>, name: &str) -> NumaNodeSpec {
    let nodeid = n.string("numa_nodeid");
    let dist = match n.str("numa_dist") {
        Some(d) if nodeid.is_some() => parse_dist(d).unwrap_or_else(|| {
            n.problem(
                "numa_dist",
                ProblemKind::Invalid {
                    expected: "a list of [node, distance] pairs such as [[1, 30], [2, 40]]".into(),
                },
            );
            Vec::new()
        }),
        _ => Vec::new(),
    };
    NumaNodeSpec {
        name: name.to_string(),
        mem: n.string("numa_mem"),
        memdev: n.string("numa_memdev"),
        cpus: n.string("numa_cpus"),
        nodeid,
        initiator: n.string("numa_initiator"),
        dist,
    }
}

/// `[[1, 30], [2, 40]]` (a Python literal: numbers or quoted strings) → pairs.
pub fn parse_dist(s: &str) -> Option<Vec<(String, String)>> {
    let flat: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    let inner = flat.strip_prefix('[')?.strip_suffix(']')?;
    if inner.is_empty() {
        return Some(Vec::new());
    }
    let inner = inner.strip_prefix('[')?.strip_suffix(']')?;
    let atom = |a: &str| -> Option<String> {
        let unq = a
            .strip_prefix('\'')
            .and_then(|x| x.strip_suffix('\''))
            .or_else(|| a.strip_prefix('"').and_then(|x| x.strip_suffix('"')));
        match unq {
            Some(u) => Some(u.to_string()),
            None if !a.is_empty() && a.bytes().all(|b| b.is_ascii_digit()) => Some(a.to_string()),
            None => None,
        }
    };
    inner
        .split("],[")
        .map(|pair| {
            let (a, b) = pair.split_once(',')?;
            Some((atom(a)?, atom(b)?))
        })
        .collect()
}

fn read_mem_dev(d: &mut Reader<'_, '_>, name: &str) -> Option<MemDevSpec> {
    let use_mem = d.bool("use_mem", true);
    let model = d.str("vm_memdev_model").unwrap_or("dimm");
    let nvdimm = d.str("nv_backend").is_some();
    let mut dimm = None;
    if use_mem {
        match model {
            "dimm" => dimm = Some(read_dimm(d, name, nvdimm)),
            "virtio-mem" => d.problem(
                "vm_memdev_model",
                ProblemKind::Unsupported {
                    reason: "virtio-mem devices are not built yet".into(),
                },
            ),
            _ => d.problem(
                "vm_memdev_model",
                ProblemKind::Invalid {
                    expected: "dimm or virtio-mem".into(),
                },
            ),
        }
    }
    // The backend's keys go through the device's `mem` object, as avocado-vt reads them.
    d.obj = d.obj.object("mem");
    let backend = d.str("backend").unwrap_or("memory-backend-ram").to_string();
    let Some(attrs) = backend_properties(&backend) else {
        d.problem("backend", bad_backend());
        return None;
    };
    let props = attrs
        .iter()
        .filter_map(|a| Some((*a, d.string(a)?)))
        .collect();
    Some(MemDevSpec {
        name: name.to_string(),
        object: MemObject { backend, props },
        dimm,
    })
}

fn read_dimm(d: &mut Reader<'_, '_>, name: &str, nvdimm: bool) -> DimmSpec {
    let driver = if nvdimm { "nvdimm" } else { "pc-dimm" };
    let mut props: Vec<(String, String)> = Vec::new();
    for (key, prop) in DIMM_KEYS {
        if !nvdimm && matches!(prop, "unarmed" | "label-size") {
            continue;
        }
        if let Some(v) = d.string(key) {
            props.push((prop.to_string(), v));
        }
    }
    if nvdimm {
        if let Some(u) = d.str("uuid_dimm") {
            match canonical_uuid(u) {
                Some(c) => props.push(("uuid".into(), c)),
                None if u == "<auto>" => d.problem(
                    "uuid_dimm",
                    ProblemKind::Unsupported {
                        reason: "`<auto>` (avocado-vt's uuid5 of the device name) is not built \
                                 yet"
                        .into(),
                    },
                ),
                None => props.push(("uuid".into(), u.to_string())),
            }
        }
    }
    props.push(("id".into(), format!("dimm-{name}")));
    if let Some(extra) = d.str("dimm_extra_params") {
        for entry in extra.split_whitespace() {
            let Some((k, v)) = entry.split_once('=') else {
                d.problem(
                    "dimm_extra_params",
                    ProblemKind::Invalid {
                        expected: "`name=value` pairs separated by spaces".into(),
                    },
                );
                break;
            };
            match props.iter_mut().find(|(pk, _)| pk == k) {
                Some(slot) => slot.1 = v.to_string(),
                None => props.push((k.to_string(), v.to_string())),
            }
        }
    }
    DimmSpec { driver, props }
}

/// A UUID as Python's `str(uuid.UUID(s))` prints it, when `s` is one (`urn:uuid:`, braces,
/// dashes anywhere, any case).
fn canonical_uuid(s: &str) -> Option<String> {
    let t = s.strip_prefix("urn:").unwrap_or(s);
    let t = t.strip_prefix("uuid:").unwrap_or(t);
    let t = t.trim_matches(|c| c == '{' || c == '}');
    let hex: String = t.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let h = hex.to_ascii_lowercase();
    Some(format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dist() {
        assert_eq!(
            parse_dist("[[1, 30], [2, 40]]"),
            Some(vec![("1".into(), "30".into()), ("2".into(), "40".into())])
        );
        assert_eq!(parse_dist("[]"), Some(vec![]));
        assert_eq!(parse_dist("[[1, 30]"), None);
        assert_eq!(parse_dist("[[1, x]]"), None);
    }

    #[test]
    fn uuid() {
        assert_eq!(
            canonical_uuid("urn:uuid:EA0EC480-6066-40bc-9709-65d0467ad024").as_deref(),
            Some("ea0ec480-6066-40bc-9709-65d0467ad024")
        );
        assert_eq!(canonical_uuid("nope"), None);
    }

    #[test]
    fn machine_object() {
        let m = MachineMem::default();
        let o = m.object(1024, None);
        assert_eq!(o.backend, "memory-backend-ram");
        assert_eq!(o.props, vec![("size", "1024M".to_string())]);
        let o = m.object(2048, Some("/mnt/kvm_hugepage"));
        assert_eq!(o.backend, "memory-backend-file");
        assert_eq!(
            o.props,
            vec![
                ("size", "2048M".to_string()),
                ("prealloc", "yes".to_string()),
                ("mem-path", "/mnt/kvm_hugepage".to_string())
            ]
        );
    }
}
