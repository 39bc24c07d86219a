//! Per-VM network identity without global locks: MAC addresses, the random UUID, redirected
//! ports read back from QEMU, tap interface names.
//!
//! * **MACs.** A NIC's MAC is `nic_mac` when given, the source VM's for a migration destination,
//!   else generated: 46 random bits in a locally administered unicast address. A generated MAC
//!   is *reserved* by creating a file named after it in the MAC registry directory with
//!   `O_CREAT|O_EXCL` — an atomic claim, not a lock: concurrent processes never wait for each
//!   other, and a collision (astronomically rare) just draws again. The file records the owner's
//!   pid and run directory, so a reservation left by a killed process is recognised as stale
//!   (owner gone) and reclaimed; a normal teardown removes it.
//! * **Ports.** `redirs` are forwarded from host port 0 (`hostfwd=tcp:127.0.0.1:0-:GUEST`):
//!   QEMU binds and the kernel picks a free port, which is then read back from `info usernet`.
//!   Nothing is probed and released, so two VMs can never be handed the same port.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use spec::types::Uuid;

pub use spec::types::MacAddr;

/// A random locally administered unicast address (46 random bits).
///
/// # Errors
/// The system's random source failed.
pub fn random_mac() -> io::Result<MacAddr> {
    let mut b = [0u8; 6];
    os_random(&mut b)?;
    b[0] = (b[0] & 0xfc) | 0x02;
    Ok(MacAddr(b))
}

/// Fills `b` from the system's random source (`rand`'s `SysRng`): a failure is an error, not
/// a weaker choice, for what must not collide.
fn os_random(b: &mut [u8]) -> io::Result<()> {
    use rand::TryRng;
    rand::rngs::SysRng
        .try_fill_bytes(b)
        .map_err(|e| io::Error::other(format!("the system's random source: {e}")))
}

/// The registry file name of `mac` (`:` is not welcome in every file system).
fn mac_file_name(mac: MacAddr) -> String {
    mac.to_string().replace(':', "-")
}

/// The MAC registry directory: `KVMTEST_MAC_DIR`, else `kvmtest-macs-UID` in the temp dir.
pub fn mac_registry_dir() -> PathBuf {
    match std::env::var_os("KVMTEST_MAC_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => std::env::temp_dir().join(format!(
            "kvmtest-macs-{}",
            rustix::process::getuid().as_raw()
        )),
    }
}

/// A claim on a generated MAC; the registry file is removed when the last clone drops (a
/// migration destination shares its source's claims).
#[derive(Debug, Clone)]
pub struct MacReservation(Arc<ReservationFile>);

#[derive(Debug)]
struct ReservationFile {
    mac: MacAddr,
    _claim: Claim,
}

/// A registry file claimed with `O_CREAT|O_EXCL`, naming its owner (pid and run directory);
/// removed when dropped. What MAC and port reservations are made of.
#[derive(Debug)]
pub(crate) struct Claim {
    path: PathBuf,
}

impl Drop for Claim {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

impl Claim {
    /// Claims `path` for the VM whose run directory is `run_dir`: `None` when another owner
    /// holds it (a stale claim, whose owner is gone, is removed first and does not count).
    pub(crate) fn try_new(path: &Path, run_dir: &Path) -> io::Result<Option<Claim>> {
        for _ in 0..2 {
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
            {
                Ok(mut f) => {
                    let claim = Claim {
                        path: path.to_path_buf(),
                    };
                    writeln!(f, "{} {}", std::process::id(), run_dir.display())?;
                    return Ok(Some(claim));
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    if !is_stale(path) {
                        return Ok(None);
                    }
                    let _ = fs::remove_file(path);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }
}

impl MacReservation {
    /// The reserved MAC.
    pub fn mac(&self) -> MacAddr {
        self.0.mac
    }

    /// Generates and reserves a MAC in `dir` for a VM whose run directory is `run_dir`.
    pub fn generate(dir: &Path, run_dir: &Path) -> io::Result<MacReservation> {
        fs::create_dir_all(dir)?;
        for _ in 0..64 {
            let mac = random_mac()?;
            let path = dir.join(mac_file_name(mac));
            if let Some(claim) = Claim::try_new(&path, run_dir)? {
                return Ok(MacReservation(Arc::new(ReservationFile {
                    mac,
                    _claim: claim,
                })));
            }
        }
        Err(io::Error::other(format!(
            "no free MAC after 64 draws in {}",
            dir.display()
        )))
    }
}

/// Removes reservations in `dir` whose owner process or run directory is gone.
pub fn sweep_stale_macs(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if is_stale(&e.path()) {
                let _ = fs::remove_file(e.path());
            }
        }
    }
}

/// A reservation whose owner process or run directory is gone.
fn is_stale(path: &Path) -> bool {
    let Ok(text) = fs::read_to_string(path) else {
        return false;
    };
    if text.trim().is_empty() {
        // Just created, owner not written yet.
        return false;
    }
    let mut it = text.trim().splitn(2, ' ');
    let pid_alive = it
        .next()
        .and_then(|p| p.parse::<u32>().ok())
        .is_some_and(|p| Path::new(&format!("/proc/{p}")).exists());
    let run_dir_exists = it.next().is_some_and(|d| Path::new(d).exists());
    !(pid_alive && run_dir_exists)
}

/// A random (version 4) UUID, for `uuid = random`.
///
/// # Errors
/// The system's random source failed.
pub fn random_uuid() -> io::Result<Uuid> {
    let mut b = [0u8; 16];
    os_random(&mut b)?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
    .parse()
    .map_err(|e: spec::types::Expected| io::Error::other(e.0))
}

/// `(host port, guest port)` of every TCP host forward in HMP `info usernet` output.
///
/// ```text
///   Protocol[State]    FD  Source Address  Port   Dest. Address  Port RecvQ SendQ
///   TCP[HOST_FORWARD]  13       127.0.0.1 35425       10.0.2.15    23     0     0
/// ```
pub fn parse_usernet_forwards(text: &str) -> Vec<(u16, u16)> {
    text.lines()
        .filter(|l| l.trim_start().starts_with("TCP[HOST_FORWARD]"))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((f.get(3)?.parse().ok()?, f.get(5)?.parse().ok()?))
        })
        .collect()
}

/// The tap interface name of NIC `index` when `nic_ifname` is not given: `t<index>-<instance>`,
/// at most 15 bytes (Linux's limit).
pub fn default_ifname(index: usize, instance: &str) -> String {
    let tail_len = 15usize.saturating_sub(format!("t{index}-").len());
    let start = instance.len().saturating_sub(tail_len);
    format!("t{index}-{}", &instance[start..])
}

/// The MAC that `/proc/net/arp` lists for `ip`, if any.
pub fn arp_mac(ip: &str) -> Option<MacAddr> {
    let text = fs::read_to_string("/proc/net/arp").ok()?;
    text.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.first() == Some(&ip)).then(|| f.get(3)?.parse().ok())?
    })
}

/// The MAC→IP address cache of tap-mode NICs, filled from a DHCP server's lease file (what
/// the host's DHCP server handed out; [`crate::Vm::get_address`] then checks the host's ARP
/// table before trusting an entry).
///
/// Two formats are read, told apart by their content:
/// * dnsmasq (libvirt's networks, `dnsmasq --dhcp-leasefile`): one lease per line,
///   `EXPIRY MAC IP HOSTNAME CLIENT-ID`;
/// * ISC dhcpd (`dhcpd.leases`): `lease IP { … hardware ethernet MAC; … }` blocks, where a
///   later block for the same MAC wins and `binding state free` blocks are dropped.
///
/// Lines that are neither are skipped: lease files are written by other programs and may hold
/// entries (IPv6 `duid` lines, comments) that are not ours to judge.
pub fn address_cache_from_leases(text: &str) -> HashMap<MacAddr, String> {
    let mut cache = HashMap::new();
    if text.contains("lease ") && text.contains('{') {
        // ISC dhcpd
        let mut ip: Option<&str> = None;
        let mut mac: Option<MacAddr> = None;
        let mut free = false;
        for line in text.lines() {
            let l = line.trim().trim_end_matches(';').trim();
            if let Some(rest) = l.strip_prefix("lease ") {
                ip = rest
                    .split_whitespace()
                    .next()
                    .filter(|ip| ip.parse::<std::net::IpAddr>().is_ok());
                mac = None;
                free = false;
            } else if let Some(m) = l.strip_prefix("hardware ethernet ") {
                mac = m.trim().parse().ok();
            } else if l.starts_with("binding state ") {
                free = !l.ends_with(" active");
            } else if l == "}" {
                if let (Some(ip), Some(mac)) = (ip.take(), mac.take()) {
                    if free {
                        cache.remove(&mac);
                    } else {
                        cache.insert(mac, ip.to_string());
                    }
                }
            }
        }
        return cache;
    }
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (Some(mac), Some(ip)) = (f.get(1), f.get(2)) else {
            continue;
        };
        if f[0].parse::<u64>().is_err() || ip.parse::<std::net::IpAddr>().is_err() {
            continue;
        }
        if let Ok(mac) = mac.parse::<MacAddr>() {
            cache.insert(mac, (*ip).to_string());
        }
    }
    cache
}

/// [`address_cache_from_leases`] of the lease file `path`.
///
/// # Errors
/// Reading the file.
pub fn read_address_cache(path: &Path) -> io::Result<HashMap<MacAddr, String>> {
    Ok(address_cache_from_leases(&fs::read_to_string(path)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_cache_from_dnsmasq_and_dhcpd_leases() {
        let dnsmasq = "1764201600 52:54:00:12:34:56 192.168.122.45 guest1 01:52:54:00:12:34:56\n\
                       1764201700 52:54:00:AB:CD:EF 192.168.122.46 * *\n\
                       duid 00:01:00:01:2c:3e:1d:aa:52:54:00:00:00:01\n\
                       garbage line\n";
        let c = address_cache_from_leases(dnsmasq);
        assert_eq!(c.len(), 2);
        let m: MacAddr = "52:54:00:ab:cd:ef".parse().expect("mac");
        assert_eq!(c.get(&m).map(String::as_str), Some("192.168.122.46"));

        let dhcpd = "# The format of this file is documented in dhcpd.leases(5).\n\
                     lease 10.0.0.5 {\n  starts 4 2026/11/26 10:00:00;\n  binding state active;\n  hardware ethernet 52:54:00:00:00:01;\n}\n\
                     lease 10.0.0.6 {\n  binding state active;\n  hardware ethernet 52:54:00:00:00:02;\n}\n\
                     lease 10.0.0.7 {\n  binding state active;\n  hardware ethernet 52:54:00:00:00:01;\n}\n\
                     lease 10.0.0.6 {\n  binding state free;\n  hardware ethernet 52:54:00:00:00:02;\n}\n";
        let c = address_cache_from_leases(dhcpd);
        let one: MacAddr = "52:54:00:00:00:01".parse().expect("mac");
        assert_eq!(
            c.get(&one).map(String::as_str),
            Some("10.0.0.7"),
            "the later lease wins"
        );
        assert_eq!(c.len(), 1, "a freed lease is dropped: {c:?}");

        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("leases");
        fs::write(&f, dnsmasq).expect("write");
        assert_eq!(read_address_cache(&f).expect("read").len(), 2);
        assert!(read_address_cache(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn mac_roundtrip_and_random_bits() {
        let m: MacAddr = "52:54:00:AB:cd:0f".parse().expect("valid");
        assert_eq!(m.to_string(), "52:54:00:ab:cd:0f");
        assert!("52:54:00:ab:cd".parse::<MacAddr>().is_err());
        assert!("52:54:00:ab:cd:0f:00".parse::<MacAddr>().is_err());
        for _ in 0..100 {
            let r = random_mac().expect("random");
            assert_eq!(r.0[0] & 2, 2, "locally administered");
            assert_eq!(r.0[0] & 1, 0, "unicast");
        }
    }

    #[test]
    fn reservations_are_exclusive_and_freed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let run = dir.path().join("run");
        fs::create_dir(&run).expect("run dir");
        let a = MacReservation::generate(dir.path(), &run).expect("a");
        let b = MacReservation::generate(dir.path(), &run).expect("b");
        assert_ne!(a.mac(), b.mac());
        let file = dir.path().join(mac_file_name(a.mac()));
        assert!(file.exists());
        let shared = a.clone();
        drop(a);
        assert!(file.exists(), "a clone still holds the claim");
        drop(shared);
        assert!(!file.exists());
    }

    #[test]
    fn stale_reservation_is_detected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("02-00-00-00-00-01");
        fs::write(&p, "999999999 /nonexistent\n").expect("write");
        assert!(is_stale(&p));
        fs::write(
            &p,
            format!("{} {}\n", std::process::id(), dir.path().display()),
        )
        .expect("w");
        assert!(!is_stale(&p));
    }

    #[test]
    fn uuid_shape() {
        let u = random_uuid().expect("uuid").to_string();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
    }

    #[test]
    fn usernet_and_ifname() {
        let text = "Hub -1 (net0):\n  Protocol[State]    FD  Source Address  Port   Dest. Address  Port RecvQ SendQ\n  TCP[HOST_FORWARD]  13       127.0.0.1 35425       10.0.2.15    23     0     0\n  TCP[HOST_FORWARD]  14       127.0.0.1 35427       10.0.2.15  2222     0     0\n";
        assert_eq!(
            parse_usernet_forwards(text),
            vec![(35425, 23), (35427, 2222)]
        );
        assert_eq!(
            default_ifname(0, "20241126-abcdefghijkl"),
            "t0-abcdefghijkl"
        );
        assert!(default_ifname(12, "x").len() <= 15);
    }
}
