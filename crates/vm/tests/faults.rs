//! Fault tests across processes: a SIGKILLed kvmtest takes its QEMU with it, and two processes
//! creating VMs with redirected ports at the same time never get the same host port.
//!
//! The "children" are this test binary run again with one test selected and an environment
//! variable telling that test to act as the child; without the variable those tests return at
//! once. Each child is held by a [`ChildGuard`]: if the parent test fails (a timeout, an
//! assertion), the guard SIGKILLs and reaps the child, and the child's QEMU dies with it, so no
//! process outlives a failing test.
#![allow(clippy::disallowed_methods)] // tests and examples start their own peers

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{guest_params, process_alive, start, ChildGuard};
use vm::Teardown;

const CHILD_OUT: &str = "KVMTEST_VM_TEST_CHILD_OUT";
const CHILD_RELEASE: &str = "KVMTEST_VM_TEST_CHILD_RELEASE";

/// How long a child may take to create its VM and report it.
const CHILD_READY: Duration = Duration::from_secs(60);

fn spawn_child(test: &str, out: &Path, release: &Path) -> ChildGuard {
    let child = Command::new(std::env::current_exe().expect("current exe"))
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD_OUT, out)
        .env(CHILD_RELEASE, release)
        .stdin(Stdio::null())
        .spawn()
        .expect("spawning the child test process");
    ChildGuard::new(child)
}

/// Waits for `path` to hold a complete line.
fn wait_file(path: &Path, timeout: Duration, child: &mut ChildGuard) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            if text.ends_with('\n') {
                return text;
            }
        }
        if let Ok(Some(status)) = child.child().try_wait() {
            panic!("child exited ({status}) before writing {}", path.display());
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Child side: create a VM (paused, `-S`: no guest needed), write `pid run_dir host ports…`,
/// then wait for the release file (bounded) and destroy the VM.
async fn child_main(out: PathBuf, release: PathBuf) {
    // Logs go into the parent's tempdir: a SIGKILLed child cannot remove its own.
    let logs = out
        .parent()
        .unwrap_or(Path::new("."))
        .join(format!("logs-{}", std::process::id()));
    let mut p = guest_params();
    p.insert("extra_params", "-S");
    p.insert("redirs", "r1 r2 r3 r4");
    for (i, port) in [22, 23, 80, 2222].iter().enumerate() {
        p.insert(format!("guest_port_r{}", i + 1), port.to_string());
    }
    let vm = start(p, &logs).await.expect("child: create");
    let ports: Vec<String> = [22, 23, 80, 2222]
        .iter()
        .map(|g| vm.get_port(*g, 0).expect("port").to_string())
        .collect();
    let line = format!(
        "{} {} {}\n",
        vm.pid(),
        vm.run_dir().display(),
        ports.join(" ")
    );
    let tmp = out.with_extension("tmp");
    std::fs::write(&tmp, line).expect("child: write");
    std::fs::rename(&tmp, &out).expect("child: rename");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !release.exists() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    vm.destroy(Teardown::Kill).await.expect("child: destroy");
}

fn child_env() -> Option<(PathBuf, PathBuf)> {
    Some((
        std::env::var_os(CHILD_OUT).map(PathBuf::from)?,
        std::env::var_os(CHILD_RELEASE).map(PathBuf::from)?,
    ))
}

/// The child of both fault tests (a no-op when run normally).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_process() {
    if let Some((out, release)) = child_env() {
        child_main(out, release).await;
    }
}

#[test]
fn sigkilled_test_process_takes_qemu_with_it() {
    if child_env().is_some() {
        return;
    }
    // Fail here, naming `cargo xtask fixtures guest`, rather than in the children.
    support::guest();
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("child.out");
    let never = dir.path().join("never-released");
    let mut child = spawn_child("child_process", &out, &never);
    let line = wait_file(&out, CHILD_READY, &mut child);
    let mut f = line.split_whitespace();
    let pid: u32 = f.next().and_then(|p| p.parse().ok()).expect("pid");
    child.set_qemu(pid);
    let run_dir = PathBuf::from(f.next().expect("run dir"));
    assert!(process_alive(pid), "QEMU runs while the child does");

    child.child().kill().expect("SIGKILL the child");
    child.wait();
    let deadline = Instant::now() + Duration::from_secs(5);
    while process_alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !process_alive(pid),
        "QEMU {pid} survived its SIGKILLed parent"
    );

    // The run dir of the dead process is swept by the next create (here: explicitly).
    assert!(run_dir.exists());
    vm::sweep_stale(&vm::run_base());
    assert!(
        !run_dir.exists(),
        "stale run dir {} not swept",
        run_dir.display()
    );
}

#[test]
fn concurrent_processes_never_share_redir_ports() {
    if child_env().is_some() {
        return;
    }
    // Fail here, naming `cargo xtask fixtures guest`, rather than in the children.
    support::guest();
    let dir = tempfile::tempdir().expect("tempdir");
    let release = dir.path().join("release");
    let outs: Vec<PathBuf> = (0..2)
        .map(|i| dir.path().join(format!("child{i}.out")))
        .collect();
    let mut children: Vec<ChildGuard> = outs
        .iter()
        .map(|o| spawn_child("child_process", o, &release))
        .collect();
    let mut all_ports = Vec::new();
    let mut pids = Vec::new();
    for (o, c) in outs.iter().zip(children.iter_mut()) {
        let line = wait_file(o, CHILD_READY, c);
        let mut f = line.split_whitespace();
        let pid = f.next().and_then(|p| p.parse::<u32>().ok()).expect("pid");
        c.set_qemu(pid);
        pids.push(pid);
        let _run_dir = f.next();
        let ports: Vec<u16> = f.map(|p| p.parse().expect("port")).collect();
        assert_eq!(ports.len(), 4);
        all_ports.extend(ports);
    }
    // Both VMs run at once, each holding its four ports.
    assert!(pids.iter().all(|p| process_alive(*p)));
    let mut unique = all_ports.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(
        unique.len(),
        all_ports.len(),
        "ports collide: {all_ports:?}"
    );
    for port in &all_ports {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", *port)).is_ok(),
            "nothing listens on forwarded port {port}"
        );
    }
    std::fs::write(&release, "go\n").expect("release");
    for c in &mut children {
        let status = c.wait();
        assert!(status.success(), "child failed: {status}");
    }
    for p in pids {
        assert!(!process_alive(p));
    }
}
