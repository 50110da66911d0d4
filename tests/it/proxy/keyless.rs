//! Clients without a valid key must not make the daemon read, or hold, what they upload
//! (issue 15 item 2): the model routes check the key from the request head and answer 401 while
//! the client is still sending its body; the dashboard login, whose key is in the body, reads
//! no more than a login needs. Proven over raw sockets (the client sends part of a large body,
//! then waits for an answer that an unfixed daemon only gives after the whole body), and with the
//! real binary by its peak resident memory read from `/proc`. A body over the limit is refused
//! with a 413 that names the limit — after the key, never before (item 12).

use crate::support::{POOL_KEY, start_env, start_env_with};
use codex_rotor::sim::SimOptions;
use serde_json::Value;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a test waits for an answer the daemon owes before the body is complete; only a
/// guard against a daemon that waits for the rest of the body (it would wait forever).
const ANSWER_GUARD: Duration = Duration::from_secs(20);

/// One answer read off a raw connection.
#[derive(Debug)]
pub(crate) struct RawAnswer {
    /// HTTP status.
    pub status: u16,
    /// The body (by Content-Length, or what arrived before the connection closed).
    pub body: String,
}

/// Writes `head` (ending in the blank line) and the first `sent` bytes of a body, then waits for
/// the answer without sending more. `None` when no answer came within [`ANSWER_GUARD`].
pub(crate) async fn partial_upload(addr: SocketAddr, head: &str, sent: usize) -> Option<RawAnswer> {
    let mut conn = TcpStream::connect(addr).await.expect("connect");
    conn.write_all(head.as_bytes()).await.expect("head");
    let chunk = vec![b'x'; 64 * 1024];
    let mut left = sent;
    while left > 0 {
        let n = left.min(chunk.len());
        if conn.write_all(&chunk[..n]).await.is_err() {
            break;
        }
        left -= n;
    }
    tokio::time::timeout(ANSWER_GUARD, read_answer(&mut conn))
        .await
        .ok()
}

/// Reads one HTTP/1.1 answer.
pub(crate) async fn read_answer(conn: &mut TcpStream) -> RawAnswer {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    let split = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = conn.read(&mut tmp).await.expect("read answer");
        assert!(n > 0, "connection closed before a whole head: {buf:?}");
        buf.extend_from_slice(&tmp[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..split]).to_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let length: Option<usize> = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok());
    let mut body = buf[split..].to_vec();
    while length.is_none_or(|l| body.len() < l) {
        match conn.read(&mut tmp).await {
            Ok(0) | Err(_) => break,
            Ok(n) => body.extend_from_slice(&tmp[..n]),
        }
    }
    RawAnswer {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// The head of a POST announcing `length` body bytes, with extra header lines.
pub(crate) fn post_head(path: &str, length: usize, extra: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nhost: rotor\r\ncontent-type: application/json\r\n\
         content-length: {length}\r\n{extra}\r\n"
    )
}

#[tokio::test]
async fn keyless_clients_get_401_while_still_sending_their_bodies() {
    let env = start_env(1).await;
    // 31 MiB announced (under the 32 MiB default limit), 256 KiB sent, the rest never.
    let announced = 31 * 1024 * 1024;
    let routes = [
        ("/v1/responses", ""),
        ("/v1/chat/completions", ""),
        ("/v1/messages", ""),
        ("/v1/messages/count_tokens", ""),
        ("/v1/responses", "authorization: Bearer wrong-key\r\n"),
        ("/v1/messages", "x-api-key: wrong-key\r\n"),
    ];
    let mut clients = Vec::new();
    for i in 0..40 {
        let (path, auth) = routes[i % routes.len()];
        let head = post_head(path, announced, auth);
        let addr = env.addr;
        clients.push(tokio::spawn(async move {
            (path, partial_upload(addr, &head, 256 * 1024).await)
        }));
    }
    for c in clients {
        let (path, answer) = c.await.expect("client task");
        let answer = answer.unwrap_or_else(|| {
            panic!("{path}: no answer while the body was being sent; the daemon reads bodies before checking the key")
        });
        assert_eq!(answer.status, 401, "{path}: {answer:?}");
        let v: serde_json::Value = serde_json::from_str(&answer.body).expect("JSON error");
        if path.starts_with("/v1/messages") {
            assert_eq!(v["error"]["type"], "authentication_error", "{path}: {v}");
        } else {
            assert_eq!(v["error"]["code"], "invalid_api_key", "{path}: {v}");
        }
    }
    assert_eq!(env.upstream_requests(), 0);
    // The daemon still serves a client with the key.
    let ok = env.responses(&crate::support::responses_body(false)).await;
    assert_eq!(ok.status(), 200);
    env.shutdown().await;
}

/// Many simple clients (Python's `requests`, for one) write the whole body before they read a
/// byte. A refused body must therefore be drained, not dropped: a connection closed with
/// unread bytes is reset by the kernel, and the client gets "connection reset" instead of its
/// 401 — and retries it as a network error.
#[tokio::test]
async fn a_client_that_writes_its_whole_body_first_still_reads_its_401() {
    let env = start_env(1).await;
    for path in ["/v1/responses", "/v1/messages"] {
        let length = 4 * 1024 * 1024;
        let mut conn = TcpStream::connect(env.addr).await.expect("connect");
        conn.write_all(post_head(path, length, "").as_bytes())
            .await
            .expect("head");
        let body = vec![b'x'; length];
        let written = tokio::time::timeout(ANSWER_GUARD, conn.write_all(&body)).await;
        assert!(
            matches!(written, Ok(Ok(()))),
            "{path}: the upload was cut off ({written:?}); the client never reads its answer"
        );
        let answer = tokio::time::timeout(ANSWER_GUARD, read_answer(&mut conn))
            .await
            .expect("an answer");
        assert_eq!(answer.status, 401, "{path}: {answer:?}");
    }
    env.shutdown().await;
}

#[tokio::test]
async fn the_dashboard_login_reads_no_more_than_a_login_needs() {
    let env = start_env(1).await;
    // A huge announced body is refused from its head.
    let head = post_head("/login", 31 * 1024 * 1024, "");
    let answer = partial_upload(env.addr, &head, 256 * 1024)
        .await
        .expect("the login answers before the body is complete");
    assert_eq!(answer.status, 413, "{answer:?}");
    assert!(
        answer.body.contains("bytes"),
        "the limit is named: {answer:?}"
    );
    // A chunked body of unknown length is cut off once it outgrows a login.
    let head = "POST /login HTTP/1.1\r\nhost: rotor\r\ncontent-type: application/json\r\n\
                transfer-encoding: chunked\r\n\r\n";
    let mut conn = TcpStream::connect(env.addr).await.expect("connect");
    conn.write_all(head.as_bytes()).await.expect("head");
    let chunk = format!("10000\r\n{}\r\n", "x".repeat(0x10000));
    for _ in 0..4 {
        if conn.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let answer = tokio::time::timeout(ANSWER_GUARD, read_answer(&mut conn))
        .await
        .expect("the login answers without waiting for the end of the chunked body");
    assert_eq!(answer.status, 413, "{answer:?}");
    env.shutdown().await;
}

/// `codex-rotor serve` on `port` with a client key and an admin key, upstream at a closed port.
fn spawn_daemon(dir: &std::path::Path, port: u16) -> Child {
    let cfg = dir.join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "data_dir = {data:?}\n[server]\nlisten = \"127.0.0.1:{port}\"\n\
             [[keys.keys]]\nname = \"k\"\nkey_env = \"ROTOR_KEYLESS_KEY\"\n\
             [admin]\nkey_env = \"ROTOR_KEYLESS_ADMIN\"\n\
             [upstream]\nbase_url = \"http://127.0.0.1:1/backend-api\"\n\
             token_url = \"http://127.0.0.1:1/oauth/token\"\n",
            data = dir.join("data").display().to_string()
        ),
    )
    .expect("config");
    Command::new(env!("CARGO_BIN_EXE_codex-rotor"))
        .args(["serve", "--config"])
        .arg(&cfg)
        .env("ROTOR_KEYLESS_KEY", POOL_KEY)
        .env("ROTOR_KEYLESS_ADMIN", "keyless-admin-key-0123456789")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn codex-rotor serve")
}

/// Kills the daemon however the test ends.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Peak resident set (`VmHWM`) of a process, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc status")
}

/// Uploads a whole `length`-byte body without a key as fast as the daemon takes it, while
/// reading the answer; returns its status (0 when the connection was reset before an answer
/// could be read — what a refused body that is dropped unread, not drained, leads to).
async fn keyless_upload(addr: SocketAddr, length: usize) -> u16 {
    let mut conn = TcpStream::connect(addr).await.expect("connect");
    let (mut rd, mut wr) = conn.split();
    let head = post_head("/v1/responses", length, "");
    let writer = async {
        let _ = wr.write_all(head.as_bytes()).await;
        let chunk = vec![b'x'; 256 * 1024];
        let mut left = length;
        while left > 0 {
            let n = left.min(chunk.len());
            if wr.write_all(&chunk[..n]).await.is_err() {
                break; // the reader tells what the client got
            }
            left -= n;
        }
        std::future::pending::<()>().await;
    };
    let reader = async {
        let mut buf = Vec::new();
        let mut tmp = [0u8; 1024];
        while buf.len() < 12 {
            match rd.read(&mut tmp).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
            }
        }
        String::from_utf8_lossy(&buf)
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    };
    tokio::select! {
        status = reader => status,
        () = writer => unreachable!("the writer never ends on its own"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_binary_holds_no_keyless_upload_in_memory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let child = KillOnDrop(spawn_daemon(dir.path(), port));
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut up = false;
    for _ in 0..200 {
        if TcpStream::connect(addr).await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "the daemon listens");
    // Warm up the connection and request paths once, then take the baseline peak.
    assert_eq!(keyless_upload(addr, 1024).await, 401);
    let before = peak_rss_kib(child.0.id());
    // 40 keyless clients, 8 MiB each, all at once: 320 MiB if the daemon buffered them.
    let clients: Vec<_> = (0..40)
        .map(|_| tokio::spawn(keyless_upload(addr, 8 * 1024 * 1024)))
        .collect();
    for c in clients {
        assert_eq!(c.await.expect("client"), 401);
    }
    let after = peak_rss_kib(child.0.id());
    drop(child);
    let grown_mib = after.saturating_sub(before) / 1024;
    println!("peak RSS {before} KiB before, {after} KiB after 40 keyless 8 MiB uploads");
    assert!(
        grown_mib < 48,
        "40 keyless uploads of 8 MiB raised the daemon's peak RSS by {grown_mib} MiB \
         ({before} KiB -> {after} KiB): it holds what unauthenticated clients send"
    );
}

#[tokio::test]
async fn an_oversized_body_gets_401_without_a_key_and_a_413_naming_the_limit_with_one() {
    let env = start_env_with(SimOptions::default(), 1, |cfg, _| {
        cfg.server.max_body_bytes = 4096;
    })
    .await;
    let big = "x".repeat(64 * 1024);
    for (path, anthropic) in [
        ("/v1/responses", false),
        ("/v1/chat/completions", false),
        ("/v1/messages", true),
        ("/v1/messages/count_tokens", true),
    ] {
        let keyless = env
            .http
            .post(env.url(path))
            .body(big.clone())
            .send()
            .await
            .expect("answer");
        assert_eq!(
            keyless.status(),
            401,
            "{path}: the key is checked before the body"
        );
        let with_key = env
            .http
            .post(env.url(path))
            .header("x-api-key", POOL_KEY)
            .body(big.clone())
            .send()
            .await
            .expect("answer");
        assert_eq!(with_key.status(), 413, "{path}");
        let v: Value = with_key.json().await.expect("JSON 413 body");
        let message = if anthropic {
            assert_eq!(v["error"]["type"], "request_too_large", "{path}: {v}");
            v["error"]["message"].as_str()
        } else {
            assert_eq!(v["error"]["code"], "payload_too_large", "{path}: {v}");
            v["error"]["message"].as_str()
        };
        assert!(
            message.is_some_and(|m| m.contains("4096 bytes")),
            "{path}: the 413 names the limit: {v}"
        );
    }
    // Announced too large: refused from the head, while the client is still sending.
    let head = post_head(
        "/v1/responses",
        1024 * 1024,
        &format!("authorization: Bearer {POOL_KEY}\r\n"),
    );
    let answer = partial_upload(env.addr, &head, 64 * 1024)
        .await
        .expect("a 413 before the announced body is complete");
    assert_eq!(answer.status, 413, "{answer:?}");
    assert_eq!(env.upstream_requests(), 0);
    env.shutdown().await;
}
