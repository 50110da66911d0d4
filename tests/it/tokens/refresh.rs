//! Refresh through a real pool: account actors with the real `HttpRefresher` and `FileStore`,
//! against the simulator's rotating token endpoint. Proactive refresh happens before expiry and
//! is durable before use; a 401 triggers a recovery refresh; a reused refresh token marks the
//! account `expired` with its reason after exactly one attempt; a deactivated account is banned;
//! many concurrent triggers collapse into one token-endpoint call; pool-wide limits pace
//! refreshes.

use super::harness::{Harness, fast_config, record_of, wait_for};
use super::{rt_of, sim};
use codex_rotor::HttpRefresher;
use codex_rotor::sim::{AccountSpec, FaultKind, FaultSpec, FaultTarget, SimHandle};
use rotor_actors::{
    Clock, PickRequest, PoolConfig, PoolHandle, RefreshReason, Status, SystemClock, TokenRefresher,
    UpstreamFailure,
};
use std::time::{Duration, Instant};

/// True if the simulator accepts `token` on the usage endpoint.
async fn token_works(sim: &SimHandle, token: &str) -> bool {
    let resp = reqwest::Client::new()
        .get(format!("{}/wham/usage", sim.backend_url()))
        .bearer_auth(token)
        .send()
        .await;
    resp.is_ok_and(|r| r.status() == 200)
}

/// Takes a lease on the (only) account. Retries for up to 2 s: a freshly started pool learns
/// its accounts' availability asynchronously (their first push), and that is not under test.
async fn lease(pool: &PoolHandle) -> rotor_actors::Lease {
    let start = Instant::now();
    loop {
        match pool
            .pick(PickRequest {
                model: "gpt-5.5".into(),
                ..PickRequest::default()
            })
            .await
        {
            Ok(l) => return l,
            Err(e) if start.elapsed() > Duration::from_secs(2) => panic!("no lease: {e:?}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

#[tokio::test]
async fn proactive_refresh_happens_before_expiry_and_is_durable() {
    let sim = sim().await;
    let acct = sim.create_account(AccountSpec::default());
    let mut rec = record_of(&acct);
    // The real token lives an hour; pretend it expires in 3 s so the margin (2 s) is due in 1 s.
    let expiry = SystemClock.now_ms() + 3_000;
    rec.tokens.expires_at = Some(expiry);
    let h = Harness::start(&sim, vec![rec.clone()], fast_config()).await;

    assert!(
        wait_for(Duration::from_secs(5), async || sim
            .counters(&acct.id)
            .refreshes
            >= 1)
        .await,
        "no refresh"
    );
    assert!(
        SystemClock.now_ms() < expiry,
        "the refresh came before the token expired"
    );
    assert!(
        wait_for(Duration::from_secs(2), async || h
            .on_disk(&rec.id)
            .refresh_intent
            .is_none())
        .await,
        "the intent is cleared once the rotation is durable"
    );
    let disk = h.on_disk(&rec.id);
    let new_rt = disk
        .tokens
        .refresh_token
        .clone()
        .expect("refresh token on disk");
    assert_ne!(
        new_rt,
        rt_of(&acct.auth_json),
        "the rotated refresh token is on disk"
    );
    assert!(
        disk.tokens
            .expires_at
            .is_some_and(|e| e > expiry + 3_000_000),
        "expiry moved an hour ahead"
    );
    assert_eq!(disk.status, Status::Active);

    let l = lease(&h.pool).await;
    assert_eq!(
        l.creds.access_token, disk.tokens.access_token,
        "requests use the durable token"
    );
    assert!(token_works(&sim, &l.creds.access_token).await);
    drop(l);
    assert_eq!(
        sim.counters(&acct.id).refreshes,
        1,
        "one rotation, no repeats"
    );
    // The refresh token on disk is the live one: the simulator still accepts it.
    let r = HttpRefresher::new(reqwest::Client::new(), sim.token_url());
    h.pool.shutdown().await;
    r.refresh(new_rt, RefreshReason::ProactiveExpiry)
        .await
        .expect("disk token is the newest issued");
}

#[tokio::test]
async fn a_401_triggers_recovery_and_the_next_lease_works() {
    let sim = sim().await;
    let acct = sim.create_account(AccountSpec::default());
    let rec = record_of(&acct);
    let h = Harness::start(&sim, vec![rec.clone()], fast_config()).await;

    sim.expire_access_token(&acct.id);
    let l = lease(&h.pool).await;
    assert!(
        !token_works(&sim, &l.creds.access_token).await,
        "the simulator now answers 401"
    );
    l.failed(UpstreamFailure::Unauthorized);
    drop(l);
    assert!(
        wait_for(Duration::from_secs(5), async || sim
            .counters(&acct.id)
            .refreshes
            == 1)
        .await
    );
    let fresh = wait_for(Duration::from_secs(3), async || {
        let l = h
            .pool
            .pick(PickRequest {
                model: "gpt-5.5".into(),
                ..PickRequest::default()
            })
            .await;
        match l {
            Ok(l) => token_works(&sim, &l.creds.access_token).await,
            Err(_) => false,
        }
    });
    assert!(
        fresh.await,
        "after recovery a lease carries a working token"
    );
    assert_eq!(h.on_disk(&rec.id).status, Status::Active);
    h.pool.shutdown().await;
}

#[tokio::test]
async fn a_reused_refresh_token_marks_the_account_expired_with_its_reason() {
    let sim = sim().await;
    let acct = sim.create_account(AccountSpec::default());
    let rec = record_of(&acct);
    // Someone else (another gateway, a Codex CLI) spends the refresh token first.
    let thief = HttpRefresher::new(reqwest::Client::new(), sim.token_url());
    thief
        .refresh(rt_of(&acct.auth_json), RefreshReason::ProactiveExpiry)
        .await
        .expect("spent elsewhere");
    let h = Harness::start(&sim, vec![rec.clone()], fast_config()).await;

    sim.expire_access_token(&acct.id);
    let l = lease(&h.pool).await;
    l.failed(UpstreamFailure::Unauthorized);
    drop(l);
    let expired = wait_for(Duration::from_secs(5), async || {
        h.pool
            .account(&rec.id)
            .await
            .is_some_and(|v| v.status == Status::Expired)
    });
    assert!(expired.await, "the account is expired");
    let view = h.pool.account(&rec.id).await.expect("view");
    let why = format!("{:?} {:?}", view.status_reason, view.last_error);
    assert!(why.contains("needs login"), "reason says what to do: {why}");
    assert!(
        why.contains("refresh_token_reused"),
        "reason says what happened: {why}"
    );
    assert_eq!(h.on_disk(&rec.id).status, Status::Expired, "durably");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        sim.counters(&acct.id).refresh_reused,
        1,
        "a permanent failure is not retried"
    );
    assert!(
        h.pool
            .pick(PickRequest {
                model: "gpt-5.5".into(),
                ..PickRequest::default()
            })
            .await
            .is_err()
    );
    h.pool.shutdown().await;
}

#[tokio::test]
async fn a_deactivated_account_is_banned() {
    let sim = sim().await;
    let acct = sim.create_account(AccountSpec::default());
    let rec = record_of(&acct);
    let h = Harness::start(&sim, vec![rec.clone()], fast_config()).await;
    sim.deactivate(&acct.id);
    let l = lease(&h.pool).await;
    l.failed(UpstreamFailure::Unauthorized);
    drop(l);
    let banned = wait_for(Duration::from_secs(5), async || {
        h.pool
            .account(&rec.id)
            .await
            .is_some_and(|v| v.status == Status::Banned)
    });
    assert!(banned.await, "deactivated at the token endpoint → banned");
    h.pool.shutdown().await;
}

#[tokio::test]
async fn concurrent_refresh_triggers_collapse_into_one_call() {
    let sim = sim().await;
    let acct = sim.create_account(AccountSpec::default());
    let rec = record_of(&acct);
    let h = Harness::start(&sim, vec![rec.clone()], fast_config()).await;
    sim.expire_access_token(&acct.id);

    let mut leases = Vec::new();
    for _ in 0..8 {
        leases.push(lease(&h.pool).await);
    }
    // Eight in-flight requests all see the 401 at once, and an operator asks for a probe too.
    let pool = h.pool.clone();
    let id = rec.id.clone();
    let probe = tokio::spawn(async move { pool.probe(&id).await });
    for l in &leases {
        l.failed(UpstreamFailure::Unauthorized);
    }
    drop(leases);
    let _ = probe.await;
    assert!(
        wait_for(Duration::from_secs(5), async || sim
            .counters(&acct.id)
            .refreshes
            >= 1)
        .await
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    let c = sim.counters(&acct.id);
    assert_eq!(
        (c.refreshes, c.refresh_reused),
        (1, 0),
        "exactly one token-endpoint call"
    );
    assert_eq!(h.on_disk(&rec.id).status, Status::Active);
    h.pool.shutdown().await;
}

#[tokio::test]
async fn pool_wide_limits_pace_refreshes() {
    let sim = sim().await;
    let now = SystemClock.now_ms();
    let mut records = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..4 {
        let acct = sim.create_account(AccountSpec::default());
        let mut rec = record_of(&acct);
        rec.tokens.expires_at = Some(now + 1_000); // due at once (margin 2 s)
        records.push(rec);
        ids.push(acct.id);
    }
    // Each token call takes 300 ms, so concurrency shows in wall time.
    for _ in 0..4 {
        let slow = FaultSpec::always(FaultKind::Silence { millis: 300 })
            .on(FaultTarget::Token)
            .times(1);
        sim.inject(slow);
    }
    let cfg = PoolConfig {
        max_concurrent_refreshes: 1,
        max_refreshes_per_minute: 3,
        ..fast_config()
    };
    let started = Instant::now();
    let h = Harness::start(&sim, records, cfg).await;
    let total = || ids.iter().map(|id| sim.counters(id).refreshes).sum::<u64>();
    assert!(
        wait_for(Duration::from_secs(5), async || total() == 3).await,
        "three refreshes within the minute"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(850),
        "one at a time: {:?}",
        started.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(total(), 3, "the fourth waits for the per-minute budget");
    h.pool.shutdown().await;
}

#[tokio::test]
async fn a_refresh_token_alone_becomes_a_working_account() {
    let sim = sim().await;
    let acct = sim.create_account(AccountSpec::default());
    let line = format!("{}\n", rt_of(&acct.auth_json));
    let rec = codex_rotor::parse_file(line.as_bytes(), SystemClock.now_ms())
        .expect("imports")
        .remove(0);
    assert!(rec.tokens.access_token.is_empty());
    let h = Harness::start(&sim, vec![rec.clone()], fast_config()).await;
    assert!(
        wait_for(Duration::from_secs(5), async || sim
            .counters(&acct.id)
            .refreshes
            == 1)
        .await,
        "refreshed at once, without waiting for a request to fail"
    );
    let l = lease(&h.pool).await;
    assert!(token_works(&sim, &l.creds.access_token).await);
    drop(l);
    let disk = h.on_disk(&rec.id);
    assert!(
        !disk.tokens.access_token.is_empty(),
        "the first access token is durable"
    );
    assert_ne!(
        disk.tokens.refresh_token, rec.tokens.refresh_token,
        "and the rotated refresh token"
    );
    h.pool.shutdown().await;
}
