//! The translated routes over real sockets (daemon in front of the simulator, both on
//! 127.0.0.1:0), without SDKs: Claude Code's HEAD probes, error shapes per protocol, mid-stream
//! failures ending in the protocol's error event, and count_tokens.

use codex_rotor::demo::{self, Demo, DemoArgs};
use codex_rotor::sim::{FaultKind, FaultSpec};
use serde_json::{Value, json};

/// A running simulator + daemon with `accounts` simulated accounts and one pool key.
pub struct Running {
    demo: Demo,
    /// The pool key clients present.
    pub key: String,
    _dir: tempfile::TempDir,
}

impl Running {
    pub async fn start(accounts: usize) -> Running {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = "sk-rotor-test".to_owned();
        let demo = demo::launch(DemoArgs {
            listen: "127.0.0.1:0".parse().expect("addr"),
            accounts,
            pool_key: Some(key.clone()),
            admin_key: Some("admin-test".into()),
            data_dir: Some(dir.path().to_path_buf()),
            sim_quota_tokens: None,
        })
        .await
        .expect("demo starts");
        Running {
            demo,
            key,
            _dir: dir,
        }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.demo.daemon.addr)
    }

    pub async fn stop(self) {
        self.demo.daemon.shutdown().await;
        self.demo.sim.shutdown().await;
    }

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
