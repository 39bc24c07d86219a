//! The host side of `display = spice`: what avocado-vt's `add_spice` does on the host while it
//! renders `-spice`, done here once per run.
//!
//! * **Ports.** `spice_port = generate` and `spice_tls_port = generate` get a free port of
//!   avocado-vt's ranges (3000-3199, 3200-3399). SPICE cannot be told "port 0, pick one" (QEMU
//!   reads 0 as "no port"), so the port is chosen here: claimed in a port registry
//!   ([`port_registry_dir`]) with `O_CREAT|O_EXCL` as MACs are (concurrent kvmtest processes
//!   never pick the same port, and a killed one's claims are reclaimed), then checked free by
//!   binding it on every address. Only a program outside kvmtest taking the port between that
//!   check and QEMU's bind can still collide; QEMU then fails to start and says so. The claim is
//!   the plan's, released with it.
//! * **The host's address.** `listening_addr = ipv4|ipv6` (and a server certificate subject
//!   ending in `CN=`) take the host's address as avocado-vt's `get_host_ip_address` does:
//!   `host_ip_addr`, else the address of `netdst`'s interface, else of the default route's
//!   interface (from `/proc/net/route`), read with `ip -o addr show dev IFACE`.
//! * **Certificates.** `spice_gen_x509 = yes` makes the certificate directory when it does not
//!   exist, with what avocado-vt's `utils_misc.create_x509_dir` makes: a CA key (encrypted with
//!   `spice_x509_key_password`) and certificate with `spice_x509_cacert_subj`, a server key
//!   (encrypted with the same passphrase when `spice_x509_secure = yes`) and a certificate with
//!   `spice_x509_server_subj` signed by the CA; RSA 3072 bits, 1095 days. The `openssl` program
//!   does it (argv, never a shell; passphrases through its environment, never its argv): the one
//!   tool avocado-vt uses too, present wherever SPICE's TLS is, whose output QEMU's SPICE
//!   server (OpenSSL too) reads. A directory the cfg names (`spice_x509_prefix`) is the user's
//!   and stays; without one the directory is made in the run directory and goes with the run.
//!   Generation happens in a temporary sibling renamed into place at the end, so a failure
//!   leaves nothing half-made and two VMs generating the same prefix at once keep one result.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;

use qemu_cmd::{SpiceRun, VmSpec};
use spec::spice::{
    HostAddress, SpiceAddr, SpicePort, X509Generate, SPICE_PORT_RANGE, SPICE_TLS_PORT_RANGE,
};
use spec::types::IpVersion;

use crate::net::Claim;

/// The port registry directory: `KVMTEST_PORT_DIR`, else `kvmtest-ports-UID` in the temp dir.
pub fn port_registry_dir() -> PathBuf {
    match std::env::var_os("KVMTEST_PORT_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => std::env::temp_dir().join(format!(
            "kvmtest-ports-{}",
            rustix::process::getuid().as_raw()
        )),
    }
}

/// A claimed free TCP port; the claim is released when dropped.
#[derive(Debug)]
pub struct PortReservation {
    port: u16,
    _claim: Claim,
}

impl PortReservation {
    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Claims a free port of `range` (inclusive) in registry `dir`, for the VM whose run
    /// directory is `run_dir`: ports are tried from a random one on, each claimed, then
    /// checked free by binding it.
    ///
    /// # Errors
    /// The registry cannot be written, or no port of the range is free.
    pub fn reserve(range: (u16, u16), dir: &Path, run_dir: &Path) -> io::Result<PortReservation> {
        let (lo, hi) = range;
        let len = u32::from(hi.saturating_sub(lo)) + 1;
        fs::create_dir_all(dir)?;
        let start = rand::random_range(0..len);
        for i in 0..len {
            let offset = u16::try_from((start + i) % len).unwrap_or(0);
            let port = lo + offset;
            let Some(claim) = Claim::try_new(&dir.join(format!("port-{port}")), run_dir)? else {
                continue;
            };
            if bindable(port) {
                return Ok(PortReservation {
                    port,
                    _claim: claim,
                });
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("no free port in {lo}-{hi} (claims in {})", dir.display()),
        ))
    }
}

/// Whether `port` can be bound on every IPv4 and IPv6 address (where the host has IPv6).
fn bindable(port: u16) -> bool {
    let v4 = TcpListener::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port))).is_ok();
    let v6 = match TcpListener::bind(SocketAddr::from((Ipv6Addr::UNSPECIFIED, port))) {
        Ok(_) => true,
        // No IPv6 on this host: nothing can hold the port there.
        Err(e) => e.kind() == io::ErrorKind::AddrNotAvailable || e.raw_os_error() == Some(97),
    };
    v4 && v6
}

/// The run-time SPICE values of `spec` ([`SpiceRun`]) and the port claims behind them (keep
/// them until QEMU has bound the ports; [`crate::VmPlan`] holds them for the VM's life).
///
/// # Errors
/// What failed (no free port, no host address), naming the key.
pub fn decide(spec: &VmSpec, run_dir: &Path) -> Result<(SpiceRun, Vec<PortReservation>), String> {
    let mut run = SpiceRun::default();
    let mut claims = Vec::new();
    let Some(s) = &spec.spice else {
        return Ok((run, claims));
    };
    let dir = port_registry_dir();
    let tls_port = s.tls.as_ref().and_then(|t| t.port);
    for (key, port, range, slot) in [
        ("spice_port", s.port, SPICE_PORT_RANGE, &mut run.port),
        (
            "spice_tls_port",
            tls_port,
            SPICE_TLS_PORT_RANGE,
            &mut run.tls_port,
        ),
    ] {
        if port == Some(SpicePort::Generate) {
            let r = PortReservation::reserve(range, &dir, run_dir)
                .map_err(|e| format!("`{key} = generate`: {e}"))?;
            *slot = Some(r.port());
            claims.push(r);
        }
    }
    if let Some(SpiceAddr::Host(a)) = &s.addr {
        let addr = host_address(a).map_err(|e| format!("`listening_addr`: {e}"))?;
        run.addr = Some(addr);
    }
    Ok((run, claims))
}

/// The host's address as avocado-vt's `get_host_ip_address` finds it (see the module docs).
///
/// # Errors
/// No interface or no address of that version on it.
pub fn host_address(a: &HostAddress) -> Result<String, String> {
    if let Some(ip) = &a.host_ip_addr {
        return Ok(ip.clone());
    }
    let iface = match &a.netdst {
        Some(i) => i.clone(),
        None => default_route_interface(&fs::read_to_string("/proc/net/route").unwrap_or_default())
            .ok_or(
                "no `host_ip_addr`, no `netdst` and no default route to take an interface from",
            )?,
    };
    let (flag, family) = match a.version {
        IpVersion::Ipv4 => ("-4", "inet"),
        IpVersion::Ipv6 => ("-6", "inet6"),
    };
    let out =
        crate::hostnet::ip_output(&["-o", flag, "addr", "show", "dev", &iface, "scope", "global"])?;
    interface_address(&out, family).ok_or_else(|| {
        format!(
            "interface {iface} has no {} address (`ip -o {flag} addr show dev {iface}`)",
            a.version
        )
    })
}

/// The interface of the IPv4 default route in `/proc/net/route`'s text (destination and mask
/// 0, route up).
fn default_route_interface(route: &str) -> Option<String> {
    route.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let up = f
            .get(3)
            .and_then(|fl| u32::from_str_radix(fl, 16).ok())
            .is_some_and(|fl| fl & 1 == 1);
        (f.get(1) == Some(&"00000000") && f.get(7) == Some(&"00000000") && up)
            .then(|| f[0].to_string())
    })
}

/// The first address of `family` (`inet`, `inet6`) in `ip -o addr show` output, without its
/// prefix length.
fn interface_address(text: &str, family: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let mut words = l.split_whitespace();
        words.find(|w| *w == family)?;
        let cidr = words.next()?;
        Some(cidr.split('/').next().unwrap_or(cidr).to_string())
    })
}

/// Where the certificates of `spec` are: `spice_x509_prefix` (relative: under `root_dir`), else
/// [`qemu_cmd::names::SPICE_X509_DIR`] in `run_dir` — the paths the command line names.
pub fn x509_dir(spec: &VmSpec, root_dir: &Path, run_dir: &Path) -> Option<PathBuf> {
    let x509 = &spec.spice.as_ref()?.tls.as_ref()?.x509;
    Some(match &x509.prefix {
        Some(p) => root_dir.join(p),
        None => run_dir.join(qemu_cmd::names::SPICE_X509_DIR),
    })
}

/// `spice_gen_x509 = yes`: makes the certificate directory of `spec` when it does not exist
/// (see the module docs); `Some(dir)` when it made one.
///
/// # Errors
/// What failed: the host's address for a subject ending in `CN=`, a directory, `openssl`.
pub fn prepare_certificates(
    spec: &VmSpec,
    root_dir: &Path,
    run_dir: &Path,
) -> Result<Option<PathBuf>, String> {
    let Some(generate) = spec
        .spice
        .as_ref()
        .and_then(|s| s.tls.as_ref())
        .and_then(|t| t.x509.generate.as_ref())
    else {
        return Ok(None);
    };
    let Some(dir) = x509_dir(spec, root_dir, run_dir) else {
        return Ok(None);
    };
    if dir.exists() {
        return Ok(None);
    }
    let mut server_subj = generate.server_subj.clone();
    if let Some(a) = &generate.server_cn {
        server_subj.push_str(&host_address(a).map_err(|e| {
            format!("the host's address for `spice_x509_server_subj` ending in `CN=`: {e}")
        })?);
    }
    create_x509_dir(&dir, generate, &server_subj)?;
    Ok(Some(dir))
}

/// Makes `dir` with `ca-key.pem`, `ca-cert.pem`, `server-key.pem` and `server-cert.pem` (see
/// the module docs); `server_subj` is the server certificate's subject, `CN=` completed.
///
/// # Errors
/// What failed, with `openssl`'s message.
pub fn create_x509_dir(dir: &Path, g: &X509Generate, server_subj: &str) -> Result<(), String> {
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .ok_or_else(|| format!("{} has no parent directory", dir.display()))?;
    fs::create_dir_all(parent).map_err(|e| format!("creating {}: {e}", parent.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix(".spice-x509.")
        .tempdir_in(parent)
        .map_err(|e| format!("creating a directory in {}: {e}", parent.display()))?;
    let p = |name: &str| tmp.path().join(name).into_os_string();
    let bits = "3072";
    let days = "1095";
    let pass = "env:KVMTEST_X509_PASS";
    let mut steps: Vec<Vec<OsString>> = vec![
        argv(
            &["genrsa", "-aes256", "-passout", pass, "-out"],
            &[p("ca-key.pem")],
            &[bits],
        ),
        argv(
            &[
                "req", "-new", "-x509", "-days", days, "-passin", pass, "-key",
            ],
            &[p("ca-key.pem")],
            &["-subj", g.cacert_subj.as_str(), "-out"],
        ),
    ];
    steps[1].push(p("ca-cert.pem"));
    if g.secure {
        steps.push(argv(
            &["genrsa", "-aes256", "-passout", pass, "-out"],
            &[p("server-key.pem")],
            &[bits],
        ));
    } else {
        steps.push(argv(&["genrsa", "-out"], &[p("server-key.pem")], &[bits]));
    }
    let mut csr = argv(&["req", "-new", "-key"], &[p("server-key.pem")], &[]);
    if g.secure {
        csr.extend(["-passin", pass].map(OsString::from));
    }
    csr.extend(argv(
        &["-subj", server_subj, "-out"],
        &[p("server-key.csr")],
        &[],
    ));
    steps.push(csr);
    let mut sign = argv(
        &[
            "x509",
            "-req",
            "-days",
            days,
            "-set_serial",
            "01",
            "-passin",
            pass,
            "-in",
        ],
        &[p("server-key.csr")],
        &["-CA"],
    );
    sign.push(p("ca-cert.pem"));
    sign.push("-CAkey".into());
    sign.push(p("ca-key.pem"));
    sign.push("-out".into());
    sign.push(p("server-cert.pem"));
    steps.push(sign);
    for args in &steps {
        openssl(args, &g.key_password)?;
    }
    fs::remove_file(tmp.path().join("server-key.csr"))
        .map_err(|e| format!("removing the certificate request: {e}"))?;
    let made = tmp.keep();
    match fs::rename(&made, dir) {
        Ok(()) => Ok(()),
        // Another VM made it meanwhile: keep theirs (a VM may already use it).
        Err(_) if dir.is_dir() => {
            let _ = fs::remove_dir_all(&made);
            Ok(())
        }
        Err(e) => {
            let _ = fs::remove_dir_all(&made);
            Err(format!("moving the certificates to {}: {e}", dir.display()))
        }
    }
}

/// `head`, then the paths, then `tail`, as one argv.
fn argv(head: &[&str], paths: &[OsString], tail: &[&str]) -> Vec<OsString> {
    head.iter()
        .map(OsString::from)
        .chain(paths.iter().cloned())
        .chain(tail.iter().map(OsString::from))
        .collect()
}

/// Runs `openssl ARGS` with the passphrase in `KVMTEST_X509_PASS`; its stderr on failure.
fn openssl(args: &[OsString], passphrase: &str) -> Result<(), String> {
    // Certificate generation runs `openssl`, and nothing else (see the module docs).
    #[allow(clippy::disallowed_methods)]
    let out = Command::new("openssl")
        .args(args)
        .env("KVMTEST_X509_PASS", passphrase)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("running `openssl`: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let shown: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    Err(format!(
        "`openssl {}` failed ({}): {}",
        shown.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_route_and_interface_addresses() {
        let route =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                     eth0\t0002000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
                     eth0\t00000000\t0102000A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n";
        assert_eq!(default_route_interface(route).as_deref(), Some("eth0"));
        assert_eq!(default_route_interface("Iface\tDestination\n"), None);
        let v4 = "2: eth0    inet 10.0.2.15/24 brd 10.0.2.255 scope global eth0\\       valid_lft forever";
        assert_eq!(interface_address(v4, "inet").as_deref(), Some("10.0.2.15"));
        let v6 = "2: eth0    inet6 fd00::5/64 scope global \\       valid_lft forever";
        assert_eq!(interface_address(v6, "inet6").as_deref(), Some("fd00::5"));
        assert_eq!(interface_address("", "inet"), None);
    }

    #[test]
    fn a_given_host_address_is_taken_as_it_is() {
        let a = HostAddress {
            version: IpVersion::Ipv6,
            host_ip_addr: Some("192.0.2.9".into()),
            netdst: Some("nonexistent0".into()),
        };
        assert_eq!(host_address(&a).as_deref(), Ok("192.0.2.9"));
    }

    /// On this host: the default route's interface address, or an error saying what is missing.
    #[test]
    fn the_host_address_of_the_default_route() {
        let a = HostAddress {
            version: IpVersion::Ipv4,
            host_ip_addr: None,
            netdst: None,
        };
        match host_address(&a) {
            Ok(ip) => assert!(ip.parse::<Ipv4Addr>().is_ok(), "{ip}"),
            Err(e) => assert!(
                e.contains("no default route") || e.contains("has no ipv4 address"),
                "{e}"
            ),
        }
    }

    #[test]
    fn ports_are_claimed_free_and_released() {
        let dir = tempfile::tempdir().expect("tempdir");
        let run = dir.path().join("run");
        fs::create_dir(&run).expect("run dir");
        let reg = dir.path().join("ports");
        let free = TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0))
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let a = PortReservation::reserve((free, free), &reg, &run).expect("free port");
        assert_eq!(a.port(), free);
        let again = PortReservation::reserve((free, free), &reg, &run);
        assert!(again.is_err(), "claimed twice: {again:?}");
        drop(a);
        assert_eq!(
            fs::read_dir(&reg).expect("registry").count(),
            0,
            "claim released"
        );
        // A port something listens on is never handed out.
        let busy = TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0)).expect("bind");
        let taken = busy.local_addr().expect("addr").port();
        let r = PortReservation::reserve((taken, taken), &reg, &run);
        assert!(r.is_err(), "{r:?}");
    }
}

/// The certificates kvmtest generates are ones QEMU's SPICE server loads: the real QEMU
/// ([`qemu_cmd::probe::default_binary`]) starts with TLS on them (paused, `-S`) and quits over
/// QMP. A certificate it cannot load makes QEMU exit ("failed to initialize spice server").
#[cfg(test)]
mod qemu_accepts_the_certificates {
    use std::time::Duration;

    use qemu_cmd::accepts::start_and_quit;
    use qemu_cmd::probe::{default_binary, probe_cached};
    use qemu_cmd::{build, Params, RunPlan};

    use super::*;

    /// Builds the VM of `pairs` in `dir`, with its SPICE run values decided and its certificates
    /// prepared, starts it paused and quits it.
    fn start(dir: &Path, pairs: &[(&str, &str)]) -> Result<String, String> {
        let mut p = Params::new();
        for (k, v) in [
            ("vms", "vm1"),
            ("mem", "128"),
            ("monitors", "qmp1"),
            ("monitor_type", "qmp"),
            ("serials", ""),
            ("vm_accelerator", "tcg"),
            ("display", "spice"),
            ("spice_port", "generate"),
            ("spice_ssl", "yes"),
            ("spice_tls_port", "generate"),
            ("spice_gen_x509", "yes"),
            ("spice_x509_key_password", "testPassPhrase"),
            ("spice_x509_cacert_subj", "/C=CZ/L=BRNO/O=SPICE/CN=my CA"),
            (
                "spice_x509_server_subj",
                "/C=CZ/L=BRNO/O=SPICE/CN=my Server",
            ),
        ]
        .iter()
        .chain(pairs)
        {
            p.insert(*k, *v);
        }
        let spec = VmSpec::new(&p, "vm1").map_err(|e| e.to_string())?;
        let mut plan = RunPlan::in_dir(&spec, dir, None);
        let (run, _claims) = decide(&spec, dir)?;
        assert!(run.port.is_some() && run.tls_port.is_some(), "{run:?}");
        if let Some(v) = plan.values.as_mut() {
            v.spice = run;
        }
        let made = prepare_certificates(&spec, dir, dir)?;
        let x509 = x509_dir(&spec, dir, dir).ok_or("no x509 dir")?;
        assert_eq!(made.as_deref(), Some(x509.as_path()));
        for f in [
            "ca-key.pem",
            "ca-cert.pem",
            "server-key.pem",
            "server-cert.pem",
        ] {
            assert!(x509.join(f).is_file(), "{f} missing in {}", x509.display());
        }
        assert_eq!(
            prepare_certificates(&spec, dir, dir)?,
            None,
            "an existing directory is kept"
        );
        let bin = default_binary();
        let cache = dir.join("caps-cache");
        let caps = probe_cached(&bin, &cache).map_err(|e| e.to_string())?;
        let mut cmd = build(&spec, &plan, &caps).map_err(|e| e.to_string())?;
        cmd.set_program(&bin);
        let socket = dir.join(qemu_cmd::names::monitor_socket("qmp1"));
        start_and_quit(&cmd, &socket, Duration::from_secs(30))
            .map_err(|e| format!("{e}\n--- argv ---\n{}", cmd.render()))
    }

    #[test]
    fn x509_dir_with_an_encrypted_server_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let status = start(
            dir.path(),
            &[("spice_x509_dir", "yes"), ("spice_x509_secure", "yes")],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(status.contains("prelaunch"), "{status}");
        let key =
            fs::read_to_string(dir.path().join("spice-x509/server-key.pem")).expect("server key");
        assert!(key.contains("ENCRYPTED"), "the server key is not encrypted");
    }

    #[test]
    fn x509_files_under_a_relative_prefix() {
        let dir = tempfile::tempdir().expect("tempdir");
        let status = start(
            dir.path(),
            &[
                ("spice_x509_dir", "no"),
                ("spice_x509_prefix", "certs/spice_x509d"),
                ("spice_x509_key_file", "server-key.pem"),
                ("spice_x509_cacert_file", "ca-cert.pem"),
                ("spice_x509_cert_file", "server-cert.pem"),
            ],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(status.contains("prelaunch"), "{status}");
        let key = fs::read_to_string(dir.path().join("certs/spice_x509d/server-key.pem"))
            .expect("server key");
        assert!(!key.contains("ENCRYPTED"), "spice_x509_secure = no");
        let left: Vec<_> = fs::read_dir(dir.path().join("certs"))
            .expect("certs")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(left, ["spice_x509d"], "no temporary directory left");
    }
}
