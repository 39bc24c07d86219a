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
use crate::read::{Findings, ObjParams, Reader};
use crate::smp::SmpSpec;

use crate::opts::split_opt_list;
use crate::problem::{ProblemKind, SpecError};
use crate::types::{
    Accel, CdromInterface, DiskInterface, DisplayKind, DriveCache, ErrorAction, ImageFormat,
    MacAddr, MemSize, MonitorKind, PciAssignable, Uuid,
};

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
}

/// One disk image (`images`), unless `boot_drive = no`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSpec {
    /// Object name (`image1`).
    pub name: String,
    /// `image_name`: path without the format extension, relative to the root dir unless
    /// absolute.
    pub image_name: String,
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
    pub serial: Option<String>,
    /// `image_snapshot`.
    pub snapshot: bool,
    /// `image_boot`.
    pub boot: bool,
    /// `image_readonly`.
    pub readonly: bool,
    /// `image_size` (default `10G`): the size `qemu-img create` gives a new image.
    pub size: ImageSize,
    /// Where the image lives: a file (or host block device), or one of avocado-vt's network
    /// and device backends.
    pub backend: ImageBackend,
    /// `image_secret`: the passphrase of a `luks` image (required for one).
    pub secret: Option<String>,
    /// `images_base_dir`: the directory of a relative `image_name` (avocado-vt's); unset: the
    /// run's image directory.
    pub base_dir: Option<String>,
}

/// The storage behind an image, chosen as avocado-vt chooses it (`storage.get_image_filename`):
/// `storage_type = vhost-vdpa` / `vhost-user-blk`, else the first of `enable_curl`,
/// `enable_nbd`, `enable_iscsi` (with `storage_type = iscsi-direct`), `enable_gluster`,
/// `enable_ceph`, `enable_nvme`, `enable_ssh` that is `yes`, else a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageBackend {
    /// A file under the image directory, or `image_raw_device`'s block device.
    File,
    /// `storage_type = vhost-vdpa`.
    VhostVdpa,
    /// `storage_type = vhost-user-blk`.
    VhostUserBlk,
    /// `enable_curl`.
    Curl,
    /// `enable_nbd`.
    Nbd,
    /// `enable_iscsi` with `storage_type = iscsi-direct`.
    IscsiDirect,
    /// `enable_gluster`.
    Gluster,
    /// `enable_ceph`.
    Ceph,
    /// `enable_nvme`.
    Nvme,
    /// `enable_ssh`.
    Ssh,
}

impl ImageBackend {
    /// The key that selected it (`None` for a file).
    pub fn key(self) -> Option<&'static str> {
        Some(match self {
            ImageBackend::File => return None,
            ImageBackend::VhostVdpa | ImageBackend::VhostUserBlk => "storage_type",
            ImageBackend::Curl => "enable_curl",
            ImageBackend::Nbd => "enable_nbd",
            ImageBackend::IscsiDirect => "enable_iscsi",
            ImageBackend::Gluster => "enable_gluster",
            ImageBackend::Ceph => "enable_ceph",
            ImageBackend::Nvme => "enable_nvme",
            ImageBackend::Ssh => "enable_ssh",
        })
    }

    /// The backend's name as QEMU's block layer calls it.
    pub fn as_str(self) -> &'static str {
        match self {
            ImageBackend::File => "file",
            ImageBackend::VhostVdpa => "vhost-vdpa",
            ImageBackend::VhostUserBlk => "vhost-user-blk",
            ImageBackend::Curl => "curl",
            ImageBackend::Nbd => "nbd",
            ImageBackend::IscsiDirect => "iscsi",
            ImageBackend::Gluster => "gluster",
            ImageBackend::Ceph => "rbd",
            ImageBackend::Nvme => "nvme",
            ImageBackend::Ssh => "ssh",
        }
    }

    /// Reads the backend keys of an image.
    fn read(i: &mut Reader<'_, '_>) -> ImageBackend {
        let storage_type = i.str("storage_type");
        match storage_type {
            Some("vhost-vdpa") => return ImageBackend::VhostVdpa,
            Some("vhost-user-blk") => return ImageBackend::VhostUserBlk,
            _ => {}
        }
        // Every flag is read (a bad boolean anywhere is a problem), the first set one wins.
        let flags = [
            (i.bool("enable_curl", false), ImageBackend::Curl),
            (i.bool("enable_nbd", false), ImageBackend::Nbd),
            (
                i.bool("enable_iscsi", false) && storage_type == Some("iscsi-direct"),
                ImageBackend::IscsiDirect,
            ),
            (i.bool("enable_gluster", false), ImageBackend::Gluster),
            (i.bool("enable_ceph", false), ImageBackend::Ceph),
            (i.bool("enable_nvme", false), ImageBackend::Nvme),
            (i.bool("enable_ssh", false), ImageBackend::Ssh),
        ];
        flags
            .into_iter()
            .find(|(on, _)| *on)
            .map_or(ImageBackend::File, |(_, b)| b)
    }
}

/// An image size as `qemu-img` reads it: a number with an optional `k`/`K`, `M`, `G`, `T`,
/// `P`, `E` suffix (`10G`, `512M`, `1.5G`, `65536`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSize(String);

impl ImageSize {
    /// The size as `qemu-img` gets it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ImageSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for ImageSize {
    type Err = crate::types::Expected;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let num = s
            .strip_suffix(['k', 'K', 'M', 'G', 'T', 'P', 'E'])
            .unwrap_or(s);
        let (int, frac) = num.split_once('.').unwrap_or((num, "0"));
        let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        if digits(int) && digits(frac) {
            Ok(ImageSize(s.to_string()))
        } else {
            Err(crate::types::Expected(
                "an image size such as 10G, 512M or 1.5G".into(),
            ))
        }
    }
}

impl ImageSpec {
    /// Image `image` of VM `vm` of a variant's `params` (the VM's and the image's object views
    /// taken here), every bad key reported at once. The one reading of the image keys: the
    /// builder, the VM layer (`qemu-img`) and the runner (image placement) all use it.
    ///
    /// # Errors
    ///
    /// [`SpecError::Params`] listing every problem (`vm` names the VM in the message).
    pub fn of(params: &Params, vm: &str, image: &str) -> Result<ImageSpec, SpecError> {
        let mut found = Findings::new();
        let obj = ObjParams::root(params).object(vm).object(image);
        let mut r = Reader::new(obj, "image", image, &mut found);
        let spec = ImageSpec::read(&mut r, image);
        crate::problem::into_result(spec, vm, found.problems)
    }

    /// Reads the image keys through `i` (the image's reader).
    pub fn read(i: &mut Reader<'_, '_>, name: &str) -> ImageSpec {
        ImageSpec {
            name: name.to_string(),
            image_name: i.require("image_name").unwrap_or("").to_string(),
            format: i.parse("image_format").unwrap_or(ImageFormat::Qcow2),
            raw_device: i.bool("image_raw_device", false),
            interface: i.parse("drive_format"),
            index: i.num("drive_index", "a drive index"),
            cache: i.parse("drive_cache"),
            werror: i.parse("drive_werror"),
            rerror: i.parse("drive_rerror"),
            serial: i.string("drive_serial"),
            snapshot: i.bool("image_snapshot", false),
            boot: i.bool("image_boot", false),
            readonly: i.bool("image_readonly", false),
            size: i
                .parse("image_size")
                .unwrap_or_else(|| ImageSize("10G".into())),
            backend: ImageBackend::read(i),
            secret: match i.parse::<ImageFormat>("image_format") {
                Some(ImageFormat::Luks) => i.require("image_secret").map(str::to_string),
                _ => i.string("image_secret"),
            },
            base_dir: i.string("images_base_dir"),
        }
    }

    /// The file as the cfg names it: `image_name.format`, or `image_name` for a raw device; a
    /// relative one under `images_base_dir` when that is set (still relative to the run's image
    /// directory if the base is).
    pub fn file_name(&self) -> String {
        if self.raw_device {
            return self.image_name.to_string();
        }
        let file = format!("{}.{}", self.image_name, self.format);
        match self.base_dir.as_deref() {
            Some(base) if !file.starts_with('/') => {
                format!("{}/{file}", base.trim_end_matches('/'))
            }
            _ => file,
        }
    }
}

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
    /// `nic_mode` (user, tap) or `nettype` (user, bridge).
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
    /// `vm_accelerator`.
    pub accel: Option<Accel>,
    /// The CPU: `cpu_model` (else `default_cpu_model`) and its flags.
    pub cpu: Option<CpuSpec>,
    /// `nodefaults`.
    pub nodefaults: bool,
    /// `mem` (MiB, after `vm_mem_limit`).
    pub mem: Option<MemSize>,
    /// The rest of the memory family: machine backend, `mem_devs`, NUMA ([`MemorySpec`]).
    pub memory: MemorySpec,
    /// `smp` and `vcpu_*` ([`SmpSpec`]; `None` when no such key is set).
    pub smp: Option<SmpSpec>,
    /// `monitors`.
    pub monitors: Vec<MonitorSpec>,
    /// `serials` (one console named `serial0` when the key is absent, as the seed always had
    /// one).
    pub serials: Vec<String>,
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
        let monitors = r
            .objects("monitors")
            .into_iter()
            .map(|name| {
                let mut m = r.child("monitor", name);
                MonitorSpec {
                    name: name.to_string(),
                    kind: m.parse("monitor_type").unwrap_or(MonitorKind::Human),
                }
            })
            .collect();
        let serials = match r.obj.get("serials") {
            Some(_) => r.objects("serials"),
            None => vec!["serial0"],
        }
        .into_iter()
        .map(str::to_string)
        .collect();
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
            nics.push(read_nic(&mut n, name, index));
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
        let mut spec = VmSpec {
            name: vm.to_string(),
            qemu_binary: r.string("qemu_binary").unwrap_or_else(|| "qemu".into()),
            machine_type: r.string("machine_type"),
            accel: r.parse("vm_accelerator"),
            cpu: read_cpu(&mut r),
            nodefaults: r.bool("nodefaults", false),
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
            display: r.parse("display"),
            vga: r.string("vga"),
            uuid,
            testdev: r.bool("testdev", false),
            disable_hpet: r.bool("disable_hpet", false),
            pci,
            extra_params,
            x11_display: r.string("x11_display"),
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
    let flags = match r.str("cpu_model_flags") {
        None => Vec::new(),
        Some(s) => split_opt_list(s).unwrap_or_else(|item| {
            r.problem(
                "cpu_model_flags",
                ProblemKind::Invalid {
                    expected: format!("CPU flags such as `+vmx,-svm,x=y` (bad item {item:?})"),
                },
            );
            Vec::new()
        }),
    };
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
            (None, Some(t @ ("macvtap" | "network" | "vdpa" | "user:passt" | "passt"))) => {
                // avocado-vt's other network types: named as what is missing, not as a typo.
                let how = match t {
                    "macvtap" => "a macvtap device on `netdst`, opened by its tap fd",
                    "network" => "a libvirt network named by `netdst`",
                    "vdpa" => "a host vhost-vdpa device",
                    _ => "a passt process serving the NIC",
                };
                n.problem(
                    "nettype",
                    ProblemKind::Unsupported {
                        reason: format!("kvmtest does not set up {how} yet"),
                    },
                );
                NicMode::User
            }
            (None, Some(_)) => {
                n.problem(
                    "nettype",
                    ProblemKind::Invalid {
                        expected: "a network type (user, bridge; macvtap, network, vdpa and \
                                   passt are avocado-vt's, not built yet)"
                            .into(),
                    },
                );
                NicMode::User
            }
        }
    }
}

fn read_nic(n: &mut Reader<'_, '_>, name: &str, index: usize) -> NicSpec {
    let mode = NicMode::read(n);
    let extra = |n: &mut Reader<'_, '_>, key: &str| match n.str(key) {
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::params;

    #[test]
    fn avocado_network_types_kvmtest_lacks_say_what_is_missing() {
        for (t, what) in [
            ("macvtap", "macvtap device"),
            ("network", "libvirt network"),
            ("vdpa", "vhost-vdpa"),
            ("user:passt", "passt"),
        ] {
            let err = NicMode::of(&params(&[("nettype", t)]), "vm1", "nic1")
                .err()
                .unwrap_or_else(|| panic!("{t} accepted"));
            let p = &err.problems()[0];
            assert!(
                matches!(&p.kind, ProblemKind::Unsupported { reason } if reason.contains(what)),
                "{t}: {err}"
            );
        }
        let err = NicMode::of(&params(&[("nettype", "brigde")]), "vm1", "nic1")
            .err()
            .unwrap_or_else(|| panic!("a typo accepted"));
        assert!(
            matches!(err.problems()[0].kind, ProblemKind::Invalid { .. }),
            "{err}"
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
