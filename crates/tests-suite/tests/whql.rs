//! `whql_submission` against scripted servers: a "client guest" shell and a "DTM server" shell
//! that plays the automation program's prompts, both over real TCP through [`TcpShell`].

#![allow(clippy::unwrap_used)] // Tests: a panic with the error is the report.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{config, options, read};
use params::Params;
use tests_suite::{
    run, BoxFuture, EnvError, EnvFactory, GuestVm, RemoteHosts, RemoteShell, ShellConfig, TcpShell,
    Teardown, TestRecord, VerdictKind, VmEnv, WorkerSlot,
};

const PROMPT: &str = "C:\\Users\\test>";

type Log = Arc<Mutex<Vec<String>>>;

/// Serve one connection: send the prompt, then answer each received line with `handler`.
fn serve(mut handler: impl FnMut(&str) -> String + Send + 'static) -> (u16, Log) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let log: Log = Arc::default();
    let seen = log.clone();
    std::thread::spawn(move || {
        let Ok((stream, _)) = listener.accept() else {
            return;
        };
        let mut out = stream.try_clone().unwrap();
        let _ = out.write_all(PROMPT.as_bytes());
        let reader = BufReader::new(stream);
        for line in reader.lines() {
            let Ok(line) = line else { break };
            let line = line.trim_end_matches('\r').to_string();
            seen.lock().unwrap().push(line.clone());
            let reply = handler(&line);
            if out.write_all(reply.as_bytes()).is_err() {
                break;
            }
        }
    });
    (port, log)
}

fn with_prompt(text: &str) -> String {
    format!("{text}{PROMPT}")
}

/// The Windows client guest: services and its computer name.
fn client_guest() -> (u16, Log) {
    let mut stops = 0;
    serve(move |line| {
        match line {
        l if l.starts_with("sc stop") => {
            stops += 1;
            // The first stop is pending; the retry finds it stopped.
            if stops == 1 {
                with_prompt("SERVICE_NAME: wttsvc\r\n        STATE              : 3  STOP_PENDING\r\n")
            } else {
                with_prompt("[SC] ControlService FAILED 1062:\r\n\r\nThe service has not been started.\r\n")
            }
        }
        l if l.starts_with("sc start") => {
            with_prompt("[SC] StartService FAILED 1056:\r\n\r\nAn instance of the service is already running.\r\n")
        }
        "echo %computername%" => with_prompt("CLIENT1\r\n"),
        _ => with_prompt(""),
    }
    })
}

/// How the scripted automation program ends.
#[derive(Clone, Copy)]
enum Ending {
    Results(&'static str),
    ErrorAtStart,
    Hang,
    ResultsWithoutPrompt(&'static str),
}

/// The DTM server shell with the automation program.
fn dtm_server(ending: Ending) -> (u16, Log) {
    #[derive(PartialEq)]
    enum S {
        Shell,
        Device,
        Jobs,
        DeviceData,
        Descriptors,
        Done,
    }
    let mut state = S::Shell;
    serve(move |line| match state {
        S::Shell => match line {
            "echo %computername%" => with_prompt("SERVER1\r\n"),
            "echo %errorlevel%" => with_prompt("0\r\n"),
            l if l.starts_with("whql_submission_15.exe ") => match ending {
                Ending::ErrorAtStart => {
                    with_prompt("Error: Could not connect to the DTM controller\r\n")
                }
                _ => {
                    state = S::Device;
                    "Starting automation...\r\nDevice to test: ".into()
                }
            },
            _ => with_prompt(""),
        },
        S::Device => {
            state = S::Jobs;
            "Jobs to run: ".into()
        }
        S::Jobs => {
            state = S::DeviceData;
            "DeviceData name: ".into()
        }
        S::DeviceData if line.is_empty() => {
            state = S::Descriptors;
            "Descriptor path: ".into()
        }
        S::DeviceData => String::new(),
        S::Descriptors if line.is_empty() => {
            state = S::Done;
            match ending {
                Ending::Results(r) => with_prompt(&format!("Running jobs...\r\n---- {r} ----\r\n")),
                Ending::Hang => "Running jobs...\r\n".into(),
                Ending::ResultsWithoutPrompt(r) => format!("---- {r} ----\r\nstill running\r\n"),
                Ending::ErrorAtStart => String::new(),
            }
        }
        S::Descriptors | S::Done => String::new(),
    })
}

struct Guest {
    port: u16,
}

impl GuestVm for Guest {
    fn name(&self) -> &str {
        "vm1"
    }
    fn is_alive(&self) -> bool {
        true
    }
    fn login(&self, _timeout: Duration) -> BoxFuture<'_, Result<Box<dyn RemoteShell>, EnvError>> {
        Box::pin(async move {
            let s = TcpShell::connect("127.0.0.1", self.port, ShellConfig::windows()).await?;
            Ok(Box::new(s) as Box<dyn RemoteShell>)
        })
    }
    fn human_monitor_cmd<'a>(&'a self, _cmd: &'a str) -> BoxFuture<'a, Result<String, EnvError>> {
        Box::pin(async {
            Err(EnvError::Unsupported {
                what: "monitor".into(),
            })
        })
    }
    fn qmp<'a>(
        &'a self,
        _c: &'a str,
        _a: serde_json::Value,
    ) -> BoxFuture<'a, Result<serde_json::Value, EnvError>> {
        Box::pin(async { Err(EnvError::Unsupported { what: "qmp".into() }) })
    }
}

struct Env {
    port: u16,
    destroyed: Log,
}

impl VmEnv for Env {
    fn start_vm<'a>(
        &'a self,
        _n: &'a str,
        _p: &'a Params,
        _d: &'a Path,
    ) -> BoxFuture<'a, Result<tests_suite::VmStart, EnvError>> {
        Box::pin(async { Ok(tests_suite::VmStart::Booted(None)) })
    }
    fn vm(&self, name: &str) -> Result<Arc<dyn GuestVm>, EnvError> {
        if name == "vm1" {
            Ok(Arc::new(Guest { port: self.port }))
        } else {
            Err(EnvError::NoSuchVm { name: name.into() })
        }
    }
    fn vm_names(&self) -> Vec<String> {
        Vec::new()
    }
    fn destroy_vm<'a>(
        &'a self,
        name: &'a str,
        _how: Teardown,
    ) -> BoxFuture<'a, Result<(), EnvError>> {
        Box::pin(async move {
            self.destroyed.lock().unwrap().push(name.to_string());
            Ok(())
        })
    }
    fn prepare_image<'a>(
        &'a self,
        _vm: &'a str,
        _i: &'a spec::ImageProcessing,
        _p: &'a Params,
    ) -> BoxFuture<'a, Result<(), EnvError>> {
        Box::pin(async { Ok(()) })
    }
    fn remove_image<'a>(
        &'a self,
        _vm: &'a str,
        _i: &'a str,
        _p: &'a Params,
    ) -> BoxFuture<'a, Result<(), EnvError>> {
        Box::pin(async { Ok(()) })
    }
}

struct Factory {
    port: u16,
    destroyed: Log,
}

impl EnvFactory for Factory {
    fn create(&self, _slot: &WorkerSlot) -> Result<Arc<dyn VmEnv>, EnvError> {
        Ok(Arc::new(Env {
            port: self.port,
            destroyed: self.destroyed.clone(),
        }))
    }
}

/// Real shells; file transfer recorded.
#[derive(Default)]
struct Remote {
    transfers: Log,
}

impl RemoteHosts for Remote {
    fn connect_shell<'a>(
        &'a self,
        address: &'a str,
        port: u16,
        config: ShellConfig,
    ) -> BoxFuture<'a, Result<Box<dyn RemoteShell>, EnvError>> {
        Box::pin(async move {
            let s = TcpShell::connect(address, port, config).await?;
            Ok(Box::new(s) as Box<dyn RemoteShell>)
        })
    }
    fn upload<'a>(
        &'a self,
        address: &'a str,
        port: u16,
        local: &'a Path,
        remote_dir: &'a str,
    ) -> BoxFuture<'a, Result<(), EnvError>> {
        Box::pin(async move {
            let name = local.file_name().unwrap().to_string_lossy().into_owned();
            self.transfers
                .lock()
                .unwrap()
                .push(format!("upload {address}:{port} {name} -> {remote_dir}"));
            Ok(())
        })
    }
    fn download<'a>(
        &'a self,
        _address: &'a str,
        _port: u16,
        remote: &'a str,
        _local_dir: &'a Path,
    ) -> BoxFuture<'a, Result<(), EnvError>> {
        Box::pin(async move {
            self.transfers
                .lock()
                .unwrap()
                .push(format!("download {remote}"));
            Ok(())
        })
    }
}

struct Outcome {
    _dir: tempfile::TempDir,
    record: TestRecord,
    job_dir: PathBuf,
    client: Log,
    server: Log,
    transfers: Log,
    destroyed: Log,
}

fn submit(ending: Ending, extra: &str) -> Outcome {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let binary = dir.join("whql_submission_15.exe");
    std::fs::write(&binary, b"MZ").unwrap();
    let (client_port, client) = client_guest();
    let (server_port, server) = dtm_server(ending);
    let cfg = format!(
        "type = whql_submission
main_vm = vm1
server_address = 127.0.0.1
server_shell_port = {server_port}
server_file_transfer_port = 10022
server_studio_path = C:\\Studio
dsso_test_binary = {}
test_device = Red Hat VirtIO Ethernet Adapter
job_filter = .*NDIS.*
wtt_services = wttsvc
device_data = dd1 dd2 dd3
dd_name_dd1 = NDISTest
dd_data_dd1 = yes
dd_name_dd2 = MessageTime
dd_data_dd2 = 20
descriptors = desc1
desc_path_desc1 = \\\\Logo\\Device.Network
prompt_timeout = 10
{extra}
",
        binary.display()
    );
    let destroyed: Log = Arc::default();
    let remote = Arc::new(Remote::default());
    let mut o = options(&dir.join("results"));
    o.env_factory = Arc::new(Factory {
        port: client_port,
        destroyed: destroyed.clone(),
    });
    o.remote = remote.clone();
    let s = run(&config(&cfg), &o).unwrap();
    Outcome {
        _dir: tmp,
        record: s.report.tests[0].clone(),
        job_dir: s.job_dir,
        client,
        server,
        transfers: remote.transfers.clone(),
        destroyed,
    }
}

const PASSED: &str = "[{'job': 'NDISTest 6.5 - [2 Machine] - 2c_Mini6RSSSendRecv', 'id': 101, \
    'status': 'Passed', 'pass': 12, 'fail': 0, 'notrun': 0, 'notapplicable': 1,\r\n \
    'report': 'C:\\\\Reports\\\\101.htm', 'logs': 'C:\\\\Logs\\\\101'}, \
    {'job': 'NDISTest 6.5 - 1c_Mini6Stats', 'id': 102, 'status': 'Passed', 'pass': 3, \
    'fail': 0, 'notrun': 0, 'notapplicable': 0}]";

#[test]
fn a_passing_submission() {
    let o = submit(Ending::Results(PASSED), "");
    assert_eq!(o.record.verdict, VerdictKind::Pass, "{:?}", o.record);
    // Client: services restarted (stop retried once), computer name read.
    let client = o.client.lock().unwrap().clone();
    assert_eq!(
        client,
        [
            "sc stop wttsvc",
            "sc stop wttsvc",
            "sc start wttsvc",
            "echo %computername%"
        ]
    );
    // Server: names, cd (with status check), the program line, then the answers in order;
    // dd3 has no name/data and is not sent.
    let server = o.server.lock().unwrap().clone();
    assert_eq!(
        server,
        [
            "echo %computername%",
            "cd C:\\Studio",
            "echo %errorlevel%",
            "whql_submission_15.exe SERVER1 CLIENT1 CLIENT1_pool CLIENT1_submission 600.0",
            "Red Hat VirtIO Ethernet Adapter",
            ".*NDIS.*",
            "NDISTest",
            "yes",
            "MessageTime",
            "20",
            "",
            "\\\\Logo\\Device.Network",
            "",
        ]
    );
    let transfers = o.transfers.lock().unwrap().clone();
    assert_eq!(
        transfers,
        [
            "upload 127.0.0.1:10022 whql_submission_15.exe -> C:\\Studio",
            "download C:\\Reports\\101.htm",
            "download C:\\Logs\\101",
        ]
    );
    let tdir = o.job_dir.join(&o.record.dir);
    let results: serde_json::Value =
        serde_json::from_str(&read(&tdir.join("whql-results.json"))).unwrap();
    assert_eq!(results[0]["fields"]["id"], 101);
    let log = read(&tdir.join("test.log"));
    assert!(
        log.contains("Result summary:") && log.contains("1c_Mini6Stats"),
        "{log}"
    );
    assert!(o.destroyed.lock().unwrap().is_empty());
}

#[test]
fn failed_and_unfinished_jobs_fail_the_test() {
    let r = "[{'job': 'JobA', 'status': 'Investigate'}, {'job': 'JobB', 'status': 'InProgress'}, \
             {'job': 'JobC', 'status': 'Passed'}]";
    let o = submit(Ending::Results(r), "");
    assert_eq!(o.record.verdict, VerdictKind::Fail);
    assert_eq!(
        o.record.message.as_deref(),
        Some("Jobs failed: [\"JobA\"]. Jobs did not complete on time: [\"JobB\"].")
    );
    // Unfinished jobs: the VM is destroyed.
    assert_eq!(o.destroyed.lock().unwrap().clone(), ["vm1"]);
}

#[test]
fn an_error_line_from_the_program_is_the_test_error() {
    let o = submit(Ending::ErrorAtStart, "");
    assert_eq!(o.record.verdict, VerdictKind::Error);
    assert_eq!(
        o.record.message.as_deref(),
        Some("Error: Could not connect to the DTM controller")
    );
}

#[test]
fn a_program_that_does_not_terminate_fails() {
    let o = submit(Ending::Hang, "test_timeout = 0.5\ntermination_grace = 0\n");
    assert_eq!(o.record.verdict, VerdictKind::Error, "{:?}", o.record);
    // Nothing printed results before the deadline: that is reported, not guessed.
    assert_eq!(
        o.record.message.as_deref(),
        Some("The automation program did not return any results")
    );
}

#[test]
fn missing_parameters_are_errors_naming_the_key() {
    let o = submit(Ending::Results(PASSED), "del test_device\n");
    assert_eq!(o.record.verdict, VerdictKind::Error);
    let msg = o.record.message.as_deref().unwrap();
    assert!(msg.contains("test_device: missing (required)"), "{msg}");
    assert!(o.server.lock().unwrap().is_empty(), "nothing ran");
}

#[test]
fn results_without_the_shell_prompt_mean_the_program_did_not_terminate() {
    let o = submit(
        Ending::ResultsWithoutPrompt(PASSED),
        "test_timeout = 0.5\ntermination_grace = 0\n",
    );
    assert_eq!(o.record.verdict, VerdictKind::Fail, "{:?}", o.record);
    assert_eq!(
        o.record.message.as_deref(),
        Some("The automation program did not terminate on time")
    );
    assert_eq!(o.destroyed.lock().unwrap().clone(), ["vm1"]);
}
