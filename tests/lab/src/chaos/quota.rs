//! The quota-efficiency scenario: K simulated accounts with a known primary quota each, load
//! until the pool answers the first client-visible 429, then compare what the simulator charged
//! with the pool's total quota. Targets (issue 9): ≥ 98 % of the quota served before the first
//! client 429, ≤ 1 upstream 429 per account per window. The daemon runs in-process here (no
//! kill needed, [`super::inproc`]), the simulator is the same one as everywhere.

use codex_rotor::sim::{AccountSpec, SimOptions, Simulator};
use serde_json::json;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Shape of the scenario.
#[derive(Debug, Clone)]
pub struct QuotaOptions {
    /// K: accounts in the pool.
    pub accounts: usize,
    /// Tokens per account per primary window.
    pub quota_tokens: u64,
    /// Concurrent client requests.
    pub concurrency: usize,
}

/// What the scenario measured.
#[derive(Debug, Clone, Default)]
pub struct QuotaReport {
    /// K.
    pub accounts: usize,
    /// K × quota.
    pub total_quota: u64,
    /// Tokens charged by the simulator, each account capped at its quota.
    pub served_capped: u64,
    /// Tokens charged by the simulator, uncapped (overshoot of the last requests included).
    pub served_raw: u64,
    /// Successful client requests before the first client 429.
    pub ok_requests: u64,
    /// Upstream 429s the pool hit (simulator count), in total and the worst account.
    pub upstream_429s: u64,
    /// The most 429s any one account served.
    pub max_429s_per_account: u64,
    /// Other client-visible failures (should be 0).
    pub other_failures: u64,
    /// The first few other failures (status and body), for diagnosis.
    pub failure_samples: Vec<String>,
    /// Whether a client-visible 429 was reached at all.
    pub exhausted: bool,
    /// Wall time of the run.
    pub elapsed: Duration,
}

impl QuotaReport {
    /// Share of the pool's quota served before the first client 429.
    pub fn share(&self) -> f64 {
        self.served_capped as f64 / self.total_quota.max(1) as f64
    }

    /// ≥ 98 % served, ≤ 1 upstream 429 per account, the pool actually exhausted, no other errors.
    pub fn meets_targets(&self) -> bool {
        self.exhausted
            && self.share() >= 0.98
            && self.max_429s_per_account <= 1
            && self.other_failures == 0
    }

    /// The summary table.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "codex-rotor quota efficiency: {} accounts, {} tokens each",
            self.accounts,
            self.total_quota / self.accounts.max(1) as u64
        );
        let rows = [
            ("pool quota (tokens)", self.total_quota.to_string()),
            (
                "served before first client 429 (capped)",
                format!("{} ({:.2}%)", self.served_capped, self.share() * 100.0),
            ),
            ("charged upstream (uncapped)", self.served_raw.to_string()),
            ("successful client requests", self.ok_requests.to_string()),
            ("upstream 429s hit (total)", self.upstream_429s.to_string()),
            (
                "upstream 429s, worst account",
                self.max_429s_per_account.to_string(),
            ),
            (
                "other client-visible failures",
                self.other_failures.to_string(),
            ),
            ("client 429 reached", self.exhausted.to_string()),
            ("elapsed", format!("{:.1} s", self.elapsed.as_secs_f64())),
        ];
        for (k, v) in rows {
            let _ = writeln!(s, "  {k:<44} {v}");
        }
        for f in &self.failure_samples {
            let _ = writeln!(s, "  failure sample: {f}");
        }
        let _ = writeln!(
            s,
            "targets: ≥ 98% served, ≤ 1 upstream 429 per account: {}",
            if self.meets_targets() {
                "MET"
            } else {
                "MISSED"
            }
        );
        s
    }
}

/// Runs the scenario.
pub async fn quota_efficiency(opts: &QuotaOptions) -> anyhow::Result<QuotaReport> {
    let sim = Simulator::start(SimOptions::default(), ([127, 0, 0, 1], 0).into()).await?;
    let specs = (0..opts.accounts).map(|_| AccountSpec {
        primary_quota_tokens: Some(opts.quota_tokens),
        ..AccountSpec::default()
    });
    let run = super::inproc::start(&sim, "quota", specs, |_| {}).await?;
    let (ids, key) = (run.ids.clone(), run.key);
    let url = format!("{}/v1/responses", run.base_url());
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()?;
    let done = Arc::new(AtomicBool::new(false));
    let (ok, other) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let snapshot = Arc::new(std::sync::Mutex::new(None));
    let samples = Arc::new(std::sync::Mutex::new(Vec::new()));
    let t0 = Instant::now();
    let mut workers = Vec::new();
    for w in 0..opts.concurrency.max(1) {
        let (http, url, done, ok, other, snapshot, sim, ids) = (
            http.clone(),
            url.clone(),
            done.clone(),
            ok.clone(),
            other.clone(),
            snapshot.clone(),
            sim.clone(),
            ids.clone(),
        );
        let samples = samples.clone();
        workers.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !done.load(Ordering::Relaxed) && t0.elapsed() < Duration::from_secs(600) {
                n += 1;
                let body = json!({"model": "gpt-5.5", "stream": n % 2 == 0, "input": [{"type": "message", "role": "user",
                    "content": [{"type": "input_text", "text": format!("worker {w} request {n}")}]}]});
                let r = http.post(&url).bearer_auth(key).json(&body).send().await;
                let status = r.as_ref().map_or(0, |r| r.status().as_u16());
                let body = match r { Ok(r) => r.bytes().await.ok(), Err(e) => Some(e.to_string().into()) };
                match status {
                    200 => { ok.fetch_add(1, Ordering::Relaxed); }
                    429 => {
                        if !done.swap(true, Ordering::SeqCst) {
                            let per: Vec<_> = ids.iter().map(|id| sim.counters(id)).collect();
                            if let Ok(mut s) = snapshot.lock() { *s = Some(per); }
                        }
                    }
                    _ => {
                        if other.fetch_add(1, Ordering::Relaxed) < 3
                            && let Ok(mut s) = samples.lock()
                        {
                            s.push(format!("{status} {}", String::from_utf8_lossy(&body.unwrap_or_default())));
                        }
                    }
                }
            }
        }));
    }
    for w in workers {
        let _ = w.await;
    }
    let per = snapshot.lock().ok().and_then(|mut s| s.take());
    let exhausted = per.is_some();
    let per = per.unwrap_or_else(|| ids.iter().map(|id| sim.counters(id)).collect());
    let report = QuotaReport {
        accounts: opts.accounts,
        total_quota: opts.quota_tokens * opts.accounts as u64,
        served_capped: per.iter().map(|c| c.tokens.min(opts.quota_tokens)).sum(),
        served_raw: per.iter().map(|c| c.tokens).sum(),
        ok_requests: ok.load(Ordering::Relaxed),
        upstream_429s: per.iter().map(|c| c.served_429).sum(),
        max_429s_per_account: per.iter().map(|c| c.served_429).max().unwrap_or(0),
        other_failures: other.load(Ordering::Relaxed),
        failure_samples: samples.lock().map(|s| s.clone()).unwrap_or_default(),
        exhausted,
        elapsed: t0.elapsed(),
    };
    run.stop().await;
    sim.shutdown().await;
    Ok(report)
}
