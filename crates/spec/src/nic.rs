//! [`NicSpec`]: one NIC and its host side, read as avocado-vt reads a NIC's params
//! (`make_create_command`'s `add_nic`/`add_net`), with the keys declared here.

use params::Params;

use crate::keys::KeyDoc;
use crate::problem::{ProblemKind, SpecError};
use crate::read::{Findings, ObjParams, Reader};
use crate::types::MacAddr;
use crate::vm::ExtraOpts;

/// How a NIC reaches the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NicMode {
    /// User-mode networking (slirp).
    User,
    /// A tap device with optional up/down scripts.
    Tap,
    /// A tap device plugged into a host bridge by QEMU's bridge helper (`nettype = bridge`).
    Bridge {
        /// The bridge (`netdst`, default `virbr0`).
        br: String,
    },
    /// A macvtap device on `netdst` (`nettype = macvtap`): the `vm` crate creates it with the
    /// NIC's MAC, opens its tap (`/dev/tapIFINDEX`) and hands QEMU the fd.
    Macvtap {
        /// The lower device (`netdst`).
        netdst: String,
        /// `macvtap_mode` (avocado-vt's default `vepa`; bridge, private, passthru, source).
        mode: String,
    },
    /// passt serving the NIC on a unix socket (`nettype = user:passt`): QEMU's `stream` netdev
    /// connects to it; the `vm` crate starts and stops passt.
    Passt(PasstSpec),
    /// A host vhost-vdpa device (`nettype = vdpa`) named by `netdst`
    /// (`/sys/bus/vdpa/devices/NETDST/vhost-vdpa-N`, resolved by the `vm` crate).
    Vdpa {
        /// The vDPA device's name (`netdst`).
        netdst: String,
    },
}

/// How passt serves a `nettype = user:passt` NIC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasstSpec {
    /// `passt_binary` (default `passt`, looked up on `PATH`).
    pub binary: String,
    /// `net_port_forwards`: host-to-guest forwards, in order.
    pub port_forwards: Vec<PortForward>,
    /// `net_mtu`: the MTU passt assigns to the guest.
    pub mtu: Option<u32>,
}

/// One rule of `net_port_forwards` (`[tcp|udp]@SPEC`, avocado-vt's form; no protocol: tcp).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortForward {
    /// `true`: UDP (passt's `--udp-ports`); `false`: TCP (`--tcp-ports`).
    pub udp: bool,
    /// passt's port spec, as given (`80:8080`, `22`, `2000-2010`, …).
    pub spec: String,
}

/// The macvtap modes the kernel knows (`ip link … type macvtap mode MODE`).
pub const MACVTAP_MODES: &[&str] = &["vepa", "bridge", "private", "passthru", "source"];

/// One NIC (`nics`) and its host side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NicSpec {
    /// Object name.
    pub name: String,
    /// Position in `nics` (the legacy `vlan`).
    pub index: usize,
    /// `nic_model` (default rtl8139; `virtio` means `virtio-net-pci` with `-device`).
    pub model: String,
    /// `nic_mac`; a per-run address is derived when unset.
    pub mac: Option<MacAddr>,
    /// `nic_mode` (user, tap) or `nettype` (user, bridge, macvtap, user:passt, vdpa).
    pub mode: NicMode,
    /// `nic_ifname` (tap); a per-run name is derived when unset.
    pub ifname: Option<String>,
    /// `nic_script`.
    pub script: Option<String>,
    /// `nic_downscript` (default `no`).
    pub downscript: Option<String>,
    /// `tftp`: TFTP root of user networking.
    pub tftp: Option<String>,
    /// `bootp`: boot file announced by user networking's DHCP.
    pub bootfile: Option<String>,
    /// `nic_extra_params`, appended to the NIC.
    pub nic_extra: ExtraOpts,
    /// `netdev_extra_params`, appended to the netdev.
    pub netdev_extra: ExtraOpts,
    /// avocado-vt's further NIC and netdev keys.
    pub tuning: NicTuning,
}

/// avocado-vt's further NIC and netdev keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NicTuning {
    /// `vhost`: on or off (a tap or bridged NIC).
    pub vhost: Option<bool>,
    /// `vhostforce`.
    pub vhostforce: Option<bool>,
    /// `queues` (more than one: multiqueue).
    pub queues: Option<u32>,
    /// `mq` of a multiqueue virtio NIC (default on).
    pub mq: Option<String>,
    /// MSI-X vectors of a multiqueue virtio NIC (`vectors`, or 2 × queues + 2 with
    /// `enable_msix_vectors`).
    pub vectors: Option<u32>,
    /// `nic_pci_addr`.
    pub pci_addr: Option<String>,
    /// `bootindex`.
    pub bootindex: Option<String>,
    /// `romfile`.
    pub romfile: Option<String>,
    /// `ctrl_mac_addr`.
    pub ctrl_mac_addr: Option<String>,
    /// `failover`.
    pub failover: Option<String>,
    /// `qemu_bridge_helper`.
    pub bridge_helper: String,
}

/// Keys of a NIC (objects of `nics`).
pub const NIC_KEYS: &[KeyDoc] = &[
    KeyDoc::optional(
        "nic_mode",
        "user or tap (the seed's key; wins over `nettype`; unset: `nettype`)",
    ),
    KeyDoc::with_default(
        "nettype",
        "user",
        "avocado-vt's key: user, bridge, macvtap, user:passt (or passt), vdpa (network: a \
         libvirt network, which kvmtest does not use)",
    ),
    KeyDoc::optional(
        "netdst",
        "the bridge of `nettype = bridge` (unset: virbr0), the lower device of `macvtap`, the \
         vDPA device of `vdpa` (both required)",
    ),
    KeyDoc::with_default(
        "macvtap_mode",
        "vepa",
        "the mode of a `nettype = macvtap` NIC's device: vepa, bridge, private, passthru, source",
    ),
    KeyDoc::with_default(
        "passt_binary",
        "passt",
        "the passt program of a `nettype = user:passt` NIC (a bare name is looked up on PATH)",
    ),
    KeyDoc::optional(
        "net_port_forwards",
        "passt's forwards, `[tcp|udp]@HOST[:GUEST] …` (each passt's --tcp-ports/--udp-ports)",
    ),
    KeyDoc::optional("net_mtu", "the MTU passt assigns to the guest (`--mtu`)"),
    KeyDoc::with_default(
        "nic_model",
        "rtl8139",
        "the NIC device model (virtio means virtio-net-pci; e1000, rtl8139, …)",
    ),
    KeyDoc::optional("nic_mac", "its MAC (unset: a reserved random one)"),
    KeyDoc::optional(
        "nic_ifname",
        "the tap interface name (unset: derived from the VM)",
    ),
    KeyDoc::optional(
        "nic_script",
        "the tap's ifup script (unset: QEMU's default, usually /etc/qemu-ifup)",
    ),
    KeyDoc::optional(
        "nic_downscript",
        "the tap's ifdown script (unset: none, `downscript=no`)",
    ),
    KeyDoc::optional("tftp", "the user network's TFTP root for this NIC"),
    KeyDoc::optional("bootp", "the user network's BOOTP file for this NIC"),
    KeyDoc::optional("nic_extra_params", "more NIC device options, `a=b,c=d`"),
    KeyDoc::optional(
        "netdev_extra_params",
        "more netdev options, `a=b,c=d` (a leading comma is allowed)",
    ),
    KeyDoc::optional(
        "vhost",
        "vhost-net for a tap NIC: on, off (avocado-vt's old spelling `vhost=on` too)",
    ),
    KeyDoc::optional("vhostforce", "`vhostforce=` of a tap NIC: on or off"),
    KeyDoc::optional(
        "queues",
        "multiqueue: the netdev's queues (and `mq=on` on a virtio NIC)",
    ),
    KeyDoc::with_default(
        "enable_msix_vectors",
        "no",
        "yes: a multiqueue virtio NIC gets `vectors` (default 2 × queues + 2)",
    ),
    KeyDoc::optional("vectors", "MSI-X vectors of a multiqueue virtio NIC"),
    KeyDoc::optional("mq", "`mq=` of a multiqueue virtio NIC (default on)"),
    KeyDoc::optional("nic_pci_addr", "the NIC's PCI slot on the root bus (hex)"),
    KeyDoc::optional("bootindex", "the NIC's boot order"),
    KeyDoc::optional("romfile", "`romfile=` of the NIC (its option ROM)"),
    KeyDoc::optional(
        "ctrl_mac_addr",
        "`ctrl_mac_addr=` of a virtio NIC: on or off",
    ),
    KeyDoc::optional("failover", "`failover=` of a virtio NIC"),
    KeyDoc::with_default(
        "qemu_bridge_helper",
        "/usr/lib/qemu/qemu-bridge-helper",
        "the helper that puts a `nettype = bridge` NIC's tap into `netdst`",
    ),
];

impl NicMode {
    /// How NIC `nic` of `params` (the VM's object params) reaches the host: `nic_mode` (user,
    /// tap) or, as avocado-vt writes it, `nettype` (user, bridge with `netdst`, default
    /// `virbr0`). The one reading of these keys: the builder and the VM layer both use it.
    ///
    /// # Errors
    ///
    /// [`SpecError::Params`] naming the bad key, its value and `file:line`.
    pub fn of(params: &Params, vm: &str, nic: &str) -> Result<NicMode, SpecError> {
        let mut found = Findings::new();
        let mut r = Reader::new(ObjParams::root(params).object(nic), "nic", nic, &mut found);
        let mode = NicMode::read(&mut r);
        crate::problem::into_result(mode, vm, found.problems)
    }

    /// Reads the mode keys of the NIC `n` reads, recording problems there.
    pub fn read(n: &mut Reader<'_, '_>) -> NicMode {
        match (n.str("nic_mode"), n.str("nettype")) {
            (Some("user"), _) => NicMode::User,
            (Some("tap"), _) => NicMode::Tap,
            (Some(_), _) => {
                n.problem(
                    "nic_mode",
                    ProblemKind::Invalid {
                        expected: "a NIC mode (user, tap)".into(),
                    },
                );
                NicMode::User
            }
            (None, None | Some("user")) => NicMode::User,
            (None, Some("bridge")) => NicMode::Bridge {
                br: n.string("netdst").unwrap_or_else(|| "virbr0".into()),
            },
            (None, Some("macvtap")) => {
                let netdst = required(n, "netdst");
                let mode = match n.str("macvtap_mode") {
                    None => "vepa".to_string(),
                    Some(m) if MACVTAP_MODES.contains(&m) => m.to_string(),
                    Some(_) => {
                        n.problem(
                            "macvtap_mode",
                            ProblemKind::Invalid {
                                expected: format!("a macvtap mode ({})", MACVTAP_MODES.join(", ")),
                            },
                        );
                        "vepa".to_string()
                    }
                };
                NicMode::Macvtap { netdst, mode }
            }
            (None, Some("user:passt" | "passt")) => NicMode::Passt(read_passt(n)),
            (None, Some("vdpa")) => NicMode::Vdpa {
                netdst: required(n, "netdst"),
            },
            (None, Some("network")) => {
                n.problem(
                    "nettype",
                    ProblemKind::Unsupported {
                        reason: "a libvirt network (named by `netdst`) needs libvirt, which \
                                 kvmtest does not use: use bridge, macvtap or user"
                            .into(),
                    },
                );
                NicMode::User
            }
            (None, Some(_)) => {
                n.problem(
                    "nettype",
                    ProblemKind::Invalid {
                        expected: "a network type (user, bridge, macvtap, user:passt, vdpa)".into(),
                    },
                );
                NicMode::User
            }
        }
    }
}

/// `key`, which the NIC's mode needs, else a `Missing` problem (and an empty value).
fn required(n: &mut Reader<'_, '_>, key: &str) -> String {
    n.string(key).unwrap_or_else(|| {
        n.problem(key, ProblemKind::Missing);
        String::new()
    })
}

/// passt's keys of a `nettype = user:passt` NIC (avocado-vt's `QPasstDev`).
fn read_passt(n: &mut Reader<'_, '_>) -> PasstSpec {
    let binary = n.string("passt_binary").unwrap_or_else(|| "passt".into());
    let mut port_forwards = Vec::new();
    if let Some(rules) = n.str("net_port_forwards") {
        let mut bad = None;
        for rule in rules.split_whitespace() {
            // avocado-vt splits at the last `@`: no protocol (or `tcp`/`t`) is TCP.
            let (proto, spec) = rule.rsplit_once('@').unwrap_or(("", rule));
            let udp = match proto.to_ascii_lowercase().as_str() {
                "" | "tcp" | "t" => false,
                "udp" | "u" => true,
                _ => {
                    bad = Some(rule.to_string());
                    continue;
                }
            };
            if spec.is_empty() {
                bad = Some(rule.to_string());
                continue;
            }
            port_forwards.push(PortForward {
                udp,
                spec: spec.to_string(),
            });
        }
        if let Some(rule) = bad {
            n.problem(
                "net_port_forwards",
                ProblemKind::Invalid {
                    expected: format!(
                        "forwards such as `tcp@80:8080 udp@53` (bad rule {rule:?}: the protocol \
                         is tcp or udp, the ports follow the `@`)"
                    ),
                },
            );
        }
    }
    let mtu = n.num::<u32>("net_mtu", "an MTU");
    PasstSpec {
        binary,
        port_forwards,
        mtu,
    }
}

/// `on`/`off` (and avocado-vt's `vhost=on`) of `key`, else a problem.
fn on_off(n: &mut Reader<'_, '_>, key: &str) -> Option<bool> {
    match n.str(key)? {
        "on" | "vhost=on" | "yes" => Some(true),
        "off" | "vhost=off" | "no" => Some(false),
        _ => {
            n.problem(
                key,
                ProblemKind::Invalid {
                    expected: "on or off".into(),
                },
            );
            None
        }
    }
}

fn read_tuning(n: &mut Reader<'_, '_>) -> NicTuning {
    let queues: Option<u32> = n.num("queues", "a queue count");
    let msix = n.bool("enable_msix_vectors", false);
    let given = n.num::<u32>("vectors", "an MSI-X vector count");
    // avocado-vt: vectors only for a multiqueue NIC with `enable_msix_vectors`.
    let vectors = match queues {
        Some(q) if msix && q != 1 => Some(given.unwrap_or(2 * q + 2)),
        _ => None,
    };
    NicTuning {
        vhost: on_off(n, "vhost"),
        vhostforce: on_off(n, "vhostforce"),
        queues,
        mq: n.string("mq"),
        vectors,
        pci_addr: n.string("nic_pci_addr"),
        bootindex: n
            .num::<u32>("bootindex", "a boot index")
            .map(|b| b.to_string()),
        romfile: n
            .obj
            .get("romfile")
            .map(|_| n.str("romfile").unwrap_or("").to_string()),
        ctrl_mac_addr: n.string("ctrl_mac_addr"),
        failover: n.string("failover"),
        bridge_helper: n
            .string("qemu_bridge_helper")
            .unwrap_or_else(|| "/usr/lib/qemu/qemu-bridge-helper".into()),
    }
}

/// Reads NIC `name` (position `index` in `nics`) through its reader.
pub(crate) fn read_nic(n: &mut Reader<'_, '_>, name: &str, index: usize) -> NicSpec {
    let mode = NicMode::read(n);
    let nic_extra = n.opt_list("nic_extra_params", "a=b,c=d");
    let netdev_extra = n.opt_list("netdev_extra_params", "a=b,c=d");
    NicSpec {
        name: name.to_string(),
        index,
        model: n.string("nic_model").unwrap_or_else(|| "rtl8139".into()),
        mac: n.parse("nic_mac"),
        mode,
        ifname: n.string("nic_ifname"),
        script: n.string("nic_script"),
        downscript: n.string("nic_downscript"),
        tftp: n.string("tftp"),
        bootfile: n.string("bootp"),
        nic_extra,
        netdev_extra,
        tuning: read_tuning(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::params;

    #[test]
    fn a_libvirt_network_names_libvirt_and_a_typo_is_invalid() {
        let err = NicMode::of(&params(&[("nettype", "network")]), "vm1", "nic1")
            .err()
            .unwrap_or_else(|| panic!("network accepted"));
        assert!(
            matches!(&err.problems()[0].kind, ProblemKind::Unsupported { reason } if reason.contains("libvirt")),
            "{err}"
        );
        let err = NicMode::of(&params(&[("nettype", "brigde")]), "vm1", "nic1")
            .err()
            .unwrap_or_else(|| panic!("a typo accepted"));
        assert!(
            matches!(err.problems()[0].kind, ProblemKind::Invalid { .. }),
            "{err}"
        );
    }

    #[test]
    fn macvtap_and_vdpa_need_netdst_and_macvtap_defaults_to_vepa() {
        let p = params(&[("nettype", "macvtap"), ("netdst", "eth0")]);
        assert_eq!(
            NicMode::of(&p, "vm1", "nic1").ok(),
            Some(NicMode::Macvtap {
                netdst: "eth0".into(),
                mode: "vepa".into()
            })
        );
        let p = params(&[
            ("nettype", "macvtap"),
            ("netdst", "eth0"),
            ("macvtap_mode", "bridge"),
        ]);
        assert!(
            matches!(NicMode::of(&p, "vm1", "nic1"), Ok(NicMode::Macvtap { mode, .. }) if mode == "bridge")
        );
        let p = params(&[("nettype", "macvtap"), ("macvtap_mode", "hub")]);
        let err = NicMode::of(&p, "vm1", "nic1").err().map(|e| {
            e.problems()
                .iter()
                .map(|p| p.key.clone())
                .collect::<Vec<_>>()
        });
        assert_eq!(
            err,
            Some(vec!["netdst".to_string(), "macvtap_mode".to_string()])
        );
        let p = params(&[("nettype", "vdpa"), ("netdst", "vdpa0")]);
        assert_eq!(
            NicMode::of(&p, "vm1", "nic1").ok(),
            Some(NicMode::Vdpa {
                netdst: "vdpa0".into()
            })
        );
        let err = NicMode::of(&params(&[("nettype", "vdpa")]), "vm1", "nic1").err();
        assert!(
            matches!(&err, Some(e) if e.problems()[0].kind == ProblemKind::Missing),
            "{err:?}"
        );
    }

    #[test]
    fn passt_reads_its_binary_forwards_and_mtu_as_avocado_vt() {
        let p = params(&[
            ("nettype", "user:passt"),
            ("net_port_forwards", "tcp@80:8080 udp@53 2222:22 U@5000"),
            ("net_mtu", "1500"),
        ]);
        let fwd = |udp, spec: &str| PortForward {
            udp,
            spec: spec.into(),
        };
        assert_eq!(
            NicMode::of(&p, "vm1", "nic1").ok(),
            Some(NicMode::Passt(PasstSpec {
                binary: "passt".into(),
                port_forwards: vec![
                    fwd(false, "80:8080"),
                    fwd(true, "53"),
                    fwd(false, "2222:22"),
                    fwd(true, "5000"),
                ],
                mtu: Some(1500),
            }))
        );
        let p = params(&[("nettype", "passt"), ("passt_binary", "/opt/passt")]);
        assert!(
            matches!(NicMode::of(&p, "vm1", "nic1"), Ok(NicMode::Passt(s)) if s.binary == "/opt/passt")
        );
        let p = params(&[("nettype", "user:passt"), ("net_port_forwards", "sctp@9")]);
        let err = NicMode::of(&p, "vm1", "nic1").err();
        assert!(
            matches!(&err, Some(e) if e.to_string().contains("sctp@9")),
            "{err:?}"
        );
    }

    #[test]
    fn nettype_bridge_is_a_bridged_nic_on_netdst() {
        let p = params(&[("nettype", "bridge"), ("netdst", "br0")]);
        assert_eq!(
            NicMode::of(&p, "vm1", "nic1").ok(),
            Some(NicMode::Bridge { br: "br0".into() })
        );
        let p = params(&[("nettype", "bridge")]);
        assert_eq!(
            NicMode::of(&p, "vm1", "nic1").ok(),
            Some(NicMode::Bridge {
                br: "virbr0".into()
            })
        );
        let p = params(&[("nic_mode", "tap")]);
        assert_eq!(NicMode::of(&p, "vm1", "nic1").ok(), Some(NicMode::Tap));
        let p = params(&[("nic_mode", "wifi")]);
        let err = NicMode::of(&p, "vm1", "nic1").err();
        assert_eq!(
            err.map(|e| e.problems()[0].key.clone()).as_deref(),
            Some("nic_mode")
        );
    }
}
