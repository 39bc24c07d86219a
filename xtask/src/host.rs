//! Running host tools (argv only, failing with the tool's stderr) and sha256 digests: one set of
//! helpers for every xtask that runs programs (the guest build, `deps`, `check-install`,
//! `fixtures qemu`).

use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use anyhow::{bail, ensure, Context, Result};
use serde_json::{json, Value};

/// Whether this process runs as root (the owner of `/proc/self` is the effective uid).
pub(crate) fn is_root() -> bool {
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Runs `cmd` with its output shown (echoing the argv first), failing with its status.
pub(crate) fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("$ {}", show(cmd));
    let status = cmd
        .status()
        .with_context(|| format!("spawning {}", show(cmd)))?;
    ensure!(status.success(), "{} failed: {status}", show(cmd));
    Ok(())
}

/// Runs `cmd` to completion, failing with its stderr when it fails.
pub(crate) fn output(cmd: &mut Command) -> Result<Output> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("spawning {}", show(cmd)))?;
    if !out.status.success() {
        bail!(
            "{} failed ({}): {}",
            show(cmd),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out)
}

/// Runs `cmd` and returns its stdout as text.
pub(crate) fn stdout_of(cmd: &mut Command) -> Result<String> {
    let out = output(cmd)?;
    String::from_utf8(out.stdout).with_context(|| format!("{} printed non-UTF-8", show(cmd)))
}

/// Shell-like rendering of an argv, for logs only (`qemu_cmd::shell_quote`, the project's one
/// quoting).
pub(crate) fn show(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| qemu_cmd::shell_quote(&a.to_string_lossy()).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

pub(crate) fn sha256_file(path: &Path) -> Result<String> {
    let text = stdout_of(Command::new("sha256sum").arg("--").arg(path))?;
    parse_sha256sum(&text).with_context(|| format!("sha256sum of {}", path.display()))
}

pub(crate) fn sha256_bytes(data: &[u8]) -> Result<String> {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("spawning sha256sum")?;
    child
        .stdin
        .take()
        .context("sha256sum's stdin")?
        .write_all(data)
        .context("writing to sha256sum")?;
    let out = child.wait_with_output().context("waiting for sha256sum")?;
    ensure!(out.status.success(), "sha256sum failed: {}", out.status);
    parse_sha256sum(&String::from_utf8_lossy(&out.stdout))
}

fn parse_sha256sum(text: &str) -> Result<String> {
    let hash = text.split_whitespace().next().unwrap_or_default();
    ensure!(
        hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
        "unexpected sha256sum output {text:?}"
    );
    Ok(hash.to_owned())
}

/// `{"sha256": …, "size": …}` of a file.
pub(crate) fn file_digest(path: &Path) -> Result<Value> {
    let size = fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    Ok(json!({ "sha256": sha256_file(path)?, "size": size }))
}
