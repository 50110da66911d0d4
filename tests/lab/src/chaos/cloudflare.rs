//! The Cloudflare-challenge scenario (issue 15, item 17): K accounts, the simulator answering its
//! challenge page (403 HTML, `cf-mitigated: challenge`) on a share of upstream requests at
//! random, steady concurrent load in all three client protocols through the daemon. It counts
//! the client requests that did not succeed and samples, every 100 ms, how many accounts are
//! benched by a challenge cooldown and for how long, so the escalation can be measured against
//! the load it has to survive. A challenge should cost the account that met it, briefly; it
//! must not empty the pool.

use super::load::{Load, Outcome};
use codex_rotor::sim::{AccountSpec, FaultKind, FaultSpec, SimOptions, Simulator};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Shape of the scenario.
#[derive(Debug, Clone)]
pub struct CloudflareOptions {
    /// K: accounts in the pool.
    pub accounts: usize,
    /// Share of upstream responses requests answered with the challenge page (0..=1).
    pub challenge_rate: f64,
    /// Concurrent client requests.
    pub concurrency: usize,
    /// Length of the load.
    pub duration: Duration,
}

impl Default for CloudflareOptions {
    /// The trial of the issue: 10 accounts, 1 % challenged, 16 clients, 30 s.
    fn default() -> Self {
        CloudflareOptions {
            accounts: 10,
            challenge_rate: 0.01,
            concurrency: 16,
            duration: Duration::from_secs(30),
        }
    }
}

/// What the scenario measured.
#[derive(Debug, Clone, Default)]
pub struct CloudflareReport {
    /// The options it ran with.
    pub accounts: usize,
    /// Share of upstream requests challenged, as asked.
    pub challenge_rate: f64,
    /// Client requests that finished.
    pub requests: usize,
    /// Client requests that did not succeed, by what they ended in.
    pub failures: BTreeMap<String, usize>,
    /// Upstream responses requests the simulator received.
    pub upstream_requests: u64,
    /// Challenge pages the simulator served.
    pub challenges: u64,
    /// Samples of the pool taken.
    pub samples: usize,
    /// Most accounts cooling down at one sample.
    pub max_cooling: usize,
    /// Mean accounts cooling down per sample.
    pub mean_cooling: f64,
    /// Samples in which every account was cooling down (time with no account out of a cooldown).
    pub all_cooling_samples: usize,
    /// Distinct accounts that cooled down at least once.
    pub ever_cooled: usize,
    /// Longest remaining cooldown seen at a sample, in seconds (how far escalation went).
    pub longest_cooldown_secs: f64,
    /// Wall time of the load.
    pub elapsed: Duration,
}

impl CloudflareReport {
    /// Failed client requests.
    pub fn failed(&self) -> usize {
        self.failures.values().sum()
    }

    /// Share of client requests that failed.
    pub fn failure_share(&self) -> f64 {
        self.failed() as f64 / self.requests.max(1) as f64
    }

    /// The summary table.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "codex-rotor Cloudflare challenges: {} accounts, {:.1}% of upstream requests challenged",
            self.accounts,
            self.challenge_rate * 100.0
        );
        let secs = self.elapsed.as_secs_f64().max(0.001);
        let rows = [
            (
                "client requests (per second)",
                format!("{} ({:.0}/s)", self.requests, self.requests as f64 / secs),
            ),
            (
                "client requests failed",
                format!("{} ({:.2}%)", self.failed(), self.failure_share() * 100.0),
            ),
            ("upstream requests", self.upstream_requests.to_string()),
            ("challenge pages served", self.challenges.to_string()),
            (
                "accounts cooling, most at once",
                format!("{} of {}", self.max_cooling, self.accounts),
            ),
            (
                "accounts cooling, mean",
                format!("{:.2}", self.mean_cooling),
            ),
            (
                "time with every account cooling",
                format!(
                    "{:.1} s ({} of {} samples)",
                    self.all_cooling_samples as f64 * SAMPLE.as_secs_f64(),
                    self.all_cooling_samples,
                    self.samples
                ),
            ),
            ("accounts that ever cooled", self.ever_cooled.to_string()),
            (
                "longest cooldown seen",
                format!("{:.1} s", self.longest_cooldown_secs),
            ),
            ("elapsed", format!("{secs:.1} s")),
        ];
        for (k, v) in rows {
            let _ = writeln!(s, "  {k:<36} {v}");
        }
        for (why, n) in &self.failures {
            let _ = writeln!(s, "  failed: {n} × {why}");
        }
        s
    }
}

/// How often the pool is sampled.
const SAMPLE: Duration = Duration::from_millis(100);

/// Runs the scenario.
pub async fn cloudflare(opts: &CloudflareOptions) -> anyhow::Result<CloudflareReport> {
    let sim = Simulator::start(SimOptions::default(), ([127, 0, 0, 1], 0).into()).await?;
    let specs = (0..opts.accounts).map(|_| AccountSpec::default());
    let run = super::inproc::start(&sim, "cloudflare", specs, |_| {}).await?;
    sim.inject(FaultSpec::always(FaultKind::Cloudflare).with_probability(opts.challenge_rate));
    let t0 = Instant::now();
    let load = Load::new(run.base_url(), run.key.into(), t0)?;
    let workers = load.spawn(opts.concurrency.max(1));
    let mut report = CloudflareReport {
        accounts: opts.accounts,
        challenge_rate: opts.challenge_rate,
        ..CloudflareReport::default()
    };
    let (mut cooling_sum, mut cooled) = (0usize, BTreeSet::new());
    while t0.elapsed() < opts.duration {
        tokio::time::sleep(SAMPLE).await;
        let now = super::run::now_ms();
        let views = run.daemon.state.pool().accounts().await;
        let cooling: Vec<_> = views
            .iter()
            .filter_map(|v| v.cooldown_until.filter(|t| *t > now).map(|t| (&v.id, t)))
            .collect();
        report.samples += 1;
        cooling_sum += cooling.len();
        report.max_cooling = report.max_cooling.max(cooling.len());
        report.all_cooling_samples +=
            usize::from(!views.is_empty() && cooling.len() == views.len());
        for (id, until) in cooling {
            cooled.insert(id.clone());
            let left = (until - now) as f64 / 1000.0;
            report.longest_cooldown_secs = report.longest_cooldown_secs.max(left);
        }
    }
    load.running.store(false, Ordering::Relaxed);
    for w in workers {
        let _ = tokio::time::timeout(Duration::from_secs(70), w).await;
    }
    report.elapsed = t0.elapsed();
    report.mean_cooling = cooling_sum as f64 / report.samples.max(1) as f64;
    report.ever_cooled = cooled.len();
    let records = std::mem::take(
        &mut *load
            .records
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?,
    );
    report.requests = records.len();
    for r in records {
        let why = match r.outcome {
            Outcome::Success => continue,
            Outcome::ProtocolError(e) => e,
            Outcome::CutByKill => "connection cut".into(),
            Outcome::Violation(v) => format!("violation: {v}"),
        };
        *report.failures.entry(why).or_default() += 1;
    }
    let totals = sim.total_counters();
    report.upstream_requests = totals.requests;
    report.challenges = totals.served_403;
    run.stop().await;
    sim.shutdown().await;
    Ok(report)
}
