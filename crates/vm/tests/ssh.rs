//! The `ssh` client path of guest sessions (`shell_client = ssh`), against a real OpenSSH server:
//! a private `sshd -i` (inetd mode) started on a connection the test accepted itself, with a
//! host key, an authorized key and a config in a temporary directory. Nothing listens after
//! the test, no port is probed and released, and the host's own sshd (if any) is not involved.
//! The `sshd` is held by a [`ChildGuard`], so it is killed and reaped even when the test fails.
//! `.ci/run` installs `openssh-server`; without `/usr/sbin/sshd` the test fails, it does not skip.
#![allow(clippy::disallowed_methods)] // tests and examples start their own peers

mod support;

use std::fs;
use std::net::TcpListener;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use params::Params;
use support::ChildGuard;
use vm::session::SshTransport;
use vm::{Session, SessionSpec};

const SSHD: &str = "/usr/sbin/sshd";

fn keygen(path: &Path) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "kvmtest-test", "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen runs (openssh-client)");
    assert!(status.success(), "ssh-keygen failed: {status}");
}

fn current_user() -> String {
    let out = Command::new("id").arg("-un").output().expect("id -un");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Writes the server's keys and config into `dir`; returns (config, client key).
fn server_files(dir: &Path) -> (PathBuf, PathBuf) {
    let host_key = dir.join("host_key");
    let user_key = dir.join("user_key");
    keygen(&host_key);
    keygen(&user_key);
    let authorized = dir.join("authorized_keys");
    fs::copy(dir.join("user_key.pub"), &authorized).expect("authorized_keys");
    let config = dir.join("sshd_config");
    fs::write(
        &config,
        format!(
            "HostKey {}\nAuthorizedKeysFile {}\nStrictModes no\nUsePAM no\nPermitRootLogin yes\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
             PidFile none\nLogLevel ERROR\n",
            host_key.display(),
            authorized.display()
        ),
    )
    .expect("sshd_config");
    (config, user_key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_sessions_log_in_and_run_commands() {
    assert!(
        Path::new(SSHD).is_file(),
        "{SSHD} is missing: install openssh-server (.ci/run does)"
    );
    // sshd refuses to start without its privilege separation directory
    if !Path::new("/run/sshd").exists() {
        let _ = fs::create_dir_all("/run/sshd");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (config, user_key) = server_files(dir.path());
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server_log = dir.path().join("sshd.log");
    let log = fs::File::create(&server_log).expect("sshd log");
    // One connection, one `sshd -i` on it, which ends with the session. The thread hands the
    // sshd to a guard the test holds (or, if the test is already gone, drops it: killed).
    let sshd: Arc<Mutex<Option<ChildGuard>>> = Arc::new(Mutex::new(None));
    let slot = sshd.clone();
    let server = std::thread::spawn(move || {
        let (sock, _) = listener.accept().expect("accept");
        drop(listener);
        let fd = OwnedFd::from(sock);
        let out = fd.try_clone().expect("dup");
        let child = Command::new(SSHD)
            .arg("-i")
            .arg("-f")
            .arg(&config)
            .arg("-e")
            .stdin(Stdio::from(fd))
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawning sshd");
        *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(ChildGuard::new(child));
    });

    let mut p = Params::new();
    p.insert("username", current_user());
    p.insert("shell_prompt", r"[\#\$]\s*$");
    p.insert("login_timeout", "30");
    p.insert("cmd_timeout", "20");
    let config = SessionSpec::read(&p, "vm1").expect("shell config");
    let transport =
        SshTransport::spawn_with_identity("127.0.0.1", port, &config.username, Some(&user_key))
            .expect("ssh spawns");
    let log_path = dir.path().join("session-ssh.log");
    let mut s = Session::new(Box::new(transport), config, &log_path).expect("session");
    let login = s.login(Duration::from_secs(30)).await;
    let server_says = || fs::read_to_string(&server_log).unwrap_or_default();
    let session_says = || fs::read_to_string(&log_path).unwrap_or_default();
    if let Err(e) = login {
        panic!(
            "ssh login failed: {e}\n--- sshd ---\n{}\n--- session ---\n{}",
            server_says(),
            session_says()
        );
    }
    let out = s.cmd("echo kvmtest-over-ssh").await.expect("echo");
    assert_eq!(out.trim(), "kvmtest-over-ssh", "{}", session_says());
    let (status, out) = s
        .cmd_status_output("echo out; exit_code() { return 3; }; exit_code")
        .await
        .expect("status");
    assert_eq!(status, 3, "the command's status: {out:?}");
    assert_eq!(out.trim(), "out");
    let err = s
        .cmd("false")
        .await
        .expect_err("a failing command is an error");
    assert!(err.to_string().contains("false"), "{err}");
    assert!(
        session_says().contains("kvmtest-over-ssh"),
        "the session is logged"
    );
    drop(s);
    let spawned = tokio::task::spawn_blocking(move || server.join())
        .await
        .expect("join task");
    assert!(spawned.is_ok(), "the sshd thread panicked");
    // The client is killed with the session; sshd then ends.
    let mut guard = sshd
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .expect("sshd was spawned");
    let deadline = Instant::now() + Duration::from_secs(10);
    while guard.child().try_wait().expect("polling sshd").is_none() {
        assert!(
            Instant::now() < deadline,
            "sshd still runs 10 s after the session ended"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
