//! Prometheus metrics of the daemon, rendered in the text exposition format 0.0.4 at
//! `/metrics`. Request-level facts arrive as one [`RequestRecord`] per finished request
//! ([`Metrics::observe`]), so the counters, the histograms and the dashboard's usage series are
//! all derived from the same record; account-level gauges (accounts by derived status, quota
//! used % per bucket) are read from the pool at scrape time and never cached here, because the
//! account actors own those facts (docs/architecture.md "One truth per fact").

pub mod accounts;
pub mod exposition;
pub mod histogram;
mod refresh;
pub mod series;

use crate::recent::RequestRecord;
use exposition::{Exposition, Kind};
use histogram::{Histogram, LATENCY_BOUNDS};
use rotor_actors::{AccountView, PoolSummary, UnixMs};
use series::{Series, SeriesPoint};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Width of one slot of the usage series (30 s) and how many are kept (2 h).
const SERIES_SLOT_MS: i64 = 30_000;
/// Number of slots in the usage series.
const SERIES_SLOTS: usize = 240;
/// Refresh outcomes beyond this many distinct labels are counted as "other", so a caller bug
/// cannot blow up the scrape's cardinality.
const MAX_REFRESH_OUTCOMES: usize = 16;

/// The daemon's metrics registry. Cheap to update from the request path: one uncontended lock
/// per finished request.
#[derive(Debug)]
pub struct Metrics {
    /// Everything that changes per request; shared with [`Metrics::count_refreshes`]'s
    /// wrapper, which outlives no daemon but is built before the state that owns this.
    inner: Arc<Mutex<Inner>>,
}

/// Counters and histograms behind the lock.
#[derive(Debug)]
struct Inner {
    /// Requests by (route, HTTP status).
    requests: BTreeMap<(&'static str, u16), u64>,
    /// End-to-end duration per route.
    duration: BTreeMap<&'static str, Histogram>,
    /// Time to the first byte sent to the client, per route.
    ttfb: BTreeMap<&'static str, Histogram>,
    /// Latency of upstream answers (request sent → response headers).
    upstream_latency: Histogram,
    /// Tokens by kind: input, cached, output, reasoning.
    tokens: [u64; 4],
    /// 429 answers from upstream.
    upstream_429s: u64,
    /// Retries on the same account.
    retries: u64,
    /// Moves to another account.
    failovers: u64,
    /// Token refreshes by outcome.
    refreshes: BTreeMap<String, u64>,
    /// Account actors restarted by the supervisor.
    actor_restarts: u64,
    /// Traffic over time for the dashboard chart.
    series: Series,
}

/// Token kinds in the order of `Inner::tokens`.
const TOKEN_KINDS: [&str; 4] = ["input", "cached", "output", "reasoning"];

impl Metrics {
    /// An empty registry.
    pub fn new() -> Self {
        Metrics {
            inner: Arc::new(Mutex::new(Inner {
                requests: BTreeMap::new(),
                duration: BTreeMap::new(),
                ttfb: BTreeMap::new(),
                upstream_latency: Histogram::new(LATENCY_BOUNDS),
                tokens: [0; 4],
                upstream_429s: 0,
                retries: 0,
                failovers: 0,
                refreshes: BTreeMap::new(),
                actor_restarts: 0,
                series: Series::new(SERIES_SLOT_MS, SERIES_SLOTS),
            })),
        }
    }

    /// Counts one finished request: by route and status, its duration and time to first byte,
    /// its tokens, the upstream 429s, retries and failovers it went through.
    pub fn observe(&self, r: &RequestRecord) {
        let mut m = self.lock();
        *m.requests.entry((r.route, r.status)).or_default() += 1;
        m.duration
            .entry(r.route)
            .or_insert_with(|| Histogram::new(LATENCY_BOUNDS))
            .observe(r.duration_ms as f64 / 1000.0);
        if let Some(ttfb) = r.ttfb_ms {
            m.ttfb
                .entry(r.route)
                .or_insert_with(|| Histogram::new(LATENCY_BOUNDS))
                .observe(ttfb as f64 / 1000.0);
        }
        if let Some(u) = &r.usage {
            let add = [
                u.input_tokens,
                u.cached_tokens,
                u.output_tokens,
                u.reasoning_tokens,
            ];
            for (t, a) in m.tokens.iter_mut().zip(add) {
                *t += a;
            }
        }
        m.upstream_429s += u64::from(r.upstream_429s);
        m.retries += u64::from(r.retries);
        m.failovers += u64::from(r.failovers);
        m.series.add(r);
    }

    /// Records the latency of one upstream answer (request sent → response headers), in seconds.
    pub fn upstream_latency(&self, secs: f64) {
        self.lock().upstream_latency.observe(secs);
    }

    /// Counts one token refresh by outcome (e.g. "ok", "transient", "permanent", "deactivated").
    pub fn refresh_outcome(&self, outcome: &str) {
        count_refresh(&self.inner, outcome);
    }

    /// Wraps the daemon's token refresher so every refresh outcome is counted here
    /// (`codex_rotor_token_refreshes_total{outcome}`); hand the result to the pool's effects.
    pub fn count_refreshes(
        &self,
        inner: Arc<dyn rotor_actors::TokenRefresher>,
    ) -> Arc<dyn rotor_actors::TokenRefresher> {
        Arc::new(refresh::CountingRefresher::new(
            inner,
            Arc::clone(&self.inner),
        ))
    }

    /// Counts one account actor restarted by the pool supervisor.
    pub fn actor_restart(&self) {
        self.lock().actor_restarts += 1;
    }

    /// The usage series for the dashboard chart: every slot of the last two hours up to `now`.
    pub fn series(&self, now: UnixMs) -> Vec<SeriesPoint> {
        self.lock().series.points(now)
    }

    /// Width of one slot of [`Metrics::series`] in ms.
    pub fn series_slot_ms(&self) -> i64 {
        self.lock().series.slot_ms()
    }

    /// Renders every family in the Prometheus text format 0.0.4. Pool and account gauges come
    /// from `summary` and `accounts`, read from the pool by the caller just before.
    pub fn render(&self, summary: &PoolSummary, accounts: &[AccountView]) -> String {
        let mut e = Exposition::default();
        self.render_requests(&mut e, summary.restarts);
        accounts::render(&mut e, summary, accounts);
        e.finish()
    }

    /// The request-path families.
    fn render_requests(&self, e: &mut Exposition, pool_restarts: u64) {
        let m = self.lock();
        e.family(
            "codex_rotor_requests_total",
            "Requests answered, by front-end route and HTTP status.",
            Kind::Counter,
        );
        for ((route, status), n) in &m.requests {
            let status = status.to_string();
            e.sample(
                "codex_rotor_requests_total",
                &[("route", route), ("status", &status)],
                *n as f64,
            );
        }
        e.family(
            "codex_rotor_request_duration_seconds",
            "Time from request arrival to the end of the response, by route.",
            Kind::Histogram,
        );
        for (route, h) in &m.duration {
            e.histogram(
                "codex_rotor_request_duration_seconds",
                &[("route", route)],
                h,
            );
        }
        e.family(
            "codex_rotor_time_to_first_byte_seconds",
            "Time from request arrival to the first byte sent to the client, by route.",
            Kind::Histogram,
        );
        for (route, h) in &m.ttfb {
            e.histogram(
                "codex_rotor_time_to_first_byte_seconds",
                &[("route", route)],
                h,
            );
        }
        e.family(
            "codex_rotor_upstream_latency_seconds",
            "Time from sending a request upstream to its response headers.",
            Kind::Histogram,
        );
        e.histogram(
            "codex_rotor_upstream_latency_seconds",
            &[],
            &m.upstream_latency,
        );
        e.family(
            "codex_rotor_tokens_total",
            "Tokens upstream reported, by kind.",
            Kind::Counter,
        );
        for (kind, n) in TOKEN_KINDS.iter().zip(m.tokens) {
            e.sample("codex_rotor_tokens_total", &[("kind", kind)], n as f64);
        }
        let plain = [
            (
                "codex_rotor_upstream_429_total",
                "429 answers received from upstream.",
                m.upstream_429s,
            ),
            (
                "codex_rotor_retries_total",
                "Retries of a request on the same account.",
                m.retries,
            ),
            (
                "codex_rotor_failovers_total",
                "Moves of a request to another account.",
                m.failovers,
            ),
            (
                "codex_rotor_actor_restarts_total",
                "Account actors restarted by the pool supervisor.",
                m.actor_restarts + pool_restarts,
            ),
            (
                "codex_rotor_log_lines_dropped_total",
                "Log lines dropped because the log output (stderr) was closed, full or too slow.",
                crate::logging::queue::dropped(),
            ),
        ];
        for (name, help, n) in plain {
            e.family(name, help, Kind::Counter);
            e.sample(name, &[], n as f64);
        }
        e.family(
            "codex_rotor_token_refreshes_total",
            "OAuth token refreshes, by outcome.",
            Kind::Counter,
        );
        for (outcome, n) in &m.refreshes {
            e.sample(
                "codex_rotor_token_refreshes_total",
                &[("outcome", outcome)],
                *n as f64,
            );
        }
    }

    /// Locks the registry; a poisoned lock still holds valid counters.
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Counts one refresh outcome in `inner` (shared by [`Metrics`] and the refresher wrapper).
fn count_refresh(inner: &Mutex<Inner>, outcome: &str) {
    let mut m = inner.lock().unwrap_or_else(|e| e.into_inner());
    let label = if m.refreshes.contains_key(outcome) || m.refreshes.len() < MAX_REFRESH_OUTCOMES {
        outcome.to_owned()
    } else {
        "other".to_owned()
    };
    *m.refreshes.entry(label).or_default() += 1;
}

/// `GET /metrics`: reads the pool's summary and accounts, renders every family.
pub async fn handler(
    axum::extract::State(state): axum::extract::State<crate::state::AppState>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let summary = state.pool().summary().await;
    let accounts = state.pool().accounts().await;
    let body = state.metrics().render(&summary, &accounts);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
