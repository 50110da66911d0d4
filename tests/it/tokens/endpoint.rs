//! The token endpoint client and the login flow against real servers: the refresh request is
//! exactly Codex's (docs/protocol.md §7, fixture `codex_refresh_proactive_expiry.jsonl`), refresh
//! tokens rotate and a reused one is refused permanently, every failure lands in the right
//! class, and an account can be added by the PKCE login flow. `tests/fixtures/
//! codex_refresh_request.jsonl` is the first line of that shared fixture (a live capture).

use super::{rt_of, sim};
use codex_rotor::HttpRefresher;
use codex_rotor::internals::login::{
    DEFAULT_REDIRECT_URI, LoginError, LoginSessions, LoginSettings,
};
use codex_rotor::sim::{AccountSpec, FaultKind, FaultSpec, FaultTarget};
use rotor_actors::jwt::Claims;
use rotor_actors::{RefreshError, RefreshReason, TokenRefresher};
use serde_json::Value;
use std::sync::{Arc, Mutex};

/// One request as a capture server saw it.
#[derive(Clone, Debug)]
struct Captured {
    headers: Vec<(String, String)>,
    body: Value,
}

/// A server answering every request with `status`/`body` and recording what it got.
async fn capture_server(status: u16, body: &'static str) -> (String, Arc<Mutex<Vec<Captured>>>) {
    let seen: Arc<Mutex<Vec<Captured>>> = Arc::default();
    let seen2 = seen.clone();
    let app = axum::Router::new().fallback(
        move |headers: axum::http::HeaderMap, bytes: axum::body::Bytes| {
            let seen = seen2.clone();
            async move {
                let headers = headers
                    .iter()
                    .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                    .collect();
                let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                seen.lock().expect("lock").push(Captured {
                    headers,
                    body: json,
                });
                (
                    axum::http::StatusCode::from_u16(status).expect("status"),
                    body,
                )
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!(
        "http://{}/oauth/token",
        listener.local_addr().expect("addr")
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

#[tokio::test]
async fn refresh_request_is_exactly_what_codex_sends() {
    let fixture = include_str!("../../fixtures/codex_refresh_request.jsonl");
    let recorded: Value =
        serde_json::from_str(fixture.lines().next().expect("a line")).expect("json");
    let (url, seen) = capture_server(200, r#"{"access_token":"a","refresh_token":"rt_b"}"#).await;
    let refresher = HttpRefresher::new(reqwest::Client::new(), url);
    let rt = recorded["body"]["refresh_token"]
        .as_str()
        .expect("rt")
        .to_owned();
    let got = refresher
        .refresh(rt, RefreshReason::ProactiveExpiry)
        .await
        .expect("refresh succeeds");
    assert_eq!(got.refresh_token.as_deref(), Some("rt_b"));

    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].body, recorded["body"],
        "same JSON body as Codex, field for field"
    );
    let header = |name: &str| {
        seen[0]
            .headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    for name in ["content-type", "originator", "user-agent", "accept"] {
        assert_eq!(
            header(name).as_deref(),
            recorded["headers"][name].as_str(),
            "header {name}"
        );
    }
    assert_eq!(
        header("authorization"),
        None,
        "no Authorization on the token endpoint"
    );
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_reused_one_is_permanently_refused() {
    let sim = sim().await;
    let acct = sim.create_account(AccountSpec::default());
    let refresher = HttpRefresher::new(reqwest::Client::new(), sim.token_url());
    let first = rt_of(&acct.auth_json);

    let new = refresher
        .refresh(first.clone(), RefreshReason::ProactiveExpiry)
        .await
        .expect("rotates");
    let second = new.refresh_token.clone().expect("a new refresh token");
    assert_ne!(second, first);
    let claims = Claims::decode(new.access_token.as_deref().expect("access")).expect("a JWT");
    assert_eq!(claims.chatgpt_account_id.as_deref(), Some(acct.id.as_str()));
    assert!(claims.exp.is_some());

    match refresher
        .refresh(first, RefreshReason::UnauthorizedRecovery)
        .await
    {
        Err(RefreshError::Permanent { code, .. }) => assert_eq!(code, "refresh_token_reused"),
        other => panic!("reuse must be permanent, got {other:?}"),
    }
    let c = sim.counters(&acct.id);
    assert_eq!((c.refreshes, c.refresh_reused), (1, 1));
    // The newest token still works: reuse of an old one does not burn the family here.
    refresher
        .refresh(second, RefreshReason::ProactiveExpiry)
        .await
        .expect("newest still valid");
    sim.shutdown().await;
}

#[tokio::test]
async fn every_failure_lands_in_its_class() {
    let sim = sim().await;
    let refresher = HttpRefresher::new(reqwest::Client::new(), sim.token_url());
    let refresh = |rt: String| refresher.refresh(rt, RefreshReason::ProactiveExpiry);

    match refresh("rt_never_issued".into()).await {
        Err(RefreshError::Permanent { code, .. }) => assert_eq!(code, "refresh_token_invalidated"),
        other => panic!("unknown token: {other:?}"),
    }
    let gone = sim.create_account(AccountSpec::default());
    sim.deactivate(&gone.id);
    assert!(matches!(
        refresh(rt_of(&gone.auth_json)).await,
        Err(RefreshError::Deactivated(_))
    ));
    let banned = sim.create_account(AccountSpec::default());
    sim.ban(&banned.id);
    assert!(matches!(
        refresh(rt_of(&banned.auth_json)).await,
        Err(RefreshError::Deactivated(_))
    ));

    let ok = sim.create_account(AccountSpec::default());
    for kind in [
        FaultKind::ServerError,
        FaultKind::Overloaded,
        FaultKind::Reset,
    ] {
        sim.inject(
            FaultSpec::always(kind.clone())
                .on(FaultTarget::Token)
                .times(1),
        );
        match refresh(rt_of(&ok.auth_json)).await {
            Err(RefreshError::Transient(_)) => {}
            other => panic!("{kind:?} must be transient, got {other:?}"),
        }
    }
    assert_eq!(
        sim.counters(&ok.id).refreshes,
        0,
        "no fault consumed the refresh token"
    );
    refresh(rt_of(&ok.auth_json))
        .await
        .expect("after the faults the same token still works");

    let (url, _) = capture_server(401, "").await;
    let r401 = HttpRefresher::new(reqwest::Client::new(), url);
    assert!(matches!(
        r401.refresh("rt_x".into(), RefreshReason::ProactiveExpiry)
            .await,
        Err(RefreshError::Permanent { .. })
    ));
    let closed = HttpRefresher::new(reqwest::Client::new(), "http://127.0.0.1:1/oauth/token");
    assert!(matches!(
        closed
            .refresh("rt_x".into(), RefreshReason::ProactiveExpiry)
            .await,
        Err(RefreshError::Transient(_))
    ));
    sim.shutdown().await;
}

#[tokio::test]
async fn pkce_login_adds_an_account_and_a_replayed_callback_is_refused() {
    let sim = sim().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let logins = LoginSessions::new(
        client.clone(),
        LoginSettings::for_token_url(&sim.token_url()),
    );
    let started = logins.start(0).expect("start");
    assert!(
        started
            .authorize_url
            .starts_with(&format!("{}/oauth/authorize?", sim.base_url()))
    );

    // The operator's browser: the simulator approves at once and redirects to the callback.
    let resp = client
        .get(&started.authorize_url)
        .send()
        .await
        .expect("authorize");
    assert_eq!(resp.status(), 302);
    let callback = resp.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    assert!(callback.starts_with(DEFAULT_REDIRECT_URI));

    let tokens = logins
        .complete_from_callback(&callback, 1)
        .await
        .expect("login completes");
    assert!(
        tokens
            .refresh_token
            .as_deref()
            .is_some_and(|rt| rt.starts_with("rt_"))
    );
    let claims = Claims::decode(&tokens.access_token).expect("jwt");
    assert!(claims.chatgpt_account_id.is_some());
    assert!(matches!(
        logins.complete_from_callback(&callback, 2).await,
        Err(LoginError::UnknownState)
    ));

    // The tokens become an account through the same import path as everything else.
    let recs = codex_rotor::login_record(&tokens, 1).expect("a record");
    assert_eq!(recs.identity.chatgpt_account_id, claims.chatgpt_account_id);
    sim.shutdown().await;
}

#[tokio::test]
async fn the_dashboard_login_routes_add_an_account_to_the_running_pool() {
    let sim = sim().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = crate::support::test_config(&sim, dir.path());
    let (store, records, _) = codex_rotor::store::FileStore::open(dir.path()).expect("store");
    let daemon = codex_rotor::server::start(cfg, Arc::new(store), records)
        .await
        .expect("daemon");
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    // The daemon's own router (`router::build`) serves the login routes.
    let base = format!("http://{}", daemon.addr);

    let anonymous = client
        .post(format!("{base}/admin/accounts/login"))
        .send()
        .await
        .expect("start");
    assert_eq!(
        anonymous.status(),
        401,
        "starting a login is an admin action"
    );
    let started: Value = client
        .post(format!("{base}/admin/accounts/login"))
        .bearer_auth(crate::support::ADMIN_KEY)
        .send()
        .await
        .expect("start")
        .json()
        .await
        .expect("json");
    let url = started["authorize_url"].as_str().expect("authorize_url");
    assert!(
        url.starts_with(&format!("{}/oauth/authorize?", sim.base_url())),
        "follows the configured auth server"
    );
    let landed = client.get(url).send().await.expect("authorize");
    let location = landed.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    let query = location.split_once('?').expect("query").1.to_owned();

    let done = client
        .get(format!("{base}/auth/callback?{query}"))
        .send()
        .await
        .expect("callback");
    assert_eq!(done.status(), 200);
    assert!(done.text().await.expect("body").contains("Account added"));
    let accounts = daemon.state.pool().accounts().await;
    assert_eq!(
        accounts.len(),
        1,
        "the login added one account to the running pool"
    );
    assert!(
        accounts[0]
            .identity
            .email
            .as_deref()
            .is_some_and(|e| e.ends_with("@sim.example"))
    );

    let replay = client
        .post(format!("{base}/admin/accounts/login/complete"))
        .bearer_auth(crate::support::ADMIN_KEY)
        .json(&serde_json::json!({ "callback_url": location }))
        .send()
        .await
        .expect("replay");
    assert_eq!(replay.status(), 400, "a code is exchanged at most once");
    assert_eq!(daemon.state.pool().accounts().await.len(), 1);
    daemon.shutdown().await;
    sim.shutdown().await;
}
