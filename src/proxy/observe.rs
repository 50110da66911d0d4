//! Watching a Responses SSE stream on the side: which terminal event ended it, what usage it
//! reported, and — for `stream: false` clients — the pieces needed to rebuild the final
//! response object. The bytes themselves are forwarded elsewhere, unchanged; this only reads.
//!
//! Cheap by construction: every event's `type` is read without a JSON parse (see
//! [`crate::sse::SseEvent::json_type`]); only terminal events (and, when collecting,
//! `response.output_item.done`) are parsed.

use crate::sse::{SseEvent, SseParser};
use serde_json::Value;

/// How the stream ended, as far as upstream said.
#[derive(Debug, Clone, PartialEq)]
pub enum Terminal {
    /// `response.completed`.
    Completed,
    /// `response.failed` with upstream's error code and message.
    Failed {
        /// `response.error.code`.
        code: Option<String>,
        /// `response.error.message`.
        message: Option<String>,
    },
    /// `response.incomplete` (e.g. `max_output_tokens`): terminal, not an error of the pool.
    Incomplete,
}

/// Token usage from the terminal event (`response.usage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// `input_tokens`.
    pub input_tokens: u64,
    /// `input_tokens_details.cached_tokens`.
    pub cached_tokens: u64,
    /// `output_tokens`.
    pub output_tokens: u64,
    /// `output_tokens_details.reasoning_tokens`.
    pub reasoning_tokens: u64,
}

/// Observation state of one upstream stream.
#[derive(Debug, Default)]
pub struct Observer {
    parser: SseParser,
    scratch: Vec<SseEvent>,
    /// Whether to keep what a `stream: false` answer is built from.
    collect: bool,
    /// The terminal event, once seen.
    pub terminal: Option<Terminal>,
    /// Usage reported by the terminal event.
    pub usage: Option<Usage>,
    /// The terminal event's `response` object (kept only when collecting).
    pub response: Option<Value>,
    /// `response.output_item.done` items in order (kept only when collecting).
    pub items: Vec<Value>,
    /// `response.id` from `response.created` or the terminal event.
    pub response_id: Option<String>,
    /// Number of events seen.
    pub events: u64,
}

impl Observer {
    /// An observer; `collect` keeps the final response for a `stream: false` client.
    pub fn new(collect: bool) -> Self {
        Self {
            collect,
            ..Self::default()
        }
    }

    /// Feeds one chunk of the upstream body.
    pub fn push(&mut self, chunk: &[u8]) {
        let mut evs = std::mem::take(&mut self.scratch);
        self.parser.push(chunk, &mut evs);
        for ev in evs.drain(..) {
            self.on_event(&ev);
        }
        self.scratch = evs;
    }

    /// The upstream body ended: an unterminated last event still counts.
    pub fn finish(&mut self) {
        if let Some(ev) = self.parser.finish() {
            self.on_event(&ev);
        }
    }

    fn on_event(&mut self, ev: &SseEvent) {
        self.events += 1;
        if self.terminal.is_some() {
            return;
        }
        let Some(kind) = ev.json_type() else { return };
        match kind.as_str() {
            "response.completed" | "response.failed" | "response.incomplete" => {
                self.on_terminal(&kind, ev)
            }
            "response.output_item.done" if self.collect => {
                if let Some(item) = parse(ev).and_then(|mut v| v.get_mut("item").map(Value::take)) {
                    self.items.push(item);
                }
            }
            "response.created" if self.response_id.is_none() => {
                self.response_id =
                    parse(ev).and_then(|v| v.pointer("/response/id")?.as_str().map(str::to_owned));
            }
            _ => {}
        }
    }

    fn on_terminal(&mut self, kind: &str, ev: &SseEvent) {
        let mut v = parse(ev).unwrap_or(Value::Null);
        let resp = v
            .get_mut("response")
            .map(Value::take)
            .unwrap_or(Value::Null);
        self.usage = resp.get("usage").map(usage_of);
        if let Some(id) = resp.get("id").and_then(Value::as_str) {
            self.response_id = Some(id.to_owned());
        }
        self.terminal = Some(match kind {
            "response.completed" => Terminal::Completed,
            "response.incomplete" => Terminal::Incomplete,
            _ => {
                let text = |k: &str| {
                    resp.pointer(&format!("/error/{k}"))
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                };
                Terminal::Failed {
                    code: text("code"),
                    message: text("message"),
                }
            }
        });
        if self.collect {
            self.response = Some(resp);
        }
    }

    /// The final response object for a `stream: false` client: the terminal event's
    /// `response`, with `output` filled from the streamed items when upstream left it empty
    /// (the minimal `response.completed` Codex accepts carries only an id).
    pub fn final_response(&mut self) -> Value {
        let mut resp = self
            .response
            .take()
            .unwrap_or_else(|| serde_json::json!({}));
        if !resp.is_object() {
            resp = serde_json::json!({});
        }
        let empty = resp
            .get("output")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty);
        if let Some(obj) = resp.as_object_mut() {
            if empty {
                obj.insert(
                    "output".into(),
                    Value::Array(std::mem::take(&mut self.items)),
                );
            }
            obj.entry("object")
                .or_insert_with(|| Value::from("response"));
            if let Some(id) = &self.response_id {
                obj.entry("id").or_insert_with(|| Value::from(id.as_str()));
            }
        }
        resp
    }
}

fn parse(ev: &SseEvent) -> Option<Value> {
    serde_json::from_slice(&ev.data).ok()
}

fn usage_of(u: &Value) -> Usage {
    let n = |p: &str| u.pointer(p).and_then(Value::as_u64).unwrap_or(0);
    Usage {
        input_tokens: n("/input_tokens"),
        cached_tokens: n("/input_tokens_details/cached_tokens"),
        output_tokens: n("/output_tokens"),
        reasoning_tokens: n("/output_tokens_details/reasoning_tokens"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = concat!(
        "data: {\"type\":\"response.created\",\"response\":{\"id\":\"resp_1\"}}\n\n",
        "data: {\"type\":\"response.output_text.delta\",\"delta\":\"hel\"}\n\n",
        "data: {\"type\":\"response.output_item.done\",\"item\":{\"type\":\"message\",\"role\":\"assistant\",\"content\":[{\"type\":\"output_text\",\"text\":\"hello\"}]}}\n\n",
        "data: {\"type\":\"response.completed\",\"response\":{\"id\":\"resp_1\",\"usage\":{\"input_tokens\":10,\"input_tokens_details\":{\"cached_tokens\":4},\"output_tokens\":7,\"output_tokens_details\":{\"reasoning_tokens\":2},\"total_tokens\":17}}}\n\n",
    );

    #[test]
    fn sees_terminal_usage_and_items() {
        let mut o = Observer::new(true);
        for c in OK.as_bytes().chunks(7) {
            o.push(c);
        }
        o.finish();
        assert_eq!(o.terminal, Some(Terminal::Completed));
        assert_eq!(
            o.usage,
            Some(Usage {
                input_tokens: 10,
                cached_tokens: 4,
                output_tokens: 7,
                reasoning_tokens: 2
            })
        );
        let r = o.final_response();
        assert_eq!(r["id"], "resp_1");
        assert_eq!(r["object"], "response");
        assert_eq!(r["output"][0]["content"][0]["text"], "hello");
    }

    #[test]
    fn stream_without_terminal_has_none() {
        let mut o = Observer::new(false);
        o.push(b"data: {\"type\":\"response.created\",\"response\":{\"id\":\"r\"}}\n\ndata: {\"type\":\"response.output_text.delta\"");
        o.finish();
        assert_eq!(o.terminal, None);
        assert_eq!(o.response_id.as_deref(), Some("r"));
    }

    #[test]
    fn failed_event_keeps_code_and_message() {
        let mut o = Observer::new(false);
        o.push(b"data: {\"type\":\"response.failed\",\"response\":{\"error\":{\"code\":\"server_error\",\"message\":\"boom\"}}}\n\n");
        assert_eq!(
            o.terminal,
            Some(Terminal::Failed {
                code: Some("server_error".into()),
                message: Some("boom".into())
            })
        );
        assert!(o.response.is_none(), "not collecting");
    }
}
