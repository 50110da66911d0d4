//! Token refresh through the actors: proactive schedule, the exactly-once rotation order of
//! durable writes, single-flight per account, pool-wide limits, and recovery of a refresh
//! interrupted by a crash (leftover intent).

use std::sync::atomic::Ordering;
use std::time::Duration;

use rotor_actors::{
    PoolConfig, PoolHandle, RefreshError, RefreshIntent, RefreshReason, Status, UpstreamFailure,
};

use crate::fakes::{Fx, record};
use crate::pool::{cfg, req, settle};
use crate::support::{M, T0};

#[tokio::test(start_paused = true)]
async fn proactive_rotation_writes_intent_then_tokens_then_clears_intent() {
    let fx = Fx::new();
    *fx.refresher.delay.lock().unwrap() = Duration::from_secs(2);
    let c = PoolConfig {
        refresh_margin: Duration::from_secs(300),
        ..cfg()
    };
    let pool = PoolHandle::start(c, fx.effects(), vec![record("a", Some(T0 + 10 * M))])
        .await
        .expect("pool");
    settle(Duration::from_secs(5 * 60 + 1)).await;
    // refresh in flight: the old token is still handed out
    assert_eq!(
        pool.pick(req()).await.expect("lease").creds.access_token,
        "at-a"
    );
    settle(Duration::from_secs(3)).await;
    assert_eq!(
        fx.refresher.calls.lock().unwrap().clone(),
        [("rt-a".to_string(), RefreshReason::ProactiveExpiry)]
    );
    let saves: Vec<(Option<RefreshReason>, Option<String>)> = fx
        .store
        .saves
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.id == "a")
        .map(|r| {
            (
                r.refresh_intent.as_ref().map(|i| i.reason),
                r.tokens.refresh_token.clone(),
            )
        })
        .collect();
    let mut saves = saves;
    saves.dedup(); // coalesced flushes during the refresh may repeat a state
    let i = saves
        .iter()
        .position(|s| s.0.is_some())
        .expect("an intent was saved");
    assert_eq!(
        saves.len(),
        i + 3,
        "nothing after the intent is cleared: {saves:?}"
    );
    assert_eq!(
        saves[i],
        (Some(RefreshReason::ProactiveExpiry), Some("rt-a".into())),
        "intent durable before the call"
    );
    assert_eq!(
        saves[i + 1],
        (Some(RefreshReason::ProactiveExpiry), Some("rt-a+".into())),
        "new tokens durable, intent kept"
    );
    assert_eq!(
        saves[i + 2],
        (None, Some("rt-a+".into())),
        "intent cleared last"
    );
    assert_eq!(
        pool.pick(req()).await.expect("lease").creds.access_token,
        "at-after-rt-a"
    );
    pool.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_401_storm_refreshes_each_account_once_within_pool_limits() {
    let fx = Fx::new();
    *fx.refresher.delay.lock().unwrap() = Duration::from_secs(1);
    let c = PoolConfig {
        max_concurrent_refreshes: 2,
        max_refreshes_per_minute: 100,
        max_leases_per_account: 5,
        ..cfg()
    };
    let recs = (0..6).map(|i| record(&format!("a{i}"), None)).collect();
    let pool = PoolHandle::start(c, fx.effects(), recs)
        .await
        .expect("pool");
    settle(Duration::from_millis(10)).await;
    for _ in 0..12 {
        if let Ok(l) = pool.pick(req()).await {
            l.failed(UpstreamFailure::Unauthorized);
            l.failed(UpstreamFailure::Unauthorized);
        }
    }
    settle(Duration::from_millis(10)).await;
    let s = pool.summary().await;
    assert_eq!(s.refreshing, 6, "{s:?}");
    assert!(!s.serving);
    settle(Duration::from_secs(10)).await;
    let calls = fx.refresher.calls.lock().unwrap().clone();
    assert_eq!(
        calls.len(),
        6,
        "single-flight: one refresh per account: {calls:?}"
    );
    assert!(
        calls
            .iter()
            .all(|(_, r)| *r == RefreshReason::UnauthorizedRecovery)
    );
    assert_eq!(
        fx.refresher.max_in_flight.load(Ordering::SeqCst),
        2,
        "pool-wide concurrency cap"
    );
    assert_eq!(pool.summary().await.active, 6);
    pool.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_leftover_intent_is_retried_at_start_and_a_dead_token_means_needs_login() {
    let fx = Fx::new();
    let mut a = record("a", None);
    a.refresh_intent = Some(RefreshIntent {
        started_at: T0 - M,
        reason: RefreshReason::ProactiveExpiry,
    });
    let mut b = record("b", None);
    b.refresh_intent = Some(RefreshIntent {
        started_at: T0 - M,
        reason: RefreshReason::UnauthorizedRecovery,
    });
    fx.refresher
        .errors
        .lock()
        .unwrap()
        .push_back(RefreshError::Permanent {
            code: "refresh_token_reused".into(),
            message: "already used".into(),
        });
    let pool = PoolHandle::start(cfg(), fx.effects(), vec![a, b])
        .await
        .expect("pool");
    settle(Duration::from_secs(2)).await;
    let calls = fx.refresher.calls.lock().unwrap().clone();
    assert_eq!(
        calls.len(),
        2,
        "both interrupted refreshes retried with the stored refresh token: {calls:?}"
    );
    let dead = &calls[0].0;
    let dead_id = dead.trim_start_matches("rt-");
    let rec = fx.store.get(dead_id).expect("stored");
    assert_eq!(rec.status, Status::Expired);
    assert_eq!(rec.status_reason.as_deref(), Some("needs login"));
    assert_eq!(rec.refresh_intent, None);
    assert!(
        rec.last_error
            .as_deref()
            .is_some_and(|e| e.contains("refresh_token_reused"))
    );
    assert_eq!(
        rec.tokens.refresh_token.as_deref(),
        Some(dead.as_str()),
        "the token is kept, never silently lost"
    );
    let other = if dead_id == "a" { "b" } else { "a" };
    let rec = fx.store.get(other).expect("stored");
    assert_eq!(
        (rec.status, rec.refresh_intent.is_none()),
        (Status::Active, true)
    );
    assert_eq!(rec.tokens.refresh_token, Some(format!("rt-{other}+")));
    pool.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_transient_refresh_failure_is_retried_with_backoff() {
    let fx = Fx::new();
    fx.refresher
        .errors
        .lock()
        .unwrap()
        .push_back(RefreshError::Transient("502".into()));
    let pool = PoolHandle::start(cfg(), fx.effects(), vec![record("a", None)])
        .await
        .expect("pool");
    settle(Duration::from_millis(10)).await;
    pool.pick(req())
        .await
        .expect("lease")
        .failed(UpstreamFailure::Unauthorized);
    settle(Duration::from_secs(5)).await;
    assert_eq!(fx.refresher.calls.lock().unwrap().len(), 1);
    assert_eq!(
        pool.account("a").await.map(|v| v.status),
        Some(Status::Refreshing)
    );
    settle(Duration::from_secs(30)).await;
    assert_eq!(
        fx.refresher.calls.lock().unwrap().len(),
        2,
        "retried after 30 s"
    );
    assert_eq!(
        pool.account("a").await.map(|v| v.status),
        Some(Status::Active)
    );
    pool.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn an_operator_probe_learns_the_quota_and_a_401_probe_refreshes() {
    use rotor_actors::quota::{Observation, Window};
    let fx = Fx::new();
    let pool = PoolHandle::start(cfg(), fx.effects(), vec![record("a", None)])
        .await
        .expect("pool");
    settle(Duration::from_millis(10)).await;
    let full = Window {
        used_percent: 100.0,
        window_secs: Some(18_000),
        reset_at: Some(T0 + 60 * M),
        limit_reached: None,
    };
    *fx.prober.answer.lock().unwrap() = Some(Observation {
        at: T0,
        primary: Some(full),
        ..Observation::default()
    });
    pool.probe("a").await.expect("probe");
    settle(Duration::from_millis(10)).await;
    assert_eq!(
        pool.account("a").await.map(|v| v.derived_status),
        Some("rate_limited".to_string())
    );
    fx.prober.unauthorized.store(true, Ordering::SeqCst);
    pool.probe("a").await.expect("probe");
    settle(Duration::from_millis(10)).await;
    assert_eq!(
        fx.refresher.calls.lock().unwrap().len(),
        1,
        "a 401 from the usage endpoint refreshes the token"
    );
    assert_eq!(
        pool.probe("nope").await,
        Err(rotor_actors::PoolError::NotFound("nope".into()))
    );
    pool.shutdown().await;
}
