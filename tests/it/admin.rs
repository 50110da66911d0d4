//! The admin API against a real daemon and the simulator: its own key (never the client key),
//! dashboard sessions, the recent-requests ring, health and readiness. Per-account facts,
//! actions, import/export and the no-token check are in `admin/accounts.rs`; the rig that
//! starts simulator + daemon is `admin/rig.rs`.

mod accounts;
pub mod cluster;
pub mod rig;
mod throttle;

use reqwest::Method;
use rig::{ADMIN_KEY, CLIENT_KEY, Rig};
use serde_json::{Value, json};

#[tokio::test]
async fn the_admin_api_takes_only_the_admin_key() {
    let rig = Rig::start().await;
    let url = rig.url("/admin/accounts");
    let plain = rig.http.get(&url).send().await.expect("send");
    assert_eq!(plain.status(), 401);
    let body: Value = plain.json().await.expect("json");
    assert_eq!(body["error"]["type"], "unauthorized");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("admin key"),
        "{body}"
    );
    for wrong in [CLIENT_KEY, "nope", ""] {
        let r = rig
            .http
            .get(&url)
            .bearer_auth(wrong)
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 401, "key {wrong:?} must not open the admin API");
    }
    let (status, body) = rig.admin(Method::GET, "/admin/accounts", None).await;
    assert_eq!((status, &body["count"]), (200, &json!(0)));
    let (status, body) = rig.admin(Method::GET, "/admin/nothing-here", None).await;
    assert_eq!(
        (status, body["error"]["type"].as_str()),
        (404, Some("not_found"))
    );
    let (status, body) = rig.admin(Method::PUT, "/admin/pool", None).await;
    assert_eq!(
        (status, body["error"]["type"].as_str()),
        (405, Some("method_not_allowed")),
        "{body}"
    );
    rig.shutdown().await;
}

#[tokio::test]
async fn the_dashboard_session_is_a_random_cookie_not_the_key() {
    let rig = Rig::start().await;
    let login = |key: &str| {
        rig.http
            .post(rig.url("/login"))
            .json(&json!({ "key": key }))
            .send()
    };
    assert_eq!(login(CLIENT_KEY).await.expect("send").status(), 401);
    let ok = login(ADMIN_KEY).await.expect("send");
    assert_eq!(ok.status(), 200);
    let cookie = ok
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("a session cookie")
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(
        !cookie.contains(ADMIN_KEY),
        "the cookie must not carry the key"
    );
    let session = cookie.split(';').next().expect("pair").to_owned();
    assert!(session.len() > 64, "random id: {session}");
    let with_cookie = |m: Method, path: &str| {
        rig.http
            .request(m, rig.url(path))
            .header("cookie", session.clone())
    };
    let r = with_cookie(Method::GET, "/admin/pool")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    // A state change without the CSRF header is refused, with it accepted.
    let body = json!({ "strategy": "round_robin" });
    let r = with_cookie(Method::PUT, "/admin/strategy")
        .json(&body)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 403);
    let r = with_cookie(Method::PUT, "/admin/strategy")
        .header("x-rotor-csrf", "1")
        .json(&body)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    assert_eq!(rig.get("/admin/strategy").await["strategy"], "round_robin");
    // After logout the same cookie opens nothing.
    let r = with_cookie(Method::POST, "/logout")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let r = with_cookie(Method::GET, "/admin/pool")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);
    rig.shutdown().await;
}

#[tokio::test]
async fn recent_requests_list_the_newest_first_with_their_facts() {
    let rig = Rig::start().await;
    rig.add_account(Default::default()).await;
    for model in ["gpt-5.4", "gpt-5.5", "gpt-5.4-mini"] {
        assert_eq!(rig.respond(model).await.0, 200);
    }
    let v = rig.get("/admin/requests?limit=2").await;
    let list = v["requests"].as_array().expect("list");
    assert_eq!(list.len(), 2);
    assert_eq!(
        (list[0]["model"].as_str(), list[1]["model"].as_str()),
        (Some("gpt-5.4-mini"), Some("gpt-5.5"))
    );
    let r = &list[0];
    assert_eq!(
        (
            r["client_key"].as_str(),
            r["route"].as_str(),
            r["status"].as_u64()
        ),
        (Some("ci"), Some("responses"), Some(200))
    );
    assert!(
        r["account_id"].is_string() && r["ttfb_ms"].is_u64() && r["duration_ms"].is_u64(),
        "{r}"
    );
    assert!(r["usage"]["output_tokens"].as_u64() > Some(0), "{r}");
    assert_eq!(r["failovers"], 0);
    assert_eq!(rig.get("/admin/requests").await["count"], 3);
    rig.shutdown().await;
}

#[tokio::test]
async fn readiness_follows_the_pool_and_says_why() {
    let rig = Rig::start().await;
    let r = rig
        .http
        .get(rig.url("/healthz"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let r = rig.http.get(rig.url("/readyz")).send().await.expect("send");
    assert_eq!(r.status(), 503);
    let v: Value = r.json().await.expect("json");
    assert!(
        v["reason"].as_str().unwrap_or("").contains("no accounts"),
        "{v}"
    );
    let (created, id) = rig.add_account(Default::default()).await;
    let r = rig.http.get(rig.url("/readyz")).send().await.expect("send");
    assert_eq!(r.status(), 200);
    rig.sim.set_usage(&created.id, 100.0, 20.0);
    rig.probe_until(&id, |v| v["derived_status"] == "rate_limited")
        .await;
    let r = rig.http.get(rig.url("/readyz")).send().await.expect("send");
    assert_eq!(r.status(), 503);
    let v: Value = r.json().await.expect("json");
    assert!(
        v["reason"].as_str().unwrap_or("").contains("rate limited"),
        "{v}"
    );
    assert!(v["soonest_reset_at"].is_i64(), "{v}");
    rig.shutdown().await;
}

#[tokio::test]
async fn without_an_admin_key_the_api_is_open_only_on_loopback_and_can_be_switched_off() {
    let open = Rig::start_with(Default::default(), |c| c.admin.key = None).await;
    let r = open
        .http
        .get(open.url("/admin/pool"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200, "no key + loopback = open");
    open.shutdown().await;
    let off = Rig::start_with(Default::default(), |c| c.admin.enabled = false).await;
    let r = off
        .http
        .get(off.url("/admin/pool"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 404, "admin.enabled = false hides the API");
    let r = off
        .http
        .post(off.url("/login"))
        .json(&json!({ "key": ADMIN_KEY }))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 404);
    off.shutdown().await;
}

#[tokio::test]
async fn the_dashboard_and_admin_api_work_under_a_path_prefix() {
    let rig = Rig::start_with(Default::default(), |c| {
        c.server.path_prefix = "/rotor".into()
    })
    .await;
    let mut served = Vec::new();
    for page in ["/rotor", "/rotor/"] {
        let r = rig.http.get(rig.url(page)).send().await.expect("send");
        if r.status() == 404 {
            continue; // the router decides which of the two spellings it serves
        }
        served.push(page);
        assert_eq!(r.status(), 200, "{page}");
        let html = r.text().await.expect("html");
        assert_eq!(
            html.contains("<base href=\"/rotor/\">"),
            !page.ends_with('/'),
            "{page}"
        );
    }
    println!("dashboard served at {served:?}");
    assert!(
        served.contains(&"/rotor"),
        "the prefix itself serves the page"
    );
    let r = rig
        .http
        .get(rig.url("/rotor/assets/app.js"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let r = rig
        .http
        .get(rig.url("/rotor/admin/live"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    rig.shutdown().await;
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_daemon_refuses_to_start_without_an_admin_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = codex_rotor::config::Config {
        data_dir: dir.path().to_path_buf(),
        ..Default::default()
    };
    cfg.server.listen = "127.0.0.1:0".parse().expect("addr");
    cfg.server.trust_forwarded_headers = true;
    cfg.upstream.base_url = "http://127.0.0.1:1/backend-api".into();
    cfg.keys.keys = vec![codex_rotor::config::ClientKeyConfig {
        name: "ci".into(),
        key: Some(CLIENT_KEY.into()),
        ..Default::default()
    }];
    let problems = cfg.validate();
    assert!(
        problems
            .iter()
            .any(|p| p.key == "admin.key_env"
                && p.message.contains("server.trust_forwarded_headers")),
        "{problems:?}"
    );
    let (store, records, _) = codex_rotor::store::FileStore::open(dir.path()).expect("store");
    match codex_rotor::server::start(cfg, std::sync::Arc::new(store), records).await {
        Err(e) => {
            let text = format!("{e:#}");
            assert!(
                text.contains("admin.key_env") && text.contains("server.trust_forwarded_headers"),
                "{text}"
            );
        }
        Ok(daemon) => {
            let export = reqwest::Client::new()
                .get(format!("http://{}/admin/accounts/export", daemon.addr))
                .header("x-forwarded-for", "203.0.113.50")
                .send()
                .await
                .map(|r| r.status().as_u16());
            daemon.shutdown().await;
            panic!(
                "the daemon started behind a trusted proxy without an admin key; \
                 a remote client's export got {export:?}"
            );
        }
    }
}

/// The client-key half of the same rule: behind a trusted reverse proxy an open pool (no client
/// key) would serve the accounts to whoever reaches the proxy, so the daemon refuses it exactly
/// as it refuses an open pool off loopback.
#[tokio::test]
async fn behind_a_trusted_proxy_the_daemon_refuses_an_open_pool() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = codex_rotor::config::Config {
        data_dir: dir.path().to_path_buf(),
        ..Default::default()
    };
    cfg.server.listen = "127.0.0.1:0".parse().expect("addr");
    cfg.server.trust_forwarded_headers = true;
    cfg.upstream.base_url = "http://127.0.0.1:1/backend-api".into();
    cfg.admin.key = Some(ADMIN_KEY.into());
    let problems = cfg.validate();
    assert!(
        problems
            .iter()
            .any(|p| p.key == "keys.keys" && p.message.contains("server.trust_forwarded_headers")),
        "{problems:?}"
    );
    let (store, records, _) = codex_rotor::store::FileStore::open(dir.path()).expect("store");
    match codex_rotor::server::start(cfg, std::sync::Arc::new(store), records).await {
        Err(e) => assert!(
            format!("{e:#}").contains("a client key is required"),
            "{e:#}"
        ),
        Ok(daemon) => {
            daemon.shutdown().await;
            panic!("an open pool started behind a trusted reverse proxy");
        }
    }
}
