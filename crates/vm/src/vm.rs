//! [`Vm`]: one QEMU guest, owned from spawn to teardown.
//!
//! [`Vm::create`] follows the old framework's order — check cdrom ISOs, choose ports, MACs, netdev
//! ids and the UUID, build the argv, spawn, connect the monitors, look for known failures in
//! QEMU's output, open the serial console — without its host-wide lock: every choice is either
//! private to this VM (run directory, unix sockets) or made atomically by the kernel (ports) or
//! the filesystem (MAC reservations). A `Vm` owns its process group, run directory, sockets, MAC
//! reservations and log directory; [`Vm::destroy`] is the graceful, staged, logged teardown and
//! `Drop` the non-blocking SIGKILL safety net.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use monitor::{EventFilter, HmpClient, HmpConfig, HumanMonitor, QmpClient, QmpConfig};
use params::Params;
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;
use tokio::net::UnixStream;

use crate::error::{secs, Error, SessionError};
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
use spec::{NicMode, NicSpec, ShellClient, VmSpec};

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
        let session = SessionSpec::read(&params.object_params(vm), vm)
            .map_err(&mut keep)
            .ok();
        match (spec, session) {
            (Some(spec), Some(session)) => Ok(VmSetup {
                spec,
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

/// How a destroyed VM went down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Teardown {
    /// The guest's `shutdown_command`, then `system_powerdown`, then `quit`, then SIGKILL.
    Graceful,
    /// `quit`, then SIGKILL.
    Quick,
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
}

/// The VM's own log (`vm.log`): every stage with a timestamp.
#[derive(Debug)]
struct VmLog {
    file: Option<File>,
    started: Instant,
}

impl VmLog {
    fn line(&mut self, text: &str) {
        let t = self.started.elapsed().as_secs_f64();
        if let Some(f) = &mut self.file {
            let _ = writeln!(f, "[+{t:8.3}s] {text}");
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
    /// (guest port, host port).
    redirs: Vec<(u16, u16)>,
    /// The VNC server's TCP port (`query-vnc`), if QEMU serves VNC.
    vnc_port: Option<u16>,
    hot_nics: Vec<HotNic>,
    log: VmLog,
    log_dir: PathBuf,
    session_count: u32,
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

fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn short_id(prefix: &str) -> String {
    let r = getrandom::u32().unwrap_or_else(|_| std::process::id());
    format!("{prefix}{r:08x}")
}

impl Vm {
    /// Decides a plan for `setup`'s VM ([`VmPlan::decide`]) and starts it.
    ///
    /// # Errors
    /// As [`VmPlan::decide`] and [`Vm::create`].
    pub async fn start(
        qemu: Arc<Qemu>,
        setup: VmSetup,
        opts: &PlanOptions<'_>,
    ) -> Result<Vm, Error> {
        let plan = VmPlan::decide(&qemu, &setup.spec, opts)?;
        Vm::create(qemu, setup, plan).await
    }

    /// Creates and starts the VM of `setup` as `plan` decided: checks the CD-ROM ISOs, builds
    /// the command line, spawns QEMU in its own process group, connects the serial console and
    /// the monitors, looks for known failures in QEMU's output, and reads back the ports the
    /// kernel chose.
    ///
    /// # Errors
    /// ISO, command-line, spawn, monitor and known-QEMU-failure errors, each naming the VM.
    pub async fn create(qemu: Arc<Qemu>, setup: VmSetup, plan: VmPlan) -> Result<Vm, Error> {
        let name = setup.spec.name.clone();
        let spec = &setup.spec;
        if !spec.monitors.iter().any(|m| m.kind == MonitorKind::Qmp) {
            return Err(Error::NoQmpMonitor { vm: name });
        }
        check_isos(&name, spec, &plan.values().root_dir)?;

        let log_dir = setup.log_dir.join(format!("{name}-{}", plan.instance()));
        fs::create_dir_all(&log_dir).map_err(io_err("creating the log directory", &log_dir))?;
        let mut log = VmLog {
            file: File::create(log_dir.join("vm.log")).ok(),
            started: Instant::now(),
        };
        log.line(&format!(
            "creating VM {name}: instance {}, run dir {}",
            plan.instance(),
            plan.run_dir().display()
        ));
        let cmd = qemu
            .command(spec, &plan.plan())
            .map_err(|source| Error::Argv {
                vm: name.clone(),
                source: Box::new(source),
            })?;
        let argv = cmd.argv();
        let stable_cmdline = cmd.render_stable();
        log.line(&format!("argv: {}", qemu_cmd::render_argv(&argv)));

        let output_log = log_dir.join("qemu.log");
        let started = Instant::now();
        let process = OwnedProcess::spawn(&argv, &output_log).map_err(|source| Error::Spawn {
            vm: name.clone(),
            program: argv
                .first()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default(),
            source,
        })?;
        log.line(&format!(
            "spawned pid {} (its own process group)",
            process.pid()
        ));

        let mut ctx = Starting {
            name: &name,
            process: &process,
            log: &mut log,
            timeouts: &setup.timeouts,
        };
        let run_dir = plan.run_dir();
        // The serial console first: with `wait=on` QEMU waits for it before anything else.
        let serial = match spec.serials.first() {
            Some(s) => Some(
                ctx.open_serial(
                    &run_dir.join(qemu_cmd::names::serial_socket(s)),
                    &log_dir.join("serial.log"),
                )
                .await?,
            ),
            None => None,
        };
        let mut qmp = None;
        let mut hmps = Vec::new();
        for m in &spec.monitors {
            let socket = run_dir.join(qemu_cmd::names::monitor_socket(&m.name));
            match m.kind {
                MonitorKind::Qmp => {
                    let client = ctx
                        .connect_qmp(&socket, &log_dir.join(format!("qmp-{}.jsonl", m.name)))
                        .await?;
                    if qmp.is_none() {
                        qmp = Some(client);
                    }
                }
                MonitorKind::Human => {
                    let client = ctx
                        .connect_hmp(&socket, &log_dir.join(format!("hmp-{}.jsonl", m.name)))
                        .await?;
                    hmps.push((m.name.clone(), client));
                }
            }
        }
        let Some(qmp) = qmp else {
            return Err(Error::NoQmpMonitor { vm: name });
        };
        // Known failures that QEMU reports but survives, or reported just before exiting.
        let text = fs::read_to_string(&output_log).unwrap_or_default();
        if let Some(e) = classify_output(&name, &text) {
            return Err(e);
        }
        let guest_ports: Vec<u16> = spec.redirs.iter().map(|r| r.guest_port).collect();
        let redirs = if guest_ports.is_empty() {
            Vec::new()
        } else {
            ctx.read_redirs(&qmp, &guest_ports).await?
        };
        let vnc_port = if spec.display == Some(DisplayKind::Vnc) {
            ctx.read_vnc_port(&qmp).await?
        } else {
            None
        };
        log.line(&format!(
            "VM alive: pid {}, monitors connected in {}, redirs {redirs:?}, vnc port {vnc_port:?}",
            process.pid(),
            secs(&started.elapsed())
        ));
        Ok(Vm {
            name,
            setup,
            qemu,
            argv,
            stable_cmdline,
            process,
            qmp,
            hmps,
            serial,
            redirs,
            vnc_port,
            hot_nics: Vec::new(),
            log,
            log_dir,
            session_count: 0,
            plan,
        })
    }
}

/// The state shared by the connect steps of [`Vm::create_with`]: each retries while QEMU runs,
/// and turns QEMU's exit into an error carrying its output.
struct Starting<'a> {
    name: &'a str,
    process: &'a OwnedProcess,
    log: &'a mut VmLog,
    timeouts: &'a Timeouts,
}

impl Starting<'_> {
    /// The error for QEMU having exited while `awaited`.
    fn exited(&self, status: std::process::ExitStatus, awaited: &str) -> Error {
        let text = fs::read_to_string(self.process.output_log()).unwrap_or_default();
        classify_output(self.name, &text).unwrap_or_else(|| Error::QemuExited {
            vm: self.name.into(),
            awaited: awaited.into(),
            status: status.to_string(),
            stderr_tail: tail_lines(&text, 20),
        })
    }

    /// Retries `attempt` every 20 ms until it succeeds, QEMU exits, or the connect timeout.
    async fn retry<T, E: std::fmt::Display, F, Fut>(
        &mut self,
        awaited: &str,
        mut attempt: F,
    ) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, E>>,
    {
        let started = Instant::now();
        let timeout = self.timeouts.connect;
        loop {
            let last = match attempt().await {
                Ok(v) => {
                    self.log.line(&format!(
                        "connected {awaited} after {}",
                        secs(&started.elapsed())
                    ));
                    return Ok(v);
                }
                Err(e) => e.to_string(),
            };
            if let ProcessState::Exited(status) = self.process.state() {
                return Err(self.exited(status, &format!("connecting {awaited}")));
            }
            if started.elapsed() >= timeout {
                return Err(Error::Timeout {
                    vm: self.name.into(),
                    awaited: format!("connecting {awaited}"),
                    waited: timeout,
                    last,
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn open_serial(
        &mut self,
        socket: &Path,
        log_path: &Path,
    ) -> Result<SerialConsole, Error> {
        let stream = self
            .retry(&format!("the serial console {}", socket.display()), || {
                UnixStream::connect(socket)
            })
            .await?;
        let mut log =
            File::create(log_path).map_err(io_err("creating the serial log", log_path))?;
        let (mut rd, wr) = stream.into_split();
        let shared = Arc::new(SerialShared::default());
        let pump_shared = Arc::clone(&shared);
        let pump = tokio::spawn(async move {
            let mut chunk = vec![0u8; 8192];
            loop {
                let n = match rd.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let _ = log.write_all(&chunk[..n]);
                let sub = pump_shared
                    .subscriber
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone();
                if let Some(tx) = sub {
                    // A session that stopped reading loses output rather than stalling the log.
                    let _ = tx.try_send(chunk[..n].to_vec());
                }
            }
            // End of the console: attached sessions see end of stream.
            *pump_shared
                .subscriber
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = None;
        });
        Ok(SerialConsole {
            writer: Arc::new(tokio::sync::Mutex::new(wr)),
            shared,
            pump,
        })
    }

    async fn connect_qmp(&mut self, socket: &Path, transcript: &Path) -> Result<QmpClient, Error> {
        let cfg = QmpConfig::default()
            .transcript(transcript)
            .connect_timeout(Duration::from_secs(2));
        self.retry(&format!("QMP {}", socket.display()), || {
            QmpClient::connect_unix(socket, cfg.clone())
        })
        .await
    }

    async fn connect_hmp(&mut self, socket: &Path, transcript: &Path) -> Result<HmpClient, Error> {
        let cfg = HmpConfig::default().transcript(transcript);
        self.retry(&format!("the human monitor {}", socket.display()), || {
            HmpClient::connect_unix(socket, cfg.clone())
        })
        .await
    }

    /// Reads the VNC server's port back (`query-vnc`'s `service`): QEMU chose the display.
    async fn read_vnc_port(&mut self, qmp: &QmpClient) -> Result<Option<u16>, Error> {
        let reply = qmp
            .execute("query-vnc", json!({}))
            .await
            .map_err(|source| Error::Monitor {
                vm: self.name.into(),
                what: "reading the VNC display (query-vnc)".into(),
                source: Box::new(source),
            })?;
        if reply["enabled"].as_bool() != Some(true) {
            return Ok(None);
        }
        Ok(reply["service"]
            .as_str()
            .and_then(|s| s.parse::<u16>().ok()))
    }

    /// Reads the kernel-chosen host ports back from `info usernet`.
    async fn read_redirs(
        &mut self,
        qmp: &QmpClient,
        wanted: &[u16],
    ) -> Result<Vec<(u16, u16)>, Error> {
        let text = qmp.info("usernet").await.map_err(|source| Error::Monitor {
            vm: self.name.into(),
            what: "reading forwarded ports (info usernet)".into(),
            source: Box::new(source),
        })?;
        let forwards = net::parse_usernet_forwards(&text);
        let mut out = Vec::new();
        for &guest_port in wanted {
            let Some((host, _)) = forwards.iter().find(|(_, g)| *g == guest_port) else {
                return Err(Error::UnexpectedReply {
                    vm: self.name.into(),
                    command: format!("info usernet (looking for guest port {guest_port})"),
                    reply: text,
                });
            };
            out.push((guest_port, *host));
        }
        Ok(out)
    }
}

/// Verifies each CD-ROM ISO exists and, when the spec names a checksum (`md5sum_1m`,
/// `md5sum`, `sha1sum`), matches it.
fn check_isos(vm: &str, spec: &VmSpec, root: &Path) -> Result<(), Error> {
    for cd in &spec.cdroms {
        let path = root.join(&cd.iso);
        let bad = |problem: String| Error::Iso {
            vm: vm.into(),
            path: path.clone(),
            problem,
        };
        if !path.exists() {
            return Err(bad("not found".into()));
        }
        let Some(sum) = &cd.checksum else { continue };
        let actual = hash_file(sum.algo, &path)
            .map_err(|e| bad(format!("computing its {}: {e}", sum.algo.key())))?;
        if !actual.eq_ignore_ascii_case(&sum.expected) {
            return Err(bad(format!(
                "{} is {actual}, expected {}",
                sum.algo.key(),
                sum.expected
            )));
        }
    }
    Ok(())
}

/// The hex digest of `path` (of its first MiB for [`ChecksumAlgo::Md5FirstMiB`]), streamed.
fn hash_file(algo: ChecksumAlgo, path: &Path) -> std::io::Result<String> {
    use md5::Digest;
    use std::io::Read;
    fn stream<D: Digest>(mut r: impl Read) -> std::io::Result<String> {
        let mut d = D::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match r.read(&mut buf)? {
                0 => break,
                n => d.update(&buf[..n]),
            }
        }
        Ok(d.finalize().iter().map(|b| format!("{b:02x}")).collect())
    }
    let file = File::open(path)?;
    match algo {
        ChecksumAlgo::Md5FirstMiB => stream::<md5::Md5>(file.take(1 << 20)),
        ChecksumAlgo::Md5 => stream::<md5::Md5>(file),
        ChecksumAlgo::Sha1 => stream::<sha1::Sha1>(file),
    }
}

/// Finds a device by qdev id in a `query-pci` reply, bridges included.
fn pci_has_device(reply: &Value, id: &str) -> bool {
    fn walk(devices: &Value, id: &str) -> bool {
        devices.as_array().is_some_and(|ds| {
            ds.iter().any(|d| {
                d.get("qdev_id").and_then(Value::as_str) == Some(id)
                    || d.get("pci_bridge")
                        .and_then(|b| b.get("devices"))
                        .is_some_and(|b| walk(b, id))
            })
        })
    }
    reply.as_array().is_some_and(|buses| {
        buses
            .iter()
            .any(|b| b.get("devices").is_some_and(|d| walk(d, id)))
    })
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
    /// port's (names from [`qemu_cmd::names`], as the command line has them).
    pub fn sockets(&self) -> Vec<PathBuf> {
        let spec = &self.setup.spec;
        let run = self.plan.run_dir();
        spec.monitors
            .iter()
            .map(|m| run.join(qemu_cmd::names::monitor_socket(&m.name)))
            .chain(
                spec.serials
                    .iter()
                    .map(|s| run.join(qemu_cmd::names::serial_socket(s))),
            )
            .collect()
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

    /// The MAC of NIC `index`.
    ///
    /// # Errors
    /// [`Error::NoSuchNic`].
    pub fn get_mac(&self, index: usize) -> Result<MacAddr, Error> {
        Ok(self.nic(index)?.1.mac)
    }

    /// NIC `index`: its spec and the plan's decisions for it.
    fn nic(&self, index: usize) -> Result<(&NicSpec, &qemu_cmd::NicRun), Error> {
        let nics = &self.setup.spec.nics;
        nics.get(index)
            .zip(self.plan.values().nics.get(index))
            .ok_or_else(|| Error::NoSuchNic {
                vm: self.name.clone(),
                index,
                count: nics.len(),
            })
    }

    /// The host-side address of NIC `index`: `localhost` in user mode (ports are forwarded);
    /// in tap mode the IP that `address_cache` maps its MAC to, verified against the host's ARP
    /// table (refused when that IP is seen with a MAC that is not one of this VM's).
    ///
    /// # Errors
    /// [`Error::NoSuchNic`], [`Error::AddressUnknown`].
    pub fn get_address(
        &self,
        index: usize,
        address_cache: &std::collections::HashMap<MacAddr, String>,
    ) -> Result<String, Error> {
        let (nic, run) = self.nic(index)?;
        if nic.mode == NicMode::User {
            return Ok("localhost".into());
        }
        let unknown = |why: String| Error::AddressUnknown {
            vm: self.name.clone(),
            nic: nic.name.clone(),
            mac: run.mac.to_string(),
            why,
        };
        let ip = address_cache
            .get(&run.mac)
            .ok_or_else(|| unknown("not in the MAC→IP address cache".into()))?;
        let ours = |mac: MacAddr| self.plan.values().nics.iter().any(|n| n.mac == mac);
        match net::arp_mac(ip) {
            Some(seen) if ours(seen) => Ok(ip.clone()),
            Some(seen) => Err(unknown(format!("{ip} belongs to {seen}, not to this VM"))),
            None => Err(unknown(format!("{ip} is not in the host's ARP table"))),
        }
    }

    /// The TCP port of the VM's VNC server (`display = vnc`), as QEMU reports it (`query-vnc`);
    /// `None` without VNC. The display number is the port minus 5900.
    pub fn vnc_port(&self) -> Option<u16> {
        self.vnc_port
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
        // Logging takes &self: reopen in append mode (rare, small writes).
        if let Ok(mut f) = File::options()
            .append(true)
            .open(self.log_dir.join("vm.log"))
        {
            let t = self.log.started.elapsed().as_secs_f64();
            let _ = writeln!(f, "[+{t:8.3}s] {text}");
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

    fn shell_config(&self) -> Result<SessionSpec, Error> {
        Ok(self.setup.session.clone())
    }

    fn next_session_log(&mut self, kind: &str) -> PathBuf {
        self.session_count += 1;
        self.log_dir
            .join(format!("session-{}-{kind}.log", self.session_count))
    }

    /// Opens a session on the serial console and logs in within `timeout`.
    ///
    /// # Errors
    /// [`Error::SerialConsole`] (none, or in use), session errors.
    pub async fn serial_login(&mut self, timeout: Duration) -> Result<Session, Error> {
        let config = self.shell_config()?;
        let log_path = self.next_session_log("serial");
        let Some(console) = &self.serial else {
            return Err(Error::SerialConsole {
                vm: self.name.clone(),
                problem: "does not exist (no `serials` in the params)".into(),
            });
        };
        let transport = SerialTransport::attach(
            format!("serial console of {}", self.name),
            Arc::clone(&console.writer),
            Arc::clone(&console.shared),
        )
        .ok_or_else(|| Error::SerialConsole {
            vm: self.name.clone(),
            problem: "is in use by another session".into(),
        })?;
        let mut session = Session::new(Box::new(transport), config, &log_path)?;
        session.login(timeout).await?;
        Ok(session)
    }

    /// Connects with `shell_client` (telnet, nc or ssh; default telnet) to `shell_port` of NIC
    /// `nic` and logs in, retrying connection and login until `timeout` (the guest may still be
    /// booting: a forwarded port accepts and then closes while nothing listens in the guest).
    ///
    /// # Errors
    /// [`SessionError::LoginTimeout`] with the last attempt's failure; address/port errors.
    pub async fn remote_login(&mut self, nic: usize, timeout: Duration) -> Result<Session, Error> {
        let config = self.shell_config()?;
        let client = config.shell_client;
        let guest_port = config.shell_port;
        // tap NICs: the MAC→IP cache from the DHCP server's lease file, when one is named
        let cache = match &config.dhcp_lease_file {
            Some(f) => {
                net::read_address_cache(f).map_err(io_err("reading the DHCP lease file", f))?
            }
            None => std::collections::HashMap::new(),
        };
        let host = self.get_address(nic, &cache)?;
        let port = self.get_port(guest_port, nic)?;
        let identity = config.ssh_identity_file.clone();
        let log_path = self.next_session_log(client.as_str());
        let describe = format!("{client} {host}:{port}");
        let deadline = Instant::now() + timeout;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let left = deadline.saturating_duration_since(Instant::now());
            let attempt = async {
                let transport: Box<dyn Transport> = match client {
                    ShellClient::Nc => Box::new(
                        RawTcpTransport::connect(&host, port)
                            .await
                            .map_err(|source| SessionError::Connect {
                                session: describe.clone(),
                                source,
                            })?,
                    ),
                    ShellClient::Ssh => Box::new(
                        SshTransport::spawn_with_identity(
                            &host,
                            port,
                            &config.username,
                            identity.as_deref(),
                        )
                        .map_err(|source| SessionError::Connect {
                            session: describe.clone(),
                            source,
                        })?,
                    ),
                    ShellClient::Telnet => Box::new(
                        TelnetTransport::connect(&host, port)
                            .await
                            .map_err(|source| SessionError::Connect {
                                session: describe.clone(),
                                source,
                            })?,
                    ),
                };
                let mut s = Session::new(transport, config.clone(), &log_path)?;
                s.login(left.min(Duration::from_secs(20))).await?;
                Ok::<Session, SessionError>(s)
            };
            let last = match attempt.await {
                Ok(s) => return Ok(s),
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                return Err(Error::Session(SessionError::LoginTimeout {
                    session: describe,
                    waited: timeout,
                    attempts,
                    last: Box::new(last),
                }));
            }
            if let ProcessState::Exited(status) = self.process.state() {
                return Err(Error::QemuExited {
                    vm: self.name.clone(),
                    awaited: format!("logging in over {describe}"),
                    status: status.to_string(),
                    stderr_tail: self.output_tail(20),
                });
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Logs in over `access` within `timeout` (the `login_timeout` param is the usual value).
    ///
    /// # Errors
    /// As [`Vm::serial_login`] / [`Vm::remote_login`].
    pub async fn wait_for_login(
        &mut self,
        access: Access,
        timeout: Duration,
    ) -> Result<Session, Error> {
        match access {
            Access::Serial => self.serial_login(timeout).await,
            Access::Remote { nic } => self.remote_login(nic, timeout).await,
        }
    }

    /// `login_timeout` from the params (default 360 s, as in avocado-vt; a bad value made
    /// [`Vm::create`] fail).
    pub fn login_timeout(&self) -> Duration {
        self.setup.session.login_timeout
    }

    /// The session settings read from the params when the VM was created.
    pub fn session_spec(&self) -> &SessionSpec {
        &self.setup.session
    }

    /// Reboots the guest and logs in again over `access`. Success is the `RESET` event followed
    /// by a fresh login.
    ///
    /// # Errors
    /// Monitor errors, a timeout waiting for `RESET`, login errors.
    pub async fn reboot(
        &mut self,
        method: RebootMethod,
        access: Access,
        timeout: Duration,
    ) -> Result<Session, Error> {
        let started = Instant::now();
        let mark = self.qmp.cursor();
        match method {
            RebootMethod::Shell(mut session) => {
                let cmd = self.setup.session.reboot_command.clone();
                self.log_line(&format!(
                    "reboot: sending `{cmd}` on {}",
                    session.describe()
                ));
                session.sendline(&cmd).await?;
                // The session ends with the guest; the serial console is freed for the new one.
                drop(session);
            }
            RebootMethod::SystemReset => {
                self.qmp_exec("system_reset", json!({})).await?;
            }
        }
        self.qmp
            .wait_event(EventFilter::new("RESET").since(mark), timeout)
            .await
            .map_err(self.monitor_err("waiting for the RESET event of the reboot"))?;
        self.log_line(&format!("reboot: RESET after {}", secs(&started.elapsed())));
        let left = timeout.saturating_sub(started.elapsed());
        let session = self.wait_for_login(access, left).await?;
        self.log_line(&format!(
            "reboot: logged in after {}",
            secs(&started.elapsed())
        ));
        Ok(session)
    }

    async fn wait_in_pci(&self, id: &str, present: bool) -> Result<(), Error> {
        let started = Instant::now();
        let timeout = self.setup.timeouts.hotplug;
        loop {
            let reply = self.qmp_exec("query-pci", json!({})).await?;
            if pci_has_device(&reply, id) == present {
                return Ok(());
            }
            if started.elapsed() >= timeout {
                return Err(Error::Timeout {
                    vm: self.name.clone(),
                    awaited: format!(
                        "device {id} to {} query-pci",
                        if present { "appear in" } else { "leave" }
                    ),
                    waited: timeout,
                    last: "query-pci does not show the expected state".into(),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Hotplugs a NIC of `model` (e.g. `virtio-net-pci`) on a new user-mode netdev with a
    /// generated, reserved MAC; confirmed by `query-pci`.
    ///
    /// # Errors
    /// Monitor errors, a timeout waiting for the device in `query-pci`.
    pub async fn hotplug_nic(&mut self, model: &str) -> Result<HotNic, Error> {
        let mac_dir = net::mac_registry_dir();
        let r = MacReservation::generate(&mac_dir, self.plan.run_dir())
            .map_err(io_err("reserving a MAC address in", &mac_dir))?;
        let nic = HotNic {
            id: short_id("hotnic"),
            netdev_id: short_id("hotnet"),
            mac: r.mac(),
            model: model.to_owned(),
        };
        self.plan.reservations.push(r);
        self.qmp_exec("netdev_add", json!({"type": "user", "id": nic.netdev_id}))
            .await?;
        self.qmp_exec(
            "device_add",
            json!({"driver": model, "id": nic.id, "netdev": nic.netdev_id, "mac": nic.mac.to_string()}),
        )
        .await?;
        self.wait_in_pci(&nic.id, true).await?;
        self.hot_nics.push(nic.clone());
        Ok(nic)
    }

    /// Unplugs a device: `device_del`, then the `DEVICE_DELETED` event (which needs the guest's
    /// cooperation for PCI), then its absence from `query-pci`.
    ///
    /// # Errors
    /// Monitor errors, timeouts naming the event or the `query-pci` state.
    pub async fn unplug_device(&mut self, id: &str) -> Result<(), Error> {
        let mark = self.qmp.cursor();
        self.qmp_exec("device_del", json!({"id": id})).await?;
        self.qmp
            .wait_event(
                EventFilter::new("DEVICE_DELETED")
                    .data(json!({"device": id}))
                    .since(mark),
                self.setup.timeouts.hotplug,
            )
            .await
            .map_err(self.monitor_err(format!("waiting for DEVICE_DELETED of {id}")))?;
        self.wait_in_pci(id, false).await
    }

    /// Unplugs a hotplugged NIC and removes its netdev; its MAC reservation is released.
    ///
    /// # Errors
    /// As [`Vm::unplug_device`].
    pub async fn unplug_nic(&mut self, nic: &HotNic) -> Result<(), Error> {
        self.unplug_device(&nic.id).await?;
        self.qmp_exec("netdev_del", json!({"id": nic.netdev_id}))
            .await?;
        self.hot_nics.retain(|n| n.id != nic.id);
        self.plan.reservations.retain(|r| r.mac() != nic.mac);
        Ok(())
    }

    /// Hotplugs the image file `path` (format `format`: `qcow2`, `raw`) as a `driver` device
    /// (e.g. `virtio-blk-pci`); confirmed by `query-pci`.
    ///
    /// # Errors
    /// Monitor errors, a timeout waiting for the device in `query-pci`.
    pub async fn hotplug_disk(
        &mut self,
        path: &Path,
        format: &str,
        driver: &str,
    ) -> Result<HotDisk, Error> {
        let disk = HotDisk {
            id: short_id("hotdisk"),
            node_name: short_id("node"),
        };
        self.qmp_exec(
            "blockdev-add",
            json!({"driver": format, "node-name": disk.node_name,
                   "file": {"driver": "file", "filename": path.to_string_lossy()}}),
        )
        .await?;
        self.qmp_exec(
            "device_add",
            json!({"driver": driver, "id": disk.id, "drive": disk.node_name}),
        )
        .await?;
        self.wait_in_pci(&disk.id, true).await?;
        Ok(disk)
    }

    /// Unplugs a hotplugged disk and removes its block node.
    ///
    /// # Errors
    /// As [`Vm::unplug_device`].
    pub async fn unplug_disk(&mut self, disk: &HotDisk) -> Result<(), Error> {
        self.unplug_device(&disk.id).await?;
        self.qmp_exec("blockdev-del", json!({"node-name": disk.node_name}))
            .await?;
        Ok(())
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

    /// Migrates the guest live to a new local VM started with `-incoming defer` and this VM's
    /// MACs, checks success on both sides (source `completed` and `postmigrate`, destination
    /// `running`), then replaces `self` with the destination and tears the source down.
    /// On failure the destination is destroyed and `self` is left as it was.
    /// ([`MigrationProtocol::Exec`] goes through a file, so it is offline by nature.)
    ///
    /// # Errors
    /// [`Error::Migration`] naming the side that failed, timeouts, monitor errors.
    pub async fn migrate(&mut self, protocol: MigrationProtocol) -> Result<(), Error> {
        self.migrate_with(protocol, false).await
    }

    /// [`Vm::migrate`], offline when `offline`: the source is paused before the state is sent,
    /// and the destination is resumed once it has loaded it. On failure the destination is
    /// destroyed and the source resumed (when this call paused it).
    ///
    /// # Errors
    /// As [`Vm::migrate`].
    pub async fn migrate_with(
        &mut self,
        protocol: MigrationProtocol,
        offline: bool,
    ) -> Result<(), Error> {
        let offline = offline || protocol == MigrationProtocol::Exec;
        let was_running = self.status().await? == "running";
        let started = Instant::now();
        let opts = PlanOptions {
            root_dir: self.plan.values().root_dir.clone(),
            image_dir: Some(self.plan.values().image_dir.clone()),
            mac_source: Some(self),
            incoming: Some(qemu_cmd::Incoming::defer()),
        };
        let dest = Vm::start(Arc::clone(&self.qemu), self.setup.clone(), &opts).await?;
        match self.migrate_to(&dest, protocol, offline).await {
            Ok(uri) => {
                self.log_line(&format!(
                    "migrated over {uri} in {}; the destination (pid {}) replaces this VM",
                    secs(&started.elapsed()),
                    dest.pid()
                ));
                let source = std::mem::replace(self, dest);
                source.destroy(Teardown::Quick).await?;
                Ok(())
            }
            Err(e) => {
                let _ = dest.destroy(Teardown::Quick).await;
                if offline && was_running {
                    let _ = self.resume().await;
                }
                Err(e)
            }
        }
    }

    async fn migrate_to(
        &self,
        dest: &Vm,
        protocol: MigrationProtocol,
        offline: bool,
    ) -> Result<String, Error> {
        let timeout = self.setup.timeouts.migrate;
        let file = dest.run_dir().join("migration.state");
        let (out_uri, in_uri) = match protocol {
            MigrationProtocol::Tcp => (None, "tcp:127.0.0.1:0".to_owned()),
            MigrationProtocol::Unix => {
                let u = format!(
                    "unix:{}",
                    dest.run_dir()
                        .join(qemu_cmd::names::MIGRATION_SOCKET)
                        .display()
                );
                (Some(u.clone()), u)
            }
            MigrationProtocol::Exec => (
                Some(format!("exec:cat > '{}'", file.display())),
                format!("exec:cat '{}'", file.display()),
            ),
        };
        let fail = |uri: &str, why: String| Error::Migration {
            vm: self.name.clone(),
            uri: uri.to_owned(),
            why,
        };
        if protocol == MigrationProtocol::Exec {
            // QEMU runs `exec:` URIs with `/bin/sh -c`: the path is single-quoted, so a quote
            // in it (only possible through a run directory chosen by the caller) is refused.
            if file.to_string_lossy().contains('\'') {
                return Err(fail(
                    &file.display().to_string(),
                    "the state file's path contains a single quote, which an `exec:` \
                     migration URI cannot carry safely"
                        .into(),
                ));
            }
            // Offline: the state goes to a file first, the destination reads it afterwards.
            let uri = out_uri.clone().unwrap_or_default();
            self.pause().await?;
            self.qmp_exec("migrate", json!({"uri": uri})).await?;
            self.wait_migration(&uri, timeout).await?;
            dest.qmp_exec("migrate-incoming", json!({"uri": in_uri}))
                .await?;
            // The source was paused, so the destination stays paused after loading: wait for
            // its incoming migration to complete, then resume it.
            dest.wait_migration(&in_uri, timeout).await?;
            dest.qmp_exec("cont", json!({})).await?;
        } else {
            dest.qmp_exec("migrate-incoming", json!({"uri": in_uri}))
                .await?;
            let uri = match out_uri {
                Some(u) => u,
                None => {
                    // The kernel chose the port: read it back from the destination.
                    let info = dest.qmp_exec("query-migrate", json!({})).await?;
                    let port = info
                        .get("socket-address")
                        .and_then(Value::as_array)
                        .and_then(|a| a.first())
                        .and_then(|a| a.get("port"))
                        .and_then(|p| {
                            p.as_str()
                                .map(str::to_owned)
                                .or_else(|| p.as_u64().map(|n| n.to_string()))
                        })
                        .ok_or_else(|| Error::UnexpectedReply {
                            vm: dest.name.clone(),
                            command: "query-migrate (socket-address of the listener)".into(),
                            reply: info.to_string(),
                        })?;
                    format!("tcp:127.0.0.1:{port}")
                }
            };
            if offline {
                self.pause().await?;
            }
            self.qmp_exec("migrate", json!({"uri": uri})).await?;
            self.wait_migration(&uri, timeout).await?;
            if offline {
                // The guest was paused: the destination stays paused once it has loaded the
                // state (it leaves `inmigrate`); then it is resumed.
                dest.wait_status(&in_uri, timeout, |st| st != "inmigrate")
                    .await?;
                dest.qmp_exec("cont", json!({})).await?;
            }
        }
        // Source side: paused after migration.
        let src_status = self.status().await?;
        if src_status != "postmigrate" && !offline {
            return Err(fail(
                &in_uri,
                format!("source is `{src_status}`, not `postmigrate`"),
            ));
        }
        // Destination side: running.
        dest.wait_status(&in_uri, timeout, |st| st == "running")
            .await?;
        Ok(in_uri)
    }

    /// Polls `query-status` of a migration destination until `done` accepts the status;
    /// [`Error::Migration`] when QEMU exits or the status stays unaccepted.
    async fn wait_status(
        &self,
        uri: &str,
        timeout: Duration,
        done: impl Fn(&str) -> bool,
    ) -> Result<(), Error> {
        let fail = |why: String| Error::Migration {
            vm: self.name.clone(),
            uri: uri.to_owned(),
            why,
        };
        let deadline = Instant::now() + timeout;
        loop {
            let st = self.status().await?;
            if done(&st) {
                return Ok(());
            }
            if let ProcessState::Exited(status) = self.process.state() {
                return Err(fail(format!(
                    "destination QEMU exited ({status}): {}",
                    self.output_tail(10)
                )));
            }
            if Instant::now() >= deadline {
                return Err(fail(format!("destination stayed `{st}`")));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls `query-migrate` (source or destination side) until `completed`.
    async fn wait_migration(&self, uri: &str, timeout: Duration) -> Result<(), Error> {
        let started = Instant::now();
        loop {
            let info = self.qmp_exec("query-migrate", json!({})).await?;
            let status = info.get("status").and_then(Value::as_str).unwrap_or("");
            match status {
                "completed" => return Ok(()),
                "failed" | "cancelled" => {
                    return Err(Error::Migration {
                        vm: self.name.clone(),
                        uri: uri.to_owned(),
                        why: format!("source reports `{status}`: {info}"),
                    })
                }
                _ => {}
            }
            if started.elapsed() >= timeout {
                return Err(Error::Timeout {
                    vm: self.name.clone(),
                    awaited: format!("migration over {uri} to complete"),
                    waited: timeout,
                    last: format!("query-migrate: {info}"),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits up to `timeout` for QEMU to exit; logs how the stage ended.
    async fn stage_wait(&mut self, stage: &str, timeout: Duration) -> bool {
        let started = Instant::now();
        let exited = self.process.wait_timeout(timeout).await;
        match exited {
            Some(status) => {
                self.log.line(&format!(
                    "teardown: {stage}: QEMU exited ({status}) after {}",
                    secs(&started.elapsed())
                ));
                true
            }
            None => {
                self.log.line(&format!(
                    "teardown: {stage}: QEMU still runs after {}",
                    secs(&timeout)
                ));
                false
            }
        }
    }

    /// Tears the VM down in bounded, logged stages (see [`Teardown`]), then closes the
    /// monitors, removes the run directory and frees the MACs. Returns the stage that ended QEMU.
    ///
    /// # Errors
    /// [`Error::Timeout`] if even SIGKILL did not end QEMU within its bound; [`Error::Io`] if the
    /// run directory could not be removed.
    pub async fn destroy(mut self, how: Teardown) -> Result<StoppedBy, Error> {
        let t = self.setup.timeouts.clone();
        let stopped = 'stages: {
            if !self.is_alive() {
                break 'stages StoppedBy::AlreadyExited;
            }
            if how == Teardown::Graceful {
                if let Some(cmd) = self.setup.session.shutdown_command.clone() {
                    self.log.line(&format!("teardown: guest command `{cmd}`"));
                    let access = if self.serial.is_some() {
                        Access::Serial
                    } else {
                        Access::Remote { nic: 0 }
                    };
                    let bound = t.guest_shutdown.min(Duration::from_secs(30));
                    match self.wait_for_login(access, bound).await {
                        Ok(mut s) => {
                            let sent = s.sendline(&cmd).await;
                            if sent.is_ok()
                                && self.stage_wait("guest command", t.guest_shutdown).await
                            {
                                break 'stages StoppedBy::GuestCommand;
                            }
                        }
                        Err(e) => self
                            .log
                            .line(&format!("teardown: no session for the guest command: {e}")),
                    }
                }
                let mark = self.qmp.cursor();
                self.log.line("teardown: system_powerdown");
                if self
                    .qmp
                    .execute("system_powerdown", json!({}))
                    .await
                    .is_ok()
                {
                    let ev = self
                        .qmp
                        .wait_event(EventFilter::new("SHUTDOWN").since(mark), t.powerdown)
                        .await;
                    self.log.line(&format!(
                        "teardown: SHUTDOWN event: {}",
                        if ev.is_ok() { "seen" } else { "not seen" }
                    ));
                    if self.stage_wait("system_powerdown", t.powerdown).await {
                        break 'stages StoppedBy::Powerdown;
                    }
                }
            }
            self.log.line("teardown: quit");
            let _ = self.qmp.execute("quit", json!({})).await;
            if self.stage_wait("quit", t.quit).await {
                break 'stages StoppedBy::Quit;
            }
            self.log.line("teardown: SIGKILL of the process group");
            self.process.kill();
            if self.stage_wait("SIGKILL", t.kill).await {
                break 'stages StoppedBy::Kill;
            }
            return Err(Error::Timeout {
                vm: self.name.clone(),
                awaited: "QEMU to die after SIGKILL".into(),
                waited: t.kill,
                last: format!("pid {} still not reaped", self.pid()),
            });
        };
        self.qmp.close().await;
        for (_, h) in &self.hmps {
            h.close().await;
        }
        self.serial = None;
        self.plan.release()?;
        self.log.line(&format!("teardown done: {stopped:?}"));
        Ok(stopped)
    }
}

impl Drop for Vm {
    /// The safety net: SIGKILL the process group (never blocks); the run directory and MAC
    /// reservations are removed as the fields drop.
    fn drop(&mut self) {
        if self.process.state() == ProcessState::Running {
            self.log
                .line("dropped without destroy(): SIGKILL of the process group");
            self.process.kill();
        }
    }
}
