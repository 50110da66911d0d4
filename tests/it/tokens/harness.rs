//! A real pool for the refresh tests: account actors with the real `HttpRefresher`, the real
//! `FileStore` in a temporary data directory, a usage prober speaking HTTP to the simulator,
//! and the system clock — nothing mocked.

use codex_rotor::HttpRefresher;
use codex_rotor::parse_file;
use codex_rotor::sim::{CreatedAccount, SimHandle};
use codex_rotor::store::FileStore;
use futures::future::BoxFuture;
use rotor_actors::{
    AccountRecord, Clock, Effects, PoolConfig, PoolHandle, ProbeError, QuotaProber, SystemClock,
    UpstreamCreds, quota,
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
            fence: Arc::new(rotor_actors::NoFence),
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
