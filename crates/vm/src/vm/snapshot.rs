//! Saving a running VM's state and starting a new VM from it instead of booting: the
//! mechanism behind `restore_from_snapshot` (the environment decides when; this module does it).
//!
//! * **Save** ([`Vm::save_state`]): the guest is paused, its state migrated into a file QEMU gets
//!   by descriptor (`getfd`, `migrate fd:NAME`: no shell, no path in a URI), and once the
//!   migration has completed (QEMU has flushed and let go of the images) each writable image is
//!   copied beside it; then the guest runs on (`cont` re-activates the images), as libvirt's live
//!   external snapshots do. The VM's migration speed limit is lifted for the save and put back.
//! * **Restore** ([`Vm::restore`]): each image gets its saved copy back, a new QEMU with the
//!   same command line starts with `-incoming defer`, the MACs and UUID of the saved VM
//!   ([`crate::plan::Identity`]), loads the file (`migrate-incoming fd:NAME`) and is resumed; the
//!   guest's clock, left at the moment of the save, is set to the host's through the guest
//!   agent when the VM has one.
//!
//! Only a VM whose whole state is in QEMU and its qcow2 images can be restored: every NIC on
//! user networking (a tap's bridge, DHCP server and leases live outside), no vsock (its CID is
//! claimed on the host), host device, TPM or virtio-fs export, every writable image a local
//! qcow2 file without `-snapshot`. Anything else is [`Error::Snapshot`] naming what is in the way.

use std::os::fd::AsFd;
use std::time::SystemTime;

use super::*;
use crate::plan::Identity;

/// The descriptor name QEMU knows the state file by (`getfd`).
const STATE_FD: &str = "kvmtest-state";

/// One image of a saved state: where the VM's image is, and its copy taken at the save.
#[derive(Debug, Clone)]
struct SavedImage {
    live: PathBuf,
    copy: PathBuf,
}

/// A VM's saved state: the migration stream in a file, a copy of each writable image, and the
/// identity (MACs, UUID) a restored VM must have. Its directory is removed when it is dropped.
#[derive(Debug)]
pub struct SavedState {
    dir: PathBuf,
    state: PathBuf,
    images: Vec<SavedImage>,
    identity: Identity,
    /// The log directory of the VM that was saved.
    saved_from: PathBuf,
    /// When the save completed.
    saved_at: SystemTime,
    /// Bytes of the state file and the image copies.
    bytes: u64,
}

impl SavedState {
    /// The log directory of the VM that was saved.
    pub fn saved_from(&self) -> &Path {
        &self.saved_from
    }

    /// Bytes on disk (state file and image copies).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// When the save completed.
    pub fn saved_at(&self) -> SystemTime {
        self.saved_at
    }
}

impl Drop for SavedState {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Why a VM of `spec` cannot be saved and restored, or the writable images to copy (their
/// paths under `image_dir`).
fn restorable(spec: &VmSpec, image_dir: &Path) -> Result<Vec<PathBuf>, String> {
    if let Some(nic) = spec.nics.iter().find(|n| !matches!(n.mode, NicMode::User)) {
        return Err(format!(
            "NIC {} is not on user networking (`nettype`): its host side (tap, bridge, DHCP \
             leases) is not part of QEMU's state",
            nic.name
        ));
    }
    if let Some(v) = spec.peripherals.vsocks.first() {
        return Err(format!("vsock {v}: its guest CID is claimed on the host"));
    }
    if !spec.hostdevs.is_empty() {
        return Err("`vm_hostdevs`: a host device's state is not QEMU's".into());
    }
    if !spec.tpms.is_empty() {
        return Err("`tpms`: swtpm's state is not QEMU's".into());
    }
    if !spec.filesystems.is_empty() {
        return Err("`filesystems`: virtiofsd's state is not QEMU's".into());
    }
    let mut images = Vec::new();
    for img in &spec.images {
        if img.readonly {
            continue;
        }
        let why = if img.backend.uri().is_some() || img.raw_device {
            Some("not a local image file")
        } else if img.snapshot {
            Some("`image_snapshot = yes`: its writes go to a temporary file")
        } else if img.format != spec::types::ImageFormat::Qcow2 {
            Some("not qcow2")
        } else {
            None
        };
        if let Some(why) = why {
            return Err(format!("image {}: {why}", img.name));
        }
        images.push(image_dir.join(img.file_name()));
    }
    Ok(images)
}

impl Vm {
    /// Why this VM's state could not be saved and restored (what is in the way), or `None`.
    pub fn why_not_restorable(&self) -> Option<String> {
        restorable(&self.setup.spec, &self.plan.values().image_dir).err()
    }

    /// Saves this VM's state into the directory `dir` (created; it must not hold another
    /// state) and lets the guest run on: see the module docs.
    ///
    /// # Errors
    /// [`Error::Snapshot`] when the VM cannot be restored (what is in the way) or the save
    /// failed (the guest is resumed if it was running); monitor and I/O errors.
    pub async fn save_state(&mut self, dir: &Path) -> Result<SavedState, Error> {
        let fail = |why: String| Error::Snapshot {
            vm: self.name.clone(),
            why,
        };
        let images = restorable(&self.setup.spec, &self.plan.values().image_dir).map_err(&fail)?;
        fs::create_dir(dir).map_err(io_err("creating the state directory", dir))?;
        let started = Instant::now();
        let was_running = self.status().await? == "running";
        if was_running {
            self.pause().await?;
        }
        let saved = self.save_paused(dir, images).await;
        if was_running {
            // After a completed migration the source is `postmigrate`; `cont` re-activates its
            // images and runs the guest on (after a failed one it is merely paused).
            self.resume().await?;
        }
        let saved = match saved {
            Ok(s) => s,
            Err(e) => {
                let _ = fs::remove_dir_all(dir);
                return Err(e);
            }
        };
        self.log_line(&format!(
            "state saved to {} in {} ({} MiB with {} image copies); the guest runs on",
            dir.display(),
            secs(&started.elapsed()),
            saved.bytes / (1024 * 1024),
            saved.images.len()
        ));
        Ok(saved)
    }

    async fn save_paused(&self, dir: &Path, images: Vec<PathBuf>) -> Result<SavedState, Error> {
        let state = dir.join("state");
        let file = File::create(&state).map_err(io_err("creating the state file", &state))?;
        self.log_line(&format!(
            "QMP getfd {{\"fdname\":\"{STATE_FD}\"}} (with {})",
            state.display()
        ));
        self.qmp
            .execute_with_fds("getfd", json!({"fdname": STATE_FD}), &[file.as_fd()])
            .await
            .map_err(self.monitor_err("QMP getfd (the state file)"))?;
        drop(file);
        // Not throttled by the default (or a test's) speed limit; the old limit comes back.
        let params = self.qmp_exec("query-migrate-parameters", json!({})).await?;
        let old_limit = params.get("max-bandwidth").and_then(Value::as_u64);
        self.qmp_exec(
            "migrate-set-parameters",
            json!({"max-bandwidth": 64u64 << 30}),
        )
        .await?;
        let uri = format!("fd:{STATE_FD}");
        let migrated = async {
            self.qmp_exec("migrate", json!({"uri": uri})).await?;
            self.wait_migration(&uri, self.setup.timeouts.migrate).await
        }
        .await;
        if let Some(limit) = old_limit {
            self.qmp_exec("migrate-set-parameters", json!({"max-bandwidth": limit}))
                .await?;
        }
        migrated?;
        let mut saved = Vec::new();
        let mut bytes = fs::metadata(&state).map(|m| m.len()).unwrap_or(0);
        for (i, live) in images.into_iter().enumerate() {
            let name = live
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let copy = dir.join(format!("{i}-{name}"));
            bytes += fs::copy(&live, &copy).map_err(io_err(
                format!("copying image {} for the saved state", live.display()),
                &copy,
            ))?;
            saved.push(SavedImage { live, copy });
        }
        Ok(SavedState {
            dir: dir.to_path_buf(),
            state,
            images: saved,
            identity: self.plan.identity(),
            saved_from: self.log_dir.clone(),
            saved_at: SystemTime::now(),
            bytes,
        })
    }

    /// Starts the VM of `setup` from `saved` instead of booting it: see the module docs. The
    /// command line must be the saved VM's (the caller keys states by it); `opts` as for
    /// [`Vm::start`] (its `incoming` and `restore` are set here).
    ///
    /// # Errors
    /// Start errors; [`Error::Snapshot`] when the state does not load, the VM does not run
    /// after it, or the guest agent does not set the clock (the new VM is destroyed).
    pub async fn restore(
        qemu: Arc<Qemu>,
        setup: VmSetup,
        opts: &PlanOptions<'_>,
        saved: &SavedState,
    ) -> Result<Vm, Error> {
        let started = Instant::now();
        for img in &saved.images {
            fs::copy(&img.copy, &img.live).map_err(io_err(
                format!(
                    "putting back the saved copy {} of the image",
                    img.copy.display()
                ),
                &img.live,
            ))?;
        }
        let opts = PlanOptions {
            incoming: Some(qemu_cmd::Incoming::defer()),
            restore: Some(&saved.identity),
            ..opts.clone()
        };
        let mut vm = Vm::start(qemu, setup, &opts).await?;
        match vm.load_state(saved).await {
            Ok(()) => {
                vm.log_line(&format!(
                    "restored in {} from the state saved by {} ({} MiB)",
                    secs(&started.elapsed()),
                    saved.saved_from.display(),
                    saved.bytes / (1024 * 1024)
                ));
                Ok(vm)
            }
            Err(e) => {
                vm.log_line(&format!("restoring failed: {e}"));
                let _ = vm.destroy(Teardown::Kill).await;
                Err(e)
            }
        }
    }

    async fn load_state(&mut self, saved: &SavedState) -> Result<(), Error> {
        let name = self.name.clone();
        let fail = |why: String| Error::Snapshot {
            vm: name.clone(),
            why,
        };
        let file = File::open(&saved.state).map_err(io_err("opening the state", &saved.state))?;
        self.log_line(&format!(
            "QMP getfd {{\"fdname\":\"{STATE_FD}\"}} (with {})",
            saved.state.display()
        ));
        self.qmp
            .execute_with_fds("getfd", json!({"fdname": STATE_FD}), &[file.as_fd()])
            .await
            .map_err(self.monitor_err("QMP getfd (the state file)"))?;
        drop(file);
        let uri = format!("fd:{STATE_FD}");
        self.qmp_exec("migrate-incoming", json!({"uri": uri}))
            .await?;
        let timeout = self.setup.timeouts.migrate;
        self.wait_status(&uri, timeout, |st| st != "inmigrate")
            .await?;
        let status = self.status().await?;
        match status.as_str() {
            "running" => {}
            // The guest was paused for the save: the loaded VM is too.
            "paused" | "prelaunch" => self.resume().await?,
            other => {
                return Err(fail(format!(
                    "after loading the state QEMU is `{other}`: {}",
                    self.output_tail(10)
                )))
            }
        }
        // The guest's clock stood still since the save.
        let agent_port = &self.setup.session.agent_serial;
        if self
            .setup
            .spec
            .serials
            .iter()
            .any(|s| &s.name == agent_port)
        {
            let now = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
                .unwrap_or(0);
            let agent = self.guest_agent().await?;
            agent.set_time(Some(now)).await.map_err(|e| {
                fail(format!(
                    "setting the guest's clock through the guest agent: {e}"
                ))
            })?;
            self.log_line("the guest's clock set to the host's (guest-set-time)");
        } else {
            self.log_line(&format!(
                "the guest's clock was not set: no guest agent (`gagent_name` = {agent_port} \
                 is not in `serials`); it runs from the moment of the save"
            ));
        }
        Ok(())
    }
}
