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

    fn body(self, n: u64, conversation: Option<&str>) -> Value {
        let stream = self.streamed();
        let text = format!("chaos request {n}: say hello");
        match self {
            Kind::ResponsesStream | Kind::Responses => {
                let mut b = json!({"model": "gpt-5.5", "stream": stream,
                "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}]});
                if let Some(c) = conversation {
                    b["prompt_cache_key"] = json!(c);
                }
                b
            }
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
    /// The connection failed while the daemon was being killed (expected only then), or, with
    /// several nodes, while the node it was sent to was killed or stopped.
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
    /// Which node of a [`Front`] it was sent to (`None`: the single daemon).
    pub node: Option<usize>,
}

/// The front door of several nodes, as a reverse proxy with health checks would be: requests
/// go round-robin to the nodes marked up, and a conversation (its `session-id`) always to the
/// same up node, by rendezvous hashing (nginx `hash $http_session_id consistent` moves about
/// as few conversations when a node leaves or joins). The harness marks nodes up and down.
pub struct Front {
    bases: Mutex<Vec<(String, bool)>>,
    next: std::sync::atomic::AtomicUsize,
}

impl Front {
    /// A front door with no node yet.
    pub fn new() -> Arc<Front> {
        Arc::new(Front {
            bases: Mutex::new(Vec::new()),
            next: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// Adds a node (down until [`Front::set_up`]); returns its index.
    pub fn add(&self, base: String) -> usize {
        let mut b = self.bases.lock().unwrap_or_else(|e| e.into_inner());
        b.push((base, false));
        b.len() - 1
    }

    /// Marks node `i` up or down.
    pub fn set_up(&self, i: usize, up: bool) {
        let mut b = self.bases.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = b.get_mut(i) {
            slot.1 = up;
        }
    }

    /// Whether node `i` is up.
    pub fn is_up(&self, i: usize) -> bool {
        let b = self.bases.lock().unwrap_or_else(|e| e.into_inner());
        b.get(i).is_some_and(|s| s.1)
    }

    /// The node a request goes to: by `conversation` if it has one, else the next up node.
    pub fn pick(&self, conversation: Option<&str>) -> Option<(usize, String)> {
        let b = self.bases.lock().unwrap_or_else(|e| e.into_inner());
        let up: Vec<usize> = (0..b.len()).filter(|&i| b[i].1).collect();
        let i = match conversation {
            Some(c) => *up.iter().max_by_key(|&&i| weight(c, &b[i].0))?,
            None => {
                let n = self.next.fetch_add(1, Ordering::Relaxed);
                *up.get(n % up.len().max(1))?
            }
        };
        Some((i, b[i].0.clone()))
    }
}

/// The rendezvous weight of a conversation on a node (FNV-1a of both).
fn weight(conversation: &str, node: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in conversation.bytes().chain([0]).chain(node.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
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
    /// Several nodes behind a front door instead of `base`.
    pub front: Option<Arc<Front>>,
    /// Every `conversations`-th worker is a conversation: it sends a `session-id` (and, on
    /// Responses, a `prompt_cache_key`) of its own with every request. 0: none.
    pub conversations: usize,
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
            front: None,
            conversations: 0,
            http,
        }))
    }

    /// A load on the nodes behind `front`; every `conversations`-th worker keeps a conversation.
    pub fn on_front(
        front: Arc<Front>,
        conversations: usize,
        key: String,
        t0: Instant,
    ) -> anyhow::Result<Arc<Load>> {
        let mut load = Load::new(String::new(), key, t0)?;
        let me =
            Arc::get_mut(&mut load).ok_or_else(|| anyhow::anyhow!("a fresh load is shared"))?;
        me.front = Some(front);
        me.conversations = conversations;
        Ok(load)
    }

    /// Spawns `n` workers; they stop when `running` is cleared.
    pub fn spawn(self: &Arc<Self>, n: usize) -> Vec<tokio::task::JoinHandle<()>> {
        (0..n)
            .map(|w| {
                let me = self.clone();
                tokio::spawn(async move {
                    let mut i = w as u64;
                    let conversation = (me.conversations > 0 && w % me.conversations == 0)
                        .then(|| format!("chaos-conversation-{w}"));
                    while me.running.load(Ordering::Relaxed) {
                        let kind = KINDS[(i % KINDS.len() as u64) as usize];
                        if me.one_in(kind, i, conversation.as_deref()).await != Outcome::Success {
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
        self.one_in(kind, n, None).await
    }

    /// Sends one request of `conversation` (if any) and records how it ended.
    pub async fn one_in(&self, kind: Kind, n: u64, conversation: Option<&str>) -> Outcome {
        let start = self.t0.elapsed();
        let (node, base) = match &self.front {
            Some(front) => match front.pick(conversation) {
                Some((i, b)) => (Some(i), b),
                None => {
                    // No node up: a real front door answers 502 itself; the harness waits.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    return Outcome::CutByKill;
                }
            },
            None => (None, self.base.clone()),
        };
        let outcome = self.send(&base, kind, n, conversation).await;
        let end = self.t0.elapsed();
        if let Ok(mut r) = self.records.lock() {
            r.push(Record {
                kind,
                outcome: outcome.clone(),
                span: (start, end),
                node,
            });
        }
        outcome
    }

    async fn send(&self, base: &str, kind: Kind, n: u64, conversation: Option<&str>) -> Outcome {
        let mut req = self
            .http
            .post(format!("{base}{}", kind.path()))
            .bearer_auth(&self.key)
            .header("x-api-key", &self.key)
            .header("anthropic-version", "2023-06-01");
        if let Some(c) = conversation {
            req = req.header("session-id", c);
        }
        let resp = req.json(&kind.body(n, conversation)).send().await;
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
