//! Anthropic Messages ⇄ Responses: the request translator, the streaming translator
//! (`message_start` … `message_stop`), `collect` for non-streaming clients, and `count_tokens`.

use super::{ModelAliases, StreamEnd, TranslateError, Translated};
use bytes::Bytes;
use serde_json::Value;

/// Translates a Messages request body into a Responses request.
pub fn request(body: &[u8], models: &dyn ModelAliases) -> Result<Translated, TranslateError> {
    let _ = (body, models);
    Err(TranslateError::invalid_body("not yet"))
}

/// Turns upstream Responses events into Anthropic stream events.
#[derive(Debug)]
pub struct MessagesStream {
    model: String,
}

impl MessagesStream {
    /// A stream answering as `model`.
    pub fn new(model: impl Into<String>) -> Self {
        Self {
            model: model.into(),
        }
    }

    /// The client frames for one upstream event.
    pub fn on_event(&mut self, ev: &Value) -> Vec<Bytes> {
        let _ = (ev, &self.model);
        Vec::new()
    }

    /// A `ping` for long upstream silences (preceded by `message_start` if not yet sent).
    pub fn ping(&mut self) -> Vec<Bytes> {
        vec![ping()]
    }

    /// The closing frames: `message_delta` + `message_stop`, or `event: error`.
    pub fn finish(&mut self, outcome: StreamEnd) -> Vec<Bytes> {
        let _ = outcome;
        Vec::new()
    }
}

/// A bare `ping` event frame.
pub fn ping() -> Bytes {
    Bytes::from_static(b"event: ping\ndata: {\"type\":\"ping\"}\n\n")
}

/// Builds an Anthropic `message` object from a whole upstream stream.
pub fn collect(events: &[Value], model: &str) -> Result<Value, TranslateError> {
    let _ = (events, model);
    Err(TranslateError::premature_close())
}

/// Estimates `{"input_tokens": N}` for a Messages request body.
pub fn count_tokens(body: &[u8]) -> Result<Value, TranslateError> {
    let _ = body;
    Ok(serde_json::json!({"input_tokens": 0}))
}
