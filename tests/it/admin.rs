//! The admin API against a real daemon and the simulator: its own key (never the client key)
//! and dashboard sessions, every account fact an operator needs (derived status, buckets with
//! used %, reset and "resets in", usage, leases, explain), the actions, import/export, the
//! strategy at runtime, the recent-requests ring, health and readiness — and that no admin
//! answer ever carries a token.

pub mod rig;

use reqwest::Method;
use rig::{ADMIN_KEY, CLIENT_KEY, Rig, bucket, tokens_of};
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
async fn every_derived_status_is_shown_with_its_buckets_and_no_token_ever_leaks() {
    let rig = Rig::start().await;
    let seeded = rig::seed_every_status(&rig).await;
    let (status, _) = rig.respond("gpt-5.4").await;
    assert_eq!(status, 200, "the pool still serves");
    let list = rig.get("/admin/accounts").await;
    assert_eq!(list["count"], json!(seeded.len()));
    for s in &seeded {
        let a = list["accounts"]
            .as_array()
            .and_then(|l| l.iter().find(|a| a["id"] == s.id.as_str()))
            .unwrap_or_else(|| panic!("{} missing", s.id));
        assert_eq!(a["derived_status"], s.status, "{a:#}");
        for key in [
            "identity",
            "status",
            "quota",
            "usage",
            "leases",
            "verify",
            "last_error",
            "cooldown_until",
        ] {
            assert!(a.get(key).is_some(), "{key} missing in {a:#}");
        }
    }
    // The 35 % account: both windows with used %, reset time and "resets in".
    let a = rig.get(&format!("/admin/accounts/{}", seeded[0].id)).await;
    let p = bucket(&a, "primary").expect("primary bucket");
    assert!(
        (p["used_percent"].as_f64().unwrap_or(0.0) - 35.0).abs() < 1.0,
        "{p}"
    );
    assert_eq!(p["limit_reached"], false);
    assert!(p["resets_in_secs"].as_i64().unwrap_or(0) > 0, "{p}");
    assert!(
        p["resets_in"].as_str().is_some_and(|s| !s.is_empty()),
        "{p}"
    );
    assert!(
        p["reset_at"].as_i64().is_some() && p["window_secs"].as_u64().is_some(),
        "{p}"
    );
    let w = bucket(&a, "secondary").expect("weekly bucket");
    assert_eq!(w["title"], "weekly");
    assert!(
        (w["used_percent"].as_f64().unwrap_or(0.0) - 12.0).abs() < 1.0,
        "{w}"
    );
    // The rate-limited account: locked until its reset, and explain says so.
    let rl = &seeded[2];
    let c = rig.get(&format!("/admin/accounts/{}", rl.id)).await;
    let p = bucket(&c, "primary").expect("primary bucket");
    assert_eq!(
        (p["limit_reached"].as_bool(), p["used_percent"].as_f64()),
        (Some(true), Some(100.0))
    );
    let why = rig.get(&format!("/admin/accounts/{}/explain", rl.id)).await;
    assert_eq!(why["available"], false, "{why}");
    assert!(
        !why["reasons"].as_array().is_none_or(Vec::is_empty),
        "{why}"
    );
    assert!(
        why["until"].as_i64().is_some() && why["until_in"].is_string(),
        "{why}"
    );
    let ok = rig
        .get(&format!("/admin/accounts/{}/explain", seeded[0].id))
        .await;
    assert_eq!(ok["available"], true, "{ok}");
    let pool = rig.get("/admin/pool").await;
    assert_eq!(
        (pool["total"].as_u64(), pool["serving"].as_bool()),
        (Some(8), Some(true)),
        "{pool}"
    );
    assert_eq!(
        (pool["rate_limited"].as_u64(), pool["banned"].as_u64()),
        (Some(1), Some(1)),
        "{pool}"
    );

    // No answer but the export carries a token: gather every admin, dashboard and ops answer.
    let mut answers = Vec::new();
    let mut paths: Vec<String> = [
        "/admin/accounts",
        "/admin/pool",
        "/admin/strategy",
        "/admin/requests?limit=100",
        "/admin/live",
        "/admin/accounts/0000000000000000",
        "/healthz",
        "/readyz",
        "/metrics",
        "/",
        "/assets/app.js",
    ]
    .map(String::from)
    .to_vec();
    for s in &seeded {
        paths.push(format!("/admin/accounts/{}", s.id));
        paths.push(format!("/admin/accounts/{}/explain", s.id));
    }
    for path in &paths {
        let r = rig
            .http
            .get(rig.url(path))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .expect("send");
        answers.push((path.clone(), r.text().await.expect("body")));
    }
    for action in ["probe", "disable", "enable"] {
        let path = format!("/admin/accounts/{}/{action}", seeded[0].id);
        let r = rig
            .http
            .post(rig.url(&path))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .expect("send");
        answers.push((path, r.text().await.expect("body")));
    }
    let export = rig
        .http
        .get(rig.url("/admin/accounts/export"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("send");
    assert_eq!(
        export
            .headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    let export = export.text().await.expect("body");
    let mut secrets: Vec<String> = seeded.iter().flat_map(|s| s.tokens.clone()).collect();
    let exported: Value = serde_json::from_str(&export).expect("export is JSON");
    collect_tokens(&exported, &mut secrets);
    assert!(
        secrets.len() > 2 * seeded.len(),
        "tokens gathered: {}",
        secrets.len()
    );
    assert!(
        export.contains(&seeded[0].tokens[0]),
        "the export carries tokens, so the grep can see them"
    );
    for (path, body) in &answers {
        for t in &secrets {
            assert!(!body.contains(t.as_str()), "{path} leaks a token");
        }
        assert!(
            !body.contains(ADMIN_KEY) && !body.contains(CLIENT_KEY),
            "{path} leaks a key"
        );
    }
    rig.shutdown().await;
}

/// Every long string under a `*token*` key of the export.
fn collect_tokens(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match v.as_str() {
                    Some(s) if k.to_lowercase().contains("token") && s.len() > 16 => {
                        out.push(s.to_owned())
                    }
                    _ => collect_tokens(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| collect_tokens(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn operators_act_on_accounts_and_get_clear_errors() {
    let rig = Rig::start().await;
    let (_, a) = rig.add_account(Default::default()).await;
    let (_, b) = rig.add_account(Default::default()).await;
    // Disable / enable.
    let (status, v) = rig
        .admin(Method::POST, &format!("/admin/accounts/{a}/disable"), None)
        .await;
    assert_eq!(
        (status, v["derived_status"].as_str()),
        (200, Some("disabled"))
    );
    let why = rig.get(&format!("/admin/accounts/{a}/explain")).await;
    assert_eq!(why["available"], false);
    assert!(why["reasons"].to_string().contains("disabled"), "{why}");
    let (status, v) = rig
        .admin(Method::POST, &format!("/admin/accounts/{a}/enable"), None)
        .await;
    assert_eq!(
        (status, v["derived_status"].as_str()),
        (200, Some("active"))
    );
    // Probe: 202, and the simulator saw the usage call.
    let before = rig.sim.total_counters().usage_probes;
    let (status, v) = rig
        .admin(Method::POST, &format!("/admin/accounts/{b}/probe"), None)
        .await;
    assert_eq!((status, v["probing"].as_str()), (202, Some(b.as_str())));
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while rig.sim.total_counters().usage_probes == before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the probe never reached upstream"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Remove: gone afterwards.
    let (status, v) = rig
        .admin(Method::DELETE, &format!("/admin/accounts/{b}"), None)
        .await;
    assert_eq!((status, v["removed"].as_str()), (200, Some(b.as_str())));
    assert_eq!(rig.get("/admin/accounts").await["count"], 1);
    // Unknown ids: 404 with a message naming the id, for every verb.
    for (m, path) in [
        (Method::GET, format!("/admin/accounts/{b}")),
        (Method::GET, format!("/admin/accounts/{b}/explain")),
        (Method::POST, format!("/admin/accounts/{b}/enable")),
        (Method::POST, format!("/admin/accounts/{b}/probe")),
        (Method::DELETE, format!("/admin/accounts/{b}")),
    ] {
        let (status, v) = rig.admin(m.clone(), &path, None).await;
        assert_eq!(status, 404, "{m} {path}");
        assert!(
            v["error"]["message"].as_str().unwrap_or("").contains(&b),
            "{v}"
        );
    }
    // Strategy: round trip, and a clear 400 on nonsense.
    assert_eq!(rig.get("/admin/strategy").await["strategy"], "least_used");
    let (status, _) = rig
        .admin(
            Method::PUT,
            "/admin/strategy",
            Some(json!({ "strategy": "sticky" })),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(rig.get("/admin/strategy").await["strategy"], "sticky");
    let (status, v) = rig
        .admin(
            Method::PUT,
            "/admin/strategy",
            Some(json!({ "strategy": "fastest" })),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("least_used"),
        "{v}"
    );
    // Import: empty and garbage bodies are 400 with a message.
    for body in ["", "   ", "{not json", "[]"] {
        let r = rig
            .http
            .post(rig.url("/admin/accounts/import"))
            .bearer_auth(ADMIN_KEY)
            .body(body)
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 400, "{body:?}");
        let v: Value = r.json().await.expect("JSON error");
        assert!(
            v["error"]["message"].as_str().is_some_and(|m| m.len() > 5),
            "{v}"
        );
    }
    let (status, v) = rig
        .admin(Method::GET, "/admin/requests?limit=lots", None)
        .await;
    assert_eq!(
        (status, v["error"]["type"].as_str()),
        (400, Some("invalid_request"))
    );
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
async fn an_export_imports_back_and_serves() {
    let rig = Rig::start().await;
    let (a, a_id) = rig.add_account(Default::default()).await;
    let (_, b_id) = rig.add_account(Default::default()).await;
    let r = rig
        .http
        .get(rig.url("/admin/accounts/export"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let file = r.text().await.expect("body");
    for id in [&a_id, &b_id] {
        assert_eq!(
            rig.admin(Method::DELETE, &format!("/admin/accounts/{id}"), None)
                .await
                .0,
            200
        );
    }
    assert_eq!(
        rig.respond("gpt-5.4").await.0,
        503,
        "an empty pool does not serve"
    );
    let r = rig
        .http
        .post(rig.url("/admin/accounts/import"))
        .bearer_auth(ADMIN_KEY)
        .body(file)
        .send()
        .await
        .expect("send");
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["imported"], 2, "{v}");
    let list = rig.get("/admin/accounts").await;
    assert!(list.to_string().contains(&a.email), "{list}");
    assert_eq!(
        rig.respond("gpt-5.4").await.0,
        200,
        "served with the imported tokens"
    );
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
