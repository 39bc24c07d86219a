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
    /// A tap device in the bridge `netdst` (`nettype = bridge`): as avocado-vt's `create()`
    /// does, the `vm` crate opens the tap, puts it into the bridge and hands QEMU the fd — or,
    /// with `qemu_bridge_helper`, QEMU's bridge helper does it.
    Bridge {
        /// The bridge (`netdst`, default `virbr0`).
        br: String,
        /// `netdst_private = yes`: the bridge is kvmtest's own, in a network namespace of its
        /// own with a DHCP server, on this subnet (`netdst_private_subnet`).
        private: Option<Ipv4Subnet>,
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

/// An IPv4 subnet `A.B.C.D/N` (`netdst_private_subnet`): the private bridge takes the first
/// host address, its DHCP server hands out the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Subnet {
    /// The network address (host bits cleared).
    pub network: std::net::Ipv4Addr,
    /// The prefix length, 16 to 29.
    pub prefix: u8,
}

impl Ipv4Subnet {
    /// The netmask (`255.255.255.0` for /24).
    pub fn netmask(&self) -> std::net::Ipv4Addr {
        std::net::Ipv4Addr::from(u32::MAX << (32 - u32::from(self.prefix)))
    }

    /// The `n`th address of the subnet (0: the network itself).
    pub fn host(&self, n: u32) -> std::net::Ipv4Addr {
        std::net::Ipv4Addr::from(u32::from(self.network) + n)
    }

    /// The broadcast address.
    pub fn broadcast(&self) -> std::net::Ipv4Addr {
        std::net::Ipv4Addr::from(u32::from(self.network) | !u32::from(self.netmask()))
    }
}

impl std::str::FromStr for Ipv4Subnet {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let expected = || "an IPv4 subnet A.B.C.D/N with N from 16 to 29".to_owned();
        let (addr, prefix) = s.split_once('/').ok_or_else(expected)?;
        let addr: std::net::Ipv4Addr = addr.trim().parse().map_err(|_| expected())?;
        let prefix: u8 = prefix.trim().parse().map_err(|_| expected())?;
        if !(16..=29).contains(&prefix) {
            return Err(expected());
        }
        let mask = u32::MAX << (32 - u32::from(prefix));
        Ok(Ipv4Subnet {
            network: std::net::Ipv4Addr::from(u32::from(addr) & mask),
            prefix,
        })
    }
}

impl std::fmt::Display for Ipv4Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
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
    /// `qemu_bridge_helper`: QEMU's bridge helper creates a bridged NIC's tap (unset: kvmtest
    /// opens it, as avocado-vt does).
    pub bridge_helper: Option<String>,
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
    KeyDoc::optional(
        "qemu_bridge_helper",
        "kvmtest's key: QEMU's bridge helper (e.g. /usr/lib/qemu/qemu-bridge-helper) creates a \
         `nettype = bridge` NIC's tap and puts it into `netdst`, for runs without \
         CAP_NET_ADMIN (unset: kvmtest opens the tap and passes its fd, as avocado-vt does)",
    ),
    KeyDoc::with_default(
        "netdst_private",
        "no",
        "kvmtest's key: yes makes a `nettype = bridge` NIC's `netdst` a bridge kvmtest creates \
         for the run in a network namespace of its own, with dnsmasq serving DHCP on \
         `netdst_private_subnet`; the guest's address comes from its lease, logins run in the \
         namespace, and nothing outlives the run (shared by every VM naming that bridge)",
    ),
    KeyDoc::with_default(
        "netdst_private_subnet",
        "192.168.233.0/24",
        "the private bridge's IPv4 subnet: the bridge takes its first address, DHCP hands out \
         the rest",
    ),
];

impl NicSpec {
    /// NIC object `nic` of `params` (the VM's object params) read as a NIC of `nics` at
    /// position `index` is: the one reading of the NIC keys, for a NIC that is not on the
    /// command line (a hot-plugged one, tp-qemu's `hotplug_nicN`).
    ///
    /// # Errors
    ///
    /// [`SpecError::Params`] naming the bad key, its value and `file:line`.
    pub fn of(params: &Params, vm: &str, nic: &str, index: usize) -> Result<NicSpec, SpecError> {
        let mut found = Findings::new();
        let mut r = Reader::new(ObjParams::root(params).object(nic), "nic", nic, &mut found);
        let spec = read_nic(&mut r, nic, index);
        crate::problem::into_result(spec, vm, found.problems)
    }
}

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
            (None, Some("bridge")) => {
                let br = n.string("netdst").unwrap_or_else(|| "virbr0".into());
                let private = if n.bool("netdst_private", false) {
                    let subnet = n.str("netdst_private_subnet").unwrap_or("192.168.233.0/24");
                    match subnet.parse::<Ipv4Subnet>() {
                        Ok(s) => Some(s),
                        Err(expected) => {
                            n.problem("netdst_private_subnet", ProblemKind::Invalid { expected });
                            None
                        }
                    }
                } else {
                    None
                };
                if private.is_some() && n.obj.get("qemu_bridge_helper").is_some() {
                    n.problem(
                        "qemu_bridge_helper",
                        ProblemKind::Invalid {
                            expected: "no bridge helper with `netdst_private = yes` (the private \
                                       bridge lives in kvmtest's own network namespace, where \
                                       only kvmtest can plug taps)"
                                .into(),
                        },
                    );
                }
                NicMode::Bridge { br, private }
            }
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
        bridge_helper: n.string("qemu_bridge_helper"),
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

    #[test]
    fn private_subnets_parse_and_give_their_addresses() {
        let s: Ipv4Subnet = "10.9.8.77/24".parse().expect("subnet");
        assert_eq!(s.to_string(), "10.9.8.0/24");
        assert_eq!(s.host(1).to_string(), "10.9.8.1");
        assert_eq!(s.netmask().to_string(), "255.255.255.0");
        assert_eq!(s.broadcast().to_string(), "10.9.8.255");
        let s: Ipv4Subnet = "172.16.0.0/20".parse().expect("subnet");
        assert_eq!(s.broadcast().to_string(), "172.16.15.255");
        for bad in ["10.0.0.0", "10.0.0.0/8", "10.0.0.0/30", "x/24", "10.0.0/24"] {
            assert!(bad.parse::<Ipv4Subnet>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_private_bridge_reads_its_subnet_and_refuses_the_helper() {
        let p = params(&[
            ("nettype", "bridge"),
            ("netdst", "kvmtbr0"),
            ("netdst_private", "yes"),
        ]);
        assert_eq!(
            NicMode::of(&p, "vm1", "nic1").ok(),
            Some(NicMode::Bridge {
                br: "kvmtbr0".into(),
                private: Some("192.168.233.0/24".parse().expect("subnet"))
            })
        );
        let p = params(&[
            ("nettype", "bridge"),
            ("netdst_private", "yes"),
            ("netdst_private_subnet", "10.1.0.0/33"),
        ]);
        let e = NicMode::of(&p, "vm1", "nic1")
            .expect_err("a bad subnet")
            .to_string();
        assert!(e.contains("netdst_private_subnet"), "{e}");
    }
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
            Some(NicMode::Bridge {
                br: "br0".into(),
                private: None
            })
        );
        let p = params(&[("nettype", "bridge")]);
        assert_eq!(
            NicMode::of(&p, "vm1", "nic1").ok(),
            Some(NicMode::Bridge {
                br: "virbr0".into(),
                private: None
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
