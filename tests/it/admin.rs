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
    assert!(body["error"]["message"].as_str().unwrap_or("").contains("admin key"), "{body}");
    for wrong in [CLIENT_KEY, "nope", ""] {
        let r = rig.http.get(&url).bearer_auth(wrong).send().await.expect("send");
        assert_eq!(r.status(), 401, "key {wrong:?} must not open the admin API");
    }
    let (status, body) = rig.admin(Method::GET, "/admin/accounts", None).await;
    assert_eq!((status, &body["count"]), (200, &json!(0)));
    let (status, body) = rig.admin(Method::GET, "/admin/nothing-here", None).await;
    assert_eq!((status, body["error"]["type"].as_str()), (404, Some("not_found")));
    rig.shutdown().await;
}

#[tokio::test]
async fn the_dashboard_session_is_a_random_cookie_not_the_key() {
    let rig = Rig::start().await;
    let login = |key: &str| {
        rig.http.post(rig.url("/login")).json(&json!({ "key": key })).send()
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
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(!cookie.contains(ADMIN_KEY), "the cookie must not carry the key");
    let session = cookie.split(';').next().expect("pair").to_owned();
    assert!(session.len() > 64, "random id: {session}");
    let with_cookie = |m: Method, path: &str| {
        rig.http.request(m, rig.url(path)).header("cookie", session.clone())
    };
    let r = with_cookie(Method::GET, "/admin/pool").send().await.expect("send");
    assert_eq!(r.status(), 200);
    // A state change without the CSRF header is refused, with it accepted.
    let body = json!({ "strategy": "round_robin" });
    let r = with_cookie(Method::PUT, "/admin/strategy").json(&body).send().await.expect("send");
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
    let r = with_cookie(Method::POST, "/logout").send().await.expect("send");
    assert_eq!(r.status(), 200);
    let r = with_cookie(Method::GET, "/admin/pool").send().await.expect("send");
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
        for key in ["identity", "status", "quota", "usage", "leases", "verify", "last_error", "cooldown_until"] {
            assert!(a.get(key).is_some(), "{key} missing in {a:#}");
        }
    }
    // The 35 % account: both windows with used %, reset time and "resets in".
    let a = rig.get(&format!("/admin/accounts/{}", seeded[0].id)).await;
    let p = bucket(&a, "primary").expect("primary bucket");
    assert!((p["used_percent"].as_f64().unwrap_or(0.0) - 35.0).abs() < 1.0, "{p}");
    assert_eq!(p["limit_reached"], false);
    assert!(p["resets_in_secs"].as_i64().unwrap_or(0) > 0, "{p}");
    assert!(p["resets_in"].as_str().is_some_and(|s| !s.is_empty()), "{p}");
    assert!(p["reset_at"].as_i64().is_some() && p["window_secs"].as_u64().is_some(), "{p}");
    let w = bucket(&a, "secondary").expect("weekly bucket");
    assert_eq!(w["title"], "weekly");
    assert!((w["used_percent"].as_f64().unwrap_or(0.0) - 12.0).abs() < 1.0, "{w}");
    // The rate-limited account: locked until its reset, and explain says so.
    let rl = &seeded[2];
    let c = rig.get(&format!("/admin/accounts/{}", rl.id)).await;
    let p = bucket(&c, "primary").expect("primary bucket");
    assert_eq!((p["limit_reached"].as_bool(), p["used_percent"].as_f64()), (Some(true), Some(100.0)));
    let why = rig.get(&format!("/admin/accounts/{}/explain", rl.id)).await;
    assert_eq!(why["available"], false, "{why}");
    assert!(!why["reasons"].as_array().is_none_or(Vec::is_empty), "{why}");
    assert!(why["until"].as_i64().is_some() && why["until_in"].is_string(), "{why}");
    let ok = rig.get(&format!("/admin/accounts/{}/explain", seeded[0].id)).await;
    assert_eq!(ok["available"], true, "{ok}");
    let pool = rig.get("/admin/pool").await;
    assert_eq!((pool["total"].as_u64(), pool["serving"].as_bool()), (Some(8), Some(true)), "{pool}");
    assert_eq!((pool["rate_limited"].as_u64(), pool["banned"].as_u64()), (Some(1), Some(1)), "{pool}");

    // No answer but the export carries a token: gather every admin, dashboard and ops answer.
    let mut answers = Vec::new();
    let mut paths: Vec<String> = [
        "/admin/accounts", "/admin/pool", "/admin/strategy", "/admin/requests?limit=100",
        "/admin/live", "/admin/accounts/0000000000000000", "/healthz", "/readyz", "/metrics", "/",
        "/assets/app.js",
    ]
    .map(String::from)
    .to_vec();
    for s in &seeded {
        paths.push(format!("/admin/accounts/{}", s.id));
        paths.push(format!("/admin/accounts/{}/explain", s.id));
    }
    for path in &paths {
        let r = rig.http.get(rig.url(path)).bearer_auth(ADMIN_KEY).send().await.expect("send");
        answers.push((path.clone(), r.text().await.expect("body")));
    }
    for action in ["probe", "disable", "enable"] {
        let path = format!("/admin/accounts/{}/{action}", seeded[0].id);
        let r = rig.http.post(rig.url(&path)).bearer_auth(ADMIN_KEY).send().await.expect("send");
        answers.push((path, r.text().await.expect("body")));
    }
    let export = rig.http.get(rig.url("/admin/accounts/export")).bearer_auth(ADMIN_KEY).send().await.expect("send");
    assert_eq!(export.headers().get("cache-control").and_then(|v| v.to_str().ok()), Some("no-store"));
    let export = export.text().await.expect("body");
    let mut secrets: Vec<String> = seeded.iter().flat_map(|s| s.tokens.clone()).collect();
    let exported: Value = serde_json::from_str(&export).expect("export is JSON");
    collect_tokens(&exported, &mut secrets);
    assert!(secrets.len() > 2 * seeded.len(), "tokens gathered: {}", secrets.len());
    assert!(export.contains(&seeded[0].tokens[0]), "the export carries tokens, so the grep can see them");
    for (path, body) in &answers {
        for t in &secrets {
            assert!(!body.contains(t.as_str()), "{path} leaks a token");
        }
        assert!(!body.contains(ADMIN_KEY) && !body.contains(CLIENT_KEY), "{path} leaks a key");
    }
    rig.shutdown().await;
}

/// Every long string under a `*token*` key of the export.
fn collect_tokens(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match v.as_str() {
                    Some(s) if k.to_lowercase().contains("token") && s.len() > 16 => out.push(s.to_owned()),
                    _ => collect_tokens(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| collect_tokens(v, out)),
        _ => {}
    }
}
