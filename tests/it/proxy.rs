//! The Responses proxy end to end: client → daemon → simulator over real sockets. One test per
//! behaviour of issue 4 — pass-through, `stream: false`, every row of docs/failures.md "Failure
//! classes", pool exhaustion, affinity, client disconnect, shutdown — plus the real `openai`
//! Python SDK. Failure rows are in `proxy/failures.rs`, lifecycle in `proxy/lifecycle.rs`, what
//! keyless clients may make the daemon read in `proxy/keyless.rs`, and what a new user's first
//! requests meet at the edge (default model, 404/405) in `proxy/edge.rs`, what reaches the strict
//! simulator in `proxy/shape.rs`, reasoning across a failover in `proxy/reasoning.rs`, and how
//! each answer of FIDELITY.md §B is classified in `proxy/verdicts.rs`, and what a model requiring
//! a newer Codex answers the presented `version` in `proxy/version.rs`.

mod edge;
mod failures;
mod heartbeat;
mod keyless;
mod lifecycle;
mod models;
mod names;
mod oversize;
mod pseudonyms;
mod reasoning;
mod shape;
mod terminal;
mod timeouts;
mod turns;
mod verdicts;
mod version;

use crate::support::{
    POOL_KEY, TcpTap, TestEnv, event_types, responses_body, start_env, start_env_with,
};
use codex_rotor::sim::{FaultKind, FaultSpec, SimOptions};
use futures::StreamExt;
use serde_json::Value;
use std::time::Duration;

/// Sends one streamed request and returns (status, headers, body text).
pub(crate) async fn stream_once(
    env: &TestEnv,
    headers: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, String) {
    let resp = env.responses_with(&responses_body(true), headers).await;
    let status = resp.status().as_u16();
    let h = resp.headers().clone();
    let body = resp.text().await.expect("body");
    (status, h, body)
}

#[tokio::test]
async fn streams_upstream_bytes_through_and_forwards_quota_headers() {
    let env = start_env(2).await;
    let (status, h, body) = stream_once(&env, &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(h["content-type"], "text/event-stream");
    assert_eq!(h["x-accel-buffering"], "no");
    assert!(
        h.contains_key("x-codex-primary-used-percent"),
        "quota headers forwarded: {h:?}"
    );
    assert_eq!(h["openai-model"], "gpt-5.5", "served model passed through");
    let types = event_types(&body);
    assert_eq!(types.first().map(String::as_str), Some("response.created"));
    assert_eq!(types.last().map(String::as_str), Some("response.completed"));
    assert_eq!(env.upstream_requests(), 1);
    // Usage observed on the side reached the serving account and the request record.
    let rec = env.last_record();
    assert_eq!(rec.status, 200);
    assert_eq!(rec.route, "responses");
    let account = rec.account_id.clone().expect("served by an account");
    let sim_id = env.sim_id_of(&account).await;
    let sim_out = env.sim.counters(&sim_id).output_tokens;
    assert!(sim_out > 0);
    assert_eq!(rec.usage.map(|u| u.output_tokens), Some(sim_out));
    env.eventually("usage reaches the account", || async {
        env.state
            .pool()
            .account(&account)
            .await
            .is_some_and(|v| v.usage.tokens.output_tokens == sim_out && v.leases == 0)
    })
    .await;
    env.shutdown().await;
}

#[tokio::test]
async fn non_streaming_request_gets_the_collected_response() {
    let env = start_env(1).await;
    let resp = env.responses(&responses_body(false)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let v: Value = resp.json().await.expect("json");
    assert_eq!(v["object"], "response");
    assert_eq!(v["status"], "completed");
    let text = v["output"]
        .as_array()
        .expect("output")
        .iter()
        .flat_map(|i| i["content"].as_array().cloned().unwrap_or_default())
        .find_map(|c| c["text"].as_str().map(str::to_owned));
    assert!(
        text.is_some_and(|t| !t.is_empty()),
        "answer text in output: {v}"
    );
    env.shutdown().await;
}

#[tokio::test]
async fn keys_are_required_and_accepted_in_both_headers() {
    let env = start_env(1).await;
    let no_key = env
        .http
        .post(env.url("/v1/responses"))
        .json(&responses_body(true))
        .send()
        .await
        .expect("answer");
    assert_eq!(no_key.status(), 401);
    let v: Value = no_key.json().await.expect("json");
    assert_eq!(v["error"]["code"], "invalid_api_key");
    let wrong = env
        .http
        .post(env.url("/v1/responses"))
        .bearer_auth("nope")
        .json(&responses_body(true))
        .send()
        .await
        .expect("answer");
    assert_eq!(wrong.status(), 401);
    let x_api_key = env
        .http
        .post(env.url("/responses"))
        .header("x-api-key", POOL_KEY)
        .json(&responses_body(false))
        .send()
        .await
        .expect("answer");
    assert_eq!(x_api_key.status(), 200);
    assert_eq!(
        env.upstream_requests(),
        1,
        "rejected requests never reach upstream"
    );
    let models = env
        .http
        .get(env.url("/v1/models"))
        .bearer_auth(POOL_KEY)
        .send()
        .await
        .expect("answer");
    assert_eq!(models.status(), 200);
    let m: Value = models.json().await.expect("json");
    assert_eq!(m["object"], "list");
    assert!(m["data"].as_array().is_some_and(|d| !d.is_empty()), "{m}");
    env.shutdown().await;
}

#[tokio::test]
async fn malformed_body_is_400_without_touching_upstream() {
    let env = start_env(1).await;
    let resp = env
        .http
        .post(env.url("/v1/responses"))
        .bearer_auth(POOL_KEY)
        .body("{not json")
        .send()
        .await
        .expect("answer");
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.expect("json");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    // A model of the wrong type (a missing one gets `models.default_model`, see proxy/edge.rs).
    let resp = env
        .responses(&serde_json::json!({"model": 5, "input": "x"}))
        .await;
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.expect("json");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert_eq!(env.upstream_requests(), 0);
    env.shutdown().await;
}

#[tokio::test]
async fn affinity_keeps_a_conversation_on_its_account() {
    let env = start_env(4).await;
    let mut body = responses_body(true);
    body["prompt_cache_key"] = "thread-A".into();
    let mut served = Vec::new();
    for _ in 0..4 {
        let resp = env.responses(&body).await;
        assert_eq!(resp.status(), 200);
        let _ = resp.text().await;
        served.push(env.last_record().account_id.expect("account"));
    }
    assert!(
        served.windows(2).all(|w| w[0] == w[1]),
        "prompt_cache_key sticks: {served:?}"
    );
    // x-codex-turn-state from a response, echoed back, keeps the turn on the same account.
    let first = env
        .responses_with(&responses_body(true), &[("session-id", "s-1")])
        .await;
    let turn_state = first
        .headers()
        .get("x-codex-turn-state")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .expect("turn state header");
    let _ = first.text().await;
    let owner = env.last_record().account_id.expect("account");
    for _ in 0..3 {
        let r = env
            .responses_with(
                &responses_body(true),
                &[("x-codex-turn-state", &turn_state)],
            )
            .await;
        let _ = r.text().await;
        assert_eq!(
            env.last_record().account_id.as_deref(),
            Some(owner.as_str())
        );
    }
    env.shutdown().await;
}

#[tokio::test]
async fn python_openai_sdk_plain_streamed_and_helper() {
    let env = start_env(2).await;
    python_openai_responses(&env).await;
    env.shutdown().await;
}

/// The same with every upstream answer late: streamed requests get `: keepalive` comments before
/// the first byte (issue 15, item 8), which the SDK, its `responses.stream()` helper included,
/// must skip.
#[tokio::test]
async fn python_openai_sdk_takes_heartbeats_before_the_first_byte() {
    let env = start_env_with(SimOptions::default(), 2, |cfg, _| {
        cfg.server.sse_heartbeat = Duration::from_millis(100);
    })
    .await;
    env.sim
        .inject(FaultSpec::always(FaultKind::Silence { millis: 350 }));
    python_openai_responses(&env).await;
    env.shutdown().await;
}

/// Runs `tests/python/openai_responses.py` against `env` and checks what it saw.
async fn python_openai_responses(env: &TestEnv) {
    let python = std::env::var("ROTOR_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/openai_responses.py"
    );
    let base = env.url("/v1");
    let out = tokio::process::Command::new(&python)
        .arg(script)
        .arg(&base)
        .arg(POOL_KEY)
        .arg("gpt-5.5")
        .output()
        .await
        .expect("python runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "openai SDK script failed:\n{stderr}");
    let v: Value = serde_json::from_slice(&out.stdout).expect("script prints JSON");
    assert_eq!(v["plain"]["status"], "completed");
    assert!(
        v["plain"]["output_text"]
            .as_str()
            .is_some_and(|t| !t.is_empty()),
        "{v}"
    );
    let types = v["streamed"]["types"].as_array().expect("types");
    assert_eq!(types.first(), Some(&Value::from("response.created")));
    assert_eq!(types.last(), Some(&Value::from("response.completed")));
    assert_eq!(v["streamed"]["delta_text"], v["streamed"]["completed_text"]);
    assert!(
        v["helper"]["output_text"]
            .as_str()
            .is_some_and(|t| !t.is_empty()),
        "{v}"
    );
    assert_eq!(v["helper"]["status"], "completed");
    assert_eq!(v["bad_key"]["status"], 401);
}

#[tokio::test]
async fn client_disconnect_releases_the_lease_and_cancels_upstream() {
    // ~20 s of answer: anything that ends sooner was cancelled.
    let opts = SimOptions {
        event_delay: Duration::from_millis(100),
        answer_words: 200,
        ..SimOptions::default()
    };
    let tap = std::sync::Arc::new(std::sync::Mutex::new(None));
    let tap_slot = tap.clone();
    let env = start_env_with(opts, 1, move |cfg, sim| {
        let t = TcpTap::start(sim.addr);
        cfg.upstream.base_url = format!("http://{}/backend-api", t.addr);
        *tap_slot.lock().expect("tap slot") = Some(t);
    })
    .await;
    let tap = tap.lock().expect("tap").clone().expect("tap started");
    let resp = env.responses(&responses_body(true)).await;
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    let first = body.next().await.expect("a first chunk").expect("bytes");
    assert!(!first.is_empty());
    let sim_id = env.sim_ids[0].clone();
    assert_eq!(
        env.view_of(&sim_id).await.leases,
        1,
        "lease held while streaming"
    );
    assert_eq!(tap.open_now(), 1, "one upstream connection streaming");
    drop(body);
    env.eventually("lease released after client disconnect", || async {
        env.view_of(&sim_id).await.leases == 0
    })
    .await;
    env.eventually("upstream connection closed by the daemon", || async {
        tap.open_now() == 0
    })
    .await;
    env.eventually("request recorded as client-closed", || async {
        env.state
            .recent()
            .list(1)
            .first()
            .is_some_and(|r| r.status == 499)
    })
    .await;
    env.shutdown().await;
}

#[tokio::test]
async fn stream_without_terminal_event_ends_with_response_failed_and_no_failover() {
    let env = start_env(3).await;
    env.sim.inject(
        FaultSpec::always(FaultKind::PrematureClose {
            after_events: 2,
            mid_chunk: false,
        })
        .times(1),
    );
    let (status, _, body) = stream_once(&env, &[]).await;
    assert_eq!(status, 200);
    let types = event_types(&body);
    assert_eq!(
        types.last().map(String::as_str),
        Some("response.failed"),
        "{body}"
    );
    assert!(body.contains("upstream_premature_close"));
    assert_eq!(env.upstream_requests(), 1, "never retried across accounts");
    env.shutdown().await;
}

#[tokio::test]
async fn mid_chunk_cut_after_first_byte_ends_with_a_terminal_event() {
    let env = start_env(2).await;
    env.sim.inject(
        FaultSpec::always(FaultKind::PrematureClose {
            after_events: 2,
            mid_chunk: true,
        })
        .times(1),
    );
    let (status, _, body) = stream_once(&env, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(
        event_types(&body).last().map(String::as_str),
        Some("response.failed"),
        "{body}"
    );
    assert_eq!(env.upstream_requests(), 1);
    env.shutdown().await;
}

#[tokio::test]
async fn non_streaming_premature_close_is_504_and_not_retried() {
    let env = start_env(3).await;
    env.sim.inject(
        FaultSpec::always(FaultKind::PrematureClose {
            after_events: 3,
            mid_chunk: false,
        })
        .times(1),
    );
    let resp = env.responses(&responses_body(false)).await;
    assert_eq!(resp.status(), 504);
    let v: Value = resp.json().await.expect("json");
    assert_eq!(v["error"]["code"], "upstream_premature_close");
    assert_eq!(
        env.upstream_requests(),
        1,
        "never burns other accounts on it"
    );
    env.shutdown().await;
}
