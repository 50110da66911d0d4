//! Accounts through the admin API: every derived status with its buckets (used %, reset,
//! "resets in"), explain, the pool summary, the actions with their clear errors, the strategy
//! at runtime, export/import round trip — and that no admin answer ever carries a token.

use super::rig::{self, ADMIN_KEY, CLIENT_KEY, Rig, bucket};
use reqwest::Method;
use serde_json::{Value, json};

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

/// An import larger than `server.max_body_bytes` is refused with the admin API's JSON error
/// naming the limit (not axum's plain text), and without the admin key the answer is 401 first.
#[tokio::test]
async fn an_oversized_import_gets_a_json_413_naming_the_limit_and_401_first_without_a_key() {
    let rig = Rig::start_with(codex_rotor::sim::SimOptions::default(), |c| {
        c.server.max_body_bytes = 4096
    })
    .await;
    let big = "x".repeat(8192);
    let send = |key: Option<&'static str>| {
        let mut req = rig
            .http
            .post(rig.url("/admin/accounts/import"))
            .body(big.clone());
        if let Some(key) = key {
            req = req.bearer_auth(key);
        }
        req.send()
    };
    let r = send(Some(ADMIN_KEY)).await.expect("send");
    assert_eq!(r.status().as_u16(), 413);
    let v: Value = r.json().await.expect("a JSON error body");
    assert_eq!(v["error"]["type"], "request_too_large", "{v}");
    let msg = v["error"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("4096 bytes") && msg.contains("server.max_body_bytes"),
        "{v}"
    );
    let r = send(None).await.expect("send");
    assert_eq!(r.status().as_u16(), 401, "no key: 401 before 413");
    rig.shutdown().await;
}

/// An account whose refresh may have spent its refresh token (a cluster claim found an expired
/// intent) keeps serving and says why, and what to do, in the account answer and in explain.
#[tokio::test]
async fn a_refresh_ambiguous_account_serves_and_says_why_in_the_admin_answers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let accounts = dir.path().join("accounts");
    std::fs::create_dir_all(&accounts).expect("accounts dir");
    let id = "00000000000000ab";
    let tokens = rotor_actors::Tokens {
        access_token: "at-ambiguous".into(),
        refresh_token: Some("rt-maybe-spent".into()),
        expires_at: Some(rotor_actors::Clock::now_ms(&rotor_actors::SystemClock) + 3_600_000),
        ..rotor_actors::Tokens::default()
    };
    let mut rec = rotor_actors::AccountRecord::new(id, tokens, 1);
    rec.refresh_ambiguous = true;
    std::fs::write(
        accounts.join(format!("{id}.json")),
        serde_json::to_vec(&rec).expect("json"),
    )
    .expect("record");
    let rig = Rig::start_in(dir, Default::default(), |_| {}).await;
    let hold = |v: &Value| {
        v["holds"].as_array().and_then(|hs| {
            hs.iter()
                .find(|h| h["kind"] == "refresh_ambiguous")
                .cloned()
        })
    };
    let why = rig.get(&format!("/admin/accounts/{id}/explain")).await;
    assert_eq!(
        why["available"], true,
        "it serves on its access token: {why}"
    );
    let h = hold(&why).unwrap_or_else(|| panic!("explain names the hold: {why}"));
    assert_eq!(h["reason"], rotor_actors::AMBIGUOUS, "{h}");
    let a = rig.get(&format!("/admin/accounts/{id}")).await;
    assert!(hold(&a).is_some(), "the account answer too: {a}");
}
