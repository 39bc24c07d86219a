//! Starting a VM: plan, spawn, connect the monitors and the serial console, read what QEMU
//! chose (VNC display, redirected ports), recognise known failures in its output.

use super::iso::check_isos;
use super::*;

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
    pub async fn create(qemu: Arc<Qemu>, mut setup: VmSetup, plan: VmPlan) -> Result<Vm, Error> {
        with_control_monitor(&mut setup.spec);
        let name = setup.spec.name.clone();
        let spec = &setup.spec;
        if !spec.monitors.iter().any(|m| m.kind == MonitorKind::Qmp) {
            return Err(Error::NoQmpMonitor { vm: name });
        }
        check_isos(&name, spec, &plan.values().root_dir).await?;

        let log_dir = setup.log_dir.join(format!("{name}-{}", plan.instance()));
        fs::create_dir_all(&log_dir).map_err(io_err("creating the log directory", &log_dir))?;
        let vm_log = log_dir.join("vm.log");
        let mut log = VmLog {
            // Append mode: `log_line` appends through handles of its own, and a plain handle would
            // write over their lines at its own offset.
            file: Some(
                File::options()
                    .create(true)
                    .append(true)
                    .open(&vm_log)
                    .map_err(io_err("creating", &vm_log))?,
            ),
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

        // OVMF boots from the VM's own copy of the variable store (the command line names it).
        if let Some(ovmf) = &spec.devices.ovmf {
            let code = Path::new(&ovmf.code);
            if !code.is_file() {
                return Err(io_err("reading OVMF's firmware (`ovmf_path`)", code)(
                    std::io::Error::from(std::io::ErrorKind::NotFound),
                ));
            }
            if let Some(t) = &ovmf.vars_template {
                let dst = plan.run_dir().join(qemu_cmd::names::OVMF_VARS_FILE);
                fs::copy(t, &dst).map_err(io_err(
                    "copying OVMF's variable store (`ovmf_vars_filename`)",
                    Path::new(t),
                ))?;
            }
        }
        // `spice_gen_x509 = yes`: the certificates the command line names, when missing.
        if let Some(dir) =
            crate::spice::prepare_certificates(spec, &plan.values().root_dir, plan.run_dir())
                .map_err(|what| Error::Spice {
                    vm: name.clone(),
                    what,
                })?
        {
            log.line(&format!(
                "SPICE certificates generated in {}",
                dir.display()
            ));
        }
        // passt serves its NICs before QEMU connects to it (killed when dropped: an error below
        // ends them too).
        let mut passts = Vec::new();
        for nic in &spec.nics {
            if let NicMode::Passt(p) = &nic.mode {
                let socket = plan
                    .run_dir()
                    .join(qemu_cmd::names::passt_socket(&nic.name));
                let process = crate::hostnet::start_passt(
                    &name,
                    &nic.name,
                    p,
                    &socket,
                    &log_dir,
                    setup.timeouts.connect,
                )
                .await?;
                log.line(&format!(
                    "passt for NIC {} on {}: pid {}",
                    nic.name,
                    socket.display(),
                    process.pid()
                ));
                passts.push((nic.name.clone(), process));
            }
        }
        // swtpm and virtiofsd serve their sockets before QEMU connects (killed when dropped).
        let daemons = crate::daemons::Daemons::start(
            spec,
            crate::daemons::DaemonDirs {
                vm: &name,
                run_dir: plan.run_dir(),
                root_dir: &plan.values().root_dir,
                log_dir: &log_dir,
            },
            setup.timeouts.connect,
        )
        .await?;
        for (what, pid) in daemons.pids() {
            log.line(&format!("{what}: pid {pid}"));
        }
        let output_log = log_dir.join("qemu.log");
        let started = Instant::now();
        let inherited = plan.inherited_fds();
        let process =
            OwnedProcess::spawn_inheriting(&argv, &output_log, &inherited).map_err(|source| {
                Error::Spawn {
                    vm: name.clone(),
                    program: argv
                        .first()
                        .map(|p| p.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    source,
                }
            })?;
        log.line(&format!(
            "spawned pid {} (its own process group)",
            process.pid()
        ));
        let log_span = LogSpan::current();
        let output_tail = log_lines::OutputTail::start(
            &output_log,
            log_lines::LineEvents::new(&name, log_lines::Stream::Qemu, log_span.clone()),
        );
        if output_tail.is_none() {
            log.line(&format!(
                "{} cannot be followed: QEMU's output lines are not tracing events",
                output_log.display()
            ));
        }

        let mut ctx = Starting {
            name: &name,
            process: &process,
            log: &mut log,
            timeouts: &setup.timeouts,
        };
        let run_dir = plan.run_dir();
        // The serial console first: with `wait=on` QEMU waits for it before anything else.
        let serial = match ::spec::serial::console(&spec.serials).map(|s| &s.name) {
            Some(s) => Some(
                ctx.open_serial(
                    &run_dir.join(qemu_cmd::names::serial_socket(s)),
                    &log_dir.join("serial.log"),
                    log_lines::LineEvents::new(&name, log_lines::Stream::Serial, log_span.clone()),
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
        // `-S` waits for the CPUs to be started: avocado-vt's start-up handshake, done here once
        // the monitors are up — unless the test wants the VM paused (`paused_after_start_vm`)
        // or in its preconfig state (`--preconfig`: the test configures it and leaves it), as
        // avocado-vt leaves them. A migration destination is resumed by the migration.
        let p = &spec.platform;
        if p.stop && !p.preconfig && !p.paused_after_start && plan.incoming().is_none() {
            ctx.qmp_step(&qmp, "cont").await?;
        }
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
            log_span,
            _output_tail: output_tail,
            redirs,
            vnc_port,
            hot_nics: Vec::new(),
            hot_nic_hosts: Vec::new(),
            passts,
            daemons,
            log,
            log_dir,
            session_count: 0,
            agent: None,
            agent_connections: 0,
            plan,
        })
    }
}

/// How long the console is quiet before its partial line is logged as a line.
const PARTIAL_LINE_AFTER: Duration = Duration::from_millis(500);

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
        mut lines: log_lines::LineEvents,
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
                // A console quiet for a moment shows its partial line (a prompt) as one.
                let read = tokio::time::timeout(PARTIAL_LINE_AFTER, rd.read(&mut chunk)).await;
                let n = match read {
                    Err(_) => {
                        lines.flush();
                        continue;
                    }
                    Ok(Ok(0) | Err(_)) => break,
                    Ok(Ok(n)) => n,
                };
                let _ = log.write_all(&chunk[..n]);
                lines.feed(&chunk[..n]);
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
            lines.flush();
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

    /// Runs a start-up QMP command without arguments (`cont`).
    async fn qmp_step(&mut self, qmp: &QmpClient, command: &str) -> Result<(), Error> {
        qmp.execute(command, json!({}))
            .await
            .map_err(|source| Error::Monitor {
                vm: self.name.into(),
                what: format!("starting the guest ({command})"),
                source: Box::new(source),
            })?;
        self.log.line(&format!("QMP {command}: done"));
        Ok(())
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
