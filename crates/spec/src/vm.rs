//! [`VmSpec`]: a VM's hardware, read once from a variant's [`Params`] into owned, typed values.
//!
//! One fallible constructor ([`VmSpec::new`]) reports every bad key of every object at once.
//! The spec owns its values (it outlives the params: `vm` keeps it for the VM's life) and the
//! `file:line` of each ([`VmSpec::origins`]), so a later layer that cannot honour a value still
//! names the cfg line. Defaults follow the seed framework where it had one (NIC model `rtl8139`,
//! `nic_mode` `user`, image format `qcow2`); where a missing key made it produce a broken
//! command line (no `image_name`), the spec reports the key as missing instead.
//!
//! Run-specific choices (MACs not given, tap names, a random UUID's value, ports, the run
//! directory, whether the VM waits for an incoming migration) are not here: the `vm` crate
//! decides them in a `qemu_cmd::RunPlan`.

use params::Params;

use crate::memory::MemorySpec;
use crate::origins::Origins;
use crate::platform::PlatformSpec;
use crate::read::{Findings, ObjParams, Reader};
use crate::smp::SmpSpec;

use crate::problem::{ProblemKind, SpecError};
use crate::types::{Accel, CdromInterface, DisplayKind, MemSize, MonitorKind, PciAssignable, Uuid};

/// `uuid`: fixed, or chosen per run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UuidSpec {
    /// `uuid = random`: the run plan supplies one.
    Random,
    /// A fixed UUID.
    Fixed(Uuid),
}

/// Parsed `key=value` pairs for `*_extra_params` keys (re-escaped when emitted).
pub type ExtraOpts = Vec<(String, Option<String>)>;

pub use crate::nic::{Ipv4Subnet, NicMode, NicSpec, PasstSpec, PortForward};

pub use crate::image::{ImageBackend, ImageSize, ImageSpec};

/// One CD-ROM (`cdroms`) with an ISO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CdromSpec {
    /// Object name.
    pub name: String,
    /// `cdrom`: the ISO, relative to the root dir unless absolute.
    pub iso: String,
    /// `drive_index`.
    pub index: Option<u32>,
    /// `cd_format` (default ide).
    pub interface: CdromInterface,
    /// `md5sum_1m`, `md5sum` or `sha1sum`: what the ISO must hash to (checked before start).
    pub checksum: Option<IsoChecksum>,
}

/// A hash algorithm for an ISO check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumAlgo {
    /// MD5 of the first MiB (`md5sum_1m`).
    Md5FirstMiB,
    /// MD5 of the whole file (`md5sum`).
    Md5,
    /// SHA-1 of the whole file (`sha1sum`).
    Sha1,
}

impl ChecksumAlgo {
    /// Length of the digest in hex digits.
    pub fn hex_len(self) -> usize {
        match self {
            ChecksumAlgo::Md5FirstMiB | ChecksumAlgo::Md5 => 32,
            ChecksumAlgo::Sha1 => 40,
        }
    }

    /// The key that names it.
    pub fn key(self) -> &'static str {
        match self {
            ChecksumAlgo::Md5FirstMiB => "md5sum_1m",
            ChecksumAlgo::Md5 => "md5sum",
            ChecksumAlgo::Sha1 => "sha1sum",
        }
    }
}

/// What an ISO must hash to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsoChecksum {
    /// The algorithm (and how much of the file).
    pub algo: ChecksumAlgo,
    /// The expected digest, lower-case hex.
    pub expected: String,
}

/// One monitor (`monitors`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorSpec {
    /// Object name.
    pub name: String,
    /// `monitor_type` (default human).
    pub kind: MonitorKind,
}

/// One port redirection (`redirs`) for user networking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirSpec {
    /// Object name.
    pub name: String,
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

/// The CPU, as avocado-vt reads it: `cpu_model` is a comma-separated list of candidates (the
/// first one the QEMU knows is used), `default_cpu_model` stands in when it is unset, and
/// `cpu_model_flags`, `cpu_model_vendor` and `cpu_family` are appended to `-cpu`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuSpec {
    /// The candidate models, in order.
    pub models: Vec<String>,
    /// The key they came from (`cpu_model` or `default_cpu_model`), for problems.
    pub key: &'static str,
    /// `cpu_model_vendor`: `vendor=…`.
    pub vendor: Option<String>,
    /// `cpu_model_flags`: `+flag`, `-flag`, `flag=value` items (a leading comma is allowed).
    pub flags: ExtraOpts,
    /// `cpu_family`: `family=…`.
    pub family: Option<String>,
}

/// Everything the builder needs about one VM, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmSpec {
    /// The VM's name (`vms` entry), also `-name`.
    pub name: String,
    /// `qemu_binary` (default `qemu`), relative to the root dir unless absolute.
    pub qemu_binary: String,
    /// `machine_type`.
    pub machine_type: Option<String>,
    /// `machine_type_extra_params`: items added to `-machine` (`gic-version=host,hpet=off`).
    pub machine_extra: ExtraOpts,
    /// `vm_accelerator`.
    pub accel: Option<Accel>,
    /// The CPU: `cpu_model` (else `default_cpu_model`) and its flags.
    pub cpu: Option<CpuSpec>,
    /// `mem` (MiB, after `vm_mem_limit`).
    pub mem: Option<MemSize>,
    /// The rest of the memory family: machine backend, `mem_devs`, NUMA ([`MemorySpec`]).
    pub memory: MemorySpec,
    /// `smp` and `vcpu_*` ([`SmpSpec`]; `None` when no such key is set).
    pub smp: Option<SmpSpec>,
    /// `monitors`.
    pub monitors: Vec<MonitorSpec>,
    /// `serials` (one console named `serial0` when the key is absent, as the seed always had
    /// one); the first on a unix socket is the console ([`crate::serial::console`]).
    pub serials: Vec<crate::serial::SerialSpec>,
    /// `images`, without those with `boot_drive = no`.
    pub images: Vec<ImageSpec>,
    /// `scsi_hba` (default virtio-scsi-pci), for SCSI disks and CD-ROMs.
    pub scsi_hba: String,
    /// `nics`.
    pub nics: Vec<NicSpec>,
    /// `redirs`.
    pub redirs: Vec<RedirSpec>,
    /// `cdroms` with an ISO (or the VM-level `cdrom` of old configs).
    pub cdroms: Vec<CdromSpec>,
    /// `floppy`.
    pub floppy: Option<String>,
    /// `tftp` (VM level, for `-tftp` on binaries without `tftp=`).
    pub tftp: Option<String>,
    /// `bootp` (VM level, for `-bootp`).
    pub bootp: Option<String>,
    /// `kernel`.
    pub kernel: Option<String>,
    /// `initrd`.
    pub initrd: Option<String>,
    /// `kernel_params`, or the seed's `kernel_cmdline`.
    pub kernel_cmdline: Option<String>,
    /// `display`.
    pub display: Option<DisplayKind>,
    /// `vga`.
    pub vga: Option<String>,
    /// `display = spice`: the `spice_*` keys ([`crate::spice::SpiceSpec`]).
    pub spice: Option<crate::spice::SpiceSpec>,
    /// The extra QXL adapters of `vga = qxl` (`qxl_dev_nr`, `qxl_base_addr`).
    pub qxl: crate::spice::QxlSpec,
    /// The PCI topology keys (extra root ports) and the display adapter's spelling.
    pub pci_topology: crate::pci::PciSpec,
    /// `usbs` and `usb_devices`.
    pub usb: crate::usb::UsbSpec,
    /// Virtio RNGs, balloons, the 9p export, OVMF, iothreads.
    pub devices: crate::devices::DevicesSpec,
    /// Guest IOMMUs (`intel_iommu`, `virtio_iommu`) and the `virtio_dev_*` properties.
    pub iommu: crate::iommu::IommuSpec,
    /// Input devices, sound cards, vsocks, the smartcard reader, option ROMs.
    pub peripherals: crate::peripherals::PeripheralsSpec,
    /// The KVM switches, `-bios`, `-compat`, `-runas`, the VNC password and options.
    pub launch: crate::launch::LaunchSpec,
    /// `tpms`.
    pub tpms: Vec<crate::tpm::TpmSpec>,
    /// `filesystems` (virtio-fs exports).
    pub filesystems: Vec<crate::filesystem::FsSpec>,
    /// `vm_hostdevs`.
    pub hostdevs: Vec<crate::hostdev::HostdevSpec>,
    /// `pci_controllers` and the PCI buses objects asked for (`*_pci_bus`, `pci_bus`).
    pub pci_buses: crate::pcic::PciBusesSpec,
    /// `throttle_groups` and the disks they throttle.
    pub throttle: crate::throttle::ThrottleSpec,
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
    pub x11_display: Option<String>,
    /// avocado-vt's global options and platform devices (`-S`, `-nodefaults`, `-rtc`, `-boot`,
    /// pvpanic, the SeaBIOS log, the watchdog…).
    pub platform: PlatformSpec,
    /// Where each value read came from.
    pub origins: Origins,
}

impl VmSpec {
    /// The spec of VM `vm` in `params` (`object_params(vm)`), every bad key reported at once.
    ///
    /// # Errors
    ///
    /// [`SpecError::Params`] listing every problem.
    pub fn new(params: &Params, vm: &str) -> Result<VmSpec, SpecError> {
        VmSpec::from_obj(ObjParams::root(params).object(vm), vm)
    }

    /// Like [`VmSpec::new`], from the VM's object params (already `object(vm)`; the zero-copy
    /// path of the command-line matrix).
    ///
    /// # Errors
    ///
    /// [`SpecError::Params`] listing every problem.
    pub fn from_obj(obj: ObjParams<'_>, vm: &str) -> Result<VmSpec, SpecError> {
        let mut found = Findings::new();
        let spec = VmSpec::read(obj, vm, &mut found);
        crate::problem::into_result(spec, vm, found.problems)
    }

    /// Reads the spec, appending problems to `found` and using defaults for bad keys; the
    /// origins read are moved into the spec.
    pub fn read(obj: ObjParams<'_>, vm: &str, found: &mut Findings) -> Self {
        let mut r = Reader::new(obj, "vm", vm, found);
        let smp = SmpSpec::read(&mut r);
        let (mem, memory) = MemorySpec::read(&mut r);
        let mut monitor_names = r.objects("monitors");
        // avocado-vt's second QMP monitor (its screendump and register threads' own).
        if let Some(c) = r.str("catch_monitor") {
            if c.split_whitespace().count() != 1 {
                let expected = "a monitor name (one word)".into();
                r.problem("catch_monitor", ProblemKind::Invalid { expected });
            } else if !monitor_names.contains(&c) {
                monitor_names.push(c);
            }
        }
        let monitors = monitor_names
            .into_iter()
            .map(|name| {
                let mut m = r.child("monitor", name);
                match m.str("chardev_backend") {
                    None | Some("unix_socket") => {}
                    Some(_) => m.problem(
                        "chardev_backend",
                        ProblemKind::Unsupported {
                            reason: "kvmtest serves monitors on unix sockets in the run dir \
                                     (unix_socket) only"
                                .into(),
                        },
                    ),
                }
                MonitorSpec {
                    name: name.to_string(),
                    kind: m.parse("monitor_type").unwrap_or(MonitorKind::Human),
                }
            })
            .collect();
        let serials = crate::serial::read_serials(&mut r);
        read_unbuilt(&mut r);
        let has_images = !r.obj.objects("images").is_empty();
        let mut images = Vec::new();
        for name in r.objects("images") {
            let mut i = r.child("image", name);
            if !i.bool("boot_drive", true) {
                continue;
            }
            images.push(ImageSpec::read(&mut i, name));
        }
        let mut nics = Vec::new();
        for (index, name) in r.objects("nics").into_iter().enumerate() {
            let mut n = r.child("nic", name);
            nics.push(crate::nic::read_nic(&mut n, name, index));
        }
        let mut redirs = Vec::new();
        for name in r.objects("redirs") {
            let mut d = r.child("redir", name);
            if let Some(guest_port) = d.num::<u16>("guest_port", "a TCP port") {
                redirs.push(RedirSpec {
                    name: name.to_string(),
                    guest_port,
                });
            } else if d.obj.get("guest_port").is_none() {
                d.problem("guest_port", ProblemKind::Missing);
            }
        }
        let mut cdrom_names = r.objects("cdroms");
        if r.obj.get("cdroms").is_none() && r.str("cdrom").is_some() {
            cdrom_names.push("cdrom");
        }
        let mut cdroms = Vec::new();
        for name in cdrom_names {
            let mut c = r.child("cdrom", name);
            let index = c.num("drive_index", "a drive index");
            let interface = c.parse("cd_format").unwrap_or(CdromInterface::Ide);
            let checksum = read_checksum(&mut c);
            if let Some(iso) = c.string("cdrom") {
                cdroms.push(CdromSpec {
                    name: name.to_string(),
                    iso,
                    index,
                    interface,
                    checksum,
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
        let display: Option<DisplayKind> = r.parse("display");
        let vga = r.string("vga");
        let spice =
            (display == Some(DisplayKind::Spice)).then(|| crate::spice::SpiceSpec::read(&mut r));
        let qxl = crate::spice::QxlSpec::read(&mut r, vga.as_deref());
        let mut spec = VmSpec {
            name: vm.to_string(),
            qemu_binary: r.string("qemu_binary").unwrap_or_else(|| "qemu".into()),
            machine_type: r.string("machine_type"),
            machine_extra: r.opt_list("machine_type_extra_params", "a=b,c"),
            accel: r.parse("vm_accelerator"),
            cpu: read_cpu(&mut r),
            mem,
            memory,
            smp,
            monitors,
            serials,
            images,
            scsi_hba: r
                .string("scsi_hba")
                .unwrap_or_else(|| "virtio-scsi-pci".into()),
            nics,
            redirs,
            cdroms,
            floppy: r.string("floppy"),
            tftp: r.string("tftp"),
            bootp: r.string("bootp"),
            kernel: r.string("kernel"),
            initrd: r.string("initrd"),
            kernel_cmdline: r
                .string("kernel_params")
                .or_else(|| r.string("kernel_cmdline")),
            display,
            vga,
            spice,
            qxl,
            pci_topology: crate::pci::PciSpec::read(&mut r),
            usb: crate::usb::UsbSpec::read(&mut r),
            devices: crate::devices::DevicesSpec::read(&mut r, has_images),
            iommu: crate::iommu::IommuSpec::read(&mut r),
            peripherals: crate::peripherals::PeripheralsSpec::read(&mut r),
            launch: crate::launch::LaunchSpec::read(&mut r),
            tpms: crate::tpm::read_tpms(&mut r),
            filesystems: crate::filesystem::read_filesystems(&mut r),
            hostdevs: crate::hostdev::read_hostdevs(&mut r),
            pci_buses: crate::pcic::PciBusesSpec::read(&mut r),
            throttle: crate::throttle::ThrottleSpec::read(&mut r),
            uuid,
            testdev: r.bool("testdev", false),
            disable_hpet: r.bool("disable_hpet", false),
            pci,
            extra_params,
            x11_display: r.string("x11_display"),
            platform: PlatformSpec::read(&mut r),
            origins: Origins::default(),
        };
        spec.origins = std::mem::take(&mut found.origins);
        spec
    }

    /// Where `key` of this VM (`kind` `vm`) or of one of its objects (`image`, `nic`…, named
    /// `name`) was set.
    pub fn origin(&self, kind: &str, name: &str, key: &str) -> Option<&params::Origin> {
        self.origins
            .get(kind, name, key)
            .and_then(|o| o.origin.as_ref())
    }
}

/// `cpu_model` (else `default_cpu_model`) and the keys that extend it; `None` when neither
/// model key is set (QEMU's default CPU; the other keys then have nothing to extend).
fn read_cpu(r: &mut Reader<'_, '_>) -> Option<CpuSpec> {
    let (key, list) = match r.str("cpu_model") {
        Some(v) => ("cpu_model", v),
        None => ("default_cpu_model", r.str("default_cpu_model")?),
    };
    let models: Vec<String> = list
        .split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(str::to_string)
        .collect();
    if models.is_empty() {
        r.problem(
            key,
            ProblemKind::Invalid {
                expected: "CPU model names, comma-separated".into(),
            },
        );
        return None;
    }
    let flags = r.opt_list("cpu_model_flags", "+vmx,-svm,x=y");
    Some(CpuSpec {
        models,
        key,
        vendor: r.string("cpu_model_vendor"),
        flags,
        family: r.string("cpu_family"),
    })
}

/// `md5sum_1m`, `md5sum` or `sha1sum` of a CD-ROM (the first one set, in that order).
fn read_checksum(c: &mut Reader<'_, '_>) -> Option<IsoChecksum> {
    for (key, algo) in [
        ("md5sum_1m", ChecksumAlgo::Md5FirstMiB),
        ("md5sum", ChecksumAlgo::Md5),
        ("sha1sum", ChecksumAlgo::Sha1),
    ] {
        let Some(v) = c.str(key) else { continue };
        let hex = v.trim();
        if hex.len() == algo.hex_len() && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Some(IsoChecksum {
                algo,
                expected: hex.to_ascii_lowercase(),
            });
        }
        c.problem(
            key,
            ProblemKind::Invalid {
                expected: format!("{} hexadecimal digits", algo.hex_len()),
            },
        );
        return None;
    }
    None
}

/// avocado-vt keys whose feature kvmtest does not build: read so that a value asking for it is
/// a problem naming the key (never silently ignored), and the default passes.
fn read_unbuilt(r: &mut Reader<'_, '_>) {
    if r.bool("strict_mode", false) {
        r.problem(
            "strict_mode",
            ProblemKind::Unsupported {
                reason: "avocado-vt's strict device defaults are not built by kvmtest".into(),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::params;

    #[test]
    fn image_raw_device_is_a_boolean_like_every_other() {
        for yes in ["yes", "on", "true"] {
            let p = params(&[("image_name", "/dev/sdb"), ("image_raw_device", yes)]);
            let v = ImageSpec::of(&p, "vm1", "image1").unwrap_or_else(|e| panic!("{e}"));
            assert!(v.raw_device, "{yes}");
            assert_eq!(v.file_name(), "/dev/sdb");
        }
        let p = params(&[("image_name", "images/disk"), ("image_raw_device", "no")]);
        let v = ImageSpec::of(&p, "vm1", "image1").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v.file_name(), "images/disk.qcow2");
        let p = params(&[("image_name", "images/disk"), ("image_raw_device", "maybe")]);
        let err = ImageSpec::of(&p, "vm1", "image1").err();
        assert_eq!(
            err.map(|e| e.problems()[0].key.clone()).as_deref(),
            Some("image_raw_device")
        );
    }

    #[test]
    fn every_value_read_keeps_its_cfg_line() {
        let mut parser = params::Parser::new(params::ParserOptions::default());
        parser
            .parse_str(
                "vms = vm1\nmem = 512\nimages = image1\nimage_name = disk\n\
                 drive_format_image1 = virtio\nnics = nic1\nnic_model = e1000\n",
            )
            .unwrap_or_else(|e| panic!("{e}"));
        let variants = parser.finish().collect().unwrap_or_else(|e| panic!("{e}"));
        let p = &variants[0].params;
        let spec = VmSpec::new(p, "vm1").unwrap_or_else(|e| panic!("{e}"));
        let line = |kind, name, key| spec.origin(kind, name, key).map(|o| o.line);
        assert_eq!(line("vm", "vm1", "mem"), Some(2));
        assert_eq!(line("image", "image1", "image_name"), Some(4));
        assert_eq!(line("image", "image1", "drive_format"), Some(5));
        assert_eq!(line("nic", "nic1", "nic_model"), Some(7));
        assert_eq!(line("vm", "vm1", "cpu_model"), None, "unset: no origin");
    }

    #[test]
    fn cpu_models_are_candidates_and_flags_extend_them() {
        let spec = |pairs: &[(&str, &str)]| {
            VmSpec::new(&params(pairs), "vm1").unwrap_or_else(|e| panic!("{e}"))
        };
        assert_eq!(spec(&[]).cpu, None);
        let cpu = spec(&[
            ("cpu_model", "Icelake-Server, Cascadelake-Server"),
            ("cpu_model_flags", ",+kvm_pv_unhalt,hv_relaxed,-vmx"),
            ("cpu_model_vendor", "GenuineIntel"),
            ("default_cpu_model", "qemu64"),
        ])
        .cpu
        .unwrap_or_else(|| panic!("no cpu"));
        assert_eq!(cpu.models, ["Icelake-Server", "Cascadelake-Server"]);
        assert_eq!(cpu.key, "cpu_model");
        assert_eq!(cpu.flags.len(), 3);
        assert_eq!(cpu.vendor.as_deref(), Some("GenuineIntel"));
        let cpu = spec(&[("default_cpu_model", "qemu64")]).cpu;
        assert_eq!(
            cpu.map(|c| (c.models, c.key)),
            Some((vec!["qemu64".into()], "default_cpu_model"))
        );
    }

    #[test]
    fn iso_checksums_are_checked_for_shape() {
        let md5 = "0123456789abcdef0123456789ABCDEF";
        let p = params(&[
            ("cdroms", "cd1"),
            ("cdrom_cd1", "a.iso"),
            ("md5sum_1m", md5),
        ]);
        let spec = VmSpec::new(&p, "vm1").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            spec.cdroms[0].checksum,
            Some(IsoChecksum {
                algo: ChecksumAlgo::Md5FirstMiB,
                expected: md5.to_ascii_lowercase(),
            })
        );
        let p = params(&[("cdroms", "cd1"), ("cdrom_cd1", "a.iso"), ("sha1sum", md5)]);
        let err = VmSpec::new(&p, "vm1").err();
        assert_eq!(
            err.map(|e| e.problems()[0].key.clone()).as_deref(),
            Some("sha1sum"),
            "an MD5-long digest is not a SHA-1"
        );
    }
}
