//! Spawning children that die with kvmtest: one of the crate's two modules with `unsafe` (the
//! other is `vsock`'s ioctl).
//!
//! A QEMU started by kvmtest must not outlive it, however kvmtest ends (panic, SIGKILL, OOM
//! killer). The kernel offers exactly this with `prctl(PR_SET_PDEATHSIG, SIGKILL)`, set in the
//! child between `fork` and `exec` — which `std` only allows through the `unsafe`
//! [`CommandExt::pre_exec`]. The alternatives were weighed (see the crate README): `setpriv
//! --pdeathsig` leaves a window in which the parent can die unnoticed and adds a host tool; a
//! supervisor process or a pidfd watcher only works while kvmtest is still alive to run it. So
//! this module allows `unsafe_code` for the single `pre_exec` call below, whose closure only makes
//! async-signal-safe raw system calls.
//!
//! Two more details make the parent-death signal reliable:
//! * It fires when the *thread* that forked the child exits, not the process. Children are
//!   therefore forked by one dedicated thread that lives as long as the process ([`spawn`] sends
//!   it the `Command`), never by a test thread or a tokio blocking thread that may end early.
//! * If the parent died before the `prctl`, the signal would never come; the closure checks
//!   `getppid()` afterwards and fails the spawn instead of running an orphan.
//!
//! The module also holds the crate's one other `unsafe` call, [`async_fd`] (tokio's
//! `AsyncFd::register`, whose contract an `OwnedFd` meets by construction), used for the
//! pseudo-terminal of [`spawn_on_tty`]'s children.
//!
//! Every child is also put in a new process group (the safe [`CommandExt::process_group`]), so
//! that it and anything it forks (e.g. an `exec:` migration's shell) can be killed together.

#![allow(unsafe_code)]

use std::io;
use std::os::fd::{BorrowedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};

/// A spawn request for the spawner thread.
struct Request {
    cmd: Command,
    reply: mpsc::Sender<io::Result<Child>>,
}

static SPAWNER: OnceLock<Mutex<mpsc::Sender<Request>>> = OnceLock::new();

fn spawner() -> io::Result<mpsc::Sender<Request>> {
    if let Some(tx) = SPAWNER.get() {
        return Ok(tx.lock().unwrap_or_else(|e| e.into_inner()).clone());
    }
    let (tx, rx) = mpsc::channel::<Request>();
    std::thread::Builder::new()
        .name("kvmtest-spawner".into())
        .spawn(move || {
            // Lives until the process exits: the static below keeps a sender forever.
            for mut req in rx {
                let result = req.cmd.spawn();
                let _ = req.reply.send(result);
            }
        })?;
    // If another thread won the race, its spawner is used and ours ends when `tx` drops.
    let stored = SPAWNER.get_or_init(|| Mutex::new(tx));
    Ok(stored.lock().unwrap_or_else(|e| e.into_inner()).clone())
}

/// Spawns `cmd` in a new process group, with SIGKILL as its parent-death signal, from the
/// process-lifetime spawner thread, with the fds `inherit` (open close-on-exec in kvmtest, like
/// every fd it opens) left open across the exec: a macvtap NIC's tap and vhost-net fds, which
/// QEMU's argv names by number. Blocks only for the fork/exec itself.
pub(crate) fn spawn(mut cmd: Command, inherit: &[RawFd]) -> io::Result<Child> {
    let parent = rustix::process::getpid();
    let inherit = inherit.to_vec();
    cmd.process_group(0);
    // SAFETY: the closure runs in the forked child before exec, where only async-signal-safe
    // operations are allowed. It makes two raw system calls through rustix (prctl, getppid),
    // which neither allocate nor take locks, and builds its error with
    // `io::Error::from_raw_os_error`, which does not allocate either. It touches no state shared
    // with other threads of the parent. The fds of `inherit` are open in the parent (their owner
    // outlives the spawn), hence in the child, whose fd table is a copy: borrowing them for the
    // `fcntl(F_SETFD)` that clears close-on-exec (a raw system call) is sound; the `Vec` was
    // allocated before the fork and is only read.
    unsafe {
        cmd.pre_exec(move || {
            for &fd in &inherit {
                rustix::io::fcntl_setfd(BorrowedFd::borrow_raw(fd), rustix::io::FdFlags::empty())
                    .map_err(|e| io::Error::from_raw_os_error(e.raw_os_error()))?;
            }
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
                .map_err(|e| io::Error::from_raw_os_error(e.raw_os_error()))?;
            if rustix::process::getppid() != Some(parent) {
                // The parent died before the prctl took effect: never run as an orphan.
                return Err(io::Error::from_raw_os_error(libc_esrch()));
            }
            Ok(())
        });
    }
    let (reply_tx, reply_rx) = mpsc::channel();
    spawner()?
        .send(Request {
            cmd,
            reply: reply_tx,
        })
        .map_err(|_| io::Error::other("the kvmtest spawner thread is gone"))?;
    reply_rx
        .recv()
        .map_err(|_| io::Error::other("the kvmtest spawner thread did not answer"))?
}

/// Spawns `cmd` like [`spawn`], but as the leader of a new session whose controlling terminal is
/// its stdin, which the caller has set to a pseudo-terminal's slave: what a program that talks to
/// "the terminal" (ssh's password prompt, `/dev/tty`) needs. The new session is also a new
/// process group, so the child and its own children can be killed together as with [`spawn`].
pub(crate) fn spawn_on_tty(mut cmd: Command) -> io::Result<Child> {
    let parent = rustix::process::getpid();
    // SAFETY: as in `spawn`: the closure runs in the forked child before exec and makes only raw
    // system calls through rustix (setsid, ioctl(TIOCSCTTY) on fd 0, which std has already
    // made the pty slave, prctl, getppid), none of which allocates or takes a lock; errors are
    // built with `io::Error::from_raw_os_error`, which does not allocate. fd 0 is open in the
    // child (std dup2'ed the slave onto it), so borrowing it for the ioctl is sound.
    unsafe {
        cmd.pre_exec(move || {
            let os = |e: rustix::io::Errno| io::Error::from_raw_os_error(e.raw_os_error());
            rustix::process::setsid().map_err(os)?;
            rustix::process::ioctl_tiocsctty(BorrowedFd::borrow_raw(0)).map_err(os)?;
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
                .map_err(os)?;
            if rustix::process::getppid() != Some(parent) {
                return Err(io::Error::from_raw_os_error(libc_esrch()));
            }
            Ok(())
        });
    }
    let (reply_tx, reply_rx) = mpsc::channel();
    spawner()?
        .send(Request {
            cmd,
            reply: reply_tx,
        })
        .map_err(|_| io::Error::other("the kvmtest spawner thread is gone"))?;
    reply_rx
        .recv()
        .map_err(|_| io::Error::other("the kvmtest spawner thread did not answer"))?
}

/// Registers `fd` (non-blocking) with tokio's reactor.
pub(crate) fn async_fd(
    fd: std::os::fd::OwnedFd,
) -> io::Result<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>> {
    // SAFETY: `register` requires that the descriptor `as_raw_fd` returns stays open and the same
    // for the `AsyncFd`'s lifetime: an `OwnedFd` owns its descriptor (closed only when it drops,
    // which the `AsyncFd` controls) and always returns the same number.
    unsafe { tokio::io::unix::AsyncFd::register(fd) }.map_err(io::Error::from)
}

/// `ESRCH` ("no such process"), without a libc dependency.
fn libc_esrch() -> i32 {
    rustix::io::Errno::SRCH.raw_os_error()
}

/// `binary` as a program to run: a path as given, a bare name found on `PATH`.
pub(crate) fn find_program(binary: &str) -> Option<PathBuf> {
    let is_exe = |p: &Path| p.is_file();
    if binary.contains('/') {
        let p = PathBuf::from(binary);
        return is_exe(&p).then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(binary))
        .find(|p| is_exe(p))
}
