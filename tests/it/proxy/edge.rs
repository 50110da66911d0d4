//! What a new user's first requests meet at the edge (issue 15 item 12): a request without
//! `model` gets `models.default_model` on all three protocols, and unknown paths and wrong
//! methods answer with a JSON error in the client's protocol (404, 405 with `Allow`). The 413
//! that names the limit, and the 401 that comes before it, are in `keyless.rs`.

use crate::support::{POOL_KEY, TestEnv, start_env_with};
use codex_rotor::sim::SimOptions;
use serde_json::{Value, json};

/// A daemon whose default model is `gpt-5.4` (not the first model of any list), in front of a
/// simulator that refuses models it does not know.
async fn env_with_default_model() -> TestEnv {
    let opts = SimOptions {
        reject_unknown_models: true,
        ..SimOptions::default()
    };
    start_env_with(opts, 1, |cfg, _| {
        cfg.models.default_model = "gpt-5.4".into()
    })
    .await
}

/// POSTs `body` to `path` with the pool key; returns status, headers and JSON body.
async fn post(env: &TestEnv, path: &str, body: &Value) -> (u16, reqwest::header::HeaderMap, Value) {
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
    let text = resp.text().await.expect("body");
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn a_request_without_model_gets_the_default_model_on_every_protocol() {
    let env = env_with_default_model().await;
    let input = json!([{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}]);
    for body in [
        json!({"input": input, "stream": false}),
        json!({"model": "", "input": input, "stream": false}),
        json!({"model": null, "input": input, "stream": true}),
    ] {
        let (status, headers, v) = post(&env, "/v1/responses", &body).await;
        assert_eq!(status, 200, "{body} -> {v}");
        assert_eq!(
            headers.get("openai-model").and_then(|h| h.to_str().ok()),
            Some("gpt-5.4"),
            "upstream served the default model for {body}"
        );
        if body["stream"] == false {
            assert_eq!(env.last_record().model.as_deref(), Some("gpt-5.4"));
        }
    }
    let chat = json!({"messages": [{"role": "user", "content": "hi"}]});
    let (status, _, v) = post(&env, "/v1/chat/completions", &chat).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["object"], "chat.completion", "{v}");
    assert_eq!(env.last_record().model.as_deref(), Some("gpt-5.4"));
    let messages = json!({"max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]});
    let (status, _, v) = post(&env, "/v1/messages", &messages).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["type"], "message", "{v}");
    assert_eq!(env.last_record().model.as_deref(), Some("gpt-5.4"));
    // A model of the wrong type is still the client's mistake, named.
    let (status, _, v) = post(
        &env,
        "/v1/chat/completions",
        &json!({"model": 5, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(
        (status, v["error"]["param"].as_str()),
        (400, Some("model")),
        "{v}"
    );
    assert_eq!(env.upstream_requests(), 5);
    env.shutdown().await;
}

#[tokio::test]
async fn unknown_paths_and_wrong_methods_answer_in_the_clients_protocol() {
    let env = start_env_with(SimOptions::default(), 1, |_, _| {}).await;
    let send = |method: reqwest::Method, path: &str| {
        env.http
            .request(method, env.url(path))
            .header("x-api-key", POOL_KEY)
            .send()
    };
    // OpenAI-shaped 404 off the known routes.
    for path in [
        "/v1/nothing",
        "/v1/responses/extra",
        // Not served: Codex compacts through /v1/responses with a custom provider
        // (docs/fidelity.md §3).
        "/v1/responses/compact",
        "/favicon.ico",
        "/v2/chat/completions",
    ] {
        let r = send(reqwest::Method::POST, path).await.expect("answer");
        assert_eq!(r.status(), 404, "{path}");
        let v: Value = r
            .json()
            .await
            .unwrap_or_else(|e| panic!("{path}: JSON 404 body ({e})"));
        assert_eq!(v["error"]["type"], "invalid_request_error", "{path}: {v}");
        assert_eq!(v["error"]["code"], "not_found", "{path}: {v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(path)),
            "{path}: the message names the path: {v}"
        );
    }
    // Anthropic-shaped under /v1/messages.
    let r = send(reqwest::Method::POST, "/v1/messages/batches")
        .await
        .expect("answer");
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.expect("JSON 404 body");
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["type"], "not_found_error", "{v}");
    // Wrong methods: 405 with Allow, in the path's protocol.
    for (path, allow, anthropic) in [
        ("/v1/responses", "POST", false),
        ("/v1/chat/completions", "POST", false),
        ("/v1/models", "GET,HEAD", false),
        ("/v1/messages", "POST", true),
        ("/v1/messages/count_tokens", "POST", true),
    ] {
        let method = if allow == "POST" {
            reqwest::Method::GET
        } else {
            reqwest::Method::DELETE
        };
        let r = send(method, path).await.expect("answer");
        assert_eq!(r.status(), 405, "{path}");
        let got = r
            .headers()
            .get("allow")
            .and_then(|h| h.to_str().ok())
            .map(|a| a.replace(' ', ""));
        assert_eq!(got.as_deref(), Some(allow), "{path}: Allow header");
        let v: Value = r
            .json()
            .await
            .unwrap_or_else(|e| panic!("{path}: JSON 405 body ({e})"));
        if anthropic {
            assert_eq!(v["type"], "error", "{path}: {v}");
            assert_eq!(v["error"]["type"], "invalid_request_error", "{path}: {v}");
        } else {
            assert_eq!(v["error"]["code"], "method_not_allowed", "{path}: {v}");
        }
    }
    env.shutdown().await;
}
