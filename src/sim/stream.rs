//! The Responses-API answer as events (PROTOCOL.md §5) and as one JSON object. Pure: a
//! [`Plan`] and ids in, JSON values and SSE frames out. Event order for a message:
//! `response.created`, `response.in_progress`, [reasoning item with summary deltas],
//! `output_item.added`, `content_part.added`, `output_text.delta`…, `output_text.done`,
//! `content_part.done`, `output_item.done`, `response.completed` (with the full `response`
//! incl. `output` and `usage`). A tool call replaces the message part with
//! `function_call_arguments.delta/done`.

use super::turn::{Plan, Reply};
use bytes::Bytes;
use serde_json::{Value, json};

/// Token counts of one answer.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Usage {
    /// Input tokens.
    pub input: u64,
    /// Cached share of the input.
    pub cached: u64,
    /// Output tokens, reasoning included.
    pub output: u64,
    /// Reasoning share of the output.
    pub reasoning: u64,
}

impl Usage {
    /// The `usage` object of a completed response.
    pub fn to_json(self) -> Value {
        json!({
            "input_tokens": self.input,
            "input_tokens_details": {"cached_tokens": self.cached},
            "output_tokens": self.output,
            "output_tokens_details": {"reasoning_tokens": self.reasoning},
            "total_tokens": self.input + self.output,
        })
    }
}

/// Everything needed to render one answer.
pub(crate) struct Answer<'a> {
    /// `resp_…` id.
    pub id: String,
    /// Model named in the response (the requested one).
    pub model: &'a str,
    /// Unix seconds.
    pub created_at: i64,
    /// What to say.
    pub plan: &'a Plan,
    /// Token counts.
    pub usage: Usage,
    /// Add `encrypted_content` to the reasoning item.
    pub encrypted: bool,
}

impl Answer<'_> {
    fn item_id(&self, prefix: &str) -> String {
        format!("{prefix}_{}", self.id.trim_start_matches("resp_"))
    }

    fn reasoning_item(&self, summary: &str) -> Value {
        let mut item = json!({
            "id": self.item_id("rs"), "type": "reasoning",
            "summary": [{"type": "summary_text", "text": summary}],
        });
        if self.encrypted {
            item["encrypted_content"] = json!(format!("gAAAAsim{}", self.id));
        }
        item
    }

    fn reply_item(&self, done: bool) -> Value {
        let status = if done { "completed" } else { "in_progress" };
        match &self.plan.reply {
            Reply::Text(text) => json!({
                "id": self.item_id("msg"), "type": "message", "status": status, "role": "assistant",
                "content": if done { json!([{"type": "output_text", "text": text, "annotations": []}]) } else { json!([]) },
            }),
            Reply::ToolCall(name) => json!({
                "id": self.item_id("fc"), "type": "function_call", "status": status,
                "call_id": self.item_id("call"), "name": name,
                "arguments": if done { "{}" } else { "" },
            }),
        }
    }

    /// The final `output` array.
    pub fn output(&self) -> Vec<Value> {
        let mut out = Vec::new();
        if let Some(s) = &self.plan.summary {
            out.push(self.reasoning_item(s));
        }
        out.push(self.reply_item(true));
        out
    }

    /// The `response` object: `in_progress` without output/usage, or `completed` with both.
    pub fn response(&self, completed: bool) -> Value {
        json!({
            "id": self.id, "object": "response", "created_at": self.created_at,
            "status": if completed { "completed" } else { "in_progress" },
            "background": false, "error": null, "incomplete_details": null, "instructions": null,
            "max_output_tokens": null, "metadata": {}, "model": self.model,
            "output": if completed { Value::Array(self.output()) } else { json!([]) },
            "parallel_tool_calls": true, "previous_response_id": null,
            "reasoning": {"effort": null, "summary": null}, "store": false, "temperature": 1.0,
            "text": {"format": {"type": "text"}}, "tool_choice": "auto", "tools": [], "top_p": 1.0,
            "truncation": "disabled", "user": null,
            "usage": if completed { self.usage.to_json() } else { Value::Null },
        })
    }

    /// Every event of the stream, in order, without sequence numbers.
    fn bare_events(&self) -> Vec<Value> {
        let mut ev = vec![
            json!({"type": "response.created", "response": self.response(false)}),
            json!({"type": "response.in_progress", "response": self.response(false)}),
        ];
        let mut index = 0;
        if let Some(s) = &self.plan.summary {
            let id = self.item_id("rs");
            let part = |text: &str| json!({"type": "summary_text", "text": text});
            ev.push(json!({"type": "response.output_item.added", "output_index": 0,
                "item": {"id": id, "type": "reasoning", "summary": []}}));
            ev.push(json!({"type": "response.reasoning_summary_part.added", "item_id": id,
                "output_index": 0, "summary_index": 0, "part": part("")}));
            for d in deltas(s) {
                ev.push(json!({"type": "response.reasoning_summary_text.delta", "item_id": id,
                    "output_index": 0, "summary_index": 0, "delta": d}));
            }
            ev.push(json!({"type": "response.reasoning_summary_text.done", "item_id": id,
                "output_index": 0, "summary_index": 0, "text": s}));
            ev.push(json!({"type": "response.reasoning_summary_part.done", "item_id": id,
                "output_index": 0, "summary_index": 0, "part": part(s)}));
            ev.push(json!({"type": "response.output_item.done", "output_index": 0,
                "item": self.reasoning_item(s)}));
            index = 1;
        }
        ev.push(json!({"type": "response.output_item.added", "output_index": index,
            "item": self.reply_item(false)}));
        match &self.plan.reply {
            Reply::Text(text) => self.text_events(&mut ev, index, text),
            Reply::ToolCall(_) => {
                let id = self.item_id("fc");
                ev.push(json!({"type": "response.function_call_arguments.delta", "item_id": id,
                    "output_index": index, "delta": "{}"}));
                ev.push(json!({"type": "response.function_call_arguments.done", "item_id": id,
                    "output_index": index, "arguments": "{}"}));
            }
        }
        ev.push(json!({"type": "response.output_item.done", "output_index": index,
            "item": self.reply_item(true)}));
        ev.push(json!({"type": "response.completed", "response": self.response(true)}));
        ev
    }

    fn text_events(&self, ev: &mut Vec<Value>, index: usize, text: &str) {
        let id = self.item_id("msg");
        let part = |t: &str| json!({"type": "output_text", "text": t, "annotations": []});
        ev.push(json!({"type": "response.content_part.added", "item_id": id,
            "output_index": index, "content_index": 0, "part": part("")}));
        for d in deltas(text) {
            ev.push(json!({"type": "response.output_text.delta", "item_id": id,
                "output_index": index, "content_index": 0, "delta": d}));
        }
        ev.push(json!({"type": "response.output_text.done", "item_id": id,
            "output_index": index, "content_index": 0, "text": text}));
        ev.push(json!({"type": "response.content_part.done", "item_id": id,
            "output_index": index, "content_index": 0, "part": part(text)}));
    }

    /// Every event of the stream, numbered with `sequence_number`.
    pub fn events(&self) -> Vec<Value> {
        let mut ev = self.bare_events();
        for (i, e) in ev.iter_mut().enumerate() {
            e["sequence_number"] = json!(i);
        }
        ev
    }
}

/// Splits text into word-sized deltas that concatenate back to it.
fn deltas(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if c == ' ' && i > start {
            out.push(&text[start..i]);
            start = i;
        }
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

/// One SSE frame: `event: TYPE`, `data: JSON`, blank line.
pub(crate) fn frame(event: &Value) -> Bytes {
    let ty = event.get("type").and_then(Value::as_str).unwrap_or("message");
    let data = event.to_string();
    let mut s = String::with_capacity(data.len() + ty.len() + 16);
    s.push_str("event: ");
    s.push_str(ty);
    s.push_str("\ndata: ");
    s.push_str(&data);
    s.push_str("\n\n");
    Bytes::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_concatenate_to_the_text() {
        let t = "Hello big world.";
        assert_eq!(deltas(t).concat(), t);
        assert_eq!(deltas(t).len(), 3);
    }
}
