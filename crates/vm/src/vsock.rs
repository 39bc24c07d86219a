//! The host side of `vsocks`: a free guest CID per vsock device, held for the VM's life.
//!
//! avocado-vt finds a CID as the kernel hands them out: it opens `/dev/vhost-vsock` and tries
//! `VHOST_VSOCK_SET_GUEST_CID` from 3 up (0-2 are reserved) until the kernel stops answering
//! `EADDRINUSE`, then closes the device and writes the CID into the command line — leaving a
//! window in which another VM can take the CID before QEMU claims it again. kvmtest makes the same
//! search but keeps the fd that holds the CID open and hands it to QEMU (`vhostfd=`, see
//! `spawn`): the CID is this VM's from the search on, whatever starts beside it, with no lock.
//! The kernel frees it when the last holder closes the fd (QEMU exiting, the plan dropping).
//! A host without `/dev/vhost-vsock` (no `vhost_vsock` module) is an error naming `vsocks`.
//!
//! `ioctl` is a raw system call whose argument the kernel reads as the request says, so rustix
//! marks it `unsafe`: this module allows `unsafe_code` for that one call, whose argument is a
//! `u64` by value (see its SAFETY comment). The crate's other `unsafe` is `spawn`'s `pre_exec`.

#![allow(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;

use rustix::io::Errno;
use rustix::ioctl::{opcode, Opcode, Setter};

/// The device node.
pub(crate) const DEVICE: &str = "/dev/vhost-vsock";

/// The first CID a guest may have (0-2: hypervisor, local, host).
pub(crate) const FIRST_GUEST_CID: u32 = 3;

/// `VHOST_VSOCK_SET_GUEST_CID`: `_IOW(VHOST_VIRTIO, 0x60, __u64)` (`linux/vhost.h`).
const SET_GUEST_CID: Opcode = opcode::write::<u64>(0xAF, 0x60);

/// An open `/dev/vhost-vsock` holding a guest CID.
#[derive(Debug)]
pub(crate) struct VhostVsock {
    file: File,
    cid: u32,
}

impl VhostVsock {
    /// Opens `device` and claims the first free CID from `from` up. The error says what failed:
    /// the device missing (the host feature), or the kernel refusing.
    pub(crate) fn claim(device: &Path, from: u32) -> Result<VhostVsock, String> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(device)
            .map_err(|e| match e.kind() {
                ErrorKind::NotFound => format!(
                    "{} does not exist: the host has no vhost-vsock (the vhost_vsock kernel \
                     module is not loaded)",
                    device.display()
                ),
                _ => format!("opening {}: {e}", device.display()),
            })?;
        let mut cid = from.max(FIRST_GUEST_CID);
        loop {
            match set_guest_cid(&file, cid) {
                Ok(()) => return Ok(VhostVsock { file, cid }),
                Err(Errno::ADDRINUSE) if cid < u32::MAX - 1 => cid += 1,
                Err(e) => {
                    return Err(format!(
                        "VHOST_VSOCK_SET_GUEST_CID {cid} on {}: {e}",
                        device.display()
                    ))
                }
            }
        }
    }

    /// The CID held.
    pub(crate) fn cid(&self) -> u32 {
        self.cid
    }

    /// The fd QEMU inherits (`vhostfd=`).
    pub(crate) fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

/// Gives the guest of `file`'s vhost-vsock instance CID `cid`.
fn set_guest_cid(file: &File, cid: u32) -> rustix::io::Result<()> {
    // SAFETY: VHOST_VSOCK_SET_GUEST_CID is `_IOW(VHOST_VIRTIO, 0x60, __u64)`: the kernel reads
    // one `u64` through the pointer rustix passes, which points at the `Setter`'s own `u64`
    // (alive for the call), and writes nothing back. `file` is an open fd borrowed for the
    // call; on any other device node the kernel answers `ENOTTY` without reading.
    unsafe { rustix::ioctl::ioctl(file, Setter::<SET_GUEST_CID, u64>::new(u64::from(cid))) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_device_is_named() {
        let err = VhostVsock::claim(Path::new("/nonexistent/vhost-vsock"), 3)
            .err()
            .unwrap_or_default();
        assert!(err.contains("does not exist"), "{err}");
        assert!(err.contains("vhost_vsock"), "{err}");
    }

    #[test]
    fn another_device_refuses_the_request() {
        // /dev/null knows no vhost ioctl: the kernel answers ENOTTY, reported with the CID.
        let err = VhostVsock::claim(Path::new("/dev/null"), 1)
            .err()
            .unwrap_or_default();
        assert!(
            err.starts_with("VHOST_VSOCK_SET_GUEST_CID 3 on /dev/null"),
            "{err}"
        );
    }

    #[test]
    fn free_cids_are_claimed_and_held_where_the_host_has_vhost_vsock() {
        let device = Path::new(DEVICE);
        if !device.exists() {
            // The host feature is missing (no vhost_vsock module): said, not hidden.
            eprintln!("SKIPPED free_cids_are_claimed_and_held: {DEVICE} does not exist here");
            return;
        }
        let a = VhostVsock::claim(device, FIRST_GUEST_CID).unwrap_or_else(|e| panic!("{e}"));
        let b = VhostVsock::claim(device, a.cid()).unwrap_or_else(|e| panic!("{e}"));
        assert!(b.cid() > a.cid(), "a held CID is not handed out twice");
        let held = a.cid();
        drop(a);
        let c = VhostVsock::claim(device, held).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.cid(), held, "a closed fd frees its CID");
    }
}
