//! Fault injection: a fake monitor peer (a tokio `UnixListener` in the test)
//! that misbehaves in each way the client must survive: garbage, a partial
//! line then silence, an over-long line, a reply with an unknown id, a closed
//! socket, and the client closing with commands pending. Each must give a
//! clear error promptly — never a hang past the timeout, never a panic.

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use monitor::{
    Disconnect, Error, EventCursor, HmpClient, HmpConfig, HumanMonitor, QmpClient, QmpConfig,
};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{UnixListener, UnixStream};

const GREETING: &str = r#"{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": "fake"}, "capabilities": ["oob"]}}"#;
const SHORT: Duration = Duration::from_millis(300);

/// The fake peer's side of one connection.
struct Peer {
    lines: BufReader<OwnedReadHalf>,
    w: OwnedWriteHalf,
}

impl Peer {
    async fn send(&mut self, raw: &str) {
        self.w.write_all(raw.as_bytes()).await.expect("peer write");
    }

    /// Reads the next command and returns its parsed JSON.
    async fn recv(&mut self) -> Value {
        let mut line = String::new();
        self.lines.read_line(&mut line).await.expect("peer read");
        serde_json::from_str(&line).expect("client sent JSON")
    }

    /// Reads a command and answers it with an empty return.
    async fn answer(&mut self) -> Value {
        let cmd = self.recv().await;
        let reply = json!({"return": {}, "id": cmd["id"]});
        self.send(&format!("{reply}\r\n")).await;
        cmd
    }
}

/// A temp dir with a listening socket; `script` runs as the peer after the
/// client connects.
struct Fake {
    _dir: tempfile::TempDir,
    path: PathBuf,
    server: tokio::task::JoinHandle<()>,
}

impl Fake {
    fn start<F, Fut>(script: F) -> Self
    where
        F: FnOnce(Peer) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send,
    {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("fake.sock");
        let listener = UnixListener::bind(&path).expect("bind");
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.expect("accept");
            let (r, w) = stream.into_split();
            script(Peer {
                lines: BufReader::new(r),
                w,
            })
            .await;
        });
        Self {
            _dir: dir,
            path,
            server,
        }
    }

    /// A QMP peer that greets and negotiates, then runs `script`.
    fn qmp<F, Fut>(script: F) -> Self
    where
        F: FnOnce(Peer) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send,
    {
        Self::start(move |mut peer| async move {
            peer.send(&format!("{GREETING}\r\n")).await;
            let caps = peer.answer().await;
            assert_eq!(caps["execute"], "qmp_capabilities");
            assert_eq!(caps["arguments"], json!({"enable": ["oob"]}));
            script(peer).await;
        })
    }

    async fn connect(&self, config: QmpConfig) -> QmpClient {
        QmpClient::connect_unix(&self.path, config)
            .await
            .expect("connect to fake")
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn short() -> QmpConfig {
    QmpConfig::default()
        .command_timeout(SHORT)
        .connect_timeout(SHORT)
}

/// Runs `fut` and fails the test if it takes longer than `limit`.
async fn within<T>(limit: Duration, fut: impl Future<Output = T>) -> (T, Duration) {
    let start = Instant::now();
    let out = tokio::time::timeout(limit, fut).await.expect("client hung");
    (out, start.elapsed())
}

fn cause_of(err: &Error) -> &Disconnect {
    match err {
        Error::ConnectionLost { cause, .. } => cause,
        other => panic!("expected ConnectionLost, got {other:?}"),
    }
}

#[tokio::test]
async fn garbage_line_fails_the_pending_command_at_once() {
    let fake = Fake::qmp(|mut p| async move {
        p.recv().await;
        p.send("this is not JSON\n").await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    });
    let qmp = fake.connect(short()).await;
    let (res, took) = within(SHORT, qmp.execute("query-status", Value::Null)).await;
    let err = res.expect_err("garbage");
    assert_eq!(err.command(), Some("query-status"));
    assert!(
        matches!(cause_of(&err), Disconnect::Garbage { excerpt } if excerpt == "this is not JSON")
    );
    assert!(took < SHORT);
    // Later commands fail at once with the same cause.
    let err = qmp
        .execute("query-status", Value::Null)
        .await
        .expect_err("broken");
    assert!(matches!(cause_of(&err), Disconnect::Garbage { .. }));
}

#[tokio::test]
async fn json_that_is_not_a_qmp_message_is_garbage_too() {
    let fake = Fake::qmp(|mut p| async move {
        p.recv().await;
        p.send("[1, 2, 3]\n").await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    });
    let qmp = fake.connect(short()).await;
    let err = qmp
        .execute("query-status", Value::Null)
        .await
        .expect_err("garbage");
    assert!(
        matches!(cause_of(&err), Disconnect::Garbage { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn partial_line_then_silence_times_out_naming_the_command() {
    let fake = Fake::qmp(|mut p| async move {
        p.recv().await;
        p.send(r#"{"return": {}, "i"#).await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    });
    let qmp = fake.connect(short()).await;
    let (res, took) = within(SHORT * 2, qmp.execute("query-status", Value::Null)).await;
    match res.expect_err("no full reply") {
        Error::Timeout {
            command,
            timeout,
            partial_bytes,
        } => {
            assert_eq!(command, "query-status");
            assert_eq!(timeout, SHORT);
            assert_eq!(partial_bytes, 17);
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
    assert!(
        took >= SHORT && took < SHORT + Duration::from_millis(200),
        "{took:?}"
    );
}

#[tokio::test]
async fn per_command_timeout_overrides_the_default() {
    let fake = Fake::qmp(|mut p| async move {
        p.recv().await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    });
    let qmp = fake.connect(QmpConfig::default()).await;
    let (res, took) = within(
        Duration::from_secs(1),
        qmp.execute_timeout("migrate", json!({}), Duration::from_millis(50)),
    )
    .await;
    let err = res.expect_err("timeout");
    assert!(
        err.to_string().contains("`migrate`") && err.to_string().contains("50ms"),
        "{err}"
    );
    assert!(took < Duration::from_millis(500));
}

#[tokio::test]
async fn over_long_line_is_refused() {
    let fake = Fake::qmp(|mut p| async move {
        p.recv().await;
        // 1 MiB without a newline, against a 64 KiB limit.
        let blob = "x".repeat(1 << 20);
        let _ = p.w.write_all(blob.as_bytes()).await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    });
    let qmp = fake.connect(short().max_line_bytes(64 << 10)).await;
    let (res, _) = within(SHORT, qmp.execute("query-status", Value::Null)).await;
    let err = res.expect_err("too long");
    assert!(matches!(cause_of(&err), Disconnect::LineTooLong { limit } if *limit == 64 << 10));
}

#[tokio::test]
async fn reply_with_an_unknown_id_is_a_protocol_error() {
    let fake = Fake::qmp(|mut p| async move {
        p.recv().await;
        p.send("{\"return\": {}, \"id\": 999999}\n").await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    });
    let qmp = fake.connect(short()).await;
    let (res, took) = within(SHORT, qmp.execute("query-status", Value::Null)).await;
    let err = res.expect_err("unknown id");
    assert!(matches!(cause_of(&err), Disconnect::UnknownReplyId { id } if id == "999999"));
    assert!(took < SHORT);
}

#[tokio::test]
async fn late_reply_to_a_timed_out_command_is_not_an_error() {
    let fake = Fake::qmp(|mut p| async move {
        let slow = p.recv().await;
        tokio::time::sleep(Duration::from_millis(150)).await;
        p.send(&format!("{}\n", json!({"return": {}, "id": slow["id"]})))
            .await;
        p.answer().await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    });
    let qmp = fake.connect(short()).await;
    let err = qmp
        .execute_timeout("slow", json!({}), Duration::from_millis(50))
        .await
        .expect_err("times out");
    assert!(matches!(err, Error::Timeout { .. }));
    tokio::time::sleep(Duration::from_millis(200)).await;
    qmp.execute("query-status", Value::Null)
        .await
        .expect("connection still fine");
}

#[tokio::test]
async fn peer_closing_fails_pending_commands_at_once() {
    let fake = Fake::qmp(|mut p| async move {
        p.recv().await;
        p.recv().await;
        // Dropping the peer closes the socket with two commands pending.
    });
    let qmp = fake.connect(QmpConfig::default()).await;
    let a = qmp.send("first", Value::Null).expect("sent");
    let b = qmp.send("second", Value::Null).expect("sent");
    let ((ra, rb), took) = within(Duration::from_secs(1), async {
        (a.wait().await, b.wait().await)
    })
    .await;
    for (res, name) in [(ra, "first"), (rb, "second")] {
        let err = res.expect_err("closed");
        assert_eq!(err.command(), Some(name));
        assert!(matches!(cause_of(&err), Disconnect::Eof));
    }
    assert!(took < Duration::from_millis(500));
}

#[tokio::test]
async fn peer_closing_mid_line_is_reported_as_such() {
    let fake = Fake::qmp(|mut p| async move {
        p.recv().await;
        p.send(r#"{"return"#).await;
    });
    let qmp = fake.connect(QmpConfig::default()).await;
    let err = qmp
        .execute("query-status", Value::Null)
        .await
        .expect_err("closed");
    assert!(
        matches!(cause_of(&err), Disconnect::EofInLine { bytes: 8 }),
        "{err:?}"
    );
}

#[tokio::test]
async fn closing_the_client_fails_pending_commands_promptly() {
    let fake = Fake::qmp(|mut p| async move {
        p.recv().await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    });
    let qmp = fake.connect(QmpConfig::default()).await;
    let pending = tokio::spawn(qmp.send("query-status", Value::Null).expect("sent").wait());
    let waiter = {
        let qmp = qmp.clone();
        tokio::spawn(async move { qmp.wait_event("SHUTDOWN", Duration::from_secs(30)).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (_, took) = within(Duration::from_secs(1), qmp.close()).await;
    let res = tokio::time::timeout(Duration::from_millis(200), pending)
        .await
        .expect("prompt")
        .expect("task");
    assert!(
        matches!(res, Err(Error::Closed { ref command }) if command == "query-status"),
        "{res:?}"
    );
    let res = tokio::time::timeout(Duration::from_millis(200), waiter)
        .await
        .expect("prompt")
        .expect("task");
    assert!(
        matches!(res, Err(Error::EventStreamEnded { .. })),
        "{res:?}"
    );
    assert!(took < Duration::from_millis(200));
    assert!(matches!(
        qmp.execute("x", Value::Null).await,
        Err(Error::Closed { .. })
    ));
}

#[tokio::test]
async fn dropping_a_pending_reply_abandons_it_cleanly() {
    let fake = Fake::qmp(|mut p| async move {
        p.answer().await;
        p.answer().await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    });
    let qmp = fake.connect(short()).await;
    drop(qmp.send("ignored", Value::Null).expect("sent"));
    qmp.execute("query-status", Value::Null)
        .await
        .expect("still fine");
}

#[tokio::test]
async fn unknown_events_are_kept_and_reach_every_listener() {
    let fake = Fake::qmp(|mut p| async move {
        p.send("{\"event\": \"NOT_IN_ANY_SCHEMA\", \"data\": {\"device\": \"nic1\", \"x\": 1}, \"timestamp\": {\"seconds\": 1, \"microseconds\": 2}}\n").await;
        p.send("{\"event\": \"NO_DATA_NO_TIMESTAMP\"}\n").await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    });
    let qmp = fake.connect(short()).await;
    let mut l1 = qmp.listen(EventCursor::ORIGIN);
    let mut l2 = qmp.listen(EventCursor::ORIGIN);
    for l in [&mut l1, &mut l2] {
        let a = l.next().await.expect("ok").expect("event");
        let b = l.next().await.expect("ok").expect("event");
        assert_eq!(
            (a.name.as_str(), b.name.as_str()),
            ("NOT_IN_ANY_SCHEMA", "NO_DATA_NO_TIMESTAMP")
        );
        assert!(a.typed().is_none());
        assert_eq!(b.data, json!({}));
    }
    let ev = qmp
        .wait_event(
            monitor::EventFilter::new("NOT_IN_ANY_SCHEMA").data(json!({"device": "nic1"})),
            SHORT,
        )
        .await
        .expect("matched on a subset of data");
    assert_eq!(ev.data["x"], 1);
}

#[tokio::test]
async fn bad_or_missing_greeting_is_a_handshake_error() {
    let garbage = Fake::start(|mut p| async move {
        p.send("hello\n").await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    });
    let (res, _) = within(
        Duration::from_secs(1),
        QmpClient::connect_unix(&garbage.path, short()),
    )
    .await;
    assert!(matches!(res, Err(Error::Handshake { .. })), "{res:?}");

    let silent = Fake::start(|_p| async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
    });
    let (res, took) = within(
        Duration::from_secs(1),
        QmpClient::connect_unix(&silent.path, short()),
    )
    .await;
    assert!(matches!(res, Err(Error::Handshake { .. })), "{res:?}");
    assert!(took < SHORT + Duration::from_millis(200));
}

#[tokio::test]
async fn missing_socket_is_a_connect_error_after_the_budget() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (res, took) = within(
        Duration::from_secs(1),
        QmpClient::connect_unix(dir.path().join("none.sock"), short()),
    )
    .await;
    assert!(matches!(res, Err(Error::Connect { .. })), "{res:?}");
    assert!(took >= Duration::from_millis(250));
}

// ---- the human monitor socket ----

fn hmp_short() -> HmpConfig {
    HmpConfig::default().command_timeout(SHORT)
}

/// A prompt-protocol peer: banner and prompt, then `script`.
fn fake_hmp<F, Fut>(script: F) -> Fake
where
    F: FnOnce(Peer) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    Fake::start(move |mut p| async move {
        p.send("QEMU fake monitor - type 'help' for more information\r\n(qemu) ")
            .await;
        script(p).await;
    })
}

async fn read_cmd(p: &mut Peer) -> String {
    let mut line = String::new();
    p.lines.read_line(&mut line).await.expect("read");
    line.trim_end().to_owned()
}

#[tokio::test]
async fn hmp_strips_echo_and_prompt() {
    let fake = fake_hmp(|mut p| async move {
        let cmd = read_cmd(&mut p).await;
        assert_eq!(cmd, "info status");
        p.send("i\x1b[K\x1b[Dinfo status\x1b[K\r\nVM status: paused (prelaunch)\r\n(qemu) ")
            .await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    });
    let hmp = HmpClient::connect_unix(&fake.path, hmp_short())
        .await
        .expect("connect");
    assert_eq!(
        hmp.info("status").await.expect("info"),
        "VM status: paused (prelaunch)\n"
    );
}

#[tokio::test]
async fn hmp_output_without_prompt_times_out_then_resyncs() {
    let fake = fake_hmp(|mut p| async move {
        read_cmd(&mut p).await;
        p.send("info pci\r\npartial output, no prompt").await;
        tokio::time::sleep(SHORT * 2).await;
        // The old command's prompt comes late; then the next one is answered.
        p.send("\r\n(qemu) ").await;
        read_cmd(&mut p).await;
        p.send("info status\r\nVM status: running\r\n(qemu) ").await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    });
    let hmp = HmpClient::connect_unix(&fake.path, hmp_short())
        .await
        .expect("connect");
    let (res, took) = within(SHORT * 2, hmp.info("pci")).await;
    match res.expect_err("no prompt") {
        Error::Timeout {
            command,
            partial_bytes,
            ..
        } => {
            assert_eq!(command, "info pci");
            assert!(partial_bytes > 0);
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
    assert!(took < SHORT + Duration::from_millis(200));
    let out = hmp
        .cmd_timeout("info status", Duration::from_secs(2))
        .await
        .expect("resynced");
    assert_eq!(out, "VM status: running\n");
}

#[tokio::test]
async fn hmp_peer_closing_and_over_long_output_are_clear_errors() {
    let fake = fake_hmp(|mut p| async move {
        read_cmd(&mut p).await;
        p.send("info pci\r\nsome output").await;
    });
    let hmp = HmpClient::connect_unix(&fake.path, hmp_short())
        .await
        .expect("connect");
    let err = hmp.info("pci").await.expect_err("closed");
    assert!(
        matches!(cause_of(&err), Disconnect::EofInLine { .. }),
        "{err:?}"
    );
    assert!(matches!(
        cause_of(&hmp.info("pci").await.expect_err("still closed")),
        Disconnect::EofInLine { .. }
    ));

    let fake = fake_hmp(|mut p| async move {
        read_cmd(&mut p).await;
        let _ = p.w.write_all("y".repeat(1 << 20).as_bytes()).await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    });
    let hmp = HmpClient::connect_unix(&fake.path, hmp_short().max_output_bytes(4096))
        .await
        .expect("connect");
    let (res, _) = within(SHORT, hmp.info("pci")).await;
    assert!(matches!(
        cause_of(&res.expect_err("too long")),
        Disconnect::LineTooLong { limit: 4096 }
    ));
}

#[tokio::test]
async fn hmp_garbage_banner_without_prompt_is_a_handshake_timeout() {
    let fake = Fake::start(|mut p| async move {
        p.send("\x00\x01garbage without a prompt").await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    });
    let config = HmpConfig {
        connect_timeout: SHORT,
        ..hmp_short()
    };
    let (res, _) = within(
        Duration::from_secs(1),
        HmpClient::connect_unix(&fake.path, config),
    )
    .await;
    assert!(matches!(res, Err(Error::Handshake { .. })), "{res:?}");
}

#[tokio::test]
async fn qmp_from_stream_works_over_any_transport() {
    let (ours, theirs) = UnixStream::pair().expect("socketpair");
    let peer = tokio::spawn(async move {
        let (r, w) = theirs.into_split();
        let mut p = Peer {
            lines: BufReader::new(r),
            w,
        };
        p.send(&format!("{GREETING}\n")).await;
        p.answer().await;
        p.answer().await;
    });
    let (r, w) = ours.into_split();
    let qmp = QmpClient::from_stream("socketpair", r, w, short())
        .await
        .expect("handshake");
    qmp.execute("query-status", Value::Null)
        .await
        .expect("reply");
    peer.await.expect("peer");
}

#[tokio::test]
async fn a_command_with_descriptors_to_a_peer_that_left_fails_naming_it() {
    use std::os::fd::AsFd;
    let fake = Fake::qmp(|peer| async move {
        drop(peer);
    });
    let qmp = fake.connect(short()).await;
    // Give the peer's close time to arrive.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (a, _b) = std::os::unix::net::UnixStream::pair().expect("socketpair");
    let (res, took) = within(
        Duration::from_secs(5),
        qmp.execute_with_fds("getfd", json!({"fdname": "x"}), &[a.as_fd()]),
    )
    .await;
    let err = res.expect_err("the peer is gone");
    assert_eq!(err.command(), Some("getfd"), "{err:?}");
    assert!(took < Duration::from_secs(3), "took {took:?}");
}
