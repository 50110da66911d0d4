//! Refresh under a fence (docs/cluster.md "Refresh under fencing") through a real pool with a
//! scripted fence: a refused begin calls nothing, an ambiguous account serves on its access
//! token and never refreshes, a refused finish (a zombie) drops the account without ever
//! serving the tokens it received, a finish the store did not answer is sent again and the
//! account kept, a call with no answer in the fenced window is abandoned as
//! having reached upstream, and fresh imported tokens end the ambiguity.

use std::sync::Arc;
use std::time::Duration;

use rotor_actors::{AMBIGUOUS, FenceRefusal, PoolConfig, PoolHandle, RefreshReason, Status};
use serde_json::{Value, json};

use crate::fakes::{FakeFence, Fx, record};
use crate::pool::{cfg, req, settle};
use crate::support::{M, S, T0, rel, settings};

/// A pool of one account `a` whose access token expires 10 min in, refreshed 5 min before.
async fn pool_with(fence: &Arc<FakeFence>, rec: rotor_actors::AccountRecord) -> (Fx, PoolHandle) {
    let mut fx = Fx::new();
    fx.fence = Some(fence.clone());
    let c = PoolConfig {
        refresh_margin: Duration::from_secs(300),
        ..cfg()
    };
    let pool = PoolHandle::start(c, fx.effects(), vec![rec])
        .await
        .expect("pool");
    (fx, pool)
}

fn calls(fence: &FakeFence) -> Vec<String> {
    fence.calls.lock().unwrap().clone()
}

/// One step of a trace: what happened, and the account as operators see it after it.
async fn step(pool: &PoolHandle, fx: &Fx, what: &str) -> Value {
    let now = rel(rotor_actors::Clock::now_ms(fx.clock.as_ref()));
    let Some(v) = pool.account("a").await else {
        return json!({ "at": now, "do": what, "account": "dropped" });
    };
    let e = pool.explain("a").await.expect("explain");
    json!({
        "at": now,
        "do": what,
        "status": v.status.as_str(),
        "status_reason": v.status_reason,
        "available": e.available,
        "holds": e.holds.iter().map(|h| json!([h.kind, h.reason])).collect::<Vec<_>>(),
        "refresh_calls": fx.refresher.calls.lock().unwrap().len(),
    })
}

/// Settles in 100 ms steps until the fence was asked to begin `n` times; the time it was.
async fn until_begins(fence: &FakeFence, fx: &Fx, n: usize) -> i64 {
    for _ in 0..20_000 {
        if calls(fence)
            .iter()
            .filter(|c| c.starts_with("begin"))
            .count()
            >= n
        {
            return rotor_actors::Clock::now_ms(fx.clock.as_ref());
        }
        settle(Duration::from_millis(100)).await;
    }
    panic!("begin {n} never came: {:?}", calls(fence));
}

/// A refused begin sent nothing: it gives its start back to the pool's per-minute refresh
/// budget, so accounts retrying through a lease gap do not hold back the refreshes that run.
#[tokio::test(start_paused = true)]
async fn a_refused_begin_does_not_spend_the_per_minute_refresh_budget() {
    let fence = Arc::new(FakeFence::default());
    fence.begins.lock().unwrap().extend([
        Err(FenceRefusal::Later("a refresh is in flight".into())),
        Err(FenceRefusal::Later("a refresh is in flight".into())),
    ]);
    let mut fx = Fx::new();
    fx.fence = Some(fence.clone());
    let c = PoolConfig {
        refresh_margin: Duration::from_secs(300),
        max_refreshes_per_minute: 1,
        ..cfg()
    };
    let _pool = PoolHandle::start(c, fx.effects(), vec![record("a", Some(T0 + 10 * M))])
        .await
        .expect("pool");
    let first = until_begins(&fence, &fx, 1).await;
    let third = until_begins(&fence, &fx, 3).await;
    assert!(
        third - first <= 5 * S,
        "the granted begin came {} ms after the first refusal: the refusals spent the budget",
        third - first
    );
    settle(Duration::from_secs(1)).await;
    assert_eq!(
        fx.refresher.calls.lock().unwrap().len(),
        1,
        "the begun refresh called once"
    );
}

#[tokio::test(start_paused = true)]
async fn a_refused_begin_calls_nothing_and_is_retried_within_seconds() {
    let fence = Arc::new(FakeFence::default());
    let later = |why: &str| Err(FenceRefusal::Later(why.into()));
    fence.begins.lock().unwrap().extend([
        later("the session does not outlive the refresh deadline"),
        later("a refresh is in flight"),
        later("the store is unreachable"),
    ]);
    let (fx, pool) = pool_with(&fence, record("a", Some(T0 + 10 * M))).await;
    let first = until_begins(&fence, &fx, 1).await;
    settle(Duration::from_millis(10)).await;
    assert!(
        fx.refresher.calls.lock().unwrap().is_empty(),
        "a refused begin never calls the token endpoint"
    );
    assert!(
        fx.store
            .saves
            .lock()
            .unwrap()
            .iter()
            .all(|r| r.refresh_intent.is_none()),
        "nor writes an intent"
    );
    assert_eq!(
        pool.pick(req())
            .await
            .expect("still serves")
            .creds
            .access_token,
        "at-a"
    );
    // Each refusal waits its own short, rising delay (1 s, 2 s, 4 s, at the tick's 1 s
    // granularity), not the 30 s backoff of a failed call.
    let mut at = first;
    for (n, delay) in [(2, S), (3, 2 * S), (4, 4 * S)] {
        let next = until_begins(&fence, &fx, n).await;
        let gap = next - at;
        assert!(
            (delay..=delay + S).contains(&gap),
            "begin {n} came {gap} ms after the refusal before it, not ~{delay} ms"
        );
        at = next;
    }
    settle(Duration::from_secs(1)).await;
    assert_eq!(
        calls(&fence),
        ["begin a", "begin a", "begin a", "begin a", "finish a"]
    );
    assert_eq!(
        fx.refresher.calls.lock().unwrap().clone(),
        [("rt-a".to_string(), RefreshReason::ProactiveExpiry)],
        "the begun refresh called once"
    );
    assert_eq!(
        pool.pick(req()).await.expect("lease").creds.access_token,
        "at-after-rt-a"
    );
}

#[tokio::test(start_paused = true)]
async fn a_granted_begin_resets_the_refused_begin_delay() {
    let fence = Arc::new(FakeFence::default());
    let later = || Err(FenceRefusal::Later("a refresh is in flight".into()));
    fence
        .begins
        .lock()
        .unwrap()
        .extend([later(), later(), Ok(()), later()]);
    let (fx, _pool) = pool_with(&fence, record("a", Some(T0 + 10 * M))).await;
    fx.refresher
        .errors
        .lock()
        .unwrap()
        .push_back(rotor_actors::RefreshError::Transient("503".into()));
    let granted = until_begins(&fence, &fx, 3).await;
    let refused = until_begins(&fence, &fx, 4).await;
    assert!(
        (30 * S..=31 * S).contains(&(refused - granted)),
        "the failed call waits the refresh backoff"
    );
    let again = until_begins(&fence, &fx, 5).await;
    assert!(
        (S..=2 * S).contains(&(again - refused)),
        "the refusal after a granted begin waits 1 s again, not 4 s: {} ms",
        again - refused
    );
}

#[tokio::test(start_paused = true)]
async fn an_ambiguous_account_serves_until_its_access_token_expires_and_never_refreshes() {
    let fence = Arc::new(FakeFence::default());
    fence
        .begins
        .lock()
        .unwrap()
        .push_back(Err(FenceRefusal::Ambiguous));
    let (fx, pool) = pool_with(&fence, record("a", Some(T0 + 10 * M))).await;
    let mut trace = vec![step(&pool, &fx, "start").await];
    settle(Duration::from_secs(5 * 60 + 1)).await;
    trace.push(step(&pool, &fx, "refresh due; the store says ambiguous").await);
    assert_eq!(calls(&fence), ["begin a"]);
    assert!(fx.refresher.calls.lock().unwrap().is_empty());
    let e = pool.explain("a").await.expect("explain");
    assert!(e.available, "it keeps serving on its access token");
    assert!(
        e.holds
            .iter()
            .any(|h| h.kind == "refresh_ambiguous" && h.reason == AMBIGUOUS),
        "explain says why: {e:?}"
    );
    assert!(
        fx.store
            .saves
            .lock()
            .unwrap()
            .last()
            .is_some_and(|r| r.refresh_ambiguous),
        "durable"
    );
    assert_eq!(
        pool.pick(req()).await.expect("serves").creds.access_token,
        "at-a"
    );
    settle(Duration::from_secs(5 * 60)).await;
    trace.push(step(&pool, &fx, "the access token expired").await);
    assert_eq!(calls(&fence), ["begin a"], "never asked to refresh again");
    let e = pool.explain("a").await.expect("explain");
    assert!(!e.available);
    assert_eq!(e.reasons, [AMBIGUOUS]);
    assert!(
        pool.pick(req()).await.is_err(),
        "nothing serves on an expired token"
    );
    settings().bind(|| insta::assert_yaml_snapshot!(trace));
}

#[tokio::test(start_paused = true)]
async fn a_claimed_ambiguous_account_answers_a_401_with_a_login_request_not_a_refresh() {
    let fence = Arc::new(FakeFence::default());
    let mut rec = record("a", Some(T0 + 60 * M));
    rec.refresh_ambiguous = true;
    let (fx, pool) = pool_with(&fence, rec).await;
    settle(Duration::from_secs(30 * 60)).await;
    assert!(
        calls(&fence).is_empty(),
        "an adopted ambiguous account never begins a refresh"
    );
    let lease = pool.pick(req()).await.expect("serves");
    lease.failed(rotor_actors::UpstreamFailure::Unauthorized);
    settle(Duration::from_secs(1)).await;
    let v = pool.account("a").await.expect("view");
    assert_eq!(v.status, Status::Expired);
    assert_eq!(v.status_reason.as_deref(), Some(AMBIGUOUS));
    assert!(calls(&fence).is_empty() && fx.refresher.calls.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_zombies_refused_finish_drops_the_account_and_its_new_tokens_are_never_served() {
    let fence = Arc::new(FakeFence::default());
    fence
        .finishes
        .lock()
        .unwrap()
        .push_back(Err(FenceRefusal::Lost("not the owner".into())));
    let (fx, pool) = pool_with(&fence, record("a", Some(T0 + 10 * M))).await;
    *fx.refresher.delay.lock().unwrap() = Duration::from_secs(2);
    let mut trace = vec![step(&pool, &fx, "start").await];
    settle(Duration::from_secs(5 * 60 + 1)).await;
    trace.push(step(&pool, &fx, "refresh begun; the call is in flight").await);
    // Requests keep being picked while the call and the finish are under way: none may get
    // the new access token before the store accepted the rotation.
    let mut served = Vec::new();
    for _ in 0..40 {
        if let Ok(l) = pool.pick(req()).await {
            served.push(l.creds.access_token.clone());
        }
        settle(Duration::from_millis(100)).await;
    }
    trace.push(step(&pool, &fx, "the store refused the finish").await);
    assert_eq!(calls(&fence), ["begin a", "finish a"]);
    assert!(
        served.iter().all(|t| t == "at-a"),
        "the refused rotation's tokens were never served: {served:?}"
    );
    assert!(pool.account("a").await.is_none(), "the account was dropped");
    assert!(
        pool.pick(req()).await.is_err(),
        "this node serves it no more"
    );
    let saves_after = fx.store.saves.lock().unwrap().len();
    settle(Duration::from_secs(10)).await;
    assert_eq!(
        fx.store.saves.lock().unwrap().len(),
        saves_after,
        "nor writes it"
    );
    assert!(
        fx.store.get("a").is_some(),
        "its record stays in the store for the owner"
    );
    settings().bind(|| insta::assert_yaml_snapshot!(trace));
}

#[tokio::test(start_paused = true)]
async fn a_finish_the_store_did_not_answer_is_sent_again_and_the_account_kept() {
    let fence = Arc::new(FakeFence::default());
    fence
        .finishes
        .lock()
        .unwrap()
        .push_back(Err(FenceRefusal::Later(
            "postgres: connection closed".into(),
        )));
    let (_fx, pool) = pool_with(&fence, record("a", Some(T0 + 10 * M))).await;
    settle(Duration::from_secs(5 * 60 + 1)).await;
    let mut served = Vec::new();
    for _ in 0..30 {
        if let Ok(l) = pool.pick(req()).await {
            served.push(l.creds.access_token.clone());
        }
        settle(Duration::from_millis(100)).await;
    }
    assert_eq!(
        calls(&fence),
        ["begin a", "finish a", "finish a"],
        "sent again on the tick"
    );
    let first_new = served.iter().position(|t| t != "at-a");
    assert!(
        first_new.is_some_and(|i| served[i..].iter().all(|t| t == "at-after-rt-a")),
        "the new tokens are served once the store confirmed them, not before: {served:?}"
    );
    assert!(pool.account("a").await.is_some(), "the account is kept");
}

#[tokio::test(start_paused = true)]
async fn no_answer_within_the_fenced_window_is_abandoned_as_reaching_upstream() {
    let fence = Arc::new(FakeFence::default());
    *fence.timeout.lock().unwrap() = Some(Duration::from_secs(5));
    let (fx, pool) = pool_with(&fence, record("a", Some(T0 + 10 * M))).await;
    *fx.refresher.delay.lock().unwrap() = Duration::from_secs(60);
    settle(Duration::from_secs(5 * 60 + 6)).await;
    assert_eq!(
        calls(&fence),
        ["begin a", "abandon a reached_upstream=true"]
    );
    let e = pool.explain("a").await.expect("explain");
    assert!(e.available, "serves on its access token");
    assert!(
        e.holds.iter().any(|h| h.kind == "refresh_ambiguous"),
        "{e:?}"
    );
    settle(Duration::from_secs(120)).await;
    assert_eq!(fx.refresher.calls.lock().unwrap().len(), 1, "never again");
}

#[tokio::test(start_paused = true)]
async fn a_definite_refresh_failure_is_abandoned_without_ambiguity() {
    let fence = Arc::new(FakeFence::default());
    let (fx, pool) = pool_with(&fence, record("a", Some(T0 + 10 * M))).await;
    fx.refresher
        .errors
        .lock()
        .unwrap()
        .push_back(rotor_actors::RefreshError::Transient("503".into()));
    settle(Duration::from_secs(5 * 60 + 1)).await;
    assert_eq!(
        calls(&fence),
        ["begin a", "abandon a reached_upstream=false"]
    );
    let e = pool.explain("a").await.expect("explain");
    assert!(
        !e.holds.iter().any(|h| h.kind == "refresh_ambiguous"),
        "{e:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_import_of_fresh_tokens_ends_the_ambiguity_and_refreshing_resumes() {
    let fence = Arc::new(FakeFence::default());
    let mut rec = record("a", Some(T0 + 10 * M));
    rec.refresh_ambiguous = true;
    let (fx, pool) = pool_with(&fence, rec).await;
    let mut fresh = record("a", Some(T0 + 20 * M));
    fresh.tokens.refresh_token = Some("rt-fresh".into());
    fresh.tokens.access_token = "at-fresh".into();
    fresh.tokens.last_refresh = Some(T0 + 1);
    pool.add(fresh).await.expect("import");
    settle(Duration::from_millis(10)).await;
    assert_eq!(calls(&fence), ["imported a"], "the store is told");
    let e = pool.explain("a").await.expect("explain");
    assert!(
        !e.holds.iter().any(|h| h.kind == "refresh_ambiguous"),
        "{e:?}"
    );
    assert!(
        fx.store.get("a").is_some_and(|r| !r.refresh_ambiguous),
        "durable"
    );
    settle(Duration::from_secs(15 * 60 + 1)).await;
    assert_eq!(
        fx.refresher.calls.lock().unwrap().clone(),
        [("rt-fresh".to_string(), RefreshReason::ProactiveExpiry)]
    );
}

#[tokio::test(start_paused = true)]
async fn the_owner_reloads_tokens_imported_on_another_node_without_telling_the_store_again() {
    let fence = Arc::new(FakeFence::default());
    let mut rec = record("a", Some(T0 + 10 * M));
    rec.refresh_ambiguous = true;
    let (fx, pool) = pool_with(&fence, rec).await;
    settle(Duration::from_millis(10)).await;
    // Another node merged an import into the shared store (and told it).
    let mut there = record("a", Some(T0 + 10 * M));
    there.tokens.refresh_token = Some("rt-elsewhere".into());
    there.tokens.access_token = "at-elsewhere".into();
    there.tokens.expires_at = Some(T0 + 60 * M);
    there.tokens.last_refresh = Some(T0 + 1);
    there.refresh_ambiguous = false;
    fx.store.recs.lock().unwrap().insert("a".into(), there);
    assert_eq!(
        pool.reload("a").await.expect("reload"),
        Some(rotor_actors::Merged::Replaced)
    );
    assert!(
        calls(&fence).is_empty(),
        "the importing node told the store, not this one"
    );
    assert_eq!(
        pool.pick(req()).await.expect("lease").creds.access_token,
        "at-elsewhere"
    );
    let e = pool.explain("a").await.expect("explain");
    assert!(
        !e.holds.iter().any(|h| h.kind == "refresh_ambiguous"),
        "{e:?}"
    );
    // Reloading what it holds changes nothing.
    assert_eq!(
        pool.reload("a").await.expect("reload"),
        Some(rotor_actors::Merged::Unchanged)
    );
}
