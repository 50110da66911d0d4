//! The scaling table: the real daemon (child process) against the in-process simulator with
//! 10 → 10 000 accounts and 1 → 256 concurrent streamed `/v1/responses` requests. Per cell:
//! requests/s, p50/p99 latency through the daemon, daemon CPU per request (from `/proc`). Per
//! pool size: start-up time, idle RSS, and memory per in-flight stream, measured by holding
//! streams open upstream (a simulator stall) in two halves and dividing the RSS growth between
//! them by the streams the pool reports in flight. Run it on a release build: `rotor-lab chaos --scaling`.

use super::daemon::{ChildDaemon, POOL_KEY, cpu_ms_of, free_addr, write_config};
use codex_rotor::sim::{AccountSpec, FaultKind, FaultSpec, SimHandle, SimOptions, Simulator};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Shape of the scaling run.
#[derive(Debug, Clone)]
pub struct ScalingOptions {
    /// The binary to run as the daemon with `serve` (`rotor-lab` or `codex-rotor`).
    pub bin: PathBuf,
    /// Pool sizes.
    pub accounts: Vec<usize>,
    /// Concurrent streams per cell.
    pub concurrency: Vec<usize>,
    /// Load per cell.
    pub cell: Duration,
    /// Streams to hold open for the per-stream memory figure (capped by the pool's lease cap).
    pub hold: usize,
}

/// One (accounts, concurrency) measurement.
#[derive(Debug, Clone, Default)]
pub struct Cell {
    /// Concurrent streams.
    pub concurrency: usize,
    /// Completed 200 answers.
    pub ok: u64,
    /// Non-200 answers or transport errors.
    pub failed: u64,
    /// Completed requests per second.
    pub rps: f64,
    /// Median latency (request sent → stream fully read), ms.
    pub p50_ms: f64,
    /// 99th percentile latency, ms.
    pub p99_ms: f64,
    /// Daemon CPU (user + system) per completed request, ms.
    pub cpu_ms_per_req: f64,
    /// Why requests failed: "status message" → count.
    pub failures: std::collections::BTreeMap<String, u64>,
}

/// One pool size.
#[derive(Debug, Clone, Default)]
pub struct Row {
    /// Accounts in the pool for this row.
    pub accounts: usize,
    /// Daemon start → healthy, ms.
    pub startup_ms: u128,
    /// RSS after start-up, no load, KiB.
    pub rss_idle_kib: u64,
    /// Of it, what the daemon allocated (`RssAnon`), KiB.
    pub anon_idle_kib: u64,
    /// RSS after all the cells, KiB.
    pub rss_after_kib: u64,
    /// Streams in flight during the hold.
    pub held: u64,
    /// RSS growth per additional held stream (slope between two hold levels), KiB.
    pub kib_per_stream: f64,
    /// The cells.
    pub cells: Vec<Cell>,
}

/// Runs every pool size and returns the rows.
pub async fn scaling(opts: &ScalingOptions) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for &n in &opts.accounts {
        let row = one_pool(opts, n).await?;
        codex_rotor::errln!("{}", render(std::slice::from_ref(&row)));
        rows.push(row);
    }
    Ok(rows)
}

async fn one_pool(opts: &ScalingOptions, n: usize) -> anyhow::Result<Row> {
    let dir = std::env::temp_dir().join(format!("codex-rotor-scaling-{}-{n}", std::process::id()));
    let accounts_dir = dir.join("data").join(codex_rotor::store::ACCOUNTS_DIR);
    std::fs::create_dir_all(&accounts_dir)?;
    let sim = Simulator::start(SimOptions::default(), ([127, 0, 0, 1], 0).into()).await?;
    for _ in 0..n {
        // Quota large enough never to run out: this table measures throughput and memory; a
        // small pool at full speed would otherwise reach its usage limit mid-cell.
        let created = sim.create_account(AccountSpec {
            primary_quota_tokens: Some(u64::MAX / 4),
            secondary_quota_tokens: Some(u64::MAX / 4),
            ..AccountSpec::default()
        });
        for rec in codex_rotor::demo::import_auth_json(&created.auth_json)? {
            // Plain writes: seeding 10 000 files with two fsyncs each would measure the disk.
            std::fs::write(
                accounts_dir.join(format!("{}.json", rec.id)),
                serde_json::to_vec(&rec)?,
            )?;
        }
    }
    let addr = free_addr()?;
    let config = write_config(&dir, addr, &sim.backend_url(), &sim.token_url(), "5s")?;
    let started = Instant::now();
    let daemon =
        ChildDaemon::start(opts.bin.clone(), config, dir.join("daemon.log"), addr, None).await?;
    let mut row = Row {
        accounts: n,
        startup_ms: started.elapsed().as_millis(),
        ..Row::default()
    };
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(512)
        .timeout(Duration::from_secs(60))
        .build()?;
    let url = format!("{}/v1/responses", daemon.base_url());
    // Warm-up: connections, allocator, every account learns its quota from a first answer.
    let _ = run_cell(&http, &url, 8, Duration::from_secs(1), None).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    row.rss_idle_kib = daemon.rss_kib().unwrap_or(0);
    row.anon_idle_kib = daemon.anon_kib().unwrap_or(0);
    // The daemon runs with the default lease cap, so a small pool holds at most n × cap streams.
    let cap = n * codex_rotor::config::PoolSection::default().max_leases_per_account as usize;
    let (held, per) = hold(&sim, &daemon, &http, &url, opts.hold.min(cap)).await;
    row.held = held;
    row.kib_per_stream = per;
    let pid = daemon_pid(&daemon);
    for &c in &opts.concurrency {
        row.cells
            .push(run_cell(&http, &url, c, opts.cell, pid).await);
    }
    row.rss_after_kib = daemon.rss_kib().unwrap_or(0);
    drop(daemon);
    sim.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(row)
}

fn daemon_pid(d: &ChildDaemon) -> Option<u32> {
    d.pid()
}

/// `c` workers sending streamed Responses requests for `len`; latencies of the 200s.
async fn run_cell(
    http: &reqwest::Client,
    url: &str,
    c: usize,
    len: Duration,
    pid: Option<u32>,
) -> Cell {
    let stop = Arc::new(AtomicBool::new(false));
    let cpu0 = pid.and_then(cpu_ms_of);
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..c.max(1) {
        let (http, url, stop) = (http.clone(), url.to_string(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut failed) = (Vec::new(), std::collections::BTreeMap::<String, u64>::new());
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let body = serde_json::json!({"model": "gpt-5.5", "stream": true, "input": [{"type": "message", "role": "user",
                    "content": [{"type": "input_text", "text": format!("scaling {w}/{i}")}]}]});
                let s = Instant::now();
                let r = http.post(&url).bearer_auth(POOL_KEY).json(&body).send().await;
                let why = match r {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        match r.bytes().await {
                            Ok(_) if status == 200 => None,
                            Ok(b) => Some(format!("{status} {}", failure_reason(&b))),
                            Err(e) => Some(format!("{status} body: {e}")),
                        }
                    }
                    Err(e) => Some(format!("transport: {e}")),
                };
                match why {
                    None => lat.push(s.elapsed().as_secs_f64() * 1000.0),
                    Some(w) => *failed.entry(w).or_insert(0) += 1,
                }
            }
            (lat, failed)
        }));
    }
    tokio::time::sleep(len).await;
    stop.store(true, Ordering::Relaxed);
    let (mut lat, mut failures) = (Vec::new(), std::collections::BTreeMap::new());
    for t in tasks {
        if let Ok((l, f)) = t.await {
            lat.extend(l);
            for (k, v) in f {
                *failures.entry(k).or_insert(0) += v;
            }
        }
    }
    let failed = failures.values().sum();
    let secs = t0.elapsed().as_secs_f64();
    let cpu = match (cpu0, pid.and_then(cpu_ms_of)) {
        (Some(a), Some(b)) => (b - a) as f64,
        _ => f64::NAN,
    };
    lat.sort_by(f64::total_cmp);
    let q = |p: f64| {
        lat.get(((lat.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    Cell {
        concurrency: c,
        ok: lat.len() as u64,
        failed,
        rps: lat.len() as f64 / secs,
        p50_ms: q(0.50),
        p99_ms: q(0.99),
        cpu_ms_per_req: cpu / (lat.len().max(1) as f64),
        failures,
    }
}

/// The error code (or the start of the message) of a failed answer, for grouping.
fn failure_reason(body: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let code = v["error"]["code"]
        .as_str()
        .or(v["error"]["type"].as_str())
        .unwrap_or("?");
    let msg: String = v["error"]["message"]
        .as_str()
        .unwrap_or("")
        .chars()
        .take(60)
        .collect();
    format!("{code}: {msg}")
}

/// Holds up to `n` streams open (upstream stalls after its first event) in two halves and
/// returns (streams in flight at the end, KiB of RSS per stream). The figure is the slope
/// between the two halves: what one more in-flight stream costs, without the one-off costs the
/// first streams pay (a worker thread's allocator pages, the connection pools' first growth),
/// which would otherwise dominate a small pool that can only hold a few streams.
async fn hold(
    sim: &SimHandle,
    daemon: &ChildDaemon,
    http: &reqwest::Client,
    url: &str,
    n: usize,
) -> (u64, f64) {
    tokio::time::sleep(Duration::from_millis(300)).await;
    sim.inject(FaultSpec::always(FaultKind::Stall {
        after_events: 1,
        millis: 6_000,
    }));
    let in_flight = || async {
        daemon
            .admin("/pool")
            .await
            .ok()
            .and_then(|p| p["in_flight"].as_u64())
            .unwrap_or(0)
    };
    let mut tasks = Vec::new();
    let mut marks = Vec::new();
    for half in [n / 2, n - n / 2] {
        for i in 0..half {
            let (http, url) = (http.clone(), url.to_string());
            tasks.push(tokio::spawn(async move {
                let body = serde_json::json!({"model": "gpt-5.5", "stream": true, "input": [{"type": "message", "role": "user",
                    "content": [{"type": "input_text", "text": format!("hold {i}")}]}]});
                if let Ok(r) = http.post(&url).bearer_auth(POOL_KEY).json(&body).send().await {
                    let _ = r.bytes().await;
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        marks.push((in_flight().await, daemon.rss_kib().unwrap_or(0)));
    }
    for t in tasks {
        let _ = t.await;
    }
    sim.clear_faults();
    let ((held1, rss1), (held2, rss2)) = (marks[0], marks[1]);
    let per = if held2 > held1 {
        rss2.saturating_sub(rss1) as f64 / (held2 - held1) as f64
    } else {
        f64::NAN
    };
    (held2, per)
}

/// The table (Markdown, ready for the README).
pub fn render(rows: &[Row]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| accounts | start-up | RSS idle (allocated) | RSS after | streams held | KiB / in-flight stream | concurrency | req/s | p50 ms | p99 ms | CPU ms / req | failed |"
    );
    let _ = writeln!(
        s,
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in rows {
        for (i, c) in r.cells.iter().enumerate() {
            let head = if i == 0 {
                format!(
                    "| {} | {} ms | {:.1} MiB ({:.1}) | {:.1} MiB | {} | {:.1} |",
                    r.accounts,
                    r.startup_ms,
                    r.rss_idle_kib as f64 / 1024.0,
                    r.anon_idle_kib as f64 / 1024.0,
                    r.rss_after_kib as f64 / 1024.0,
                    r.held,
                    r.kib_per_stream
                )
            } else {
                "| | | | | | |".to_string()
            };
            let _ = writeln!(
                s,
                "{head} {} | {:.0} | {:.2} | {:.2} | {:.3} | {} |",
                c.concurrency, c.rps, c.p50_ms, c.p99_ms, c.cpu_ms_per_req, c.failed
            );
        }
    }
    for r in rows {
        for c in &r.cells {
            for (why, n) in &c.failures {
                let _ = writeln!(
                    s,
                    "\n- {} accounts, c={}: {n} × {why}",
                    r.accounts, c.concurrency
                );
            }
        }
    }
    s
}
