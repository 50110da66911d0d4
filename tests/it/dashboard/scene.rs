//! A pool of 200 accounts as an operator's dashboard sees it after a while, shared by the
//! browser tests of `dashboard/scale.rs`: labels `user1` … `user200` (so text order and natural
//! order differ), a mix of plans with a few unknown, quota read for some accounts and not for
//! the rest, one account locked by its weekly window, two banned, a little traffic, three
//! requests in flight (so some accounts hold leases), and two account files that were
//! quarantined when the daemon opened its data directory. A Chromium at 1 400 × 1 000 is logged
//! in and shows the whole pool.
//!
//! Scenes are built one at a time (a static gate): the machine is small, and 200 accounts plus
//! a browser per test in parallel would only make every test slower.

use super::cdp::Browser;
use crate::admin::rig::{ADMIN_KEY, Rig};
use codex_rotor::sim::{AccountSpec, FaultKind, FaultSpec, SimOptions};
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Duration;

/// How many accounts the scene holds.
pub const ACCOUNTS: usize = 200;
/// Window width of the browser: the width operators reported the horizontal scroll at.
pub const WIDTH: u32 = 1400;
/// Requests held open (stalled upstream) so that accounts hold leases.
pub const IN_FLIGHT: usize = 3;
/// Secret-looking value inside one of the quarantined files; must never be shown.
pub const QUARANTINED_SECRET: &str = "rt_quarantined_refresh_token_0123456789abcdef";
/// File names of the two quarantined account files.
pub const QUARANTINED: [&str; 2] = ["0badc0de00000001.json", "0badc0de00000002.json"];

/// One test at a time builds a scene.
static GATE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The running scene.
pub struct Scene {
    /// Simulator + daemon.
    pub rig: Rig,
    /// The logged-in browser.
    pub b: Browser,
    /// Label (email) by daemon id.
    pub labels: HashMap<String, String>,
    /// The account whose weekly window is exhausted (rate limited for days).
    pub weekly_locked: String,
    /// The banned accounts.
    pub banned: Vec<String>,
    /// Accounts whose tokens name no plan.
    pub no_plan: Vec<String>,
    /// The requests held open.
    streams: Vec<tokio::task::JoinHandle<()>>,
    /// Held while the scene lives.
    _gate: tokio::sync::MutexGuard<'static, ()>,
}

/// The sim account spec of `user{n}`: plans cycle, every 50th from 7 on names none.
fn spec(n: usize) -> AccountSpec {
    let plan = if n % 50 == 7 {
        String::new()
    } else {
        ["plus", "pro", "team"][n % 3].to_owned()
    };
    AccountSpec {
        email: Some(format!("user{n}@pool.example")),
        plan: Some(plan),
        ..AccountSpec::default()
    }
}

/// Builds the scene (see the module docs).
pub async fn build() -> Scene {
    let gate = GATE.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let accounts = dir.path().join(codex_rotor::store::ACCOUNTS_DIR);
    std::fs::create_dir_all(&accounts).expect("accounts dir");
    std::fs::write(accounts.join(QUARANTINED[0]), b"{ this is not json").expect("write");
    let wrong_shape = json!({ "id": "0badc0de00000002", "tokens": QUARANTINED_SECRET });
    std::fs::write(accounts.join(QUARANTINED[1]), wrong_shape.to_string()).expect("write");
    let rig = Rig::start_in(dir, SimOptions::default(), |_| {}).await;

    let mut entries = Vec::new();
    let mut sim_ids = Vec::new();
    for n in 1..=ACCOUNTS {
        let c = rig.sim.create_account(spec(n));
        let t = &c.auth_json["tokens"];
        entries.push(
            json!({ "token": t["access_token"], "refreshToken": t["refresh_token"],
            "email": format!("user{n}@pool.example"), "accountId": c.id }),
        );
        sim_ids.push(c.id);
    }
    let r = rig
        .http
        .post(rig.url("/admin/accounts/import"))
        .bearer_auth(ADMIN_KEY)
        .body(json!({ "accounts": entries }).to_string())
        .send()
        .await
        .expect("import");
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["imported"], ACCOUNTS, "import: {v}");
    let list = rig.get("/admin/accounts").await;
    let by_sim: HashMap<String, (String, String)> = list["accounts"]
        .as_array()
        .expect("list")
        .iter()
        .map(|a| {
            let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
            (
                s(&a["identity"]["chatgpt_account_id"]),
                (s(&a["id"]), s(&a["label"])),
            )
        })
        .collect();
    let ids: Vec<String> = sim_ids.iter().map(|s| by_sim[s].0.clone()).collect();
    let labels: HashMap<String, String> = by_sim.values().cloned().collect();

    // Quota read for the first 30 accounts; the others have reported nothing yet.
    for n in 1..=30 {
        let (primary, weekly) = ((n * 37 % 90) as f64, (n * 3) as f64);
        rig.sim.set_usage(&sim_ids[n - 1], primary, weekly);
        rig.probe_until(&ids[n - 1], |v| {
            v["buckets"].as_array().is_some_and(|b| !b.is_empty())
        })
        .await;
    }
    let weekly_locked = ids[149].clone();
    rig.sim.set_usage(&sim_ids[149], 40.0, 100.0);
    rig.probe_until(&weekly_locked, |v| v["derived_status"] == "rate_limited")
        .await;
    let banned = vec![ids[159].clone(), ids[169].clone()];
    for n in [160, 170] {
        rig.ban_by_request(&sim_ids[n - 1], &ids[n - 1]).await;
    }
    // Twelve requests, the first six each on an account of its own, so the date column has
    // dates to tell apart: each served account is disabled until the six are done. Left alone,
    // rotation keeps to the accounts whose window resets first, and how many of them share
    // that second depends on how fast the probes above ran.
    let mut benched: Vec<String> = Vec::new();
    for i in 0..12 {
        assert_eq!(rig.respond("gpt-5.4").await.0, 200);
        if i < 6 {
            let last = rig.get("/admin/requests?limit=1").await;
            let id = last["requests"][0]["account_id"]
                .as_str()
                .expect("served on an account")
                .to_owned();
            assert!(!benched.contains(&id), "a disabled account served: {last}");
            let (status, _) = rig
                .admin(Method::POST, &format!("/admin/accounts/{id}/disable"), None)
                .await;
            assert_eq!(status, 200);
            benched.push(id);
        }
    }
    for id in &benched {
        let (status, _) = rig
            .admin(Method::POST, &format!("/admin/accounts/{id}/enable"), None)
            .await;
        assert_eq!(status, 200);
    }
    let streams = hold_requests(&rig).await;

    let mut b = Browser::launch(WIDTH, 1000).await.expect("chromium starts");
    super::login(&mut b, &rig).await;
    b.wait_for(
        &format!("document.getElementById('accounts-foot').textContent === '{ACCOUNTS} accounts'"),
        Duration::from_secs(15),
    )
    .await
    .expect("every account listed");
    Scene {
        rig,
        b,
        labels,
        weekly_locked,
        banned,
        no_plan: (1..=ACCOUNTS)
            .filter(|n| n % 50 == 7)
            .map(|n| by_sim[&sim_ids[n - 1]].0.clone())
            .collect(),
        streams,
        _gate: gate,
    }
}

/// Starts [`IN_FLIGHT`] streamed requests that the simulator stalls after their first event,
/// and waits until the pool counts them in flight.
async fn hold_requests(rig: &Rig) -> Vec<tokio::task::JoinHandle<()>> {
    rig.sim.inject(
        FaultSpec::always(FaultKind::Stall {
            after_events: 1,
            millis: 120_000,
        })
        .times(IN_FLIGHT as u32),
    );
    let mut streams = Vec::new();
    for _ in 0..IN_FLIGHT {
        let body = json!({ "model": "gpt-5.4", "instructions": "be brief", "stream": true,
            "input": [{"role": "user", "content": [{"type": "input_text", "text": "hold"}]}] });
        let req = rig
            .http
            .post(rig.url("/v1/responses"))
            .bearer_auth(crate::admin::rig::CLIENT_KEY)
            .json(&body);
        streams.push(tokio::spawn(async move {
            if let Ok(resp) = req.send().await {
                let _ = resp.bytes().await;
            }
        }));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let pool = rig.get("/admin/pool").await;
        if pool["in_flight"] == IN_FLIGHT {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "requests never held: {pool}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    streams
}

impl Scene {
    /// Saves a screenshot under `target/screenshots/` and prints where.
    pub async fn shot(&mut self, name: &str) {
        let path = super::screenshot_path(name);
        self.b.screenshot(&path).await.expect("screenshot");
        println!("screenshot: {}", path.display());
    }

    /// The rendered account rows from the top, in screen order (the table is virtualised:
    /// only rows near the viewport exist).
    pub async fn rows(&mut self) -> Vec<Value> {
        let v = self
            .b
            .eval(
                r#"Array.from(document.querySelectorAll('#accounts .row'))
                 .sort((a, b) => a.offsetTop - b.offsetTop)
                 .map(r => ({ id: r.dataset.id, top: r.offsetTop,
                   label: r.querySelector('.acct-label').textContent,
                   sub: r.querySelector('.acct-sub').textContent,
                   cells: Array.from(r.children).map(c => c.textContent.trim()),
                   primary: (r.querySelector('.bar[data-bucket=primary]') || {dataset: {}}).dataset.pct,
                   lastUsed: (r.querySelector('[data-at]') || {dataset: {}}).dataset.at }))"#,
            )
            .await
            .expect("rows");
        v.as_array().cloned().unwrap_or_default()
    }

    /// The daemon's view of every account, by id.
    pub async fn accounts(&self) -> HashMap<String, Value> {
        let list = self.rig.get("/admin/accounts").await;
        list["accounts"]
            .as_array()
            .expect("list")
            .iter()
            .map(|a| (a["id"].as_str().unwrap_or_default().to_owned(), a.clone()))
            .collect()
    }

    /// Ends the held requests, then stops browser, daemon and simulator.
    pub async fn end(self) {
        for s in &self.streams {
            s.abort();
        }
        drop(self.b);
        self.rig.shutdown().await;
    }
}
