//! What reaches the strict simulator (issue 17 items 2 and 5): a body the real backend would
//! refuse (string `input`, no `store`, unsupported parameters, `system` messages) is shaped and
//! served; the `response.completed` a Responses streaming client gets lists the answer's items
//! although upstream sent `output: []`. Each refused parameter is dropped on its own, and a
//! Responses-Lite turn goes through untouched (docs/fidelity.md §1, §3).

use crate::clients::wire::WireLog;
use crate::support::{TestEnv, event_types, start_env};
use serde_json::{Value, json};

/// The JSON events of an SSE body.
fn events(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect()
}

/// One account behind a [`WireLog`], which records every byte the daemon sends upstream.
async fn with_wire() -> (TestEnv, WireLog) {
    WireLog::behind(1).await
}

async fn streamed(env: &TestEnv, body: &Value) -> (u16, String) {
    let resp = env.responses(body).await;
    (resp.status().as_u16(), resp.text().await.expect("body"))
}

#[tokio::test]
async fn bodies_the_backend_would_refuse_are_shaped_and_served() {
    let env = start_env(1).await;
    let bodies = [
        json!({"model": "gpt-5.5", "input": "hi", "stream": true}),
        json!({"model": "gpt-5.5", "input": "hi", "stream": true, "store": true,
            "max_output_tokens": 64, "temperature": 0.2, "top_p": 1, "user": "u",
            "metadata": {"k": "v"}}),
        json!({"model": "gpt-5.5", "stream": true, "input": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi"}]}),
    ];
    for b in &bodies {
        let (status, text) = streamed(&env, b).await;
        assert_eq!(status, 200, "{b}: {text}");
        assert_eq!(
            event_types(&text).last().map(String::as_str),
            Some("response.completed"),
            "{b}"
        );
    }
    let sdk = json!({"model": "gpt-5.5", "input": "hi", "max_output_tokens": 64});
    let resp = env.responses(&sdk).await;
    assert_eq!(resp.status(), 200, "stream: false");
    let v: Value = resp.json().await.expect("json");
    assert_eq!(v["output"][0]["type"], "message", "{v}");
    env.shutdown().await;
}

#[tokio::test]
async fn a_streaming_clients_completed_event_lists_the_items() {
    let env = start_env(1).await;
    let body = json!({"model": "gpt-5.5", "stream": true, "store": false,
        "instructions": "You are Codex.",
        "input": [{"type": "message", "role": "user",
            "content": [{"type": "input_text", "text": "hello"}]}]});
    let (status, text) = streamed(&env, &body).await;
    assert_eq!(status, 200);
    let ev = events(&text);
    let deltas: String = ev
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .filter_map(|e| e["delta"].as_str())
        .collect();
    let completed = ev.last().expect("events");
    assert_eq!(completed["type"], "response.completed");
    assert_eq!(
        completed["response"]["output"][0]["content"][0]["text"],
        deltas.as_str(),
        "{completed}"
    );
    env.shutdown().await;
}

/// Each parameter the backend refuses (docs/fidelity.md §A), alone in an otherwise valid body,
/// is dropped on the way: the strict simulator serves every one (it answers `400 Unsupported
/// parameter: NAME` to a body that still has it), and none of them is on the wire to upstream.
/// A body without `instructions` reaches upstream with the default written in, and a `system`
/// message arrives as `developer`. The list is the backend's, written out here, not the
/// daemon's own constant, so a name dropped from the daemon's list fails this test.
#[tokio::test]
async fn each_parameter_the_backend_refuses_is_dropped_on_the_way() {
    let (env, wire) = with_wire().await;
    let refused = [
        "max_output_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "truncation",
        "user",
        "metadata",
        "safety_identifier",
        "context_management",
        "prompt_cache_retention",
        "context_window",
        "max_context_window",
        "truncation_policy",
    ];
    for p in refused {
        let mut b = json!({"model": "gpt-5.5", "stream": true, "store": false,
            "instructions": "You are Codex.",
            "input": [{"type": "message", "role": "user",
                "content": [{"type": "input_text", "text": "hi"}]}]});
        b[p] = json!(1);
        let (status, text) = streamed(&env, &b).await;
        assert_eq!(status, 200, "{p}: {text}");
    }
    let bare = json!({"model": "gpt-5.5", "stream": true, "input": [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]});
    let (status, text) = streamed(&env, &bare).await;
    assert_eq!(status, 200, "{text}");
    let sent = wire.requests_text();
    for p in refused {
        assert!(!sent.contains(&format!("\"{p}\":")), "{p} reached upstream");
    }
    assert!(
        sent.contains(&format!(
            "\"instructions\":\"{}\"",
            codex_rotor::internals::shape::DEFAULT_INSTRUCTIONS
        )),
        "instructions written in"
    );
    assert!(
        sent.contains(r#""role":"developer""#) && !sent.contains(r#""role":"system""#),
        "system became developer"
    );
    env.shutdown().await;
}

/// The strict simulator refuses a `system`-role `input` item (docs/fidelity.md §1, reported
/// only), so a served request proves the daemon's mapping on the wire, route by route: a
/// Responses `system` item and a `system` message inside Messages' list arrive as `developer`
/// items, Chat's system message and Messages' top-level `system` as `instructions`; upstream
/// never sees `"role":"system"`, and each text arrives.
#[tokio::test]
async fn a_system_message_of_every_route_is_served_by_the_strict_simulator() {
    let (env, wire) = with_wire().await;
    let cases = [
        (
            "/v1/responses",
            json!({"model": "gpt-5.5", "stream": true, "input": [
                {"type": "message", "role": "system", "content": "marker-responses"},
                {"role": "user", "content": "hi"}]}),
        ),
        (
            "/v1/chat/completions",
            json!({"model": "gpt-5.5", "messages": [
                {"role": "system", "content": "marker-chat"},
                {"role": "user", "content": "hi"}]}),
        ),
        (
            "/v1/messages",
            json!({"model": "gpt-5.5", "max_tokens": 64, "system": "marker-messages-top",
                "messages": [{"role": "user", "content": "hi"},
                    {"role": "system", "content": "marker-messages-late"}]}),
        ),
    ];
    for (path, body) in &cases {
        let resp = env
            .http
            .post(env.url(path))
            .bearer_auth(crate::support::POOL_KEY)
            .json(body)
            .send()
            .await
            .expect("daemon answers");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        assert_eq!(status, 200, "{path}: {text}");
    }
    let sent = wire.requests_text();
    assert!(
        !sent.contains(r#""role":"system""#),
        "a system item reached upstream"
    );
    for marker in [
        "marker-responses",
        "marker-chat",
        "marker-messages-top",
        "marker-messages-late",
    ] {
        assert!(sent.contains(marker), "{marker} did not reach upstream");
    }
    env.shutdown().await;
}

/// A Responses-Lite turn as Codex sends it (docs/fidelity.md §5): base instructions as a
/// `developer` item beside an `additional_tools` item, top-level `instructions` empty, and the
/// `x-openai-internal-codex-responses-lite` header. It reaches upstream as the same bytes, with
/// the header.
#[tokio::test]
async fn a_responses_lite_turn_reaches_upstream_as_sent() {
    let (env, wire) = with_wire().await;
    let body = json!({"model": "gpt-5.5", "stream": true, "store": false, "instructions": "",
        "include": [], "input": [
            {"type": "additional_tools", "role": "developer", "tools": []},
            {"type": "message", "role": "developer",
                "content": [{"type": "input_text", "text": "You are Codex."}]},
            {"type": "message", "role": "user",
                "content": [{"type": "input_text", "text": "hi"}]}]});
    let lite = [("x-openai-internal-codex-responses-lite", "true")];
    let resp = env.responses_with(&body, &lite).await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.expect("body");
    assert_eq!(
        event_types(&text).last().map(String::as_str),
        Some("response.completed")
    );
    let sent = wire.requests_text();
    let bytes = serde_json::to_string(&body).expect("json");
    assert!(sent.contains(&bytes), "the same bytes upstream: {sent}");
    assert!(
        sent.to_ascii_lowercase()
            .contains("x-openai-internal-codex-responses-lite: true"),
        "{sent}"
    );
    env.shutdown().await;
}

/// `body` compressed as the Codex CLI's built-in provider compresses it.
fn zstd(body: &[u8]) -> Vec<u8> {
    ruzstd::encoding::compress_to_vec(body, ruzstd::encoding::CompressionLevel::Fastest)
}

async fn post_encoded(env: &TestEnv, path: &str, encoding: &str, body: Vec<u8>) -> (u16, String) {
    let resp = env
        .http
        .post(env.url(path))
        .bearer_auth(crate::support::POOL_KEY)
        .header("content-type", "application/json")
        .header("content-encoding", encoding)
        .body(body)
        .send()
        .await
        .expect("daemon answers");
    (resp.status().as_u16(), resp.text().await.expect("body"))
}

#[tokio::test]
async fn a_zstd_body_is_decoded_before_it_goes_upstream() {
    let env = start_env(1).await;
    let body = json!({"model": "gpt-5.5", "stream": true, "store": false,
        "instructions": "You are Codex.",
        "input": [{"type": "message", "role": "user",
            "content": [{"type": "input_text", "text": "hello"}]}]});
    let packed = zstd(body.to_string().as_bytes());
    // The simulator cannot read a compressed body: only a decoded one is served.
    let account = env
        .sim
        .create_account(codex_rotor::sim::AccountSpec::default());
    let direct = env
        .http
        .post(format!("{}/codex/responses", env.sim.backend_url()))
        .bearer_auth(crate::sim::access_token(&account.auth_json))
        .header("content-encoding", "zstd")
        .body(packed.clone())
        .send()
        .await
        .expect("simulator answers");
    assert_eq!(direct.status(), 400);
    let (status, text) = post_encoded(&env, "/v1/responses", "zstd", packed).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        event_types(&text).last().map(String::as_str),
        Some("response.completed")
    );
    let messages = json!({"model": "claude-opus-4-8", "max_tokens": 64,
        "messages": [{"role": "user", "content": "hi"}]});
    let packed = zstd(messages.to_string().as_bytes());
    let (status, text) = post_encoded(&env, "/v1/messages", "zstd", packed).await;
    assert_eq!(status, 200, "{text}");
    env.shutdown().await;
}

#[tokio::test]
async fn a_zstd_bomb_is_413_and_a_broken_or_unknown_encoding_is_400() {
    let env =
        crate::support::start_env_with(codex_rotor::sim::SimOptions::default(), 1, |cfg, _| {
            cfg.server.max_body_bytes = 256 * 1024;
        })
        .await;
    let bomb = zstd(&vec![b' '; 8 << 20]);
    assert!(bomb.len() < 256 * 1024, "{}", bomb.len());
    let (status, text) = post_encoded(&env, "/v1/responses", "zstd", bomb).await;
    assert_eq!(status, 413, "{text}");
    let v: Value = serde_json::from_str(&text).expect("json");
    let message = v["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("decompressed") && message.contains("262144"),
        "{message}"
    );
    let (status, text) =
        post_encoded(&env, "/v1/responses", "zstd", b"{\"input\":[]}".to_vec()).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("not valid zstd"), "{text}");
    let (status, text) = post_encoded(&env, "/v1/chat/completions", "br", b"x".to_vec()).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("`br` is not supported"), "{text}");
    assert_eq!(env.upstream_requests(), 0, "nothing reached upstream");
    env.shutdown().await;
}

/// `service_tier` and `include` as the backend takes them (docs/fidelity.md §1): `fast` goes as
/// `priority`, a tier the backend is not known to take is dropped (the default tier), and an SDK
/// body without `include` asks for the encrypted reasoning its next turn must send back.
#[tokio::test]
async fn service_tier_and_include_reach_upstream_as_the_backend_takes_them() {
    let (env, wire) = with_wire().await;
    for (tier, sent) in [("fast", Some("priority")), ("scale", None), ("auto", None)] {
        let before = wire.requests_text().len();
        let b = json!({"model": "gpt-5.5", "input": "hi", "stream": true, "service_tier": tier});
        let (status, text) = streamed(&env, &b).await;
        assert_eq!(status, 200, "{tier}: {text}");
        let this = wire.requests_text()[before..].to_owned();
        match sent {
            Some(s) => assert!(
                this.contains(&format!("\"service_tier\":\"{s}\"")),
                "{this}"
            ),
            None => assert!(!this.contains("\"service_tier\""), "{tier} dropped: {this}"),
        }
        assert!(
            this.contains(r#""include":["reasoning.encrypted_content"]"#),
            "include written in: {this}"
        );
    }
    env.shutdown().await;
}
