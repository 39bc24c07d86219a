//! [`VmPlan`]: the run-specific choices for one VM instance, decided once, before its command
//! line is built, together with the resources that make them safe (the run directory and the
//! MAC reservations).
//!
//! Every choice is private to this VM or claimed atomically, so no host-wide lock is needed:
//! * the run directory is a fresh `kvmtest-NAME.XXXX` under the run base (its sockets live
//!   there; its `owner` file lets [`crate::sweep_stale`] recognise one left by a killed process);
//! * a NIC's MAC is `nic_mac` when the cfg gives one, the migration source's for a destination,
//!   else generated and reserved in the MAC registry ([`crate::net`]);
//! * a tap NIC's interface name is `nic_ifname`, else a short unique one;
//! * `uuid = random` gets a fresh UUID, a destination its source's (the guest reads it from
//!   SMBIOS);
//! * forwarded ports are 0 (the kernel picks one when QEMU binds; `vm` reads it back), VNC may
//!   take any display of [`VncRange::DEFAULT`] (read back with `query-vnc`);
//! * each vsock's guest CID is the first free one from 3 up, claimed on an open
//!   `/dev/vhost-vsock` that the plan holds and QEMU inherits (`vhostfd=`; see `vsock`);
//! * SPICE's `generate`d ports are free ports of avocado-vt's ranges, claimed in a port registry
//!   for the plan's life, and `listening_addr` the host's address ([`crate::spice`]);
//! * the accelerator, when the cfg names none, is the [`Qemu`]'s.
//!
//! [`VmPlan::plan`] is what `qemu_cmd::build` renders; the `vm` crate reads the same values
//! back (`Vm::get_mac`, `Vm::get_ifname`), so the command line and the VM layer cannot disagree.

use std::fs;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use qemu_cmd::{Incoming, NicRun, RunPlan, RunValues, VmSpec, VncRange, VsockRun};
use spec::vm::{NicMode, UuidSpec};

use crate::error::Error;
use crate::hostnet::{self, MacvtapLink};
use crate::net::{self, MacReservation};
use crate::privnet::{BridgeTap, PrivateBridge};
use crate::qemu::Qemu;
use crate::spice::PortReservation;
use crate::vsock::{self, VhostVsock};

/// What a plan is decided from, besides the spec.
#[derive(Debug, Clone)]
pub struct PlanOptions<'a> {
    /// Base of relative paths in the cfg (kernel, initrd, ISOs, floppy, the binary).
    pub root_dir: PathBuf,
    /// Base of relative `image_name`s; `None`: [`PlanOptions::root_dir`].
    pub image_dir: Option<PathBuf>,
    /// A migration destination copies the MACs (sharing their reservations) and the UUID of
    /// its source's plan.
    pub migration_source: Option<&'a VmPlan>,
    /// Start as a migration destination.
    pub incoming: Option<Incoming>,
    /// Start as the VM whose state was saved with this identity (a restore): its MACs
    /// (sharing their reservations) and UUID, as a migration destination takes its source's.
    pub restore: Option<&'a Identity>,
}

/// The guest-visible identity of a VM whose state was saved ([`VmPlan::identity`]): a VM
/// restored from that state must show the guest the same NIC MACs and UUID. It holds the
/// MAC reservations, so no other VM is given those MACs while the state may be restored.
#[derive(Debug, Clone)]
pub struct Identity {
    macs: Vec<net::MacAddr>,
    reservations: Vec<MacReservation>,
    uuid: spec::types::Uuid,
}

impl PlanOptions<'_> {
    /// Relative paths from `root_dir`, images too; not a migration destination.
    pub fn new(root_dir: impl Into<PathBuf>) -> PlanOptions<'static> {
        PlanOptions {
            root_dir: root_dir.into(),
            image_dir: None,
            migration_source: None,
            incoming: None,
            restore: None,
        }
    }
}

/// A decided plan and what it holds (see the module docs). Dropping it releases the MAC
/// reservations and removes the run directory.
#[derive(Debug)]
pub struct VmPlan {
    pub(crate) accel: Option<qemu_cmd::types::Accel>,
    pub(crate) incoming: Option<Incoming>,
    pub(crate) values: RunValues,
    pub(crate) instance: String,
    pub(crate) reservations: Vec<MacReservation>,
    name: String,
    /// The macvtap links of `nettype = macvtap` NICs and the fds QEMU inherits.
    macvtaps: Vec<(String, MacvtapLink)>,
    /// The taps of `nettype = bridge` NICs (fds QEMU inherits).
    bridge_taps: Vec<(String, BridgeTap)>,
    /// The private bridges of NICs (by NIC index) with `netdst_private = yes`.
    private_bridges: Vec<(usize, Arc<PrivateBridge>)>,
    /// The `/dev/vhost-vsock` fds holding each vsock's CID, which QEMU inherits.
    vsocks: Vec<VhostVsock>,
    /// The claims on SPICE's generated ports.
    spice_ports: Vec<PortReservation>,
    /// Dropped last: the sockets live here (`None` once released).
    run_dir: Option<tempfile::TempDir>,
}

impl VmPlan {
    /// Decides the plan of a VM of `spec` started by `qemu`.
    ///
    /// # Errors
    /// [`Error::Io`] creating the run directory or reserving a MAC.
    pub fn decide(qemu: &Qemu, spec: &VmSpec, opts: &PlanOptions<'_>) -> Result<VmPlan, Error> {
        let instance = new_instance();
        let run_base = run_base();
        let run_dir = tempfile::Builder::new()
            .prefix(&format!("kvmtest-{}.", spec.name))
            .tempdir_in(&run_base)
            .map_err(io_err("creating the run directory in", &run_base))?;
        sweep_stale(&run_base);
        fs::write(
            run_dir.path().join("owner"),
            format!("{}\n", std::process::id()),
        )
        .map_err(io_err("recording the owner in", run_dir.path()))?;

        // What a migration destination (its source's) or a restored VM (the saved one's) keeps:
        // the MACs with their reservations, and the UUID.
        let kept: Option<Identity> = opts
            .migration_source
            .map(VmPlan::identity)
            .or_else(|| opts.restore.cloned());
        let mut reservations = Vec::new();
        let mac_dir = net::mac_registry_dir();
        let mut nics = Vec::new();
        // Deleted again (links) and closed (fds) if a later step fails.
        let mut macvtaps = Vec::new();
        let mut bridge_taps = Vec::new();
        let mut private_bridges = Vec::new();
        for (index, nic) in spec.nics.iter().enumerate() {
            let kept_mac = kept.as_ref().and_then(|k| k.macs.get(index).copied());
            let mac = if let Some(given) = nic.mac {
                given
            } else if let (Some(mac), Some(k)) = (kept_mac, &kept) {
                if let Some(r) = k.reservations.iter().find(|r| r.mac() == mac) {
                    reservations.push(r.clone());
                }
                mac
            } else {
                let r = MacReservation::generate(&mac_dir, run_dir.path())
                    .map_err(io_err("reserving a MAC address in", &mac_dir))?;
                let mac = r.mac();
                reservations.push(r);
                mac
            };
            let ifname = nic
                .ifname
                .clone()
                .unwrap_or_else(|| net::default_ifname(index, &instance));
            let mut run = NicRun::new(mac, ifname);
            let host_err = |what: String| Error::HostNet {
                vm: spec.name.clone(),
                nic: nic.name.clone(),
                what,
            };
            match &nic.mode {
                NicMode::Macvtap { netdst, mode } => {
                    let link = MacvtapLink::create(
                        &run.ifname,
                        netdst,
                        mode,
                        &mac.to_string(),
                        nic.tuning.queues.unwrap_or(1),
                        nic.tuning.vhost == Some(true),
                    )
                    .map_err(host_err)?;
                    run.tap_fds = link.tap_fds();
                    run.vhost_fds = link.vhost_fds();
                    macvtaps.push((nic.name.clone(), link));
                }
                NicMode::Vdpa { netdst } => {
                    let sysfs = Path::new("/sys");
                    let dev = hostnet::vdpa_device(sysfs, netdst)
                        .ok_or_else(|| host_err(hostnet::no_vdpa_device(sysfs, netdst)))?;
                    run.vhostdev = Some(dev);
                }
                NicMode::Bridge { br, private } if nic.tuning.bridge_helper.is_none() => {
                    let bridge = match private {
                        Some(subnet) => Some(
                            PrivateBridge::acquire(br, *subnet, &run_base)
                                .map_err(|e| host_err(format!("`netdst_private = yes`: {e}")))?,
                        ),
                        None => None,
                    };
                    let tap = BridgeTap::open(
                        &run.ifname,
                        br,
                        bridge.as_deref(),
                        nic.tuning.queues.unwrap_or(1),
                        nic.tuning.vhost == Some(true),
                    )
                    .map_err(host_err)?;
                    run.tap_fds = tap.tap_fds();
                    run.vhost_fds = tap.vhost_fds();
                    bridge_taps.push((nic.name.clone(), tap));
                    if let Some(b) = bridge {
                        private_bridges.push((index, b));
                    }
                }
                NicMode::User | NicMode::Tap | NicMode::Bridge { .. } | NicMode::Passt(_) => {}
            }
            nics.push(run);
        }

        // Closed (CIDs freed) if a later step fails.
        let mut vsocks = Vec::new();
        let mut from = vsock::FIRST_GUEST_CID;
        for name in &spec.peripherals.vsocks {
            let held = VhostVsock::claim(Path::new(vsock::DEVICE), from).map_err(|what| {
                Error::HostFeature {
                    vm: spec.name.clone(),
                    feature: crate::error::HostFeature {
                        object: format!("vsock {name}"),
                        key: "vsocks".into(),
                        value: name.clone(),
                        what,
                    },
                }
            })?;
            from = held.cid().saturating_add(1);
            vsocks.push(held);
        }

        let uuid = match (&kept, &spec.uuid) {
            // A migration destination, or a VM restored from a saved state, is the same
            // machine: it keeps the UUID.
            (Some(k), _) => k.uuid.clone(),
            (None, Some(UuidSpec::Fixed(u))) => u.clone(),
            (None, _) => net::random_uuid().map_err(io_err("generating a UUID", run_dir.path()))?,
        };

        let (spice, spice_ports) =
            crate::spice::decide(spec, run_dir.path()).map_err(|what| Error::Spice {
                vm: spec.name.clone(),
                what,
            })?;

        let root_dir = opts.root_dir.clone();
        let image_dir = opts.image_dir.clone().unwrap_or_else(|| root_dir.clone());
        let values = RunValues {
            root_dir,
            image_dir,
            run_dir: run_dir.path().to_path_buf(),
            nics,
            uuid,
            vnc: VncRange::DEFAULT,
            // Every redir from host port 0: the kernel picks, `vm` reads it back.
            redir_ports: Vec::new(),
            migration_port: 0,
            pci_hosts: Vec::new(),
            vsocks: vsocks
                .iter()
                .map(|v| VsockRun {
                    cid: v.cid(),
                    vhostfd: Some(v.fd()),
                })
                .collect(),
            spice,
        };
        Ok(VmPlan {
            accel: qemu.accel(),
            incoming: opts.incoming.clone(),
            values,
            instance,
            reservations,
            name: spec.name.clone(),
            macvtaps,
            bridge_taps,
            private_bridges,
            vsocks,
            spice_ports,
            run_dir: Some(run_dir),
        })
    }

    /// The plan the command line is built from.
    pub fn plan(&self) -> RunPlan {
        RunPlan {
            accel: self.accel,
            incoming: self.incoming.clone(),
            values: Some(self.values.clone()),
        }
    }

    /// The run directory (sockets).
    pub fn run_dir(&self) -> &Path {
        &self.values.run_dir
    }

    /// Releases the MAC reservations and removes the run directory (at teardown, so a failure
    /// is reported; dropping the plan does the same silently).
    ///
    /// # Errors
    /// [`Error::Io`] removing the run directory.
    pub(crate) fn release(&mut self) -> Result<(), Error> {
        self.reservations.clear();
        self.spice_ports.clear();
        let mut failed = None;
        for (nic, link) in &mut self.macvtaps {
            if let Err(what) = link.delete() {
                failed.get_or_insert(Error::HostNet {
                    vm: self.name.clone(),
                    nic: nic.clone(),
                    what,
                });
            }
        }
        self.macvtaps.clear();
        self.bridge_taps.clear();
        self.private_bridges.clear();
        self.vsocks.clear();
        if let Some(e) = failed {
            return Err(e);
        }
        if let Some(dir) = self.run_dir.take() {
            let path = dir.path().to_path_buf();
            dir.close()
                .map_err(io_err("removing the run directory", &path))?;
        }
        Ok(())
    }

    /// The private bridge NIC `index` is in (`netdst_private = yes`), if any.
    pub fn private_bridge(&self, index: usize) -> Option<&Arc<PrivateBridge>> {
        self.private_bridges
            .iter()
            .find(|(i, _)| *i == index)
            .map(|(_, b)| b)
    }

    /// The instance id (timestamp and random part): log directories are named after it.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// What a VM restored from this VM's saved state must have again (MACs with their
    /// reservations, UUID).
    pub fn identity(&self) -> Identity {
        Identity {
            macs: self.values.nics.iter().map(|n| n.mac).collect(),
            reservations: self.reservations.clone(),
            uuid: self.values.uuid.clone(),
        }
    }

    /// The decided values.
    pub fn values(&self) -> &RunValues {
        &self.values
    }

    /// Whether the VM waits for an incoming migration.
    pub fn incoming(&self) -> Option<&Incoming> {
        self.incoming.as_ref()
    }

    /// The fds QEMU inherits (every macvtap NIC's tap and vhost-net fds, every vsock's
    /// `/dev/vhost-vsock`).
    pub(crate) fn inherited_fds(&self) -> Vec<RawFd> {
        self.macvtaps
            .iter()
            .flat_map(|(_, l)| l.tap_fds().into_iter().chain(l.vhost_fds()))
            .chain(
                self.bridge_taps
                    .iter()
                    .flat_map(|(_, t)| t.tap_fds().into_iter().chain(t.vhost_fds())),
            )
            .chain(self.vsocks.iter().map(VhostVsock::fd))
            .collect()
    }
}

fn io_err(what: &str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.to_string();
    let path = path.to_path_buf();
    move |source| Error::Io { what, path, source }
}

fn new_instance() -> String {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let r = rand::random::<u32>();
    format!("{t}-{r:08x}")
}

/// Removes what VMs of dead kvmtest processes left behind (a SIGKILLed kvmtest runs no
/// destructors; its QEMU died with it): run directories under `run_base` whose `owner` pid is gone,
/// and MAC and port reservations whose owner is gone. Called by every [`VmPlan::decide`]; safe to call
/// concurrently (removal races are ignored).
pub fn sweep_stale(run_base: &Path) {
    let alive = |pid: &str| Path::new(&format!("/proc/{}", pid.trim())).exists();
    if let Ok(entries) = fs::read_dir(run_base) {
        for e in entries.flatten() {
            let path = e.path();
            let is_ours = e.file_name().to_string_lossy().starts_with("kvmtest-");
            if !is_ours {
                continue;
            }
            if let Ok(owner) = fs::read_to_string(path.join("owner")) {
                if !owner.trim().is_empty() && !alive(&owner) {
                    let _ = fs::remove_dir_all(&path);
                }
            }
        }
    }
    net::sweep_stale_macs(&net::mac_registry_dir());
    net::sweep_stale_macs(&crate::spice::port_registry_dir());
}

/// The default base of run directories: `KVMTEST_RUN_DIR`, else the temp dir.
pub fn run_base() -> PathBuf {
    match std::env::var_os("KVMTEST_RUN_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => std::env::temp_dir(),
    }
}
