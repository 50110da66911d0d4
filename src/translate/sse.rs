//! SSE frame builders for the streams the daemon generates itself (translated protocols).
//!
//! One function per frame shape so every frame the translators write is well formed:
//! `data:`-only frames for OpenAI, `event:` + `data:` frames for Anthropic.

use bytes::Bytes;
use serde_json::Value;

/// A `data: <json>` frame (OpenAI chunks).
pub(crate) fn data(v: &Value) -> Bytes {
    Bytes::from(format!("data: {v}\n\n"))
}

/// The `data: [DONE]` frame that ends every OpenAI stream.
pub(crate) fn done() -> Bytes {
    Bytes::from_static(b"data: [DONE]\n\n")
}

/// An `event: <name>` + `data: <json>` frame (Anthropic events).
pub(crate) fn event(name: &str, v: &Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {v}\n\n"))
}
