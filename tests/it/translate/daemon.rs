//! The translated routes over real sockets (daemon in front of the simulator, both on
//! 127.0.0.1:0), without SDKs: Claude Code's HEAD probes, error shapes per protocol, mid-stream
//! failures ending in the protocol's error event, and count_tokens.

use crate::support::{POOL_KEY, TestEnv, start_env, start_env_with};
use codex_rotor::config::Config;
use codex_rotor::sim::{FaultKind, FaultSpec, SimOptions};
use serde_json::{Value, json};
use std::time::Duration;

/// POSTs JSON with the pool key (as Claude Code sends it, `x-api-key`); returns status,
/// headers and body text.
pub(super) async fn post(
    env: &TestEnv,
    path: &str,
    body: &Value,
) -> (u16, reqwest::header::HeaderMap, String) {
    let resp = env
        .http
        .post(env.url(path))
        .header("x-api-key", POOL_KEY)
        .json(body)
        .send()
        .await
        .expect("daemon answers");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.text().await.expect("body"))
}

/// A daemon whose configuration is adjusted by `tweak`.
pub(super) async fn start_with(n: usize, tweak: impl FnOnce(&mut Config)) -> TestEnv {
    start_env_with(SimOptions::default(), n, |cfg, _| tweak(cfg)).await
}

/// The `data:` payloads of an SSE body, with their `event:` names.
pub(super) fn events(body: &str) -> Vec<(Option<String>, String)> {
    body.split("\n\n")
        .filter(|f| !f.trim().is_empty() && !f.starts_with(':'))
        .map(|f| {
            let event = f
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .map(str::to_owned);
            let data = f
                .lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .collect::<Vec<_>>()
                .join("\n");
            (event, data)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_probes_answer_200() {
    let d = start_env(1).await;
    let client = reqwest::Client::new();
    for path in ["/", "/api/hello"] {
        let resp = client.head(d.url(path)).send().await.expect("answers");
        assert_eq!(resp.status().as_u16(), 200, "HEAD {path}");
    }
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_are_400_in_each_protocol() {
    let d = start_env(1).await;
    let (status, _, body) = post(&d, "/v1/chat/completions", &json!({"model": "gpt-5.5"})).await;
    assert_eq!(status, 400);
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["error"]["param"], "messages");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    let (status, _, body) = post(
        &d,
        "/v1/messages?beta=true",
        &json!({"model": "claude-x", "messages": []}),
    )
    .await;
    assert_eq!(status, 400);
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    let resp = reqwest::Client::new()
        .post(d.url("/v1/messages"))
        .header("x-api-key", POOL_KEY)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("answers");
    assert_eq!(resp.status().as_u16(), 400);
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn premature_close_mid_stream_ends_with_the_protocols_error_event() {
    let d = start_env(1).await;
    d.sim.inject(FaultSpec::always(FaultKind::PrematureClose {
        after_events: 3,
        mid_chunk: false,
    }));
    let ask = json!({"role": "user", "content": "tell me a story"});
    let (status, _, body) = post(
        &d,
        "/v1/chat/completions",
        &json!({"model": "gpt-5.5", "stream": true, "messages": [ask]}),
    )
    .await;
    assert_eq!(status, 200);
    let evs = events(&body);
    assert_eq!(evs.last().map(|e| e.1.as_str()), Some("[DONE]"), "{body}");
    let err: Value = serde_json::from_str(&evs[evs.len() - 2].1).expect("error json");
    assert!(
        err["error"]["message"].is_string(),
        "an error line precedes [DONE]: {body}"
    );

    let (status, _, body) = post(
        &d,
        "/v1/messages",
        &json!({"model": "claude-x", "max_tokens": 64, "stream": true, "messages": [ask]}),
    )
    .await;
    assert_eq!(status, 200);
    let evs = events(&body);
    assert_eq!(
        evs.first().and_then(|e| e.0.as_deref()),
        Some("message_start"),
        "{body}"
    );
    assert_eq!(
        evs.last().and_then(|e| e.0.as_deref()),
        Some("error"),
        "{body}"
    );
    assert!(
        evs.iter().all(|e| e.0.as_deref() != Some("message_stop")),
        "no fake success: {body}"
    );
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn count_tokens_needs_no_account_and_no_quota() {
    let d = start_env(1).await;
    let (status, _, body) = post(
        &d,
        "/v1/messages/count_tokens",
        &json!({"model": "claude-x", "messages": [{"role": "user", "content": "hello there"}]}),
    )
    .await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).expect("json");
    assert!(v["input_tokens"].as_u64().is_some_and(|n| n > 0), "{v}");
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_over_the_limit_is_413_in_each_protocol() {
    let d = start_with(1, |c| c.server.max_body_bytes = 1024).await;
    let big = json!({"model": "m", "messages": [{"role": "user", "content": "x".repeat(4096)}]});
    let (status, _, body) = post(&d, "/v1/chat/completions", &big).await;
    assert_eq!(status, 413);
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["error"]["code"], "payload_too_large", "{v}");
    let (status, _, body) = post(&d, "/v1/messages", &big).await;
    assert_eq!(status, 413);
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        v,
        json!({"type": "error", "error": {"type": "request_too_large", "message": "request body is larger than the limit of 1024 bytes (server.max_body_bytes)"}})
    );
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_silence_becomes_pings_and_keepalives() {
    let d = start_with(1, |c| c.server.sse_heartbeat = Duration::from_millis(100)).await;
    d.sim.inject(FaultSpec::always(FaultKind::Stall {
        after_events: 2,
        millis: 700,
    }));
    let ask = json!({"role": "user", "content": "think long"});
    let (status, _, body) = post(
        &d,
        "/v1/messages",
        &json!({"model": "claude-x", "max_tokens": 64, "stream": true, "messages": [ask]}),
    )
    .await;
    assert_eq!(status, 200);
    let evs = events(&body);
    let names: Vec<&str> = evs.iter().filter_map(|e| e.0.as_deref()).collect();
    assert_eq!(names.first(), Some(&"message_start"), "{body}");
    assert!(
        names.contains(&"ping"),
        "silence is filled with pings: {body}"
    );
    assert_eq!(names.last(), Some(&"message_stop"), "{body}");
    let (status, _, body) = post(
        &d,
        "/v1/chat/completions",
        &json!({"model": "gpt-5.5", "stream": true, "messages": [ask]}),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        body.contains("\n: keep-alive\n\n") || body.starts_with(": keep-alive"),
        "{body}"
    );
    assert!(body.ends_with("data: [DONE]\n\n"), "{body}");
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_pool_is_429_with_retry_after_and_unservable_is_529() {
    let d = start_env(1).await;
    d.sim.inject(FaultSpec::always(FaultKind::RateLimit {
        retry_after_secs: Some(120),
    }));
    let ask = json!({"role": "user", "content": "hi"});
    let (status, headers, body) = post(
        &d,
        "/v1/messages",
        &json!({"model": "claude-x", "max_tokens": 8, "messages": [ask]}),
    )
    .await;
    assert_eq!(status, 429, "{body}");
    assert!(headers.get("retry-after").is_some(), "Retry-After is sent");
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["error"]["type"], "rate_limit_error");
    let (status, headers, _) = post(
        &d,
        "/v1/chat/completions",
        &json!({"model": "gpt-5.5", "messages": [ask]}),
    )
    .await;
    assert_eq!(status, 429);
    assert!(headers.get("retry-after").is_some());
    d.shutdown().await;

    let d = start_env(1).await;
    d.sim.ban(&d.sim_ids[0]);
    let (status, _, body) = post(
        &d,
        "/v1/messages",
        &json!({"model": "claude-x", "max_tokens": 8, "messages": [ask]}),
    )
    .await;
    assert_eq!(status, 529, "{body}");
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["error"]["type"], "overloaded_error");
    let (status, _, body) = post(
        &d,
        "/v1/chat/completions",
        &json!({"model": "gpt-5.5", "messages": [ask]}),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn translated_requests_are_recorded_with_route_account_and_usage() {
    let d = start_env(1).await;
    let ask = json!({"role": "user", "content": "hello"});
    let (status, _, body) = post(
        &d,
        "/v1/chat/completions",
        &json!({"model": "gpt-5.5", "messages": [ask]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["object"], "chat.completion");
    let rec = d.last_record();
    assert_eq!(
        (rec.route, rec.status, rec.model.as_deref()),
        ("chat", 200, Some("gpt-5.5"))
    );
    assert!(
        rec.account_id.is_some() && rec.usage.is_some_and(|u| u.output_tokens > 0),
        "{rec:?}"
    );

    let body =
        json!({"model": "claude-opus-4-8", "max_tokens": 64, "stream": true, "messages": [ask]});
    let (status, _, text) = post(&d, "/v1/messages", &body).await;
    assert_eq!(status, 200);
    assert!(
        text.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"),
        "{text}"
    );
    d.eventually("the streamed request is recorded", || async {
        let rec = d.last_record();
        rec.route == "messages" && rec.status == 200 && rec.usage.is_some()
    })
    .await;
    d.shutdown().await;
}
