//! `qemu_guest_agent`: tp-qemu's guest-agent test (`qemu_guest_agent.py`), one check per
//! `gagent_check_type`, each asking the agent (through the VM's `gagent_name` port) and checking
//! its answer against what the guest itself says over a shell.

use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

use super::common::{
    cancellable, fail_env, guest_cmd, guest_output, login, login_via, main_vm, pause,
};
use super::QEMU_GUEST_AGENT;
use crate::catalogue::session::login_timeout;
use crate::env::{GuestVm, LoginVia};
use crate::future::BoxFuture;
use crate::registry::{read_params, TestContext};
use crate::shell::RemoteShell;
use crate::verdict::{TestError, TestResult};

/// The check types kvmtest runs (tp-qemu's names).
pub(super) const CHECKS: &[&str] = &[
    "sync",
    "sync_delimited",
    "guest_info",
    "powerdown",
    "reboot",
    "get_time",
    "get_vcpus",
    "get_interfaces",
    "fsfreeze",
    "thaw_unfrozen",
    "freeze_frozen",
    "guest_exec",
    "file_write",
    "file_read",
];

/// What a check needs besides the agent.
struct Ctx<'c> {
    ctx: &'c TestContext,
    vm: std::sync::Arc<dyn GuestVm>,
    via: LoginVia,
    timeout: Duration,
}

impl Ctx<'_> {
    async fn agent(&self, command: &str, args: Value) -> Result<Value, TestError> {
        let r = cancellable(self.ctx, async {
            self.vm
                .agent(command, args, Duration::from_secs(60))
                .await
                .map_err(|e| fail_env(&format!("the guest agent's {command}"), &e))
        })
        .await?;
        self.ctx
            .log
            .info(format_args!("guest agent {command} returned {r}"));
        Ok(r)
    }

    async fn shell(&self) -> Result<Box<dyn RemoteShell>, TestError> {
        login(self.ctx, &self.vm, self.via).await
    }
}

/// `type = qemu_guest_agent`.
pub fn run(ctx: &TestContext) -> BoxFuture<'_, TestResult> {
    Box::pin(async move {
        let mut k = ctx.keys(&QEMU_GUEST_AGENT);
        let via = login_via(&mut k);
        let check = k.text("gagent_check_type");
        let cpu_cmd = k.text("get_cpu_cmd");
        let time_cmd = k.text("get_guest_time_cmd");
        let fs_test_cmd = k.text("gagent_fs_test_cmd");
        let mountpoint = k.text("mountpoint_def");
        let guest_cmd_name = k.text("guest_cmd");
        let guest_cmd_args = k.text("guest_cmd_args");
        let guest_cmd_timeout = k.secs("guest_cmd_timeout");
        let file_path = k.text("file_path");
        let (via, guest_cmd_timeout) = read_params(k, (via, guest_cmd_timeout))?;
        let via = QEMU_GUEST_AGENT.declared(via, "serial_login")?;
        let guest_cmd_timeout =
            QEMU_GUEST_AGENT.declared(guest_cmd_timeout, "guest_cmd_timeout")?;
        if !CHECKS.contains(&check.as_str()) {
            return Err(TestError::error(format!(
                "gagent_check_type = {check}: not a check kvmtest runs (it runs {})",
                CHECKS.join(", ")
            )));
        }
        let c = Ctx {
            ctx,
            vm: main_vm(ctx)?,
            via,
            timeout: login_timeout(ctx)?,
        };
        // The guest is up (and its agent started by udev) before it is asked.
        drop(c.shell().await?);
        match check.as_str() {
            "sync" | "sync_delimited" => {
                let id = i64::from(std::process::id()) * 1000 + 7;
                let cmd = if check == "sync" {
                    "guest-sync"
                } else {
                    "guest-sync-delimited"
                };
                let r = c.agent(cmd, json!({ "id": id })).await?;
                if r.as_i64() != Some(id) {
                    return Err(TestError::fail(format!(
                        "{cmd} with id {id} answered {r}, not the id"
                    )));
                }
                Ok(())
            }
            "guest_info" => guest_info(&c).await,
            "powerdown" => {
                cancellable(ctx, async {
                    c.vm.agent_shutdown("powerdown", Duration::from_secs(120))
                        .await
                        .map_err(|e| fail_env("guest-shutdown (powerdown)", &e))
                })
                .await?;
                if c.vm.is_alive() {
                    return Err(TestError::fail("QEMU still runs after guest-shutdown"));
                }
                Ok(())
            }
            "reboot" => reboot(&c).await,
            "get_time" => get_time(&c, &time_cmd).await,
            "get_vcpus" => get_vcpus(&c, &cpu_cmd).await,
            "get_interfaces" => get_interfaces(&c).await,
            "fsfreeze" => fsfreeze(&c, &fs_test_cmd, &mountpoint).await,
            "thaw_unfrozen" => {
                let r = c.agent("guest-fsfreeze-thaw", Value::Null).await?;
                if r.as_i64() != Some(0) {
                    return Err(TestError::fail(format!(
                        "guest-fsfreeze-thaw of unfrozen file systems answered {r}, not 0"
                    )));
                }
                Ok(())
            }
            "freeze_frozen" => freeze_frozen(&c).await,
            "guest_exec" => {
                guest_exec(&c, &guest_cmd_name, &guest_cmd_args, guest_cmd_timeout).await
            }
            "file_write" | "file_read" => file_rw(&c, &file_path, check == "file_write").await,
            _ => unreachable!("checked against CHECKS"),
        }
    })
}

/// `guest-info`: a version, and that version is the guest's own `qemu-ga --version`.
async fn guest_info(c: &Ctx<'_>) -> Result<(), TestError> {
    let info = c.agent("guest-info", Value::Null).await?;
    let version = info["version"].as_str().unwrap_or_default().to_owned();
    let commands = info["supported_commands"].as_array().map_or(0, Vec::len);
    if version.is_empty() || commands == 0 {
        return Err(TestError::fail(format!(
            "guest-info gave no version or no commands: {info}"
        )));
    }
    let mut shell = c.shell().await?;
    let out = guest_output(c.ctx, &mut shell, "qemu-ga --version 2>&1").await?;
    if !out.contains(&version) {
        return Err(TestError::fail(format!(
            "guest-info reports version {version}; the guest's `qemu-ga --version` printed {:?}",
            out.trim()
        )));
    }
    Ok(())
}

/// `guest-shutdown mode=reboot`: the guest comes back with a new kernel boot_id.
async fn reboot(c: &Ctx<'_>) -> Result<(), TestError> {
    let mut shell = c.shell().await?;
    let before = guest_output(c.ctx, &mut shell, super::lifecycle::BOOT_ID).await?;
    drop(shell);
    cancellable(c.ctx, async {
        c.vm.agent_shutdown("reboot", c.timeout)
            .await
            .map_err(|e| fail_env("guest-shutdown (reboot)", &e))
    })
    .await?;
    let deadline = Instant::now() + c.timeout;
    loop {
        // Logins may still reach the old system while it goes down: until the boot_id changes.
        if let Ok(mut shell) = c.shell().await {
            if let Ok(after) = guest_output(c.ctx, &mut shell, super::lifecycle::BOOT_ID).await {
                if after.trim() != before.trim() && !after.trim().is_empty() {
                    return Ok(());
                }
            }
        }
        if Instant::now() >= deadline {
            return Err(TestError::fail(format!(
                "after guest-shutdown mode=reboot, the guest still shows boot_id {} after {} s",
                before.trim(),
                c.timeout.as_secs()
            )));
        }
        pause(c.ctx, Duration::from_secs(2)).await?;
    }
}

/// `guest-get-time` within 5 s of the guest's own clock (`get_guest_time_cmd`, seconds).
async fn get_time(c: &Ctx<'_>, time_cmd: &str) -> Result<(), TestError> {
    let agent_ns = c.agent("guest-get-time", Value::Null).await?;
    let agent_s = agent_ns.as_i64().unwrap_or_default() / 1_000_000_000;
    let mut shell = c.shell().await?;
    let out = guest_cmd(c.ctx, &mut shell, time_cmd)
        .await
        .map_err(|e| TestError::error(crate::error::error_chain(&e)))?;
    let guest_s: i64 = out.trim().parse().map_err(|_| {
        TestError::error(format!(
            "get_guest_time_cmd = {time_cmd} printed {:?}, not seconds",
            out.trim()
        ))
    })?;
    if (guest_s - agent_s).abs() > 5 {
        return Err(TestError::fail(format!(
            "guest-get-time says {agent_s} s, the guest's clock {guest_s} s"
        )));
    }
    Ok(())
}

/// `guest-get-vcpus`: as many online vCPUs as the guest counts (`get_cpu_cmd`).
async fn get_vcpus(c: &Ctx<'_>, cpu_cmd: &str) -> Result<(), TestError> {
    let vcpus = c.agent("guest-get-vcpus", Value::Null).await?;
    let online = vcpus
        .as_array()
        .map_or(0, |a| a.iter().filter(|v| v["online"] == true).count());
    let mut shell = c.shell().await?;
    let out = guest_cmd(c.ctx, &mut shell, cpu_cmd)
        .await
        .map_err(|e| TestError::error(crate::error::error_chain(&e)))?;
    let counted: usize = out.trim().parse().map_err(|_| {
        TestError::error(format!(
            "get_cpu_cmd = {cpu_cmd} printed {:?}, not a count",
            out.trim()
        ))
    })?;
    if online != counted {
        return Err(TestError::fail(format!(
            "guest-get-vcpus reports {online} online vCPUs, the guest counts {counted}"
        )));
    }
    Ok(())
}

/// `guest-network-get-interfaces`: every interface the guest has, with its MAC.
async fn get_interfaces(c: &Ctx<'_>) -> Result<(), TestError> {
    let ifaces = c.agent("guest-network-get-interfaces", Value::Null).await?;
    let mut shell = c.shell().await?;
    let out = guest_cmd(
        c.ctx,
        &mut shell,
        "for i in /sys/class/net/*; do echo \"${i##*/} $(cat $i/address)\"; done",
    )
    .await
    .map_err(|e| TestError::error(crate::error::error_chain(&e)))?;
    let listed: Vec<(String, String)> = ifaces
        .as_array()
        .map(|a| {
            a.iter()
                .map(|i| {
                    (
                        i["name"].as_str().unwrap_or_default().to_owned(),
                        i["hardware-address"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let mut missing = Vec::new();
    for line in out.lines() {
        let mut w = line.split_whitespace();
        let (Some(name), Some(mac)) = (w.next(), w.next()) else {
            continue;
        };
        if !listed
            .iter()
            .any(|(n, m)| n == name && m.eq_ignore_ascii_case(mac))
        {
            missing.push(format!("{name} {mac}"));
        }
    }
    if !missing.is_empty() {
        return Err(TestError::fail(format!(
            "the guest has {} that guest-network-get-interfaces does not report: {ifaces}",
            missing.join(", ")
        )));
    }
    Ok(())
}

/// fsfreeze: thawed → freeze → frozen, a write in the guest (`gagent_fs_test_cmd` with
/// `mountpoint_def`) blocks, → thaw → thawed, the write completes.
async fn fsfreeze(c: &Ctx<'_>, fs_test_cmd: &str, mountpoint: &str) -> Result<(), TestError> {
    let status = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let st = status(&c.agent("guest-fsfreeze-status", Value::Null).await?);
    if st != "thawed" {
        return Err(TestError::fail(format!(
            "file systems are {st}, not thawed, at first"
        )));
    }
    // The shell for the write is opened first: a login to a frozen guest blocks (sshd and
    // login write their records).
    let mut shell = c.shell().await?;
    let frozen = c.agent("guest-fsfreeze-freeze", Value::Null).await?;
    if frozen.as_i64().unwrap_or(0) < 1 {
        let _ = c.agent("guest-fsfreeze-thaw", Value::Null).await;
        return Err(TestError::fail(format!(
            "guest-fsfreeze-freeze froze {frozen} file systems"
        )));
    }
    let result = async {
        let st = status(&c.agent("guest-fsfreeze-status", Value::Null).await?);
        if st != "frozen" {
            return Err(TestError::fail(format!(
                "after freezing, the status is {st}"
            )));
        }
        // A write to a frozen file system must wait for the thaw.
        let write = fs_test_cmd.replace("%s", mountpoint);
        match shell
            .cmd_output(&format!("{write}; sync"), Duration::from_secs(5))
            .await
        {
            Err(crate::shell::ShellError::Timeout { .. }) => {}
            Ok(out) => {
                return Err(TestError::fail(format!(
                    "`{write}` finished while the file systems were frozen: {out:?}"
                )))
            }
            Err(e) => return Err(TestError::error(crate::error::error_chain(&e))),
        }
        Ok(())
    }
    .await;
    let thawed = c.agent("guest-fsfreeze-thaw", Value::Null).await;
    result?;
    let thawed = thawed?;
    if thawed.as_i64().unwrap_or(0) < 1 {
        return Err(TestError::fail(format!(
            "guest-fsfreeze-thaw thawed {thawed}"
        )));
    }
    let st = status(&c.agent("guest-fsfreeze-status", Value::Null).await?);
    if st != "thawed" {
        return Err(TestError::fail(format!(
            "after thawing, the status is {st}"
        )));
    }
    // The write that waited now finishes: its shell gives its prompt back.
    shell
        .read_up_to_prompt(Duration::from_secs(30))
        .await
        .map_err(|e| {
            TestError::fail(format!(
                "the write blocked by the freeze did not finish after the thaw: {}",
                crate::error::error_chain(&e)
            ))
        })?;
    Ok(())
}

/// Freezing frozen file systems is refused, and the guest is thawed afterwards.
async fn freeze_frozen(c: &Ctx<'_>) -> Result<(), TestError> {
    c.agent("guest-fsfreeze-freeze", Value::Null).await?;
    let again =
        c.vm.agent(
            "guest-fsfreeze-freeze",
            Value::Null,
            Duration::from_secs(60),
        )
        .await;
    let thawed = c.agent("guest-fsfreeze-thaw", Value::Null).await;
    match again {
        Ok(v) => Err(TestError::fail(format!(
            "freezing frozen file systems was accepted ({v})"
        ))),
        Err(e) => {
            thawed?;
            c.ctx
                .log
                .info(format_args!("a second freeze was refused: {e}"));
            Ok(())
        }
    }
}

/// `guest-exec` of `guest_cmd guest_cmd_args` with its output captured: exit 0, output the
/// arguments (tp-qemu's `echo This is a test.`).
async fn guest_exec(
    c: &Ctx<'_>,
    cmd: &str,
    args: &str,
    timeout: Duration,
) -> Result<(), TestError> {
    let started = c
        .agent(
            "guest-exec",
            json!({ "path": cmd, "arg": args.split_whitespace().collect::<Vec<_>>(),
                    "capture-output": true }),
        )
        .await?;
    let Some(pid) = started["pid"].as_i64() else {
        return Err(TestError::fail(format!(
            "guest-exec returned no pid: {started}"
        )));
    };
    let deadline = Instant::now() + timeout;
    let status = loop {
        let st = c.agent("guest-exec-status", json!({ "pid": pid })).await?;
        if st["exited"] == true {
            break st;
        }
        if Instant::now() >= deadline {
            return Err(TestError::fail(format!(
                "`{cmd} {args}` still runs after guest_cmd_timeout = {} s",
                timeout.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let out = status["out-data"]
        .as_str()
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    if status["exitcode"].as_i64() != Some(0) || !out.contains(args.trim()) {
        return Err(TestError::fail(format!(
            "guest-exec of `{cmd} {args}`: exit code {}, output {out:?}",
            status["exitcode"]
        )));
    }
    Ok(())
}

/// Writes a file through the agent and reads it in the guest (`file_write`), or writes it in
/// the guest and reads it through the agent (`file_read`).
async fn file_rw(c: &Ctx<'_>, dir: &str, write_by_agent: bool) -> Result<(), TestError> {
    let path = format!(
        "{}/kvmtest-qga-{}",
        dir.trim_end_matches('/'),
        std::process::id()
    );
    let text = format!("kvmtest guest agent {}\n", std::process::id());
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut shell = c.shell().await?;
    let result = async {
        if write_by_agent {
            let h = c
                .agent("guest-file-open", json!({ "path": path, "mode": "w" }))
                .await?;
            let w = c
                .agent(
                    "guest-file-write",
                    json!({ "handle": h, "buf-b64": b64.encode(&text) }),
                )
                .await;
            c.agent("guest-file-close", json!({ "handle": h })).await?;
            w?;
            let seen = guest_output(c.ctx, &mut shell, &format!("cat {path}")).await?;
            if seen.trim_end() != text.trim_end() {
                return Err(TestError::fail(format!(
                    "wrote {text:?} through the agent; the guest's file holds {seen:?}"
                )));
            }
        } else {
            guest_cmd(
                c.ctx,
                &mut shell,
                &format!("echo '{}' > {path}", text.trim_end()),
            )
            .await
            .map_err(|e| TestError::error(crate::error::error_chain(&e)))?;
            let h = c
                .agent("guest-file-open", json!({ "path": path, "mode": "r" }))
                .await?;
            let r = c
                .agent("guest-file-read", json!({ "handle": h, "count": 4096 }))
                .await;
            c.agent("guest-file-close", json!({ "handle": h })).await?;
            let r = r?;
            let got = r["buf-b64"]
                .as_str()
                .and_then(|s| b64.decode(s).ok())
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            if got != text {
                return Err(TestError::fail(format!(
                    "the guest wrote {text:?}; guest-file-read returned {got:?}"
                )));
            }
        }
        Ok(())
    }
    .await;
    let _ = guest_output(c.ctx, &mut shell, &format!("rm -f {path}")).await;
    result
}
