//! Simulator auth (docs/protocol.md §7, §8): 401/403 shapes, refresh rotation with reuse
//! detection, the PKCE login, plus the usage endpoint (§9), models and the `/sim/` control API.

use super::{access_token, body, post, start};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use codex_rotor::sim::{AccountSpec, SimOptions};
use serde_json::{Value, json};
use sha2::Digest;

fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("json")
}

async fn refresh(sim: &codex_rotor::sim::SimHandle, rt: &str) -> reqwest::Response {
    let body = json!({"client_id": "app_EMoamEEZ73f0CkXaXp7hrann", "grant_type": "refresh_token",
        "refresh_reason": "unauthorized_recovery", "refresh_token": rt});
    reqwest::Client::new()
        .post(sim.token_url())
        .json(&body)
        .send()
        .await
        .expect("sent")
}

/// The refresh log is the evidence the cluster chaos run checks ownership against: every
/// exchange, with the `caller` its token URL named, granted and reused told apart, and the
/// reuse also counted.
#[tokio::test]
async fn the_refresh_log_names_each_exchange_its_caller_and_its_outcome() {
    let sim = start(SimOptions::default()).await;
    let acct = sim.create_account(AccountSpec::default());
    let rt0 = acct.auth_json["tokens"]["refresh_token"]
        .as_str()
        .expect("rt")
        .to_string();
    let send = async |caller: &str, rt: &str| {
        let body = json!({"client_id": "app_EMoamEEZ73f0CkXaXp7hrann",
            "grant_type": "refresh_token", "refresh_token": rt});
        reqwest::Client::new()
            .post(format!("{}?caller={caller}", sim.token_url()))
            .json(&body)
            .send()
            .await
            .expect("sent")
    };
    let first = send("n1", &rt0).await;
    assert_eq!(first.status(), 200);
    assert_eq!(send("n2", &rt0).await.status(), 401, "a reuse is refused");
    assert_eq!(refresh(&sim, "never-issued").await.status(), 401);
    let log = sim.refresh_log();
    let seen: Vec<_> = log
        .iter()
        .map(|e| (e.account.as_deref(), e.caller.as_deref(), e.outcome))
        .collect();
    use codex_rotor::sim::RefreshOutcome::{Granted, Invalid, Reused};
    assert_eq!(
        seen,
        [
            (Some(acct.id.as_str()), Some("n1"), Granted),
            (Some(acct.id.as_str()), Some("n2"), Reused),
            (None, None, Invalid),
        ]
    );
    assert!(log.windows(2).all(|w| w[0].at <= w[1].at), "oldest first");
    let c = sim.counters(&acct.id);
    assert_eq!((c.refreshes, c.refresh_reused), (1, 1));
    let over_http: Value = reqwest::get(format!("{}/sim/refreshes", sim.base_url()))
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(over_http[1]["outcome"], "reused");
    assert_eq!(over_http[1]["caller"], "n2");
    sim.shutdown().await;
}

#[tokio::test]
async fn auth_json_is_a_codex_cli_file_with_the_claims_codex_reads() {
    let sim = start(SimOptions::default()).await;
    let acct = sim.create_account(AccountSpec {
        email: Some("a@x.test".into()),
        plan: Some("team".into()),
        ..AccountSpec::default()
    });
    let a = &acct.auth_json;
    assert_eq!(a["auth_mode"], "chatgpt");
    assert_eq!(a["tokens"]["account_id"], acct.id.as_str());
    assert!(a["last_refresh"].as_str().expect("ts").ends_with('Z'));
    let c = claims(&access_token(a));
    assert_eq!(c["email"], "a@x.test");
    let auth = &c["https://api.openai.com/auth"];
    assert_eq!(auth["chatgpt_account_id"], acct.id.as_str());
    assert_eq!(auth["chatgpt_plan_type"], "team");
    assert!(auth["chatgpt_user_id"].is_string());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let exp = c["exp"].as_i64().expect("exp");
    assert!(
        (now + 3590..=now + 3601).contains(&exp),
        "one hour ttl: {exp} vs {now}"
    );
    assert!(
        !format!("{acct:?}").contains(&access_token(a)),
        "Debug never shows tokens"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn unknown_expired_deactivated_and_banned_are_refused_in_upstream_shapes() {
    let sim = start(SimOptions::default()).await;
    let acct = sim.create_account(AccountSpec::default());
    let token = access_token(&acct.auth_json);
    let resp = post(&sim, "not-a-token", &body("hi", true)).await;
    assert_eq!(resp.status(), 401);
    sim.expire_access_token(&acct.id);
    let resp = post(&sim, &token, &body("hi", true)).await;
    assert_eq!(resp.status(), 401);
    let v: Value = resp.json().await.expect("json");
    assert_eq!(v["error"]["code"], "token_expired");
    let fresh = access_token(&sim.create_account(AccountSpec::default()).auth_json);
    let other = claims(&fresh)["https://api.openai.com/auth"]["chatgpt_account_id"]
        .as_str()
        .expect("id")
        .to_string();
    sim.deactivate(&other);
    let resp = post(&sim, &fresh, &body("hi", true)).await;
    assert_eq!(resp.status(), 401);
    assert!(resp.text().await.expect("text").contains("deactivated"));
    sim.ban(&other);
    let resp = post(&sim, &fresh, &body("hi", true)).await;
    assert_eq!(resp.status(), 403);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .expect("ct")
            .starts_with("application/json")
    );
    assert!(resp.headers().get("cf-mitigated").is_none());
    let v: Value = resp.json().await.expect("json");
    assert_eq!(v["error"]["code"], "account_banned");
    assert_eq!(sim.counters(&acct.id).served_401, 1);
    assert_eq!(sim.counters(&other).served_403, 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn refresh_tokens_rotate_single_use_and_reuse_is_detected() {
    let sim = start(SimOptions::default()).await;
    let acct = sim.create_account(AccountSpec::default());
    let rt0 = acct.auth_json["tokens"]["refresh_token"]
        .as_str()
        .expect("rt")
        .to_string();
    sim.expire_access_token(&acct.id);
    let resp = refresh(&sim, &rt0).await;
    assert_eq!(resp.status(), 200);
    let t: Value = resp.json().await.expect("json");
    let rt1 = t["refresh_token"].as_str().expect("new rt");
    assert_ne!(rt1, rt0);
    assert!(claims(t["id_token"].as_str().expect("id token"))["email"].is_string());
    let access = t["access_token"].as_str().expect("access");
    assert_eq!(post(&sim, access, &body("hi", true)).await.status(), 200);
    let resp = refresh(&sim, &rt0).await;
    assert_eq!(resp.status(), 401);
    let v: Value = resp.json().await.expect("json");
    assert_eq!(v["error"]["code"], "refresh_token_reused");
    // Form-encoded bodies are accepted too.
    let resp = reqwest::Client::new()
        .post(sim.token_url())
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt1),
            ("client_id", "x"),
        ])
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), 200);
    let c = sim.counters(&acct.id);
    assert_eq!((c.refreshes, c.refresh_reused), (2, 1));
    sim.deactivate(&acct.id);
    let rt2: Value = resp.json().await.expect("json");
    let resp = refresh(&sim, rt2["refresh_token"].as_str().expect("rt")).await;
    assert_eq!(resp.status(), 401);
    assert!(resp.text().await.expect("text").contains("deactivated"));
    sim.shutdown().await;
}

#[tokio::test]
async fn oauth_pkce_login_checks_the_verifier() {
    let sim = start(SimOptions::default()).await;
    let verifier = "a-very-long-verifier-string-of-at-least-43-characters-xyz";
    let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let authorize = |state: &'static str| {
        client
            .get(format!("{}/oauth/authorize", sim.base_url()))
            .query(&[
                ("response_type", "code"),
                ("client_id", "app_x"),
                ("redirect_uri", "http://localhost:1455/auth/callback"),
                ("code_challenge", challenge.as_str()),
                ("code_challenge_method", "S256"),
                ("state", state),
                ("login_hint", "login@x.test"),
            ])
            .send()
    };
    let code_of = |resp: &reqwest::Response| {
        let loc = resp.headers()["location"]
            .to_str()
            .expect("location")
            .to_string();
        assert!(
            loc.starts_with("http://localhost:1455/auth/callback?code="),
            "{loc}"
        );
        let url = reqwest::Url::parse(&loc).expect("url");
        let code = url
            .query_pairs()
            .find(|(k, _)| k == "code")
            .expect("code")
            .1
            .to_string();
        let state = url
            .query_pairs()
            .find(|(k, _)| k == "state")
            .expect("state")
            .1
            .to_string();
        (code, state)
    };
    let resp = authorize("s1").await.expect("sent");
    assert_eq!(resp.status(), 302);
    let (code, state) = code_of(&resp);
    assert_eq!(state, "s1");
    let exchange = |code: String, verifier: &'static str| {
        client
            .post(sim.token_url())
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("code_verifier", verifier),
                ("redirect_uri", "http://localhost:1455/auth/callback"),
                ("client_id", "app_x"),
            ])
            .send()
    };
    assert_eq!(
        exchange(code, "wrong-verifier")
            .await
            .expect("sent")
            .status(),
        400
    );
    let (code, _) = code_of(&authorize("s2").await.expect("sent"));
    let resp = exchange(code.clone(), verifier).await.expect("sent");
    assert_eq!(resp.status(), 200);
    let t: Value = resp.json().await.expect("json");
    assert_eq!(
        claims(t["access_token"].as_str().expect("at"))["email"],
        "login@x.test"
    );
    assert_eq!(
        post(
            &sim,
            t["access_token"].as_str().expect("at"),
            &body("hi", true)
        )
        .await
        .status(),
        200
    );
    assert_eq!(
        exchange(code, verifier).await.expect("sent").status(),
        400,
        "codes are single-use"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn wham_usage_has_the_section_9_shape() {
    let sim = start(SimOptions {
        extra_quota_tokens: Some(500),
        ..SimOptions::default()
    })
    .await;
    let acct = sim.create_account(AccountSpec::default());
    sim.set_usage(&acct.id, 42.0, 12.0);
    let resp = reqwest::Client::new()
        .get(format!("{}/wham/usage", sim.backend_url()))
        .bearer_auth(access_token(&acct.auth_json))
        .header("chatgpt-account-id", &acct.id)
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.expect("json");
    assert_eq!(v["plan_type"], "plus");
    let rl = &v["rate_limit"];
    assert_eq!(
        (rl["allowed"].clone(), rl["limit_reached"].clone()),
        (json!(true), json!(false))
    );
    assert_eq!(rl["primary_window"]["used_percent"], 42);
    assert_eq!(rl["primary_window"]["limit_window_seconds"], 18_000);
    assert!(
        rl["primary_window"]["reset_after_seconds"]
            .as_i64()
            .expect("int")
            > 17_000
    );
    assert!(rl["primary_window"]["reset_at"].as_i64().expect("int") > 1_700_000_000);
    assert_eq!(rl["secondary_window"]["used_percent"], 12);
    assert_eq!(rl["secondary_window"]["limit_window_seconds"], 604_800);
    assert_eq!(v["credits"]["has_credits"], false);
    assert_eq!(
        v["additional_rate_limits"][0]["metered_feature"],
        "codex_bengalfox"
    );
    assert!(v["rate_limit_reached_type"].is_null());
    assert_eq!(sim.counters(&acct.id).usage_probes, 1);
    // The catalogue, like every backend endpoint, answers a known account's token only.
    let models: Value = reqwest::Client::new()
        .get(format!(
            "{}/codex/models?client_version=0.169.0",
            sim.backend_url()
        ))
        .bearer_auth(access_token(&acct.auth_json))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert!(
        models["models"]
            .as_array()
            .expect("list")
            .iter()
            .any(|m| m["slug"] == "gpt-5.5")
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn control_api_mirrors_the_handle() {
    let sim = start(SimOptions::default()).await;
    let client = reqwest::Client::new();
    let url = |p: &str| format!("{}/sim{p}", sim.base_url());
    let resp = client
        .post(url("/accounts"))
        .json(&json!({"plan": "pro", "primary_quota_tokens": 100}))
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), 201);
    let created: Value = resp.json().await.expect("json");
    let id = created["id"].as_str().expect("id").to_string();
    let token = access_token(&created["auth_json"]);
    let view: Value = client
        .post(url(&format!("/accounts/{id}/usage")))
        .json(&json!({"primary_used_percent": 100}))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(view["quota"]["primary"]["used_tokens"], 100);
    assert!(
        view.to_string().find(&token).is_none(),
        "views never contain tokens"
    );
    assert_eq!(post(&sim, &token, &body("hi", true)).await.status(), 429);
    client
        .post(url(&format!("/accounts/{id}/usage")))
        .json(&json!({"primary_used_percent": 0}))
        .send()
        .await
        .expect("sent");
    let resp = client
        .post(url("/faults"))
        .json(&json!({"kind": "server_error", "account": id, "count": 1}))
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), 204);
    assert_eq!(post(&sim, &token, &body("hi", true)).await.status(), 500);
    assert_eq!(post(&sim, &token, &body("hi", true)).await.status(), 200);
    let counters: Value = client
        .get(url(&format!("/accounts/{id}/counters")))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(counters["requests"], 3);
    assert_eq!(counters["served_429"], 1);
    assert_eq!(counters["served_5xx"], 1);
    assert_eq!(counters["completed"], 1);
    client
        .post(url(&format!("/accounts/{id}/ban")))
        .send()
        .await
        .expect("sent");
    assert_eq!(post(&sim, &token, &body("hi", true)).await.status(), 403);
    assert_eq!(
        client
            .post(url("/faults"))
            .body("{\"kind\":\"nope\"}")
            .send()
            .await
            .expect("sent")
            .status(),
        400
    );
    assert_eq!(
        client
            .get(url("/accounts/nope"))
            .send()
            .await
            .expect("sent")
            .status(),
        404
    );
    sim.shutdown().await;
}
