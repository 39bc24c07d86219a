//! Fault injection for the guest-agent client: a fake agent (a tokio `UnixListener` in the
//! test, the only place a fake is allowed) that misbehaves in each way a real one can — stale
//! output before the sync, garbage, a hang, death mid-reply, a late reply to a command whose
//! caller gave up — and behaves in the ways the client must handle: errors, commands without a
//! reply on success, `guest-exec` polling, chunked file transfer. Each case must end in a
//! clear error or the right value promptly: never a hang past the timeout, never a stale reply
//! taken for a fresh one.

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use monitor::{Disconnect, Error, NoReply, QgaClient, QgaConfig};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixListener;

const SHORT: Duration = Duration::from_millis(300);

/// One command as the fake agent received it.
struct Received {
    /// Whether a 0xFF byte came before it (the client's parser flush).
    flushed: bool,
    cmd: Value,
}

impl Received {
    fn name(&self) -> &str {
        self.cmd["execute"].as_str().unwrap_or("")
    }
}

/// The fake agent's side of the connection.
struct Agent {
    r: BufReader<OwnedReadHalf>,
    w: OwnedWriteHalf,
}

impl Agent {
    async fn send(&mut self, raw: &[u8]) {
        self.w.write_all(raw).await.expect("agent write");
    }

    async fn reply(&mut self, v: Value) {
        self.send(format!("{v}\n").as_bytes()).await;
    }

    /// The next command; `None` when the client closed.
    async fn recv(&mut self) -> Option<Received> {
        let mut line = Vec::new();
        let n = self
            .r
            .read_until(b'\n', &mut line)
            .await
            .expect("agent read");
        if n == 0 {
            return None;
        }
        let start = line.iter().position(|&b| b != 0xFF).unwrap_or(line.len());
        let cmd = serde_json::from_slice(&line[start..]).expect("the client sent JSON");
        Some(Received {
            flushed: start > 0,
            cmd,
        })
    }

    async fn expect(&mut self, name: &str) -> Received {
        let got = self.recv().await.expect("a command, not the end");
        assert_eq!(got.name(), name, "{}", got.cmd);
        got
    }

    /// Reads a `guest-sync-delimited` (preceded by 0xFF) and answers it as qemu-ga does.
    async fn answer_sync(&mut self) {
        let got = self.expect("guest-sync-delimited").await;
        assert!(got.flushed, "the sync is preceded by 0xFF");
        let id = got.cmd["arguments"]["id"].clone();
        assert!(id.is_i64(), "{}", got.cmd);
        let mut out = vec![0xFF];
        out.extend_from_slice(format!("{}\n", json!({ "return": id })).as_bytes());
        self.send(&out).await;
    }

    /// Reads command `name` and answers `ret`.
    async fn answer(&mut self, name: &str, ret: Value) -> Received {
        let got = self.expect(name).await;
        self.reply(json!({ "return": ret })).await;
        got
    }
}

/// A temp dir with a listening socket; `script` plays the agent once the client connects.
struct Fake {
    dir: tempfile::TempDir,
    path: PathBuf,
    server: tokio::task::JoinHandle<()>,
}

impl Fake {
    fn start<F, Fut>(script: F) -> Self
    where
        F: FnOnce(Agent) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send,
    {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("qga.sock");
        let listener = UnixListener::bind(&path).expect("bind");
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.expect("accept");
            let (r, w) = stream.into_split();
            script(Agent {
                r: BufReader::new(r),
                w,
            })
            .await;
        });
        Self { dir, path, server }
    }

    fn config(&self) -> QgaConfig {
        QgaConfig::default()
            .command_timeout(Duration::from_secs(5))
            .sync_timeout(Duration::from_secs(5))
            .transcript(self.dir.path().join("qga.jsonl"))
    }

    async fn connect(&self) -> QgaClient {
        QgaClient::connect_unix(&self.path, self.config())
            .await
            .unwrap_or_else(|e| panic!("connect: {e}"))
    }

    /// Waits for the script to finish (its assertions are part of the test).
    async fn done(self) {
        tokio::time::timeout(Duration::from_secs(5), self.server)
            .await
            .expect("the fake agent's script finished")
            .expect("the fake agent's script passed");
    }
}

#[tokio::test]
async fn connect_discards_stale_output_up_to_its_own_sync_reply() {
    let fake = Fake::start(|mut a| async move {
        // What a previous client left: replies, garbage, an older sync's sentinel and reply.
        a.send(b"{\"return\": {}}\nnot json at all\n\xff{\"return\": 12345}\n{\"ret")
            .await;
        a.answer_sync().await;
        let ping = a.answer("guest-ping", json!({})).await;
        assert!(!ping.flushed, "in step: no resync before the ping");
    });
    let qga = fake.connect().await;
    qga.ping().await.expect("ping");
    fake.done().await;
}

#[tokio::test]
async fn a_hung_agent_is_a_timeout_naming_the_command() {
    // Connected, never answers: not even the sync.
    let fake = Fake::start(|mut a| async move {
        let _ = a.recv().await;
        tokio::time::sleep(Duration::from_secs(2)).await;
    });
    let t0 = Instant::now();
    let err = QgaClient::connect_unix(&fake.path, fake.config().sync_timeout(SHORT))
        .await
        .expect_err("no sync reply: an error");
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    match &err {
        Error::AgentTimeout {
            command, timeout, ..
        } => {
            assert_eq!(command, "guest-sync-delimited (on connect)");
            assert_eq!(*timeout, SHORT);
        }
        other => panic!("expected AgentTimeout, got {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("guest-sync-delimited") && text.contains("300ms"),
        "{text}"
    );

    // Synced, then hangs on a command.
    let fake = Fake::start(|mut a| async move {
        a.answer_sync().await;
        a.expect("guest-info").await;
        tokio::time::sleep(Duration::from_secs(2)).await;
    });
    let qga = fake.connect().await;
    let t0 = Instant::now();
    let err = qga
        .execute_timeout("guest-info", Value::Null, SHORT)
        .await
        .expect_err("a hung command fails");
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    assert!(
        matches!(&err, Error::AgentTimeout { command, timeout, .. } if command == "guest-info" && *timeout == SHORT),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("not running in the guest"),
        "{err}"
    );
}

#[tokio::test]
async fn a_late_reply_to_a_timed_out_command_is_never_taken_for_the_next_one() {
    let fake = Fake::start(|mut a| async move {
        a.answer_sync().await;
        a.expect("guest-get-time").await;
        // The client gives up; the reply arrives afterwards…
        tokio::time::sleep(Duration::from_millis(500)).await;
        a.reply(json!({"return": 111})).await;
        // …and the next command resynchronises before it is sent.
        a.answer_sync().await;
        let again = a.answer("guest-get-time", json!(222)).await;
        assert!(!again.flushed);
    });
    let qga = fake.connect().await;
    let err = qga
        .execute_timeout("guest-get-time", Value::Null, SHORT)
        .await
        .expect_err("timed out");
    assert!(matches!(err, Error::AgentTimeout { .. }), "{err:?}");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let t = qga.get_time().await.expect("get-time after the resync");
    assert_eq!(t, 222, "the late reply (111) was discarded");
    fake.done().await;
}

#[tokio::test]
async fn a_partial_late_reply_is_discarded_too() {
    let fake = Fake::start(|mut a| async move {
        a.answer_sync().await;
        a.expect("guest-info").await;
        a.send(b"{\"return\": {\"version\": \"8.").await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        a.send(b"0\", \"supported_commands\": []}}\n").await;
        a.answer_sync().await;
        a.answer("guest-ping", json!({})).await;
    });
    let qga = fake.connect().await;
    let err = qga
        .execute_timeout("guest-info", Value::Null, SHORT)
        .await
        .expect_err("timed out");
    assert!(
        matches!(
            err,
            Error::AgentTimeout {
                partial_bytes: 26,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("26 bytes of an unterminated line"),
        "{err}"
    );
    qga.ping().await.expect("ping after the resync");
    fake.done().await;
}

#[tokio::test]
async fn garbage_fails_the_command_and_the_next_one_resyncs() {
    let fake = Fake::start(|mut a| async move {
        a.answer_sync().await;
        a.expect("guest-ping").await;
        a.send(b"\x1b[0mthis is not JSON\n").await;
        a.answer_sync().await;
        a.answer("guest-ping", json!({})).await;
        a.expect("guest-ping").await;
        a.reply(json!({"event": "NOT_A_REPLY"})).await;
        a.answer_sync().await;
        a.answer("guest-ping", json!({})).await;
    });
    let qga = fake.connect().await;
    let err = qga.ping().await.expect_err("garbage is an error");
    assert!(
        matches!(&err, Error::AgentProtocol { command, detail } if command == "guest-ping" && detail.contains("not JSON")),
        "{err:?}"
    );
    qga.ping()
        .await
        .expect("the next command resyncs and works");
    let err = qga.ping().await.expect_err("a non-reply is an error");
    assert!(
        matches!(&err, Error::AgentProtocol { detail, .. } if detail.contains("neither")),
        "{err:?}"
    );
    qga.ping().await.expect("and resyncs again");
    fake.done().await;
}

#[tokio::test]
async fn an_agent_dying_mid_reply_is_a_lost_connection_at_once() {
    let fake = Fake::start(|mut a| async move {
        a.answer_sync().await;
        a.expect("guest-info").await;
        a.send(b"{\"return\": {\"vers").await;
        // Dropping the agent closes the socket, as QEMU exiting does.
    });
    let qga = fake.connect().await;
    let t0 = Instant::now();
    let err = qga.info().await.expect_err("death is an error");
    assert!(t0.elapsed() < Duration::from_secs(1), "not at the timeout");
    match &err {
        Error::AgentGone { command, cause } => {
            assert_eq!(command, "guest-info");
            assert!(
                matches!(**cause, Disconnect::EofInLine { bytes: 17 }),
                "{cause:?}"
            );
        }
        other => panic!("expected AgentGone, got {other:?}"),
    }
    assert!(qga.is_closed());
    let err = qga.ping().await.expect_err("later commands fail at once");
    assert!(
        matches!(&err, Error::AgentGone { command, .. } if command == "guest-ping"),
        "{err:?}"
    );
    fake.done().await;
}

#[tokio::test]
async fn a_dead_socket_before_the_command_is_a_lost_connection() {
    let fake = Fake::start(|mut a| async move {
        a.answer_sync().await;
    });
    let qga = fake.connect().await;
    fake.done().await;
    let err = qga.ping().await.expect_err("no agent");
    assert!(matches!(err, Error::AgentGone { .. }), "{err:?}");

    let dir = tempfile::tempdir().expect("tempdir");
    let err = QgaClient::connect_unix(
        dir.path().join("missing.sock"),
        QgaConfig::default().connect_timeout(SHORT),
    )
    .await
    .expect_err("no socket");
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
}

#[tokio::test]
async fn agent_errors_are_typed_and_keep_the_connection_in_step() {
    let fake = Fake::start(|mut a| async move {
        a.answer_sync().await;
        a.expect("guest-file-open").await;
        a.reply(json!({"error": {"class": "GenericError", "desc": "failed to open file '/nope' (mode: 'r'): No such file or directory"}}))
            .await;
        let next = a.answer("guest-ping", json!({})).await;
        assert!(!next.flushed, "an error reply is a whole reply: no resync");
    });
    let qga = fake.connect().await;
    let err = qga.file_read_all("/nope").await.expect_err("an error");
    assert!(
        matches!(&err, Error::Agent { command, desc, .. } if command == "guest-file-open" && desc.contains("No such file")),
        "{err:?}"
    );
    assert_eq!(err.qmp_class().map(|c| c.as_str()), Some("GenericError"));
    qga.ping().await.expect("ping");
    fake.done().await;
}

#[tokio::test]
async fn shutdown_has_no_reply_and_the_next_command_resyncs() {
    let fake = Fake::start(|mut a| async move {
        a.answer_sync().await;
        let got = a.expect("guest-shutdown").await;
        assert_eq!(got.cmd["arguments"], json!({"mode": "reboot"}));
        // Silence on success; then a late error would be stale: the client resyncs.
        tokio::time::sleep(Duration::from_millis(500)).await;
        a.reply(json!({"error": {"class": "GenericError", "desc": "late"}}))
            .await;
        a.answer_sync().await;
        a.answer("guest-ping", json!({})).await;
    });
    let mut cfg = fake.config();
    cfg.no_reply_grace = Duration::from_millis(50);
    let qga = QgaClient::connect_unix(&fake.path, cfg)
        .await
        .expect("connect");
    let r = qga
        .shutdown(qapi::qga::GuestShutdownMode::Reboot)
        .await
        .expect("accepted");
    assert_eq!(r, NoReply::Silent);
    qga.ping().await.expect("ping after a resync");
    fake.done().await;

    // A refused shutdown answers at once.
    let fake = Fake::start(|mut a| async move {
        a.answer_sync().await;
        a.expect("guest-shutdown").await;
        a.reply(json!({"error": {"class": "GenericError", "desc": "child process has failed to shutdown"}}))
            .await;
        a.expect("guest-shutdown").await;
    });
    let qga = fake.connect().await;
    let err = qga
        .shutdown(qapi::qga::GuestShutdownMode::Powerdown)
        .await
        .expect_err("refused");
    assert!(
        matches!(&err, Error::Agent { command, .. } if command == "guest-shutdown"),
        "{err:?}"
    );
    let r = qga
        .execute("guest-shutdown", Value::Null)
        .await
        .expect("execute knows it has no reply");
    assert_eq!(r, json!({}));
    fake.done().await;

    // A shutdown that powers the guest off: QEMU exits and the socket closes.
    let fake = Fake::start(|mut a| async move {
        a.answer_sync().await;
        a.expect("guest-shutdown").await;
    });
    let qga = fake.connect().await;
    let r = qga
        .shutdown(qapi::qga::GuestShutdownMode::Powerdown)
        .await
        .expect("accepted");
    assert_eq!(r, NoReply::Disconnected);
    assert!(qga.is_closed());
    fake.done().await;
}

#[tokio::test]
async fn exec_polls_until_exit_and_decodes_base64_output() {
    let fake = Fake::start(|mut a| async move {
        a.answer_sync().await;
        let exec = a.answer("guest-exec", json!({"pid": 4242})).await;
        assert_eq!(
            exec.cmd["arguments"],
            json!({"path": "sh", "arg": ["-c", "cat; echo err >&2; exit 3"],
                   "env": ["LANG=C"], "input-data": "aW5wdXQ=", "capture-output": true})
        );
        for _ in 0..2 {
            let st = a
                .answer("guest-exec-status", json!({"exited": false}))
                .await;
            assert_eq!(st.cmd["arguments"], json!({"pid": 4242}));
        }
        let done = serde_json::to_value(qapi::qga::GuestExecStatus {
            exited: true,
            exitcode: Some(3),
            signal: None,
            out_data: Some(b"input".to_vec()),
            err_data: Some(b"err\n".to_vec()),
            out_truncated: None,
            err_truncated: None,
        })
        .expect("encode");
        a.answer("guest-exec-status", done).await;
        // A process that never exits.
        a.answer("guest-exec", json!({"pid": 7})).await;
        while let Some(got) = a.recv().await {
            assert_eq!(got.name(), "guest-exec-status");
            a.reply(json!({"return": {"exited": false}})).await;
        }
    });
    let qga = fake.connect().await;
    let out = qga
        .exec_with(
            monitor::ExecRequest::new(["sh", "-c", "cat; echo err >&2; exit 3"])
                .env("LANG=C")
                .input(&b"input"[..]),
        )
        .await
        .expect("exec");
    assert_eq!(out.pid, 4242);
    assert_eq!(out.exit_code, Some(3));
    assert!(!out.success());
    assert_eq!(out.stdout_text(), "input");
    assert_eq!(out.stderr_text(), "err\n");

    let t0 = Instant::now();
    let err = qga
        .exec_with(monitor::ExecRequest::new(["sleep", "1000"]).timeout(SHORT))
        .await
        .expect_err("never exits");
    assert!(t0.elapsed() < Duration::from_secs(2));
    assert!(
        matches!(&err, Error::ExecTimeout { argv, pid: 7, .. } if argv == "sleep 1000"),
        "{err:?}"
    );
    qga.close().await;
    fake.done().await;
}

#[tokio::test]
async fn files_are_written_and_read_in_chunks_and_always_closed() {
    let fake = Fake::start(|mut a| async move {
        a.answer_sync().await;
        let open = a.answer("guest-file-open", json!(5)).await;
        assert_eq!(
            open.cmd["arguments"],
            json!({"path": "/tmp/f", "mode": "w"})
        );
        let mut written = Vec::new();
        loop {
            let got = a.recv().await.expect("a command");
            match got.name() {
                "guest-file-write" => {
                    let args: qapi::qga::guest_file_write =
                        serde_json::from_value(got.cmd["arguments"].clone()).expect("decode");
                    assert_eq!(args.handle, 5);
                    assert!(args.buf_b64.len() <= 4, "chunked: {:?}", args.buf_b64);
                    // Takes at most 3 bytes per write: the client writes the rest.
                    let n = args.buf_b64.len().min(3);
                    written.extend_from_slice(&args.buf_b64[..n]);
                    a.reply(json!({"return": {"count": n, "eof": false}})).await;
                }
                "guest-file-close" => {
                    a.reply(json!({"return": {}})).await;
                    break;
                }
                other => panic!("unexpected {other}"),
            }
        }
        assert_eq!(written, b"hello, agent");
        a.answer("guest-file-open", json!(6)).await;
        for (i, part) in written.chunks(4).enumerate() {
            let got = a.expect("guest-file-read").await;
            assert_eq!(got.cmd["arguments"], json!({"handle": 6, "count": 4}));
            let last = i == 2;
            let r = serde_json::to_value(qapi::qga::GuestFileRead {
                buf_b64: part.to_vec(),
                count: part.len() as i64,
                eof: last,
            })
            .expect("encode");
            a.reply(json!({ "return": r })).await;
        }
        a.answer("guest-file-close", json!({})).await;
        // A read that fails still closes the file.
        a.answer("guest-file-open", json!(7)).await;
        a.expect("guest-file-read").await;
        a.reply(json!({"error": {"class": "GenericError", "desc": "read error"}}))
            .await;
        let close = a.answer("guest-file-close", json!({})).await;
        assert_eq!(close.cmd["arguments"], json!({"handle": 7}));
    });
    let mut cfg = fake.config();
    cfg.file_chunk_bytes = 4;
    let qga = QgaClient::connect_unix(&fake.path, cfg)
        .await
        .expect("connect");
    qga.file_write_all("/tmp/f", b"hello, agent")
        .await
        .expect("write");
    assert_eq!(
        qga.file_read_all("/tmp/f").await.expect("read"),
        b"hello, agent"
    );
    let err = qga.file_read_all("/tmp/g").await.expect_err("read error");
    assert!(
        matches!(&err, Error::Agent { command, .. } if command == "guest-file-read"),
        "{err:?}"
    );
    fake.done().await;
}

#[tokio::test]
async fn the_transcript_records_commands_replies_and_resyncs() {
    let fake = Fake::start(|mut a| async move {
        a.send(b"stale\n").await;
        a.answer_sync().await;
        a.answer("guest-ping", json!({})).await;
    });
    let path = fake.dir.path().join("qga.jsonl");
    let qga = fake.connect().await;
    qga.ping().await.expect("ping");
    assert_eq!(qga.transcript_path(), Some(path.as_path()));
    qga.close().await;
    let text = std::fs::read_to_string(&path).expect("transcript");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let has = |dir: &str, pred: &dyn Fn(&Value) -> bool| {
        lines.iter().any(|l| l["dir"] == dir && pred(&l["msg"]))
    };
    assert!(has("meta", &|m| m
        .as_str()
        .is_some_and(|s| s.starts_with("connected to unix:"))));
    assert!(has("meta", &|m| m
        .as_str()
        .is_some_and(|s| s.contains("0xFF"))));
    assert!(has("meta", &|m| m
        .as_str()
        .is_some_and(|s| s.contains("discarded 6 stale bytes"))));
    assert!(has("out", &|m| m["execute"] == "guest-sync-delimited"));
    assert!(has("out", &|m| m["execute"] == "guest-ping"));
    assert!(has("in", &|m| m["return"] == json!({})));
    assert!(has("meta", &|m| m == "closed by the client"));
    fake.done().await;
}

#[tokio::test]
async fn close_fails_later_commands_and_a_cancelled_call_leaves_a_resync() {
    let fake = Fake::start(|mut a| async move {
        a.answer_sync().await;
        a.expect("guest-info").await;
        // Answered after the caller was cancelled.
        tokio::time::sleep(Duration::from_millis(300)).await;
        a.reply(json!({"return": {"version": "old", "supported_commands": []}}))
            .await;
        a.answer_sync().await;
        a.answer(
            "guest-info",
            json!({"version": "new", "supported_commands": [
                {"name": "guest-frobnicate", "enabled": true, "success-response": false}]}),
        )
        .await;
        assert!(a.recv().await.is_none(), "the client closed");
    });
    let qga = fake.connect().await;
    let cancelled = tokio::time::timeout(Duration::from_millis(100), qga.info()).await;
    assert!(cancelled.is_err(), "the outer timeout cancelled the call");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let info = qga.info().await.expect("info after the resync");
    assert_eq!(info.version, "new");
    assert!(
        qga.is_no_reply("guest-frobnicate"),
        "learned from guest-info"
    );
    qga.close().await;
    let err = qga.ping().await.expect_err("closed");
    assert!(matches!(err, Error::Closed { .. }), "{err:?}");
    fake.done().await;
}
