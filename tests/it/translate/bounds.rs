//! The translated routes at the edges of what the daemon can deliver (issue 15, item 9): an
//! upstream event too large to translate ends the stream with the protocol's error (and
//! penalises no account).

use super::daemon::{events, post, start_with};
use codex_rotor::sim::{FaultKind, FaultSpec};
use serde_json::{Value, json};

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
