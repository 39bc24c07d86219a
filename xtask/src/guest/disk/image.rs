//! The installed tree → a bootable qcow2 disk, without loop devices or mounts: the root file
//! system is made from the tree by `mkfs.ext4 -d`, the boot partition is a FAT image holding the
//! kernel, the initramfs and syslinux (installed into the image file with `syslinux --install`,
//! which goes through mtools), the partition table is written by `sfdisk` into the raw disk file,
//! the partitions are copied in at their offsets, syslinux's MBR code goes into the first 440
//! bytes, and `qemu-img convert` makes the qcow2.

use std::fs::{self, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::process::Command;

use anyhow::{ensure, Context, Result};

use super::recipe::{pipe_in, syslinux_cfg, ROOT_LABEL};
use crate::host::run;

/// Size of the root partition (the qcow2 stores only what is written: about 700 MiB of it is).
pub(super) const ROOT_MIB: u64 = 4096;
/// Size of the FAT boot partition (kernel, initramfs, syslinux).
const BOOT_MIB: u64 = 64;
/// Where the boot partition starts (the usual 1 MiB alignment).
const BOOT_START_MIB: u64 = 1;
/// syslinux's MBR boot code (Debian's `syslinux-common`): boots the active partition.
const MBR_BIN: &str = "/usr/lib/syslinux/mbr/mbr.bin";
const MIB: u64 = 1024 * 1024;

/// Assembles `tree` into the qcow2 `dest`, using `work` for the intermediate files.
pub(super) fn assemble(tree: &Path, work: &Path, dest: &Path) -> Result<()> {
    let (kernel, initrd) = boot_files(tree)?;

    let root = work.join("root.ext4");
    run(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", ROOT_LABEL, "-d"])
        .arg(tree)
        .arg(&root)
        .arg(format!("{ROOT_MIB}M")))?;

    let boot = work.join("boot.vfat");
    run(Command::new("mkfs.vfat")
        .args(["-n", "KVMBOOT", "-C"])
        .arg(&boot)
        .arg((BOOT_MIB * 1024).to_string()))?;
    let cfg = work.join("syslinux.cfg");
    fs::write(&cfg, syslinux_cfg("vmlinuz", "initrd.img"))?;
    for (src, name) in [
        (&kernel, "vmlinuz"),
        (&initrd, "initrd.img"),
        (&cfg, "syslinux.cfg"),
    ] {
        run(Command::new("mcopy")
            .arg("-i")
            .arg(&boot)
            .arg(src)
            .arg(format!("::{name}")))?;
    }
    run(Command::new("syslinux").arg("--install").arg(&boot))?;

    let raw = work.join("disk.raw");
    let total = (BOOT_START_MIB + BOOT_MIB + ROOT_MIB) * MIB;
    OpenOptions::new()
        .create_new(true)
        .write(true)
        .open(&raw)
        .and_then(|f| f.set_len(total))
        .with_context(|| format!("creating {}", raw.display()))?;
    let sectors = |mib: u64| mib * MIB / 512;
    let table = format!(
        "label: dos\nstart={}, size={}, type=c, bootable\nstart={}, type=83\n",
        sectors(BOOT_START_MIB),
        sectors(BOOT_MIB),
        sectors(BOOT_START_MIB + BOOT_MIB)
    );
    pipe_in(Command::new("sfdisk").arg("-q").arg(&raw), table.as_bytes())?;
    copy_at(&boot, &raw, BOOT_START_MIB * MIB)?;
    copy_at(&root, &raw, (BOOT_START_MIB + BOOT_MIB) * MIB)?;
    let mbr = fs::read(MBR_BIN).with_context(|| {
        format!("reading {MBR_BIN} (Debian's syslinux-common; `cargo xtask deps` installs it)")
    })?;
    ensure!(
        mbr.len() <= 440,
        "{MBR_BIN} is {} bytes, more than an MBR's 440",
        mbr.len()
    );
    write_at(&raw, 0, &mbr)?;

    let tmp = dest.with_extension("qcow2.tmp");
    run(Command::new("qemu-img")
        .args(["convert", "-q", "-O", "qcow2"])
        .arg(&raw)
        .arg(&tmp))?;
    fs::rename(&tmp, dest).with_context(|| format!("renaming to {}", dest.display()))
}

/// The kernel and initramfs in the tree's `/boot` (exactly one of each).
fn boot_files(tree: &Path) -> Result<(std::path::PathBuf, std::path::PathBuf)> {
    let pick = |prefix: &str| -> Result<std::path::PathBuf> {
        let mut found: Vec<_> = fs::read_dir(tree.join("boot"))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
            })
            .collect();
        ensure!(
            found.len() == 1,
            "expected one /boot/{prefix}* in the image, found {found:?}"
        );
        Ok(found.remove(0))
    };
    Ok((pick("vmlinuz-")?, pick("initrd.img-")?))
}

/// Copies file `src` into `dest` at byte `offset`, skipping all-zero blocks (`dest` is sparse,
/// and so stays the ext4 image's free space).
fn copy_at(src: &Path, dest: &Path, offset: u64) -> Result<()> {
    let mut input = fs::File::open(src).with_context(|| format!("opening {}", src.display()))?;
    let mut out = OpenOptions::new()
        .write(true)
        .open(dest)
        .with_context(|| format!("opening {}", dest.display()))?;
    let mut buf = vec![0u8; MIB as usize];
    let mut pos = offset;
    loop {
        let n = read_full(&mut input, &mut buf)?;
        if n == 0 {
            break;
        }
        if buf[..n].iter().any(|&b| b != 0) {
            out.seek(SeekFrom::Start(pos))?;
            out.write_all(&buf[..n])?;
        }
        pos += n as u64;
        if n < buf.len() {
            break;
        }
    }
    Ok(())
}

fn read_full(input: &mut fs::File, buf: &mut [u8]) -> Result<usize> {
    use std::io::Read;
    let mut filled = 0;
    while filled < buf.len() {
        let n = input.read(&mut buf[filled..])?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}

fn write_at(path: &Path, offset: u64, bytes: &[u8]) -> Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    f.seek(SeekFrom::Start(offset))?;
    f.write_all(bytes)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_at_places_data_and_keeps_holes() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let src = dir.path().join("src");
        let mut data = vec![0u8; 3 * MIB as usize];
        data[10] = 1;
        data[2 * MIB as usize + 5] = 2;
        fs::write(&src, &data)?;
        let dest = dir.path().join("dest");
        fs::File::create(&dest)?.set_len(5 * MIB)?;
        copy_at(&src, &dest, MIB)?;
        let out = fs::read(&dest)?;
        assert_eq!(out.len(), 5 * MIB as usize);
        assert_eq!(out[MIB as usize + 10], 1);
        assert_eq!(out[3 * MIB as usize + 5], 2);
        assert_eq!(out.iter().filter(|&&b| b != 0).count(), 2);
        Ok(())
    }
}
