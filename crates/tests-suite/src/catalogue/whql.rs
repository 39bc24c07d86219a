//! `whql_submission`: drive the DTM automation program on a WHQL server, as the seed's
//! `run_whql_submission` does, over [`RemoteShell`] sessions.
//!
//! Flow (seed lines 579–692; the part after them — result parsing, report download and the
//! verdict — follows the upstream autotest test the seed was cut from):
//! 1. log into the client guest (`main_vm`) and restart its WTT services (`sc stop`, then
//!    `sc start`, tolerating "not started" / "already running");
//! 2. upload the automation program (`dsso_test_binary`) to `server_studio_path`;
//! 3. open a shell on the server, read both computer names (`echo %computername%`);
//! 4. `cd` to the studio path and start the program with server, client, pool, submission and
//!    timeout;
//! 5. answer its prompts: `Device to test:`, `Jobs to run:`, `DeviceData name:` (name/data
//!    pairs of `device_data`, then an empty line), `Descriptor path:` (paths of
//!    `descriptors`, then an empty line). If the shell prompt comes back instead, the first
//!    `Error:` line is the test error;
//! 6. wait for the program to end (`test_timeout` + `termination_grace` seconds), take the last
//!    `---- [ … ] ----` block of its output: a Python list of dicts, one per job;
//! 7. download each job's report and logs into the test directory, log a summary, write
//!    `whql-results.json`;
//! 8. fail when the program did not terminate, when jobs are in status `Investigate`, or when
//!    jobs are still `InProgress` (the VM is destroyed in both of the latter cases).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use regex::Regex;
use serde_json::Value;

use crate::env::Teardown;
use crate::future::BoxFuture;
use spec::KeyDoc;

use crate::registry::{read_params, TestContext, TestSpec};
use crate::shell::{literal_regex, RemoteShell, ShellConfig, ShellError};
use crate::verdict::{TestError, TestResult};

/// `type = whql_submission`.
pub const SPEC: TestSpec = TestSpec {
    name: "whql_submission",
    about: "Runs a WHQL submission through the DTM server's automation program and reports \
            its job results.",
    params: &[
        KeyDoc::optional(
            "main_vm",
            "the Windows client guest (default: the first of `vms`)",
        ),
        KeyDoc::required("server_address", "the DTM server's address"),
        KeyDoc::required("server_shell_port", "its remote shell port"),
        KeyDoc::required("server_file_transfer_port", "its rss file-transfer port"),
        KeyDoc::with_default(
            "server_studio_path",
            "%programfiles%\\Microsoft Driver Test Manager\\Studio",
            "where the automation program goes on the server",
        ),
        KeyDoc::with_default(
            "dsso_test_binary",
            "deps/whql_submission_15.exe",
            "the automation program on this host",
        ),
        KeyDoc::required("test_device", "the device name the program is told to test"),
        KeyDoc::with_default("job_filter", ".*", "regex of the jobs to run"),
        KeyDoc::with_default("test_timeout", "600", "seconds the program may run"),
        KeyDoc::required("wtt_services", "WTT services to restart on the client"),
        KeyDoc::optional(
            "device_data",
            "names of device data entries (each with dd_name, dd_data)",
        ),
        KeyDoc::optional(
            "descriptors",
            "names of descriptor entries (each with desc_path)",
        ),
        KeyDoc::with_default(
            "termination_grace",
            "300",
            "seconds beyond test_timeout to wait for the program to end",
        ),
        KeyDoc::with_default(
            "prompt_timeout",
            "600",
            "seconds to wait for each of the program's prompts",
        ),
    ],
};

/// How often service commands are retried, and for how long.
const SERVICE_RETRY: Duration = Duration::from_secs(1);
const SERVICE_TIMEOUT: Duration = Duration::from_secs(120);

/// The keys of a `device_data` entry.
const DEVICE_DATA_KEYS: &[KeyDoc] = &[
    KeyDoc::optional("dd_name", "the device data's name"),
    KeyDoc::optional("dd_data", "its value"),
];

/// The keys of a `descriptors` entry.
const DESCRIPTOR_KEYS: &[KeyDoc] = &[KeyDoc::optional("desc_path", "the descriptor's path")];

/// The parameters of the test, read (and checked) before anything is touched.
struct WhqlParams {
    server_address: String,
    shell_port: u16,
    transfer_port: u16,
    studio_path: String,
    binary: PathBuf,
    /// The file name of `binary`.
    binary_name: String,
    test_device: String,
    job_filter: String,
    test_timeout: Duration,
    wtt_services: Vec<String>,
    grace: Duration,
    prompt_timeout: Duration,
    /// `(dd_name, dd_data)` of each `device_data` entry that has both.
    device_data: Vec<(String, String)>,
    /// `desc_path` of each `descriptors` entry that has one.
    descriptors: Vec<String>,
}

impl WhqlParams {
    fn read(ctx: &TestContext) -> Result<WhqlParams, TestError> {
        let mut k = ctx.keys(&SPEC);
        let mut problems = Vec::new();
        let device_data = k
            .list("device_data")
            .iter()
            .filter_map(|dd| {
                let mut o = k.object(dd, format!("device_data {dd}"), DEVICE_DATA_KEYS);
                let pair = o.opt("dd_name").zip(o.opt("dd_data"));
                problems.extend(o.take_problems());
                pair
            })
            .collect();
        let descriptors = k
            .list("descriptors")
            .iter()
            .filter_map(|d| {
                let mut o = k.object(d, format!("descriptor {d}"), DESCRIPTOR_KEYS);
                let path = o.opt("desc_path");
                problems.extend(o.take_problems());
                path
            })
            .collect();
        let server_address = k.text("server_address");
        let shell_port = k.port("server_shell_port");
        let transfer_port = k.port("server_file_transfer_port");
        let studio_path = k.text("server_studio_path");
        let binary = k.parse("dsso_test_binary", |v| {
            let path = PathBuf::from(v);
            match path.file_name() {
                Some(n) => Ok((n.to_string_lossy().into_owned(), path.clone())),
                None => Err("a path ending in the program's file name".to_string()),
            }
        });
        let test_device = k.text("test_device");
        let job_filter = k.text("job_filter");
        let test_timeout = k.secs("test_timeout");
        let wtt_services = k.list("wtt_services");
        let grace = k.secs("termination_grace");
        let prompt_timeout = k.secs("prompt_timeout");
        k.absorb(problems);
        let (binary, shell_port, transfer_port, test_timeout, grace, prompt_timeout) = read_params(
            k,
            (
                binary,
                shell_port,
                transfer_port,
                test_timeout,
                grace,
                prompt_timeout,
            ),
        )?;
        let (binary_name, binary) = SPEC.declared(binary, "dsso_test_binary")?;
        Ok(WhqlParams {
            server_address,
            shell_port: SPEC.declared(shell_port, "server_shell_port")?,
            transfer_port: SPEC.declared(transfer_port, "server_file_transfer_port")?,
            studio_path,
            binary,
            binary_name,
            test_device,
            job_filter,
            test_timeout: SPEC.declared(test_timeout, "test_timeout")?,
            wtt_services,
            grace: SPEC.declared(grace, "termination_grace")?,
            prompt_timeout: SPEC.declared(prompt_timeout, "prompt_timeout")?,
            device_data,
            descriptors,
        })
    }
}

/// `sc stop` until the service is stopped, not started (1062) or not installed (1060).
async fn stop_service(
    ctx: &TestContext,
    s: &mut dyn RemoteShell,
    svc: &str,
) -> Result<(), TestError> {
    let done = literal_regex(r"(?i)\bFAILED (1060|1062)\b");
    let deadline = tokio::time::Instant::now() + SERVICE_TIMEOUT;
    let cmd = format!("sc stop {svc}");
    while tokio::time::Instant::now() < deadline {
        let o = s.cmd_output(&cmd, Duration::from_secs(60)).await?;
        if done.is_match(&o) {
            return Ok(());
        }
        wait_or_cancel(ctx, SERVICE_RETRY).await?;
    }
    Err(TestError::Error(format!("Could not stop service '{svc}'")))
}

/// `sc start` until the service runs (1056); not installed (1060) is an error.
async fn start_service(
    ctx: &TestContext,
    s: &mut dyn RemoteShell,
    svc: &str,
) -> Result<(), TestError> {
    let missing = literal_regex(r"(?i)\bFAILED 1060\b");
    let running = literal_regex(r"(?i)\bFAILED 1056\b");
    let deadline = tokio::time::Instant::now() + SERVICE_TIMEOUT;
    let cmd = format!("sc start {svc}");
    while tokio::time::Instant::now() < deadline {
        let o = s.cmd_output(&cmd, Duration::from_secs(60)).await?;
        if missing.is_match(&o) {
            return Err(TestError::Error(format!(
                "Could not start service '{svc}' (service not installed)"
            )));
        }
        if running.is_match(&o) {
            return Ok(());
        }
        wait_or_cancel(ctx, SERVICE_RETRY).await?;
    }
    Err(TestError::Error(format!("Could not start service '{svc}'")))
}

async fn wait_or_cancel(ctx: &TestContext, d: Duration) -> Result<(), TestError> {
    tokio::select! {
        () = tokio::time::sleep(d) => Ok(()),
        () = ctx.cancel.cancelled() => Err(TestError::Cancelled),
    }
}

/// Wait for the program's `prompt`; the shell prompt instead means the program stopped, and
/// its first `Error:` line is the test error.
async fn find_prompt(
    server: &mut dyn RemoteShell,
    prompt: &str,
    timeout: Duration,
) -> Result<(), TestError> {
    let patterns = [
        Regex::new(&regex::escape(prompt))
            .map_err(|e| TestError::error(format!("prompt {prompt:?}: {e}")))?,
        server.prompt().clone(),
    ];
    let (m, output) = server
        .read_until_last_line_matches(&patterns, timeout)
        .await
        .map_err(|e| match &e {
            ShellError::Timeout { .. } | ShellError::Closed { .. } => TestError::Error(format!(
                "Error running automation program: could not find '{prompt}' prompt ({e})"
            )),
            _ => TestError::from(e),
        })?;
    if m == 0 {
        return Ok(());
    }
    let error_line = literal_regex(r"(?im)^Error:.*$");
    Err(match error_line.find(&output) {
        Some(e) => TestError::Error(e.as_str().trim_end().to_string()),
        None => TestError::Error(format!(
            "Error running automation program: could not find '{prompt}' prompt"
        )),
    })
}

/// One job's result, as the automation program reports it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct JobResult {
    /// Every field the program printed.
    pub fields: BTreeMap<String, Value>,
}

impl JobResult {
    fn text(&self, key: &str) -> String {
        match self.fields.get(key) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(v) => v.to_string(),
        }
    }
}

/// Find the last `---- [ … ] ----` block of `output` and read it as a list of job results.
pub fn parse_results(output: &str) -> Result<Vec<JobResult>, String> {
    let block = literal_regex(r"(?s)---- \[.*?\] ----");
    let Some(last) = block.find_iter(output).last() else {
        return Err("The automation program did not return any results".into());
    };
    let inner = last.as_str().trim_matches('-');
    let joined: String = inner.lines().collect::<Vec<_>>().join("");
    let value = pylit::parse(joined.trim()).map_err(|e| format!("unreadable results: {e}"))?;
    let Value::Array(items) = value else {
        return Err("results are not a list".into());
    };
    items
        .into_iter()
        .map(|v| match v {
            Value::Object(m) => Ok(JobResult {
                fields: m.into_iter().collect(),
            }),
            other => Err(format!("a result is not a dict: {other}")),
        })
        .collect()
}

/// The `whql_submission` test.
pub fn run(ctx: &TestContext) -> BoxFuture<'_, TestResult> {
    Box::pin(run_inner(ctx))
}

async fn run_inner(ctx: &TestContext) -> TestResult {
    let WhqlParams {
        server_address,
        shell_port,
        transfer_port,
        studio_path,
        binary,
        binary_name,
        test_device,
        job_filter,
        test_timeout,
        wtt_services,
        grace,
        prompt_timeout,
        device_data,
        descriptors,
    } = WhqlParams::read(ctx)?;
    let login_timeout = super::session::login_timeout(ctx)?;
    let run_timeout = test_timeout + grace;
    let test_timeout = test_timeout.as_secs_f64();
    if !binary.is_file() {
        return Err(TestError::error(format!(
            "dsso_test_binary {:?} does not exist",
            binary.display()
        )));
    }

    let vm = super::session::main_vm(ctx)?;
    let mut session = vm.login(login_timeout).await?;

    ctx.log.info("Restarting WTT services on client");
    for svc in &wtt_services {
        stop_service(ctx, session.as_mut(), svc).await?;
    }
    for svc in &wtt_services {
        start_service(ctx, session.as_mut(), svc).await?;
    }

    ctx.remote
        .upload(&server_address, transfer_port, &binary, &studio_path)
        .await?;

    let server_config = ShellConfig {
        prompt: session.prompt().clone(),
        ..ShellConfig::windows()
    };
    let mut server = ctx
        .remote
        .connect_shell(&server_address, shell_port, server_config)
        .await?;

    let cmd = "echo %computername%";
    let server_name = server
        .cmd_output(cmd, Duration::from_secs(60))
        .await?
        .trim()
        .to_string();
    let client_name = session
        .cmd_output(cmd, Duration::from_secs(60))
        .await?
        .trim()
        .to_string();
    drop(session);

    server.cmd(&format!("cd {studio_path}")).await?;
    let program = format!(
        "{binary_name} {server_name} {client_name} {client_name}_pool {client_name}_submission {}",
        python_float(test_timeout)
    );
    ctx.log.info(format_args!("server: {program}"));
    server.send_line(&program).await?;

    find_prompt(server.as_mut(), "Device to test:", prompt_timeout).await?;
    server.send_line(&test_device).await?;
    find_prompt(server.as_mut(), "Jobs to run:", prompt_timeout).await?;
    server.send_line(&job_filter).await?;

    find_prompt(server.as_mut(), "DeviceData name:", prompt_timeout).await?;
    for (name, data) in &device_data {
        server.send_line(name).await?;
        server.send_line(data).await?;
    }
    server.send_line("").await?;

    find_prompt(server.as_mut(), "Descriptor path:", prompt_timeout).await?;
    for path in &descriptors {
        server.send_line(path).await?;
    }
    server.send_line("").await?;

    let (output, done) = match server.read_up_to_prompt(run_timeout).await {
        Ok(o) => (o, true),
        Err(e @ (ShellError::Timeout { .. } | ShellError::Closed { .. })) => {
            (e.output().unwrap_or_default().to_string(), false)
        }
        Err(e) => return Err(e.into()),
    };
    ctx.log
        .info(format_args!("automation program output:\n{output}"));

    let results = parse_results(&output).map_err(TestError::Error)?;

    for r in &results {
        for key in ["report", "logs"] {
            let remote = r.text(key);
            if remote.is_empty() {
                continue;
            }
            if let Err(e) = ctx
                .remote
                .download(&server_address, transfer_port, &remote, &ctx.dir)
                .await
            {
                ctx.log
                    .warn(format_args!("could not download {key} {remote:?}: {e}"));
            }
        }
    }

    ctx.log.info("Result summary:");
    ctx.log.info(format_args!(
        "{:<40} {:>4} {:<12} {:>6} {:>6} {:>8} {:>14}",
        "Job name", "ID", "Status", "Pass", "Fail", "NotRun", "NotApplicable"
    ));
    for r in &results {
        ctx.log.info(format_args!(
            "{:<40} {:>4} {:<12} {:>6} {:>6} {:>8} {:>14}",
            r.text("job"),
            r.text("id"),
            r.text("status"),
            r.text("pass"),
            r.text("fail"),
            r.text("notrun"),
            r.text("notapplicable")
        ));
    }
    let json = serde_json::to_string_pretty(&results).unwrap_or_default();
    if let Err(e) = std::fs::write(ctx.dir.join("whql-results.json"), json) {
        ctx.log.warn(format_args!("writing whql-results.json: {e}"));
    }

    if !done {
        ctx.env
            .destroy_vm(vm.name(), Teardown::Kill)
            .await
            .map_err(TestError::from)?;
        return Err(TestError::fail(
            "The automation program did not terminate on time",
        ));
    }

    let with_status = |s: &str| -> Vec<String> {
        results
            .iter()
            .filter(|r| r.text("status").eq_ignore_ascii_case(s))
            .map(|r| r.text("job"))
            .collect()
    };
    let failed = with_status("investigate");
    let running = with_status("inprogress");
    let mut errors = Vec::new();
    if !failed.is_empty() {
        errors.push(format!("Jobs failed: {failed:?}."));
    }
    if !running.is_empty() {
        ctx.env
            .destroy_vm(vm.name(), Teardown::Kill)
            .await
            .map_err(TestError::from)?;
        errors.push(format!("Jobs did not complete on time: {running:?}."));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(TestError::Fail(errors.join(" ")))
    }
}

/// `float` formatting as Python prints it in `"%s" % 600.0` (`600.0`, `1.5`).
fn python_float(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e16 {
        format!("{v:.1}")
    } else {
        v.to_string()
    }
}

/// A reader for the Python literals the automation program prints (`repr` of lists, dicts,
/// strings, numbers, `True`/`False`/`None`), so results are read without evaluating code.
pub mod pylit {
    use serde_json::{Map, Number, Value};

    /// Parse one literal that spans all of `text`.
    pub fn parse(text: &str) -> Result<Value, String> {
        let mut p = P {
            s: text.as_bytes(),
            i: 0,
        };
        let v = p.value()?;
        p.ws();
        if p.i != p.s.len() {
            return Err(format!("unexpected text at byte {}", p.i));
        }
        Ok(v)
    }

    struct P<'a> {
        s: &'a [u8],
        i: usize,
    }

    impl P<'_> {
        fn ws(&mut self) {
            while self.s.get(self.i).is_some_and(u8::is_ascii_whitespace) {
                self.i += 1;
            }
        }

        fn peek(&self) -> Option<u8> {
            self.s.get(self.i).copied()
        }

        fn eat(&mut self, c: u8) -> bool {
            self.ws();
            if self.peek() == Some(c) {
                self.i += 1;
                true
            } else {
                false
            }
        }

        fn seq(&mut self, close: u8) -> Result<Vec<Value>, String> {
            let mut out = Vec::new();
            loop {
                if self.eat(close) {
                    return Ok(out);
                }
                out.push(self.value()?);
                if !self.eat(b',') {
                    return if self.eat(close) {
                        Ok(out)
                    } else {
                        Err(format!(
                            "expected ',' or '{}' at byte {}",
                            close as char, self.i
                        ))
                    };
                }
            }
        }

        fn value(&mut self) -> Result<Value, String> {
            self.ws();
            match self.peek() {
                Some(b'[') => {
                    self.i += 1;
                    Ok(Value::Array(self.seq(b']')?))
                }
                Some(b'(') => {
                    self.i += 1;
                    Ok(Value::Array(self.seq(b')')?))
                }
                Some(b'{') => {
                    self.i += 1;
                    let mut m = Map::new();
                    loop {
                        if self.eat(b'}') {
                            return Ok(Value::Object(m));
                        }
                        let k = match self.value()? {
                            Value::String(s) => s,
                            other => other.to_string(),
                        };
                        if !self.eat(b':') {
                            return Err(format!("expected ':' at byte {}", self.i));
                        }
                        let v = self.value()?;
                        m.insert(k, v);
                        if !self.eat(b',') {
                            return if self.eat(b'}') {
                                Ok(Value::Object(m))
                            } else {
                                Err(format!("expected ',' or '}}' at byte {}", self.i))
                            };
                        }
                    }
                }
                Some(q @ (b'\'' | b'"')) => self.string(q),
                Some(b'u' | b'r') if matches!(self.s.get(self.i + 1), Some(b'\'' | b'"')) => {
                    // u'…' (Python 2 repr); r'…' is read like a plain string.
                    self.i += 1;
                    let q = self.peek().unwrap_or(b'\'');
                    self.string(q)
                }
                Some(c) if c == b'-' || c.is_ascii_digit() => self.number(),
                Some(_) => {
                    let start = self.i;
                    while self
                        .peek()
                        .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_')
                    {
                        self.i += 1;
                    }
                    match &self.s[start..self.i] {
                        b"True" => Ok(Value::Bool(true)),
                        b"False" => Ok(Value::Bool(false)),
                        b"None" => Ok(Value::Null),
                        _ => Err(format!("unexpected token at byte {start}")),
                    }
                }
                None => Err("unexpected end".into()),
            }
        }

        fn string(&mut self, q: u8) -> Result<Value, String> {
            self.i += 1;
            let mut out = Vec::new();
            loop {
                match self.peek() {
                    None => return Err("unterminated string".into()),
                    Some(c) if c == q => {
                        self.i += 1;
                        return Ok(Value::String(String::from_utf8_lossy(&out).into_owned()));
                    }
                    Some(b'\\') => {
                        self.i += 1;
                        let e = self.peek().ok_or("unterminated escape")?;
                        self.i += 1;
                        match e {
                            b'n' => out.push(b'\n'),
                            b't' => out.push(b'\t'),
                            b'r' => out.push(b'\r'),
                            b'\\' | b'\'' | b'"' => out.push(e),
                            other => {
                                out.push(b'\\');
                                out.push(other);
                            }
                        }
                    }
                    Some(c) => {
                        out.push(c);
                        self.i += 1;
                    }
                }
            }
        }

        fn number(&mut self) -> Result<Value, String> {
            let start = self.i;
            self.i += 1;
            while self.peek().is_some_and(|c| {
                c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-')
            }) {
                self.i += 1;
            }
            // Python 2 longs: 12L.
            let text = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
            if self.peek() == Some(b'L') {
                self.i += 1;
            }
            if let Ok(n) = text.parse::<i64>() {
                return Ok(Value::Number(n.into()));
            }
            text.parse::<f64>()
                .ok()
                .and_then(Number::from_f64)
                .map(Value::Number)
                .ok_or_else(|| format!("bad number {text:?}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_block_is_read_without_eval() {
        let out = "progress...\n---- [{'job': 'old', 'status': 'Passed'}] ----\n\
                   more\n---- [{'job': 'Job A', 'id': 12, 'status': 'Passed',\n 'pass': 3, \
                   'fail': 0, 'report': 'C:\\\\r\\\\a.htm', 'x': None}, \
                   {'job': u'Job B', 'id': 13L, 'status': 'Investigate', 'ok': True}] ----\nC:\\>";
        let r = parse_results(out).unwrap_or_default();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].text("job"), "Job A");
        assert_eq!(r[0].text("id"), "12");
        assert_eq!(r[0].text("report"), "C:\\r\\a.htm");
        assert_eq!(r[1].text("status"), "Investigate");
        assert!(parse_results("no results").is_err());
        assert!(parse_results("---- [__import__('os')] ----").is_err());
    }

    #[test]
    fn python_floats() {
        assert_eq!(python_float(600.0), "600.0");
        assert_eq!(python_float(1.5), "1.5");
    }
}
