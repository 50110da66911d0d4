//! The model routes as clients meet them (issue 17 item 6): Codex's catalogue request
//! (`?client_version=…`) gets upstream's `{"models":[…]}` with an ETag, fetched once and
//! served from the cache after (304 to a matching `If-None-Match`, and still served while
//! upstream's catalogue endpoint fails); other clients get the OpenAI list; `GET
//! /v1/models/{id}` answers a served model and 404 `model_not_found` otherwise; a WebSocket
//! upgrade of the Responses path gets 426, which makes the Codex CLI fall back to HTTP at once.

use crate::support::{POOL_KEY, TestEnv, start_env};
use codex_rotor::sim::{FaultKind, FaultSpec, FaultTarget};
use serde_json::Value;

fn fetches(env: &TestEnv) -> u64 {
    env.sim_ids
        .iter()
        .map(|id| env.sim.counters(id).model_fetches)
        .sum()
}

async fn get(env: &TestEnv, path: &str, extra: &[(&str, &str)]) -> reqwest::Response {
    let mut req = env.http.get(env.url(path)).bearer_auth(POOL_KEY);
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    req.send().await.expect("daemon answers")
}

#[tokio::test]
async fn codex_gets_upstreams_catalogue_with_an_etag_fetched_once() {
    let env = start_env(2).await;
    let first = get(&env, "/v1/models?client_version=0.169.0", &[]).await;
    assert_eq!(first.status(), 200);
    let etag = first
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .expect("an ETag");
    assert_eq!(
        first
            .headers()
            .get("x-models-etag")
            .and_then(|v| v.to_str().ok()),
        Some(etag.as_str()),
        "Codex reads x-models-etag"
    );
    let v: Value = first.json().await.expect("json");
    let slugs: Vec<&str> = v["models"]
        .as_array()
        .expect("Codex's shape: {\"models\":[…]}")
        .iter()
        .filter_map(|m| m["slug"].as_str())
        .collect();
    assert!(
        slugs.contains(&"gpt-5.3-codex"),
        "upstream's catalogue, not the config list: {slugs:?}"
    );
    assert_eq!(fetches(&env), 1);

    // Revalidation costs nothing upstream.
    let again = get(
        &env,
        "/models?client_version=0.169.0",
        &[("if-none-match", &etag)],
    )
    .await;
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()["etag"], etag.as_str());
    // While the catalogue is fresh, a failing upstream endpoint is never asked.
    env.sim.inject(FaultSpec {
        target: FaultTarget::Models,
        ..FaultSpec::always(FaultKind::ServerError)
    });
    let cached = get(&env, "/v1/models?client_version=0.169.0", &[]).await;
    assert_eq!(cached.status(), 200);
    let body: Value = cached.json().await.expect("json");
    assert_eq!(body, v, "the same bytes");
    assert_eq!(fetches(&env), 1, "served from the cache");
    // No request counted against an account's quota.
    assert_eq!(env.upstream_requests(), 0);
    env.shutdown().await;
}

#[tokio::test]
async fn a_catalogue_upstream_refuses_is_an_error_codex_falls_back_from() {
    let env = start_env(1).await;
    env.sim.inject(FaultSpec {
        target: FaultTarget::Models,
        ..FaultSpec::always(FaultKind::ServerError)
    });
    let r = get(&env, "/v1/models?client_version=0.169.0", &[]).await;
    assert_eq!(r.status(), 502);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["error"]["code"], "catalogue_unavailable", "{v}");
    // The next request tries again (nothing bad was cached).
    env.sim.clear_faults();
    let r = get(&env, "/v1/models?client_version=0.169.0", &[]).await;
    assert_eq!(r.status(), 200);
    env.shutdown().await;
}

#[tokio::test]
async fn other_clients_get_the_openai_list_and_single_models() {
    let env = start_env(1).await;
    let list: Value = get(&env, "/v1/models", &[])
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(list["object"], "list");
    let ids: Vec<&str> = list["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(ids, ["gpt-5.5", "gpt-5.4"], "models.list");
    assert_eq!(fetches(&env), 0, "the OpenAI list needs no upstream call");

    let one = get(&env, "/v1/models/gpt-5.4", &[]).await;
    assert_eq!(one.status(), 200);
    let m: Value = one.json().await.expect("json");
    assert_eq!(m["id"], "gpt-5.4");
    assert_eq!(m["object"], "model");
    // An alias is served too (claude-* → the default model).
    assert_eq!(
        get(&env, "/v1/models/claude-sonnet-4-5", &[])
            .await
            .status(),
        200
    );
    let missing = get(&env, "/v1/models/gpt-1", &[]).await;
    assert_eq!(missing.status(), 404);
    let v: Value = missing.json().await.expect("json");
    assert_eq!(v["error"]["code"], "model_not_found", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("gpt-1")),
        "{v}"
    );
    // Without a key: 401, as every model route.
    let keyless = env
        .http
        .get(env.url("/v1/models/gpt-5.4"))
        .send()
        .await
        .expect("answer");
    assert_eq!(keyless.status(), 401);
    env.shutdown().await;
}

#[tokio::test]
async fn a_websocket_upgrade_of_the_responses_path_gets_426_and_a_plain_get_405() {
    let env = start_env(1).await;
    for path in ["/v1/responses", "/responses"] {
        let r = get(
            &env,
            path,
            &[
                ("connection", "Upgrade"),
                ("upgrade", "websocket"),
                ("sec-websocket-version", "13"),
                ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
                ("openai-beta", "responses_websockets=2026-02-06"),
            ],
        )
        .await;
        assert_eq!(r.status(), 426, "{path}");
        let v: Value = r.json().await.expect("json");
        assert_eq!(v["error"]["code"], "websocket_not_supported", "{v}");
        let plain = get(&env, path, &[]).await;
        assert_eq!(plain.status(), 405, "{path}");
    }
    assert_eq!(env.upstream_requests(), 0);
    env.shutdown().await;
}
