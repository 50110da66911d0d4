//! The chaos run, top to bottom: set up simulator, accounts and daemon; warm up; storm; SIGKILL
//! and restart; storm again; calm; then stop the load and check what must hold afterwards
//! (leases, memory, locks, accounts and refresh tokens on disk). Timeline, as shares of the
//! run: 0–10 % warm-up · 10–45 % storm · kill + restart · 45–50 % warm-up · 50–85 % storm ·
//! 85–100 % calm.

use super::daemon::{ChildDaemon, POOL_KEY, free_addr, write_config};
use super::load::{Load, Outcome};
use super::report::ChaosReport;
use super::{faults, locks};
use crate::sim::{AccountSpec, SimHandle, SimOptions, Simulator};
use crate::store::FileStore;
use rotor_actors::{RefreshReason, Store, TokenRefresher};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How a chaos run is shaped.
#[derive(Debug, Clone)]
pub struct ChaosOptions {
    /// The `codex-rotor` binary to run as the daemon.
    pub bin: PathBuf,
    /// Length of the load.
    pub duration: Duration,
    /// Accounts in the pool.
    pub accounts: usize,
    /// Concurrent client requests.
    pub concurrency: usize,
    /// Whether to SIGKILL and restart the daemon mid-load.
    pub kill: bool,
    /// The daemon's `pool.tick` (also the probe cadence the lock check allows for).
    pub tick: Duration,
    /// Pause between SSE events upstream, so streams are in flight when the kill lands.
    pub event_delay: Duration,
    /// Accepted drift of resident memory from its baseline, as a fraction.
    pub rss_tolerance: f64,
}

impl Default for ChaosOptions {
    fn default() -> Self {
        ChaosOptions {
            bin: PathBuf::from("codex-rotor"),
            duration: Duration::from_secs(180),
            accounts: 50,
            concurrency: 32,
            kill: true,
            tick: Duration::from_secs(1),
            event_delay: Duration::from_millis(15),
            rss_tolerance: 0.20,
        }
    }
}

pub(super) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A fresh work directory under the system temp dir.
fn work_dir() -> anyhow::Result<PathBuf> {
    let d = std::env::temp_dir().join(format!(
        "codex-rotor-chaos-{}-{}",
        std::process::id(),
        now_ms()
    ));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

/// Creates `n` simulator accounts and writes them into the data dir as an operator's import would.
fn seed_accounts(sim: &SimHandle, data: &Path, n: usize) -> anyhow::Result<Vec<String>> {
    let (store, _, _) = FileStore::open(data)?;
    let mut ids = Vec::new();
    for _ in 0..n {
        let created = sim.create_account(AccountSpec::default());
        for rec in crate::demo::import_auth_json(&created.auth_json)? {
            store.save(&rec)?;
        }
        ids.push(created.id);
    }
    Ok(ids)
}

/// Mutable state of the timeline.
#[derive(Default)]
struct Timeline {
    kill_window: Option<(Duration, Duration)>,
    baseline_rss: Option<u64>,
    baseline_cpu: Option<(u64, usize)>,
    overdue: Vec<locks::Overdue>,
    expired_rounds: usize,
    restart_ms: Option<u128>,
}

/// Runs one chaos scenario and returns its report (checks included).
pub async fn chaos(opts: &ChaosOptions) -> anyhow::Result<ChaosReport> {
    let dir = work_dir()?;
    let sim_opts = SimOptions {
        event_delay: opts.event_delay,
        answer_words: 12,
        ..SimOptions::default()
    };
    let sim = Simulator::start(sim_opts, ([127, 0, 0, 1], 0).into()).await?;
    let data = dir.join("data");
    let sim_ids = seed_accounts(&sim, &data, opts.accounts)?;
    let tick = format!("{}ms", opts.tick.as_millis());
    let addr = free_addr()?;
    let config = write_config(&dir, addr, &sim.backend_url(), &sim.token_url(), &tick)?;
    let mut daemon =
        ChildDaemon::start(opts.bin.clone(), config, dir.join("daemon.log"), addr).await?;
    let t0 = Instant::now();
    let load = Load::new(daemon.base_url(), POOL_KEY.into(), t0)?;
    let workers = load.spawn(opts.concurrency);
    let mut tl = Timeline::default();
    drive(opts, &sim, &sim_ids, &mut daemon, &load, &mut tl).await?;
    load.running.store(false, Ordering::Relaxed);
    for w in workers {
        let _ = tokio::time::timeout(Duration::from_secs(70), w).await;
    }
    let mut report = ChaosReport {
        accounts: opts.accounts,
        concurrency: opts.concurrency,
        duration: t0.elapsed(),
        ..ChaosReport::default()
    };
    report.records = std::mem::take(
        &mut *load
            .records
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?,
    );
    attribute_kill_cuts(&mut report, tl.kill_window);
    after_load(opts, &mut daemon, &mut report, &tl).await;
    daemon.stop().await;
    on_disk(&sim, &data, &sim_ids, &mut report).await;
    fill_figures(&sim, &mut report, &tl, opts);
    sim.shutdown().await;
    if report.passed() {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        report.figures.push((
            "work dir (kept: data, config, daemon.log)".into(),
            dir.display().to_string(),
        ));
    }
    Ok(report)
}

/// The timeline loop: phases, token expiries, lock sampling, the kill.
async fn drive(
    opts: &ChaosOptions,
    sim: &SimHandle,
    sim_ids: &[String],
    daemon: &mut ChildDaemon,
    load: &Load,
    tl: &mut Timeline,
) -> anyhow::Result<()> {
    let total = opts.duration.as_secs_f64();
    let slack = (opts.tick.as_millis() as i64) * 2 + 5_000;
    let (mut storm1, mut killed, mut storm2, mut calm) = (false, false, false, false);
    let mut next_expire = 0.0;
    let mut next_sample = 0.0;
    loop {
        let t = load.t0.elapsed().as_secs_f64();
        let f = t / total;
        if f >= 1.0 {
            break;
        }
        if !storm1 && f >= 0.10 {
            storm1 = true;
            if !opts.kill {
                tl.baseline_rss = daemon.rss_kib();
                tl.baseline_cpu = daemon
                    .cpu_ms()
                    .map(|c| (c, load.records.lock().map_or(0, |r| r.len())));
            }
            faults::start_storm(sim);
        }
        if opts.kill && !killed && f >= 0.45 {
            killed = true;
            sim.clear_faults();
            let kill_at = load.t0.elapsed();
            let started = Instant::now();
            daemon.restart().await?;
            tl.restart_ms = Some(started.elapsed().as_millis());
            tl.kill_window = Some((kill_at, load.t0.elapsed()));
        }
        if !storm2 && f >= 0.50 {
            storm2 = true;
            if opts.kill {
                tl.baseline_rss = daemon.rss_kib();
                tl.baseline_cpu = daemon
                    .cpu_ms()
                    .map(|c| (c, load.records.lock().map_or(0, |r| r.len())));
            }
            faults::start_storm(sim);
        }
        if !calm && f >= 0.85 {
            calm = true;
            sim.clear_faults();
        }
        let storming = (storm1 && f < 0.45) || (storm2 && !calm);
        if storming && t >= next_expire {
            // 20 per minute: inside the daemon's default refresh budget (30/min), so the run
            // tests recovery, not the budget's queue.
            next_expire = t + 3.0;
            faults::expire_some(sim, sim_ids, tl.expired_rounds, 1);
            tl.expired_rounds += 1;
        }
        if t >= next_sample {
            next_sample = t + 1.0;
            if let Ok(v) = daemon.admin("/accounts").await {
                tl.overdue.extend(locks::overdue(&v, now_ms(), slack));
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Transport failures of requests that overlapped the kill window are the kill's doing.
fn attribute_kill_cuts(report: &mut ChaosReport, window: Option<(Duration, Duration)>) {
    let Some((from, to)) = window else { return };
    for r in &mut report.records {
        let overlaps = r.span.0 <= to && r.span.1 >= from;
        if overlaps && matches!(&r.outcome, Outcome::Violation(v) if v.contains("transport")) {
            r.outcome = Outcome::CutByKill;
        }
    }
}

/// Checks taken on the running daemon after the load stopped: leases, locks, memory.
async fn after_load(
    opts: &ChaosOptions,
    daemon: &mut ChildDaemon,
    report: &mut ChaosReport,
    tl: &Timeline,
) {
    let start = Instant::now();
    let (mut in_flight, mut leases) = (u64::MAX, u64::MAX);
    while start.elapsed() < Duration::from_secs(10) {
        let pool = daemon.admin("/pool").await.ok();
        let accounts = daemon.admin("/accounts").await.ok();
        in_flight = pool
            .as_ref()
            .and_then(|p| p["in_flight"].as_u64())
            .unwrap_or(u64::MAX);
        leases = accounts.as_ref().map_or(u64::MAX, locks::leases);
        if in_flight == 0 && leases == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    report.check(
        "in-flight leases return to 0",
        in_flight == 0 && leases == 0,
        format!("pool in_flight {in_flight}, sum of account leases {leases}"),
    );
    let mut late: Vec<String> = tl
        .overdue
        .iter()
        .map(|o| format!("{} {} +{} ms", o.id, o.what, o.late_ms))
        .collect();
    late.dedup();
    report.check(
        "no lock outlives its reset + probe interval",
        late.is_empty(),
        if late.is_empty() {
            format!("slack {} ms", opts.tick.as_millis() * 2 + 5_000)
        } else {
            format!(
                "{} overdue samples, first: {:?}",
                late.len(),
                &late[..late.len().min(3)]
            )
        },
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let fin = daemon.rss_kib();
    match (tl.baseline_rss, fin) {
        (Some(b), Some(f)) => {
            let ratio = f as f64 / b.max(1) as f64;
            report.check(
                "RSS returns to its baseline (±20%)",
                (1.0 - opts.rss_tolerance..=1.0 + opts.rss_tolerance).contains(&ratio),
                format!(
                    "baseline {} KiB, after load {} KiB ({:+.1}%)",
                    b,
                    f,
                    (ratio - 1.0) * 100.0
                ),
            );
        }
        _ => report.check(
            "RSS returns to its baseline (±20%)",
            false,
            "RSS could not be read from /proc",
        ),
    }
    if let (Some((c0, n0)), Some(c1)) = (tl.baseline_cpu, daemon.cpu_ms()) {
        let n = report.records.len().saturating_sub(n0).max(1);
        report.figures.push((
            "daemon CPU per request (after baseline)".into(),
            format!(
                "{:.3} ms ({} ms / {} requests)",
                (c1 - c0) as f64 / n as f64,
                c1 - c0,
                n
            ),
        ));
    }
}

/// After a graceful stop: every account is on disk, none quarantined, each refresh token live.
async fn on_disk(sim: &SimHandle, data: &Path, sim_ids: &[String], report: &mut ChaosReport) {
    let (recs, quarantined) = match FileStore::open(data) {
        Ok((_, r, q)) => (r, q),
        Err(e) => {
            return report.check(
                "no account lost after SIGKILL + restart",
                false,
                format!("data dir unreadable: {e}"),
            );
        }
    };
    let missing: Vec<&String> = sim_ids
        .iter()
        .filter(|id| {
            !recs
                .iter()
                .any(|r| r.identity.chatgpt_account_id.as_deref() == Some(id.as_str()))
        })
        .collect();
    report.check(
        "no account lost after SIGKILL + restart",
        missing.is_empty() && quarantined.is_empty() && recs.len() == sim_ids.len(),
        format!(
            "{} of {} on disk, {} quarantined, missing {:?}",
            recs.len(),
            sim_ids.len(),
            quarantined.len(),
            &missing[..missing.len().min(3)]
        ),
    );
    let refresher = crate::oauth::HttpRefresher::new(reqwest::Client::new(), sim.token_url());
    let mut dead = Vec::new();
    for r in &recs {
        let Some(rt) = r.tokens.refresh_token.clone() else {
            dead.push(format!("{}: no refresh token", r.id));
            continue;
        };
        if matches!(
            r.status,
            rotor_actors::Status::Expired | rotor_actors::Status::Banned
        ) {
            dead.push(format!("{}: {:?} {:?}", r.id, r.status, r.status_reason));
        }
        if let Err(e) = refresher.refresh(rt, RefreshReason::ProactiveExpiry).await {
            dead.push(format!("{}: refresh token on disk refused: {e:?}", r.id));
        }
    }
    let statuses = recs.iter().fold(
        std::collections::BTreeMap::<&str, usize>::new(),
        |mut m, r| {
            *m.entry(r.status.as_str()).or_default() += 1;
            m
        },
    );
    report.figures.push((
        "account statuses on disk at the end".into(),
        format!("{statuses:?}"),
    ));
    report.check(
        "no refresh token lost (disk = newest the sim issued)",
        dead.is_empty() && !recs.is_empty(),
        if dead.is_empty() {
            format!("{} refresh tokens live", recs.len())
        } else {
            format!("{} bad: {:?}", dead.len(), &dead[..dead.len().min(3)])
        },
    );
}

/// Outcome checks and the figures of the summary.
fn fill_figures(sim: &SimHandle, report: &mut ChaosReport, tl: &Timeline, opts: &ChaosOptions) {
    let violations: Vec<String> = report
        .records
        .iter()
        .filter_map(|r| match &r.outcome {
            Outcome::Violation(v) => Some(format!("{:?}: {v}", r.kind)),
            _ => None,
        })
        .collect();
    report.check(
        "every request: success or a correct protocol error",
        violations.is_empty() && !report.records.is_empty(),
        format!(
            "{} requests, {} violations {:?}",
            report.records.len(),
            violations.len(),
            &violations[..violations.len().min(3)]
        ),
    );
    let unserved: Vec<String> = super::load::KINDS
        .iter()
        .filter(|k| {
            !report
                .records
                .iter()
                .any(|r| r.kind == **k && r.outcome == Outcome::Success)
        })
        .map(|k| format!("{k:?}"))
        .collect();
    report.check(
        "every protocol was served during the storm",
        unserved.is_empty(),
        if unserved.is_empty() {
            "6 of 6 kinds".to_string()
        } else {
            format!("never succeeded: {unserved:?}")
        },
    );
    let c = sim.total_counters();
    report.check(
        "the faults actually hit",
        c.faults > 0 && c.served_401 > 0 && c.refreshes > 0,
        format!(
            "{} faults, {} 401s, {} refreshes",
            c.faults, c.served_401, c.refreshes
        ),
    );
    report.upstream = vec![
        ("responses requests".into(), c.requests),
        ("429 served".into(), c.served_429),
        ("401 served".into(), c.served_401),
        ("403 served".into(), c.served_403),
        ("5xx served".into(), c.served_5xx),
        ("injected faults that hit".into(), c.faults),
        ("token refreshes".into(), c.refreshes),
        ("refresh-token reuse attempts".into(), c.refresh_reused),
        ("usage probes".into(), c.usage_probes),
    ];
    for (label, f) in faults::storm() {
        report.injected.push((
            label.to_string(),
            format!("p = {}", f.probability.unwrap_or(1.0)),
        ));
    }
    report.injected.push((
        "access tokens expired (→ 401 → refresh)".into(),
        format!("{} accounts (1 every 3 s)", tl.expired_rounds),
    ));
    report.injected.push((
        "SIGKILL + restart of the daemon".into(),
        match (opts.kill, tl.restart_ms) {
            (true, Some(ms)) => format!("once, at 45%, back healthy in {ms} ms"),
            _ => "not run (--no-kill)".into(),
        },
    ));
    report.injected.push((
        "account-actor panic".into(),
        "NOT INJECTED: core offers no panic fault point".into(),
    ));
    let cut = report
        .records
        .iter()
        .filter(|r| r.outcome == Outcome::CutByKill)
        .count();
    report
        .figures
        .push(("client requests cut by the SIGKILL".into(), cut.to_string()));
}
