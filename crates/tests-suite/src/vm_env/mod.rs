//! The real VM layer behind [`VmEnv`]: [`VmLayerEnv`] starts QEMU guests with `crates/vm`, one
//! environment per runner worker, built by [`VmLayerFactory`].
//!
//! What it adds on top of `vm::Vm`:
//! * **Reuse.** A VM is kept after a test (when `kill_vm` did not destroy it) and reused by the
//!   next test only if the command line the next test's params would give is identical. The
//!   comparison is made on [`vm::Qemu::fingerprint`]: the stable rendering of the same build,
//!   run-specific parts (run directory, MACs, tap names, UUID, ports) as placeholders, so they
//!   never count and everything that does reach QEMU's command line does.
//! * **Per-test files.** A VM started by a test logs into that test's directory
//!   (`<test>/<vm>-<instance>/`: `vm.log`, `qemu.log` with QEMU's stdout and stderr,
//!   `serial.log`, `qmp-*.jsonl` and `hmp-*.jsonl` transcripts, `session-*.log`, and
//!   `qemu-argv.json` / `qemu-argv.txt`, the exact argv). A test that reuses the VM gets, when it
//!   ends, the part of each of those files written during it (plus the argv files) under the
//!   same names in its own directory.
//! * **gc.** Each QEMU process group, its run directory and its sockets are recorded with the
//!   runner's [`ResourceRecorder`] while the VM lives and forgotten when it is destroyed.
//! * **Readiness.** With `guest_ready_marker` set, starting (and rebooting) waits until the
//!   marker appears on the serial console (`guest_ready_timeout`, default `login_timeout`).
//!
//! The argv comes from [`vm::Qemu`] (the `qemu-cmd` builder, capabilities probed once per worker
//! and cached on disk). Each VM's plan resolves relative cfg paths (kernel, initrd, ISOs) under
//! the guest directory and relative `image_name`s under the worker's image directory, so
//! `--jobs N` workers never share an image file; absolute paths are used as they are.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use params::Params;
use regex::Regex;
use serde_json::{json, Value};
use spec::ImageProcessing;
use vm::{Access, HotDisk, HotNic, PlanOptions, Qemu, Session, Vm, VmSetup};

use crate::env::{
    EnvError, EnvFactory, GuestVm, Hotplugged, LoginVia, MigrationMode, MigrationProtocol,
    RebootMethod, ShutdownMethod, Teardown, VmEnv, WorkerSlot,
};
use crate::future::BoxFuture;
use crate::gc::{process_start_time, Resource, ResourceRecorder};
use crate::shell::{RemoteShell, ShellError};

/// Builds a [`VmLayerEnv`] per worker.
#[derive(Debug, Clone, Default)]
pub struct VmLayerFactory {
    guest_dir: Option<PathBuf>,
}

impl VmLayerFactory {
    /// A factory resolving relative `kernel`/`initrd` paths under the worker slot's guest cache
    /// (`--guest-cache`), else `$KVMTEST_GUEST_DIR`, else the working directory.
    pub fn new() -> Self {
        VmLayerFactory::default()
    }

    /// A factory with an explicit guest directory (overrides the slot's guest cache).
    pub fn with_guest_dir(dir: impl Into<PathBuf>) -> Self {
        VmLayerFactory {
            guest_dir: Some(dir.into()),
        }
    }
}

/// Why a worker's environment could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FactoryError {
    /// No QEMU binary was named and the default one is not on `PATH`.
    #[error(
        "no QEMU binary: `{0}` is not on PATH (name one with --qemu, qemu_binary in kvmtest.toml \
         or KVMTEST_QEMU)"
    )]
    NoQemu(String),
    /// Probing the QEMU binary's capabilities failed.
    #[error("probing the capabilities of {binary}")]
    Probe {
        /// The binary.
        binary: PathBuf,
        /// The probe's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The worker's image directory could not be created.
    #[error("creating the image directory {path}")]
    ImageDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// The QEMU binary when neither `--qemu` nor `qemu_binary` (settings) chose one:
/// `$KVMTEST_QEMU`, else `qemu-system-x86_64` (`qemu_cmd::probe::default_binary`, the default
/// of every kvmtest layer); a bare name is looked up on `PATH`.
fn default_qemu() -> Result<PathBuf, FactoryError> {
    let binary = vm::fixtures::default_qemu();
    if binary.components().count() > 1 {
        return Ok(binary);
    }
    let name = binary.to_string_lossy().into_owned();
    find_in_path(&name).ok_or(FactoryError::NoQemu(name))
}

fn find_in_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

impl EnvFactory for VmLayerFactory {
    fn create(&self, slot: &WorkerSlot) -> Result<Arc<dyn VmEnv>, EnvError> {
        let wrap = |e: FactoryError| EnvError::Vm {
            name: format!("worker {}", slot.index),
            what: "setting up the VM environment".into(),
            source: Box::new(e),
        };
        let guest_dir = self
            .guest_dir
            .clone()
            .or_else(|| slot.guest_cache.clone())
            .or_else(|| std::env::var_os("KVMTEST_GUEST_DIR").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("."));
        let guest_dir = std::path::absolute(&guest_dir).unwrap_or(guest_dir);
        let image_dir = slot.scratch_dir.join("images");
        fs::create_dir_all(&image_dir).map_err(|source| {
            wrap(FactoryError::ImageDir {
                path: image_dir.clone(),
                source,
            })
        })?;
        let binary = match &slot.qemu_binary {
            Some(b) => b.clone(),
            None => default_qemu().map_err(wrap)?,
        };
        let qemu = Qemu::probe(&binary).map_err(|e| {
            wrap(FactoryError::Probe {
                binary: binary.clone(),
                source: Box::new(e),
            })
        })?;
        Ok(Arc::new(VmLayerEnv::new(
            Arc::new(qemu),
            guest_dir,
            image_dir,
            slot.recorder.clone(),
        )))
    }
}

/// The VMs of one worker, on top of `crates/vm`.
pub struct VmLayerEnv {
    qemu: Arc<Qemu>,
    guest_dir: PathBuf,
    image_dir: PathBuf,
    recorder: ResourceRecorder,
    vms: Mutex<BTreeMap<String, Arc<LiveVm>>>,
    /// `<path> (<version>)` of the QEMU, reported with every test.
    qemu_name: String,
}

impl std::fmt::Debug for VmLayerEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VmLayerEnv")
            .field("image_dir", &self.image_dir)
            .field("vms", &self.vm_names())
            .finish_non_exhaustive()
    }
}

fn vm_err(name: &str, what: &str, e: impl std::error::Error + Send + Sync + 'static) -> EnvError {
    EnvError::Vm {
        name: name.into(),
        what: what.into(),
        source: Box::new(e),
    }
}

/// Runs blocking `work` (`qemu-img`) off the async threads; its error, or a failure to run it,
/// becomes an [`EnvError::Vm`] naming `name` and `what`.
async fn blocking<E: std::error::Error + Send + Sync + 'static>(
    name: &str,
    what: &str,
    work: impl FnOnce() -> Result<(), E> + Send + 'static,
) -> Result<(), EnvError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| vm_err(name, what, e))?
        .map_err(|e| vm_err(name, what, e))
}

/// A plain-text error cause (timeouts of this module, file problems).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Cause(String);

impl VmLayerEnv {
    /// An environment starting VMs on `qemu`: relative cfg paths (kernel, initrd, ISOs) under
    /// `guest_dir`, relative images in `image_dir`.
    pub fn new(
        qemu: Arc<Qemu>,
        guest_dir: impl Into<PathBuf>,
        image_dir: impl Into<PathBuf>,
        recorder: ResourceRecorder,
    ) -> Self {
        let qemu_name = vm::fixtures::describe_qemu(qemu.binary(), &qemu.caps().version);
        VmLayerEnv {
            qemu,
            guest_dir: guest_dir.into(),
            image_dir: image_dir.into(),
            recorder,
            vms: Mutex::new(BTreeMap::new()),
            qemu_name,
        }
    }

    fn get(&self, name: &str) -> Option<Arc<LiveVm>> {
        self.vms.lock().ok().and_then(|m| m.get(name).cloned())
    }

    fn take(&self, name: &str) -> Option<Arc<LiveVm>> {
        self.vms.lock().ok().and_then(|mut m| m.remove(name))
    }

    /// The setup of VM `name` of `params` (spec and session keys, every problem at once).
    fn setup(name: &str, params: &Params, test_dir: &Path) -> Result<VmSetup, EnvError> {
        let mut setup =
            VmSetup::from_params(params, name, test_dir).map_err(|e| vm_err(name, "start", e))?;
        setup.timeouts.connect = Duration::from_secs(30);
        Ok(setup)
    }

    /// The command line VM `name` of `params` would get, run-specific parts as placeholders.
    ///
    /// # Errors
    /// The spec's problems, or what this QEMU cannot do.
    pub fn fingerprint(&self, setup: &VmSetup) -> Result<String, EnvError> {
        self.qemu
            .fingerprint(&setup.spec)
            .map_err(|e| vm_err(&setup.spec.name, "building the command line", e))
    }

    async fn create(&self, setup: VmSetup, fingerprint: String) -> Result<Arc<LiveVm>, EnvError> {
        let name = setup.spec.name.clone();
        let test_dir = setup.log_dir.clone();
        let opts = PlanOptions {
            root_dir: self.guest_dir.clone(),
            image_dir: Some(self.image_dir.clone()),
            mac_source: None,
            incoming: None,
        };
        let vm = Vm::start(Arc::clone(&self.qemu), setup, &opts)
            .await
            .map_err(|e| vm_err(&name, "start", e))?;
        let live = Arc::new(LiveVm {
            name,
            fingerprint,
            session: vm.session_spec().clone(),
            recorder: self.recorder.clone(),
            recorded: Mutex::new(Vec::new()),
            hot: Mutex::new(HashMap::new()),
            segment: Mutex::new(Segment {
                test_dir,
                reused: false,
                log_dirs: vec![vm.log_dir().to_path_buf()],
                offsets: HashMap::new(),
            }),
            inner: tokio::sync::Mutex::new(None),
        });
        live.adopt(&vm);
        *live.inner.lock().await = Some(vm);
        Ok(live)
    }
}

impl VmEnv for VmLayerEnv {
    fn qemu(&self) -> Option<String> {
        Some(self.qemu_name.clone())
    }

    fn start_vm<'a>(
        &'a self,
        name: &'a str,
        params: &'a Params,
        test_dir: &'a Path,
    ) -> BoxFuture<'a, Result<(), EnvError>> {
        Box::pin(async move {
            let setup = Self::setup(name, params, test_dir)?;
            let fingerprint = self.fingerprint(&setup)?;
            if let Some(live) = self.get(name) {
                if live.is_alive() && live.fingerprint == fingerprint {
                    live.begin_reuse(test_dir);
                    return Ok(());
                }
                // A different command line (or a dead VM): replace it.
                self.destroy_vm(name, Teardown::Kill).await?;
            }
            let live = self.create(setup, fingerprint).await?;
            if let Ok(mut m) = self.vms.lock() {
                m.insert(name.to_owned(), Arc::clone(&live));
            }
            if let Some((marker, timeout)) = live.ready_marker() {
                if let Err(e) = live.wait_ready(&marker, 1, timeout).await {
                    // Never leave a guest that did not come up for the next test to reuse.
                    let _ = self.destroy_vm(name, Teardown::Kill).await;
                    return Err(e);
                }
            }
            Ok(())
        })
    }

    fn vm(&self, name: &str) -> Result<Arc<dyn GuestVm>, EnvError> {
        match self.get(name) {
            Some(live) if live.is_alive() => Ok(live as Arc<dyn GuestVm>),
            _ => Err(EnvError::NoSuchVm { name: name.into() }),
        }
    }

    fn vm_names(&self) -> Vec<String> {
        self.vms
            .lock()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn destroy_vm<'a>(
        &'a self,
        name: &'a str,
        how: Teardown,
    ) -> BoxFuture<'a, Result<(), EnvError>> {
        Box::pin(async move {
            let Some(live) = self.take(name) else {
                return Ok(());
            };
            let r = live.destroy(how).await;
            live.copy_segment();
            r
        })
    }

    fn prepare_image<'a>(
        &'a self,
        vm: &'a str,
        image: &'a ImageProcessing,
        params: &'a Params,
    ) -> BoxFuture<'a, Result<(), EnvError>> {
        Box::pin(async move {
            let name = image.name.as_str();
            let img = vm::image::Image::from_params(params, vm, name, &self.image_dir)
                .map_err(|e| vm_err(name, "image parameters", e))?;
            if img.path.exists() && !image.force_create {
                // Kept (`create_image` creates a missing image only): a reused VM may have it
                // open.
                return Ok(());
            }
            blocking(name, "creating the image", move || img.create()).await
        })
    }

    fn remove_image<'a>(
        &'a self,
        vm: &'a str,
        image: &'a str,
        params: &'a Params,
    ) -> BoxFuture<'a, Result<(), EnvError>> {
        Box::pin(async move {
            let img = vm::image::Image::from_params(params, vm, image, &self.image_dir)
                .map_err(|e| vm_err(image, "image parameters", e))?;
            blocking(image, "removing the image", move || img.remove()).await
        })
    }

    fn end_test<'a>(&'a self, test_dir: &'a Path) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let all: Vec<(String, Arc<LiveVm>)> = self
                .vms
                .lock()
                .map(|m| m.iter().map(|(k, v)| (k.clone(), Arc::clone(v))).collect())
                .unwrap_or_default();
            for (name, live) in all {
                if live.segment_dir().as_deref() == Some(test_dir) {
                    live.copy_segment();
                }
                if !live.is_alive() {
                    // Shut down by the test (or crashed): clean up and forget it.
                    if let Some(l) = self.take(&name) {
                        let _ = l.destroy(Teardown::Kill).await;
                    }
                }
            }
        })
    }
}

/// The part of a VM's logs that belongs to the current test.
#[derive(Debug)]
struct Segment {
    /// The test using the VM.
    test_dir: PathBuf,
    /// Whether the VM was started by an earlier test (its logs are elsewhere).
    reused: bool,
    /// The VM's log directories (a migration adds the destination's).
    log_dirs: Vec<PathBuf>,
    /// File sizes when the test started.
    offsets: HashMap<PathBuf, u64>,
}

/// A hot-plugged device, as `vm` needs it for the unplug.
#[derive(Debug, Clone)]
enum Hot {
    Nic(HotNic),
    Disk(HotDisk),
}

/// One VM of a [`VmLayerEnv`]: a `vm::Vm` (absent once shut down) behind an async lock.
pub struct LiveVm {
    name: String,
    fingerprint: String,
    /// The session keys, as `Vm::create` read (and checked) them.
    session: vm::SessionSpec,
    recorder: ResourceRecorder,
    recorded: Mutex<Vec<Resource>>,
    hot: Mutex<HashMap<String, Hot>>,
    segment: Mutex<Segment>,
    inner: tokio::sync::Mutex<Option<Vm>>,
}

impl std::fmt::Debug for LiveVm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveVm")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

const ARGV_FILES: [&str; 2] = ["qemu-argv.json", "qemu-argv.txt"];

impl LiveVm {
    /// Records `vm`'s process group, run directory and sockets for gc and writes its argv.
    fn adopt(&self, vm: &Vm) {
        let mut res = vec![Resource::Process {
            pid: vm.pid(),
            start_time: process_start_time(vm.pid()),
            group: true,
        }];
        for path in vm.sockets() {
            res.push(Resource::Socket { path });
        }
        res.push(Resource::Dir {
            path: vm.run_dir().to_path_buf(),
        });
        for r in &res {
            let _ = self.recorder.record(r.clone());
        }
        if let Ok(mut v) = self.recorded.lock() {
            v.extend(res);
        }
        let argv: Vec<String> = vm
            .argv()
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let dir = vm.log_dir();
        let _ = fs::write(
            dir.join(ARGV_FILES[0]),
            serde_json::to_string_pretty(&argv).unwrap_or_default(),
        );
        let _ = fs::write(
            dir.join(ARGV_FILES[1]),
            format!("{}\n", vm::render_argv(vm.argv())),
        );
        if let Ok(mut s) = self.segment.lock() {
            let d = dir.to_path_buf();
            if !s.log_dirs.contains(&d) {
                s.log_dirs.push(d);
            }
        }
    }

    /// Forgets every recorded resource (the VM is gone).
    fn forget_all(&self) {
        let res = self
            .recorded
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default();
        for r in &res {
            let _ = self.recorder.forget(r);
        }
    }

    fn segment_dir(&self) -> Option<PathBuf> {
        self.segment.lock().ok().map(|s| s.test_dir.clone())
    }

    /// A new test reuses the VM: remember where its logs stand.
    fn begin_reuse(&self, test_dir: &Path) {
        if let Ok(mut s) = self.segment.lock() {
            let mut offsets = HashMap::new();
            for d in &s.log_dirs {
                for f in fs::read_dir(d).into_iter().flatten().flatten() {
                    if let Ok(m) = f.metadata() {
                        offsets.insert(f.path(), m.len());
                    }
                }
            }
            s.offsets = offsets;
            s.test_dir = test_dir.to_path_buf();
            s.reused = true;
        }
    }

    /// Copies what the logs gained since [`begin_reuse`](Self::begin_reuse) into the test's
    /// directory (only for a reused VM: a VM's own test already holds its logs).
    fn copy_segment(&self) {
        let Ok(mut s) = self.segment.lock() else {
            return;
        };
        if !s.reused {
            return;
        }
        for d in &s.log_dirs {
            let Some(base) = d.file_name() else { continue };
            let out_dir = s.test_dir.join(base);
            if fs::create_dir_all(&out_dir).is_err() {
                continue;
            }
            for f in fs::read_dir(d).into_iter().flatten().flatten() {
                let path = f.path();
                let whole = path
                    .file_name()
                    .is_some_and(|n| ARGV_FILES.iter().any(|a| n == *a));
                let from = if whole {
                    0
                } else {
                    s.offsets.get(&path).copied().unwrap_or(0)
                };
                let mut text = Vec::new();
                if let Ok(mut file) = fs::File::open(&path) {
                    if file.seek(SeekFrom::Start(from)).is_ok() {
                        let _ = file.read_to_end(&mut text);
                    }
                }
                // Session logs of earlier tests would only be empty files here; QEMU's output,
                // the console, the VM log and the monitor transcripts are always written.
                let session = f.file_name().to_string_lossy().starts_with("session-");
                if text.is_empty() && session {
                    continue;
                }
                let _ = fs::write(out_dir.join(f.file_name()), text);
            }
            let _ = fs::write(
                out_dir.join("REUSED.txt"),
                format!(
                    "This VM was started by an earlier test; its complete logs are in {}.\n\
                     The files here hold what was logged during this test.\n",
                    d.display()
                ),
            );
        }
        s.reused = false;
        s.test_dir = PathBuf::new();
    }

    async fn destroy(&self, how: Teardown) -> Result<(), EnvError> {
        let vm = self.inner.lock().await.take();
        let r = match vm {
            None => Ok(()),
            Some(vm) => vm
                .destroy(how)
                .await
                .map(|_| ())
                .map_err(|e| vm_err(&self.name, "destroy", e)),
        };
        self.forget_all();
        r
    }

    /// Waits until the serial console has shown `marker` at least `count` times.
    async fn wait_ready(
        &self,
        marker: &str,
        count: usize,
        timeout: Duration,
    ) -> Result<(), EnvError> {
        let log = {
            let g = self.inner.lock().await;
            match g.as_ref() {
                Some(vm) => vm.log_dir().join("serial.log"),
                None => {
                    return Err(EnvError::NoSuchVm {
                        name: self.name.clone(),
                    })
                }
            }
        };
        let started = Instant::now();
        loop {
            let text = fs::read(&log).unwrap_or_default();
            let seen = count_occurrences(&text, marker.as_bytes());
            if seen >= count {
                return Ok(());
            }
            if !self.is_alive() {
                let tail = self.tail().await;
                return Err(vm_err(
                    &self.name,
                    "waiting for the guest",
                    Cause(format!(
                        "QEMU exited before the ready marker {marker:?}: {tail}"
                    )),
                ));
            }
            if started.elapsed() >= timeout {
                let tail = String::from_utf8_lossy(&text);
                let tail: String = tail.lines().rev().take(5).collect::<Vec<_>>().join(" | ");
                return Err(vm_err(
                    &self.name,
                    "waiting for the guest",
                    Cause(format!(
                        "timed out after {:.0} s waiting for the ready marker {marker:?} \
                         (seen {seen} of {count} times) in {}; last serial lines (newest first): {tail}",
                        timeout.as_secs_f64(),
                        log.display()
                    )),
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn tail(&self) -> String {
        self.inner
            .lock()
            .await
            .as_ref()
            .map(|vm| vm.output_tail(10))
            .unwrap_or_default()
    }

    /// `guest_ready_marker` and how long to wait for it (`guest_ready_timeout`, else
    /// `login_timeout`), as the session spec read them.
    fn ready_marker(&self) -> Option<(String, Duration)> {
        let marker = self.session.ready_marker.clone()?;
        Some((marker, self.session.ready_timeout))
    }

    fn markers_seen(vm: &Vm, marker: &str) -> usize {
        let text = fs::read(vm.log_dir().join("serial.log")).unwrap_or_default();
        count_occurrences(&text, marker.as_bytes())
    }

    async fn with_vm<T>(
        &self,
        what: &str,
        f: impl for<'v> FnOnce(&'v mut Vm) -> BoxFuture<'v, Result<T, vm::Error>>,
    ) -> Result<T, EnvError> {
        let mut g = self.inner.lock().await;
        let vm = g.as_mut().ok_or_else(|| EnvError::NoSuchVm {
            name: self.name.clone(),
        })?;
        f(vm).await.map_err(|e| vm_err(&self.name, what, e))
    }
}

/// Tells the serial console's shell that the terminal is wide: at the default 80 columns its
/// line editor wraps a long command line while echoing it, and the mangled echo is then not
/// recognised (and stays in the output). Best effort: a guest without `stty` keeps 80.
async fn widen(s: &mut Session) -> Result<(), vm::Error> {
    s.cmd_output("stty cols 512 2>/dev/null").await?;
    Ok(())
}

fn count_occurrences(hay: &[u8], needle: &[u8]) -> usize {
    if needle.is_empty() {
        return 0;
    }
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}

impl GuestVm for LiveVm {
    fn name(&self) -> &str {
        &self.name
    }

    fn is_alive(&self) -> bool {
        match self.inner.try_lock() {
            Ok(g) => g.as_ref().is_some_and(Vm::is_alive),
            // Busy with an operation: it was alive when that started.
            Err(_) => true,
        }
    }

    fn login(&self, timeout: Duration) -> BoxFuture<'_, Result<Box<dyn RemoteShell>, EnvError>> {
        self.login_via(LoginVia::Serial, timeout)
    }

    fn login_via(
        &self,
        via: LoginVia,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<Box<dyn RemoteShell>, EnvError>> {
        Box::pin(async move {
            let access = match via {
                LoginVia::Serial => Access::Serial,
                LoginVia::Remote { nic } => Access::Remote { nic },
            };
            let s = self
                .with_vm("login", |vm| {
                    Box::pin(async move {
                        let mut s = vm.wait_for_login(access, timeout).await?;
                        if access == Access::Serial {
                            widen(&mut s).await?;
                        }
                        Ok(s)
                    })
                })
                .await?;
            Ok(Box::new(SessionShell::new(s)) as Box<dyn RemoteShell>)
        })
    }

    fn human_monitor_cmd<'a>(&'a self, cmd: &'a str) -> BoxFuture<'a, Result<String, EnvError>> {
        Box::pin(async move {
            let v = self
                .qmp("human-monitor-command", json!({ "command-line": cmd }))
                .await?;
            Ok(v.as_str().unwrap_or_default().to_owned())
        })
    }

    fn qmp<'a>(&'a self, command: &'a str, args: Value) -> BoxFuture<'a, Result<Value, EnvError>> {
        Box::pin(async move {
            let g = self.inner.lock().await;
            let vm = g.as_ref().ok_or_else(|| EnvError::NoSuchVm {
                name: self.name.clone(),
            })?;
            vm.monitor()
                .execute(command, args)
                .await
                .map_err(|e| vm_err(&self.name, &format!("QMP {command}"), e))
        })
    }

    fn reboot(
        &self,
        method: RebootMethod,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<Box<dyn RemoteShell>, EnvError>> {
        Box::pin(async move {
            let ready = self.ready_marker();
            let (session, before) = self
                .with_vm("reboot", |vm| {
                    let ready = ready.clone();
                    Box::pin(async move {
                        let before = ready
                            .as_ref()
                            .map_or(0, |(m, _)| LiveVm::markers_seen(vm, m));
                        let how = match method {
                            RebootMethod::SystemReset => vm::RebootMethod::SystemReset,
                            RebootMethod::Shell => {
                                let s = vm.serial_login(timeout).await?;
                                vm::RebootMethod::Shell(Box::new(s))
                            }
                        };
                        let mut s = vm.reboot(how, Access::Serial, timeout).await?;
                        widen(&mut s).await?;
                        Ok((s, before))
                    })
                })
                .await?;
            if let Some((marker, t)) = ready {
                self.wait_ready(&marker, before + 1, t).await?;
            }
            Ok(Box::new(SessionShell::new(session)) as Box<dyn RemoteShell>)
        })
    }

    fn shutdown(
        &self,
        method: ShutdownMethod,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<(), EnvError>> {
        Box::pin(async move {
            let mut g = self.inner.lock().await;
            let Some(mut vm) = g.take() else {
                return Err(EnvError::NoSuchVm {
                    name: self.name.clone(),
                });
            };
            let started = Instant::now();
            let sent: Result<(), EnvError> = match method {
                ShutdownMethod::Shell => {
                    let Some(cmd) = vm.session_spec().shutdown_command.clone() else {
                        let missing = ::spec::SpecError::Params {
                            vm: self.name.clone(),
                            problems: vec![::spec::Problem {
                                object: format!("vm {}", self.name),
                                key: "shutdown_command".into(),
                                value: None,
                                origin: None,
                                kind: ::spec::ProblemKind::Missing,
                            }],
                        };
                        *g = Some(vm);
                        return Err(vm_err(
                            &self.name,
                            "shutdown from the guest's shell",
                            missing,
                        ));
                    };
                    match vm.serial_login(timeout).await {
                        Ok(mut s) => s
                            .sendline(&cmd)
                            .await
                            .map_err(|e| vm_err(&self.name, "sending the shutdown command", e)),
                        Err(e) => Err(vm_err(&self.name, "login for the shutdown command", e)),
                    }
                }
                ShutdownMethod::SystemPowerdown => vm
                    .monitor()
                    .execute("system_powerdown", json!({}))
                    .await
                    .map(|_| ())
                    .map_err(|e| vm_err(&self.name, "QMP system_powerdown", e)),
            };
            let mut exited = false;
            if sent.is_ok() {
                while started.elapsed() < timeout {
                    if !vm.is_alive() {
                        exited = true;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            let tail = vm.output_tail(10);
            // Whatever happened, the VM is torn down now (a no-op when QEMU already exited).
            let destroyed = vm.destroy(Teardown::Kill).await;
            self.forget_all();
            drop(g);
            sent?;
            if !exited {
                return Err(vm_err(
                    &self.name,
                    "shutdown",
                    Cause(format!(
                        "timed out after {:.0} s waiting for QEMU to exit after the {method:?} \
                         shutdown (it was then killed); QEMU output: {tail}",
                        timeout.as_secs_f64()
                    )),
                ));
            }
            destroyed
                .map(|_| ())
                .map_err(|e| vm_err(&self.name, "cleaning up after the shutdown", e))
        })
    }

    fn migrate(
        &self,
        protocol: MigrationProtocol,
        mode: MigrationMode,
    ) -> BoxFuture<'_, Result<(), EnvError>> {
        Box::pin(async move {
            let mut g = self.inner.lock().await;
            let vm = g.as_mut().ok_or_else(|| EnvError::NoSuchVm {
                name: self.name.clone(),
            })?;
            let old = vm.pid();
            let p = match protocol {
                MigrationProtocol::Tcp => vm::MigrationProtocol::Tcp,
                MigrationProtocol::Unix => vm::MigrationProtocol::Unix,
                MigrationProtocol::Exec => vm::MigrationProtocol::Exec,
            };
            let r = vm
                .migrate_with(p, matches!(mode, MigrationMode::Offline))
                .await;
            if vm.pid() != old {
                // The destination replaced the source (even if a later check failed).
                self.forget_all();
                self.adopt(vm);
            }
            r.map_err(|e| {
                vm_err(
                    &self.name,
                    &format!("{mode:?} migration over {protocol:?}"),
                    e,
                )
            })
        })
    }

    fn hotplug_nic<'a>(&'a self, driver: &'a str) -> BoxFuture<'a, Result<Hotplugged, EnvError>> {
        Box::pin(async move {
            let nic = self
                .with_vm("NIC hotplug", |vm| {
                    let d = driver.to_owned();
                    Box::pin(async move { vm.hotplug_nic(&d).await })
                })
                .await?;
            let h = Hotplugged {
                id: nic.id.clone(),
                driver: driver.to_owned(),
                mac: Some(nic.mac.to_string()),
            };
            if let Ok(mut m) = self.hot.lock() {
                m.insert(nic.id.clone(), Hot::Nic(nic));
            }
            Ok(h)
        })
    }

    fn hotplug_disk<'a>(
        &'a self,
        path: &'a Path,
        format: &'a str,
        driver: &'a str,
    ) -> BoxFuture<'a, Result<Hotplugged, EnvError>> {
        Box::pin(async move {
            let disk = self
                .with_vm("disk hotplug", |vm| {
                    let (p, f, d) = (path.to_path_buf(), format.to_owned(), driver.to_owned());
                    Box::pin(async move { vm.hotplug_disk(&p, &f, &d).await })
                })
                .await?;
            let h = Hotplugged {
                id: disk.id.clone(),
                driver: driver.to_owned(),
                mac: None,
            };
            if let Ok(mut m) = self.hot.lock() {
                m.insert(disk.id.clone(), Hot::Disk(disk));
            }
            Ok(h)
        })
    }

    fn unplug<'a>(&'a self, device: &'a Hotplugged) -> BoxFuture<'a, Result<(), EnvError>> {
        Box::pin(async move {
            let hot = self.hot.lock().ok().and_then(|mut m| m.remove(&device.id));
            match hot {
                Some(Hot::Nic(nic)) => {
                    self.with_vm("NIC unplug", |vm| {
                        Box::pin(async move { vm.unplug_nic(&nic).await })
                    })
                    .await
                }
                Some(Hot::Disk(disk)) => {
                    self.with_vm("disk unplug", |vm| {
                        Box::pin(async move { vm.unplug_disk(&disk).await })
                    })
                    .await
                }
                None => {
                    let id = device.id.clone();
                    self.with_vm("unplug", |vm| {
                        Box::pin(async move { vm.unplug_device(&id).await })
                    })
                    .await
                }
            }
        })
    }
}

/// A guest shell from `crates/vm` ([`Session`]) as a [`RemoteShell`].
pub struct SessionShell {
    session: Session,
}

impl std::fmt::Debug for SessionShell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionShell")
            .field("session", &self.session.describe())
            .finish()
    }
}

impl SessionShell {
    /// Wraps a logged-in session.
    pub fn new(session: Session) -> Self {
        SessionShell { session }
    }
}

fn shell_err(e: vm::SessionError) -> ShellError {
    match e {
        vm::SessionError::CommandFailed {
            command,
            status,
            output,
            ..
        } => ShellError::Status {
            cmd: command,
            status: status.to_string(),
            output,
        },
        other => ShellError::Io {
            what: "guest session",
            source: std::io::Error::other(crate::error_chain(&other)),
        },
    }
}

impl RemoteShell for SessionShell {
    fn prompt(&self) -> &Regex {
        &self.session.config().prompt
    }

    fn send_line<'a>(&'a mut self, line: &'a str) -> BoxFuture<'a, Result<(), ShellError>> {
        Box::pin(async move { self.session.sendline(line).await.map_err(shell_err) })
    }

    fn read_until_last_line_matches<'a>(
        &'a mut self,
        patterns: &'a [Regex],
        timeout: Duration,
    ) -> BoxFuture<'a, Result<(usize, String), ShellError>> {
        Box::pin(async move {
            let prompt = self.session.config().prompt.as_str().to_owned();
            match patterns.iter().position(|p| p.as_str() == prompt) {
                Some(i) if patterns.len() == 1 => {
                    let text = self
                        .session
                        .read_up_to_prompt(timeout, "the shell prompt")
                        .await
                        .map_err(shell_err)?;
                    Ok((i, text))
                }
                _ => Err(ShellError::Io {
                    what: "guest session",
                    source: std::io::Error::other(
                        "guest sessions wait for their shell prompt only",
                    ),
                }),
            }
        })
    }

    fn read_up_to_prompt(
        &mut self,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<String, ShellError>> {
        Box::pin(async move {
            self.session
                .read_up_to_prompt(timeout, "the shell prompt")
                .await
                .map_err(shell_err)
        })
    }

    fn cmd_output<'a>(
        &'a mut self,
        cmd: &'a str,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<String, ShellError>> {
        Box::pin(async move {
            self.session
                .cmd_output_timeout(cmd, timeout)
                .await
                .map_err(shell_err)
        })
    }

    fn cmd<'a>(&'a mut self, cmd: &'a str) -> BoxFuture<'a, Result<String, ShellError>> {
        Box::pin(async move { self.session.cmd(cmd).await.map_err(shell_err) })
    }
}
