//! [`Transport`]: the byte streams a guest shell runs over, one implementation per access method.
//!
//! * [`SerialTransport`]: the VM's serial console (a unix socket QEMU serves). The console is read
//!   continuously by the VM's pump task, which logs everything from boot on; a session attaches
//!   to it and gets the bytes that arrive while it is attached. One session at a time.
//! * [`TelnetTransport`]: TCP with the minimal telnet handling of [`super::telnet`].
//! * [`RawTcpTransport`]: plain TCP, for a shell behind `nc -l -e` (`shell_client = nc`).
//! * [`SshTransport`]: the system `ssh` client, spawned as an argv on a pseudo-terminal of its
//!   own (so it asks for a password where no key authenticates, as under avocado-vt's pexpect).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::telnet;

/// A boxed future, for the object-safe [`Transport`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A bidirectional byte stream to a guest shell.
///
/// `read` returns the next chunk of data (an empty chunk is end of stream) and must be
/// cancel-safe: sessions race it against their deadlines.
pub trait Transport: Send {
    /// Describes the connection for messages ("serial console of vm1", "telnet 127.0.0.1:4321").
    fn describe(&self) -> &str;
    /// The next chunk of data; empty at end of stream.
    fn read(&mut self) -> BoxFuture<'_, io::Result<Vec<u8>>>;
    /// Writes all of `data`.
    fn write_all<'a>(&'a mut self, data: &'a [u8]) -> BoxFuture<'a, io::Result<()>>;
    /// Whether the client itself asks for the password (ssh): then the login never pokes a
    /// silent connection with an empty line, which the client, slow to ask, would read as an
    /// empty password (a refused login).
    fn asks_for_password(&self) -> bool {
        false
    }
}

/// What the serial pump shares with the attached session.
#[derive(Debug, Default)]
pub(crate) struct SerialShared {
    /// The attached session's channel, if any.
    pub(crate) subscriber: Mutex<Option<mpsc::Sender<Vec<u8>>>>,
    /// Whether a session is attached.
    pub(crate) attached: AtomicBool,
}

/// A session's end of the VM's serial console.
pub struct SerialTransport {
    describe: String,
    rx: mpsc::Receiver<Vec<u8>>,
    writer: Arc<tokio::sync::Mutex<OwnedWriteHalf>>,
    shared: Arc<SerialShared>,
}

impl SerialTransport {
    /// Attaches to the console; `None` if another session is attached.
    pub(crate) fn attach(
        describe: String,
        writer: Arc<tokio::sync::Mutex<OwnedWriteHalf>>,
        shared: Arc<SerialShared>,
    ) -> Option<SerialTransport> {
        if shared
            .attached
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return None;
        }
        let (tx, rx) = mpsc::channel(4096);
        *shared.subscriber.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx);
        Some(SerialTransport {
            describe,
            rx,
            writer,
            shared,
        })
    }
}

impl Drop for SerialTransport {
    fn drop(&mut self) {
        *self
            .shared
            .subscriber
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = None;
        self.shared.attached.store(false, Ordering::Release);
    }
}

impl Transport for SerialTransport {
    fn describe(&self) -> &str {
        &self.describe
    }

    fn read(&mut self) -> BoxFuture<'_, io::Result<Vec<u8>>> {
        Box::pin(async move { Ok(self.rx.recv().await.unwrap_or_default()) })
    }

    fn write_all<'a>(&'a mut self, data: &'a [u8]) -> BoxFuture<'a, io::Result<()>> {
        Box::pin(async move { self.writer.lock().await.write_all(data).await })
    }
}

/// A telnet connection with every option refused.
pub struct TelnetTransport {
    describe: String,
    stream: TcpStream,
    state: telnet::TelnetState,
}

impl TelnetTransport {
    /// Connects to `host:port`.
    pub async fn connect(host: &str, port: u16) -> io::Result<TelnetTransport> {
        let stream = TcpStream::connect((host, port)).await?;
        TelnetTransport::over(stream, host, port)
    }

    /// Talks telnet over `stream`, already connected to `host:port` (in a private bridge's
    /// namespace, say).
    pub fn over(stream: TcpStream, host: &str, port: u16) -> io::Result<TelnetTransport> {
        stream.set_nodelay(true)?;
        Ok(TelnetTransport {
            describe: format!("telnet {host}:{port}"),
            stream,
            state: telnet::TelnetState::default(),
        })
    }
}

impl Transport for TelnetTransport {
    fn describe(&self) -> &str {
        &self.describe
    }

    fn read(&mut self) -> BoxFuture<'_, io::Result<Vec<u8>>> {
        Box::pin(async move {
            let mut chunk = [0u8; 4096];
            loop {
                let n = self.stream.read(&mut chunk).await?;
                if n == 0 {
                    return Ok(Vec::new());
                }
                let (mut data, mut replies) = (Vec::new(), Vec::new());
                telnet::filter(&mut self.state, &chunk[..n], &mut data, &mut replies);
                if !replies.is_empty() {
                    // Refusals are a few bytes; the socket buffer takes them at once in practice.
                    self.stream.write_all(&replies).await?;
                }
                if !data.is_empty() {
                    return Ok(data);
                }
            }
        })
    }

    fn write_all<'a>(&'a mut self, data: &'a [u8]) -> BoxFuture<'a, io::Result<()>> {
        Box::pin(async move { self.stream.write_all(&telnet::escape(data)).await })
    }
}

/// A plain TCP connection (`nc`).
pub struct RawTcpTransport {
    describe: String,
    stream: TcpStream,
}

impl RawTcpTransport {
    /// Connects to `host:port`.
    pub async fn connect(host: &str, port: u16) -> io::Result<RawTcpTransport> {
        let stream = TcpStream::connect((host, port)).await?;
        RawTcpTransport::over(stream, host, port)
    }

    /// Uses `stream`, already connected to `host:port`.
    pub fn over(stream: TcpStream, host: &str, port: u16) -> io::Result<RawTcpTransport> {
        stream.set_nodelay(true)?;
        Ok(RawTcpTransport {
            describe: format!("nc {host}:{port}"),
            stream,
        })
    }
}

impl Transport for RawTcpTransport {
    fn describe(&self) -> &str {
        &self.describe
    }

    fn read(&mut self) -> BoxFuture<'_, io::Result<Vec<u8>>> {
        Box::pin(async move {
            let mut chunk = vec![0u8; 4096];
            let n = self.stream.read(&mut chunk).await?;
            chunk.truncate(n);
            Ok(chunk)
        })
    }

    fn write_all<'a>(&'a mut self, data: &'a [u8]) -> BoxFuture<'a, io::Result<()>> {
        Box::pin(async move { self.stream.write_all(data).await })
    }
}

/// A guest shell over the system `ssh` client, run on a pseudo-terminal of its own as avocado-vt
/// runs it: the session sees ssh's password prompt and answers it with `password`, or the key
/// `ssh_identity_file` authenticates without one. ssh's own errors ("Permission denied",
/// "Connection refused") arrive on the same terminal, so they are in the session log. The client
/// is killed and reaped when the transport drops.
pub struct SshTransport {
    describe: String,
    child: std::process::Child,
    master: tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>,
}

impl SshTransport {
    /// The argv `ssh` is run with (no shell): a remote tty, one password prompt at most, no
    /// host key bookkeeping (test guests are recreated constantly).
    pub fn argv(host: &str, port: u16, username: &str) -> Vec<String> {
        Self::argv_with_identity(host, port, username, None)
    }

    /// [`SshTransport::argv`] authenticating with the private key `identity` only
    /// (`ssh_identity_file`), before any password.
    pub fn argv_with_identity(
        host: &str,
        port: u16,
        username: &str,
        identity: Option<&std::path::Path>,
    ) -> Vec<String> {
        let identity = identity.map(|p| {
            [
                "-i".to_owned(),
                p.to_string_lossy().into_owned(),
                "-o".to_owned(),
                "IdentitiesOnly=yes".to_owned(),
            ]
        });
        [
            "ssh",
            "-tt",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "PreferredAuthentications=publickey,keyboard-interactive,password",
            "-o",
            "NumberOfPasswordPrompts=1",
            "-o",
            "ServerAliveInterval=30",
            // A guest that is not up yet (QEMU's user network accepts the connection and then
            // says nothing) ends the attempt with "Connection timed out during banner
            // exchange": the login retries, and its last error says what ssh saw.
            "-o",
            "ConnectTimeout=10",
            "-o",
            "LogLevel=ERROR",
            "-p",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .chain([port.to_string(), "-l".into(), username.into()])
        .chain(identity.into_iter().flatten())
        .chain([host.into()])
        .collect()
    }

    /// Spawns `ssh` to `host:port` as `username`. The client is killed when the transport drops.
    pub fn spawn(host: &str, port: u16, username: &str) -> io::Result<SshTransport> {
        Self::spawn_with_identity(host, port, username, None)
    }

    /// [`SshTransport::spawn`] with [`SshTransport::argv_with_identity`].
    pub fn spawn_with_identity(
        host: &str,
        port: u16,
        username: &str,
        identity: Option<&std::path::Path>,
    ) -> io::Result<SshTransport> {
        SshTransport::spawn_in(host, port, username, identity, None)
    }

    /// [`SshTransport::spawn_with_identity`], the client running in `netns` when given (a
    /// private bridge's namespace, where the guest's address is).
    pub fn spawn_in(
        host: &str,
        port: u16,
        username: &str,
        identity: Option<&std::path::Path>,
        netns: Option<&crate::netns::NetNs>,
    ) -> io::Result<SshTransport> {
        use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
        let argv = Self::argv_with_identity(host, port, username, identity);
        let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
        grantpt(&master)?;
        unlockpt(&master)?;
        let slave_path = ptsname(&master, Vec::new())?;
        let slave = rustix::fs::open(
            slave_path.as_c_str(),
            rustix::fs::OFlags::RDWR | rustix::fs::OFlags::NOCTTY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )?;
        // The ssh transport runs the ssh client: its job.
        #[allow(clippy::disallowed_methods)]
        let mut cmd = std::process::Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .stdin(std::process::Stdio::from(slave.try_clone()?))
            .stdout(std::process::Stdio::from(slave.try_clone()?))
            .stderr(std::process::Stdio::from(slave));
        if let Some(ns) = netns {
            ns.enter_on_spawn(&mut cmd)?;
        }
        // `cmd` (holding our copies of the slave) is dropped by the spawner: once ssh exits,
        // reads of the master end.
        let child = crate::spawn::spawn_on_tty(cmd)?;
        let flags = rustix::fs::fcntl_getfl(&master)?;
        rustix::fs::fcntl_setfl(&master, flags | rustix::fs::OFlags::NONBLOCK)?;
        let master = match crate::spawn::async_fd(master) {
            Ok(m) => m,
            Err(e) => {
                let mut child = child;
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
        };
        Ok(SshTransport {
            describe: format!("ssh {username}@{host}:{port}"),
            child,
            master,
        })
    }
}

impl Transport for SshTransport {
    fn describe(&self) -> &str {
        &self.describe
    }

    fn read(&mut self) -> BoxFuture<'_, io::Result<Vec<u8>>> {
        Box::pin(async move {
            let mut chunk = vec![0u8; 4096];
            loop {
                let mut ready = self.master.readable().await?;
                match ready.try_io(|fd| Ok(rustix::io::read(fd.get_ref(), &mut chunk[..])?)) {
                    Ok(Ok(n)) => {
                        chunk.truncate(n);
                        return Ok(chunk);
                    }
                    // EIO: every slave descriptor is closed (ssh exited): end of stream.
                    Ok(Err(e))
                        if e.raw_os_error() == Some(rustix::io::Errno::IO.raw_os_error()) =>
                    {
                        return Ok(Vec::new())
                    }
                    Ok(Err(e)) => return Err(e),
                    Err(_would_block) => continue,
                }
            }
        })
    }

    fn write_all<'a>(&'a mut self, data: &'a [u8]) -> BoxFuture<'a, io::Result<()>> {
        Box::pin(async move {
            let mut rest = data;
            while !rest.is_empty() {
                let mut ready = self.master.writable().await?;
                match ready.try_io(|fd| Ok(rustix::io::write(fd.get_ref(), rest)?)) {
                    Ok(Ok(n)) => rest = &rest[n..],
                    Ok(Err(e)) => return Err(e),
                    Err(_would_block) => continue,
                }
            }
            Ok(())
        })
    }

    fn asks_for_password(&self) -> bool {
        true
    }
}

impl Drop for SshTransport {
    fn drop(&mut self) {
        // SIGKILL, then reap: a killed process is reaped at once, so this does not block.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
