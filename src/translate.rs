//! Protocol translation between the client protocols the pool accepts (OpenAI Chat Completions,
//! Anthropic Messages) and the one protocol the Codex backend speaks (Responses over SSE).
//!
//! Everything here is pure except `route` (the HTTP wiring, private to the crate): bytes and
//! JSON in, JSON and SSE frames out, no I/O, no clock beyond the default ids/timestamps of a
//! new stream (tests inject their own). The HTTP wiring lives
//! with the proxy; it calls `chat::request` / `messages::request` to build the upstream body,
//! feeds each upstream SSE event to a `ChatStream` / `MessagesStream` (or `collect`s them for a
//! non-streaming client), and ends every stream with `finish`, which always writes a terminal
//! frame — a stream is never left to end silently.
//!
//! What is deliberately *not* sent upstream (the Codex backend rejects or ignores it):
//! `max_tokens` / `max_completion_tokens` / `max_output_tokens`, `temperature`, `top_p`,
//! `top_k`, `stop` / `stop_sequences`, `n`, `logprobs`, `metadata`. They are accepted (type
//! checked where cheap) and dropped.

mod body;
pub mod chat;
pub mod error;
pub mod messages;
pub mod model;
pub mod responses;
pub(crate) mod route;
mod sse;
mod transcript;

pub use error::{Protocol, TranslateError};
pub use model::{ModelAliases, ModelMap};

/// A client request turned into a Responses request for the Codex backend.
#[derive(Debug, Clone, PartialEq)]
pub struct Translated {
    /// The Responses request body to POST upstream; always `stream: true, store: false`.
    pub body: serde_json::Value,
    /// The upstream (Codex) model after aliases and suffixes: what the pool picks an account for.
    pub model: String,
    /// The model name the client asked for, echoed back in its frames (clients compare it).
    pub client_model: String,
    /// Whether the client asked for a stream; if not, the proxy `collect`s the upstream stream.
    pub client_stream: bool,
    /// Chat only: `stream_options.include_usage`, i.e. whether the client wants a usage chunk.
    pub include_usage: bool,
    /// Conversation key for sticky routing (and upstream `prompt_cache_key`): explicit key,
    /// else the client's conversation id, else one derived from the conversation's start.
    pub affinity: Option<String>,
}

impl Translated {
    /// Replaces the affinity key (e.g. with the `X-Claude-Code-Session-Id` header, which only the
    /// caller sees) and keeps the upstream `prompt_cache_key` in step with it.
    pub fn with_affinity(mut self, key: impl Into<String>) -> Self {
        let key = key.into();
        if let Some(obj) = self.body.as_object_mut() {
            obj.insert(
                "prompt_cache_key".into(),
                serde_json::Value::String(key.clone()),
            );
        }
        self.affinity = Some(key);
        self
    }
}

/// How an upstream stream ended, as seen by the caller that read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEnd {
    /// The upstream stream ended normally (the translator also recognises `response.completed`
    /// by itself; a `Completed` without it still closes the client stream properly).
    Completed,
    /// The upstream or the transport failed after the client stream started.
    Failed {
        /// Human-readable reason, shown to the client in its protocol's error event.
        message: String,
    },
    /// The upstream stream closed before any terminal event (`response.completed` / `failed`).
    PrematureClose,
}
