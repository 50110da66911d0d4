//! The translated routes over real sockets (daemon in front of the simulator, both on
//! 127.0.0.1:0), without SDKs: Claude Code's HEAD probes, error shapes per protocol, mid-stream
//! failures ending in the protocol's error event, and count_tokens.

use codex_rotor::config::Config;
use codex_rotor::demo::{self, Demo};
use codex_rotor::server;
use codex_rotor::sim::{AccountSpec, FaultKind, FaultSpec, SimOptions, Simulator};
use codex_rotor::store::FileStore;
use rotor_actors::Store;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// A running simulator + daemon with `accounts` simulated accounts and one pool key.
pub struct Running {
    demo: Demo,
    /// The pool key clients present.
    pub key: String,
    /// The simulator's ids of the accounts in the pool.
    pub sim_ids: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Running {
    /// Simulator + daemon with `accounts` accounts and the demo's default configuration.
    pub async fn start(accounts: usize) -> Running {
        Running::start_with(accounts, |_| {}).await
    }

    /// Like `start`, with the daemon's configuration adjusted by `tweak` first.
    pub async fn start_with(accounts: usize, tweak: impl FnOnce(&mut Config)) -> Running {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = "sk-rotor-test".to_owned();
        let local = SocketAddr::from(([127, 0, 0, 1], 0));
        let sim = Simulator::start(SimOptions::default(), local)
            .await
            .expect("sim starts");
        let (store, mut records, _) = FileStore::open(dir.path()).expect("store opens");
        let mut sim_ids = Vec::new();
        for _ in 0..accounts {
            let created = sim.create_account(AccountSpec::default());
            sim_ids.push(created.id.clone());
            for rec in demo::import_auth_json(&created.auth_json).expect("imports") {
                store.save(&rec).expect("saves");
                records.push(rec);
            }
        }
        let mut cfg = demo::config(&sim, local, &key, "admin-test", dir.path());
        tweak(&mut cfg);
        let daemon = server::start(cfg, Arc::new(store), records)
            .await
            .expect("daemon starts");
        let demo = Demo {
            sim,
            daemon,
            pool_key: key.clone(),
            admin_key: "admin-test".into(),
            data_dir: dir.path().to_path_buf(),
        };
        Running {
            demo,
            key,
            sim_ids,
            _dir: dir,
        }
    }

    /// `http://127.0.0.1:PORT` of the daemon.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.demo.daemon.addr)
    }

    /// Ordered shutdown of daemon then simulator.
    pub async fn stop(self) {
        self.demo.daemon.shutdown().await;
        self.demo.sim.shutdown().await;
    }

    /// POSTs JSON with the pool key; returns status, headers and body text.
    async fn post(&self, path: &str, body: &Value) -> (u16, reqwest::header::HeaderMap, String) {
        let resp = reqwest::Client::new()
            .post(format!("{}{path}", self.base_url()))
            .header("x-api-key", &self.key)
            .json(body)
            .send()
            .await
            .expect("daemon answers");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        (status, headers, resp.text().await.expect("body"))
    }
}

/// The `data:` payloads of an SSE body, with their `event:` names.
fn events(body: &str) -> Vec<(Option<String>, String)> {
    body.split("\n\n")
        .filter(|f| !f.trim().is_empty() && !f.starts_with(':'))
        .map(|f| {
            let event = f
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .map(str::to_owned);
            let data = f
                .lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .collect::<Vec<_>>()
                .join("\n");
            (event, data)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_probes_answer_200() {
    let d = Running::start(1).await;
    let client = reqwest::Client::new();
    for path in ["/", "/api/hello"] {
        let resp = client
            .head(format!("{}{path}", d.base_url()))
            .send()
            .await
            .expect("answers");
        assert_eq!(resp.status().as_u16(), 200, "HEAD {path}");
    }
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_are_400_in_each_protocol() {
    let d = Running::start(1).await;
    let (status, _, body) = d
        .post("/v1/chat/completions", &json!({"model": "gpt-5.5"}))
        .await;
    assert_eq!(status, 400);
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["error"]["param"], "messages");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    let (status, _, body) = d
        .post(
            "/v1/messages?beta=true",
            &json!({"model": "claude-x", "messages": []}),
        )
        .await;
    assert_eq!(status, 400);
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/messages", d.base_url()))
        .header("x-api-key", &d.key)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("answers");
    assert_eq!(resp.status().as_u16(), 400);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn premature_close_mid_stream_ends_with_the_protocols_error_event() {
    let d = Running::start(1).await;
    d.demo
        .sim
        .inject(FaultSpec::always(FaultKind::PrematureClose {
            after_events: 3,
            mid_chunk: false,
        }));
    let ask = json!({"role": "user", "content": "tell me a story"});
    let (status, _, body) = d
        .post(
            "/v1/chat/completions",
            &json!({"model": "gpt-5.5", "stream": true, "messages": [ask]}),
        )
        .await;
    assert_eq!(status, 200);
    let evs = events(&body);
    assert_eq!(evs.last().map(|e| e.1.as_str()), Some("[DONE]"), "{body}");
    let err: Value = serde_json::from_str(&evs[evs.len() - 2].1).expect("error json");
    assert!(
        err["error"]["message"].is_string(),
        "an error line precedes [DONE]: {body}"
    );

    let (status, _, body) = d
        .post(
            "/v1/messages",
            &json!({"model": "claude-x", "max_tokens": 64, "stream": true, "messages": [ask]}),
        )
        .await;
    assert_eq!(status, 200);
    let evs = events(&body);
    assert_eq!(
        evs.first().and_then(|e| e.0.as_deref()),
        Some("message_start"),
        "{body}"
    );
    assert_eq!(
        evs.last().and_then(|e| e.0.as_deref()),
        Some("error"),
        "{body}"
    );
    assert!(
        evs.iter().all(|e| e.0.as_deref() != Some("message_stop")),
        "no fake success: {body}"
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn count_tokens_needs_no_account_and_no_quota() {
    let d = Running::start(1).await;
    let (status, _, body) = d
        .post(
            "/v1/messages/count_tokens",
            &json!({"model": "claude-x", "messages": [{"role": "user", "content": "hello there"}]}),
        )
        .await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).expect("json");
    assert!(v["input_tokens"].as_u64().is_some_and(|n| n > 0), "{v}");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_over_the_limit_is_413_in_each_protocol() {
    let d = Running::start_with(1, |c| c.server.max_body_bytes = 1024).await;
    let big = json!({"model": "m", "messages": [{"role": "user", "content": "x".repeat(4096)}]});
    let (status, _, body) = d.post("/v1/chat/completions", &big).await;
    assert_eq!(status, 413);
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["error"]["code"], "payload_too_large", "{v}");
    let (status, _, body) = d.post("/v1/messages", &big).await;
    assert_eq!(status, 413);
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        v,
        json!({"type": "error", "error": {"type": "request_too_large", "message": "request body too large"}})
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_silence_becomes_pings_and_keepalives() {
    let d = Running::start_with(1, |c| c.server.sse_heartbeat = Duration::from_millis(100)).await;
    d.demo.sim.inject(FaultSpec::always(FaultKind::Stall {
        after_events: 2,
        millis: 700,
    }));
    let ask = json!({"role": "user", "content": "think long"});
    let (status, _, body) = d
        .post(
            "/v1/messages",
            &json!({"model": "claude-x", "max_tokens": 64, "stream": true, "messages": [ask]}),
        )
        .await;
    assert_eq!(status, 200);
    let evs = events(&body);
    let names: Vec<&str> = evs.iter().filter_map(|e| e.0.as_deref()).collect();
    assert_eq!(names.first(), Some(&"message_start"), "{body}");
    assert!(
        names.contains(&"ping"),
        "silence is filled with pings: {body}"
    );
    assert_eq!(names.last(), Some(&"message_stop"), "{body}");
    let (status, _, body) = d
        .post(
            "/v1/chat/completions",
            &json!({"model": "gpt-5.5", "stream": true, "messages": [ask]}),
        )
        .await;
    assert_eq!(status, 200);
    assert!(
        body.contains("\n: keep-alive\n\n") || body.starts_with(": keep-alive"),
        "{body}"
    );
    assert!(body.ends_with("data: [DONE]\n\n"), "{body}");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_pool_is_429_with_retry_after_and_unservable_is_529() {
    let d = Running::start(1).await;
    d.demo.sim.inject(FaultSpec::always(FaultKind::RateLimit {
        retry_after_secs: Some(120),
    }));
    let ask = json!({"role": "user", "content": "hi"});
    let (status, headers, body) = d
        .post(
            "/v1/messages",
            &json!({"model": "claude-x", "max_tokens": 8, "messages": [ask]}),
        )
        .await;
    assert_eq!(status, 429, "{body}");
    assert!(headers.get("retry-after").is_some(), "Retry-After is sent");
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["error"]["type"], "rate_limit_error");
    let (status, headers, _) = d
        .post(
            "/v1/chat/completions",
            &json!({"model": "gpt-5.5", "messages": [ask]}),
        )
        .await;
    assert_eq!(status, 429);
    assert!(headers.get("retry-after").is_some());
    d.stop().await;

    let d = Running::start(1).await;
    d.demo.sim.ban(&d.sim_ids[0]);
    let (status, _, body) = d
        .post(
            "/v1/messages",
            &json!({"model": "claude-x", "max_tokens": 8, "messages": [ask]}),
        )
        .await;
    assert_eq!(status, 529, "{body}");
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["error"]["type"], "overloaded_error");
    let (status, _, body) = d
        .post(
            "/v1/chat/completions",
            &json!({"model": "gpt-5.5", "messages": [ask]}),
        )
        .await;
    assert_eq!(status, 503, "{body}");
    d.stop().await;
}
