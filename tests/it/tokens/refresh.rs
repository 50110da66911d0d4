//! Refresh through a real pool: account actors with the real `HttpRefresher` and `FileStore`,
//! against the simulator's rotating token endpoint. Proactive refresh happens before expiry and
//! is durable before use; a 401 triggers a recovery refresh; a reused refresh token marks the
//! account `expired` with its reason after exactly one attempt; a deactivated account is banned;
//! many concurrent triggers collapse into one token-endpoint call.

use super::{rt_of, sim};
use codex_rotor::accounts::parse_file;
use codex_rotor::oauth::HttpRefresher;
use codex_rotor::sim::{AccountSpec, CreatedAccount, SimHandle};
use codex_rotor::store::FileStore;
use futures::future::BoxFuture;
use rotor_actors::{
    AccountRecord, Clock, Effects, PickRequest, PoolConfig, PoolHandle, ProbeError, QuotaProber,
    RefreshReason, Status, SystemClock, TokenRefresher, UpstreamCreds, UpstreamFailure, quota,
};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Probes `/wham/usage` of the simulator for real (the daemon's own prober lives with the
/// upstream client; this one is the same request, kept here so the test needs nothing else).
struct UsageProber {
    client: reqwest::Client,
    url: String,
}

impl QuotaProber for UsageProber {
    fn probe(
        &self,
        creds: UpstreamCreds,
    ) -> BoxFuture<'static, Result<quota::Observation, ProbeError>> {
        let req = self.client.get(&self.url).bearer_auth(&creds.access_token);
        Box::pin(async move {
            let resp = req
                .send()
                .await
                .map_err(|e| ProbeError::Transient(e.to_string()))?;
            match resp.status().as_u16() {
                401 => return Err(ProbeError::Unauthorized),
                403 => return Err(ProbeError::Banned("403".into())),
                200 => {}
                s => return Err(ProbeError::Transient(format!("HTTP {s}"))),
            }
            let body: serde_json::Value = resp
                .json()
                .await
                .map_err(|e| ProbeError::Transient(e.to_string()))?;
            quota::usage::parse(&body, SystemClock.now_ms()).map_err(ProbeError::Transient)
        })
    }
}

/// A pool over a temporary data directory.
pub(crate) struct Harness {
    pub pool: PoolHandle,
    pub dir: tempfile::TempDir,
}

impl Harness {
    /// Starts a pool holding `records`, persisting to a fresh temp dir.
    pub async fn start(sim: &SimHandle, records: Vec<AccountRecord>, cfg: PoolConfig) -> Harness {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, loaded, _) = FileStore::open(dir.path()).expect("store");
        assert!(loaded.is_empty());
        for r in &records {
            rotor_actors::Store::save(&store, r).expect("seed");
        }
        let client = reqwest::Client::new();
        let effects = Effects {
            store: Arc::new(store),
            refresher: Arc::new(HttpRefresher::new(client.clone(), sim.token_url())),
            prober: Arc::new(UsageProber {
                client,
                url: format!("{}/wham/usage", sim.backend_url()),
            }),
            clock: Arc::new(SystemClock),
        };
        let pool = PoolHandle::start(cfg, effects, records)
            .await
            .expect("pool starts");
        Harness { pool, dir }
    }

    /// The account's record as it is on disk now.
    pub fn on_disk(&self, id: &str) -> AccountRecord {
        let (_, recs, _) = FileStore::open(self.dir.path()).expect("store");
        recs.into_iter()
            .find(|r| r.id == id)
            .expect("record on disk")
    }
}

/// A pool config with fast ticks and no jitter, so timings in tests are tight.
pub(crate) fn fast_config() -> PoolConfig {
    PoolConfig {
        tick: Duration::from_millis(100),
        refresh_margin: Duration::from_secs(2),
        refresh_jitter: Duration::ZERO,
        max_leases_per_account: 16,
        ..PoolConfig::default()
    }
}

/// The record of a simulator account, imported like an operator would.
pub(crate) fn record_of(acct: &CreatedAccount) -> AccountRecord {
    let mut recs =
        parse_file(acct.auth_json.to_string().as_bytes(), SystemClock.now_ms()).expect("imports");
    recs.remove(0)
}

/// Polls `cond` every 20 ms for up to `limit`.
pub(crate) async fn wait_for(limit: Duration, mut cond: impl AsyncFnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

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
