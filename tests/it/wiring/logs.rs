//! The daemon's log lines about a request, captured from the real daemon (JSON format, through
//! `logging::subscriber`): each sits in a `request` span carrying the daemon's request id, and
//! the client address and scheme come from `X-Forwarded-For` / `X-Forwarded-Proto` only when
//! `server.trust_forwarded_headers` is set.

use crate::support::{responses_body, start_env_with};
use codex_rotor::sim::SimOptions;
use codex_rotor::{LogFormat, subscriber};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use tracing_subscriber::fmt::MakeWriter;

/// Captured log output.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

impl Captured {
    /// Every JSON line written so far.
    pub fn lines(&self) -> Vec<Value> {
        let text = String::from_utf8(self.0.lock().expect("lock").clone()).expect("utf-8");
        text.lines()
            .map(|l| serde_json::from_str(l).expect("a JSON log line"))
            .collect()
    }

    /// The lines written inside a `request` span (with that span's fields).
    pub fn request_lines(&self) -> Vec<(Value, Value)> {
        self.lines()
            .into_iter()
            .filter_map(|l| {
                let span = l["spans"]
                    .as_array()?
                    .iter()
                    .find(|s| s["name"] == "request")?
                    .clone();
                Some((l, span))
            })
            .collect()
    }
}

/// Installs a JSON subscriber for this (current-thread) test runtime and returns its output.
fn capture() -> (Captured, tracing::subscriber::DefaultGuard) {
    let out = Captured::default();
    let sub = subscriber(LogFormat::Json, "info,codex_rotor=debug", out.clone()).expect("filter");
    (out, tracing::subscriber::set_default(sub))
}

/// Sends one Responses request with forwarded headers; returns the request span's fields.
async fn forwarded_request(trust: bool) -> Value {
    let (logs, _guard) = capture();
    let env = start_env_with(SimOptions::default(), 1, |cfg, _| {
        cfg.server.trust_forwarded_headers = trust;
    })
    .await;
    let resp = env
        .responses_with(
            &responses_body(false),
            &[
                ("x-forwarded-for", "10.9.8.7, 203.0.113.7"),
                ("x-forwarded-proto", "https"),
            ],
        )
        .await;
    assert_eq!(resp.status(), 200);
    let _ = resp.text().await;
    env.shutdown().await;
    let lines = logs.request_lines();
    let (line, span) = lines
        .iter()
        .find(|(l, s)| {
            s["path"] == "/v1/responses" && l["fields"]["message"] == "finished processing request"
        })
        .unwrap_or_else(|| panic!("no request line: {:#?}", logs.lines()));
    assert_eq!(line["level"], "INFO", "{line}");
    span.clone()
}

#[tokio::test]
async fn trusted_forwarded_headers_name_the_client_in_the_logs() {
    let span = forwarded_request(true).await;
    assert_eq!(
        span["client"], "203.0.113.7",
        "the right-most entry: {span}"
    );
    assert_eq!(span["scheme"], "https", "{span}");
}

#[tokio::test]
async fn untrusted_forwarded_headers_are_ignored() {
    let span = forwarded_request(false).await;
    assert_eq!(span["client"], "127.0.0.1", "the TCP peer: {span}");
    assert_eq!(span["scheme"], "http", "{span}");
}

#[tokio::test]
async fn every_line_of_a_request_carries_its_request_id() {
    let (logs, _guard) = capture();
    let env = start_env_with(SimOptions::default(), 1, |_, _| {}).await;
    let mut recorded = Vec::new();
    for stream in [false, true] {
        let resp = env.responses(&responses_body(stream)).await;
        assert_eq!(resp.status(), 200);
        let _ = resp.text().await;
        let before = recorded.len();
        env.eventually("the request is recorded", || {
            let n = env.state.recent().list(8).len();
            async move { n > before }
        })
        .await;
        recorded.push(env.last_record().request_id);
    }
    env.shutdown().await;
    let outside: Vec<Value> = logs
        .lines()
        .into_iter()
        .filter(|l| {
            let target = l["target"].as_str().unwrap_or("");
            let in_request = l["spans"]
                .as_array()
                .is_some_and(|s| s.iter().any(|s| s["name"] == "request"));
            (target.starts_with("codex_rotor::proxy") || target.starts_with("tower_http"))
                && !in_request
        })
        .collect();
    assert!(
        outside.is_empty(),
        "request lines outside the span: {outside:#?}"
    );
    let lines = logs.request_lines();
    let mut ids: Vec<String> = Vec::new();
    for (line, span) in &lines {
        let id = span["request_id"].as_str().unwrap_or("");
        assert_eq!(id.len(), 32, "a request id on every line: {line}");
        if !ids.iter().any(|i| i == id) {
            ids.push(id.to_owned());
        }
    }
    assert_eq!(ids.len(), 2, "one id per request: {lines:#?}");
    assert_eq!(
        recorded, ids,
        "the request list records each request under the id its log lines carry"
    );
    let per_request: Vec<usize> = ids
        .iter()
        .map(|id| lines.iter().filter(|(_, s)| s["request_id"] == *id).count())
        .collect();
    assert!(per_request.iter().all(|n| *n >= 1), "{per_request:?}");
    // The serving account is named once it is leased: the request's last line (tower_http's
    // "finished processing request", after the body ended) carries it.
    for id in &ids {
        let (last, span) = lines
            .iter()
            .rev()
            .find(|(_, s)| s["request_id"] == *id)
            .expect("a line of the request");
        let account = span["account_id"].as_str().unwrap_or("");
        assert_eq!(account.len(), 16, "account id on the closing line: {last}");
    }
}
