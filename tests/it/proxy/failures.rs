//! Every row of docs/failures.md over real sockets: what the account becomes, what
//! the request does (fail over before any byte, retry, or answer as is), and the pool's own
//! answers when no account can serve (429 exhausted, 503 with the reason).

use super::stream_once;
use crate::support::{TestEnv, event_types, responses_body, start_env, start_env_with};
use codex_rotor::sim::{FaultKind, FaultSpec, SimOptions};
use serde_json::Value;

/// Sends streamed requests until the simulator account `sim_id` has been asked once (the pool
/// only learns an account is bad by trying it); returns every request's record.
pub(super) async fn until_tried(env: &TestEnv, sim_id: &str) -> Vec<codex_rotor::RequestRecord> {
    // least_used keeps spending the account whose window resets first, so an account never
    // used might never be asked; round robin reaches every account within n requests.
    env.state
        .pool()
        .set_strategy(rotor_actors::Strategy::RoundRobin)
        .await;
    let mut records = Vec::new();
    let before = env.sim.counters(sim_id).requests;
    for _ in 0..env.sim_ids.len() + 1 {
        let (status, _, body) = stream_once(env, &[]).await;
        assert_eq!(
            status, 200,
            "the pool routes around the bad account: {body}"
        );
        assert_eq!(
            event_types(&body).last().map(String::as_str),
            Some("response.completed")
        );
        records.push(env.last_record());
        if env.sim.counters(sim_id).requests > before {
            return records;
        }
    }
    panic!("account {sim_id} was never tried");
}

/// After the bad account was found, it is not asked again.
pub(super) async fn never_asked_again(env: &TestEnv, sim_id: &str) {
    let before = env.sim.counters(sim_id).requests;
    for _ in 0..3 {
        let (status, _, _) = stream_once(env, &[]).await;
        assert_eq!(status, 200);
    }
    assert_eq!(
        env.sim.counters(sim_id).requests,
        before,
        "{sim_id} stays out of rotation"
    );
}

#[tokio::test]
async fn usage_limit_429_locks_the_account_and_fails_over_before_any_byte() {
    let env = start_env(2).await;
    let bad = env.sim_ids[0].clone();
    env.sim.set_usage(&bad, 100.0, 10.0);
    let records = until_tried(&env, &bad).await;
    let hit = records.last().expect("record");
    assert_eq!((hit.upstream_429s, hit.failovers), (1, 1), "{hit:?}");
    assert_eq!(env.sim.counters(&bad).served_429, 1);
    let view = env.view_of(&bad).await;
    assert_eq!(view.derived_status, "rate_limited");
    assert_eq!(
        format!("{:?}", view.status),
        "Active",
        "a 429 never changes the lifecycle status"
    );
    never_asked_again(&env, &bad).await;
    env.shutdown().await;
}

#[tokio::test]
async fn exhausted_pool_answers_429_usage_limit_with_retry_after() {
    let env = start_env(2).await;
    for id in &env.sim_ids {
        env.sim.set_usage(id, 100.0, 10.0);
    }
    let resp = env.responses(&responses_body(true)).await;
    assert_eq!(resp.status(), 429);
    let retry_after: u64 = resp.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!(retry_after >= 1);
    let v: Value = resp.json().await.expect("json");
    assert_eq!(v["error"]["type"], "usage_limit_reached");
    assert!(
        v["error"]["resets_at"]
            .as_i64()
            .is_some_and(|t| t > 1_700_000_000),
        "{v}"
    );
    assert!(v["error"]["resets_in_seconds"].as_u64().is_some(), "{v}");
    let asked = env.upstream_requests();
    assert_eq!(asked, 2, "each account tried once, then the pool knows");
    // The pool now answers from its own quota truth, without asking upstream.
    let again = env.responses(&responses_body(false)).await;
    assert_eq!(again.status(), 429);
    assert!(again.headers().contains_key("retry-after"));
    assert_eq!(env.upstream_requests(), asked);
    let ready = env
        .http
        .get(env.url("/readyz"))
        .send()
        .await
        .expect("answer");
    assert_eq!(ready.status(), 503, "an all-exhausted pool is not serving");
    env.shutdown().await;
}

#[tokio::test]
async fn unauthorized_account_is_refreshed_and_the_request_fails_over() {
    let env = start_env(2).await;
    let bad = env.sim_ids[0].clone();
    env.sim.expire_access_token(&bad);
    let records = until_tried(&env, &bad).await;
    assert_eq!(records.last().map(|r| r.failovers), Some(1));
    assert_eq!(env.sim.counters(&bad).served_401, 1);
    env.eventually("the 401 account refreshed its tokens", || async {
        env.sim.counters(&bad).refreshes == 1
    })
    .await;
    env.eventually("and is active again", || async {
        env.view_of(&bad).await.derived_status == "active"
    })
    .await;
    env.shutdown().await;
}

#[tokio::test]
async fn banned_and_deactivated_accounts_are_benched_and_requests_fail_over() {
    let env = start_env(3).await;
    let (banned, deactivated) = (env.sim_ids[0].clone(), env.sim_ids[1].clone());
    env.sim.ban(&banned);
    env.sim.deactivate(&deactivated);
    until_tried(&env, &banned).await;
    if env.sim.counters(&deactivated).requests == 0 {
        until_tried(&env, &deactivated).await;
    }
    assert_eq!(env.view_of(&banned).await.derived_status, "banned");
    let d = env.view_of(&deactivated).await;
    assert_eq!(d.derived_status, "banned");
    assert!(d.status_reason.unwrap_or_default().contains("deactivated"));
    never_asked_again(&env, &banned).await;
    never_asked_again(&env, &deactivated).await;
    env.shutdown().await;
}

#[tokio::test]
async fn cloudflare_challenge_is_a_cooldown_not_a_ban() {
    let env = start_env(2).await;
    let bad = env.sim_ids[0].clone();
    env.sim
        .inject(FaultSpec::always(FaultKind::Cloudflare).for_account(&bad));
    until_tried(&env, &bad).await;
    let v = env.view_of(&bad).await;
    assert_eq!(v.derived_status, "cooling_down");
    assert_eq!(format!("{:?}", v.status), "Active");
    assert!(v.cooldown_until.is_some());
    never_asked_again(&env, &bad).await;
    env.shutdown().await;
}

#[tokio::test]
async fn transient_5xx_is_retried_on_the_same_account_then_elsewhere() {
    let env = start_env(2).await;
    // One 500: retried once on the same account, which then answers.
    env.sim
        .inject(FaultSpec::always(FaultKind::ServerError).times(1));
    let (status, _, _) = stream_once(&env, &[]).await;
    assert_eq!(status, 200);
    let rec = env.last_record();
    assert_eq!((rec.retries, rec.failovers), (1, 0), "{rec:?}");
    assert_eq!(env.upstream_requests(), 2);
    // An account that keeps answering 503 overloaded: bounded retry, then another account.
    let bad = env.sim_ids[0].clone();
    env.sim
        .inject(FaultSpec::always(FaultKind::Overloaded).for_account(&bad));
    let before = env.sim.counters(&bad).requests;
    let records = until_tried(&env, &bad).await;
    let hit = records.last().expect("record");
    assert_eq!((hit.retries, hit.failovers), (1, 1), "{hit:?}");
    assert_eq!(
        env.sim.counters(&bad).requests - before,
        2,
        "1 try + max_retries_per_account (1)"
    );
    assert_eq!(
        env.view_of(&bad).await.status,
        rotor_actors::Status::Active,
        "transient: no lifecycle change"
    );
    env.shutdown().await;
}

/// The only account with quota left fails with 5xx for this request; every other account is
/// locked. The pool is not out of quota, so the client gets the upstream failure (and retries
/// soon), not "usage limit reached" with a reset hours away.
#[tokio::test]
async fn a_5xx_on_the_last_account_with_quota_is_not_reported_as_an_exhausted_pool() {
    let env = start_env(2).await;
    let (good, spent) = (env.sim_ids[0].clone(), env.sim_ids[1].clone());
    env.sim.set_usage(&spent, 100.0, 10.0);
    until_tried(&env, &spent).await;
    env.sim
        .inject(FaultSpec::always(FaultKind::Overloaded).for_account(&good));
    let resp = env.responses(&responses_body(true)).await;
    let status = resp.status().as_u16();
    let v: Value = resp.json().await.expect("json");
    assert_eq!(status, 503, "the upstream failure, not exhaustion: {v}");
    assert_ne!(v["error"]["type"], "usage_limit_reached", "{v}");
    assert_eq!(
        env.view_of(&good).await.derived_status,
        "active",
        "a transient failure benches nothing"
    );
    env.shutdown().await;
}

/// The request's own account fails with 5xx, it fails over, and the other account answers 429
/// (it ran out, the pool did not know yet). The pool is not exhausted: the first account still
/// has quota. So the client gets the 5xx, not the second account's reset hours away.
#[tokio::test]
async fn a_5xx_then_a_429_answers_the_5xx_while_the_pool_is_not_exhausted() {
    let env = start_env(2).await;
    let mut body = responses_body(true);
    body["prompt_cache_key"] = "thread-5xx".into();
    let first = env.responses(&body).await;
    assert_eq!(first.status(), 200);
    let _ = first.text().await;
    // The conversation sticks to its account: it is asked first next time.
    let own = env
        .sim_id_of(&env.last_record().account_id.expect("account"))
        .await;
    let other = env
        .sim_ids
        .iter()
        .find(|id| **id != own)
        .expect("a second account")
        .clone();
    env.sim.set_usage(&other, 100.0, 10.0);
    env.sim
        .inject(FaultSpec::always(FaultKind::Overloaded).for_account(&own));
    let resp = env.responses(&body).await;
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    let rec = env.last_record();
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{status} {text}"));
    assert_eq!(
        (rec.failovers, rec.upstream_429s),
        (1, 1),
        "own account first, then the other's 429: {rec:?}"
    );
    assert_eq!(status, 503, "the 5xx, not exhaustion: {v}");
    assert_ne!(v["error"]["type"], "usage_limit_reached", "{v}");
    env.shutdown().await;
}

#[tokio::test]
async fn unreachable_upstream_is_bounded_and_answers_502() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_addr = dead.local_addr().expect("addr");
    drop(dead);
    let env = start_env_with(SimOptions::default(), 4, move |cfg, _| {
        cfg.upstream.base_url = format!("http://{dead_addr}/backend-api");
    })
    .await;
    let resp = env.responses(&responses_body(true)).await;
    assert_eq!(resp.status(), 502);
    let v: Value = resp.json().await.expect("json");
    assert_eq!(v["error"]["code"], "upstream_unreachable");
    let rec = env.last_record();
    assert_eq!(
        rec.failovers + 1,
        3,
        "bounded by upstream.max_accounts_per_request: {rec:?}"
    );
    assert_eq!(rec.retries, 3, "one retry per account");
    env.shutdown().await;
}

#[tokio::test]
async fn request_fault_400_is_returned_as_is_and_penalises_nobody() {
    let opts = SimOptions {
        reject_unknown_models: true,
        ..SimOptions::default()
    };
    let env = start_env_with(opts, 2, |_, _| {}).await;
    let mut body = responses_body(true);
    body["model"] = "no-such-model".into();
    let resp = env.responses(&body).await;
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.expect("json");
    assert!(
        v["detail"]
            .as_str()
            .is_some_and(|d| d.contains("no-such-model")),
        "upstream body passed through: {v}"
    );
    assert_eq!(env.upstream_requests(), 1, "not retried, not failed over");
    for v in env.views().await {
        assert_eq!(v.derived_status, "active");
        assert_eq!(v.usage.failures, 0);
    }
    env.shutdown().await;
}

#[tokio::test]
async fn no_usable_account_is_503_saying_why() {
    let env = start_env(2).await;
    for v in env.views().await {
        env.state
            .pool()
            .set_enabled(&v.id, false)
            .await
            .expect("disable");
    }
    let resp = env.responses(&responses_body(true)).await;
    assert_eq!(resp.status(), 503);
    let v: Value = resp.json().await.expect("json");
    assert_eq!(v["error"]["code"], "no_available_accounts");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("2 disabled")),
        "{v}"
    );
    assert_eq!(env.upstream_requests(), 0);
    env.shutdown().await;
}
