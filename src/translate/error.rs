//! The one error type of translation and its rendering in each client protocol's own shape.
//!
//! A `TranslateError` is protocol-neutral (status, kind, offending field, message); `render`
//! turns it into the exact body an OpenAI or Anthropic client expects (docs/predecessor.md §5.6), and
//! `stream_frames` into the mid-stream error frames that end a stream that already started.

use bytes::Bytes;
use serde_json::{Value, json};

/// Which client protocol an error is rendered for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// OpenAI Chat Completions: `{"error":{"message","type","param","code"}}`.
    Chat,
    /// Anthropic Messages: `{"type":"error","error":{"type","message"}}`.
    Messages,
}

/// Error kinds, protocol-neutral; each protocol renders them with its own type/code names.
pub mod kind {
    /// The client's request is malformed (400).
    pub const INVALID_REQUEST: &str = "invalid_request_error";
    /// Upstream or pool said "too many requests" (429).
    pub const RATE_LIMIT: &str = "rate_limit_error";
    /// No account can serve right now (OpenAI 503, Anthropic 529).
    pub const OVERLOADED: &str = "overloaded_error";
    /// Upstream itself said it is overloaded (`server_is_overloaded`, `slow_down`): 503/529.
    pub const UPSTREAM_OVERLOADED: &str = "upstream_overloaded";
    /// Upstream failed or answered something unusable (502 and friends).
    pub const UPSTREAM: &str = "api_error";
    /// Upstream stream closed before a terminal event (504).
    pub const TIMEOUT: &str = "timeout_error";
    /// The client key is unknown (401).
    pub const AUTHENTICATION: &str = "authentication_error";
    /// The client key may not use this model (403).
    pub const PERMISSION: &str = "permission_error";
    /// Unknown model (404).
    pub const NOT_FOUND: &str = "not_found_error";
}

/// A request that cannot be translated, or an upstream outcome that cannot be turned into a
/// successful answer. Rendered in the client's protocol by `render`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TranslateError {
    /// HTTP status to answer with (the overloaded kind is re-mapped per protocol by `render`).
    pub status: u16,
    /// One of the `kind::*` constants: decides the type/code names in each protocol.
    pub kind: &'static str,
    /// The offending request field as a path (`messages[2].content[0].type`), for 400s.
    pub field: Option<String>,
    /// What went wrong, in words a client developer can act on.
    pub message: String,
}

impl TranslateError {
    /// A 400 naming the offending field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            status: 400,
            kind: kind::INVALID_REQUEST,
            field: Some(field.into()),
            message: message.into(),
        }
    }

    /// A 400 about the body as a whole (not JSON, not an object).
    pub fn invalid_body(message: impl Into<String>) -> Self {
        Self {
            status: 400,
            kind: kind::INVALID_REQUEST,
            field: None,
            message: message.into(),
        }
    }

    /// Any other error: status and kind chosen by the caller.
    pub fn new(status: u16, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            field: None,
            message: message.into(),
        }
    }

    /// The error for an upstream stream that closed before its terminal event.
    pub fn premature_close() -> Self {
        Self::new(
            504,
            kind::TIMEOUT,
            "upstream stream closed before the response completed",
        )
    }

    /// The error for an upstream `response.failed` / `error` event with this code and message.
    pub fn upstream_failed(code: Option<&str>, message: &str) -> Self {
        let (status, kind) = match code {
            Some("rate_limit_exceeded" | "usage_limit_reached" | "insufficient_quota") => {
                (429, kind::RATE_LIMIT)
            }
            Some("server_is_overloaded" | "slow_down" | "server_shutting_down") => {
                (503, kind::UPSTREAM_OVERLOADED)
            }
            Some("no_available_accounts") => (503, kind::OVERLOADED),
            // `timeout`: the pool's own request deadline, sent once heartbeats went out.
            Some("upstream_premature_close" | "upstream_idle_timeout" | "timeout") => {
                (504, kind::TIMEOUT)
            }
            Some("context_length_exceeded" | "invalid_prompt" | "invalid_request_error") => {
                (400, kind::INVALID_REQUEST)
            }
            _ => (502, kind::UPSTREAM),
        };
        Self::new(status, kind, message)
    }

    /// The HTTP status for this error in `protocol` (Anthropic says 529 where OpenAI says 503).
    pub fn status_for(&self, protocol: Protocol) -> u16 {
        match (protocol, self.kind) {
            (Protocol::Messages, kind::OVERLOADED | kind::UPSTREAM_OVERLOADED) => 529,
            (Protocol::Chat, kind::OVERLOADED) => 503,
            _ => self.status,
        }
    }

    /// The status and JSON body to answer a client with, in its protocol's exact shape.
    pub fn render(&self, protocol: Protocol) -> (u16, Value) {
        let body = match protocol {
            Protocol::Chat => json!({"error": {
                "message": self.message,
                "type": openai_type(self.kind),
                "param": self.field,
                "code": openai_code(self.kind),
            }}),
            Protocol::Messages => json!({"type": "error", "error": {
                "type": anthropic_type(self.kind),
                "message": self.described(),
            }}),
        };
        (self.status_for(protocol), body)
    }

    /// The frames that end a client stream that already started with this error: OpenAI gets
    /// an `error` data line then `data: [DONE]`; Anthropic gets `event: error`.
    pub fn stream_frames(&self, protocol: Protocol) -> Vec<Bytes> {
        let (_, body) = self.render(protocol);
        match protocol {
            Protocol::Chat => vec![super::sse::data(&body), super::sse::done()],
            Protocol::Messages => vec![super::sse::event("error", &body)],
        }
    }

    /// The message with the field in front, for protocols without a `param` slot.
    fn described(&self) -> String {
        match &self.field {
            Some(f) => format!("{f}: {}", self.message),
            None => self.message.clone(),
        }
    }
}

/// OpenAI's `error.type` for a kind (docs/predecessor.md §5.6).
fn openai_type(kind: &str) -> &'static str {
    match kind {
        kind::INVALID_REQUEST | kind::NOT_FOUND | kind::AUTHENTICATION | kind::PERMISSION => {
            "invalid_request_error"
        }
        kind::RATE_LIMIT => "rate_limit_error",
        _ => "server_error",
    }
}

/// OpenAI's `error.code` for a kind (docs/predecessor.md §5.6).
fn openai_code(kind: &str) -> &'static str {
    match kind {
        kind::INVALID_REQUEST => "invalid_request",
        kind::RATE_LIMIT => "rate_limit_exceeded",
        kind::OVERLOADED => "no_available_accounts",
        kind::UPSTREAM_OVERLOADED => "server_is_overloaded",
        kind::AUTHENTICATION => "invalid_api_key",
        kind::PERMISSION => "model_not_allowed",
        kind::NOT_FOUND => "model_not_found",
        _ => "codex_api_error",
    }
}

/// Anthropic's `error.type` for a kind (its documented error types).
fn anthropic_type(kind: &str) -> &'static str {
    match kind {
        kind::INVALID_REQUEST => "invalid_request_error",
        kind::RATE_LIMIT => "rate_limit_error",
        kind::OVERLOADED | kind::UPSTREAM_OVERLOADED => "overloaded_error",
        kind::AUTHENTICATION => "authentication_error",
        kind::PERMISSION => "permission_error",
        kind::NOT_FOUND => "not_found_error",
        kind::TIMEOUT => "timeout_error",
        _ => "api_error",
    }
}
