//! The chaos client: concurrent workers that loop over the three client protocols (Responses,
//! Chat Completions, Messages), streamed and not, against the daemon, and classify how every
//! single request ended. "Ended well" means a success or an error the client can understand in
//! its own protocol; anything else (a 401 for a valid key, a stream that just stops, an error
//! body that is not the protocol's error shape) is a violation the harness reports.

use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Which client protocol and mode one request used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `POST /v1/responses`, `stream: true`.
    ResponsesStream,
    /// `POST /v1/responses`, `stream: false`.
    Responses,
    /// `POST /v1/chat/completions`, streamed.
    ChatStream,
    /// `POST /v1/chat/completions`, not streamed.
    Chat,
    /// `POST /v1/messages`, streamed.
    MessagesStream,
    /// `POST /v1/messages`, not streamed.
    Messages,
}

/// Every kind, in the order workers cycle through them.
pub const KINDS: [Kind; 6] = [
    Kind::ResponsesStream,
    Kind::Responses,
    Kind::ChatStream,
    Kind::Chat,
    Kind::MessagesStream,
    Kind::Messages,
];

impl Kind {
    fn path(self) -> &'static str {
        match self {
            Kind::ResponsesStream | Kind::Responses => "/v1/responses",
            Kind::ChatStream | Kind::Chat => "/v1/chat/completions",
            Kind::MessagesStream | Kind::Messages => "/v1/messages",
        }
    }

    fn streamed(self) -> bool {
        matches!(
            self,
            Kind::ResponsesStream | Kind::ChatStream | Kind::MessagesStream
        )
    }

    fn body(self, n: u64) -> Value {
        let stream = self.streamed();
        let text = format!("chaos request {n}: say hello");
        match self {
            Kind::ResponsesStream | Kind::Responses => json!({"model": "gpt-5.5", "stream": stream,
                "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}]}),
            Kind::ChatStream | Kind::Chat => json!({"model": "gpt-5.5", "stream": stream,
                "messages": [{"role": "user", "content": text}]}),
            Kind::MessagesStream | Kind::Messages => {
                json!({"model": "claude-sonnet-4-5", "stream": stream,
                "max_tokens": 256, "messages": [{"role": "user", "content": text}]})
            }
        }
    }
}

/// How one request ended.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// 200 with a complete answer.
    Success,
    /// A correct protocol error: an HTTP error status with the protocol's error body, or a
    /// stream that ended with the protocol's terminal error event. Holds a short label.
    ProtocolError(String),
    /// The connection failed while the daemon was being killed (expected only then).
    CutByKill,
    /// Anything else: the harness fails. Holds what was wrong.
    Violation(String),
}

/// One finished request.
#[derive(Debug, Clone)]
pub struct Record {
    /// Protocol and mode.
    pub kind: Kind,
    /// How it ended.
    pub outcome: Outcome,
    /// When it started and ended, relative to the start of the run.
    pub span: (Duration, Duration),
}

/// Shared state of the load: where to send, whether to keep going, what happened.
pub struct Load {
    /// The daemon's base URL (`http://127.0.0.1:PORT`).
    pub base: String,
    /// The pool key.
    pub key: String,
    /// Cleared to stop the workers after their current request.
    pub running: AtomicBool,
    /// Every finished request.
    pub records: Mutex<Vec<Record>>,
    /// The run's time origin.
    pub t0: Instant,
    http: reqwest::Client,
}

impl Load {
    /// A load against `base` with `key`.
    pub fn new(base: String, key: String, t0: Instant) -> anyhow::Result<Arc<Load>> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(256)
            .build()?;
        Ok(Arc::new(Load {
            base,
            key,
            running: AtomicBool::new(true),
            records: Mutex::new(Vec::new()),
            t0,
            http,
        }))
    }

    /// Spawns `n` workers; they stop when `running` is cleared.
    pub fn spawn(self: &Arc<Self>, n: usize) -> Vec<tokio::task::JoinHandle<()>> {
        (0..n)
            .map(|w| {
                let me = self.clone();
                tokio::spawn(async move {
                    let mut i = w as u64;
                    while me.running.load(Ordering::Relaxed) {
                        let kind = KINDS[(i % KINDS.len() as u64) as usize];
                        if me.one(kind, i).await != Outcome::Success {
                            // A real client backs off after an error instead of spinning on it.
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        i += 7;
                    }
                })
            })
            .collect()
    }

    /// Sends one request and records how it ended (before classification against kill windows).
    pub async fn one(&self, kind: Kind, n: u64) -> Outcome {
        let start = self.t0.elapsed();
        let outcome = self.send(kind, n).await;
        let end = self.t0.elapsed();
        if let Ok(mut r) = self.records.lock() {
            r.push(Record {
                kind,
                outcome: outcome.clone(),
                span: (start, end),
            });
        }
        outcome
    }

    async fn send(&self, kind: Kind, n: u64) -> Outcome {
        let resp = self
            .http
            .post(format!("{}{}", self.base, kind.path()))
            .bearer_auth(&self.key)
            .header("x-api-key", &self.key)
            .header("anthropic-version", "2023-06-01")
            .json(&kind.body(n))
            .send()
            .await;
        let resp = match resp {
            Ok(r) => r,
            Err(e) => return Outcome::Violation(format!("transport: {}", error_chain(&e))),
        };
        let status = resp.status().as_u16();
        let retry_after = resp.headers().contains_key("retry-after");
        let body = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => return Outcome::Violation(format!("body transport: {}", error_chain(&e))),
        };
        classify(kind, status, retry_after, &body)
    }
}

/// The whole cause chain of an error, so a premature close reads as what it was.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

/// Classifies a complete answer.
pub fn classify(kind: Kind, status: u16, retry_after: bool, body: &[u8]) -> Outcome {
    if status == 200 {
        return if kind.streamed() {
            classify_stream(kind, body)
        } else {
            classify_json(kind, body)
        };
    }
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return Outcome::Violation(format!("{status} with a non-JSON body"));
    };
    let shaped = match kind {
        Kind::MessagesStream | Kind::Messages => {
            v["type"] == "error"
                && v["error"]["type"].is_string()
                && v["error"]["message"].is_string()
        }
        _ => {
            v["error"]["message"].is_string()
                && (v["error"]["type"].is_string() || v["error"]["code"].is_string())
        }
    };
    if !shaped {
        return Outcome::Violation(format!("{status} without the protocol's error shape: {v}"));
    }
    match status {
        429 if !retry_after => Outcome::Violation("429 without Retry-After".into()),
        429 | 502 | 503 | 504 | 529 => {
            let t = v["error"]["type"]
                .as_str()
                .or(v["error"]["code"].as_str())
                .unwrap_or("?");
            let why: String = v["error"]["message"]
                .as_str()
                .unwrap_or("")
                .chars()
                .take(200)
                .collect();
            Outcome::ProtocolError(format!("{status} {t}: {why}"))
        }
        _ => Outcome::Violation(format!("unexpected status {status}: {v}")),
    }
}

fn classify_json(kind: Kind, body: &[u8]) -> Outcome {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return Outcome::Violation("200 with a non-JSON body".into());
    };
    let ok = match kind {
        Kind::Responses => v["object"] == "response" && v["status"] == "completed",
        Kind::Chat => v["choices"][0]["message"].is_object(),
        _ => v["type"] == "message" && v["content"].is_array(),
    };
    if ok {
        Outcome::Success
    } else {
        Outcome::Violation(format!("200 but not a complete answer: {v}"))
    }
}

fn classify_stream(kind: Kind, body: &[u8]) -> Outcome {
    let mut parser = codex_rotor::sse::SseParser::new();
    let mut events = parser.feed(body);
    events.extend(parser.finish());
    let last = events.last().map(|e| {
        (
            e.event.clone(),
            String::from_utf8_lossy(&e.data).into_owned(),
        )
    });
    let Some((event, data)) = last else {
        return Outcome::Violation("200 stream with no event at all".into());
    };
    let ty = serde_json::from_str::<Value>(&data)
        .ok()
        .and_then(|v| v["type"].as_str().map(str::to_owned));
    match kind {
        Kind::ResponsesStream => match ty.as_deref() {
            Some("response.completed") => Outcome::Success,
            Some(t @ ("response.failed" | "response.incomplete" | "error")) => {
                Outcome::ProtocolError(format!("stream {t}"))
            }
            other => Outcome::Violation(format!(
                "responses stream ended without a terminal event (last {other:?})"
            )),
        },
        Kind::ChatStream if data == "[DONE]" => {
            let errored = events.iter().any(|e| {
                serde_json::from_slice::<Value>(&e.data).is_ok_and(|v| v.get("error").is_some())
            });
            if errored {
                Outcome::ProtocolError("stream error + [DONE]".into())
            } else {
                Outcome::Success
            }
        }
        Kind::ChatStream => Outcome::Violation("chat stream ended without [DONE]".into()),
        _ => match event.as_deref() {
            Some("message_stop") => Outcome::Success,
            Some("error") => Outcome::ProtocolError("stream event: error".into()),
            other => Outcome::Violation(format!(
                "messages stream ended without message_stop/error (last {other:?})"
            )),
        },
    }
}
