//! Responses events → Chat Completions answers: `ChatStream` writes `chat.completion.chunk`
//! frames (role first, then content / `reasoning_content` / `tool_calls` deltas, a finish
//! chunk, an optional usage chunk, `data: [DONE]`); `collect` builds one `chat.completion`.
//!
//! A failure after the stream started ends it with an `{"error":…}` data line and
//! `data: [DONE]` (the OpenAI SDKs raise on it), never with a silent close.

use crate::translate::responses::{Happening, Normalizer, Outcome, Usage};
use crate::translate::transcript::{Block, Transcript};
use crate::translate::{Protocol, StreamEnd, TranslateError, sse};
use bytes::Bytes;
use serde_json::{Value, json};
use std::collections::HashMap;

/// Turns upstream Responses events into `chat.completion.chunk` SSE frames.
#[derive(Debug)]
pub struct ChatStream {
    /// `chatcmpl-…`, the same on every chunk.
    id: String,
    /// Unix seconds, the same on every chunk.
    created: i64,
    /// Whether `created` came from the caller (tests) and must not follow upstream's.
    fixed_created: bool,
    /// The model name echoed to the client.
    model: String,
    /// Whether to send the usage chunk before `[DONE]`.
    include_usage: bool,
    normalizer: Normalizer,
    /// Whether the `role` chunk went out.
    started: bool,
    /// Upstream output item → tool call index (0, 1, …) in the client's deltas.
    tool_index: HashMap<usize, usize>,
    /// Whether the terminal frames went out.
    done: bool,
}

impl ChatStream {
    /// A stream answering as `model`; `include_usage` adds the usage chunk before `[DONE]`.
    pub fn new(model: impl Into<String>, include_usage: bool) -> Self {
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let mut s = Self::with_identity(
            model,
            include_usage,
            crate::translate::body::random_id("chatcmpl-"),
            created,
        );
        s.fixed_created = false;
        s
    }

    /// A stream with a given id and creation time (deterministic output for tests).
    pub fn with_identity(
        model: impl Into<String>,
        include_usage: bool,
        id: impl Into<String>,
        created: i64,
    ) -> Self {
        Self {
            id: id.into(),
            created,
            fixed_created: true,
            model: model.into(),
            include_usage,
            normalizer: Normalizer::new(),
            started: false,
            tool_index: HashMap::new(),
            done: false,
        }
    }

    /// The client frames for one upstream event.
    pub fn on_event(&mut self, ev: &Value) -> Vec<Bytes> {
        let happenings = self.normalizer.on_event(ev);
        self.frames(happenings)
    }

    /// The closing frames: finish chunk, usage and `[DONE]`, or an error then `[DONE]`.
    /// Empty if upstream's terminal event already closed the stream.
    pub fn finish(&mut self, outcome: StreamEnd) -> Vec<Bytes> {
        let happenings = self.normalizer.finish(outcome);
        self.frames(happenings)
    }

    /// An SSE comment line that keeps idle connections open; clients ignore it.
    pub fn keepalive() -> Bytes {
        Bytes::from_static(b": keep-alive\n\n")
    }

    fn frames(&mut self, happenings: Vec<Happening>) -> Vec<Bytes> {
        let mut out = Vec::new();
        for h in happenings {
            if self.done {
                break;
            }
            if let Happening::Created {
                created_at: Some(t),
                ..
            } = h
            {
                if !self.fixed_created {
                    self.created = t;
                }
            }
            if !self.started
                && !matches!(
                    h,
                    Happening::End {
                        outcome: Outcome::Failed(_),
                        ..
                    }
                )
            {
                self.started = true;
                out.push(self.chunk(json!({"role": "assistant", "content": ""}), None));
            }
            match h {
                Happening::Created { .. } | Happening::ItemDone { .. } => {}
                Happening::Text { delta, .. } => {
                    out.push(self.chunk(json!({"content": delta}), None))
                }
                Happening::Reasoning { delta, .. } => {
                    out.push(self.chunk(json!({"reasoning_content": delta}), None))
                }
                Happening::ToolStart {
                    item,
                    call_id,
                    name,
                } => {
                    let index = self.tool_index.len();
                    self.tool_index.insert(item, index);
                    let d = json!({"tool_calls": [{"index": index, "id": call_id, "type": "function",
                        "function": {"name": name, "arguments": ""}}]});
                    out.push(self.chunk(d, None));
                }
                Happening::ToolArgs { item, delta } => {
                    let index = self.tool_index.get(&item).copied().unwrap_or(0);
                    let d =
                        json!({"tool_calls": [{"index": index, "function": {"arguments": delta}}]});
                    out.push(self.chunk(d, None));
                }
                Happening::End { outcome, usage } => {
                    self.done = true;
                    out.extend(self.end(outcome, usage));
                }
            }
        }
        out
    }

    fn end(&mut self, outcome: Outcome, usage: Option<Usage>) -> Vec<Bytes> {
        let reason = match outcome {
            Outcome::Failed(e) => return e.stream_frames(Protocol::Chat),
            Outcome::Incomplete(r) => incomplete_reason(&r),
            Outcome::Completed if !self.tool_index.is_empty() => "tool_calls",
            Outcome::Completed => "stop",
        };
        let mut out = vec![self.chunk(json!({}), Some(reason))];
        if self.include_usage {
            let mut c = self.base();
            c["choices"] = json!([]);
            c["usage"] = usage_json(usage.unwrap_or_default());
            out.push(sse::data(&c));
        }
        out.push(sse::done());
        out
    }

    fn base(&self) -> Value {
        json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
            "model": self.model})
    }

    fn chunk(&self, delta: Value, finish_reason: Option<&str>) -> Bytes {
        let mut c = self.base();
        c["choices"] = json!([{"index": 0, "delta": delta, "logprobs": null,
            "finish_reason": finish_reason}]);
        sse::data(&c)
    }
}

/// Builds a `chat.completion` object from a whole upstream stream; an upstream failure or a
/// stream without a terminal event is an error to answer with instead.
pub fn collect(events: &[Value], model: &str) -> Result<Value, TranslateError> {
    let t = Transcript::gather(events);
    let finish_reason = match t.result()? {
        Outcome::Incomplete(r) => incomplete_reason(r),
        _ if t.has_tool_calls() => "tool_calls",
        _ => "stop",
    };
    let mut content = String::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    for b in &t.blocks {
        match b {
            Block::Text { text, .. } => content.push_str(text),
            Block::Thinking { text, .. } => reasoning.push_str(text),
            Block::Tool {
                call_id,
                name,
                arguments,
                ..
            } => calls.push(json!({"id": call_id,
                "type": "function", "function": {"name": name, "arguments": arguments}})),
        }
    }
    let mut message = json!({"role": "assistant",
        "content": if content.is_empty() && !calls.is_empty() { Value::Null } else { json!(content) },
        "refusal": null});
    if !reasoning.is_empty() {
        message["reasoning_content"] = json!(reasoning);
    }
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    let created = t.created_at.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    });
    Ok(
        json!({"id": crate::translate::body::random_id("chatcmpl-"), "object": "chat.completion", "created": created, "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish_reason}],
        "usage": usage_json(t.usage.unwrap_or_default())}),
    )
}

/// OpenAI's usage object.
fn usage_json(u: Usage) -> Value {
    json!({"prompt_tokens": u.input_tokens, "completion_tokens": u.output_tokens,
        "total_tokens": u.input_tokens + u.output_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": u.reasoning_tokens}})
}

/// `finish_reason` for an incomplete response.
fn incomplete_reason(reason: &str) -> &'static str {
    if reason == "content_filter" {
        "content_filter"
    } else {
        "length"
    }
}
