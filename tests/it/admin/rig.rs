//! A simulator plus a real daemon on 127.0.0.1:0, configured with a client key and a separate
//! admin key, for the admin, dashboard and metrics tests. Accounts enter the way an operator
//! adds them: created in the simulator, imported through `POST /admin/accounts/import`.

use codex_rotor::config::Config;
use codex_rotor::config::access::ClientKeyConfig;
use codex_rotor::server::Daemon;
use codex_rotor::sim::{AccountSpec, CreatedAccount, SimHandle, SimOptions, Simulator};
use reqwest::Method;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// The admin key of every rig.
pub const ADMIN_KEY: &str = "adm-7f3a91c4-rig-admin-key";
/// The client (pool) key of every rig; must never open the admin API.
pub const CLIENT_KEY: &str = "sk-pool-5d2e8b10-rig-client-key";

/// Simulator + daemon.
pub struct Rig {
    /// The Codex backend simulator.
    pub sim: SimHandle,
    /// The daemon under test.
    pub daemon: Daemon,
    /// `http://127.0.0.1:PORT` of the daemon.
    pub base: String,
    /// Plain HTTP client (no cookies).
    pub http: reqwest::Client,
    /// Data directory of the daemon.
    _dir: tempfile::TempDir,
}

impl Rig {
    /// A rig with default simulator options and an empty pool.
    pub async fn start() -> Rig {
        Rig::start_with(SimOptions::default(), |_| {}).await
    }

    /// A rig with these simulator options and a config tweak.
    pub async fn start_with(opts: SimOptions, tweak: impl FnOnce(&mut Config)) -> Rig {
        Rig::start_in(tempfile::tempdir().expect("tempdir"), opts, tweak).await
    }

    /// A rig whose daemon opens the data directory `dir` as it is (files put there beforehand
    /// load, or are quarantined and reported, as at a real start).
    pub async fn start_in(
        dir: tempfile::TempDir,
        opts: SimOptions,
        tweak: impl FnOnce(&mut Config),
    ) -> Rig {
        Rig::start_node(dir, opts, tweak, None).await
    }

    /// A rig whose daemon reads `cluster` as its node's view of the cluster (a test fills it
    /// by hand the way the lease loop would; `None` is a single node).
    pub async fn start_node(
        dir: tempfile::TempDir,
        opts: SimOptions,
        tweak: impl FnOnce(&mut Config),
        cluster: Option<Arc<codex_rotor::cluster::ClusterView>>,
    ) -> Rig {
        let sim = Simulator::start(opts, "127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("simulator starts");
        let mut cfg = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        cfg.server.listen = "127.0.0.1:0".parse().expect("addr");
        cfg.upstream.base_url = sim.backend_url();
        cfg.upstream.token_url = sim.token_url();
        cfg.keys.keys = vec![ClientKeyConfig {
            name: "ci".into(),
            key: Some(CLIENT_KEY.into()),
            ..ClientKeyConfig::default()
        }];
        cfg.admin.key = Some(ADMIN_KEY.into());
        tweak(&mut cfg);
        let (store, records, quarantined) =
            codex_rotor::store::FileStore::open(dir.path()).expect("store");
        let store = Arc::new(store);
        let daemon = match cluster {
            Some(view) => {
                // A node signs what it forwards: it starts only with a readable secret.
                let secret = dir.path().join("cluster-secret");
                std::fs::write(&secret, crate::support::CLUSTER_SECRET).expect("secret");
                cfg.cluster.secret_file = Some(secret);
                codex_rotor::server::start_node(cfg, store, records, quarantined, Some(view)).await
            }
            None => codex_rotor::server::start_with(cfg, store, records, quarantined).await,
        }
        .expect("daemon starts");
        let base = format!("http://{}", daemon.addr);
        Rig {
            sim,
            daemon,
            base,
            http: reqwest::Client::new(),
            _dir: dir,
        }
    }

    /// Absolute URL of a daemon path.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// An admin call with the admin key; returns status and JSON body (`Null` if not JSON).
    pub async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, self.url(path))
            .bearer_auth(ADMIN_KEY);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("admin request");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// `GET` with the admin key, expecting 200.
    pub async fn get(&self, path: &str) -> Value {
        let (status, body) = self.admin(Method::GET, path, None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// Creates an account in the simulator and imports its `auth.json` through the admin API;
    /// returns it and the daemon's id for it.
    pub async fn add_account(&self, spec: AccountSpec) -> (CreatedAccount, String) {
        let created = self.sim.create_account(spec);
        let id = self.import(&created.auth_json.to_string()).await;
        (created, id)
    }

    /// Imports one account file through the admin API; returns the daemon id.
    pub async fn import(&self, file: &str) -> String {
        let resp = self
            .http
            .post(self.url("/admin/accounts/import"))
            .bearer_auth(ADMIN_KEY)
            .body(file.to_owned())
            .send()
            .await
            .expect("import");
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.expect("import answer is JSON");
        assert_eq!(status, 200, "import: {body}");
        body["results"][0]["outcome"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no id in {body}"))
            .to_owned()
    }

    /// Asks the account to probe its quota now and waits until `done` holds for it.
    pub async fn probe_until(&self, id: &str, done: impl Fn(&Value) -> bool) -> Value {
        let (status, body) = self
            .admin(Method::POST, &format!("/admin/accounts/{id}/probe"), None)
            .await;
        assert_eq!(status, 202, "probe: {body}");
        self.wait_account(id, done).await
    }

    /// Bans the simulator account `sim_id` and has upstream refuse one request with the ban (a
    /// probe's 403 is never a ban): every other active account is disabled for that one
    /// request (accounts in any other state cannot serve it and keep their state), so only
    /// `id` can serve it and no other account is served (and made to report
    /// its quota) on the way; then waits until `id` shows `banned` and enables the others again.
    pub async fn ban_by_request(&self, sim_id: &str, id: &str) {
        self.sim.ban(sim_id);
        let list = self.get("/admin/accounts").await;
        let others: Vec<String> = list["accounts"]
            .as_array()
            .expect("accounts")
            .iter()
            .filter(|a| a["id"] != id && a["derived_status"] == "active")
            .filter_map(|a| a["id"].as_str().map(str::to_owned))
            .collect();
        for other in &others {
            let path = format!("/admin/accounts/{other}/disable");
            let (status, body) = self.admin(Method::POST, &path, None).await;
            assert_eq!(status, 200, "disable {other}: {body}");
        }
        let before = self.sim.counters(sim_id).requests;
        let _ = self.respond("gpt-5.4").await;
        assert!(
            self.sim.counters(sim_id).requests > before,
            "the only enabled account was not asked"
        );
        self.wait_account(id, |v| v["derived_status"] == "banned")
            .await;
        for other in &others {
            let path = format!("/admin/accounts/{other}/enable");
            let (status, body) = self.admin(Method::POST, &path, None).await;
            assert_eq!(status, 200, "enable {other}: {body}");
        }
    }

    /// Polls `GET /admin/accounts/{id}` until `done` holds (10 s at most).
    pub async fn wait_account(&self, id: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let v = self.get(&format!("/admin/accounts/{id}")).await;
            if done(&v) {
                return v;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "account never reached the state: {v:#}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// One streamed `/v1/responses` request with the client key; returns status and body.
    pub async fn respond(&self, model: &str) -> (u16, String) {
        let body = json!({
            "model": model,
            "instructions": "be brief",
            "input": [{"role": "user", "content": [{"type": "input_text", "text": "hi"}]}],
            "stream": true,
        });
        let resp = self
            .http
            .post(self.url("/v1/responses"))
            .bearer_auth(CLIENT_KEY)
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap_or_default())
    }

    /// Stops the daemon and the simulator.
    pub async fn shutdown(self) {
        self.daemon.shutdown().await;
        self.sim.shutdown().await;
    }
}

/// Every token string in a Codex CLI `auth.json` (access, refresh, id).
pub fn tokens_of(auth_json: &Value) -> Vec<String> {
    ["access_token", "refresh_token", "id_token"]
        .iter()
        .filter_map(|k| auth_json["tokens"][k].as_str())
        .filter(|t| t.len() > 16)
        .map(str::to_owned)
        .collect()
}

/// An account's bucket by name from the admin view.
pub fn bucket<'a>(account: &'a Value, name: &str) -> Option<&'a Value> {
    account["buckets"]
        .as_array()?
        .iter()
        .find(|b| b["name"] == name)
}

/// One seeded account: the daemon's id, what the dashboard must show, and its sim tokens.
pub struct Seeded {
    /// Daemon id.
    pub id: String,
    /// Expected derived status.
    pub status: &'static str,
    /// Tokens the simulator issued for it.
    pub tokens: Vec<String>,
}

/// Seeds one account in every derived status, each brought there through the simulator and
/// the daemon's own reactions (probes, requests), except `disabled` (an operator action):
/// `active` (two, at 35 % and 72 %, which then serve six requests), `rate_limited` (primary at 100 %), `refreshing` (token
/// expired, token endpoint hanging), `expired` (refresh token refused), `banned` (a request's 403 ban),
/// `disabled`, and last `cooling_down` (a Cloudflare challenge; lasts ~10 s, so check it soon).
pub async fn seed_every_status(rig: &Rig) -> Vec<Seeded> {
    use codex_rotor::sim::{FaultKind, FaultSpec, FaultTarget};
    let mut out = Vec::new();
    let (a, a_id) = add(rig, &mut out, "active", "ada@lovelace.dev", "pro").await;
    rig.sim.set_usage(&a.id, 35.0, 12.0);
    rig.sim.set_quota(&a.id, None, None, Some(2_000_000));
    rig.sim.set_extra_usage(&a.id, 20.0);
    rig.probe_until(&a_id, |v| {
        bucket(v, "primary").is_some_and(|b| b["used_percent"].as_f64() >= Some(34.0))
    })
    .await;
    let (b, b_id) = add(rig, &mut out, "active", "grace@hopper.dev", "plus").await;
    rig.sim.set_usage(&b.id, 72.0, 64.0);
    rig.probe_until(&b_id, |v| {
        bucket(v, "primary").is_some_and(|b| b["used_percent"].as_f64() >= Some(71.0))
    })
    .await;
    // A little traffic, for the request list and the chart.
    for _ in 0..6 {
        assert_eq!(rig.respond("gpt-5.4").await.0, 200);
    }
    let (c, c_id) = add(rig, &mut out, "rate_limited", "alan@turing.dev", "plus").await;
    rig.sim.set_usage(&c.id, 100.0, 58.0);
    rig.probe_until(&c_id, |v| v["derived_status"] == "rate_limited")
        .await;
    // An account whose refresh token the token endpoint does not know: refresh fails for good.
    let e = rig.sim.create_account(AccountSpec {
        email: Some("barbara@liskov.dev".into()),
        ..AccountSpec::default()
    });
    let mut auth = e.auth_json.clone();
    auth["tokens"]["refresh_token"] = json!("rt_unknown_to_the_token_endpoint_0000");
    let e_id = rig.import(&auth.to_string()).await;
    out.push(Seeded {
        id: e_id.clone(),
        status: "expired",
        tokens: tokens_of(&e.auth_json),
    });
    rig.sim.expire_access_token(&e.id);
    rig.probe_until(&e_id, |v| v["derived_status"] == "expired")
        .await;
    let (d, d_id) = add(rig, &mut out, "refreshing", "edsger@dijkstra.dev", "team").await;
    // The token endpoint hangs (for everyone: it cannot tell accounts apart before reading the
    // grant), so the refresh stays in flight.
    rig.sim
        .inject(FaultSpec::always(FaultKind::Silence { millis: 120_000 }).on(FaultTarget::Token));
    rig.sim.expire_access_token(&d.id);
    rig.probe_until(&d_id, |v| v["derived_status"] == "refreshing")
        .await;
    // Banned: upstream refuses a request with its ban (a probe's 403 is never a ban), so the
    // account meets one while it is the only one that can serve.
    let (f, f_id) = add(rig, &mut out, "banned", "ken@thompson.dev", "plus").await;
    rig.ban_by_request(&f.id, &f_id).await;
    let (_, g_id) = add(rig, &mut out, "disabled", "dennis@ritchie.dev", "free").await;
    let (status, body) = rig
        .admin(
            Method::POST,
            &format!("/admin/accounts/{g_id}/disable"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // Cooling down: only this account can serve while the challenge hits it.
    let (h, h_id) = add(
        rig,
        &mut out,
        "cooling_down",
        "margaret@hamilton.dev",
        "pro",
    )
    .await;
    for id in [&a_id, &b_id] {
        let (status, body) = rig
            .admin(Method::POST, &format!("/admin/accounts/{id}/disable"), None)
            .await;
        assert_eq!(
            (status, &body["derived_status"]),
            (200, &json!("disabled")),
            "{body}"
        );
    }
    rig.sim.inject(
        FaultSpec::always(FaultKind::Cloudflare)
            .for_account(h.id.clone())
            .times(1),
    );
    let r = rig.respond("gpt-5.4").await;
    assert_eq!(
        rig.sim.counters(&h.id).served_403,
        1,
        "the challenge hit the account: {r:?}"
    );
    for id in [&a_id, &b_id] {
        rig.admin(Method::POST, &format!("/admin/accounts/{id}/enable"), None)
            .await;
    }
    rig.wait_account(&h_id, |v| v["derived_status"] == "cooling_down")
        .await;
    out
}

/// Creates and imports one account, recording what it must show.
async fn add(
    rig: &Rig,
    out: &mut Vec<Seeded>,
    status: &'static str,
    email: &str,
    plan: &str,
) -> (CreatedAccount, String) {
    let spec = AccountSpec {
        email: Some(email.into()),
        plan: Some(plan.into()),
        ..AccountSpec::default()
    };
    let (created, id) = rig.add_account(spec).await;
    out.push(Seeded {
        id: id.clone(),
        status,
        tokens: tokens_of(&created.auth_json),
    });
    (created, id)
}
