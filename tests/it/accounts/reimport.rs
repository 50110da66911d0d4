//! Importing accounts the pool already has (issue 15 item 1): the same file again, yesterday's
//! export, fresh tokens while a refresh is stuck. One merge rule decides on both paths — the
//! running daemon's admin API and the offline `accounts --data-dir` command — and it never
//! replaces a refresh token the pool has rotated since; the report names the accounts that kept
//! their own tokens (`kept_newer`). Against the simulator, whose token endpoint refuses a
//! refresh token used twice, so a stale token put back would show at the next refresh.

use super::bin::{Serve, config, free_port, offline, ok, records, wait_until};
use crate::support::{ADMIN_KEY, TestEnv, responses_body, start_env};
use codex_rotor::HttpRefresher;
use codex_rotor::sim::{AccountSpec, FaultKind, FaultSpec, FaultTarget};
use rotor_actors::{AccountRecord, RefreshReason, Status, TokenRefresher};
use serde_json::{Value, json};
use std::time::Duration;

/// `POST /admin/accounts/import` with the admin key; the answer, which must be 200.
async fn import(env: &TestEnv, file: &str) -> Value {
    let r = env
        .http
        .post(env.url("/admin/accounts/import"))
        .bearer_auth(ADMIN_KEY)
        .body(file.to_owned())
        .send()
        .await
        .expect("import");
    let status = r.status();
    let body: Value = r.json().await.expect("JSON answer");
    assert_eq!(status, 200, "{body}");
    body
}

/// The ids listed under `key` of an import answer.
fn ids(answer: &Value, key: &str) -> Vec<String> {
    answer[key]
        .as_array()
        .unwrap_or_else(|| panic!("no `{key}` list in {answer}"))
        .iter()
        .map(|v| v.as_str().expect("id").to_owned())
        .collect()
}

/// The pool's record of its only account (with tokens: the admin export path).
async fn only(env: &TestEnv) -> AccountRecord {
    let mut recs = env.state.pool().export().await;
    assert_eq!(recs.len(), 1, "one account in the pool");
    recs.remove(0)
}

/// Waits (15 s at most) until `cond` holds for the pool's only account.
async fn wait_record(env: &TestEnv, what: &str, cond: impl Fn(&AccountRecord) -> bool) {
    for _ in 0..300 {
        let recs = env.state.pool().export().await;
        if recs.len() == 1 && cond(&recs[0]) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "never: {what}; pool has {:?}",
        env.state.pool().accounts().await
    );
}

/// Makes the account rotate now: its access tokens expire upstream, and a probe meets the 401.
async fn force_refresh(env: &TestEnv, sim_id: &str, id: &str) {
    env.sim.expire_access_token(sim_id);
    let r = env
        .http
        .post(env.url(&format!("/admin/accounts/{id}/probe")))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("probe");
    assert_eq!(r.status(), 202);
}

/// Waits until the simulator counted `n` successful refreshes of `sim_id`, or a reuse.
async fn wait_refreshes(env: &TestEnv, sim_id: &str, n: u64) {
    let sim = env.sim.clone();
    let id = sim_id.to_owned();
    let done = wait_until(Duration::from_secs(15), move || {
        let c = sim.counters(&id);
        c.refreshes >= n || c.refresh_reused > 0
    })
    .await;
    assert!(done, "no refresh happened");
}

/// A request through the daemon is served (by the only account).
async fn serves(env: &TestEnv) {
    let r = env.responses(&responses_body(false)).await;
    let status = r.status();
    assert_eq!(status, 200, "{}", r.text().await.unwrap_or_default());
}

#[tokio::test]
async fn the_same_refresh_token_file_imported_twice_leaves_one_account() {
    let env = start_env(0).await;
    let acct = env.sim.create_account(AccountSpec::default());
    let rt0 = acct.auth_json["tokens"]["refresh_token"]
        .as_str()
        .expect("rt")
        .to_owned();
    let file = format!("{rt0}\n");
    let first = import(&env, &file).await;
    let id = ids(&first, "added").pop().expect("added");
    let again = import(&env, &file).await;
    assert_eq!(env.views().await.len(), 1, "{again}");
    assert!(ids(&again, "added").is_empty(), "{again}");

    // The refresh-only account rotates at once; the same file a third time is now stale.
    wait_refreshes(&env, &acct.id, 1).await;
    wait_record(&env, "rotated", |r| {
        r.tokens.refresh_token.as_deref() != Some(rt0.as_str()) && r.refresh_intent.is_none()
    })
    .await;
    let rotated = only(&env).await.tokens.refresh_token;
    let third = import(&env, &file).await;
    assert_eq!(env.views().await.len(), 1, "{third}");
    assert_eq!(ids(&third, "kept_newer"), vec![id.clone()], "{third}");
    assert_eq!(only(&env).await.tokens.refresh_token, rotated);
    serves(&env).await;
    assert_eq!(env.sim.counters(&acct.id).refresh_reused, 0);
    env.shutdown().await;
}

#[tokio::test]
async fn an_old_export_imported_after_a_rotation_keeps_the_rotated_token() {
    let env = start_env(1).await;
    let sim_id = env.sim_ids[0].clone();
    let id = only(&env).await.id;
    let old_export = env
        .http
        .get(env.url("/admin/accounts/export"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("export")
        .text()
        .await
        .expect("body");
    let rt0 = only(&env).await.tokens.refresh_token;

    force_refresh(&env, &sim_id, &id).await;
    wait_refreshes(&env, &sim_id, 1).await;
    wait_record(&env, "rotated and active", |r| {
        r.tokens.refresh_token != rt0 && r.status == Status::Active && r.refresh_intent.is_none()
    })
    .await;
    let rt1 = only(&env).await.tokens.refresh_token;

    let answer = import(&env, &old_export).await;
    assert_eq!(ids(&answer, "kept_newer"), vec![id.clone()], "{answer}");
    assert!(ids(&answer, "updated").is_empty(), "{answer}");
    assert_eq!(
        only(&env).await.tokens.refresh_token,
        rt1,
        "the rotated token stays"
    );

    // Its next rotation spends the token the pool kept: the simulator accepts it.
    force_refresh(&env, &sim_id, &id).await;
    wait_refreshes(&env, &sim_id, 2).await;
    assert_eq!(
        env.sim.counters(&sim_id).refresh_reused,
        0,
        "no stale token was spent"
    );
    wait_record(&env, "active after the next refresh", |r| {
        r.status == Status::Active && r.tokens.refresh_token != rt1
    })
    .await;
    serves(&env).await;
    env.shutdown().await;
}

#[tokio::test]
async fn fresh_tokens_imported_while_a_refresh_is_stuck_clear_its_intent_and_win() {
    let env = start_env(1).await;
    let sim_id = env.sim_ids[0].clone();
    let id = only(&env).await.id;
    // The pool's next call to the token endpoint hangs for 5 s.
    env.sim.inject(
        FaultSpec::always(FaultKind::Silence { millis: 5_000 })
            .on(FaultTarget::Token)
            .times(1),
    );
    force_refresh(&env, &sim_id, &id).await;
    let sim = env.sim.clone();
    assert!(
        wait_until(Duration::from_secs(10), move || sim.total_counters().faults
            >= 1)
        .await,
        "the pool's refresh reached the token endpoint"
    );
    let stuck = only(&env).await;
    assert!(
        stuck.refresh_intent.is_some(),
        "the intent is durable while the refresh is out"
    );

    // Meanwhile the operator signs the account in elsewhere (Codex CLI) and imports the result.
    let rt = stuck.tokens.refresh_token.clone().expect("rt");
    let fresh = HttpRefresher::new(reqwest::Client::new(), env.sim.token_url())
        .refresh(rt, RefreshReason::ProactiveExpiry)
        .await
        .expect("the operator's refresh");
    let new_rt = fresh.refresh_token.clone().expect("new rt");
    let auth = json!({
        "auth_mode": "chatgpt",
        "tokens": {"access_token": fresh.access_token, "refresh_token": new_rt,
                   "id_token": fresh.id_token, "account_id": sim_id},
        "last_refresh": humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
    });
    let answer = import(&env, &auth.to_string()).await;
    assert_eq!(ids(&answer, "updated"), vec![id.clone()], "{answer}");
    let merged = only(&env).await;
    assert_eq!(
        merged.refresh_intent, None,
        "the imported tokens supersede the stuck rotation"
    );
    assert_eq!(
        merged.tokens.refresh_token.as_deref(),
        Some(new_rt.as_str())
    );

    // The stuck refresh now spends the old token and is refused as reused: that answer is about
    // tokens the account no longer holds and must not put it to "needs login".
    let sim = env.sim.clone();
    let sid = sim_id.clone();
    assert!(
        wait_until(Duration::from_secs(10), move || sim
            .counters(&sid)
            .refresh_reused
            >= 1)
        .await,
        "the stuck refresh came back"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = only(&env).await;
    assert_eq!(after.status, Status::Active, "{:?}", after.status_reason);
    assert_eq!(after.tokens.refresh_token.as_deref(), Some(new_rt.as_str()));
    serves(&env).await;
    env.shutdown().await;
}

/// The record file of account `id` in `data`, read without touching the directory (a daemon
/// may be writing it).
fn on_disk(data: &std::path::Path, id: &str) -> AccountRecord {
    let bytes = std::fs::read(data.join(format!("accounts/{id}.json"))).expect("record file");
    serde_json::from_slice(&bytes).expect("record")
}

/// Makes the `serve` daemon at `url` rotate account `id` now (its access token expires
/// upstream; a probe meets the 401), and waits for the rotation to be durable.
async fn rotate_via(
    url: &str,
    sim: &codex_rotor::sim::SimHandle,
    sim_id: &str,
    data: &std::path::Path,
    id: &str,
) {
    let before = sim.counters(sim_id).refreshes;
    let rt = on_disk(data, id).tokens.refresh_token;
    sim.expire_access_token(sim_id);
    let r = reqwest::Client::new()
        .post(format!("{url}/admin/accounts/{id}/probe"))
        .send()
        .await
        .expect("probe");
    assert_eq!(r.status(), 202);
    let (s, sid) = (sim.clone(), sim_id.to_owned());
    assert!(
        wait_until(Duration::from_secs(15), move || {
            let c = s.counters(&sid);
            c.refreshes > before || c.refresh_reused > 0
        })
        .await,
        "no refresh"
    );
    assert_eq!(
        sim.counters(sim_id).refresh_reused,
        0,
        "no stale token was spent"
    );
    let (d, i) = (data.to_path_buf(), id.to_owned());
    assert!(
        wait_until(Duration::from_secs(5), move || {
            let r = on_disk(&d, &i);
            r.tokens.refresh_token != rt && r.refresh_intent.is_none()
        })
        .await,
        "the rotation is durable"
    );
}

#[tokio::test]
async fn offline_an_old_export_after_a_rotation_keeps_the_rotated_token_and_intents_clear() {
    let sim = crate::tokens::sim().await;
    let acct = sim.create_account(AccountSpec::default());
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let auth = tmp.path().join("auth.json");
    std::fs::write(&auth, acct.auth_json.to_string()).expect("write");
    ok(&offline(
        &data,
        &["add", "--auth-json", auth.to_str().expect("utf8")],
        &[],
    ));
    let old = tmp.path().join("old-export.json");
    std::fs::write(&old, ok(&offline(&data, &["export"], &[]))).expect("export saved");
    let id = records(&data)[0].id.clone();

    // Rotations happen only when the test asks (an upstream 401), one at a time.
    let extra = "[refresh]\nenabled = false\n[pool]\ntick = \"100ms\"\n";
    let port = free_port();
    let daemon = Serve::start(&config(tmp.path(), &data, port, Some(&sim), extra), port);
    rotate_via(&daemon.url(), &sim, &acct.id, &data, &id).await;
    daemon.kill();
    let rotated = records(&data).remove(0);

    let out = ok(&offline(
        &data,
        &["import", old.to_str().expect("utf8")],
        &[],
    ));
    let report: Value = serde_json::from_str(&out).expect("report is JSON");
    assert_eq!(ids(&report, "kept_newer"), vec![id.clone()], "{report}");
    let kept = records(&data).remove(0);
    assert_eq!(kept.tokens.refresh_token, rotated.tokens.refresh_token);

    // The daemon's next rotation spends the kept token, and the simulator accepts it.
    let daemon = Serve::start(&config(tmp.path(), &data, port, Some(&sim), extra), port);
    rotate_via(&daemon.url(), &sim, &acct.id, &data, &id).await;
    daemon.kill();
    let after = records(&data).remove(0);
    assert_eq!(after.status, Status::Active, "{:?}", after.status_reason);

    // A rotation left half-done (its intent on disk) is superseded by freshly imported tokens.
    let mut pending = after.clone();
    pending.refresh_intent = Some(rotor_actors::RefreshIntent {
        started_at: after.added_at,
        reason: RefreshReason::ProactiveExpiry,
    });
    let (store, _, _) = codex_rotor::store::FileStore::open(&data).expect("store");
    rotor_actors::Store::save(&store, &pending).expect("seeded");
    drop(store);
    let fresh = HttpRefresher::new(reqwest::Client::new(), sim.token_url())
        .refresh(
            after.tokens.refresh_token.expect("rt"),
            RefreshReason::ProactiveExpiry,
        )
        .await
        .expect("the operator's refresh");
    let new_rt = fresh.refresh_token.clone().expect("new rt");
    let file = tmp.path().join("fresh.json");
    let doc = json!({"tokens": {"access_token": fresh.access_token, "refresh_token": new_rt,
        "id_token": fresh.id_token, "account_id": acct.id},
        "last_refresh": humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()});
    std::fs::write(&file, doc.to_string()).expect("write");
    let out = ok(&offline(
        &data,
        &["import", file.to_str().expect("utf8")],
        &[],
    ));
    let report: Value = serde_json::from_str(&out).expect("report is JSON");
    assert_eq!(ids(&report, "updated"), vec![id.clone()], "{report}");
    let cured = records(&data).remove(0);
    assert_eq!(cured.refresh_intent, None);
    assert_eq!(cured.tokens.refresh_token.as_deref(), Some(new_rt.as_str()));
    sim.shutdown().await;
}
