//! Benchmark of the pool's hot path: `PickTarget` + `Reserve` (+ the lease's release) latency
//! at 10, 100, 1 000 and 10 000 accounts with two concurrent pickers, and resident memory per
//! idle account (from /proc/self/statm around spawning 10 000 accounts with ~1.5 KB tokens).
//! Run: `cargo run --release -p rotor-actors --example pick_bench`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rotor_actors::quota::Observation;
use rotor_actors::{
    AccountRecord, BoxFuture, Effects, NewTokens, PickRequest, PoolConfig, PoolHandle, ProbeError,
    QuotaProber, RefreshError, RefreshReason, Store, SystemClock, TokenRefresher, Tokens,
    UpstreamCreds,
};

/// Picks per picker per pool size (after warm-up).
const PICKS: usize = 20_000;
/// Concurrent pickers.
const PICKERS: usize = 2;

struct NullStore;
impl Store for NullStore {
    fn save(&self, _: &AccountRecord) -> std::io::Result<()> {
        Ok(())
    }
    fn remove(&self, _: &str) -> std::io::Result<()> {
        Ok(())
    }
}
struct NullRefresher;
impl TokenRefresher for NullRefresher {
    fn refresh(
        &self,
        _: String,
        _: RefreshReason,
    ) -> BoxFuture<'static, Result<NewTokens, RefreshError>> {
        Box::pin(async { Err(RefreshError::Transient("bench".into())) })
    }
}
struct NullProber;
impl QuotaProber for NullProber {
    fn probe(&self, _: UpstreamCreds) -> BoxFuture<'static, Result<Observation, ProbeError>> {
        Box::pin(async { Err(ProbeError::Transient("bench".into())) })
    }
}

fn effects() -> Effects {
    Effects {
        store: Arc::new(NullStore),
        refresher: Arc::new(NullRefresher),
        prober: Arc::new(NullProber),
        fence: Arc::new(rotor_actors::NoFence),
        clock: Arc::new(SystemClock),
    }
}

/// A record with realistic token sizes: ~1.5 KB access and id JWTs, a ~90 byte refresh token.
fn record(i: usize) -> AccountRecord {
    let jwt = |tag: &str| {
        format!(
            "eyJhbGciOiJSUzI1NiJ9.{}{i:08}.{}",
            tag.repeat(1200 / tag.len()),
            "s".repeat(300)
        )
    };
    let tokens = Tokens {
        access_token: jwt("acc"),
        refresh_token: Some(format!("oaistb_rt_{}{i:08}", "r".repeat(80))),
        id_token: Some(jwt("idt")),
        expires_at: None,
        last_refresh: None,
    };
    let mut r = AccountRecord::new(format!("{i:016x}"), tokens, 0);
    r.identity.email = Some(format!("user{i}@example.com"));
    r.identity.plan = Some("plus".into());
    r.identity.chatgpt_account_id = Some(format!("acct-{i:08}"));
    r
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn cfg() -> PoolConfig {
    PoolConfig {
        max_leases_per_account: 1_000,
        ..PoolConfig::default()
    }
}

async fn bench(n: usize, tick: Duration) {
    bench_picks(n, tick, PICKS).await
}

async fn bench_picks(n: usize, tick: Duration, picks: usize) {
    let c = PoolConfig { tick, ..cfg() };
    let pool = PoolHandle::start(c, effects(), (0..n).map(record).collect())
        .await
        .expect("start pool");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let req = PickRequest {
        model: "gpt-5.5".into(),
        ..PickRequest::default()
    };
    for _ in 0..2_000 {
        drop(pool.pick(req.clone()).await.expect("warm-up pick"));
    }
    let tasks: Vec<_> = (0..PICKERS)
        .map(|_| {
            let (pool, req) = (pool.clone(), req.clone());
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(picks);
                for _ in 0..picks {
                    let t = Instant::now();
                    let lease = pool.pick(req.clone()).await.expect("pick");
                    lat.push(t.elapsed());
                    drop(lease);
                }
                lat
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("picker"));
    }
    all.sort();
    let q = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    println!(
        "{n:>6} accounts, tick {tick:>5?}: pick+reserve p50 {:>6.1} µs  p99 {:>6.1} µs  max {:>8.1} µs  ({} picks, {PICKERS} pickers)",
        q(0.50).as_secs_f64() * 1e6,
        q(0.99).as_secs_f64() * 1e6,
        all[all.len() - 1].as_secs_f64() * 1e6,
        all.len()
    );
    pool.shutdown().await;
}

async fn memory(n: usize) {
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = rss_bytes();
    let pool = PoolHandle::start(cfg(), effects(), (0..n).map(record).collect())
        .await
        .expect("start pool");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss_bytes();
    let per = after.saturating_sub(before) as f64 / n as f64;
    println!(
        "memory: {n} idle accounts add {:.1} MiB resident = {:.0} bytes ({:.1} KiB) per account (tokens ~3.1 KB of it)",
        after.saturating_sub(before) as f64 / 1_048_576.0,
        per,
        per / 1024.0
    );
    pool.shutdown().await;
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    // `PICK_BENCH=<accounts>:<picks>` runs one pool size, no tick, no memory phase: for counting
    // instructions under callgrind (two runs with different <picks>, difference per pick).
    if let Some((n, picks)) = std::env::var("PICK_BENCH").ok().and_then(|v| {
        let (n, p) = v.split_once(':')?;
        Some((n.parse().ok()?, p.parse().ok()?))
    }) {
        rt.block_on(bench_picks(n, Duration::from_secs(3_600), picks));
        return;
    }
    rt.block_on(async {
        memory(10_000).await;
        let tick = cfg().tick;
        for n in [10, 100, 1_000, 10_000] {
            bench(n, tick).await;
        }
        // The same without any tick during the run: how much of the tail is the accounts' upkeep.
        for n in [1_000, 10_000] {
            bench(n, Duration::from_secs(3_600)).await;
        }
    });
}
