//! Streams end where the backend says (issue 17 item 5): the real backend may keep the
//! connection open after `response.completed` (the simulator's `Linger` fault), and the Codex
//! CLI returns at the terminal event. The daemon ends the client's answer there — pass-through
//! and translated, streamed and collected — frees the account's lease, records the request, and
//! sends nothing after the terminal event.

use crate::support::{POOL_KEY, TestEnv, event_types, responses_body, start_env_with};
use codex_rotor::sim::{FaultKind, FaultSpec, SimOptions};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// How long upstream holds the connection open after the terminal event.
const LINGER: Duration = Duration::from_secs(20);

/// The bound within which the client's answer must be whole and the lease free.
const BOUND: Duration = Duration::from_secs(3);

/// A daemon whose heartbeats would show within the linger, if any were sent after the end.
async fn lingering() -> TestEnv {
    let env = start_env_with(SimOptions::default(), 1, |cfg, _| {
        cfg.server.sse_heartbeat = Duration::from_millis(200);
    })
    .await;
    let millis = LINGER.as_millis() as u64;
    env.sim
        .inject(FaultSpec::always(FaultKind::Linger { millis }).times(8));
    env
}

/// POSTs `body` to `path` and reads the whole answer, which must end within [`BOUND`].
async fn whole(env: &TestEnv, path: &str, body: &Value) -> (u16, String) {
    let started = Instant::now();
    let ask = async {
        let resp = env
            .http
            .post(env.url(path))
            .bearer_auth(POOL_KEY)
            .json(body)
            .send()
            .await
            .expect("daemon answers");
        (resp.status().as_u16(), resp.text().await.expect("body"))
    };
    let got = tokio::time::timeout(BOUND, ask)
        .await
        .unwrap_or_else(|_| panic!("{path}: the answer did not end at the terminal event"));
    assert!(started.elapsed() < BOUND);
    got
}

/// The lease is free and the request recorded as a success, while upstream still lingers.
async fn freed(env: &TestEnv) {
    env.eventually("the lease is released", || async {
        env.view_of(&env.sim_ids[0]).await.leases == 0
    })
    .await;
    let rec = env.last_record();
    assert_eq!((rec.status, rec.error.as_deref()), (200, None), "{rec:?}");
    assert!(
        rec.usage.is_some(),
        "usage was read from the terminal event"
    );
}

#[tokio::test]
async fn a_responses_stream_ends_at_response_completed_while_upstream_lingers() {
    let env = lingering().await;
    let (status, text) = whole(&env, "/v1/responses", &responses_body(true)).await;
    assert_eq!(status, 200);
    assert_eq!(
        event_types(&text).last().map(String::as_str),
        Some("response.completed")
    );
    assert!(
        text.ends_with("\n\n") && !text.trim_end().ends_with("keepalive"),
        "nothing after the terminal event: {text:?}"
    );
    let after = text.rsplit_once("response.completed").expect("terminal").1;
    assert!(!after.contains(": keepalive"), "{after:?}");
    freed(&env).await;

    let (status, text) = whole(&env, "/v1/responses", &responses_body(false)).await;
    assert_eq!(status, 200, "{text}");
    let v: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(v["status"], "completed");
    freed(&env).await;
    env.shutdown().await;
}

#[tokio::test]
async fn translated_streams_end_at_the_terminal_event_while_upstream_lingers() {
    let env = lingering().await;
    let chat = json!({"model": "gpt-5.5", "stream": true,
        "messages": [{"role": "user", "content": "hi"}]});
    let (status, text) = whole(&env, "/v1/chat/completions", &chat).await;
    assert_eq!(status, 200);
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    freed(&env).await;

    let messages = json!({"model": "claude-opus-4-8", "max_tokens": 256, "stream": true,
        "messages": [{"role": "user", "content": "hi"}]});
    let (status, text) = whole(&env, "/v1/messages", &messages).await;
    assert_eq!(status, 200);
    let last = text.trim_end().rsplit("\n\n").next().expect("frames");
    assert!(last.starts_with("event: message_stop"), "{text}");
    freed(&env).await;

    let collected = json!({"model": "claude-opus-4-8", "max_tokens": 256, "stream": false,
        "messages": [{"role": "user", "content": "hi"}]});
    let (status, text) = whole(&env, "/v1/messages", &collected).await;
    assert_eq!(status, 200, "{text}");
    freed(&env).await;
    env.shutdown().await;
}
