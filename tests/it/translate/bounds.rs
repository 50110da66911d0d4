//! The translated routes at the edges of what the daemon can deliver (issue 15, items 8 and 9):
//! an upstream event too large to translate ends the stream with the protocol's error (and
//! penalises no account), and while failover waits for a first byte a streaming client hears
//! its protocol's heartbeat — `: keep-alive` comments (OpenAI) or `ping` events (Anthropic) —
//! then the answer, or the protocol's error when the request deadline passes.

use super::daemon::{events, post, start_with};
use codex_rotor::sim::{FaultKind, FaultSpec};
use serde_json::{Value, json};
use std::time::Duration;

/// A streamed Chat Completions request.
fn chat(stream: bool) -> Value {
    json!({"model": "gpt-5.5", "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
}

/// A streamed Messages request.
fn messages(stream: bool) -> Value {
    json!({"model": "claude-x", "max_tokens": 64, "stream": stream,
        "messages": [{"role": "user", "content": "hi"}]})
}

/// Event names of an Anthropic stream.
fn names(body: &str) -> Vec<String> {
    events(body).into_iter().filter_map(|e| e.0).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_too_large_to_translate_ends_the_stream_with_the_protocols_error() {
    let d = start_with(1, |_| {}).await;
    let bytes = codex_rotor::sse::MAX_LINE + 1024;
    d.sim
        .inject(FaultSpec::always(FaultKind::HugeEvent { bytes }).times(2));

    let (status, _, body) = post(&d, "/v1/chat/completions", &chat(true)).await;
    assert_eq!(status, 200);
    let evs = events(&body);
    assert_eq!(evs.last().map(|e| e.1.as_str()), Some("[DONE]"), "{body}");
    let err: Value = serde_json::from_str(&evs[evs.len() - 2].1).expect("error json");
    let message = err["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("too large"),
        "an error precedes [DONE]: {body}"
    );
    assert!(
        !body.contains("\"finish_reason\":\"stop\""),
        "no success after a lost event: {body}"
    );

    let (status, _, body) = post(&d, "/v1/messages", &messages(true)).await;
    assert_eq!(status, 200);
    let names = names(&body);
    assert_eq!(names.last().map(String::as_str), Some("error"), "{body}");
    assert!(!names.iter().any(|n| n == "message_stop"), "{body}");
    assert!(body.contains("too large"), "{body}");

    let view = d.view_of(&d.sim_ids[0]).await;
    assert_eq!(view.last_error, None, "the account is not penalised");
    assert_eq!(view.derived_status, "active");
    let rec = d.last_record();
    assert!(
        rec.error
            .as_deref()
            .is_some_and(|e| e.contains("too large")),
        "recorded as failed, not as a client disconnect: {rec:?}"
    );
    assert_eq!(rec.status, 200);
    // The next answer of the same account is served normally.
    let (status, _, body) = post(&d, "/v1/chat/completions", &chat(true)).await;
    assert_eq!(status, 200);
    assert!(body.contains("\"finish_reason\":\"stop\""), "{body}");
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_first_byte_gets_pings_and_keepalives_then_the_answer() {
    let d = start_with(1, |c| c.server.sse_heartbeat = Duration::from_millis(150)).await;
    d.sim
        .inject(FaultSpec::always(FaultKind::Silence { millis: 700 }).times(2));
    let (status, _, body) = post(&d, "/v1/messages", &messages(true)).await;
    assert_eq!(status, 200);
    let names = names(&body);
    assert_eq!(
        names.first().map(String::as_str),
        Some("message_start"),
        "{body}"
    );
    assert_eq!(names.get(1).map(String::as_str), Some("ping"), "{body}");
    assert!(names.contains(&"content_block_delta".to_owned()), "{body}");
    assert_eq!(
        names.last().map(String::as_str),
        Some("message_stop"),
        "{body}"
    );
    assert_eq!(
        names.iter().filter(|n| *n == "message_start").count(),
        1,
        "{body}"
    );

    let (status, _, body) = post(&d, "/v1/chat/completions", &chat(true)).await;
    assert_eq!(status, 200);
    assert!(body.starts_with(": keep-alive\n\n"), "{body}");
    assert!(body.contains("\"finish_reason\":\"stop\""), "{body}");
    assert!(body.ends_with("data: [DONE]\n\n"), "{body}");
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_upstream_ends_translated_streams_with_the_protocols_timeout_error() {
    let d = start_with(2, |c| {
        c.server.sse_heartbeat = Duration::from_millis(150);
        c.upstream.first_byte_timeout = Duration::from_secs(60);
        c.upstream.request_deadline = Duration::from_secs(1);
    })
    .await;
    d.sim
        .inject(FaultSpec::always(FaultKind::Silence { millis: 600_000 }));
    let patience = Duration::from_secs(20);

    let (status, _, body) =
        tokio::time::timeout(patience, post(&d, "/v1/messages", &messages(true)))
            .await
            .expect("the deadline ends the request");
    assert_eq!(status, 200);
    let evs = events(&body);
    let names: Vec<&str> = evs.iter().filter_map(|e| e.0.as_deref()).collect();
    assert_eq!(names.first(), Some(&"message_start"), "{body}");
    assert!(names.contains(&"ping"), "{body}");
    assert_eq!(names.last(), Some(&"error"), "{body}");
    let err: Value = serde_json::from_str(&evs.last().expect("error").1).expect("json");
    assert_eq!(err["error"]["type"], "timeout_error", "{err}");

    let (status, _, body) =
        tokio::time::timeout(patience, post(&d, "/v1/chat/completions", &chat(true)))
            .await
            .expect("the deadline ends the request");
    assert_eq!(status, 200);
    assert!(body.starts_with(": keep-alive\n\n"), "{body}");
    let evs = events(&body);
    assert_eq!(evs.last().map(|e| e.1.as_str()), Some("[DONE]"), "{body}");
    let err: Value = serde_json::from_str(&evs[evs.len() - 2].1).expect("error json");
    assert!(
        err["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("upstream.request_deadline")),
        "{err}"
    );

    // Not streaming: nothing can be sent early, so the deadline is a 504 in each protocol.
    let (status, _, body) =
        tokio::time::timeout(patience, post(&d, "/v1/messages", &messages(false)))
            .await
            .expect("the deadline ends the request");
    assert_eq!(status, 504, "{body}");
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["error"]["type"], "timeout_error", "{v}");
    d.shutdown().await;
}
