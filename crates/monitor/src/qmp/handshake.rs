//! Opening a [`QmpClient`]: connecting over unix or TCP (retrying while QEMU
//! has not yet created the socket), reading the greeting, starting the reader
//! and writer tasks and negotiating capabilities, all within one deadline.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::client::{Inner, QmpClient};
use super::config::QmpConfig;
use super::greeting::Greeting;
use super::shared::{chain, reader_task, writer_task, CmdState, Shared, WriteQueue, WriteState};
use crate::error::Error;
use crate::event::EventLog;
use crate::transcript::{Direction, Transcript};
use crate::wire::LineReader;

async fn connect_retrying<T, F, Fut>(
    addr: &str,
    timeout: Duration,
    mut connect: F,
) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::io::Result<T>>,
{
    let start = Instant::now();
    let deadline = start + timeout;
    loop {
        let err = match tokio::time::timeout_at(deadline, connect()).await {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(e)) => e,
            Err(_) => std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"),
        };
        let retry = matches!(
            err.kind(),
            std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
        );
        if !retry || Instant::now() + Duration::from_millis(10) >= deadline {
            return Err(Error::Connect {
                addr: addr.to_owned(),
                waited: start.elapsed(),
                source: err,
            });
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

impl QmpClient {
    /// Connects to QEMU's QMP unix socket (retrying while it does not yet
    /// exist), reads the greeting and negotiates capabilities.
    pub async fn connect_unix(path: impl AsRef<Path>, config: QmpConfig) -> Result<Self, Error> {
        let path = path.as_ref();
        let addr = format!("unix:{}", path.display());
        let deadline = Instant::now() + config.connect_timeout;
        let stream = connect_retrying(&addr, config.connect_timeout, || {
            tokio::net::UnixStream::connect(path)
        })
        .await?;
        // A second descriptor of the connection: commands that carry file descriptors are
        // sent on it with `sendmsg` (see `QmpClient::execute_with_fds`).
        let fd_socket = {
            use std::os::fd::AsFd;
            stream
                .as_fd()
                .try_clone_to_owned()
                .map_err(|source| Error::Connect {
                    addr: addr.clone(),
                    waited: config.connect_timeout,
                    source,
                })?
        };
        let (r, w) = stream.into_split();
        Self::handshake(addr, r, w, config, deadline, Some(fd_socket)).await
    }

    /// Connects to QEMU's QMP TCP socket (`host:port`).
    pub async fn connect_tcp(addr: &str, config: QmpConfig) -> Result<Self, Error> {
        let label = format!("tcp:{addr}");
        let deadline = Instant::now() + config.connect_timeout;
        let stream = connect_retrying(&label, config.connect_timeout, || {
            tokio::net::TcpStream::connect(addr)
        })
        .await?;
        // Latency matters more than packet count on a control channel.
        let _ = stream.set_nodelay(true);
        let (r, w) = stream.into_split();
        Self::handshake(label, r, w, config, deadline, None).await
    }

    /// Runs the QMP handshake over an already connected stream (any
    /// transport: a socketpair, a pipe pair, a test double).
    pub async fn from_stream<R, W>(
        addr: impl Into<String>,
        reader: R,
        writer: W,
        config: QmpConfig,
    ) -> Result<Self, Error>
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let deadline = Instant::now() + config.connect_timeout;
        Self::handshake(addr.into(), reader, writer, config, deadline, None).await
    }

    async fn handshake<R, W>(
        addr: String,
        reader: R,
        writer: W,
        config: QmpConfig,
        deadline: Instant,
        fd_socket: Option<std::os::fd::OwnedFd>,
    ) -> Result<Self, Error>
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let transcript = config
            .transcript
            .as_deref()
            .map(Transcript::create)
            .transpose()?;
        if let Some(t) = &transcript {
            t.text(Direction::Meta, format!("connected to {addr}"));
        }
        let handshake_err = |detail: String| Error::Handshake {
            addr: addr.clone(),
            detail,
        };
        let partial = Arc::new(AtomicUsize::new(0));
        let mut lines = LineReader::new(reader, config.max_line_bytes, partial.clone());
        let line = match tokio::time::timeout_at(deadline, lines.next_line()).await {
            Ok(Ok(line)) => line,
            Ok(Err(cause)) => {
                return Err(handshake_err(format!(
                    "reading the greeting: {}",
                    chain(&cause)
                )))
            }
            Err(_) => {
                return Err(handshake_err(format!(
                    "no greeting within {:?}",
                    config.connect_timeout
                )))
            }
        };
        if let Some(t) = &transcript {
            t.json(Direction::In, &line);
        }
        let greeting = Greeting::parse(&line).map_err(handshake_err)?;
        let shared = Arc::new(Shared {
            addr: addr.clone(),
            state: Mutex::new(CmdState {
                next_id: 0,
                pending: HashMap::new(),
                abandoned: HashSet::new(),
                abandoned_order: VecDeque::new(),
                ended: None,
            }),
            log: Arc::new(EventLog::new(config.event_history)),
            transcript,
            writes: WriteQueue {
                state: Mutex::new(WriteState {
                    out: Box::pin(writer),
                    queue: Vec::new(),
                }),
                notify: Notify::new(),
            },
            partial,
            default_timeout: config.command_timeout,
            fd_socket,
        });
        let tasks = vec![
            tokio::spawn(reader_task(shared.clone(), lines)),
            tokio::spawn(writer_task(shared.clone())),
        ];
        let oob = config.negotiate_oob && greeting.capabilities.iter().any(|c| c == "oob");
        let client = Self {
            inner: Arc::new(Inner {
                shared,
                greeting,
                oob,
                tasks: Mutex::new(tasks),
            }),
        };
        let args = if oob {
            serde_json::json!({"enable": ["oob"]})
        } else {
            serde_json::json!({})
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        client
            .execute_timeout("qmp_capabilities", args, remaining)
            .await?;
        Ok(client)
    }
}
