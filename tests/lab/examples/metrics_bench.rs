//! What the request path costs the metrics: per finished request the proxy counts it by route
//! and status, observes its duration and time to first byte into the latency histograms, adds
//! its tokens, retries, failovers and upstream 429s ([`Metrics::observe`]), and each upstream
//! answer observes one latency ([`Metrics::upstream_latency`]). This drives both from two
//! threads at once, as concurrent requests do, and prints nanoseconds per request; it also
//! times one scrape of a pool of accounts. Results: docs/benchmarks.md "Metrics".
//!
//! `cargo run --release --example metrics_bench` (or `--profile dev-opt` for a faster build).

use codex_rotor::Metrics;
use codex_rotor::RequestRecord;
use rotor_actors::quota::{Bucket, Quota};
use rotor_actors::{AccountView, Identity, PoolSummary, Status, Usage, UsageCounters};
use std::hint::black_box;
use std::time::Instant;

/// Requests per thread per round.
const ITERATIONS: u64 = 1_000_000;
/// Threads recording at once.
const THREADS: u64 = 2;
/// Rounds; the median is reported.
const ROUNDS: usize = 5;
/// Accounts in the scraped pool.
const ACCOUNTS: usize = 1_000;

/// A mix of finished requests over the routes and statuses the proxy records.
fn records() -> Vec<RequestRecord> {
    let routes = ["responses", "chat", "messages"];
    let statuses = [200, 200, 200, 429, 502];
    let mut out = Vec::new();
    for (i, route) in routes.iter().enumerate() {
        for (j, status) in statuses.iter().enumerate() {
            let n = (i * statuses.len() + j) as u64;
            out.push(RequestRecord {
                at: 1_700_000_000_000,
                request_id: format!("req_{n}"),
                client_key: Some("bench".into()),
                route,
                model: Some("gpt-5.4".into()),
                account_id: Some("00000000000000a1".into()),
                status: *status,
                ttfb_ms: (*status == 200).then_some(40 + n * 37),
                duration_ms: 100 + n * 613,
                usage: (*status == 200).then_some(Usage {
                    input_tokens: 1_000 + n,
                    cached_tokens: 200,
                    output_tokens: 300,
                    reasoning_tokens: 50,
                }),
                failovers: u32::from(*status == 429),
                retries: u32::from(*status == 502),
                upstream_429s: u32::from(*status == 429),
                error: None,
                forwarded_to: None,
                forwarded_from: None,
            });
        }
    }
    out
}

/// One round: `THREADS` threads each record `ITERATIONS` requests; wall ns per request.
fn round(m: &Metrics, recs: &[RequestRecord]) -> f64 {
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            s.spawn(move || {
                for i in 0..ITERATIONS {
                    let r = &recs[((i + t * 7) % recs.len() as u64) as usize];
                    m.upstream_latency(black_box(r.duration_ms as f64 / 2_000.0));
                    m.observe(black_box(r));
                }
            });
        }
    });
    start.elapsed().as_nanos() as f64 / (ITERATIONS * THREADS) as f64
}

/// A pool of `ACCOUNTS` accounts with two quota buckets each, as a scrape reads it.
fn pool() -> (PoolSummary, Vec<AccountView>) {
    let bucket = |used: f64| Bucket {
        used_percent: used,
        window_secs: Some(18_000),
        reset_at: Some(1_700_000_600_000),
        ..Bucket::default()
    };
    let accounts = (0..ACCOUNTS)
        .map(|i| AccountView {
            id: format!("{i:016x}"),
            identity: Identity::default(),
            status: Status::Active,
            status_reason: None,
            derived_status: "active".into(),
            quota: Quota {
                primary: Some(bucket((i % 100) as f64)),
                secondary: Some(bucket(10.0)),
                ..Quota::default()
            },
            usage: UsageCounters::default(),
            leases: (i % 3) as u32,
            cooldown_until: None,
            holds: Vec::new(),
            verify: false,
            last_error: None,
            token_expires_at: None,
        })
        .collect();
    let summary = PoolSummary {
        total: ACCOUNTS,
        active: ACCOUNTS,
        serving: true,
        in_flight: 4,
        ..PoolSummary::default()
    };
    (summary, accounts)
}

/// The middle value.
fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() {
    let recs = records();
    let m = Metrics::new();
    round(&m, &recs); // warm-up: every series exists from here on
    let per_request: Vec<f64> = (0..ROUNDS).map(|_| round(&m, &recs)).collect();
    for (i, ns) in per_request.iter().enumerate() {
        println!("round {}: {ns:.1} ns/op", i + 1);
    }
    println!(
        "record a request ({THREADS} threads, {ITERATIONS} each): median {:.1} ns/op",
        median(per_request)
    );

    let (summary, accounts) = pool();
    let scrapes: Vec<f64> = (0..ROUNDS * 4)
        .map(|_| {
            let start = Instant::now();
            let text = m.render(&summary, &accounts);
            black_box(text.len());
            start.elapsed().as_nanos() as f64 / 1_000.0
        })
        .collect();
    println!(
        "scrape ({ACCOUNTS} accounts, {} bytes): median {:.1} µs",
        m.render(&summary, &accounts).len(),
        median(scrapes)
    );
}
