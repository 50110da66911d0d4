//! The `version` header against a model that requires a newer Codex (docs/fidelity.md §3): the
//! strict simulator refuses a missing or older `version` for a model with a minimum, as the
//! real backend refuses new models to old identities. The daemon presents
//! `upstream.client_version`; at or above the minimum the turn is served, below it the client
//! gets the 400 as upstream sent it and no account is penalised (the identity is the daemon's,
//! not the account's).

use crate::support::{event_types, responses_body, start_env_with};
use codex_rotor::config::upstream::CODEX_VERSION;
use codex_rotor::sim::SimOptions;
use serde_json::Value;

/// A simulator where `gpt-5.5` requires Codex `min`.
fn requiring(min: &str) -> SimOptions {
    SimOptions {
        min_client_version: vec![("gpt-5.5".into(), min.into())],
        ..SimOptions::default()
    }
}

#[tokio::test]
async fn a_model_requiring_at_most_the_presented_version_is_served() {
    // The default `upstream.client_version` is the pinned release; a minimum equal to it passes.
    let env = start_env_with(requiring(CODEX_VERSION), 1, |_, _| {}).await;
    let resp = env.responses(&responses_body(true)).await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.expect("body");
    assert_eq!(
        event_types(&text).last().map(String::as_str),
        Some("response.completed"),
        "{text}"
    );
    env.shutdown().await;
}

#[tokio::test]
async fn an_older_configured_version_gets_the_400_passed_through_and_penalises_nobody() {
    let env = start_env_with(requiring(CODEX_VERSION), 2, |cfg, _| {
        cfg.upstream.client_version = "0.100.0".into();
    })
    .await;
    let resp = env.responses(&responses_body(true)).await;
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.expect("json");
    let detail = v["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("'gpt-5.5' model requires a newer version of Codex"),
        "upstream body passed through: {v}"
    );
    assert_eq!(env.upstream_requests(), 1, "not retried, not failed over");
    for a in env.views().await {
        assert_eq!(a.derived_status, "active", "{}", a.id);
        assert_eq!(a.usage.failures, 0, "{}", a.id);
    }
    // A model without a minimum is still served to the same identity.
    let mut other = responses_body(true);
    other["model"] = "gpt-5.4".into();
    assert_eq!(env.responses(&other).await.status(), 200);
    env.shutdown().await;
}
