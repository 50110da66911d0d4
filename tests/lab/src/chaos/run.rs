//! The chaos run, top to bottom: set up simulator, accounts and daemon; warm up; storm; SIGKILL
//! and restart; storm again; calm; then stop the load and check what must hold afterwards
//! (leases, memory, locks, accounts and refresh tokens on disk). Timeline, as shares of the
//! run: 0–10 % warm-up · 10–45 % storm · kill + restart · 45–50 % warm-up · 50–85 % storm ·
//! 85–100 % calm.

use super::daemon::{ChildDaemon, POOL_KEY, free_addr, write_config};
use super::load::{Load, Outcome};
use super::report::ChaosReport;
use super::{actor_panic, faults, locks, verdict};
use codex_rotor::sim::{AccountSpec, SimHandle, SimOptions, Simulator};
use codex_rotor::store::FileStore;
use rotor_actors::Store;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How a chaos run is shaped.
#[derive(Debug, Clone)]
pub struct ChaosOptions {
    /// The binary to run as the daemon with `serve`: `rotor-lab`, or a `codex-rotor` built with
    /// the `fault-injection` feature (the run injects an actor panic).
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

/// Creates `n` simulator accounts and writes them into the data dir as an operator's import
/// would. Returns their simulator ids and the pool id of the first (the one made to panic).
fn seed_accounts(
    sim: &SimHandle,
    data: &Path,
    n: usize,
) -> anyhow::Result<(Vec<String>, Option<String>)> {
    let (store, _, _) = FileStore::open(data)?;
    let (mut ids, mut first) = (Vec::new(), None);
    for _ in 0..n {
        let created = sim.create_account(AccountSpec::default());
        for rec in codex_rotor::demo::import_auth_json(&created.auth_json)? {
            store.save(&rec)?;
            first.get_or_insert(rec.id);
        }
        ids.push(created.id);
    }
    Ok((ids, first))
}

/// Mutable state of the timeline.
#[derive(Default)]
pub(super) struct Timeline {
    /// When the daemon was down (kill → healthy again), relative to the start.
    pub(super) kill_window: Option<(Duration, Duration)>,
    /// RSS of the daemon that is alive at the end, after its warm-up.
    pub(super) baseline_rss: Option<u64>,
    /// Its CPU time and the number of finished requests at that moment.
    pub(super) baseline_cpu: Option<(u64, usize)>,
    /// Locks seen past their deadline.
    pub(super) overdue: Vec<locks::Overdue>,
    /// Access tokens expired so far.
    pub(super) expired_rounds: usize,
    /// Kill → healthy, ms.
    pub(super) restart_ms: Option<u128>,
    /// The injected account-actor panic, as seen on the process that panicked.
    pub(super) panic: actor_panic::PanicWatch,
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
    let (sim_ids, panic_id) = seed_accounts(&sim, &data, opts.accounts)?;
    let tick = format!("{}ms", opts.tick.as_millis());
    let addr = free_addr()?;
    let config = write_config(&dir, addr, &sim.backend_url(), &sim.token_url(), &tick)?;
    let log = dir.join("daemon.log");
    let mut daemon =
        ChildDaemon::start(opts.bin.clone(), config, log, addr, panic_id.clone()).await?;
    let t0 = Instant::now();
    let load = Load::new(daemon.base_url(), POOL_KEY.into(), t0)?;
    let workers = load.spawn(opts.concurrency);
    let mut tl = Timeline::default();
    tl.panic.id = panic_id;
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
    if !opts.kill {
        tl.panic.sample(&daemon).await;
    }
    verdict::after_load(opts, &mut daemon, &mut report, &tl).await;
    actor_panic::verdict(&tl.panic, &daemon, &mut report).await;
    daemon.stop().await;
    verdict::on_disk(&sim, &data, &sim_ids, &mut report).await;
    verdict::fill_figures(&sim, &mut report, &tl, opts);
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
            tl.panic.sample(daemon).await;
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
            if !killed {
                tl.panic.sample(daemon).await;
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
