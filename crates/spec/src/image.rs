//! [`ImageSpec`]: one disk image and how it is attached, read as avocado-vt reads an image's
//! params (`images_define_by_params`): the file and its format, the storage backend, the
//! interface (`drive_format`) and its place on that bus, the block-layer options (cache, aio,
//! discard, read-only) and the device's own (serial, boot order, block sizes, extra options).

use params::Params;

use crate::keys::KeyDoc;
use crate::problem::{ProblemKind, SpecError};
use crate::read::{Findings, ObjParams, Reader};
pub use crate::storage::ImageBackend;
use crate::storage::ImageFile;
use crate::types::{DiskInterface, DriveCache, ErrorAction, ImageFormat};
use crate::vm::ExtraOpts;

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
    /// How the disk is attached beyond its interface: avocado-vt's device and block-layer keys.
    pub attach: DiskAttach,
    /// The image before this one in `image_chain`: its backing image (an object name).
    pub chain_base: Option<String>,
    /// Whether `image_size` was given (an overlay without one takes its backing image's size).
    pub size_set: bool,
}

/// Keys of a disk (objects of `images`).
pub const IMAGE_KEYS: &[KeyDoc] = &[
    KeyDoc::required(
        "image_name",
        "the image file without its format suffix (relative: under the image directory)",
    ),
    KeyDoc::with_default("image_format", "qcow2", "qcow2, raw, …: the file's format"),
    KeyDoc::with_default(
        "image_raw_device",
        "no",
        "`image_name` is a block device, used as it is (no format suffix)",
    ),
    KeyDoc::with_default("image_size", "10G", "the size `qemu-img create` gives it"),
    KeyDoc::optional(
        "drive_format",
        "the disk's bus or model: ide, ahci, virtio (virtio-blk-pci), scsi-hd, scsi-block, \
         scsi-generic (behind `scsi_hba`), scsi (avocado-vt's deprecated form: scsi-hd), usb1, \
         usb2, usb3 (usb-storage on a UHCI, EHCI, XHCI bus), nvme, sd, floppy (unset: ide)",
    ),
    KeyDoc::optional(
        "drive_index",
        "its index on the bus (unset: the first free IDE/AHCI unit; elsewhere QEMU's choice)",
    ),
    KeyDoc::optional(
        "drive_cache",
        "none, writeback, writethrough, directsync or unsafe (unset: QEMU's default)",
    ),
    KeyDoc::optional(
        "drive_werror",
        "what a write error does: ignore, stop, report, enospc (unset: QEMU's default)",
    ),
    KeyDoc::optional(
        "drive_rerror",
        "what a read error does: ignore, stop, report, enospc (unset: QEMU's default; \
         dropped where `-drive` has no `rerror`)",
    ),
    KeyDoc::optional("drive_serial", "the disk's serial number"),
    KeyDoc::with_default("image_snapshot", "no", "writes go to a temporary overlay"),
    KeyDoc::with_default("image_boot", "no", "the firmware boots from this disk"),
    KeyDoc::with_default("image_readonly", "no", "the guest cannot write the disk"),
    KeyDoc::optional(
        "image_chain",
        "avocado-vt's backing chain (`base sn1`): an image's backing file is the image before it \
         in the chain, so `qemu-img create` makes it an overlay (`-b BASE -F FORMAT`)",
    ),
    KeyDoc::optional(
        "images_base_dir",
        "the directory of a relative `image_name` (avocado-vt's; unset: the run's image directory)",
    ),
    KeyDoc::optional(
        "image_secret",
        "the passphrase of a luks image (required for one; passed as a QEMU secret object)",
    ),
    KeyDoc::optional(
        "storage_type",
        "avocado-vt's storage kind: vhost-vdpa (`image_name` is the vdpa device's \
         /dev/vhost-vdpa-N), vhost-user-blk (`image_name` is the server's socket), iscsi-direct \
         (with enable_iscsi: QEMU's own iSCSI initiator), glusterfs-direct (with enable_gluster: \
         gluster_peers, gluster_debug, gluster_logfile apply); others: a file",
    ),
    KeyDoc::with_default(
        "enable_curl",
        "no",
        "the image is read over http(s)/ftp(s) (curl_*; its server set up by the user)",
    ),
    KeyDoc::optional(
        "curl_protocol",
        "with enable_curl (required): http, https, ftp or ftps",
    ),
    KeyDoc::optional(
        "curl_server",
        "with enable_curl (required): the server (`host[:port]`)",
    ),
    KeyDoc::optional(
        "curl_path",
        "with enable_curl (required): the image's path on the server",
    ),
    KeyDoc::optional("curl_username", "with enable_curl: the user name"),
    KeyDoc::optional(
        "curl_password",
        "with enable_curl: the password (a secret object `IMAGE_access`; in the URL with -drive)",
    ),
    KeyDoc::optional(
        "curl_sslverify",
        "with enable_curl: `sslverify=` (on, off; https, ftps)",
    ),
    KeyDoc::optional(
        "curl_readahead",
        "with enable_curl: `readahead=`, a multiple of 512 with an optional k, M, G, T suffix",
    ),
    KeyDoc::optional("curl_timeout", "with enable_curl: `timeout=` in seconds"),
    KeyDoc::optional(
        "curl_cookie_secret",
        "with enable_curl: cookie data (a secret object `IMAGE_cookie_secret`; http, https)",
    ),
    KeyDoc::with_default(
        "enable_nbd",
        "no",
        "the image is an NBD export (nbd_*; its server set up by the user)",
    ),
    KeyDoc::optional(
        "nbd_server",
        "with enable_nbd: the server's host (this or nbd_unix_socket is required)",
    ),
    KeyDoc::optional(
        "nbd_port",
        "with enable_nbd and nbd_server: its port (unset: 10809)",
    ),
    KeyDoc::optional(
        "nbd_unix_socket",
        "with enable_nbd: the server's unix socket",
    ),
    KeyDoc::optional("nbd_export_name", "with enable_nbd: the export"),
    KeyDoc::optional(
        "nbd_reconnect_delay",
        "with enable_nbd: `reconnect-delay=` in seconds",
    ),
    KeyDoc::optional(
        "nbd_client_tls_creds",
        "with enable_nbd and nbd_server: the client's x509 credentials directory \
         (`-object tls-creds-x509,id=IMAGE_access`)",
    ),
    KeyDoc::with_default(
        "enable_iscsi",
        "no",
        "with storage_type = iscsi-direct: the image is an iSCSI LUN QEMU logs in to (portal_ip, \
         target, lun…; the target set up by the user)",
    ),
    KeyDoc::optional(
        "portal_ip",
        "with iscsi-direct (required): the portal (`host[:port]`)",
    ),
    KeyDoc::optional("target", "with iscsi-direct (required): the target's IQN"),
    KeyDoc::with_default("lun", "0", "with iscsi-direct: the LUN"),
    KeyDoc::optional("chap_user", "with iscsi-direct: the CHAP user"),
    KeyDoc::optional(
        "chap_passwd",
        "with iscsi-direct: the CHAP password (a secret object `IMAGE_access`; in the URL with \
         -drive)",
    ),
    KeyDoc::optional(
        "initiator",
        "with iscsi-direct: `initiator-name=`, the initiator's IQN",
    ),
    KeyDoc::with_default(
        "enable_gluster",
        "no",
        "the image is on a GlusterFS volume (gluster_*; the volume set up by the user)",
    ),
    KeyDoc::optional(
        "gluster_server",
        "with enable_gluster: the server (this or gluster_unix_socket is required)",
    ),
    KeyDoc::optional(
        "gluster_port",
        "with enable_gluster: its port (unset: 0, gluster's own)",
    ),
    KeyDoc::optional(
        "gluster_transport",
        "with enable_gluster: tcp (default), rdma or unix",
    ),
    KeyDoc::optional(
        "gluster_unix_socket",
        "with enable_gluster: the server's unix socket",
    ),
    KeyDoc::optional(
        "gluster_volume_name",
        "with enable_gluster (required): the volume",
    ),
    KeyDoc::optional(
        "gluster_peers",
        "with glusterfs-direct: more servers, a JSON list of `{\"host\", \"type\", \"port\"}` \
         or `{\"path\"}` objects (`server.1.*`…)",
    ),
    KeyDoc::optional(
        "gluster_debug",
        "with glusterfs-direct: `debug=`, libgfapi's log level",
    ),
    KeyDoc::optional(
        "gluster_logfile",
        "with glusterfs-direct: `logfile=`, libgfapi's log file",
    ),
    KeyDoc::with_default(
        "enable_ceph",
        "no",
        "the image is a Ceph RBD image (rbd_*, ceph_*; the cluster set up by the user)",
    ),
    KeyDoc::optional("rbd_pool_name", "with enable_ceph (required): the pool"),
    KeyDoc::optional("rbd_namespace_name", "with enable_ceph: the namespace"),
    KeyDoc::optional(
        "ceph_conf",
        "with enable_ceph: the Ceph configuration file (`conf=`)",
    ),
    KeyDoc::optional(
        "ceph_monitor",
        "with enable_ceph: the monitor, `host[:port]` (`server.0.*`; `mon_host=` with -drive)",
    ),
    KeyDoc::optional(
        "ceph_key",
        "with enable_ceph: the client key, base64 (a secret object `IMAGE_access`)",
    ),
    KeyDoc::with_default(
        "enable_nvme",
        "no",
        "the image is a namespace of a host NVMe controller bound to vfio-pci (by the user)",
    ),
    KeyDoc::optional(
        "nvme_pci_address",
        "with enable_nvme (required): the controller, DDDD:BB:SS.F",
    ),
    KeyDoc::with_default("nvme_namespace", "1", "with enable_nvme: the namespace"),
    KeyDoc::with_default(
        "enable_ssh",
        "no",
        "the image is read over ssh (image_ssh_*; the server set up by the user)",
    ),
    KeyDoc::optional("image_ssh_host", "with enable_ssh (required): the server"),
    KeyDoc::optional("image_ssh_port", "with enable_ssh: its port (unset: 22)"),
    KeyDoc::optional(
        "image_ssh_path",
        "with enable_ssh (required): the image's absolute path",
    ),
    KeyDoc::optional("image_ssh_user", "with enable_ssh: the user"),
    KeyDoc::optional(
        "image_ssh_host_key_check",
        "with enable_ssh: yes (known_hosts), no, or a md5:/sha1: fingerprint",
    ),
    KeyDoc::with_default(
        "boot_drive",
        "yes",
        "no: the image is not given to the VM at start (hot-plugged later)",
    ),
    KeyDoc::optional(
        "image_aio",
        "`aio=` of the file node: native, threads or io_uring",
    ),
    KeyDoc::with_default(
        "scsi_hba",
        "virtio-scsi-pci",
        "the HBA of a `scsi-*` disk (virtio-scsi-pci, lsi53c895a…): one per model, \
         `virtio_scsi_pci0` and so on",
    ),
    KeyDoc::optional(
        "drive_bus",
        "the index of the disk's SCSI HBA (a new HBA when unused)",
    ),
    KeyDoc::optional("drive_unit", "the IDE/AHCI bus, the SCSI id, the USB port"),
    KeyDoc::optional("drive_port", "the IDE/AHCI unit, the SCSI LUN"),
    KeyDoc::optional("drive_pci_addr", "the PCI slot of a virtio disk (hex)"),
    KeyDoc::optional("removable", "`removable=` of a SCSI or USB disk"),
    KeyDoc::optional("min_io_size", "`min_io_size=` of the device (bytes)"),
    KeyDoc::optional("opt_io_size", "`opt_io_size=` of the device (bytes)"),
    KeyDoc::optional(
        "physical_block_size",
        "`physical_block_size=` of the device (bytes)",
    ),
    KeyDoc::optional(
        "logical_block_size",
        "`logical_block_size=` of the device (bytes)",
    ),
    KeyDoc::optional(
        "bootindex",
        "the device's boot order (unset: the next boot index for an `image_boot` disk)",
    ),
    KeyDoc::optional("blk_extra_params", "extra options of the disk's `-device`"),
    KeyDoc::optional(
        "drv_extra_params",
        "extra options of its block nodes (`discard=on` becomes `unmap` with -blockdev)",
    ),
    KeyDoc::optional(
        "bus_extra_params",
        "extra options of the SCSI HBA the disk creates",
    ),
    KeyDoc::optional(
        "num_queues",
        "queues of the virtio-blk device or the virtio-scsi HBA",
    ),
    KeyDoc::optional(
        "image_auto_readonly",
        "`auto-read-only=` of the protocol node",
    ),
    KeyDoc::optional(
        "image_discard",
        "`discard=` of the protocol node (unmap, ignore)",
    ),
    KeyDoc::optional(
        "force_drive_format",
        "the device model, whatever `drive_format` says",
    ),
    KeyDoc::optional("virtio-blk-pci_scsi", "`scsi=` of a virtio-blk device"),
    KeyDoc::optional(
        "image_iothread",
        "the iothread (one of `iothreads`) of a virtio-blk disk or its virtio-scsi HBA",
    ),
];

/// avocado-vt's per-image device and block-layer keys (`images_define_by_params`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskAttach {
    /// `image_aio`: `aio=` of the file node (native, threads, io_uring).
    pub aio: Option<String>,
    /// `scsi_hba`: the HBA model of a `scsi-*` disk (default virtio-scsi-pci).
    pub scsi_hba: String,
    /// `drive_bus`: the HBA (SCSI) index.
    pub bus: Option<u32>,
    /// `drive_unit`: the unit (IDE/AHCI), SCSI id or USB port.
    pub unit: Option<u32>,
    /// `drive_port`: the SCSI LUN, the IDE/AHCI unit.
    pub port: Option<u32>,
    /// `drive_pci_addr`: the PCI slot of a virtio disk.
    pub pci_addr: Option<String>,
    /// `removable`: `removable=` of a SCSI or USB disk.
    pub removable: Option<bool>,
    /// `min_io_size`, `opt_io_size`, `physical_block_size`, `logical_block_size`.
    pub block_sizes: Vec<(&'static str, String)>,
    /// `bootindex`: the device's boot order (unset: from `image_boot`).
    pub bootindex: Option<String>,
    /// `blk_extra_params`: extra items of the `-device`.
    pub blk_extra: ExtraOpts,
    /// `drv_extra_params`: extra items of the block nodes (`discard=on` means `unmap`).
    pub drv_extra: ExtraOpts,
    /// `bus_extra_params`: extra items of the SCSI HBA this disk creates.
    pub bus_extra: ExtraOpts,
    /// `num_queues`: queues of the virtio-blk device or the virtio-scsi HBA.
    pub num_queues: Option<u32>,
    /// `image_auto_readonly`: `auto-read-only=` of the protocol node.
    pub auto_readonly: Option<bool>,
    /// `image_discard`: `discard=` of the protocol node.
    pub discard: Option<String>,
    /// `force_drive_format`: the device model, whatever `drive_format` says.
    pub force_model: Option<String>,
    /// `virtio-blk-pci_scsi`: `scsi=` of a virtio-blk device.
    pub virtio_scsi: Option<bool>,
    /// `image_iothread`: the iothread of a virtio-blk disk or its virtio-scsi HBA.
    pub iothread: Option<String>,
}

impl DiskAttach {
    fn read(i: &mut Reader<'_, '_>) -> DiskAttach {
        let aio = match i.str("image_aio") {
            None => None,
            Some(a @ ("native" | "threads" | "io_uring")) => Some(a.to_string()),
            Some(_) => {
                i.problem(
                    "image_aio",
                    ProblemKind::Invalid {
                        expected: "an aio mode (native, threads, io_uring)".into(),
                    },
                );
                None
            }
        };
        let blk_extra = i.opt_list("blk_extra_params", "a=b,c=d");
        let drv_extra = i.opt_list("drv_extra_params", "a=b,c=d");
        let bus_extra = i.opt_list("bus_extra_params", "a=b,c=d");
        let block_sizes = [
            "min_io_size",
            "opt_io_size",
            "physical_block_size",
            "logical_block_size",
        ]
        .into_iter()
        .filter_map(|k| {
            i.num::<u32>(k, "a size in bytes")
                .map(|n| (k, n.to_string()))
        })
        .collect();
        DiskAttach {
            aio,
            scsi_hba: i
                .string("scsi_hba")
                .unwrap_or_else(|| "virtio-scsi-pci".into()),
            bus: i.num("drive_bus", "a bus index"),
            unit: i.num("drive_unit", "a unit number"),
            port: i.num("drive_port", "a port (LUN) number"),
            pci_addr: i.string("drive_pci_addr"),
            removable: i.opt_bool("removable"),
            block_sizes,
            bootindex: i
                .num::<u32>("bootindex", "a boot index")
                .map(|n| n.to_string()),
            blk_extra,
            drv_extra,
            bus_extra,
            num_queues: i.num("num_queues", "a queue count"),
            auto_readonly: i.opt_bool("image_auto_readonly"),
            discard: i.string("image_discard"),
            force_model: i.string("force_drive_format"),
            virtio_scsi: i.opt_bool("virtio-blk-pci_scsi"),
            iothread: i.string("image_iothread"),
        }
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
        let image_name = i.require("image_name").unwrap_or("").to_string();
        let format = i.parse("image_format").unwrap_or(ImageFormat::Qcow2);
        let raw_device = i.bool("image_raw_device", false);
        let file = ImageFile {
            name: &image_name,
            format,
            raw_device,
        };
        let backend = ImageBackend::read(i, &file);
        ImageSpec {
            name: name.to_string(),
            image_name,
            format,
            raw_device,
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
            size_set: i.string("image_size").is_some(),
            chain_base: i.string("image_chain").and_then(|chain| {
                let tags: Vec<&str> = chain.split_whitespace().collect();
                let at = tags.iter().position(|t| *t == name)?;
                at.checked_sub(1).map(|p| tags[p].to_string())
            }),
            backend,
            secret: match i.parse::<ImageFormat>("image_format") {
                Some(ImageFormat::Luks) => i.require("image_secret").map(str::to_string),
                _ => i.string("image_secret"),
            },
            base_dir: i.string("images_base_dir"),
            attach: DiskAttach::read(i),
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
