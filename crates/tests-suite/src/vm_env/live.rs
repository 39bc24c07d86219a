//! A VM of the environment: the `vm::Vm` behind a lock, its per-test log segments, its
//! gc records and its readiness wait.

use super::*;

/// The part of a VM's logs that belongs to the current test.
#[derive(Debug)]
pub(super) struct Segment {
    /// The test using the VM.
    pub(super) test_dir: PathBuf,
    /// Whether the VM was started by an earlier test (its logs are elsewhere).
    pub(super) reused: bool,
    /// The VM's log directories (a migration adds the destination's).
    pub(super) log_dirs: Vec<PathBuf>,
    /// File sizes when the test started.
    pub(super) offsets: HashMap<PathBuf, u64>,
    /// Where the console's and QEMU's lines go as events (a migration adds the
    /// destination's): the span of the test using the VM, none between tests.
    pub(super) log_spans: Vec<vm::LogSpan>,
}

/// A hot-plugged device, as `vm` needs it for the unplug.
#[derive(Debug, Clone)]
pub(super) enum Hot {
    Nic(HotNic),
    Disk(HotDisk),
    Vcpu(vm::HotVcpu),
}

/// One VM of a [`VmLayerEnv`]: a `vm::Vm` (absent once shut down) behind an async lock.
pub struct LiveVm {
    pub(super) name: String,
    pub(super) fingerprint: String,
    /// The session keys, as `Vm::create` read (and checked) them.
    pub(super) session: vm::SessionSpec,
    pub(super) recorder: ResourceRecorder,
    pub(super) recorded: Mutex<Vec<Resource>>,
    pub(super) hot: Mutex<HashMap<String, Hot>>,
    /// A device of its command line was unplugged: the VM no longer is what its command line
    /// says, so no later test reuses it.
    pub(super) altered: std::sync::atomic::AtomicBool,
    pub(super) segment: Mutex<Segment>,
    pub(super) inner: tokio::sync::Mutex<Option<Vm>>,
}

impl std::fmt::Debug for LiveVm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveVm")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

pub(super) const ARGV_FILES: [&str; 2] = ["qemu-argv.json", "qemu-argv.txt"];

impl LiveVm {
    /// Records `vm`'s process group, run directory and sockets for gc and writes its argv.
    pub(super) fn adopt(&self, vm: &Vm) {
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
            s.log_spans.push(vm.log_span().clone());
        }
    }

    /// Forgets every recorded resource (the VM is gone).
    pub(super) fn forget_all(&self) {
        let res = self
            .recorded
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default();
        for r in &res {
            let _ = self.recorder.forget(r);
        }
    }

    /// The test is over: the console's and QEMU's lines are no longer its events.
    pub(super) fn end_log_spans(&self) {
        if let Ok(s) = self.segment.lock() {
            for span in &s.log_spans {
                span.set(tracing::Span::none());
            }
        }
    }

    pub(super) fn segment_dir(&self) -> Option<PathBuf> {
        self.segment.lock().ok().map(|s| s.test_dir.clone())
    }

    /// A new test reuses the VM: remember where its logs stand.
    pub(super) fn begin_reuse(&self, test_dir: &Path) {
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
            for span in &s.log_spans {
                span.set(tracing::Span::current());
            }
        }
    }

    /// Copies what the logs gained since [`begin_reuse`](Self::begin_reuse) into the test's
    /// directory (only for a reused VM: a VM's own test already holds its logs).
    pub(super) fn copy_segment(&self) {
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

    pub(super) async fn destroy(&self, how: Teardown) -> Result<(), EnvError> {
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
    pub(super) async fn wait_ready(
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

    pub(super) async fn tail(&self) -> String {
        self.inner
            .lock()
            .await
            .as_ref()
            .map(|vm| vm.output_tail(10))
            .unwrap_or_default()
    }

    /// `guest_ready_marker` and how long to wait for it (`guest_ready_timeout`, else
    /// `login_timeout`), as the session spec read them.
    pub(super) fn ready_marker(&self) -> Option<(String, Duration)> {
        let marker = self.session.ready_marker.clone()?;
        Some((marker, self.session.ready_timeout))
    }

    pub(super) fn markers_seen(vm: &Vm, marker: &str) -> usize {
        let text = fs::read(vm.log_dir().join("serial.log")).unwrap_or_default();
        count_occurrences(&text, marker.as_bytes())
    }

    /// The `vm` handle of hot-plugged NIC `nic`.
    pub(super) fn hot_nic(&self, nic: &crate::env::Hotplugged) -> Result<vm::HotNic, EnvError> {
        match self.hot.lock().ok().and_then(|m| m.get(&nic.id).cloned()) {
            Some(Hot::Nic(n)) => Ok(n),
            _ => Err(EnvError::Unsupported {
                what: format!("{} is no NIC hot-plugged by this test", nic.id),
            }),
        }
    }

    pub(super) async fn with_vm<T>(
        &self,
        what: &str,
        f: impl for<'v> FnOnce(&'v mut Vm) -> BoxFuture<'v, Result<T, vm::Error>>,
    ) -> Result<T, EnvError> {
        let mut g = self.inner.lock().await;
        let vm = g.as_mut().ok_or_else(|| EnvError::NoSuchVm {
            name: self.name.clone(),
        })?;
        let serial = vm.log_dir().join("serial.log");
        f(vm).await.map_err(|e| {
            if no_login(&e) {
                EnvError::NoLogin {
                    name: self.name.clone(),
                    crash: guest_crash(&fs::read(&serial).unwrap_or_default()),
                    source: Box::new(e),
                }
            } else {
                vm_err(&self.name, what, e)
            }
        })
    }
}

/// The first line of a guest kernel crash in serial console output: a panic, an oops, a
/// `BUG:` or a general protection fault (the kernel's own wording), timestamp stripped.
pub(super) fn guest_crash(console: &[u8]) -> Option<String> {
    const SIGNS: [&str; 4] = [
        "Kernel panic - not syncing",
        "BUG: ",
        "Oops: ",
        "general protection fault",
    ];
    String::from_utf8_lossy(console)
        .lines()
        .find(|l| SIGNS.iter().any(|s| l.contains(s)))
        .map(|l| {
            let l = l.trim();
            // `[   81.662970] BUG: …`: the text after the kernel's timestamp.
            match l.strip_prefix('[').and_then(|r| r.split_once(']')) {
                Some((_, rest)) => rest.trim().to_string(),
                None => l.to_string(),
            }
        })
}

/// Whether `e` says the guest never offered a login: every attempt until the deadline failed
/// (the last one's error inside), or QEMU exited while kvmtest waited for it. Wrong
/// credentials are not this: they are the configuration's fault.
fn no_login(e: &vm::Error) -> bool {
    match e {
        vm::Error::Session(vm::SessionError::LoginTimeout { .. }) => true,
        vm::Error::QemuExited { awaited, .. } => awaited.starts_with("logging in"),
        _ => false,
    }
}

/// Tells the serial console's shell that the terminal is wide: at the default 80 columns its
/// line editor wraps a long command line while echoing it, and the mangled echo is then not
/// recognised (and stays in the output). Best effort: a guest without `stty` keeps 80.
pub(super) async fn widen(s: &mut Session) -> Result<(), vm::Error> {
    s.cmd_output("stty cols 512 2>/dev/null").await?;
    Ok(())
}

pub(super) fn count_occurrences(hay: &[u8], needle: &[u8]) -> usize {
    if needle.is_empty() {
        return 0;
    }
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}

#[cfg(test)]
mod tests {
    use super::guest_crash;

    #[test]
    fn a_kernel_crash_on_the_console_is_found_by_its_first_line() {
        let console =
            b"[    1.0] booting\n[   81.66] BUG: kernel NULL pointer dereference, address: 24\n\
[   81.67] Kernel panic - not syncing: Fatal exception in interrupt\n";
        assert_eq!(
            guest_crash(console).as_deref(),
            Some("BUG: kernel NULL pointer dereference, address: 24")
        );
        assert_eq!(guest_crash(b"login: \nkvmtest-guest login:"), None);
    }
}
