//! Time bounds of one client request and one client connection (issue 15, item 8): a hung
//! upstream ends the request at `upstream.request_deadline` with a clean error (504 before any
//! byte, a terminal `response.failed` once heartbeats went out), a streaming client hears
//! heartbeats while failover waits for a first byte, and slow or idle client connections are
//! closed (`server.header_read_timeout`, `server.keep_alive_timeout`).

use crate::support::{TestEnv, event_types, responses_body, start_env_with};
use codex_rotor::config::Config;
use codex_rotor::sim::{FaultKind, FaultSpec, SimOptions};
use serde_json::Value;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Upstream never answers within the test: every attempt would wait its whole
/// `first_byte_timeout` (a minute here), so without the deadline one request takes six.
const HANG: FaultKind = FaultKind::Silence { millis: 600_000 };

/// How long a test waits for an answer that the deadline must produce much sooner.
const PATIENCE: Duration = Duration::from_secs(20);

/// Three accounts behind a hung upstream, a 1 s deadline, `tweak` for the rest.
async fn hung(tweak: impl FnOnce(&mut Config)) -> TestEnv {
    let env = start_env_with(SimOptions::default(), 3, |cfg, _| {
        cfg.upstream.first_byte_timeout = Duration::from_secs(60);
        cfg.upstream.request_deadline = Duration::from_secs(1);
        tweak(cfg);
    })
    .await;
    env.sim.inject(FaultSpec::always(HANG));
    env
}

/// Sends a Responses request and reads the whole answer, failing the test after [`PATIENCE`].
async fn answer(env: &TestEnv, stream: bool) -> (u16, String) {
    let ask = async {
        let resp = env.responses(&responses_body(stream)).await;
        let status = resp.status().as_u16();
        (status, resp.text().await.expect("body"))
    };
    tokio::time::timeout(PATIENCE, ask)
        .await
        .expect("the request deadline ends the request")
}

#[tokio::test]
async fn a_hung_upstream_ends_a_request_at_the_deadline_with_504_before_any_byte() {
    // Heartbeats are far off: nothing is sent before the deadline, so the answer is a status.
    let env = hung(|cfg| cfg.server.sse_heartbeat = Duration::from_secs(60)).await;
    for stream in [false, true] {
        let (status, body) = answer(&env, stream).await;
        assert_eq!(status, 504, "stream: {stream}: {body}");
        let v: Value = serde_json::from_str(&body).expect("an OpenAI-shaped error");
        assert_eq!(v["error"]["code"], "timeout", "{v}");
        let message = v["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("upstream.request_deadline"), "{message}");
    }
    let rec = env.last_record();
    assert_eq!(rec.status, 504);
    env.shutdown().await;
}

#[tokio::test]
async fn a_hung_upstream_gets_a_streaming_client_heartbeats_then_a_terminal_error() {
    let env = hung(|cfg| cfg.server.sse_heartbeat = Duration::from_millis(150)).await;
    let (status, body) = answer(&env, true).await;
    assert_eq!(status, 200, "heartbeats committed the answer: {body}");
    let (before, after) = body
        .split_once("event: response.failed")
        .expect("a terminal response.failed");
    assert!(
        before.matches(": keepalive\n\n").count() >= 3
            && before.replace(": keepalive\n\n", "").is_empty(),
        "only heartbeats before the error: {before:?}"
    );
    assert_eq!(event_types(&body), ["response.failed"], "{body}");
    assert!(after.contains("\"code\":\"timeout\""), "{after}");
    assert!(after.contains("upstream.request_deadline"), "{after}");
    env.shutdown().await;
}

#[tokio::test]
async fn a_slow_first_byte_gets_a_streaming_client_heartbeats_then_the_answer() {
    let env = start_env_with(SimOptions::default(), 1, |cfg, _| {
        cfg.server.sse_heartbeat = Duration::from_millis(150);
    })
    .await;
    env.sim
        .inject(FaultSpec::always(FaultKind::Silence { millis: 700 }).times(1));
    let (status, body) = answer(&env, true).await;
    assert_eq!(status, 200);
    assert!(
        body.starts_with(": keepalive\n\n"),
        "heartbeats while upstream has not answered yet: {body}"
    );
    let types = event_types(&body);
    assert_eq!(types.first().map(String::as_str), Some("response.created"));
    assert_eq!(types.last().map(String::as_str), Some("response.completed"));
    let rec = env.last_record();
    assert_eq!((rec.status, rec.error.as_deref()), (200, None));
    assert!(rec.usage.is_some_and(|u| u.output_tokens > 0), "{rec:?}");
    env.eventually("the lease is released", || async {
        env.view_of(&env.sim_ids[0]).await.leases == 0
    })
    .await;
    env.shutdown().await;
}

/// Reads from `conn` until the daemon closes it (EOF or reset); `None` if it stays open for
/// [`PATIENCE`]. Returns what was read.
async fn read_until_closed(conn: &mut tokio::net::TcpStream) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let read_all = async {
        let mut buf = [0u8; 4096];
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(PATIENCE, read_all).await.ok()?;
    Some(got)
}

#[tokio::test]
async fn a_partial_request_head_is_closed_after_the_header_read_timeout() {
    let env = start_env_with(SimOptions::default(), 1, |cfg, _| {
        cfg.server.header_read_timeout = Duration::from_millis(300);
        cfg.server.keep_alive_timeout = Duration::from_secs(600);
    })
    .await;
    let mut conn = tokio::net::TcpStream::connect(env.addr)
        .await
        .expect("connects");
    // A slowloris client: a head that never ends, one header line at a time.
    conn.write_all(b"POST /v1/responses HTTP/1.1\r\nhost: x\r\n")
        .await
        .expect("writes");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _ = conn.write_all(b"x-slow: 1\r\n").await;
    assert!(
        read_until_closed(&mut conn).await.is_some(),
        "the daemon closes a connection whose head never completes"
    );
    assert_eq!(env.upstream_requests(), 0);
    env.shutdown().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_keep_alive_timeout() {
    let env = start_env_with(SimOptions::default(), 1, |cfg, _| {
        cfg.server.keep_alive_timeout = Duration::from_millis(300);
        cfg.server.header_read_timeout = Duration::from_secs(600);
    })
    .await;
    let mut conn = tokio::net::TcpStream::connect(env.addr)
        .await
        .expect("connects");
    conn.write_all(b"HEAD / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .expect("writes");
    let got = read_until_closed(&mut conn)
        .await
        .expect("the idle connection is closed after its request was answered");
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with("HTTP/1.1 200"),
        "the request on it was answered first: {text}"
    );
    env.shutdown().await;
}
