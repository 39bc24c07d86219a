//! Domain newtypes and enums: a value that exists has been validated.
//!
//! Each type parses from the cfg spelling with [`FromStr`]; the error is an [`Expected`] noun
//! phrase that the views turn into a [`crate::Problem`] with the key, value and origin.

use std::fmt;
use std::str::FromStr;

/// What a value should have looked like (the error of every `FromStr` here).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected {0}")]
pub struct Expected(pub String);

fn expected(s: &str) -> Expected {
    Expected(s.to_string())
}

/// An Ethernet MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// A locally administered address in QEMU's `52:54:00` range, derived from an instance
    /// number and a NIC index (stable for a given pair, distinct across pairs).
    pub fn derived(instance: u64, nic_index: usize) -> MacAddr {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in instance
            .to_le_bytes()
            .iter()
            .chain((nic_index as u64).to_le_bytes().iter())
        {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        let [a, b, c, ..] = h.to_le_bytes();
        MacAddr([0x52, 0x54, 0x00, a, b, c])
    }
}

impl FromStr for MacAddr {
    type Err = Expected;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let e = || expected("a MAC address such as 52:54:00:12:34:56");
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for byte in &mut out {
            let p = parts.next().ok_or_else(e)?;
            // `from_str_radix` alone would accept a sign (`+1`).
            if p.len() != 2 || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(e());
            }
            *byte = u8::from_str_radix(p, 16).map_err(|_| e())?;
        }
        if parts.next().is_some() {
            return Err(e());
        }
        Ok(MacAddr(out))
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// Guest memory, in MiB. `mem = 1024` means MiB as in avocado-vt; `512M`, `2G`, `1T` are
/// accepted too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct MemSize {
    mib: u64,
}

impl MemSize {
    /// From MiB.
    pub const fn from_mib(mib: u64) -> MemSize {
        MemSize { mib }
    }

    /// The size in MiB.
    pub const fn mib(self) -> u64 {
        self.mib
    }
}

impl FromStr for MemSize {
    type Err = Expected;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let e = || expected("a memory size in MiB, such as 1024, 512M or 2G");
        let (num, mult) = match s.as_bytes().last() {
            Some(b'M' | b'm') => (&s[..s.len() - 1], 1),
            Some(b'G' | b'g') => (&s[..s.len() - 1], 1024),
            Some(b'T' | b't') => (&s[..s.len() - 1], 1024 * 1024),
            _ => (s, 1),
        };
        let n: u64 = num.parse().map_err(|_| e())?;
        let mib = n.checked_mul(mult).filter(|m| *m > 0).ok_or_else(e)?;
        Ok(MemSize { mib })
    }
}

impl fmt::Display for MemSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.mib)
    }
}

/// A UUID in its canonical `8-4-4-4-12` hex form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uuid(String);

impl FromStr for Uuid {
    type Err = Expected;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let groups: Vec<&str> = s.split('-').collect();
        let lens = [8, 4, 4, 4, 12];
        let ok = groups.len() == 5
            && groups
                .iter()
                .zip(lens)
                .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()));
        if ok {
            Ok(Uuid(s.to_ascii_lowercase()))
        } else {
            Err(expected(
                "`random` or a UUID such as 6f1e8c2a-0000-4000-8000-000000000001",
            ))
        }
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A host PCI address `[DDDD:]BB:SS.F` (what gets assigned to the guest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PciHostAddr {
    /// Domain.
    pub domain: u16,
    /// Bus.
    pub bus: u8,
    /// Slot.
    pub slot: u8,
    /// Function.
    pub function: u8,
}

impl FromStr for PciHostAddr {
    type Err = Expected;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let e = || expected("a PCI address such as 0000:01:00.0");
        let (head, func) = s.rsplit_once('.').ok_or_else(e)?;
        let parts: Vec<&str> = head.split(':').collect();
        let (domain, bus, slot) = match parts.as_slice() {
            [b, s] => ("0", *b, *s),
            [d, b, s] => (*d, *b, *s),
            _ => return Err(e()),
        };
        if !s
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return Err(e());
        }
        let addr = PciHostAddr {
            domain: u16::from_str_radix(domain, 16).map_err(|_| e())?,
            bus: u8::from_str_radix(bus, 16).map_err(|_| e())?,
            slot: u8::from_str_radix(slot, 16).map_err(|_| e())?,
            function: u8::from_str_radix(func, 16).map_err(|_| e())?,
        };
        if addr.slot > 0x1f || addr.function > 7 {
            return Err(e());
        }
        Ok(addr)
    }
}

impl fmt::Display for PciHostAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.domain, self.bus, self.slot, self.function
        )
    }
}

/// Declares a cfg enum: its variants, spellings, and the `expected` phrase.
macro_rules! cfg_enum {
    ($(#[$m:meta])* $name:ident, $what:literal, { $($(#[$vm:meta])* $var:ident = $($s:literal)|+),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vm])* $var),+ }

        impl FromStr for $name {
            type Err = Expected;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($($s)|+ => Ok($name::$var),)+
                    _ => Err(Expected(format!("{} ({})", $what, [$($($s),+),+].join(", ")))),
                }
            }
        }

        impl $name {
            /// The canonical spelling (as QEMU or the cfg writes it).
            pub fn as_str(self) -> &'static str {
                match self { $($name::$var => [$($s),+][0]),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

cfg_enum!(
    /// `drive_cache`: the host page-cache mode of a disk.
    DriveCache, "a cache mode", {
        /// `none` (O_DIRECT).
        None = "none",
        /// `writeback`.
        Writeback = "writeback",
        /// `writethrough`.
        Writethrough = "writethrough",
        /// `directsync`.
        Directsync = "directsync",
        /// `unsafe`.
        Unsafe = "unsafe",
    }
);

cfg_enum!(
    /// `drive_werror` / `drive_rerror`: what a guest I/O error does.
    ErrorAction, "an error action", {
        /// `ignore`.
        Ignore = "ignore",
        /// `stop`.
        Stop = "stop",
        /// `report`.
        Report = "report",
        /// `enospc`.
        Enospc = "enospc",
    }
);

cfg_enum!(
    /// `drive_format`: the disk's bus or device model (avocado-vt's name for it).
    DiskInterface, "a disk interface", {
        /// IDE (`if=ide`, `ide-hd`).
        Ide = "ide",
        /// SCSI (`if=scsi`; `scsi-hd` behind an HBA with `-device`).
        Scsi = "scsi",
        /// virtio-blk (`if=virtio`, `virtio-blk-pci`).
        Virtio = "virtio",
        /// `scsi-hd` behind an HBA.
        ScsiHd = "scsi-hd",
        /// `virtio-blk-pci`.
        VirtioBlkPci = "virtio-blk-pci",
        /// SATA: `ide-hd` on an AHCI controller (q35's built-in one, else an added `ahci`).
        Ahci = "ahci",
        /// `scsi-block`: a host SCSI block device passed through behind an HBA.
        ScsiBlock = "scsi-block",
        /// `scsi-generic`: a host SCSI generic device (`/dev/sgN`) behind an HBA.
        ScsiGeneric = "scsi-generic",
        /// USB 1 storage (`usb-storage` on a UHCI bus).
        Usb1 = "usb1",
        /// USB 2 storage (`usb-storage` on an EHCI bus).
        Usb2 = "usb2",
        /// USB 3 storage (`usb-storage` on an XHCI bus).
        Usb3 = "usb3",
        /// An emulated NVMe controller (`nvme`, needs `drive_serial`).
        Nvme = "nvme",
        /// An SD card (`sd`; x86 machines have no SD bus).
        Sd = "sd",
        /// A floppy drive (`floppy` on the ISA floppy controller).
        Floppy = "floppy",
    }
);

cfg_enum!(
    /// `cd_format`: the CD-ROM's bus.
    CdromInterface, "a cdrom interface", {
        /// IDE (`ide-cd`).
        Ide = "ide",
        /// SCSI behind an HBA (`scsi-cd`).
        ScsiCd = "scsi-cd" | "scsi",
        /// SATA: `ide-cd` on an AHCI controller (q35's built-in one, else an added `ahci`);
        /// avocado-vt's default CD-ROM on q35.
        Ahci = "ahci",
    }
);

cfg_enum!(
    /// `image_format`: the image file's format driver.
    ImageFormat, "an image format", {
        /// qcow2.
        Qcow2 = "qcow2",
        /// raw.
        Raw = "raw",
        /// qcow (v1).
        Qcow = "qcow",
        /// qed.
        Qed = "qed",
        /// vmdk.
        Vmdk = "vmdk",
        /// vdi.
        Vdi = "vdi",
        /// vhdx.
        Vhdx = "vhdx",
        /// luks.
        Luks = "luks",
    }
);

cfg_enum!(
    /// `display`: how the guest's screen is shown.
    DisplayKind, "a display", {
        /// `-vnc :N` (N chosen per run).
        Vnc = "vnc",
        /// SDL window.
        Sdl = "sdl",
        /// `-nographic`.
        Nographic = "nographic",
        /// `-display none`.
        None = "none",
        /// `-spice` (avocado-vt's `spice_*` keys: [`crate::spice::SpiceSpec`]).
        Spice = "spice",
    }
);

cfg_enum!(
    /// `spice_image_compression`: SPICE's lossless image compression.
    SpiceImageCompression, "a SPICE image compression", {
        /// Automatic choice between glz and quic.
        AutoGlz = "auto_glz",
        /// Automatic choice between lz and quic.
        AutoLz = "auto_lz",
        /// quic.
        Quic = "quic",
        /// glz.
        Glz = "glz",
        /// lz.
        Lz = "lz",
        /// No compression.
        Off = "off",
    }
);

cfg_enum!(
    /// `spice_jpeg_wan_compression`, `spice_zlib_glz_wan_compression`: when SPICE compresses
    /// for slow links.
    SpiceWanCompression, "a SPICE WAN compression mode", {
        /// When the link is slow.
        Auto = "auto",
        /// Never.
        Never = "never",
        /// Always.
        Always = "always",
    }
);

cfg_enum!(
    /// `spice_streaming_video`: which regions SPICE streams as video.
    SpiceStreamingVideo, "a SPICE streaming-video mode", {
        /// None.
        Off = "off",
        /// Every region detected as video.
        All = "all",
        /// Regions detected as video, filtered.
        Filter = "filter",
    }
);

cfg_enum!(
    /// A SPICE channel of `spice_secure_channels` / `spice_plaintext_channels` (the names
    /// spice-server accepts for `tls-channel=` and `plaintext-channel=`).
    SpiceChannel, "a SPICE channel", {
        /// Every channel not named otherwise.
        Default = "default",
        /// main.
        Main = "main",
        /// display.
        Display = "display",
        /// cursor.
        Cursor = "cursor",
        /// inputs.
        Inputs = "inputs",
        /// record.
        Record = "record",
        /// playback.
        Playback = "playback",
        /// smartcard.
        Smartcard = "smartcard",
        /// usbredir.
        Usbredir = "usbredir",
        /// port.
        Port = "port",
        /// webdav.
        Webdav = "webdav",
    }
);

cfg_enum!(
    /// `listening_addr`: which of the host's addresses SPICE listens on.
    IpVersion, "an IP version", {
        /// The host's IPv4 address.
        Ipv4 = "ipv4",
        /// The host's IPv6 address.
        Ipv6 = "ipv6",
    }
);

cfg_enum!(
    /// `chardev_name` of a `spicevmc` chardev: the SPICE channel it carries (the names QEMU
    /// accepts).
    SpiceVmcName, "a spicevmc channel", {
        /// The SPICE agent (`spice-vdagent` in the guest).
        Vdagent = "vdagent",
        /// A smartcard.
        Smartcard = "smartcard",
        /// USB redirection.
        Usbredir = "usbredir",
    }
);

cfg_enum!(
    /// `vm_accelerator`: KVM or TCG.
    Accel, "an accelerator", {
        /// KVM.
        Kvm = "kvm",
        /// TCG (emulation).
        Tcg = "tcg",
    }
);

cfg_enum!(
    /// `migration_mode`: how a destination VM waits for an incoming migration.
    IncomingMode, "a migration mode", {
        /// `-incoming tcp:0:PORT`.
        Tcp = "tcp",
        /// `-incoming unix:PATH`.
        Unix = "unix",
        /// `-incoming exec:CMD` (QEMU runs CMD through `/bin/sh -c`; that is QEMU's design).
        Exec = "exec",
        /// `-incoming defer` (set the URI later over QMP).
        Defer = "defer",
    }
);

cfg_enum!(
    /// `monitor_type`.
    MonitorKind, "a monitor type", {
        /// The human monitor (HMP).
        Human = "human",
        /// QMP.
        Qmp = "qmp",
    }
);

cfg_enum!(
    /// `pci_assignable`: which host devices to assign (the assignment itself is a run step).
    PciAssignable, "a PCI assignment mode", {
        /// None.
        No = "no",
        /// Virtual functions.
        Vf = "vf",
        /// Physical functions.
        Pf = "pf",
        /// Both.
        Mixed = "mixed",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac() {
        let m: MacAddr = "52:54:00:AB:cd:01".parse().unwrap_or(MacAddr([0; 6]));
        assert_eq!(m.to_string(), "52:54:00:ab:cd:01");
        assert!("52:54:00:ab:cd".parse::<MacAddr>().is_err());
        assert!("52:54:00:ab:cd:01:02".parse::<MacAddr>().is_err());
        assert!("52:54:00:ab:cd:+1".parse::<MacAddr>().is_err());
        assert_ne!(MacAddr::derived(1, 0), MacAddr::derived(1, 1));
        assert_eq!(MacAddr::derived(7, 2), MacAddr::derived(7, 2));
    }

    #[test]
    fn mem() {
        assert_eq!("1024".parse(), Ok(MemSize::from_mib(1024)));
        assert_eq!("2G".parse(), Ok(MemSize::from_mib(2048)));
        assert!("lots".parse::<MemSize>().is_err());
        assert!("0".parse::<MemSize>().is_err());
        assert!("99999999999999999999T".parse::<MemSize>().is_err());
    }

    #[test]
    fn enums_and_addresses() {
        assert_eq!("scsi".parse(), Ok(CdromInterface::ScsiCd));
        let e = "sata".parse::<DiskInterface>().err().map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some(
                "expected a disk interface (ide, scsi, virtio, scsi-hd, virtio-blk-pci, ahci, \
                 scsi-block, scsi-generic, usb1, usb2, usb3, nvme, sd, floppy)"
            )
        );
        let a: Result<PciHostAddr, _> = "01:00.1".parse();
        assert_eq!(a.map(|a| a.to_string()), Ok("0000:01:00.1".to_string()));
        assert!("01:20.0".parse::<PciHostAddr>().is_err());
        assert!("6F1E8C2A-0000-4000-8000-000000000001"
            .parse::<Uuid>()
            .is_ok());
        assert!("6f1e8c2a".parse::<Uuid>().is_err());
    }
}
