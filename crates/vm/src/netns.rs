//! Network namespaces kvmtest creates ([`NetNs`]: private bridges live in one) and the `ip`
//! runner for kvmtest's own namespace or one of those.
//!
//! A namespace is created by a short-lived thread (`unshare(CLONE_NEWNET)`) and kept by an open
//! handle (`/proc/thread-self/ns/net`): no process holds it and no name is mounted for it, so
//! the kernel deletes it when kvmtest exits, however it exits. Work inside it runs on a thread
//! that joined it (`setns`), or in a child that joins it between fork and exec. The two system
//! calls are `unsafe` in rustix, so this module allows `unsafe_code` for them, each with its
//! SAFETY comment.

#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// A network namespace kvmtest created, held by an open handle.
#[derive(Debug)]
pub struct NetNs {
    handle: File,
}

impl NetNs {
    /// Creates a new network namespace (from a short-lived thread, so kvmtest's own threads
    /// stay where they are).
    pub(crate) fn create() -> io::Result<NetNs> {
        std::thread::spawn(|| {
            // SAFETY: only the network namespace is unshared (not the fd table, which is what
            // `unshare_unsafe` warns about), and only on this thread, which ends right after.
            unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNET) }?;
            let handle = File::open("/proc/thread-self/ns/net")?;
            Ok(NetNs { handle })
        })
        .join()
        .map_err(|_| io::Error::other("the namespace thread panicked"))?
    }

    /// Runs `work` on a thread that joined this namespace (sockets and taps it creates belong
    /// to the namespace).
    pub(crate) fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> io::Result<T> + Send + 'static,
    ) -> io::Result<T> {
        let handle = self.handle.try_clone()?;
        std::thread::spawn(move || {
            rustix::thread::move_into_link_name_space(
                handle.as_fd(),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )?;
            work()
        })
        .join()
        .map_err(|_| io::Error::other("the namespace thread panicked"))?
    }

    /// Connects to `host:port` from inside this namespace within `timeout`.
    pub(crate) fn connect_tcp(
        &self,
        host: &str,
        port: u16,
        timeout: std::time::Duration,
    ) -> io::Result<tokio::net::TcpStream> {
        let ip: std::net::IpAddr = host.parse().map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{host:?} is not an IP address"),
            )
        })?;
        let stream = self.run(move || {
            let s = std::net::TcpStream::connect_timeout(&(ip, port).into(), timeout)?;
            s.set_nonblocking(true)?;
            Ok(s)
        })?;
        tokio::net::TcpStream::from_std(stream)
    }

    /// Makes `cmd` start in this namespace: it joins it between fork and exec.
    pub(crate) fn enter_on_spawn(&self, cmd: &mut Command) -> io::Result<()> {
        // Our own copy of the handle (close-on-exec), moved into the closure: it stays open
        // for as long as the command may be spawned.
        let handle = self.handle.try_clone()?;
        // SAFETY: the closure runs in the forked child before exec. It makes one raw system
        // call (setns) on an fd that is open in the child (the fd table is a copy of ours) and
        // builds its error with `from_raw_os_error`, which does not allocate.
        unsafe {
            cmd.pre_exec(move || {
                rustix::thread::move_into_link_name_space(
                    handle.as_fd(),
                    Some(rustix::thread::LinkNameSpaceType::Network),
                )
                .map_err(|e| io::Error::from_raw_os_error(e.raw_os_error()))
            });
        }
        Ok(())
    }
}

/// Runs `ip ARGS` in `netns` (or here): its stdout, or its stderr on failure.
pub(crate) fn ip_in(netns: Option<&NetNs>, args: &[&str]) -> Result<String, String> {
    // The one place kvmtest runs `ip`, and nothing else here.
    #[allow(clippy::disallowed_methods)]
    let mut cmd = Command::new("ip");
    cmd.args(args);
    if let Some(ns) = netns {
        ns.enter_on_spawn(&mut cmd)
            .map_err(|e| format!("preparing `ip`: {e}"))?;
    }
    let out = cmd
        .output()
        .map_err(|e| format!("running `ip` (iproute2): {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`ip {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
