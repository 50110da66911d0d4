//! The Responses proxy end to end: client → daemon → simulator over real sockets. One test per
//! behaviour of issue 4 — pass-through, `stream: false`, every row of DESIGN.md "Failure
//! classes", pool exhaustion, affinity, client disconnect, shutdown — plus the real `openai`
//! Python SDK.

use crate::support::{
    POOL_KEY, TcpTap, TestEnv, event_types, responses_body, start_env, start_env_with,
};
use codex_rotor::sim::{FaultKind, FaultSpec, SimOptions};
use futures::StreamExt;
use serde_json::Value;
use std::time::Duration;

/// Sends one streamed request and returns (status, headers, body text).
async fn stream_once(
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
            .is_some_and(|v| v.usage.output_tokens == sim_out && v.leases == 0)
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
    let resp = env.responses(&serde_json::json!({"input": "x"})).await;
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.expect("json");
    assert_eq!(v["error"]["param"], "model");
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
    env.shutdown().await;
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

/// Sends streamed requests until the simulator account `sim_id` has been asked once (the pool
/// only learns an account is bad by trying it); returns every request's record.
async fn until_tried(env: &TestEnv, sim_id: &str) -> Vec<codex_rotor::recent::RequestRecord> {
    let mut records = Vec::new();
    let before = env.sim.counters(sim_id).requests;
    for _ in 0..env.sim_ids.len() + 1 {
        let (status, _, body) = stream_once(env, &[]).await;
        assert_eq!(
            status, 200,
            "the pool routes around the bad account: {body}"
        );
        assert_eq!(
            event_types(&body).last().map(String::as_str),
            Some("response.completed")
        );
        records.push(env.last_record());
        if env.sim.counters(sim_id).requests > before {
            return records;
        }
    }
    panic!("account {sim_id} was never tried");
}

/// After the bad account was found, it is not asked again.
async fn never_asked_again(env: &TestEnv, sim_id: &str) {
    let before = env.sim.counters(sim_id).requests;
    for _ in 0..3 {
        let (status, _, _) = stream_once(env, &[]).await;
        assert_eq!(status, 200);
    }
    assert_eq!(
        env.sim.counters(sim_id).requests,
        before,
        "{sim_id} stays out of rotation"
    );
}

#[tokio::test]
async fn usage_limit_429_locks_the_account_and_fails_over_before_any_byte() {
    let env = start_env(2).await;
    let bad = env.sim_ids[0].clone();
    env.sim.set_usage(&bad, 100.0, 10.0);
    let records = until_tried(&env, &bad).await;
    let hit = records.last().expect("record");
    assert_eq!((hit.upstream_429s, hit.failovers), (1, 1), "{hit:?}");
    assert_eq!(env.sim.counters(&bad).served_429, 1);
    let view = env.view_of(&bad).await;
    assert_eq!(view.derived_status, "rate_limited");
    assert_eq!(
        format!("{:?}", view.status),
        "Active",
        "a 429 never changes the lifecycle status"
    );
    never_asked_again(&env, &bad).await;
    env.shutdown().await;
}

#[tokio::test]
async fn exhausted_pool_answers_429_usage_limit_with_retry_after() {
    let env = start_env(2).await;
    for id in &env.sim_ids {
        env.sim.set_usage(id, 100.0, 10.0);
    }
    let resp = env.responses(&responses_body(true)).await;
    assert_eq!(resp.status(), 429);
    let retry_after: u64 = resp.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!(retry_after >= 1);
    let v: Value = resp.json().await.expect("json");
    assert_eq!(v["error"]["type"], "usage_limit_reached");
    assert!(
        v["error"]["resets_at"]
            .as_i64()
            .is_some_and(|t| t > 1_700_000_000),
        "{v}"
    );
    assert!(v["error"]["resets_in_seconds"].as_u64().is_some(), "{v}");
    let asked = env.upstream_requests();
    assert_eq!(asked, 2, "each account tried once, then the pool knows");
    // The pool now answers from its own quota truth, without asking upstream.
    let again = env.responses(&responses_body(false)).await;
    assert_eq!(again.status(), 429);
    assert!(again.headers().contains_key("retry-after"));
    assert_eq!(env.upstream_requests(), asked);
    let ready = env
        .http
        .get(env.url("/readyz"))
        .send()
        .await
        .expect("answer");
    assert_eq!(ready.status(), 503, "an all-exhausted pool is not serving");
    env.shutdown().await;
}

#[tokio::test]
async fn unauthorized_account_is_refreshed_and_the_request_fails_over() {
    let env = start_env(2).await;
    let bad = env.sim_ids[0].clone();
    env.sim.expire_access_token(&bad);
    let records = until_tried(&env, &bad).await;
    assert_eq!(records.last().map(|r| r.failovers), Some(1));
    assert_eq!(env.sim.counters(&bad).served_401, 1);
    env.eventually("the 401 account refreshed its tokens", || async {
        env.sim.counters(&bad).refreshes == 1
    })
    .await;
    env.eventually("and is active again", || async {
        env.view_of(&bad).await.derived_status == "active"
    })
    .await;
    env.shutdown().await;
}

#[tokio::test]
async fn banned_and_deactivated_accounts_are_benched_and_requests_fail_over() {
    let env = start_env(3).await;
    let (banned, deactivated) = (env.sim_ids[0].clone(), env.sim_ids[1].clone());
    env.sim.ban(&banned);
    env.sim.deactivate(&deactivated);
    until_tried(&env, &banned).await;
    if env.sim.counters(&deactivated).requests == 0 {
        until_tried(&env, &deactivated).await;
    }
    assert_eq!(env.view_of(&banned).await.derived_status, "banned");
    let d = env.view_of(&deactivated).await;
    assert_eq!(d.derived_status, "banned");
    assert!(d.status_reason.unwrap_or_default().contains("deactivated"));
    never_asked_again(&env, &banned).await;
    never_asked_again(&env, &deactivated).await;
    env.shutdown().await;
}

#[tokio::test]
async fn cloudflare_challenge_is_a_cooldown_not_a_ban() {
    let env = start_env(2).await;
    let bad = env.sim_ids[0].clone();
    env.sim
        .inject(FaultSpec::always(FaultKind::Cloudflare).for_account(&bad));
    until_tried(&env, &bad).await;
    let v = env.view_of(&bad).await;
    assert_eq!(v.derived_status, "cooling_down");
    assert_eq!(format!("{:?}", v.status), "Active");
    assert!(v.cooldown_until.is_some());
    never_asked_again(&env, &bad).await;
    env.shutdown().await;
}

#[tokio::test]
async fn transient_5xx_is_retried_on_the_same_account_then_elsewhere() {
    let env = start_env(2).await;
    // One 500: retried once on the same account, which then answers.
    env.sim
        .inject(FaultSpec::always(FaultKind::ServerError).times(1));
    let (status, _, _) = stream_once(&env, &[]).await;
    assert_eq!(status, 200);
    let rec = env.last_record();
    assert_eq!((rec.retries, rec.failovers), (1, 0), "{rec:?}");
    assert_eq!(env.upstream_requests(), 2);
    // An account that keeps answering 503 overloaded: bounded retry, then another account.
    let bad = env.sim_ids[0].clone();
    env.sim
        .inject(FaultSpec::always(FaultKind::Overloaded).for_account(&bad));
    let before = env.sim.counters(&bad).requests;
    let records = until_tried(&env, &bad).await;
    let hit = records.last().expect("record");
    assert_eq!((hit.retries, hit.failovers), (1, 1), "{hit:?}");
    assert_eq!(
        env.sim.counters(&bad).requests - before,
        2,
        "1 try + max_retries_per_account (1)"
    );
    assert_eq!(
        env.view_of(&bad).await.status,
        rotor_actors::Status::Active,
        "transient: no lifecycle change"
    );
    env.shutdown().await;
}

#[tokio::test]
async fn unreachable_upstream_is_bounded_and_answers_502() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_addr = dead.local_addr().expect("addr");
    drop(dead);
    let env = start_env_with(SimOptions::default(), 4, move |cfg, _| {
        cfg.upstream.base_url = format!("http://{dead_addr}/backend-api");
    })
    .await;
    let resp = env.responses(&responses_body(true)).await;
    assert_eq!(resp.status(), 502);
    let v: Value = resp.json().await.expect("json");
    assert_eq!(v["error"]["code"], "upstream_unreachable");
    let rec = env.last_record();
    assert_eq!(
        rec.failovers + 1,
        3,
        "bounded by upstream.max_accounts_per_request: {rec:?}"
    );
    assert_eq!(rec.retries, 3, "one retry per account");
    env.shutdown().await;
}

#[tokio::test]
async fn request_fault_400_is_returned_as_is_and_penalises_nobody() {
    let opts = SimOptions {
        reject_unknown_models: true,
        ..SimOptions::default()
    };
    let env = start_env_with(opts, 2, |_, _| {}).await;
    let mut body = responses_body(true);
    body["model"] = "no-such-model".into();
    let resp = env.responses(&body).await;
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.expect("json");
    assert!(
        v["detail"]
            .as_str()
            .is_some_and(|d| d.contains("no-such-model")),
        "upstream body passed through: {v}"
    );
    assert_eq!(env.upstream_requests(), 1, "not retried, not failed over");
    for v in env.views().await {
        assert_eq!(v.derived_status, "active");
        assert_eq!(v.usage.failures, 0);
    }
    env.shutdown().await;
}

#[tokio::test]
async fn no_usable_account_is_503_saying_why() {
    let env = start_env(2).await;
    for v in env.views().await {
        env.state
            .pool()
            .set_enabled(&v.id, false)
            .await
            .expect("disable");
    }
    let resp = env.responses(&responses_body(true)).await;
    assert_eq!(resp.status(), 503);
    let v: Value = resp.json().await.expect("json");
    assert_eq!(v["error"]["code"], "no_available_accounts");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("2 disabled")),
        "{v}"
    );
    assert_eq!(env.upstream_requests(), 0);
    env.shutdown().await;
}

#[tokio::test]
async fn long_upstream_silence_gets_keepalive_comments_then_the_answer() {
    let env = start_env_with(SimOptions::default(), 1, |cfg, _| {
        cfg.server.sse_heartbeat = Duration::from_millis(100);
    })
    .await;
    env.sim.inject(
        FaultSpec::always(FaultKind::Stall {
            after_events: 1,
            millis: 450,
        })
        .times(1),
    );
    let (status, _, body) = stream_once(&env, &[]).await;
    assert_eq!(status, 200);
    let keepalives = body.matches(": keepalive\n\n").count();
    assert!(
        (2..=6).contains(&keepalives),
        "{keepalives} keepalives in {body}"
    );
    assert_eq!(
        event_types(&body).last().map(String::as_str),
        Some("response.completed")
    );
    env.shutdown().await;
}

#[tokio::test]
async fn upstream_idle_past_the_timeout_ends_the_stream_with_response_failed() {
    let env = start_env_with(SimOptions::default(), 2, |cfg, _| {
        cfg.server.sse_heartbeat = Duration::from_millis(50);
        cfg.upstream.idle_timeout = Duration::from_millis(200);
    })
    .await;
    env.sim.inject(
        FaultSpec::always(FaultKind::Stall {
            after_events: 1,
            millis: 3_000,
        })
        .times(1),
    );
    let (status, _, body) = stream_once(&env, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(
        event_types(&body).last().map(String::as_str),
        Some("response.failed")
    );
    assert!(body.contains("upstream_idle_timeout"), "{body}");
    assert_eq!(env.upstream_requests(), 1);
    env.shutdown().await;
}

#[tokio::test]
async fn shutdown_lets_streams_finish_within_the_grace_then_ends_the_rest() {
    let opts = SimOptions {
        event_delay: Duration::from_millis(100),
        answer_words: 300,
        ..SimOptions::default()
    };
    let mut env = start_env_with(opts, 1, |cfg, _| {
        cfg.server.shutdown_grace = Duration::from_millis(300);
    })
    .await;
    let resp = env.responses(&responses_body(true)).await;
    assert_eq!(resp.status(), 200);
    let reading = tokio::spawn(async move { resp.text().await.expect("body ends cleanly") });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let daemon = env.take_daemon();
    let addr = daemon.addr;
    let started = std::time::Instant::now();
    daemon.shutdown().await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(5),
        "grace honoured, then ended: {took:?}"
    );
    let body = reading.await.expect("reader");
    assert_eq!(
        event_types(&body).last().map(String::as_str),
        Some("response.failed"),
        "{body}"
    );
    assert!(body.contains("server_shutting_down"));
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "no longer accepting"
    );
    // The pool stopped after the server: the account flushed its usage to its file.
    let dir = env.state.config().data_dir.clone();
    let rec = std::fs::read_dir(dir.join("accounts"))
        .expect("data dir")
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .map(|e| {
            serde_json::from_slice::<rotor_actors::AccountRecord>(
                &std::fs::read(e.path()).expect("readable"),
            )
            .expect("an account record")
        })
        .next()
        .expect("an account file");
    assert_eq!(rec.usage.requests, 1, "usage flushed on shutdown");
    env.sim.clone().shutdown().await;
}

#[tokio::test]
async fn open_pool_refuses_a_public_address_and_sighup_reload_swaps_keys() {
    let sim = codex_rotor::sim::Simulator::start(SimOptions::default(), crate::support::loopback())
        .await
        .expect("sim");
    let dir = tempfile::tempdir().expect("dir");
    let (store, _, _) = codex_rotor::store::FileStore::open(dir.path()).expect("store");
    let mut open = crate::support::test_config(&sim, dir.path());
    open.keys.keys.clear();
    open.server.listen = "0.0.0.0:0".parse().expect("addr");
    let refused = codex_rotor::server::start(open, std::sync::Arc::new(store), Vec::new()).await;
    let err = refused
        .err()
        .expect("an open pool on 0.0.0.0 must not start");
    assert!(format!("{err:#}").contains("no client key"), "{err:#}");
    sim.shutdown().await;

    let env = start_env(1).await;
    let file = dir.path().join("reload.toml");
    let key_file = dir.path().join("rotated.key");
    std::fs::write(&key_file, "rotated-key-abcdef0123456789\n").expect("write key");
    let toml = format!(
        "data_dir = {:?}\n[upstream]\nbase_url = {:?}\ntoken_url = {:?}\n[[keys.keys]]\nname = \"rotated\"\nkey_file = {:?}\n",
        env.state.config().data_dir,
        env.sim.backend_url(),
        env.sim.token_url(),
        key_file
    );
    std::fs::write(&file, toml).expect("write config");
    codex_rotor::server::reload(&env.state, Some(&file)).await;
    let old = env.responses(&responses_body(false)).await;
    assert_eq!(old.status(), 401, "the old key is gone after reload");
    let new = env
        .http
        .post(env.url("/v1/responses"))
        .bearer_auth("rotated-key-abcdef0123456789")
        .json(&responses_body(false))
        .send()
        .await
        .expect("answer");
    assert_eq!(new.status(), 200);
    env.shutdown().await;
}

#[tokio::test]
async fn demo_serves_its_simulated_accounts_and_prints_the_setup() {
    let dir = tempfile::tempdir().expect("dir");
    let args = codex_rotor::demo::DemoArgs {
        listen: crate::support::loopback(),
        accounts: 3,
        pool_key: None,
        admin_key: Some("demo-admin-key-0123456789".into()),
        data_dir: Some(dir.path().to_path_buf()),
        sim_quota_tokens: None,
    };
    let demo = codex_rotor::demo::launch(args).await.expect("demo starts");
    let text = codex_rotor::demo::instructions(&demo);
    let addr = demo.daemon.addr.to_string();
    assert!(text.contains(&demo.pool_key) && text.contains(&addr));
    assert!(
        text.contains("wire_api = \"responses\"") && text.contains("ANTHROPIC_BASE_URL"),
        "{text}"
    );
    assert_eq!(demo.daemon.state.pool().accounts().await.len(), 3);
    let http = reqwest::Client::new();
    let resp = http
        .post(format!("http://{addr}/v1/responses"))
        .bearer_auth(&demo.pool_key)
        .json(&responses_body(true))
        .send()
        .await
        .expect("answer");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        event_types(&resp.text().await.expect("body"))
            .last()
            .map(String::as_str),
        Some("response.completed")
    );
    let pool = http
        .get(format!("http://{addr}/admin/pool"))
        .bearer_auth("demo-admin-key-0123456789")
        .send()
        .await
        .expect("answer");
    assert_eq!(pool.status(), 200);
    demo.daemon.shutdown().await;
    demo.sim.shutdown().await;
}
