//! Every answer of FIDELITY.md §B classified as the real programs do (issue 17 item 4), over real
//! sockets against the strict simulator: the usage probe's 403 and `rate_limit: null`, a 403
//! without a deactivation signal, 402 and the empty 404 (refusal cooldowns, failover), the
//! 429s whose reset is in the headers, days away or in another family, `usage_not_included`
//! (one model family off), mid-stream quota failures (the quota learns, no failover) and the
//! request's own mid-stream faults (nobody penalised) — each with what the account's view and
//! explanation say holds it, and until when.

use super::failures::{never_asked_again, until_tried};
use super::stream_once;
use crate::support::{ADMIN_KEY, TestEnv, event_types, start_env};
use codex_rotor::sim::{FaultKind, FaultSpec, FaultTarget};
use rotor_actors::{AccountView, Explanation, Status};
use serde_json::{Value, json};

const MIN: i64 = 60_000;

/// The pool's account id of a simulator account.
async fn account_id(env: &TestEnv, sim_id: &str) -> String {
    env.view_of(sim_id).await.id
}

/// The account's explanation, as `GET /admin/accounts/{id}/explain` gives it (the dashboard's
/// details view reads it).
async fn explain(env: &TestEnv, sim_id: &str) -> Value {
    let id = account_id(env, sim_id).await;
    let resp = env
        .http
        .get(env.url(&format!("/admin/accounts/{id}/explain")))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("admin answers");
    assert_eq!(resp.status(), 200);
    resp.json().await.expect("json")
}

/// The account as `GET /admin/accounts/{id}` gives it (what the dashboard lists).
async fn admin_account(env: &TestEnv, sim_id: &str) -> Value {
    let id = account_id(env, sim_id).await;
    let resp = env
        .http
        .get(env.url(&format!("/admin/accounts/{id}")))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("admin answers");
    assert_eq!(resp.status(), 200);
    resp.json().await.expect("json")
}

/// The pool's own explanation (the same the admin endpoint serialises).
async fn explanation(env: &TestEnv, sim_id: &str) -> Explanation {
    let id = account_id(env, sim_id).await;
    env.state.pool().explain(&id).await.expect("account")
}

/// The one hold of `kind` the view shows, with its end.
fn hold(v: &AccountView, kind: &str) -> Option<i64> {
    v.holds
        .iter()
        .find(|h| h.kind == kind)
        .and_then(|h| h.until)
}

/// Asserts `t` lies within `slack` ms after `now + ms`.
fn about(t: Option<i64>, now: i64, ms: i64, slack: i64, what: &str) {
    let t = t.unwrap_or_else(|| panic!("{what}: no end"));
    assert!(
        (now + ms - slack..=now + ms + slack).contains(&t),
        "{what}: ends {}s from now, expected about {}s",
        (t - now) / 1000,
        ms / 1000
    );
}

/// Every account serves once (round robin), so each knows its windows' lengths.
async fn warm(env: &TestEnv) {
    env.state
        .pool()
        .set_strategy(rotor_actors::Strategy::RoundRobin)
        .await;
    for _ in 0..env.sim_ids.len() {
        let (status, _, body) = stream_once(env, &[]).await;
        assert_eq!(status, 200, "{body}");
    }
}

/// Asks the account to probe `/wham/usage` now and waits until the simulator answered it.
async fn probe(env: &TestEnv, sim_id: &str) {
    let before = env.sim.counters(sim_id).usage_probes;
    let id = account_id(env, sim_id).await;
    env.state.pool().probe(&id).await.expect("probe starts");
    env.eventually("the simulator answered the probe", || async {
        env.sim.counters(sim_id).usage_probes > before
    })
    .await;
}

#[tokio::test]
async fn a_usage_probe_403_is_a_probe_failure_and_rate_limit_null_is_accepted() {
    let env = start_env(1).await;
    let sim_id = env.sim_ids[0].clone();
    env.sim.inject(
        FaultSpec::always(FaultKind::Forbidden)
            .on(FaultTarget::Usage)
            .times(1),
    );
    probe(&env, &sim_id).await;
    // Every probe from now on answers `rate_limit: null`.
    env.sim
        .inject(FaultSpec::always(FaultKind::RateLimitNull).on(FaultTarget::Usage));
    let before = env.view_of(&sim_id).await.quota.fetched_at;
    // The second probe starts once the first one's answer was taken in (one probe at a time),
    // and its answer is taken in after that.
    env.eventually(
        "`rate_limit: null` is a usage answer the quota takes in",
        || async {
            probe(&env, &sim_id).await;
            env.view_of(&sim_id).await.quota.fetched_at > before
        },
    )
    .await;
    let v = env.view_of(&sim_id).await;
    assert_eq!(v.status, Status::Active, "a probe's 403 is never a ban");
    assert_eq!(
        v.derived_status, "active",
        "and `rate_limit: null` locks nothing"
    );
    assert!(v.holds.is_empty(), "{:?}", v.holds);
    assert!(v.quota.locks().is_empty());
    let (status, _, _) = stream_once(&env, &[]).await;
    assert_eq!(status, 200, "the account still serves");
    env.shutdown().await;
}

/// A restart does not lift a refusal cooldown (docs/failures.md): the account's file keeps
/// its step and end, the restarted daemon shows the same hold until the same time and sends
/// the account nothing meanwhile.
#[tokio::test]
async fn a_restart_keeps_a_refusal_cooldown_and_its_end() {
    let mut env = start_env(2).await;
    let bad = env.sim_ids[0].clone();
    env.sim
        .inject(FaultSpec::always(FaultKind::Forbidden).for_account(&bad));
    until_tried(&env, &bad).await;
    let until = hold(&env.view_of(&bad).await, "refused").expect("cooling down");
    env.restart().await;
    let v = env.view_of(&bad).await;
    assert_eq!(
        hold(&v, "refused"),
        Some(until),
        "the same end after the restart"
    );
    assert_eq!(v.derived_status, "cooling_down");
    never_asked_again(&env, &bad).await;
    env.shutdown().await;
}

#[tokio::test]
async fn a_403_without_deactivation_cools_the_account_down_and_fails_over() {
    let env = start_env(2).await;
    let bad = env.sim_ids[0].clone();
    env.sim
        .inject(FaultSpec::always(FaultKind::Forbidden).for_account(&bad));
    let records = until_tried(&env, &bad).await;
    assert_eq!(records.last().map(|r| r.failovers), Some(1), "failed over");
    let now = env.state.now_ms();
    let v = env.view_of(&bad).await;
    assert_eq!(
        v.status,
        Status::Active,
        "not a ban: no deactivation signal"
    );
    assert_eq!(v.derived_status, "cooling_down");
    about(hold(&v, "refused"), now, 30 * MIN, 5_000, "first refusal");
    let e = explain(&env, &bad).await;
    assert_eq!(e["available"], false);
    let reason = e["reasons"][0].as_str().unwrap_or_default();
    assert!(reason.contains("403") && reason.contains("flagged"), "{e}");
    assert_eq!(e["holds"][0]["kind"], "refused", "{e}");
    assert!(
        e["until_in"]
            .as_str()
            .is_some_and(|s| s.starts_with("29m") || s.starts_with("30m")),
        "{e}"
    );
    // `codex-rotor accounts explain` says the same to the operator.
    let (url, id) = (env.url(""), account_id(&env, &bad).await);
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_codex-rotor"))
            .args(["accounts", "--admin-url", &url, "--admin-key", ADMIN_KEY])
            .args(["explain", &id])
            .output()
            .expect("codex-rotor runs")
    })
    .await
    .expect("joined");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("not available"), "{text}");
    assert!(
        text.contains("refused: upstream refused the account (403)") && text.contains("(in 29m"),
        "{text}"
    );
    never_asked_again(&env, &bad).await;
    let summary = env.state.pool().summary().await;
    assert_eq!(summary.refused, 1);
    env.shutdown().await;
}

#[tokio::test]
async fn payment_required_and_an_empty_404_cool_the_account_and_fail_over() {
    for kind in [FaultKind::PaymentRequired, FaultKind::NotFoundEmpty] {
        let env = start_env(2).await;
        let bad = env.sim_ids[0].clone();
        env.sim
            .inject(FaultSpec::always(kind.clone()).for_account(&bad));
        // until_tried asserts every answer was a 200: the client never saw the refusal.
        until_tried(&env, &bad).await;
        let now = env.state.now_ms();
        let v = env.view_of(&bad).await;
        assert_eq!(v.status, Status::Active, "{kind:?}");
        about(
            hold(&v, "refused"),
            now,
            30 * MIN,
            5_000,
            &format!("{kind:?}"),
        );
        never_asked_again(&env, &bad).await;
        env.shutdown().await;
    }
}

#[tokio::test]
async fn a_weekly_429_locks_the_weekly_window_until_its_real_reset() {
    let env = start_env(2).await;
    warm(&env).await;
    let bad = env.sim_ids[0].clone();
    let weekly = 471_284;
    env.sim.inject(
        FaultSpec::always(FaultKind::UsageLimitWeekly {
            resets_in_seconds: weekly,
        })
        .for_account(&bad)
        .times(1),
    );
    until_tried(&env, &bad).await;
    let now = env.state.now_ms();
    let v = env.view_of(&bad).await;
    assert_eq!(v.derived_status, "rate_limited");
    let secondary = v.quota.secondary.clone().expect("weekly bucket");
    assert!(
        secondary.limit_reached,
        "the reset lies beyond the 5 h window"
    );
    about(
        secondary.lock_until(),
        now,
        weekly as i64 * 1000,
        5_000,
        "weekly lock (re-probed then if the window's own reset is later, rule 5)",
    );
    let e = explanation(&env, &bad).await;
    about(e.until, now, weekly as i64 * 1000, 5_000, "explain");
    never_asked_again(&env, &bad).await;
    env.shutdown().await;
}

#[tokio::test]
async fn a_short_429_is_a_short_lock_and_a_headers_only_429_uses_the_headers_reset() {
    let env = start_env(2).await;
    warm(&env).await;
    let bad = env.sim_ids[0].clone();
    env.sim.inject(
        FaultSpec::always(FaultKind::UsageLimitWeekly {
            resets_in_seconds: 30,
        })
        .for_account(&bad)
        .times(1),
    );
    until_tried(&env, &bad).await;
    let now = env.state.now_ms();
    let v = env.view_of(&bad).await;
    about(hold(&v, "quota"), now, 30_000, 5_000, "short 429");
    let j = admin_account(&env, &bad).await;
    let shown = j["holds"]
        .as_array()
        .and_then(|h| h.iter().find(|h| h["kind"] == "quota"))
        .and_then(|h| h["until"].as_i64());
    about(
        shown,
        now,
        30_000,
        5_000,
        "the admin JSON the dashboard reads",
    );
    assert!(
        v.quota.secondary.as_ref().is_some_and(|b| !b.limit_reached),
        "a short 429 is not the weekly window"
    );
    env.shutdown().await;

    let env = start_env(2).await;
    warm(&env).await;
    let bad = env.sim_ids[0].clone();
    let primary_reset = env
        .view_of(&bad)
        .await
        .quota
        .primary
        .and_then(|b| b.reset_at);
    env.sim.inject(
        FaultSpec::always(FaultKind::UsageLimitHeadersOnly)
            .for_account(&bad)
            .times(1),
    );
    until_tried(&env, &bad).await;
    let v = env.view_of(&bad).await;
    let primary = v.quota.primary.clone().expect("primary");
    assert!(primary.limit_reached, "{:?}", v.quota);
    assert!(primary_reset.is_some());
    // Both resets come from `reset-after-seconds` read at two instants: whole seconds, so
    // they may differ by one; a minute's guess would be far off.
    let (got, want) = (
        primary.reset_at.expect("reset"),
        primary_reset.expect("reset"),
    );
    assert!(
        (got - want).abs() <= 1_000,
        "no reset in the body: the window's reset from the 429's own headers, not a minute \
         ({got} vs {want})"
    );
    env.shutdown().await;
}

#[tokio::test]
async fn a_429_from_another_limit_family_lasts_until_that_familys_reset() {
    let env = start_env(2).await;
    warm(&env).await;
    let bad = env.sim_ids[0].clone();
    let days = 3 * 24 * 3600;
    env.sim.inject(
        FaultSpec::always(FaultKind::OtherFamilyLimit {
            resets_in_seconds: days,
        })
        .for_account(&bad)
        .times(1),
    );
    until_tried(&env, &bad).await;
    let now = env.state.now_ms();
    let v = env.view_of(&bad).await;
    let other = v
        .quota
        .extra
        .get("codex_other")
        .expect("the family is known");
    assert!(other.primary.as_ref().is_some_and(|b| b.limit_reached));
    let e = explanation(&env, &bad).await;
    assert!(
        !e.available,
        "the model the family metered is off this account"
    );
    about(e.until, now, days as i64 * 1000, 5_000, "family lock");
    assert!(
        e.holds
            .iter()
            .any(|h| h.kind == "quota" && h.reason.contains("codex_other")),
        "{:?}",
        e.holds
    );
    never_asked_again(&env, &bad).await;
    env.shutdown().await;
}

#[tokio::test]
async fn usage_not_included_keeps_the_account_off_that_model_family_only() {
    let env = start_env(2).await;
    env.state
        .pool()
        .set_strategy(rotor_actors::Strategy::RoundRobin)
        .await;
    let bad = env.sim_ids[0].clone();
    env.sim.inject(
        FaultSpec::always(FaultKind::UsageNotIncluded)
            .for_account(&bad)
            .times(1),
    );
    let spark = json!({"model": "gpt-5.3-codex-spark", "stream": true, "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}]});
    let mut asked = false;
    for _ in 0..3 {
        let resp = env.responses(&spark).await;
        assert_eq!(resp.status(), 200, "another account serves the spark model");
        let body = resp.text().await.expect("body");
        assert_eq!(
            event_types(&body).last().map(String::as_str),
            Some("response.completed")
        );
        if env.sim.counters(&bad).requests > 0 {
            asked = true;
            break;
        }
    }
    assert!(asked, "the account was tried");
    let now = env.state.now_ms();
    let v = env.view_of(&bad).await;
    assert_eq!(v.derived_status, "active", "not a lock of the main models");
    about(
        hold(&v, "not_included"),
        now,
        24 * 60 * MIN,
        5_000,
        "not included",
    );
    let before = env.sim.counters(&bad).requests;
    for _ in 0..3 {
        assert_eq!(env.responses(&spark).await.status(), 200);
    }
    assert_eq!(
        env.sim.counters(&bad).requests,
        before,
        "never asked for that family again"
    );
    for _ in 0..3 {
        let (status, _, _) = stream_once(&env, &[]).await;
        assert_eq!(status, 200);
    }
    assert!(
        env.sim.counters(&bad).requests > before,
        "still serves the main models"
    );
    env.shutdown().await;
}

#[tokio::test]
async fn a_mid_stream_quota_failure_teaches_the_quota_and_is_not_failed_over() {
    let cases = [
        FaultKind::ResponseFailed {
            code: "usage_limit_reached".into(),
            after_events: 2,
        },
        FaultKind::ResponseFailed {
            code: "insufficient_quota".into(),
            after_events: 2,
        },
        FaultKind::ErrorEvent {
            after_events: 2,
            code: Some("rate_limit_exceeded".into()),
        },
    ];
    for kind in cases {
        let env = start_env(1).await;
        let id = env.sim_ids[0].clone();
        env.sim.inject(FaultSpec::always(kind.clone()).times(1));
        let (status, _, body) = stream_once(&env, &[]).await;
        assert_eq!(status, 200, "the client already had the head: {kind:?}");
        assert_eq!(
            event_types(&body).last().map(String::as_str),
            Some("response.failed"),
            "{kind:?}"
        );
        let rec = env.last_record();
        assert_eq!(rec.failovers, 0, "no failover after bytes");
        env.eventually("the account's quota learned the failure", || async {
            env.view_of(&id).await.derived_status == "rate_limited"
        })
        .await;
        let now = env.state.now_ms();
        let v = env.view_of(&id).await;
        about(hold(&v, "quota"), now, MIN, 5_000, &format!("{kind:?}"));
        env.shutdown().await;
    }
}

#[tokio::test]
async fn a_mid_stream_request_fault_penalises_nobody() {
    for code in [
        "context_length_exceeded",
        "cyber_policy",
        "invalid_prompt",
        "invalid_request_error",
    ] {
        let env = start_env(1).await;
        let id = env.sim_ids[0].clone();
        env.sim.inject(
            FaultSpec::always(FaultKind::ResponseFailed {
                code: code.into(),
                after_events: 2,
            })
            .times(1),
        );
        let (status, _, body) = stream_once(&env, &[]).await;
        assert_eq!(status, 200);
        assert_eq!(
            event_types(&body).last().map(String::as_str),
            Some("response.failed")
        );
        // The next request is handled after anything the first one reported.
        let (status, _, _) = stream_once(&env, &[]).await;
        assert_eq!(status, 200, "{code}: the account still serves");
        let v = env.view_of(&id).await;
        assert_eq!(v.derived_status, "active", "{code}");
        assert!(v.holds.is_empty(), "{code}: {:?}", v.holds);
        assert_eq!(v.usage.failures, 0, "{code}: no failure counted");
        env.shutdown().await;
    }
}
