//! Prometheus metrics of the daemon, served in the text exposition format 0.0.4 at `/metrics`
//! and encoded by `prometheus-client`. Request-level facts arrive as one [`RequestRecord`] per
//! finished request ([`Metrics::observe`]), so the counters, the histograms and the dashboard's
//! usage series are all derived from the same record; account-level gauges (accounts by derived
//! status, quota used % per bucket) are read from the pool at scrape time and never cached
//! here, because the account actors own those facts (docs/architecture.md "One truth per
//! fact").

pub mod accounts;
mod affinity;
mod cluster;
mod forwards;
mod refresh;
pub mod series;

use crate::recent::RequestRecord;
use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use rotor_actors::{AccountView, PoolSummary, UnixMs};
use series::{Series, SeriesPoint};
use std::sync::{Arc, Mutex};

/// The `Content-Type` of the exposition [`Metrics::render`] writes.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Width of one slot of the usage series (30 s) and how many are kept (2 h).
const SERIES_SLOT_MS: i64 = 30_000;
/// Number of slots in the usage series.
const SERIES_SLOTS: usize = 240;

/// Upper bounds (seconds) for latency-like histograms: from 5 ms (the proxy's own overhead) up
/// to 5 min (a long reasoning stream).
const LATENCY_BOUNDS: [f64; 15] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// Token kinds, in the order [`Metrics::observe`] adds them.
const TOKEN_KINDS: [&str; 4] = ["input", "cached", "output", "reasoning"];

/// Labels of `codex_rotor_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteStatus {
    /// The front-end route that served the request.
    route: &'static str,
    /// The HTTP status answered.
    status: u16,
}

/// Labels of the per-route histograms.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Route {
    /// The front-end route that served the request.
    route: &'static str,
}

/// Labels of `codex_rotor_tokens_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenKind {
    /// One of [`TOKEN_KINDS`].
    kind: &'static str,
}

/// A histogram family over [`LATENCY_BOUNDS`].
type Latencies = Family<Route, Histogram, fn() -> Histogram>;

/// A labelled family exposed with its `# HELP` and `# TYPE` lines even before its first
/// sample (the registry skips empty families otherwise), so scrapers, alerts and the strict
/// parser test see the same set of families on every scrape.
#[derive(Debug)]
struct Listed<M>(M);

impl<M: EncodeMetric> EncodeMetric for Listed<M> {
    fn encode(&self, encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        self.0.encode(encoder)
    }

    fn metric_type(&self) -> MetricType {
        self.0.metric_type()
    }
}

/// A histogram over [`LATENCY_BOUNDS`].
fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BOUNDS)
}

/// A duration as a histogram observes it: NaN and negative values (clock skew) count as 0.
fn seconds(value: f64) -> f64 {
    if value.is_finite() && value > 0.0 {
        value
    } else {
        0.0
    }
}

/// The daemon's metrics. Cheap to update from the request path: atomic counters, one read
/// lock per labelled family and the histograms' own short locks.
#[derive(Debug)]
pub struct Metrics {
    /// Every request-path family, in the order they are exposed.
    registry: Registry,
    /// Requests by (route, HTTP status).
    requests: Family<RouteStatus, Counter>,
    /// End-to-end duration per route.
    duration: Latencies,
    /// Time to the first byte sent to the client, per route.
    ttfb: Latencies,
    /// Latency of upstream answers (request sent → response headers).
    upstream_latency: Histogram,
    /// Tokens by kind, in the order of [`TOKEN_KINDS`].
    tokens: [Counter; 4],
    /// 429 answers from upstream.
    upstream_429s: Counter,
    /// Retries on the same account.
    retries: Counter,
    /// Moves to another account.
    failovers: Counter,
    /// Token refreshes by outcome; shared with the refresher wrapper of
    /// [`Metrics::count_refreshes`].
    refreshes: refresh::Outcomes,
    /// Account actors restarted by the supervisor, as reported to [`Metrics::actor_restart`];
    /// exposed added to the pool's own count at scrape time.
    actor_restarts: Counter,
    /// Traffic over time for the dashboard chart.
    series: Mutex<Series>,
}

impl Metrics {
    /// An empty registry.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RouteStatus, Counter>::default();
        registry.register(
            "codex_rotor_requests",
            "Requests answered, by front-end route and HTTP status",
            Listed(requests.clone()),
        );
        let duration = Latencies::new_with_constructor(latency_histogram);
        registry.register(
            "codex_rotor_request_duration_seconds",
            "Time from request arrival to the end of the response, by route",
            Listed(duration.clone()),
        );
        let ttfb = Latencies::new_with_constructor(latency_histogram);
        registry.register(
            "codex_rotor_time_to_first_byte_seconds",
            "Time from request arrival to the first byte sent to the client, by route",
            Listed(ttfb.clone()),
        );
        let upstream_latency = latency_histogram();
        registry.register(
            "codex_rotor_upstream_latency_seconds",
            "Time from sending a request upstream to its response headers",
            upstream_latency.clone(),
        );
        let by_kind = Family::<TokenKind, Counter>::default();
        registry.register(
            "codex_rotor_tokens",
            "Tokens upstream reported, by kind",
            Listed(by_kind.clone()),
        );
        let tokens = TOKEN_KINDS.map(|kind| by_kind.get_or_create_owned(&TokenKind { kind }));
        let mut counter = |name: &str, help: &str| {
            let c = Counter::default();
            registry.register(name, help, c.clone());
            c
        };
        let upstream_429s = counter(
            "codex_rotor_upstream_429",
            "429 answers received from upstream",
        );
        let retries = counter(
            "codex_rotor_retries",
            "Retries of a request on the same account",
        );
        let failovers = counter(
            "codex_rotor_failovers",
            "Moves of a request to another account",
        );
        let refreshes = refresh::Outcomes::default();
        registry.register(
            "codex_rotor_token_refreshes",
            "OAuth token refreshes, by outcome",
            Listed(refreshes.family()),
        );
        Metrics {
            registry,
            requests,
            duration,
            ttfb,
            upstream_latency,
            tokens,
            upstream_429s,
            retries,
            failovers,
            refreshes,
            actor_restarts: Counter::default(),
            series: Mutex::new(Series::new(SERIES_SLOT_MS, SERIES_SLOTS)),
        }
    }

    /// Counts one finished request: by route and status, its duration and time to first byte,
    /// its tokens, the upstream 429s, retries and failovers it went through.
    pub fn observe(&self, r: &RequestRecord) {
        self.requests
            .get_or_create(&RouteStatus {
                route: r.route,
                status: r.status,
            })
            .inc();
        let route = Route { route: r.route };
        self.duration
            .get_or_create(&route)
            .observe(seconds(r.duration_ms as f64 / 1000.0));
        if let Some(ttfb) = r.ttfb_ms {
            self.ttfb
                .get_or_create(&route)
                .observe(seconds(ttfb as f64 / 1000.0));
        }
        if let Some(u) = &r.usage {
            let add = [
                u.input_tokens,
                u.cached_tokens,
                u.output_tokens,
                u.reasoning_tokens,
            ];
            for (c, n) in self.tokens.iter().zip(add) {
                c.inc_by(n);
            }
        }
        self.upstream_429s.inc_by(u64::from(r.upstream_429s));
        self.retries.inc_by(u64::from(r.retries));
        self.failovers.inc_by(u64::from(r.failovers));
        self.lock_series().add(r);
    }

    /// Records the latency of one upstream answer (request sent → response headers), in seconds.
    pub fn upstream_latency(&self, secs: f64) {
        self.upstream_latency.observe(seconds(secs));
    }

    /// Counts one token refresh by outcome (e.g. "ok", "transient", "permanent", "deactivated").
    pub fn refresh_outcome(&self, outcome: &str) {
        self.refreshes.count(outcome);
    }

    /// Wraps the daemon's token refresher so every refresh outcome is counted here
    /// (`codex_rotor_token_refreshes_total{outcome}`); hand the result to the pool's effects.
    pub fn count_refreshes(
        &self,
        inner: Arc<dyn rotor_actors::TokenRefresher>,
    ) -> Arc<dyn rotor_actors::TokenRefresher> {
        Arc::new(refresh::CountingRefresher::new(
            inner,
            self.refreshes.clone(),
        ))
    }

    /// Counts one account actor restarted by the pool supervisor.
    pub fn actor_restart(&self) {
        self.actor_restarts.inc();
    }

    /// The usage series for the dashboard chart: every slot of the last two hours up to `now`.
    pub fn series(&self, now: UnixMs) -> Vec<SeriesPoint> {
        self.lock_series().points(now)
    }

    /// Width of one slot of [`Metrics::series`] in ms.
    pub fn series_slot_ms(&self) -> i64 {
        self.lock_series().slot_ms()
    }

    /// Renders every family in the Prometheus text format 0.0.4 (serve it as
    /// [`CONTENT_TYPE`]). Pool and account gauges come from `summary` and `accounts`, read
    /// from the pool by the caller just before.
    pub fn render(&self, summary: &PoolSummary, accounts: &[AccountView]) -> String {
        let mut scrape = Registry::default();
        let restarts = Counter::<u64>::default();
        restarts.inc_by(self.actor_restarts.get() + summary.restarts);
        scrape.register(
            "codex_rotor_actor_restarts",
            "Account actors restarted by the pool supervisor",
            restarts,
        );
        let dropped = Counter::<u64>::default();
        dropped.inc_by(crate::logging::queue::dropped());
        scrape.register(
            "codex_rotor_log_lines_dropped",
            "Log lines dropped because the log output (stderr) was closed, full or too slow",
            dropped,
        );
        let fenced = Counter::<u64>::default();
        fenced.inc_by(crate::store::postgres::records::fenced_out_total());
        scrape.register(
            "codex_rotor_store_fenced_writes",
            "Account writes the database refused because another process owned the account by then",
            fenced,
        );
        cluster::register(&mut scrape);
        accounts::register(&mut scrape, summary, accounts);
        forwards::register(&mut scrape);
        affinity::register(&mut scrape);
        let mut out = String::new();
        for registry in [&self.registry, &scrape] {
            encode(&mut out, registry);
        }
        out
    }

    /// Locks the usage series; a poisoned lock still holds valid slots.
    fn lock_series(&self) -> std::sync::MutexGuard<'_, Series> {
        self.series.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Appends `registry` to `out` in the text format 0.0.4. Writing to a `String` cannot fail and
/// the registry holds no native-only histogram, so an error is a bug worth a log line, not a
/// failed scrape.
fn encode(out: &mut String, registry: &Registry) {
    if let Err(e) = prometheus_client::encoding::prometheus_text::encode(out, registry) {
        tracing::error!(error = %e, "encoding the metrics failed");
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sample lines of `text` that start with `prefix`.
    fn lines<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
        text.lines().filter(|l| l.starts_with(prefix)).collect()
    }

    #[test]
    fn cumulative_counts_include_lower_buckets() {
        let m = Metrics::new();
        for v in [0.05, 0.5, 7.0, f64::NAN] {
            m.upstream_latency(v);
        }
        let text = m.render(&PoolSummary::default(), &[]);
        let u = "codex_rotor_upstream_latency_seconds";
        let value = |sample: &str| -> f64 {
            let found = lines(&text, &format!("{u}{sample} "));
            assert_eq!(found.len(), 1, "{sample}: {text}");
            found[0]
                .rsplit(' ')
                .next()
                .unwrap_or("")
                .parse()
                .unwrap_or(f64::NAN)
        };
        assert_eq!(value("_bucket{le=\"0.1\"}"), 2.0);
        assert_eq!(value("_bucket{le=\"1\"}"), 3.0);
        assert_eq!(value("_count"), 4.0);
        assert!((value("_sum") - 7.55).abs() < 1e-9);
    }

    #[test]
    fn escapes_label_values_and_help() {
        let m = Metrics::new();
        m.refresh_outcome("q\"\\\n");
        let text = m.render(&PoolSummary::default(), &[]);
        assert_eq!(
            lines(&text, "codex_rotor_token_refreshes_total{"),
            ["codex_rotor_token_refreshes_total{outcome=\"q\\\"\\\\\\n\"} 1"]
        );
        let mut r = Registry::default();
        r.register("x", "a \\ b\nc", Counter::<u64>::default());
        let mut out = String::new();
        encode(&mut out, &r);
        assert_eq!(
            out,
            "# HELP x_total a \\\\ b\\nc.\n# TYPE x_total counter\nx_total 0\n"
        );
    }
}
