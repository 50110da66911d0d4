//! `server::start` hands the pool the real effects: the OAuth refresher with the configured
//! `refresh.client_id`, wrapped so `codex_rotor_token_refreshes_total` counts every refresh;
//! `limits` reach the key store at start and again on SIGHUP reload; the pool runs with
//! `Config::pool_config()`.

use crate::support::{POOL_KEY, responses_body, start_env_with};
use axum::extract::State;
use codex_rotor::sim::SimOptions;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// A token endpoint relaying to `target` (set once the simulator runs) that records every
/// request body it relays.
pub struct TokenRelay {
    /// `http://addr/oauth/token`.
    pub url: String,
    /// Where to relay (the simulator's token URL).
    pub target: Arc<OnceLock<String>>,
    /// Bodies received so far.
    pub seen: Arc<Mutex<Vec<String>>>,
}

impl TokenRelay {
    /// Binds the relay on 127.0.0.1:0.
    pub async fn start() -> TokenRelay {
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let target: Arc<OnceLock<String>> = Arc::default();
        let state = (target.clone(), seen.clone());
        let app = axum::Router::new()
            .route("/oauth/token", axum::routing::post(relay))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        TokenRelay {
            url: format!("http://{addr}/oauth/token"),
            target,
            seen,
        }
    }
}

/// The relay's state: where to relay, what was seen.
type RelayState = (Arc<OnceLock<String>>, Arc<Mutex<Vec<String>>>);

/// Records the body and relays it to the simulator.
async fn relay(State((target, seen)): State<RelayState>, body: String) -> axum::response::Response {
    use axum::response::IntoResponse;
    seen.lock().expect("lock").push(body.clone());
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let answer = client
        .post(target.get().expect("target set"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("simulator answers");
    let status = axum::http::StatusCode::from_u16(answer.status().as_u16()).expect("status");
    let bytes = answer.bytes().await.expect("body");
    (status, [("content-type", "application/json")], bytes).into_response()
}

/// The value of an unlabelled or labelled sample line in a Prometheus text body.
fn sample(body: &str, line_start: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(line_start)?.trim().parse().ok())
}

#[tokio::test]
async fn a_refresh_uses_the_configured_client_id_and_is_counted_in_metrics() {
    let token = TokenRelay::start().await;
    let env = start_env_with(SimOptions::default(), 1, |cfg, sim| {
        cfg.refresh.client_id = "app_wiring_client_id".into();
        let _ = token.target.set(sim.token_url());
        cfg.upstream.token_url = token.url.clone();
    })
    .await;
    let before = env
        .http
        .get(env.url("/metrics"))
        .send()
        .await
        .expect("metrics");
    let before = before.text().await.expect("text");
    assert_eq!(
        sample(&before, "codex_rotor_token_refreshes_total{outcome=\"ok\"}"),
        None,
        "no refresh yet:\n{before}"
    );

    env.sim.expire_access_token(&env.sim_ids[0]);
    let _ = env.responses(&responses_body(false)).await;
    env.eventually("a refresh was counted", || async {
        let text = env
            .http
            .get(env.url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        sample(&text, "codex_rotor_token_refreshes_total{outcome=\"ok\"}") == Some(1.0)
    })
    .await;
    let bodies = token.seen.lock().expect("lock").clone();
    assert_eq!(bodies.len(), 1, "exactly one refresh call: {bodies:?}");
    let body: serde_json::Value = serde_json::from_str(&bodies[0]).expect("json body");
    assert_eq!(body["client_id"], "app_wiring_client_id");
    assert_eq!(body["grant_type"], "refresh_token");
    env.shutdown().await;
}

/// A simulator whose answers take about `words × delay` to stream.
fn slow_stream() -> SimOptions {
    SimOptions {
        event_delay: Duration::from_millis(60),
        answer_words: 30,
        ..SimOptions::default()
    }
}

#[tokio::test]
async fn daemon_wide_limits_apply_at_start_and_change_on_reload() {
    let env = start_env_with(slow_stream(), 2, |cfg, _| {
        cfg.limits.max_concurrent_requests = 1;
    })
    .await;
    // The first stream holds the one daemon-wide slot while it runs.
    let first = env.responses(&responses_body(true)).await;
    assert_eq!(first.status(), 200);
    let refused = env.responses(&responses_body(true)).await;
    // 503, not 429, on /v1/responses: the answer the Codex CLI retries (issue 17 item 6).
    assert_eq!(
        refused.status(),
        503,
        "limits.max_concurrent_requests = 1 applies"
    );
    assert!(refused.headers().contains_key("retry-after"));

    // SIGHUP reload of a file that raises the limit: the next request is admitted while the first
    // stream still runs.
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("codex-rotor.toml");
    let (pool_key, admin_key) = (dir.path().join("pool.key"), dir.path().join("admin.key"));
    std::fs::write(&pool_key, POOL_KEY).expect("key written");
    std::fs::write(&admin_key, crate::support::ADMIN_KEY).expect("key written");
    let cfg = env.state.config();
    std::fs::write(
        &path,
        format!(
            "data_dir = {:?}\n[upstream]\nbase_url = {:?}\ntoken_url = {:?}\n\
             [[keys.keys]]\nname = \"test\"\nkey_file = {:?}\n[admin]\nkey_file = {:?}\n\
             [limits]\nmax_concurrent_requests = 4\n",
            cfg.data_dir, cfg.upstream.base_url, cfg.upstream.token_url, pool_key, admin_key,
        ),
    )
    .expect("config written");
    codex_rotor::server::reload(&env.state, Some(&path)).await;
    assert_eq!(env.state.config().limits.max_concurrent_requests, 4);
    let admitted = env.responses(&responses_body(true)).await;
    assert_eq!(admitted.status(), 200, "the reloaded limit applies");
    let (a, b) = (first.text().await, admitted.text().await);
    assert!(a.expect("first body").contains("response.completed"));
    assert!(b.expect("second body").contains("response.completed"));
    env.shutdown().await;
}

#[tokio::test]
async fn the_pool_runs_with_the_configured_pool_section() {
    // Only "pro" accounts may serve gpt-5.5; the simulator's accounts are "plus".
    let env = start_env_with(SimOptions::default(), 1, |cfg, _| {
        cfg.pool
            .plan_routes
            .insert("gpt-5.5".into(), vec!["pro".into()]);
    })
    .await;
    let refused = env.responses(&responses_body(false)).await;
    assert_ne!(refused.status(), 200, "plan routing from [pool] applies");
    assert_eq!(env.upstream_requests(), 0, "no plus account was used");
    let mut other = responses_body(false);
    other["model"] = "gpt-5.4".into();
    let served = env.responses(&other).await;
    assert_eq!(
        served.status(),
        200,
        "models outside the route use any plan"
    );
    env.shutdown().await;
}
