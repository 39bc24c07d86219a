//! [`Vm`]: one QEMU guest, owned from spawn to teardown.
//!
//! [`Vm::create`] follows the old framework's order — check cdrom ISOs, choose ports, MACs, netdev
//! ids and the UUID, build the argv, spawn, connect the monitors, look for known failures in
//! QEMU's output, open the serial console — without its host-wide lock: every choice is either
//! private to this VM (run directory, unix sockets) or made atomically by the kernel (ports) or
//! the filesystem (MAC reservations). A `Vm` owns its process group, run directory, sockets, MAC
//! reservations and log directory; [`Vm::destroy`] is the graceful, staged, logged teardown and
//! `Drop` the non-blocking SIGKILL safety net.
//!
//! This file holds the VM, its settings and its accessors; the rest is one file per part of its
//! life: `start` (spawn and connect), `iso` (CD-ROM checks), `login` (sessions, reboots),
//! `agent` (the guest agent), `hotplug`, `migrate`, `teardown`.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use monitor::{
    EventFilter, HmpClient, HmpConfig, HumanMonitor, QgaClient, QgaConfig, QmpClient, QmpConfig,
};
use params::Params;
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;
use tokio::net::UnixStream;

use crate::error::{secs, tail_lines, Error, SessionError};
use crate::net::{self, MacAddr, MacReservation};
use crate::plan::{PlanOptions, VmPlan};
use crate::process::{OwnedProcess, ProcessState};
use crate::qemu::Qemu;
use crate::session::{
    RawTcpTransport, SerialShared, SerialTransport, Session, SessionSpec, SshTransport,
    TelnetTransport, Transport,
};
use spec::types::{DisplayKind, MonitorKind};
use spec::vm::ChecksumAlgo;
use spec::{NicMode, NicSpec, ShellClient, Teardown, VmSpec};

mod agent;
mod hotplug;
mod iso;
mod log_lines;
mod login;
mod migrate;
mod nics;
mod snapshot;
mod vcpu;
pub use log_lines::LogSpan;
pub use nics::NicIds;
pub use snapshot::SavedState;
pub use vcpu::HotVcpu;
mod start;
mod teardown;

/// Bounds for every stage of a VM's life.
#[derive(Debug, Clone)]
pub struct Timeouts {
    /// Connecting each monitor and the serial console (QEMU creating the sockets).
    pub connect: Duration,
    /// Guest `shutdown_command` until QEMU exits.
    pub guest_shutdown: Duration,
    /// `system_powerdown` until QEMU exits.
    pub powerdown: Duration,
    /// QMP `quit` until QEMU exits.
    pub quit: Duration,
    /// SIGKILL until the process is reaped.
    pub kill: Duration,
    /// A hotplug or unplug until confirmed.
    pub hotplug: Duration,
    /// A migration until both sides report success.
    pub migrate: Duration,
    /// Connecting the guest agent and its first `guest-sync-delimited` (the agent answers
    /// once the guest has started it).
    pub agent: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(20),
            guest_shutdown: Duration::from_secs(60),
            powerdown: Duration::from_secs(30),
            quit: Duration::from_secs(10),
            kill: Duration::from_secs(5),
            hotplug: Duration::from_secs(30),
            migrate: Duration::from_secs(120),
            agent: Duration::from_secs(60),
        }
    }
}

/// What to create, besides its [`VmPlan`]: the VM's hardware and session settings, read once
/// from the params, where it logs, and the bounds of its stages.
#[derive(Debug, Clone)]
pub struct VmSetup {
    /// The hardware.
    pub spec: VmSpec,
    /// How tests reach its shell.
    pub session: SessionSpec,
    /// Where the VM's log directory is created (kept after teardown).
    pub log_dir: PathBuf,
    /// Stage bounds.
    pub timeouts: Timeouts,
}

impl VmSetup {
    /// VM `vm` of a variant's `params`: its [`VmSpec`] and [`SessionSpec`], every bad key of
    /// both reported at once; default timeouts.
    ///
    /// # Errors
    /// [`Error::Spec`] listing every problem.
    pub fn from_params(
        params: &Params,
        vm: &str,
        log_dir: impl Into<PathBuf>,
    ) -> Result<VmSetup, Error> {
        let mut problems = Vec::new();
        let mut keep = |e: spec::SpecError| problems.extend(e.problems().iter().cloned());
        let spec = VmSpec::new(params, vm).map_err(&mut keep).ok();
        let session = SessionSpec::of(params, vm).map_err(&mut keep).ok();
        match (spec, session) {
            (Some(mut spec), Some(session)) => Ok(VmSetup {
                spec: {
                    with_control_monitor(&mut spec);
                    spec
                },
                session,
                log_dir: log_dir.into(),
                timeouts: Timeouts::default(),
            }),
            _ => Err(Error::Spec(
                spec::into_result((), vm, problems)
                    .err()
                    .unwrap_or_else(|| spec::SpecError::NoSuchVm(vm.to_string())),
            )),
        }
    }
}

/// The QMP monitor the VM layer adds when `monitors` has none (an HMP-only VM): kvmtest drives
/// every VM over QMP, and the cfg's own monitors stay as they are.
pub const CONTROL_MONITOR: &str = "kvmtest";

/// Adds [`CONTROL_MONITOR`] to `spec` when it has no QMP monitor (idempotent).
pub fn with_control_monitor(spec: &mut VmSpec) {
    if !spec.monitors.iter().any(|m| m.kind == MonitorKind::Qmp) {
        spec.monitors.push(spec::MonitorSpec {
            name: CONTROL_MONITOR.into(),
            kind: MonitorKind::Qmp,
        });
    }
}

/// The stage that ended QEMU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoppedBy {
    /// It had already exited.
    AlreadyExited,
    /// The guest's `shutdown_command`.
    GuestCommand,
    /// `system_powerdown` (ACPI power button).
    Powerdown,
    /// QMP `quit`.
    Quit,
    /// SIGKILL of the process group.
    Kill,
}

/// How the guest is reached for a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The serial console.
    Serial,
    /// `shell_client` (telnet, nc or ssh) to `shell_port` via NIC `nic`.
    Remote {
        /// The NIC index.
        nic: usize,
    },
}

/// How [`Vm::reboot`] reboots.
#[derive(Debug)]
pub enum RebootMethod {
    /// Run `reboot_command` (default `reboot`) in this session.
    Shell(Box<Session>),
    /// QMP `system_reset`.
    SystemReset,
}

/// What [`Vm::migrate_opts`] does: the protocol and avocado-vt's migration knobs.
#[derive(Debug, Clone)]
pub struct MigrationOptions {
    /// How the state moves.
    pub protocol: MigrationProtocol,
    /// Stop the guest before the state is sent (tp-qemu's `offline`).
    pub offline: bool,
    /// Cancel the migration this long after it started (tp-qemu's `mig_cancel`, whose delay is
    /// 2 s) and check that it was cancelled: the source keeps running, the destination goes.
    /// Without `max_bandwidth`, the bandwidth is capped at 1 MiB/s first, so that a small guest
    /// cannot finish before the cancel arrives.
    pub cancel_after: Option<Duration>,
    /// `migration_exec_cmd_src` / `migration_exec_cmd_dst` for [`MigrationProtocol::Exec`]:
    /// shell commands (QEMU runs `exec:` URIs with `/bin/sh -c`), `%s` replaced by the state
    /// file; unset: `cat > FILE` / `cat FILE`.
    pub exec_commands: Option<(String, String)>,
    /// `max-bandwidth` in bytes per second (`mig_speed`).
    pub max_bandwidth: Option<u64>,
    /// Migration capabilities set on both sides first (`migrate_capabilities`).
    pub capabilities: Vec<(String, bool)>,
    /// How long the migration may take ([`crate::Timeouts::migrate`] by default).
    pub timeout: Option<Duration>,
}

impl MigrationOptions {
    /// A plain live migration over `protocol`.
    pub fn new(protocol: MigrationProtocol) -> MigrationOptions {
        MigrationOptions {
            protocol,
            offline: false,
            cancel_after: None,
            exec_commands: None,
            max_bandwidth: None,
            capabilities: Vec::new(),
            timeout: None,
        }
    }
}

/// What a migration measured: the source's last `query-migrate` figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationReport {
    /// The URI the state went through.
    pub uri: String,
    /// Whether it was cancelled (as asked by [`MigrationOptions::cancel_after`]).
    pub cancelled: bool,
    /// QEMU's `total-time` (ms).
    pub total_time_ms: Option<u64>,
    /// QEMU's `downtime` (ms): how long the guest was stopped.
    pub downtime_ms: Option<u64>,
    /// QEMU's `setup-time` (ms).
    pub setup_time_ms: Option<u64>,
    /// RAM bytes transferred.
    pub transferred_bytes: Option<u64>,
    /// Wall-clock time of the whole operation, destination start included (ms).
    pub wall_ms: u64,
}

/// How a migration moves the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MigrationProtocol {
    /// TCP on a kernel-chosen loopback port, read back from the destination.
    Tcp,
    /// A unix socket in the destination's run directory.
    Unix,
    /// Offline through a file: the source writes it (`exec:cat > FILE`), then the destination
    /// reads it (`exec:cat FILE`).
    Exec,
}

/// A hotplugged NIC.
#[derive(Debug, Clone)]
pub struct HotNic {
    /// The device id.
    pub id: String,
    /// The netdev id.
    pub netdev_id: String,
    /// Its MAC.
    pub mac: MacAddr,
    /// The device model (`virtio-net-pci`, `e1000`…).
    pub model: String,
}

/// A hotplugged disk.
#[derive(Debug, Clone)]
pub struct HotDisk {
    /// The device id.
    pub id: String,
    /// The block node name.
    pub node_name: String,
    /// The id of the controller plugged for it (a SCSI disk's HBA), unplugged after it.
    pub controller: Option<String>,
}

/// A disk to hot-plug: its image and the device (and controller) that carries it.
#[derive(Debug, Clone, Default)]
pub struct DiskPlug {
    /// The image file.
    pub path: PathBuf,
    /// Its format (the block driver: `qcow2`, `raw`…).
    pub format: String,
    /// The device driver (`virtio-blk-pci`, `scsi-hd`…).
    pub driver: String,
    /// A controller model to plug first, the disk on its bus (`virtio-scsi-pci`).
    pub controller: Option<String>,
    /// Extra `device_add` properties of the disk (`iothread` = `iothread0`).
    pub device_props: Vec<(String, String)>,
    /// Extra `device_add` properties of the controller.
    pub controller_props: Vec<(String, String)>,
}

impl DiskPlug {
    /// `path` in `format` on a `driver` device, no controller, no extra properties.
    pub fn new(path: impl Into<PathBuf>, format: &str, driver: &str) -> DiskPlug {
        DiskPlug {
            path: path.into(),
            format: format.to_owned(),
            driver: driver.to_owned(),
            ..DiskPlug::default()
        }
    }
}

/// The VM's own log (`vm.log`): every stage with a timestamp.
#[derive(Debug)]
struct VmLog {
    file: Option<File>,
    started: Instant,
}

impl VmLog {
    fn line(&mut self, text: &str) {
        tracing::info!(target: "kvmtest::vm", "{text}");
        let t = self.started.elapsed().as_secs_f64();
        if let Some(f) = &mut self.file {
            // One write per line: lines of the other writers never land inside it.
            let _ = f.write_all(format!("[+{t:8.3}s] {text}\n").as_bytes());
        }
    }
}

/// The serial console: QEMU's socket, read continuously into `serial.log`.
#[derive(Debug)]
struct SerialConsole {
    writer: Arc<tokio::sync::Mutex<tokio::net::unix::OwnedWriteHalf>>,
    shared: Arc<SerialShared>,
    pump: tokio::task::JoinHandle<()>,
}

impl Drop for SerialConsole {
    fn drop(&mut self) {
        self.pump.abort();
    }
}

/// A running QEMU guest.
pub struct Vm {
    name: String,
    /// Spec, session settings, log dir, timeouts: read once at creation.
    setup: VmSetup,
    qemu: Arc<Qemu>,
    argv: Vec<OsString>,
    /// The stable rendering of the argv (run-specific parts as placeholders).
    stable_cmdline: String,
    process: OwnedProcess,
    qmp: QmpClient,
    hmps: Vec<(String, HmpClient)>,
    serial: Option<SerialConsole>,
    /// Where the console's and QEMU's output lines go as tracing events.
    log_span: LogSpan,
    /// QEMU's output file followed for those events.
    _output_tail: Option<log_lines::OutputTail>,
    /// (guest port, host port).
    redirs: Vec<(u16, u16)>,
    /// The VNC server's TCP port (`query-vnc`), if QEMU serves VNC.
    vnc_port: Option<u16>,
    hot_nics: Vec<HotNic>,
    /// The host side of hot-plugged NICs by device id: their taps (closed, so deleted, when
    /// the entry goes) and the private bridges they joined.
    hot_nic_hosts: Vec<(String, hotplug::HotNicHost)>,
    /// passt processes serving `nettype = user:passt` NICs (NIC name, process); killed on drop.
    passts: Vec<(String, OwnedProcess)>,
    /// swtpm and virtiofsd processes of its TPMs and file systems; killed on drop.
    daemons: crate::daemons::Daemons,
    log: VmLog,
    log_dir: PathBuf,
    session_count: u32,
    /// The guest agent's connection, once [`Vm::guest_agent`] made it.
    agent: Option<QgaClient>,
    /// Guest-agent connections made so far (each has its own transcript).
    agent_connections: u32,
    /// Dropped last: the run directory (sockets) and MAC reservations live here.
    plan: VmPlan,
}

impl std::fmt::Debug for Vm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vm")
            .field("name", &self.name)
            .field("pid", &self.process.pid())
            .field("run_dir", &self.plan.run_dir())
            .field("log_dir", &self.log_dir)
            .finish_non_exhaustive()
    }
}

impl Vm {
    /// The VM's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the VM was created from: spec, session settings, log dir, timeouts.
    pub fn setup(&self) -> &VmSetup {
        &self.setup
    }

    /// Its hardware, as read from the params.
    pub fn spec(&self) -> &VmSpec {
        &self.setup.spec
    }

    /// The QEMU binary it runs on.
    pub fn qemu(&self) -> &Arc<Qemu> {
        &self.qemu
    }

    /// QEMU's pid (also its process group id).
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The pid of the passt serving NIC `nic` (`nettype = user:passt`), until teardown.
    pub fn passt_pid(&self, nic: &str) -> Option<u32> {
        self.passts
            .iter()
            .find(|(n, _)| n == nic)
            .map(|(_, p)| p.pid())
    }

    /// The pids of the daemons kvmtest started beside QEMU (swtpm, virtiofsd), with what each
    /// serves, until teardown.
    pub fn daemon_pids(&self) -> Vec<(String, u32)> {
        self.daemons.pids()
    }

    /// The argv QEMU was started with.
    pub fn argv(&self) -> &[OsString] {
        &self.argv
    }

    /// The argv as rendered for review: run-specific parts as placeholders. Two VMs of
    /// the same spec on the same QEMU render the same text ([`Qemu::fingerprint`] of the spec).
    pub fn stable_cmdline(&self) -> &str {
        &self.stable_cmdline
    }

    /// The run-specific choices it was started with (run dir, MACs, tap names, UUID…).
    pub fn plan(&self) -> &VmPlan {
        &self.plan
    }

    /// The private run directory (sockets); removed on teardown.
    pub fn run_dir(&self) -> &Path {
        self.plan.run_dir()
    }

    /// The unix sockets QEMU serves in the run directory: each monitor's, then each serial
    /// port's but the SPICE channels' (names from [`qemu_cmd::names`], as the command line has
    /// them).
    pub fn sockets(&self) -> Vec<PathBuf> {
        let spec = &self.setup.spec;
        let run = self.plan.run_dir();
        spec.monitors
            .iter()
            .map(|m| run.join(qemu_cmd::names::monitor_socket(&m.name)))
            .chain(
                spec.serials
                    .iter()
                    .filter(|s| s.is_socket())
                    .map(|s| run.join(qemu_cmd::names::serial_socket(&s.name))),
            )
            .collect()
    }

    /// The span whose events the serial console's lines (`kvmtest::serial`) and QEMU's output
    /// lines (`kvmtest::qemu`) become: the one current at creation until set. Clones share it,
    /// so a holder can move it along without the VM (a test runner, from test to test).
    pub fn log_span(&self) -> &LogSpan {
        &self.log_span
    }

    /// The log directory (`vm.log`, `qemu.log`, `serial.log`, transcripts, sessions); kept.
    pub fn log_dir(&self) -> &Path {
        &self.log_dir
    }

    /// The QMP monitor (the first of `monitors` with `monitor_type = qmp`).
    pub fn monitor(&self) -> &QmpClient {
        &self.qmp
    }

    /// The human monitor named `name`, if the params list one.
    pub fn human_monitor(&self, name: &str) -> Option<&HmpClient> {
        self.hmps.iter().find(|(n, _)| n == name).map(|(_, c)| c)
    }

    /// Whether QEMU still runs.
    pub fn is_alive(&self) -> bool {
        self.process.state() == ProcessState::Running
    }

    /// The TCP port of the VM's VNC server (`display = vnc`), as QEMU reports it (`query-vnc`);
    /// `None` without VNC. The display number is the port minus 5900.
    pub fn vnc_port(&self) -> Option<u16> {
        self.vnc_port
    }

    /// The SPICE server's port (`display = spice`): `spice_port` as given, or the one this run's
    /// plan generated (avocado-vt's `get_spice_var("spice_port")`); `None` without one.
    pub fn spice_port(&self) -> Option<u16> {
        let s = self.setup.spec.spice.as_ref()?;
        spice_port_of(s.port, self.plan.values().spice.port)
    }

    /// The SPICE server's TLS port (`spice_ssl = yes`): `spice_tls_port` as given, or the one
    /// this run's plan generated; `None` without one.
    pub fn spice_tls_port(&self) -> Option<u16> {
        let tls = self.setup.spec.spice.as_ref()?.tls.as_ref()?;
        spice_port_of(tls.port, self.plan.values().spice.tls_port)
    }

    /// The host port forwarded to `guest_port` (user mode), or `guest_port` itself for a tap or
    /// bridged NIC.
    ///
    /// # Errors
    /// [`Error::PortNotRedirected`], [`Error::NoSuchNic`].
    pub fn get_port(&self, guest_port: u16, nic_index: usize) -> Result<u16, Error> {
        if self.nic(nic_index)?.0.mode != NicMode::User {
            return Ok(guest_port);
        }
        self.redirs
            .iter()
            .find(|(g, _)| *g == guest_port)
            .map(|(_, h)| *h)
            .ok_or_else(|| Error::PortNotRedirected {
                vm: self.name.clone(),
                guest_port,
                redirected: self.redirs.iter().map(|(g, _)| *g).collect(),
            })
    }

    /// The guest CID of vsock `name` (an entry of `vsocks`), as the plan claimed it on the host:
    /// the address a test connects to; `None` for a name the VM has no vsock of.
    pub fn vsock_cid(&self, name: &str) -> Option<u32> {
        let at = self
            .setup
            .spec
            .peripherals
            .vsocks
            .iter()
            .position(|v| v == name)?;
        self.plan.values().vsocks.get(at).map(|v| v.cid)
    }

    /// The tap interface name of NIC `index` (`nic_ifname`, or a short unique name).
    ///
    /// # Errors
    /// [`Error::NoSuchNic`].
    pub fn get_ifname(&self, index: usize) -> Result<&str, Error> {
        Ok(&self.nic(index)?.1.ifname)
    }

    fn monitor_err(&self, what: impl Into<String>) -> impl FnOnce(monitor::Error) -> Error + '_ {
        let what = what.into();
        move |source| Error::Monitor {
            vm: self.name.clone(),
            what,
            source: Box::new(source),
        }
    }

    async fn qmp_exec(&self, command: &str, args: Value) -> Result<Value, Error> {
        self.log_line(&format!("QMP {command} {args}"));
        self.qmp
            .execute(command, args)
            .await
            .map_err(self.monitor_err(format!("QMP {command}")))
    }

    fn log_line(&self, text: &str) {
        tracing::info!(target: "kvmtest::vm", vm = %self.name, "{text}");
        // Logging takes &self: reopen in append mode (rare, small writes).
        if let Ok(mut f) = File::options()
            .append(true)
            .open(self.log_dir.join("vm.log"))
        {
            let t = self.log.started.elapsed().as_secs_f64();
            let _ = f.write_all(format!("[+{t:8.3}s] {text}\n").as_bytes());
        }
    }

    /// Pauses the guest (`stop`, confirmed by the `STOP` event).
    ///
    /// # Errors
    /// Monitor errors.
    pub async fn pause(&self) -> Result<(), Error> {
        let mark = self.qmp.cursor();
        self.qmp_exec("stop", json!({})).await?;
        self.qmp
            .wait_event(
                EventFilter::new("STOP").since(mark),
                Duration::from_secs(10),
            )
            .await
            .map_err(self.monitor_err("waiting for STOP"))?;
        Ok(())
    }

    /// Resumes the guest (`cont`, confirmed by the `RESUME` event).
    ///
    /// # Errors
    /// Monitor errors.
    pub async fn resume(&self) -> Result<(), Error> {
        let mark = self.qmp.cursor();
        self.qmp_exec("cont", json!({})).await?;
        self.qmp
            .wait_event(
                EventFilter::new("RESUME").since(mark),
                Duration::from_secs(10),
            )
            .await
            .map_err(self.monitor_err("waiting for RESUME"))?;
        Ok(())
    }

    /// QEMU's run state (`query-status`), e.g. `running`, `paused`, `postmigrate`.
    ///
    /// # Errors
    /// Monitor errors.
    pub async fn status(&self) -> Result<String, Error> {
        let r = self.qmp_exec("query-status", json!({})).await?;
        r.get("status")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| Error::UnexpectedReply {
                vm: self.name.clone(),
                command: "query-status".into(),
                reply: r.to_string(),
            })
    }

    /// The last `n` lines of QEMU's stdout/stderr.
    pub fn output_tail(&self, n: usize) -> String {
        tail_lines(
            &fs::read_to_string(self.process.output_log()).unwrap_or_default(),
            n,
        )
    }

    /// QEMU's output, the serial log and the VM log between clear markers, for failure reports.
    pub fn debug_report(&self) -> String {
        let mut out = String::new();
        for (title, file) in [
            ("QEMU output", "qemu.log"),
            ("serial console", "serial.log"),
            ("VM log", "vm.log"),
        ] {
            let text = fs::read_to_string(self.log_dir.join(file)).unwrap_or_default();
            out.push_str(&format!(
                "---- {title} of {} ({}) ----\n{}\n---- end of {title} ----\n",
                self.name,
                self.log_dir.join(file).display(),
                tail_lines(&text, 60)
            ));
        }
        out
    }
}

fn io_err(what: impl Into<String>, path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    let what = what.into();
    move |source| Error::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// Known fatal messages in QEMU's output.
fn classify_output(vm: &str, text: &str) -> Option<Error> {
    let lower = text.to_lowercase();
    let tail = tail_lines(text, 20);
    if lower.contains("could not initialize kvm") || lower.contains("failed to initialize kvm") {
        return Some(Error::KvmUnavailable {
            vm: vm.into(),
            stderr_tail: tail,
        });
    }
    if lower.contains("alloc_mem_area")
        || (lower.contains("hugepage") && (lower.contains("alloc") || lower.contains("memory")))
        || lower.contains("insufficient free host memory pages")
    {
        return Some(Error::HugepageAllocation {
            vm: vm.into(),
            stderr_tail: tail,
        });
    }
    None
}

fn short_id(prefix: &str) -> String {
    let r = rand::random::<u32>();
    format!("{prefix}{r:08x}")
}

/// A SPICE port key's port: fixed, or the generated one.
fn spice_port_of(key: Option<spec::SpicePort>, generated: Option<u16>) -> Option<u16> {
    match key? {
        spec::SpicePort::Fixed(p) => Some(p),
        spec::SpicePort::Generate => generated,
    }
}
