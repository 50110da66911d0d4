//! The actors at work, on tokio's paused clock with in-memory effects: leases under the cap,
//! quota locks and their release, Cloudflare cooldown, failure classes, operator operations,
//! runtime strategy switch and restart of a failed actor from its durable record.

use std::time::Duration;

use rotor_actors::quota::{Observation, Rejection429, RejectionKind, Window};
use rotor_actors::{
    PickError, PickRequest, PoolConfig, PoolHandle, Status, Strategy, UpstreamFailure, Usage,
};

use crate::fakes::{Fx, record};
use crate::support::{H, S, T0};

pub fn cfg() -> PoolConfig {
    PoolConfig {
        max_leases_per_account: 2,
        tick: Duration::from_secs(1),
        refresh_jitter: Duration::ZERO,
        ..PoolConfig::default()
    }
}

pub fn req() -> PickRequest {
    PickRequest {
        model: "gpt-5.5".into(),
        ..PickRequest::default()
    }
}

/// Lets casts and timers run (paused time advances only when everything is idle).
pub async fn settle(d: Duration) {
    tokio::time::sleep(d).await;
}

#[tokio::test(start_paused = true)]
async fn leases_respect_the_per_account_cap_and_release_on_drop() {
    let fx = Fx::new();
    let pool = PoolHandle::start(cfg(), fx.effects(), vec![record("a", None)])
        .await
        .expect("pool");
    settle(Duration::from_millis(10)).await;
    let mut l1 = pool.pick(req()).await.expect("first lease");
    let l2 = pool.pick(req()).await.expect("second lease");
    assert!(
        matches!(pool.pick(req()).await, Err(PickError::Unavailable { .. })),
        "cap of 2 reached"
    );
    assert_eq!(pool.summary().await.in_flight, 2);
    assert!(pool.summary().await.serving, "busy is still serving");
    l1.usage(Usage {
        input_tokens: 10,
        output_tokens: 5,
        ..Usage::default()
    });
    drop(l1);
    settle(Duration::from_millis(10)).await;
    let l3 = pool.pick(req()).await.expect("a lease after a release");
    assert_eq!(l3.creds.access_token, "at-a");
    assert_eq!(l3.creds.chatgpt_account_id.as_deref(), Some("acct-a"));
    drop((l2, l3));
    settle(Duration::from_millis(10)).await;
    let v = pool.account("a").await.expect("view");
    assert_eq!(
        (v.leases, v.usage.requests, v.usage.tokens.input_tokens),
        (0, 3, 10)
    );
    assert!(
        !format!("{v:?}").contains("at-a"),
        "no token in Debug of the view"
    );
    pool.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_429_benches_the_account_until_reset_and_an_all_exhausted_pool_says_so() {
    let fx = Fx::new();
    let pool = PoolHandle::start(
        cfg(),
        fx.effects(),
        vec![record("a", None), record("b", None)],
    )
    .await
    .expect("pool");
    settle(Duration::from_millis(10)).await;
    for _ in 0..2 {
        let l = pool.pick(req()).await.expect("lease");
        l.rejected(Rejection429 {
            at: l.started_at,
            resets_in_secs: Some(120),
            kind: RejectionKind::UsageLimitReached,
            ..Rejection429::default()
        });
    }
    settle(Duration::from_millis(10)).await;
    match pool.pick(req()).await {
        Err(PickError::Exhausted {
            soonest_reset: Some(t),
        }) => assert!((T0 + 120 * S..T0 + 121 * S).contains(&t)),
        other => panic!("expected exhausted, got {other:?}"),
    }
    let s = pool.summary().await;
    assert!(!s.serving && s.rate_limited == 2 && s.active == 2, "{s:?}");
    let v = pool.account("a").await.expect("view");
    assert_eq!(
        (v.status, v.derived_status.as_str()),
        (Status::Active, "rate_limited"),
        "status untouched, badge derived"
    );
    let e = pool.explain("a").await.expect("explain");
    assert!(
        !e.available && e.reasons[0].contains("primary exhausted"),
        "{e:?}"
    );
    *fx.prober.answer.lock().unwrap() = Some(Observation::default());
    settle(Duration::from_secs(121)).await;
    let v = pool.account("a").await.expect("view");
    assert_eq!(v.derived_status, "active");
    assert!(
        fx.prober.calls.load(std::sync::atomic::Ordering::SeqCst) >= 1,
        "a reset is verified by a probe"
    );
    assert!(pool.pick(req()).await.is_ok());
    pool.shutdown().await;
}

/// Two requests read the board at the same moment and both go for the one account with quota
/// left, which takes one lease at a time: the account that refused the second only because it
/// was full is busy, not exhausted. The second request waits for it instead of answering the
/// client "the pool is exhausted" (seen under CI load: a client 429 with 5 % of the quota left).
#[tokio::test(start_paused = true)]
async fn an_account_that_refused_only_because_it_was_full_does_not_make_the_pool_exhausted() {
    let fx = Fx::new();
    let mut c = cfg();
    c.max_leases_per_account = 1;
    let pool = PoolHandle::start(c, fx.effects(), vec![record("a", None), record("b", None)])
        .await
        .expect("pool");
    settle(Duration::from_millis(10)).await;
    let l = pool.pick(req()).await.expect("lease");
    let locked = l.account_id.clone();
    l.rejected(Rejection429 {
        at: l.started_at,
        resets_in_secs: Some(3600),
        kind: RejectionKind::UsageLimitReached,
        ..Rejection429::default()
    });
    drop(l);
    settle(Duration::from_millis(10)).await;
    let first = async {
        let l = pool.pick(req()).await.expect("the account with quota left");
        tokio::time::sleep(Duration::from_millis(200)).await;
        l.account_id.clone()
    };
    let (first, second) = tokio::join!(first, pool.pick(req()));
    let second = second.expect("the second request waits for the busy account, no exhaustion");
    assert_ne!(first, locked);
    assert_eq!(
        second.account_id, first,
        "served by the account with quota left"
    );
    drop(second);
    pool.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_spark_lock_only_excludes_spark_models() {
    let fx = Fx::new();
    let pool = PoolHandle::start(cfg(), fx.effects(), vec![record("a", None)])
        .await
        .expect("pool");
    settle(Duration::from_millis(10)).await;
    let l = pool.pick(req()).await.expect("lease");
    l.rejected(Rejection429 {
        at: l.started_at,
        limit: Some("codex_bengalfox".into()),
        resets_in_secs: Some(600),
        // a spark request's 429 (the lease of `req()` is for the main models)
        model_limit: Some("codex_bengalfox".into()),
        ..Rejection429::default()
    });
    drop(l);
    settle(Duration::from_millis(10)).await;
    let spark = PickRequest {
        model: "gpt-5.3-codex-spark".into(),
        ..PickRequest::default()
    };
    assert!(matches!(
        pool.pick(spark).await,
        Err(PickError::Exhausted { .. })
    ));
    assert!(pool.pick(req()).await.is_ok(), "other models still served");
    pool.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn cloudflare_cools_down_briefly_and_bans_and_bad_requests_do_what_the_table_says() {
    let fx = Fx::new();
    let pool = PoolHandle::start(
        cfg(),
        fx.effects(),
        vec![record("a", None), record("b", None)],
    )
    .await
    .expect("pool");
    settle(Duration::from_millis(10)).await;
    let l = pool
        .pick(PickRequest {
            exclude: vec!["b".into()],
            ..req()
        })
        .await
        .expect("lease");
    l.failed(UpstreamFailure::Cloudflare);
    drop(l);
    settle(Duration::from_millis(10)).await;
    let v = pool.account("a").await.expect("view");
    assert_eq!(v.derived_status, "cooling_down");
    assert_eq!(
        v.cooldown_until.map(|t| t - T0 > 9 * S && t - T0 <= 11 * S),
        Some(true)
    );
    let other = pool.pick(req()).await.expect("b serves meanwhile");
    assert_eq!(
        other.account_id, "b",
        "a cooling account is not picked first"
    );
    drop(other);
    // A request that may use only a (it failed over from b) gets a rather than a refusal:
    // challenges alone never leave a request without an account (`Cooling::Any`).
    let through = pool
        .pick(PickRequest {
            exclude: vec!["b".into()],
            ..req()
        })
        .await
        .expect("served through the cooldown");
    assert_eq!(through.account_id, "a");
    drop(through);
    settle(Duration::from_secs(11)).await;
    let l = pool
        .pick(PickRequest {
            exclude: vec!["b".into()],
            ..req()
        })
        .await
        .expect("cooldown over");
    l.failed(UpstreamFailure::PrematureClose {
        reason: "eof".into(),
    });
    l.failed(UpstreamFailure::Banned {
        reason: "account_deactivated".into(),
    });
    drop(l);
    settle(Duration::from_millis(10)).await;
    let v = pool.account("a").await.expect("view");
    assert_eq!(
        (v.status, v.usage.failures),
        (Status::Banned, 0),
        "premature close does not count against it"
    );
    assert_eq!(
        fx.store.get("a").map(|r| r.status),
        Some(Status::Banned),
        "a status change is durable at once"
    );
    assert_eq!(
        pool.pick(req()).await.expect("b still serves").account_id,
        "b"
    );
    pool.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn operator_operations_add_dedup_enable_remove_and_switch_strategy() {
    let fx = Fx::new();
    let pool = PoolHandle::start(
        cfg(),
        fx.effects(),
        vec![record("a", None), record("b", None)],
    )
    .await
    .expect("pool");
    settle(Duration::from_millis(10)).await;
    pool.set_enabled("a", false).await.expect("disable");
    let mut again = record("a2", None);
    again.identity.chatgpt_account_id = Some("acct-a".into());
    again.tokens.access_token = "at-new".into();
    again.tokens.refresh_token = None;
    assert_eq!(
        pool.add(again).await,
        Ok(rotor_actors::AddOutcome::Updated("a".into()))
    );
    let a = fx.store.get("a").expect("stored");
    assert_eq!(
        a.status,
        Status::Disabled,
        "re-import never re-activates a disabled account"
    );
    assert_eq!(
        a.tokens.refresh_token.as_deref(),
        Some("rt-a"),
        "an import without a refresh token keeps ours"
    );
    assert_eq!(a.tokens.access_token, "at-new");
    assert_eq!(
        pool.add(record("c", None)).await,
        Ok(rotor_actors::AddOutcome::Added("c".into()))
    );
    assert!(
        fx.store.get("c").is_some(),
        "a new account is durable before add returns"
    );
    assert!(pool.add(record("../evil", None)).await.is_err());
    pool.remove("b").await.expect("remove");
    assert!(fx.store.get("b").is_none() && pool.account("b").await.is_none());
    assert_eq!(
        pool.remove("b").await,
        Err(rotor_actors::PoolError::NotFound("b".into()))
    );
    pool.set_enabled("a", true).await.expect("enable");
    pool.set_strategy(Strategy::RoundRobin).await;
    settle(Duration::from_millis(10)).await;
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(pool.pick(req()).await.expect("lease").account_id.clone());
        settle(Duration::from_millis(10)).await;
    }
    assert_eq!(seen, ["a", "c", "a", "c"]);
    assert_eq!(pool.summary().await.total, 2);
    let exported = pool.export().await;
    assert_eq!(exported.len(), 2);
    pool.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn quota_changes_are_coalesced_and_flushed_on_tick_and_on_shutdown() {
    let fx = Fx::new();
    let mut c = cfg();
    c.tick = Duration::from_secs(3600);
    let pool = PoolHandle::start(c, fx.effects(), vec![record("a", None)])
        .await
        .expect("pool");
    settle(Duration::from_millis(10)).await;
    let saves_before = fx.store.saves.lock().unwrap().len();
    let l = pool.pick(req()).await.expect("lease");
    let w = Window {
        used_percent: 33.0,
        window_secs: Some(18_000),
        reset_at: Some(T0 + H),
        limit_reached: None,
    };
    l.observe_headers(Observation {
        at: l.started_at,
        primary: Some(w),
        ..Observation::default()
    });
    drop(l);
    settle(Duration::from_millis(10)).await;
    assert_eq!(
        fx.store.saves.lock().unwrap().len(),
        saves_before,
        "quota and usage are not written per request"
    );
    pool.shutdown().await;
    let a = fx.store.get("a").expect("stored");
    assert_eq!(
        a.quota.primary.map(|b| b.used_percent),
        Some(33.0),
        "flushed on stop"
    );
    assert_eq!(a.usage.requests, 1);
}

#[tokio::test(start_paused = true)]
async fn a_conversation_sticks_to_its_account_while_it_can_serve() {
    let fx = Fx::new();
    let recs = vec![record("a", None), record("b", None), record("c", None)];
    let pool = PoolHandle::start(cfg(), fx.effects(), recs)
        .await
        .expect("pool");
    settle(Duration::from_millis(10)).await;
    let conv = |exclude: Vec<String>| PickRequest {
        affinity: Some("conv-1".into()),
        exclude,
        ..req()
    };
    let first = pool
        .pick(conv(vec![]))
        .await
        .expect("lease")
        .account_id
        .clone();
    settle(Duration::from_millis(10)).await;
    for _ in 0..3 {
        let l = pool.pick(conv(vec![])).await.expect("lease");
        assert_eq!(
            l.account_id, first,
            "least_used alone would move on; affinity keeps it"
        );
        drop(l);
        settle(Duration::from_millis(10)).await;
    }
    let moved = pool.pick(conv(vec![first.clone()])).await.expect("lease");
    assert_ne!(
        moved.account_id, first,
        "an excluded affinity account is not used"
    );
    pool.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_pick_right_after_start_finds_the_accounts() {
    let fx = Fx::new();
    let pool = PoolHandle::start(cfg(), fx.effects(), vec![record("a", None)])
        .await
        .expect("pool");
    let lease = pool
        .pick(req())
        .await
        .expect("the view is seeded at spawn, not on the first push");
    assert_eq!(lease.account_id, "a");
    assert_eq!(pool.summary().await.total, 1);
    drop(lease);
    pool.shutdown().await;
}
