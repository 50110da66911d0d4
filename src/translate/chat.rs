//! OpenAI Chat Completions ⇄ Responses: the request translator, the streaming translator
//! (`chat.completion.chunk` frames then `data: [DONE]`) and `collect` for non-streaming clients.

use super::{ModelAliases, StreamEnd, TranslateError, Translated};
use bytes::Bytes;
use serde_json::Value;

/// Translates a Chat Completions request body into a Responses request.
pub fn request(body: &[u8], models: &dyn ModelAliases) -> Result<Translated, TranslateError> {
    let _ = (body, models);
    Err(TranslateError::invalid_body("not yet"))
}

/// Turns upstream Responses events into `chat.completion.chunk` SSE frames.
#[derive(Debug)]
pub struct ChatStream {
    model: String,
    include_usage: bool,
}

impl ChatStream {
    /// A stream answering as `model`; `include_usage` adds the usage chunk before `[DONE]`.
    pub fn new(model: impl Into<String>, include_usage: bool) -> Self {
        Self {
            model: model.into(),
            include_usage,
        }
    }

    /// The client frames for one upstream event.
    pub fn on_event(&mut self, ev: &Value) -> Vec<Bytes> {
        let _ = (ev, &self.model, self.include_usage);
        Vec::new()
    }

    /// The closing frames: finish chunk, usage and `[DONE]`, or an error then `[DONE]`.
    pub fn finish(&mut self, outcome: StreamEnd) -> Vec<Bytes> {
        let _ = outcome;
        Vec::new()
    }
}

/// Builds a `chat.completion` object from a whole upstream stream.
pub fn collect(events: &[Value], model: &str) -> Result<Value, TranslateError> {
    let _ = (events, model);
    Err(TranslateError::premature_close())
}
