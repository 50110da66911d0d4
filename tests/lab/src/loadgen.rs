//! A small in-process HTTP/1.1 load generator used by every benchmark (`rotor-lab bench …`):
//! N workers, each on its own keep-alive connection, send one request after another until a
//! request count or a duration is reached, and record per-request latency (until the body's
//! last byte) and time to first byte (the first body frame, or the head when the body is
//! empty). It speaks plain `http://` only — benchmarks run on loopback — and reuses nothing
//! from the code under test, so it measures the server, not itself.

use bytes::Bytes;
use http::{Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// When a run stops.
#[derive(Debug, Clone, Copy)]
pub enum Stop {
    /// After this many requests in total.
    Requests(u64),
    /// After this much time (requests in flight finish).
    Duration(Duration),
}

/// What to send and how hard.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// Full `http://host:port/path?query` URL.
    pub url: String,
    /// HTTP method.
    pub method: Method,
    /// Extra headers (e.g. `authorization`, `content-type`).
    pub headers: Vec<(String, String)>,
    /// Request body, sent with every request.
    pub body: Bytes,
    /// Concurrent workers (= connections).
    pub concurrency: usize,
    /// When to stop.
    pub stop: Stop,
    /// A request whose body lacks this text counts as `incomplete` (e.g. `response.completed`).
    pub expect_body_contains: Option<String>,
}

impl Default for LoadSpec {
    fn default() -> Self {
        LoadSpec {
            url: "http://127.0.0.1:8080/".into(),
            method: Method::POST,
            headers: Vec::new(),
            body: Bytes::new(),
            concurrency: 32,
            stop: Stop::Requests(10_000),
            expect_body_contains: None,
        }
    }
}

/// Latency percentiles of one measurement.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Percentiles {
    /// 50th-percentile latency.
    #[serde(with = "humantime_serde")]
    pub p50: Duration,
    /// 90th percentile.
    #[serde(with = "humantime_serde")]
    pub p90: Duration,
    /// 99th percentile.
    #[serde(with = "humantime_serde")]
    pub p99: Duration,
    /// The slowest request's latency.
    #[serde(with = "humantime_serde")]
    pub max: Duration,
}

/// What a run measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LoadReport {
    /// Requests that got a complete answer (any status).
    pub requests: u64,
    /// Answers with a 2xx status.
    pub ok: u64,
    /// Transport failures (connect, reset, truncated body).
    pub errors: u64,
    /// 2xx answers whose body lacked `expect_body_contains`.
    pub incomplete: u64,
    /// Answers per status code.
    pub statuses: BTreeMap<u16, u64>,
    /// Body bytes received.
    pub bytes: u64,
    /// Wall time of the run.
    #[serde(with = "humantime_serde")]
    pub elapsed: Duration,
    /// Completed requests per second.
    pub rps: f64,
    /// Request start → last body byte.
    pub latency: Percentiles,
    /// Request start → first body byte.
    pub ttfb: Percentiles,
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The URL is not a usable `http://` URL.
    #[error("bad URL {url:?}: {reason}")]
    BadUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A header name or value is invalid.
    #[error("bad header {0:?}")]
    BadHeader(String),
}

/// What one worker measured.
#[derive(Default)]
struct Sample {
    /// Per-request latency in microseconds.
    latency_us: Vec<u32>,
    /// Per-request time to first byte in microseconds.
    ttfb_us: Vec<u32>,
    /// Counts (percentiles are filled in after merging).
    report: LoadReport,
}

/// Target of a run, parsed once.
struct Target {
    /// `host:port` to connect to.
    addr: String,
    /// Path and query sent in the request line.
    uri: Uri,
    /// `Host` header value.
    host: String,
    /// The spec's extra headers, parsed once.
    headers: http::HeaderMap,
}

fn parse_target(spec: &LoadSpec) -> Result<Target, LoadError> {
    let bad = |reason: &str| LoadError::BadUrl {
        url: spec.url.clone(),
        reason: reason.into(),
    };
    let uri: Uri = spec
        .url
        .parse()
        .map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
    if uri.scheme_str() != Some("http") {
        return Err(bad("only http:// is supported"));
    }
    let auth = uri.authority().ok_or_else(|| bad("no host"))?;
    let addr = format!("{}:{}", auth.host(), auth.port_u16().unwrap_or(80));
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    let mut headers = http::HeaderMap::new();
    for (k, v) in &spec.headers {
        let name =
            http::HeaderName::try_from(k.as_str()).map_err(|_| LoadError::BadHeader(k.clone()))?;
        let value =
            http::HeaderValue::try_from(v.as_str()).map_err(|_| LoadError::BadHeader(k.clone()))?;
        headers.append(name, value);
    }
    let host = auth.as_str().to_string();
    let uri = path.parse().map_err(|_| bad("bad path"))?;
    Ok(Target {
        addr,
        uri,
        host,
        headers,
    })
}

/// Runs the load and reports what it measured.
pub async fn run(spec: LoadSpec) -> Result<LoadReport, LoadError> {
    let target = Arc::new(parse_target(&spec)?);
    let spec = Arc::new(spec);
    let issued = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = match spec.stop {
        Stop::Duration(d) => Some(started + d),
        Stop::Requests(_) => None,
    };
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..spec.concurrency.max(1) {
        let (spec, target, issued) = (spec.clone(), target.clone(), issued.clone());
        workers.spawn(worker(spec, target, issued, deadline));
    }
    let mut all = Sample::default();
    while let Some(done) = workers.join_next().await {
        if let Ok(s) = done {
            merge(&mut all, s);
        }
    }
    let mut report = all.report;
    report.elapsed = started.elapsed();
    report.rps = report.requests as f64 / report.elapsed.as_secs_f64().max(1e-9);
    report.latency = percentiles(&mut all.latency_us);
    report.ttfb = percentiles(&mut all.ttfb_us);
    Ok(report)
}

fn merge(all: &mut Sample, s: Sample) {
    all.latency_us.extend(s.latency_us);
    all.ttfb_us.extend(s.ttfb_us);
    let (a, r) = (&mut all.report, s.report);
    a.requests += r.requests;
    a.ok += r.ok;
    a.errors += r.errors;
    a.incomplete += r.incomplete;
    a.bytes += r.bytes;
    for (k, v) in r.statuses {
        *a.statuses.entry(k).or_default() += v;
    }
}

fn percentiles(us: &mut [u32]) -> Percentiles {
    if us.is_empty() {
        return Percentiles::default();
    }
    us.sort_unstable();
    let at = |q: f64| {
        let i = ((us.len() as f64 * q).ceil() as usize).clamp(1, us.len()) - 1;
        Duration::from_micros(u64::from(us[i]))
    };
    Percentiles {
        p50: at(0.50),
        p90: at(0.90),
        p99: at(0.99),
        max: at(1.0),
    }
}

/// Whether this worker may start one more request.
fn may_issue(spec: &LoadSpec, issued: &AtomicU64, deadline: Option<Instant>) -> bool {
    match spec.stop {
        Stop::Requests(n) => issued.fetch_add(1, Ordering::Relaxed) < n,
        Stop::Duration(_) => deadline.is_some_and(|d| Instant::now() < d),
    }
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(addr: &str) -> Option<Sender> {
    let stream = TcpStream::connect(addr).await.ok()?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .ok()?;
    tokio::spawn(conn);
    Some(sender)
}

async fn worker(
    spec: Arc<LoadSpec>,
    target: Arc<Target>,
    issued: Arc<AtomicU64>,
    deadline: Option<Instant>,
) -> Sample {
    let mut sample = Sample::default();
    let mut sender: Option<Sender> = None;
    while may_issue(&spec, &issued, deadline) {
        if sender.as_ref().is_none_or(|s| s.is_closed()) {
            sender = connect(&target.addr).await;
        }
        let Some(s) = sender.as_mut() else {
            sample.report.errors += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        if s.ready().await.is_err() {
            sender = None;
            sample.report.errors += 1;
            continue;
        }
        if !one_request(&spec, &target, s, &mut sample).await {
            sender = None;
        }
    }
    sample
}

/// Sends one request and reads its whole body; false when the connection must be replaced.
async fn one_request(
    spec: &LoadSpec,
    target: &Target,
    sender: &mut Sender,
    sample: &mut Sample,
) -> bool {
    let mut req = Request::new(Full::new(spec.body.clone()));
    *req.method_mut() = spec.method.clone();
    *req.uri_mut() = target.uri.clone();
    *req.headers_mut() = target.headers.clone();
    if let Ok(h) = http::HeaderValue::try_from(target.host.as_str()) {
        req.headers_mut().insert(http::header::HOST, h);
    }
    let t0 = Instant::now();
    let Ok(resp) = sender.send_request(req).await else {
        sample.report.errors += 1;
        return false;
    };
    let status = resp.status();
    let mut body = resp.into_body();
    let mut first: Option<Duration> = None;
    let mut bytes = Vec::new();
    loop {
        match body.frame().await {
            None => break,
            Some(Ok(frame)) => {
                if let Some(d) = frame.data_ref() {
                    first.get_or_insert_with(|| t0.elapsed());
                    bytes.extend_from_slice(d);
                }
            }
            Some(Err(_)) => {
                sample.report.errors += 1;
                return false;
            }
        }
    }
    let total = t0.elapsed();
    let r = &mut sample.report;
    r.requests += 1;
    r.bytes += bytes.len() as u64;
    *r.statuses.entry(status.as_u16()).or_default() += 1;
    if status.is_success() {
        r.ok += 1;
        if let Some(needle) = &spec.expect_body_contains
            && memchr::memmem::find(&bytes, needle.as_bytes()).is_none()
        {
            r.incomplete += 1;
        }
    }
    sample
        .latency_us
        .push(u32::try_from(total.as_micros()).unwrap_or(u32::MAX));
    let ttfb = first.unwrap_or(total);
    sample
        .ttfb_us
        .push(u32::try_from(ttfb.as_micros()).unwrap_or(u32::MAX));
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_nearest_rank() {
        let mut v: Vec<u32> = (1..=100).collect();
        let p = percentiles(&mut v);
        assert_eq!(p.p50, Duration::from_micros(50));
        assert_eq!(p.p90, Duration::from_micros(90));
        assert_eq!(p.p99, Duration::from_micros(99));
        assert_eq!(p.max, Duration::from_micros(100));
    }

    #[test]
    fn only_plain_http_urls_are_accepted() {
        let spec = LoadSpec {
            url: "https://x/".into(),
            ..LoadSpec::default()
        };
        assert!(matches!(parse_target(&spec), Err(LoadError::BadUrl { .. })));
        let spec = LoadSpec {
            url: "http://127.0.0.1:9/a?b=1".into(),
            ..LoadSpec::default()
        };
        let t = parse_target(&spec).expect("ok");
        assert_eq!(
            (t.addr.as_str(), t.uri.to_string().as_str()),
            ("127.0.0.1:9", "/a?b=1")
        );
    }
}
