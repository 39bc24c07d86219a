//! Typed per-object views of a variant's [`Params`]: [`VmView`] and the objects it lists.
//!
//! Each view is read once, through one fallible constructor ([`VmView::new`]) that reports every
//! bad key of every object at once. Values are borrowed from the `Params`. Defaults follow the
//! seed framework where it had one (NIC model `rtl8139`, `nic_mode` `user`, image format
//! `qcow2`); where a missing key made it produce a broken command line (no `image_name`), the
//! view reports the key as missing instead.

mod obj;

pub use obj::Reader;
pub use obj::{FlatParams, FxHasher, ObjParams, Src};

use params::Params;

use crate::opts::split_opt_list;
use crate::problem::{Problem, ProblemKind, SpecError};
use crate::types::{
    Accel, CdromInterface, DiskInterface, DisplayKind, DriveCache, ErrorAction, ImageFormat,
    IncomingMode, MacAddr, MemSize, MonitorKind, PciAssignable, Uuid,
};

/// `uuid`: fixed, or chosen per run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UuidSpec {
    /// `uuid = random`: the run context supplies one.
    Random,
    /// A fixed UUID.
    Fixed(Uuid),
}

/// Parsed `key=value` pairs for `*_extra_params` keys (re-escaped when emitted).
pub type ExtraOpts = Vec<(String, Option<String>)>;

/// How a NIC reaches the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NicMode<'a> {
    /// User-mode networking (slirp).
    User,
    /// A tap device with optional up/down scripts.
    Tap,
    /// A tap device plugged into a host bridge by QEMU's bridge helper (`nettype = bridge`).
    Bridge {
        /// The bridge (`netdst`, default `virbr0`).
        br: &'a str,
    },
}

/// `-smp` and its topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Smp {
    /// Number of vCPUs.
    pub cpus: u32,
    /// `vcpu_sockets`.
    pub sockets: Option<u32>,
    /// `vcpu_cores`.
    pub cores: Option<u32>,
    /// `vcpu_threads`.
    pub threads: Option<u32>,
}

/// One disk image (`images`), unless `boot_drive = no`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageView<'a> {
    /// Object name (`image1`).
    pub name: &'a str,
    /// `image_name`: path without the format extension, relative to the root dir unless
    /// absolute.
    pub image_name: &'a str,
    /// `image_format` (default qcow2).
    pub format: ImageFormat,
    /// `image_raw_device = yes`: `image_name` is a host block device, used as is.
    pub raw_device: bool,
    /// `drive_format`.
    pub interface: Option<DiskInterface>,
    /// `drive_index`.
    pub index: Option<u32>,
    /// `drive_cache`.
    pub cache: Option<DriveCache>,
    /// `drive_werror`.
    pub werror: Option<ErrorAction>,
    /// `drive_rerror`.
    pub rerror: Option<ErrorAction>,
    /// `drive_serial`.
    pub serial: Option<&'a str>,
    /// `image_snapshot`.
    pub snapshot: bool,
    /// `image_boot`.
    pub boot: bool,
    /// `image_readonly`.
    pub readonly: bool,
}

impl<'a> ImageView<'a> {
    /// Image `image` from its object params (`params.object_params(image)`), every bad key
    /// reported at once. The one reading of the image keys: the builder, the VM layer
    /// (`qemu-img`) and the runner (image placement) all use it.
    ///
    /// # Errors
    ///
    /// [`SpecError::Params`] listing every problem (`vm` names the VM in the message).
    pub fn of(params: &'a Params, vm: &str, image: &'a str) -> Result<ImageView<'a>, SpecError> {
        let mut problems = Vec::new();
        let mut r = Reader::new(ObjParams::root(params), "image", image, &mut problems);
        let view = ImageView::read(&mut r, image);
        if problems.is_empty() {
            Ok(view)
        } else {
            crate::problem::sort_problems(&mut problems);
            Err(SpecError::Params {
                vm: vm.to_string(),
                problems,
            })
        }
    }

    /// Reads the image keys through `i` (the image's reader).
    pub fn read(i: &mut Reader<'a, '_>, name: &'a str) -> ImageView<'a> {
        ImageView {
            name,
            image_name: i.require("image_name").unwrap_or(""),
            format: i.parse("image_format").unwrap_or(ImageFormat::Qcow2),
            raw_device: i.bool("image_raw_device", false),
            interface: i.parse("drive_format"),
            index: i.num("drive_index", "a drive index"),
            cache: i.parse("drive_cache"),
            werror: i.parse("drive_werror"),
            rerror: i.parse("drive_rerror"),
            serial: i.str("drive_serial"),
            snapshot: i.bool("image_snapshot", false),
            boot: i.bool("image_boot", false),
            readonly: i.bool("image_readonly", false),
        }
    }

    /// The file as the cfg names it: `image_name.format`, or `image_name` for a raw device.
    pub fn file_name(&self) -> String {
        if self.raw_device {
            self.image_name.to_string()
        } else {
            format!("{}.{}", self.image_name, self.format)
        }
    }
}

/// One CD-ROM (`cdroms`) with an ISO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CdromView<'a> {
    /// Object name.
    pub name: &'a str,
    /// `cdrom`: the ISO, relative to the root dir unless absolute.
    pub iso: &'a str,
    /// `drive_index`.
    pub index: Option<u32>,
    /// `cd_format` (default ide).
    pub interface: CdromInterface,
}

/// One NIC (`nics`) and its host side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NicView<'a> {
    /// Object name.
    pub name: &'a str,
    /// Position in `nics` (the legacy `vlan`).
    pub index: usize,
    /// `nic_model` (default rtl8139; `virtio` means `virtio-net-pci` with `-device`).
    pub model: &'a str,
    /// `nic_mac`; a per-run address is derived when unset.
    pub mac: Option<MacAddr>,
    /// `nic_mode` (user, tap) or `nettype` (user, bridge).
    pub mode: NicMode<'a>,
    /// `nic_ifname` (tap); a per-run name is derived when unset.
    pub ifname: Option<&'a str>,
    /// `nic_script`.
    pub script: Option<&'a str>,
    /// `nic_downscript` (default `no`).
    pub downscript: Option<&'a str>,
    /// `tftp`: TFTP root of user networking.
    pub tftp: Option<&'a str>,
    /// `bootp`: boot file announced by user networking's DHCP.
    pub bootfile: Option<&'a str>,
    /// `nic_extra_params`, appended to the NIC.
    pub nic_extra: ExtraOpts,
    /// `netdev_extra_params`, appended to the netdev.
    pub netdev_extra: ExtraOpts,
}

/// One monitor (`monitors`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorView<'a> {
    /// Object name.
    pub name: &'a str,
    /// `monitor_type` (default human).
    pub kind: MonitorKind,
}

/// One port redirection (`redirs`) for user networking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirView<'a> {
    /// Object name.
    pub name: &'a str,
    /// `guest_port`.
    pub guest_port: u16,
}

/// PCI devices to assign (`pci_assignable`, `devices_requested`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PciRequest {
    /// Which kind.
    pub kind: PciAssignable,
    /// How many.
    pub count: u32,
}

/// Everything the builder needs about one VM, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmView<'a> {
    /// The VM's name (`vms` entry), also `-name`.
    pub name: &'a str,
    /// `qemu_binary` (default `qemu`), relative to the root dir unless absolute.
    pub qemu_binary: &'a str,
    /// `machine_type`.
    pub machine_type: Option<&'a str>,
    /// `vm_accelerator`.
    pub accel: Option<Accel>,
    /// `cpu_model`.
    pub cpu_model: Option<&'a str>,
    /// `nodefaults`.
    pub nodefaults: bool,
    /// `mem`.
    pub mem: Option<MemSize>,
    /// `smp` and `vcpu_*`.
    pub smp: Option<Smp>,
    /// `monitors`.
    pub monitors: Vec<MonitorView<'a>>,
    /// `serials` (one console named `serial0` when the key is absent, as the seed always had
    /// one).
    pub serials: Vec<&'a str>,
    /// `images`, without those with `boot_drive = no`.
    pub images: Vec<ImageView<'a>>,
    /// `scsi_hba` (default virtio-scsi-pci), for SCSI disks and CD-ROMs.
    pub scsi_hba: &'a str,
    /// `nics`.
    pub nics: Vec<NicView<'a>>,
    /// `redirs`.
    pub redirs: Vec<RedirView<'a>>,
    /// `cdroms` with an ISO (or the VM-level `cdrom` of old configs).
    pub cdroms: Vec<CdromView<'a>>,
    /// `floppy`.
    pub floppy: Option<&'a str>,
    /// `tftp` (VM level, for `-tftp` on binaries without `tftp=`).
    pub tftp: Option<&'a str>,
    /// `bootp` (VM level, for `-bootp`).
    pub bootp: Option<&'a str>,
    /// `kernel`.
    pub kernel: Option<&'a str>,
    /// `initrd`.
    pub initrd: Option<&'a str>,
    /// `kernel_params`, or the seed's `kernel_cmdline`.
    pub kernel_cmdline: Option<&'a str>,
    /// `display`.
    pub display: Option<DisplayKind>,
    /// `vga`.
    pub vga: Option<&'a str>,
    /// `uuid`.
    pub uuid: Option<UuidSpec>,
    /// `testdev`.
    pub testdev: bool,
    /// `disable_hpet`.
    pub disable_hpet: bool,
    /// `pci_assignable`.
    pub pci: Option<PciRequest>,
    /// `extra_params`, split into argv words (shell-like quoting, never a shell).
    pub extra_params: Vec<String>,
    /// `x11_display`: `DISPLAY` for the child.
    pub x11_display: Option<&'a str>,
    /// `migration_mode`: start as a migration destination. Callers may set it directly.
    pub incoming: Option<IncomingMode>,
    /// `migration_exec_cmd_dst`: the command for `exec` mode (default `nc -l PORT`).
    pub incoming_exec_cmd: Option<&'a str>,
}

impl<'a> VmView<'a> {
    /// The view of VM `vm` in `params` (`object_params(vm)`), every bad key reported at once.
    ///
    /// # Errors
    ///
    /// [`SpecError::Params`] listing every problem.
    pub fn new(params: &'a Params, vm: &'a str) -> Result<VmView<'a>, SpecError> {
        let mut problems = Vec::new();
        let view = VmView::read(&ObjParams::root(params), vm, &mut problems);
        if problems.is_empty() {
            Ok(view)
        } else {
            crate::problem::sort_problems(&mut problems);
            Err(SpecError::Params {
                vm: vm.to_string(),
                problems,
            })
        }
    }

    /// Reads the view, appending problems to `problems` and using defaults for bad keys.
    pub fn read(root: &ObjParams<'a>, vm: &'a str, problems: &mut Vec<Problem>) -> Self {
        VmView::read_obj(root.object(vm), vm, problems)
    }

    /// Like [`VmView::read`], from the VM's object view (already `object(vm)`).
    pub fn read_obj(obj: ObjParams<'a>, vm: &'a str, problems: &mut Vec<Problem>) -> Self {
        let mut r = Reader::new(obj, "vm", vm, problems);
        let smp = r.num::<u32>("smp", "a vCPU count").map(|cpus| Smp {
            cpus,
            sockets: r.num("vcpu_sockets", "a socket count"),
            cores: r.num("vcpu_cores", "a core count"),
            threads: r.num("vcpu_threads", "a thread count"),
        });
        let monitors = r
            .obj
            .objects("monitors")
            .into_iter()
            .map(|name| {
                let mut m = r.child("monitor", name);
                MonitorView {
                    name,
                    kind: m.parse("monitor_type").unwrap_or(MonitorKind::Human),
                }
            })
            .collect();
        let serials = match r.obj.get("serials") {
            Some(_) => r.obj.objects("serials"),
            None => vec!["serial0"],
        };
        let mut images = Vec::new();
        for name in r.obj.objects("images") {
            let mut i = r.child("image", name);
            if !i.bool("boot_drive", true) {
                continue;
            }
            images.push(ImageView::read(&mut i, name));
        }
        let mut nics = Vec::new();
        for (index, name) in r.obj.objects("nics").into_iter().enumerate() {
            let mut n = r.child("nic", name);
            nics.push(read_nic(&mut n, name, index));
        }
        let mut redirs = Vec::new();
        for name in r.obj.objects("redirs") {
            let mut d = r.child("redir", name);
            if let Some(guest_port) = d.num::<u16>("guest_port", "a TCP port") {
                redirs.push(RedirView { name, guest_port });
            } else if d.obj.get("guest_port").is_none() {
                d.problem("guest_port", ProblemKind::Missing);
            }
        }
        let mut cdrom_names = r.obj.objects("cdroms");
        if r.obj.get("cdroms").is_none() && r.str("cdrom").is_some() {
            cdrom_names.push("cdrom");
        }
        let mut cdroms = Vec::new();
        for name in cdrom_names {
            let mut c = r.child("cdrom", name);
            let index = c.num("drive_index", "a drive index");
            let interface = c.parse("cd_format").unwrap_or(CdromInterface::Ide);
            if let Some(iso) = c.str("cdrom") {
                cdroms.push(CdromView {
                    name,
                    iso,
                    index,
                    interface,
                });
            }
        }
        let uuid = match r.str("uuid") {
            None => None,
            Some("random") => Some(UuidSpec::Random),
            Some(_) => r.parse("uuid").map(UuidSpec::Fixed),
        };
        let pci = match r.parse("pci_assignable") {
            None | Some(PciAssignable::No) => None,
            Some(kind) => Some(PciRequest {
                kind,
                count: r.num("devices_requested", "a device count").unwrap_or(1),
            }),
        };
        let extra_params = match r.str("extra_params") {
            None => Vec::new(),
            Some(s) => shlex::split(s).unwrap_or_else(|| {
                r.problem(
                    "extra_params",
                    ProblemKind::Invalid {
                        expected: "QEMU options with balanced quotes".into(),
                    },
                );
                Vec::new()
            }),
        };
        VmView {
            name: vm,
            qemu_binary: r.str("qemu_binary").unwrap_or("qemu"),
            machine_type: r.str("machine_type"),
            accel: r.parse("vm_accelerator"),
            cpu_model: r.str("cpu_model"),
            nodefaults: r.bool("nodefaults", false),
            mem: r.parse("mem"),
            smp,
            monitors,
            serials,
            images,
            scsi_hba: r.str("scsi_hba").unwrap_or("virtio-scsi-pci"),
            nics,
            redirs,
            cdroms,
            floppy: r.str("floppy"),
            tftp: r.str("tftp"),
            bootp: r.str("bootp"),
            kernel: r.str("kernel"),
            initrd: r.str("initrd"),
            kernel_cmdline: r.str("kernel_params").or_else(|| r.str("kernel_cmdline")),
            display: r.parse("display"),
            vga: r.str("vga"),
            uuid,
            testdev: r.bool("testdev", false),
            disable_hpet: r.bool("disable_hpet", false),
            pci,
            extra_params,
            x11_display: r.str("x11_display"),
            incoming: r.parse("migration_mode"),
            incoming_exec_cmd: r.str("migration_exec_cmd_dst"),
        }
    }
}

impl<'a> NicMode<'a> {
    /// How NIC `nic` of `params` (the VM's object params) reaches the host: `nic_mode` (user,
    /// tap) or, as avocado-vt writes it, `nettype` (user, bridge with `netdst`, default
    /// `virbr0`). The one reading of these keys: the builder and the VM layer both use it.
    ///
    /// # Errors
    ///
    /// [`SpecError::Params`] naming the bad key, its value and `file:line`.
    pub fn of(params: &'a Params, vm: &str, nic: &'a str) -> Result<NicMode<'a>, SpecError> {
        let mut problems = Vec::new();
        let mut r = Reader::new(
            ObjParams::root(params).object(nic),
            "nic",
            nic,
            &mut problems,
        );
        let mode = NicMode::read(&mut r);
        if problems.is_empty() {
            Ok(mode)
        } else {
            Err(SpecError::Params {
                vm: vm.to_string(),
                problems,
            })
        }
    }

    /// Reads the mode keys of the NIC `n` reads, recording problems there.
    pub fn read(n: &mut Reader<'a, '_>) -> NicMode<'a> {
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
                br: n.str("netdst").unwrap_or("virbr0"),
            },
            (None, Some(_)) => {
                n.problem(
                    "nettype",
                    ProblemKind::Invalid {
                        expected: "a network type kvmtest supports (user, bridge)".into(),
                    },
                );
                NicMode::User
            }
        }
    }
}

fn read_nic<'a>(n: &mut Reader<'a, '_>, name: &'a str, index: usize) -> NicView<'a> {
    let mode = NicMode::read(n);
    let extra = |n: &mut Reader<'a, '_>, key: &str| match n.str(key) {
        None => Vec::new(),
        Some(s) => split_opt_list(s).unwrap_or_else(|item| {
            n.problem(
                key,
                ProblemKind::Invalid {
                    expected: format!("QEMU options such as `a=b,c=d` (bad item {item:?})"),
                },
            );
            Vec::new()
        }),
    };
    let nic_extra = extra(n, "nic_extra_params");
    let netdev_extra = extra(n, "netdev_extra_params");
    NicView {
        name,
        index,
        model: n.str("nic_model").unwrap_or("rtl8139"),
        mac: n.parse("nic_mac"),
        mode,
        ifname: n.str("nic_ifname"),
        script: n.str("nic_script"),
        downscript: n.str("nic_downscript"),
        tftp: n.str("tftp"),
        bootfile: n.str("bootp"),
        nic_extra,
        netdev_extra,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::params;

    #[test]
    fn nettype_bridge_is_a_bridged_nic_on_netdst() {
        let p = params(&[("nettype", "bridge"), ("netdst", "br0")]);
        assert_eq!(
            NicMode::of(&p, "vm1", "nic1").ok(),
            Some(NicMode::Bridge { br: "br0" })
        );
        let p = params(&[("nettype", "bridge")]);
        assert_eq!(
            NicMode::of(&p, "vm1", "nic1").ok(),
            Some(NicMode::Bridge { br: "virbr0" })
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

    #[test]
    fn image_raw_device_is_a_boolean_like_every_other() {
        for yes in ["yes", "on", "true"] {
            let p = params(&[("image_name", "/dev/sdb"), ("image_raw_device", yes)]);
            let v = ImageView::of(&p, "vm1", "image1").unwrap_or_else(|e| panic!("{e}"));
            assert!(v.raw_device, "{yes}");
            assert_eq!(v.file_name(), "/dev/sdb");
        }
        let p = params(&[("image_name", "images/disk"), ("image_raw_device", "no")]);
        let v = ImageView::of(&p, "vm1", "image1").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v.file_name(), "images/disk.qcow2");
        let p = params(&[("image_name", "images/disk"), ("image_raw_device", "maybe")]);
        let err = ImageView::of(&p, "vm1", "image1").err();
        assert_eq!(
            err.map(|e| e.problems()[0].key.clone()).as_deref(),
            Some("image_raw_device")
        );
    }
}
