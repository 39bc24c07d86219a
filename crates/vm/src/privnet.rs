//! Bridged NICs (`nettype = bridge`) as avocado-vt's `create()` makes them, and kvmtest's
//! private bridges (`netdst_private = yes`).
//!
//! * **The tap.** kvmtest opens `/dev/net/tun` and asks for a tap named after the NIC
//!   (`TUNSETIFF`: `IFF_TAP | IFF_NO_PI | IFF_VNET_HDR`, plus `IFF_MULTI_QUEUE` and one fd per
//!   queue with `queues`), puts it into the bridge `netdst` and brings it up (`ip link set`),
//!   and hands QEMU the fds (`fd=`/`fds=`), with `/dev/vhost-net` fds for `vhost = on`. The tap
//!   is not persistent: it disappears when the last fd closes, so a killed kvmtest leaves none.
//! * **A private bridge** lives in a network namespace of its own, created by a thread of
//!   kvmtest (`unshare(CLONE_NEWNET)`) and kept by an open handle (`/proc/thread-self/ns/net`):
//!   no process holds it and no name is mounted for it, so when kvmtest exits, however it
//!   exits, the kernel deletes the namespace with the bridge and taps in it. In it: `lo` and
//!   the bridge up with a fixed MAC address (so it does not change as taps come and go), the
//!   bridge holding the subnet's first address, and dnsmasq (DHCP only:
//!   `--port=0`) handing out the rest, its lease file in a private temporary directory. dnsmasq
//!   runs as root (a change of user would clear its parent-death signal), in the foreground,
//!   killed with kvmtest. Taps are opened from a thread that joined the namespace; `ip`,
//!   dnsmasq and ssh are spawned into it (`setns` before `exec`).
//! * One private bridge per name per process, shared by every VM that names it (a migration's
//!   destination joins its source's bridge), torn down when the last VM lets go of it.
//!
//! The namespace itself is [`crate::netns`]'s. The `TUNSETIFF` ioctl is `unsafe` in rustix, so
//! this module allows `unsafe_code` for it (see its SAFETY comment).

#![allow(unsafe_code)]

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, Weak};

use spec::vm::Ipv4Subnet;

use crate::netns::ip_in;
pub use crate::netns::NetNs;
use crate::process::OwnedProcess;

/// The private bridge's own MAC address (locally administered; the bridge is alone in its
/// namespace, so every private bridge may have the same).
const BRIDGE_MAC: &str = "02:6b:76:6d:74:01";

/// A private bridge with its namespace and DHCP server (see the module docs).
#[derive(Debug)]
pub struct PrivateBridge {
    name: String,
    subnet: Ipv4Subnet,
    netns: NetNs,
    dnsmasq: Mutex<Option<OwnedProcess>>,
    /// The lease file and dnsmasq's log.
    dir: tempfile::TempDir,
}

/// The private bridges of this process by name.
static BRIDGES: Mutex<Option<HashMap<String, Weak<PrivateBridge>>>> = Mutex::new(None);

impl PrivateBridge {
    /// The private bridge `name` of this process, created (with `subnet`) unless a living VM
    /// already holds it; an existing one must have the same subnet.
    ///
    /// # Errors
    /// What failed (creating the namespace, `ip`, starting dnsmasq), or a subnet conflict.
    pub(crate) fn acquire(
        name: &str,
        subnet: Ipv4Subnet,
        dir_base: &Path,
    ) -> Result<Arc<PrivateBridge>, String> {
        let mut all = BRIDGES.lock().unwrap_or_else(|e| e.into_inner());
        let all = all.get_or_insert_with(HashMap::new);
        if let Some(b) = all.get(name).and_then(Weak::upgrade) {
            if b.subnet != subnet {
                return Err(format!(
                    "the private bridge {name:?} already runs on {} (`netdst_private_subnet` = \
                     {subnet} here): VMs sharing a bridge must name the same subnet",
                    b.subnet
                ));
            }
            return Ok(b);
        }
        let b = Arc::new(PrivateBridge::create(name, subnet, dir_base)?);
        all.retain(|_, w| w.strong_count() > 0);
        all.insert(name.to_owned(), Arc::downgrade(&b));
        Ok(b)
    }

    /// The names of the private bridges some VM of this process still holds.
    pub fn live() -> Vec<String> {
        let all = BRIDGES.lock().unwrap_or_else(|e| e.into_inner());
        let mut names: Vec<String> = all
            .iter()
            .flatten()
            .filter(|(_, w)| w.strong_count() > 0)
            .map(|(n, _)| n.clone())
            .collect();
        names.sort();
        names
    }

    fn create(name: &str, subnet: Ipv4Subnet, dir_base: &Path) -> Result<PrivateBridge, String> {
        if name.is_empty() || name.len() > 15 || name.contains('/') {
            return Err(format!(
                "`netdst` = {name:?} is not a valid interface name (1 to 15 characters)"
            ));
        }
        let netns = NetNs::create().map_err(|e| {
            format!(
                "creating a network namespace for the private bridge {name:?}: {e} (it needs \
                 CAP_SYS_ADMIN)"
            )
        })?;
        let dir = tempfile::Builder::new()
            .prefix(&format!("kvmtest-bridge-{name}."))
            .tempdir_in(dir_base)
            .map_err(|e| format!("creating the private bridge's directory: {e}"))?;
        let host = format!("{}/{}", subnet.host(1), subnet.prefix);
        for args in [
            vec!["link", "set", "dev", "lo", "up"],
            // A bridge without an address of its own takes the lowest of its ports' and
            // changes it as taps come and go (a migration's destination joins, its source
            // leaves): the guests' ARP entries for the bridge would go stale. Fixed here.
            vec![
                "link", "add", "name", name, "address", BRIDGE_MAC, "type", "bridge",
            ],
            vec!["addr", "add", host.as_str(), "dev", name],
            vec!["link", "set", "dev", name, "up"],
        ] {
            ip_in(Some(&netns), &args).map_err(|e| {
                format!("setting up the private bridge {name:?} in its namespace: {e}")
            })?;
        }
        let bridge = PrivateBridge {
            name: name.to_owned(),
            subnet,
            netns,
            dnsmasq: Mutex::new(None),
            dir,
        };
        let dnsmasq = bridge.start_dnsmasq()?;
        *bridge.dnsmasq.lock().unwrap_or_else(|e| e.into_inner()) = Some(dnsmasq);
        Ok(bridge)
    }

    fn start_dnsmasq(&self) -> Result<OwnedProcess, String> {
        let program = crate::spawn::find_program("dnsmasq").ok_or_else(|| {
            "`netdst_private = yes` needs dnsmasq (Debian: dnsmasq-base), which is not on PATH"
                .to_owned()
        })?;
        let argv = dnsmasq_argv(
            &program,
            &self.name,
            &self.subnet,
            &self.lease_file(),
            &self.dir.path().join("dnsmasq.log"),
        );
        // The module that serves a private bridge's DHCP runs dnsmasq, and nothing else.
        #[allow(clippy::disallowed_methods)]
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        self.netns
            .enter_on_spawn(&mut cmd)
            .map_err(|e| format!("preparing dnsmasq: {e}"))?;
        let out = self.dir.path().join("dnsmasq.out");
        let p = OwnedProcess::spawn_command(cmd, &out, &[])
            .map_err(|e| format!("starting {}: {e}", program.display()))?;
        // dnsmasq binds at once; one that exits (a bad option, a taken port) says why.
        std::thread::sleep(std::time::Duration::from_millis(200));
        if let crate::process::ProcessState::Exited(status) = p.state() {
            let said = std::fs::read_to_string(&out).unwrap_or_default()
                + &std::fs::read_to_string(self.dir.path().join("dnsmasq.log")).unwrap_or_default();
            return Err(format!(
                "dnsmasq for the private bridge {:?} exited ({status}): {}",
                self.name,
                said.trim()
            ));
        }
        Ok(p)
    }

    /// dnsmasq's pid (while it runs).
    pub fn dnsmasq_pid(&self) -> Option<u32> {
        self.dnsmasq
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(OwnedProcess::pid)
    }

    /// The bridge's name (`netdst`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its subnet.
    pub fn subnet(&self) -> Ipv4Subnet {
        self.subnet
    }

    /// The namespace the bridge lives in.
    pub fn netns(&self) -> &NetNs {
        &self.netns
    }

    /// The address dnsmasq leased to `mac`, if any yet.
    pub fn leased(&self, mac: crate::net::MacAddr) -> Option<String> {
        crate::net::read_address_cache(&self.lease_file())
            .ok()?
            .remove(&mac)
    }

    /// The last lines of dnsmasq's log (what it saw of DHCP), for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("dnsmasq.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(5)..].join(" | ")
    }

    /// dnsmasq's lease file (`EXPIRY MAC IP HOSTNAME CLIENT-ID` lines).
    pub fn lease_file(&self) -> PathBuf {
        self.dir.path().join("leases")
    }
}

impl Drop for PrivateBridge {
    fn drop(&mut self) {
        // dnsmasq first (it holds the namespace too); the handle closes after, and with it the
        // namespace, the bridge and any tap left in it.
        if let Some(p) = self
            .dnsmasq
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            p.kill();
            // Reaped here, so that nothing of the bridge is left once the last VM is gone.
            for _ in 0..100 {
                if matches!(p.state(), crate::process::ProcessState::Exited(_)) {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
    }
}

/// dnsmasq's argv for a private bridge: DHCP only (`--port=0`), bound to the bridge, no
/// configuration, hosts or resolv files of the host's, the lease file and log given, in the
/// foreground and as root (see the module docs).
pub(crate) fn dnsmasq_argv(
    program: &Path,
    bridge: &str,
    subnet: &Ipv4Subnet,
    leases: &Path,
    log: &Path,
) -> Vec<OsString> {
    let first = subnet.host(2);
    let last = std::net::Ipv4Addr::from(u32::from(subnet.broadcast()) - 1);
    let mut argv: Vec<OsString> = vec![program.into()];
    for a in [
        "--keep-in-foreground".to_owned(),
        "--conf-file=/dev/null".to_owned(),
        "--no-hosts".to_owned(),
        "--no-resolv".to_owned(),
        "--port=0".to_owned(),
        "--bind-interfaces".to_owned(),
        format!("--interface={bridge}"),
        "--except-interface=lo".to_owned(),
        "--user=root".to_owned(),
        "--pid-file=".to_owned(),
        "--dhcp-authoritative".to_owned(),
        "--log-dhcp".to_owned(),
        format!("--dhcp-range={first},{last},{},1h", subnet.netmask()),
    ] {
        argv.push(a.into());
    }
    let mut lease = OsString::from("--dhcp-leasefile=");
    lease.push(leases);
    argv.push(lease);
    let mut logf = OsString::from("--log-facility=");
    logf.push(log);
    argv.push(logf);
    argv
}

/// A bridged NIC's tap: the fds kvmtest opened for QEMU. Dropping it closes them, which
/// deletes the tap.
#[derive(Debug)]
pub(crate) struct BridgeTap {
    taps: Vec<File>,
    vhosts: Vec<File>,
}

/// `IFF_TAP`, `IFF_NO_PI`, `IFF_VNET_HDR`, `IFF_MULTI_QUEUE` of `<linux/if_tun.h>`.
const IFF_TAP: i16 = 0x0002;
const IFF_NO_PI: i16 = 0x1000;
const IFF_VNET_HDR: i16 = 0x4000;
const IFF_MULTI_QUEUE: i16 = 0x0100;

/// `struct ifreq` as `TUNSETIFF` reads it: the name, then the flags (the rest of the union
/// unused).
#[repr(C)]
struct IfReq {
    name: [u8; 16],
    flags: i16,
    _rest: [u8; 22],
}

/// `TUNSETIFF` = `_IOW('T', 202, int)`.
const TUNSETIFF: rustix::ioctl::Opcode = rustix::ioctl::opcode::write::<i32>(b'T', 202);

/// Opens one queue of tap `name` (created by the first open).
fn open_tap(name: &str, multi_queue: bool) -> io::Result<File> {
    let tun = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")?;
    let mut req = IfReq {
        name: [0; 16],
        flags: IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | if multi_queue { IFF_MULTI_QUEUE } else { 0 },
        _rest: [0; 22],
    };
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() > 15 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} is not a valid interface name (1 to 15 characters)"),
        ));
    }
    req.name[..bytes.len()].copy_from_slice(bytes);
    // SAFETY: TUNSETIFF takes a `struct ifreq`, which `IfReq` lays out (name, flags, padding
    // to the union's size); the kernel reads and writes only within it.
    unsafe {
        rustix::ioctl::ioctl(
            &tun,
            rustix::ioctl::Updater::<'_, TUNSETIFF, IfReq>::new(&mut req),
        )?;
    }
    Ok(tun)
}

impl BridgeTap {
    /// Opens tap `name` (`queues` fds; `/dev/vhost-net` as often with `vhost`) — inside the
    /// private bridge's namespace when there is one — puts it into `bridge` and brings it up.
    /// A host bridge that does not exist is an error naming `netdst`.
    pub(crate) fn open(
        name: &str,
        bridge: &str,
        private: Option<&PrivateBridge>,
        queues: u32,
        vhost: bool,
    ) -> Result<BridgeTap, String> {
        let netns = private.map(PrivateBridge::netns);
        if netns.is_none()
            && !Path::new("/sys/class/net")
                .join(bridge)
                .join("bridge")
                .is_dir()
        {
            return Err(format!(
                "`netdst` = {bridge:?}: no such bridge on this host (create it, or let kvmtest \
                 make a private one with `netdst_private = yes`)"
            ));
        }
        let queues = queues.max(1);
        let multi = queues > 1;
        let owned = name.to_owned();
        let open_all = move || {
            (0..queues)
                .map(|_| open_tap(&owned, multi))
                .collect::<io::Result<Vec<File>>>()
        };
        let taps = match netns {
            Some(ns) => ns.run(open_all),
            None => open_all(),
        }
        .map_err(|e| format!("opening the tap {name:?} (/dev/net/tun, TUNSETIFF): {e}"))?;
        let mut vhosts = Vec::new();
        if vhost {
            for _ in 0..queues {
                vhosts.push(
                    OpenOptions::new()
                        .read(true)
                        .write(true)
                        .open("/dev/vhost-net")
                        .map_err(|e| format!("opening /dev/vhost-net: {e}"))?,
                );
            }
        }
        ip_in(netns, &["link", "set", "dev", name, "master", bridge, "up"])
            .map_err(|e| format!("putting the tap {name} into `netdst` = {bridge:?}: {e}"))?;
        Ok(BridgeTap { taps, vhosts })
    }

    /// The tap fds, in queue order.
    pub(crate) fn tap_fds(&self) -> Vec<RawFd> {
        self.taps.iter().map(AsRawFd::as_raw_fd).collect()
    }

    /// The tap and `/dev/vhost-net` fds, borrowed (to pass them over QMP).
    pub(crate) fn borrowed_fds(
        &self,
    ) -> (
        Vec<std::os::fd::BorrowedFd<'_>>,
        Vec<std::os::fd::BorrowedFd<'_>>,
    ) {
        use std::os::fd::AsFd;
        (
            self.taps.iter().map(AsFd::as_fd).collect(),
            self.vhosts.iter().map(AsFd::as_fd).collect(),
        )
    }

    /// The `/dev/vhost-net` fds, in queue order.
    pub(crate) fn vhost_fds(&self) -> Vec<RawFd> {
        self.vhosts.iter().map(AsRawFd::as_raw_fd).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dnsmasq_serves_dhcp_only_on_the_bridge_with_the_rest_of_the_subnet() {
        let subnet: Ipv4Subnet = "10.7.0.0/24".parse().expect("subnet");
        let argv: Vec<String> = dnsmasq_argv(
            Path::new("/usr/sbin/dnsmasq"),
            "kvmtbr0",
            &subnet,
            Path::new("/run/x/leases"),
            Path::new("/run/x/dnsmasq.log"),
        )
        .into_iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
        for want in [
            "--port=0",
            "--interface=kvmtbr0",
            "--conf-file=/dev/null",
            "--user=root",
            "--dhcp-range=10.7.0.2,10.7.0.254,255.255.255.0,1h",
            "--dhcp-leasefile=/run/x/leases",
            "--keep-in-foreground",
        ] {
            assert!(argv.iter().any(|a| a == want), "{want} missing in {argv:?}");
        }
    }
}
