//! Responses events → Anthropic Messages answers. `MessagesStream` writes `message_start`,
//! one `content_block_start/delta/stop` run per output item (`thinking` with
//! `thinking_delta` + `signature_delta`, `text` with `text_delta`, `tool_use` with
//! `input_json_delta`), then `message_delta` (stop reason, usage) and `message_stop`.
//! `collect` builds the non-streaming `message` object.
//!
//! Anthropic blocks do not interleave: one block is open at a time. When upstream interleaves
//! output items (a second tool call, or more text, while a tool call's arguments are still
//! streaming), whatever belongs to other items is held back until the open tool call is done
//! and then sent in order, so every argument lands in its own `tool_use` block; a block is
//! never closed under a tool call that is still receiving arguments.
//!
//! A failure after the stream started ends it with `event: error` (the Anthropic SDKs raise
//! on it) — never with a silent close, never with a `message_stop` that would pass for success.

use crate::translate::responses::{Happening, Normalizer, Outcome, Usage};
use crate::translate::transcript::{Block, Transcript};
use crate::translate::{Protocol, StreamEnd, TranslateError, sse};
use bytes::Bytes;
use serde_json::{Value, json};

/// Turns upstream Responses events into Anthropic stream events.
#[derive(Debug)]
pub struct MessagesStream {
    /// `msg_…`, sent in `message_start`.
    id: String,
    /// The model name echoed to the client.
    model: String,
    normalizer: Normalizer,
    /// Whether `message_start` went out.
    started: bool,
    /// The open content block: (upstream item, block index, kind). A `tool_use` block stays open
    /// until its item is done.
    open: Option<(usize, usize, BlockKind)>,
    /// Happenings of other items that arrived while a tool call was open, in arrival order.
    held: Vec<Happening>,
    /// Index the next content block gets.
    next_index: usize,
    /// Whether any `tool_use` block was sent (stop reason `tool_use`).
    tool_used: bool,
    /// Whether the terminal frames went out.
    done: bool,
}

impl MessagesStream {
    /// A stream answering as `model`.
    pub fn new(model: impl Into<String>) -> Self {
        Self::with_id(model, crate::translate::body::random_id("msg_"))
    }

    /// A stream with a given message id (deterministic output for tests).
    pub fn with_id(model: impl Into<String>, id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            model: model.into(),
            normalizer: Normalizer::new(),
            started: false,
            open: None,
            held: Vec::new(),
            next_index: 0,
            tool_used: false,
            done: false,
        }
    }

    /// The client frames for one upstream event.
    pub fn on_event(&mut self, ev: &Value) -> Vec<Bytes> {
        let happenings = self.normalizer.on_event(ev);
        self.frames(happenings)
    }

    /// A `ping` for long upstream silences, preceded by `message_start` if not yet sent (so a
    /// client sees a live stream as early as possible). Empty after the stream ended.
    pub fn ping(&mut self) -> Vec<Bytes> {
        if self.done {
            return Vec::new();
        }
        let mut out = Vec::new();
        self.start(&mut out);
        out.push(ping());
        out
    }

    /// The closing frames: `message_delta` + `message_stop`, or `event: error`. Empty if
    /// upstream's terminal event already closed the stream.
    pub fn finish(&mut self, outcome: StreamEnd) -> Vec<Bytes> {
        let happenings = self.normalizer.finish(outcome);
        self.frames(happenings)
    }

    fn start(&mut self, out: &mut Vec<Bytes>) {
        if !self.started {
            self.started = true;
            let msg = json!({"id": self.id, "type": "message", "role": "assistant",
                "model": self.model, "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": 0, "output_tokens": 0}});
            out.push(sse::event(
                "message_start",
                &json!({"type": "message_start", "message": msg}),
            ));
        }
    }

    fn frames(&mut self, happenings: Vec<Happening>) -> Vec<Bytes> {
        let mut out = Vec::new();
        for h in happenings {
            self.frame(h, &mut out);
        }
        out
    }

    /// The client frames for one happening, or holds it back (see the module docs).
    fn frame(&mut self, h: Happening, out: &mut Vec<Bytes>) {
        if self.done {
            return;
        }
        if let Some(item) = item_of(&h)
            && self
                .open
                .is_some_and(|(open, _, kind)| kind == BlockKind::ToolUse && open != item)
        {
            self.held.push(h);
            return;
        }
        if !matches!(
            h,
            Happening::End {
                outcome: Outcome::Failed(_),
                ..
            }
        ) {
            self.start(out);
        }
        match h {
            Happening::Created { .. } => {}
            Happening::Text { item, delta } => {
                let start = json!({"type": "text", "text": ""});
                let index = self.block(item, BlockKind::Text, start, out);
                out.push(delta_frame(
                    index,
                    json!({"type": "text_delta", "text": delta}),
                ));
            }
            Happening::Reasoning { item, delta } => {
                let start = json!({"type": "thinking", "thinking": "", "signature": ""});
                let index = self.block(item, BlockKind::Thinking, start, out);
                out.push(delta_frame(
                    index,
                    json!({"type": "thinking_delta", "thinking": delta}),
                ));
            }
            Happening::ToolStart {
                item,
                call_id,
                name,
            } => {
                self.tool_used = true;
                let start = json!({"type": "tool_use", "id": call_id, "name": name, "input": {}});
                self.block(item, BlockKind::ToolUse, start, out);
            }
            Happening::ToolArgs { item, delta } => {
                if let Some((open_item, index, _)) = self.open {
                    if open_item == item {
                        out.push(delta_frame(
                            index,
                            json!({"type": "input_json_delta", "partial_json": delta}),
                        ));
                    }
                }
            }
            Happening::ItemDone { item, signature } => {
                if matches!(self.open, Some((i, _, _)) if i == item) {
                    self.close(signature.as_deref(), out);
                    self.release_held(out);
                }
            }
            Happening::End { outcome, usage } => {
                // Whatever was held back is part of the answer: it goes out before the end,
                // each block closed in turn (an unfinished call keeps what it received).
                loop {
                    self.close(None, out);
                    if self.held.is_empty() {
                        break;
                    }
                    self.release_held(out);
                }
                self.done = true;
                out.extend(self.end(outcome, usage));
            }
        }
    }

    /// Sends what was held back while a tool call was open, in arrival order (a later tool call
    /// among it holds back what follows it in turn).
    fn release_held(&mut self, out: &mut Vec<Bytes>) {
        for h in std::mem::take(&mut self.held) {
            self.frame(h, out);
        }
    }

    /// The index of the block open for `item`, opening it (and closing another) if needed.
    fn block(&mut self, item: usize, kind: BlockKind, start: Value, out: &mut Vec<Bytes>) -> usize {
        if let Some((i, index, _)) = self.open {
            if i == item {
                return index;
            }
            self.close(None, out);
        }
        let index = self.next_index;
        self.next_index += 1;
        self.open = Some((item, index, kind));
        out.push(sse::event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": start}),
        ));
        index
    }

    fn close(&mut self, signature: Option<&str>, out: &mut Vec<Bytes>) {
        if let Some((_, index, kind)) = self.open.take() {
            if kind == BlockKind::Thinking {
                let d = json!({"type": "signature_delta", "signature": signature.unwrap_or("")});
                out.push(delta_frame(index, d));
            }
            out.push(sse::event(
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": index}),
            ));
        }
    }

    fn end(&mut self, outcome: Outcome, usage: Option<Usage>) -> Vec<Bytes> {
        let stop = match outcome {
            Outcome::Failed(e) => return e.stream_frames(Protocol::Messages),
            Outcome::Incomplete(r) => incomplete_reason(&r),
            Outcome::Completed if self.tool_used => "tool_use",
            Outcome::Completed => "end_turn",
        };
        let delta = json!({"type": "message_delta",
            "delta": {"stop_reason": stop, "stop_sequence": null},
            "usage": usage_json(usage.unwrap_or_default())});
        vec![
            sse::event("message_delta", &delta),
            sse::event("message_stop", &json!({"type": "message_stop"})),
        ]
    }
}

/// A bare `ping` event frame.
pub fn ping() -> Bytes {
    Bytes::from_static(b"event: ping\ndata: {\"type\":\"ping\"}\n\n")
}

/// Builds an Anthropic `message` object from a whole upstream stream; an upstream failure or a
/// stream without a terminal event is an error to answer with instead.
pub fn collect(events: &[Value], model: &str) -> Result<Value, TranslateError> {
    let t = Transcript::gather(events);
    let stop = match t.result()? {
        Outcome::Incomplete(r) => incomplete_reason(r),
        _ if t.has_tool_calls() => "tool_use",
        _ => "end_turn",
    };
    let content: Vec<Value> = t.blocks.iter().map(|b| match b {
        Block::Thinking { text, signature, .. } => {
            json!({"type": "thinking", "thinking": text, "signature": signature.as_deref().unwrap_or("")})
        }
        Block::Text { text, .. } => json!({"type": "text", "text": text}),
        Block::Tool { call_id, name, arguments, .. } => {
            let input = serde_json::from_str::<Value>(arguments)
                .ok()
                .filter(Value::is_object)
                .unwrap_or_else(|| json!({}));
            json!({"type": "tool_use", "id": call_id, "name": name, "input": input})
        }
    }).collect();
    Ok(
        json!({"id": crate::translate::body::random_id("msg_"), "type": "message", "role": "assistant", "model": model,
        "content": content, "stop_reason": stop, "stop_sequence": null,
        "usage": usage_json(t.usage.unwrap_or_default())}),
    )
}

/// What an open content block holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BlockKind {
    /// `text`.
    Text,
    /// `thinking` (closed with a `signature_delta`).
    Thinking,
    /// `tool_use`: other items wait while it is open (see the module docs).
    ToolUse,
}

/// The output item a happening belongs to (`None` for the response-level ones).
fn item_of(h: &Happening) -> Option<usize> {
    match h {
        Happening::Text { item, .. }
        | Happening::Reasoning { item, .. }
        | Happening::ToolStart { item, .. }
        | Happening::ToolArgs { item, .. }
        | Happening::ItemDone { item, .. } => Some(*item),
        Happening::Created { .. } | Happening::End { .. } => None,
    }
}

fn delta_frame(index: usize, delta: Value) -> Bytes {
    sse::event(
        "content_block_delta",
        &json!({"type": "content_block_delta", "index": index, "delta": delta}),
    )
}

/// Anthropic usage: `input_tokens` excludes cache reads, which are reported apart.
fn usage_json(u: Usage) -> Value {
    json!({"input_tokens": u.input_tokens.saturating_sub(u.cached_tokens),
        "output_tokens": u.output_tokens, "cache_read_input_tokens": u.cached_tokens,
        "cache_creation_input_tokens": 0})
}

/// `stop_reason` for an incomplete response.
fn incomplete_reason(reason: &str) -> &'static str {
    if reason == "content_filter" {
        "refusal"
    } else {
        "max_tokens"
    }
}
