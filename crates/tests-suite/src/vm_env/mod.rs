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
use vm::{Access, DiskPlug, HotDisk, HotNic, PlanOptions, Qemu, Session, Vm, VmSetup};

use crate::env::{
    EnvError, EnvFactory, GuestVm, Hotplugged, LoginVia, MigrationMode, MigrationOutcome,
    MigrationProtocol, MigrationRequest, RebootMethod, ShutdownMethod, Teardown, VmEnv, VmStart,
    WorkerSlot,
};
use crate::future::BoxFuture;
use crate::gc::{process_start_time, Resource, ResourceRecorder};
use crate::shell::{RemoteShell, ShellError};

mod guest;
mod live;
mod shell;

pub use live::LiveVm;
use live::Segment;
pub use shell::SessionShell;

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
    program_path(&binary).ok_or_else(|| FactoryError::NoQemu(binary.display().to_string()))
}

/// A program as the shell would find it: a bare name on `PATH`, a path as it is.
fn program_path(program: &Path) -> Option<PathBuf> {
    if program.components().count() > 1 {
        return Some(program.to_path_buf());
    }
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
    /// The file `qemu` runs (links resolved), to recognise a `qemu_binary` naming it.
    qemu_file: Option<PathBuf>,
    /// Other QEMUs variants named in `qemu_binary`, probed once each.
    others: Mutex<HashMap<PathBuf, Arc<Qemu>>>,
    guest_dir: PathBuf,
    image_dir: PathBuf,
    recorder: ResourceRecorder,
    vms: Mutex<BTreeMap<String, Arc<LiveVm>>>,
    /// `<path> (<version>)` of the QEMU, reported with every test.
    qemu_name: String,
    /// Saved states (`restore_from_snapshot`) by QEMU and command line ([`state_key`]).
    states: Mutex<HashMap<String, Arc<vm::SavedState>>>,
    /// Where saved states go (beside the worker's image directory).
    states_dir: PathBuf,
    /// Saves made so far: each gets a directory of its own (a state replaced by a new save of
    /// the same command line keeps its directory until it is dropped).
    saves: std::sync::atomic::AtomicUsize,
    /// Image files made by `prepare_image` since the last VM start: a VM with one of them is
    /// not restored (its test asked for a new image, not the saved one).
    fresh_images: Mutex<Vec<PathBuf>>,
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
        let image_dir: PathBuf = image_dir.into();
        let states_dir = image_dir.with_file_name("states");
        VmLayerEnv {
            states: Mutex::new(HashMap::new()),
            states_dir,
            saves: std::sync::atomic::AtomicUsize::new(0),
            fresh_images: Mutex::new(Vec::new()),
            qemu_file: program_path(qemu.binary()).and_then(|p| fs::canonicalize(p).ok()),
            qemu,
            others: Mutex::new(HashMap::new()),
            guest_dir: guest_dir.into(),
            image_dir,
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

    /// The QEMU of the variant's main VM; `None` without one, or when its spec or binary is
    /// bad (starting it reports why).
    fn main_qemu(&self, params: &Params) -> Option<Arc<Qemu>> {
        let vm = spec::TestTarget::read(params).ok()?.main_vm?;
        let spec = spec::VmSpec::new(params, &vm).ok()?;
        self.qemu_for(&spec).ok()
    }

    /// The QEMU of VM `spec`: its `qemu_binary` (`--qemu` and the settings' `qemu_binary` are
    /// already in every variant; a relative path is under the guest directory, a bare name on
    /// `PATH`), or this environment's QEMU when it names avocado-vt's default `qemu` or the
    /// same file. Another binary is probed once and kept.
    ///
    /// # Errors
    /// A binary that cannot be found or probed.
    pub fn qemu_for(&self, spec: &spec::VmSpec) -> Result<Arc<Qemu>, EnvError> {
        let named = spec.qemu_binary.as_str();
        if named == "qemu" {
            return Ok(Arc::clone(&self.qemu));
        }
        let path = Path::new(named);
        let binary = if path.is_relative() && path.components().count() > 1 {
            Some(self.guest_dir.join(path))
        } else {
            program_path(path)
        }
        .ok_or_else(|| {
            vm_err(
                &spec.name,
                "finding qemu_binary",
                FactoryError::NoQemu(named.to_string()),
            )
        })?;
        if self.qemu_file.is_some() && fs::canonicalize(&binary).ok() == self.qemu_file {
            return Ok(Arc::clone(&self.qemu));
        }
        let mut others = self.others.lock().map_err(|_| {
            vm_err(
                &spec.name,
                "probing qemu_binary",
                Cause("lock poisoned".into()),
            )
        })?;
        if let Some(q) = others.get(&binary) {
            return Ok(Arc::clone(q));
        }
        let probed = Qemu::probe(&binary).map_err(|e| {
            vm_err(
                &spec.name,
                "probing qemu_binary",
                FactoryError::Probe {
                    binary: binary.clone(),
                    source: Box::new(e),
                },
            )
        })?;
        let q = Arc::new(probed.with_accel(self.qemu.accel()));
        others.insert(binary, Arc::clone(&q));
        Ok(q)
    }

    /// The command line VM `name` of `params` would get, run-specific parts as placeholders.
    ///
    /// # Errors
    /// The spec's problems, or what this QEMU cannot do.
    pub fn fingerprint(&self, setup: &VmSetup) -> Result<String, EnvError> {
        self.qemu_for(&setup.spec)?
            .fingerprint(&setup.spec)
            .map_err(|e| vm_err(&setup.spec.name, "building the command line", e))
    }

    /// How this environment's VMs are planned: relative cfg paths under the guest directory,
    /// relative images under the worker's image directory.
    fn plan_options(&self) -> PlanOptions<'static> {
        PlanOptions {
            root_dir: self.guest_dir.clone(),
            image_dir: Some(self.image_dir.clone()),
            migration_source: None,
            incoming: None,
            restore: None,
        }
    }

    async fn create(&self, setup: VmSetup, fingerprint: String) -> Result<Arc<LiveVm>, EnvError> {
        let name = setup.spec.name.clone();
        let test_dir = setup.log_dir.clone();
        let qemu = self.qemu_for(&setup.spec)?;
        let vm = Vm::start(qemu, setup, &self.plan_options())
            .await
            .map_err(|e| vm_err(&name, "start", e))?;
        Ok(self.adopt(vm, fingerprint, test_dir).await)
    }

    /// `vm` as a VM of this environment, its logs first in `test_dir`.
    async fn adopt(&self, vm: Vm, fingerprint: String, test_dir: PathBuf) -> Arc<LiveVm> {
        let name = vm.name().to_owned();
        let live = Arc::new(LiveVm {
            name,
            fingerprint,
            session: vm.session_spec().clone(),
            recorder: self.recorder.clone(),
            recorded: Mutex::new(Vec::new()),
            hot: Mutex::new(HashMap::new()),
            altered: std::sync::atomic::AtomicBool::new(false),
            segment: Mutex::new(Segment {
                test_dir,
                reused: false,
                log_dirs: vec![vm.log_dir().to_path_buf()],
                offsets: HashMap::new(),
                log_spans: Vec::new(),
            }),
            inner: tokio::sync::Mutex::new(None),
        });
        live.adopt(&vm);
        *live.inner.lock().await = Some(vm);
        live
    }
}

impl VmLayerEnv {
    /// The key of a saved state: the QEMU (path and version) and the stable command line.
    fn state_key(&self, setup: &VmSetup, fingerprint: &str) -> Result<String, EnvError> {
        let qemu = self.qemu_for(&setup.spec)?;
        Ok(format!(
            "{}\n{fingerprint}",
            vm::fixtures::describe_qemu(qemu.binary(), &qemu.caps().version)
        ))
    }

    /// The images `prepare_image` made for this test that `setup`'s VM has (taken from the
    /// list; those of other VMs stay for their starts).
    fn take_fresh_images(&self, setup: &VmSetup) -> Vec<PathBuf> {
        let Ok(mut fresh) = self.fresh_images.lock() else {
            return Vec::new();
        };
        let mine = |p: &PathBuf| {
            setup
                .spec
                .images
                .iter()
                .any(|i| self.image_dir.join(i.file_name()) == *p)
        };
        let (taken, kept): (Vec<PathBuf>, Vec<PathBuf>) =
            std::mem::take(&mut *fresh).into_iter().partition(mine);
        *fresh = kept;
        taken
    }

    /// A new VM of `setup` from `saved` (see `vm::Vm::restore`).
    async fn restore(
        &self,
        setup: VmSetup,
        fingerprint: String,
        saved: &vm::SavedState,
    ) -> Result<Arc<LiveVm>, EnvError> {
        let name = setup.spec.name.clone();
        let qemu = self.qemu_for(&setup.spec)?;
        let test_dir = setup.log_dir.clone();
        let vm = Vm::restore(qemu, setup, &self.plan_options(), saved)
            .await
            .map_err(|e| vm_err(&name, "restore", e))?;
        Ok(self.adopt(vm, fingerprint, test_dir).await)
    }

    /// Waits for the login of the freshly booted `live` (the state must be of a guest that is
    /// up), then saves its state under `key`; says what it did, or why it saved nothing.
    ///
    /// # Errors
    /// [`EnvError::NoLogin`]: the guest never came up.
    async fn save(&self, name: &str, live: &Arc<LiveVm>, key: String) -> Result<String, EnvError> {
        let why_not = live
            .with_vm("checking its state can be saved", |vm| {
                Box::pin(async move { Ok((vm.why_not_restorable(), vm.spec().nics.is_empty())) })
            })
            .await?;
        let no_nics = match why_not {
            (Some(why), _) => return Ok(format!("its state is not saved for restores: {why}")),
            (None, no_nics) => no_nics,
        };
        let via = if no_nics {
            LoginVia::Serial
        } else {
            LoginVia::Remote { nic: 0 }
        };
        let shell = live.login_via(via, live.session.login_timeout).await?;
        // Logged out again: the saved guest has no session a restored one would lack.
        drop(shell);
        let n = self.saves.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = self.states_dir.join(format!("{name}-{n}"));
        if let Err(e) = fs::create_dir_all(&self.states_dir) {
            return Ok(format!(
                "its state is not saved for restores: creating {}: {e}",
                self.states_dir.display()
            ));
        }
        let t = Instant::now();
        let saved = live
            .with_vm("saving its state", |vm| {
                let dir = dir.clone();
                Box::pin(async move { vm.save_state(&dir).await })
            })
            .await;
        match saved {
            Ok(saved) => {
                let text = format!(
                    "logged in, its state saved for restores ({} MiB, {:.1} s)",
                    saved.bytes() / (1024 * 1024),
                    t.elapsed().as_secs_f64()
                );
                if let Ok(mut m) = self.states.lock() {
                    m.insert(key, Arc::new(saved));
                }
                Ok(text)
            }
            Err(e) => Ok(format!(
                "its state is not saved for restores: {}",
                crate::error_chain(&e)
            )),
        }
    }
}

impl VmEnv for VmLayerEnv {
    fn qemu(&self) -> Option<String> {
        Some(self.qemu_name.clone())
    }

    fn qemu_binary(&self, params: &Params) -> Option<PathBuf> {
        Some(self.main_qemu(params)?.binary().to_path_buf())
    }

    fn qemu_version(&self, params: &Params) -> Option<[u64; 3]> {
        let v = self.main_qemu(params)?.caps().version;
        Some([v.major.into(), v.minor.into(), v.micro.into()])
    }

    fn start_vm<'a>(
        &'a self,
        name: &'a str,
        params: &'a Params,
        test_dir: &'a Path,
    ) -> BoxFuture<'a, Result<VmStart, EnvError>> {
        Box::pin(async move {
            let setup = Self::setup(name, params, test_dir)?;
            let fingerprint = self.fingerprint(&setup)?;
            let fresh = self.take_fresh_images(&setup);
            if let Some(live) = self.get(name) {
                let altered = live.altered.load(std::sync::atomic::Ordering::SeqCst);
                if live.is_alive() && live.fingerprint == fingerprint && !altered {
                    live.begin_reuse(test_dir);
                    return Ok(VmStart::Reused);
                }
                // A different command line, a device of its command line unplugged, or a dead
                // VM: replace it.
                self.destroy_vm(name, Teardown::Kill).await?;
            }
            let mode = spec::Processing::before(params)
                .map_err(|e| vm_err(name, "start", e))?
                .vms
                .iter()
                .find(|v| v.name == name)
                .map(|v| v.restore)
                .unwrap_or_default();
            let restore = mode == spec::Restore::Yes;
            let key = self.state_key(&setup, &fingerprint)?;
            let saved = self.states.lock().ok().and_then(|m| m.get(&key).cloned());
            let mut note = None;
            match (restore, saved) {
                (true, Some(_)) if !fresh.is_empty() => {
                    note = Some(format!(
                        "not restored from its saved state: this test created {}",
                        fresh
                            .iter()
                            .map(|p| p.display().to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                (true, Some(saved)) => {
                    let t = Instant::now();
                    match self
                        .restore(setup.clone(), fingerprint.clone(), &saved)
                        .await
                    {
                        Ok(live) => {
                            if let Ok(mut m) = self.vms.lock() {
                                m.insert(name.to_owned(), live);
                            }
                            return Ok(VmStart::Restored(format!(
                                "the state of the VM logged in {} ({} MiB), in {:.1} s",
                                saved.saved_from().display(),
                                saved.bytes() / (1024 * 1024),
                                t.elapsed().as_secs_f64()
                            )));
                        }
                        Err(e) => {
                            note = Some(format!(
                                "restoring its saved state failed, so it boots: {}",
                                crate::error_chain(&e)
                            ));
                        }
                    }
                }
                _ => {}
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
            // `yes`: the first boot of this command line is saved; `save`: every boot is.
            if mode != spec::Restore::No && note.is_none() {
                note = Some(self.save(name, &live, key).await?);
            }
            Ok(VmStart::Booted(note))
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
                .map_err(|e| vm_err(vm, &format!("image {name}: parameters"), e))?;
            if img.path.exists() && !image.force_create {
                // Kept (`create_image` creates a missing image only): a reused VM may have it
                // open.
                return Ok(());
            }
            // A relative name lands under the run's image directory, as avocado-vt's under its
            // data directory, whose `images/` exists: its directories are made here (never
            // those of an absolute path, which is the user's).
            if let Some(parent) = img.path.parent() {
                if parent.starts_with(&self.image_dir) && !parent.exists() {
                    std::fs::create_dir_all(parent).map_err(|e| {
                        vm_err(
                            vm,
                            &format!("image {name}: creating {}", parent.display()),
                            e,
                        )
                    })?;
                }
            }
            let what = format!("image {name}: creating it");
            let path = img.path.clone();
            blocking(vm, &what, move || img.create()).await?;
            if let Ok(mut f) = self.fresh_images.lock() {
                f.push(path);
            }
            Ok(())
        })
    }

    fn image_file(
        &self,
        vm: &str,
        image: &str,
        params: &Params,
    ) -> Result<(PathBuf, String), EnvError> {
        let img = vm::image::Image::from_params(params, vm, image, &self.image_dir)
            .map_err(|e| vm_err(vm, &format!("image {image}: parameters"), e))?;
        Ok((img.path, img.format))
    }

    fn remove_image<'a>(
        &'a self,
        vm: &'a str,
        image: &'a str,
        params: &'a Params,
    ) -> BoxFuture<'a, Result<(), EnvError>> {
        Box::pin(async move {
            let img = vm::image::Image::from_params(params, vm, image, &self.image_dir)
                .map_err(|e| vm_err(vm, &format!("image {image}: parameters"), e))?;
            let what = format!("image {image}: removing it");
            blocking(vm, &what, move || img.remove()).await
        })
    }

    fn end_test<'a>(&'a self, test_dir: &'a Path) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if let Ok(mut f) = self.fresh_images.lock() {
                f.clear();
            }
            let all: Vec<(String, Arc<LiveVm>)> = self
                .vms
                .lock()
                .map(|m| m.iter().map(|(k, v)| (k.clone(), Arc::clone(v))).collect())
                .unwrap_or_default();
            for (name, live) in all {
                if live.segment_dir().as_deref() == Some(test_dir) {
                    live.copy_segment();
                }
                live.end_log_spans();
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
