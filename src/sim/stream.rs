//! The Responses-API answer as SSE events (docs/protocol.md §5) and as one JSON object. Pure: a
//! [`Plan`] and ids in, text out. Event order for a message: `response.created`,
//! `response.in_progress`, [reasoning item: `output_item.added`, `reasoning_summary_part.added`,
//! `reasoning_summary_text.delta`…, `reasoning_summary_text.done`, `reasoning_summary_part.done`,
//! `output_item.done`], `output_item.added`, `content_part.added`, `output_text.delta`…,
//! `output_text.done`, `content_part.done`, `output_item.done`, `response.completed` (with the
//! full `response` incl. `output` and `usage`). A tool call replaces the content part with
//! `function_call_arguments.delta/done`. Every event carries `sequence_number`.
//!
//! JSON is written straight into one buffer (no `serde_json::Value` trees): rendering is the
//! simulator's hot path and must cost a few microseconds per answer.

use super::turn::{Plan, Reply};
use bytes::Bytes;
use std::fmt::Write as _;

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
    /// The request's `prompt_cache_key`, echoed in the response object as the real backend
    /// echoes the request's fields (docs/fidelity.md).
    pub prompt_cache_key: Option<&'a str>,
    /// The reasoning item's `encrypted_content`, minted for the serving account.
    pub encrypted: Option<String>,
    /// List the items in `response.completed`'s `output` (else `[]`, the real backend's
    /// routine answer).
    pub completed_output: bool,
    /// [`super::options::FaultKind::HugeEvent`]: one extra text delta of this many bytes.
    pub huge_delta: Option<usize>,
}

/// A rendered SSE body and where each event's frame ends.
pub(crate) struct Frames {
    /// The whole body.
    pub body: Bytes,
    /// End offset of every frame in `body`.
    pub ends: Vec<usize>,
}

impl Frames {
    /// The first `n` frames (at most all but the last), then one `event` of JSON `data` whose
    /// `sequence_number` is set to follow them: a stream that fails midway.
    pub fn cut_with(&self, n: usize, mut data: serde_json::Value) -> Frames {
        let n = n.min(self.ends.len().saturating_sub(1));
        let keep = if n == 0 { 0 } else { self.ends[n - 1] };
        data["sequence_number"] = n.into();
        let ty = data["type"].as_str().unwrap_or("error").to_owned();
        let mut out = self.body[..keep].to_vec();
        out.extend_from_slice(format!("event: {ty}\ndata: {data}\n\n").as_bytes());
        let mut ends = self.ends[..n].to_vec();
        ends.push(out.len());
        Frames {
            body: Bytes::from(out),
            ends,
        }
    }

    /// The frames one by one (zero-copy slices of the body).
    pub fn split(&self) -> Vec<Bytes> {
        let mut start = 0;
        self.ends
            .iter()
            .map(|&end| {
                let f = self.body.slice(start..end);
                start = end;
                f
            })
            .collect()
    }
}

/// Appends `s` as a JSON string literal.
fn quoted(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Builds an SSE body event by event.
struct Sse {
    /// The body so far.
    out: String,
    /// End offset of every finished frame.
    ends: Vec<usize>,
    /// `sequence_number` of the next event.
    seq: usize,
}

impl Sse {
    /// Starts an event: `event: TYPE\ndata: {"type":"TYPE","sequence_number":N` — the caller
    /// appends `,"field":…` pairs and calls [`Sse::end`].
    fn begin(&mut self, ty: &str) -> &mut String {
        let _ = write!(
            self.out,
            "event: {ty}\ndata: {{\"type\":\"{ty}\",\"sequence_number\":{}",
            self.seq
        );
        self.seq += 1;
        &mut self.out
    }

    fn end(&mut self) {
        self.out.push_str("}\n\n");
        self.ends.push(self.out.len());
    }

    /// An event whose remaining fields are `item_id`, `output_index` and then `rest` (already
    /// JSON, starting with a comma).
    fn item_event(
        &mut self,
        ty: &str,
        item_id: &str,
        index: usize,
        rest: impl FnOnce(&mut String),
    ) {
        let o = self.begin(ty);
        o.push_str(",\"item_id\":");
        quoted(o, item_id);
        let _ = write!(o, ",\"output_index\":{index}");
        rest(o);
        self.end();
    }
}

impl Answer<'_> {
    fn item_id(&self, prefix: &str) -> String {
        format!("{prefix}_{}", self.id.trim_start_matches("resp_"))
    }

    fn usage_json(&self, o: &mut String) {
        let u = self.usage;
        let _ = write!(
            o,
            "{{\"input_tokens\":{},\"input_tokens_details\":{{\"cached_tokens\":{}}},\"output_tokens\":{},\
             \"output_tokens_details\":{{\"reasoning_tokens\":{}}},\"total_tokens\":{}}}",
            u.input,
            u.cached,
            u.output,
            u.reasoning,
            u.input + u.output
        );
    }

    fn reasoning_item(&self, o: &mut String, summary: Option<&str>) {
        o.push_str("{\"id\":");
        quoted(o, &self.item_id("rs"));
        o.push_str(",\"type\":\"reasoning\",\"summary\":[");
        if let Some(s) = summary {
            o.push_str("{\"type\":\"summary_text\",\"text\":");
            quoted(o, s);
            o.push('}');
        }
        o.push(']');
        if let (Some(_), Some(blob)) = (summary, &self.encrypted) {
            o.push_str(",\"encrypted_content\":");
            quoted(o, blob);
        }
        o.push('}');
    }

    fn text_part(o: &mut String, text: &str) {
        o.push_str("{\"type\":\"output_text\",\"text\":");
        quoted(o, text);
        o.push_str(",\"annotations\":[]}");
    }

    fn reply_item(&self, o: &mut String, done: bool) {
        let status = if done { "completed" } else { "in_progress" };
        match &self.plan.reply {
            Reply::Text(text) => {
                o.push_str("{\"id\":");
                quoted(o, &self.item_id("msg"));
                let _ = write!(
                    o,
                    ",\"type\":\"message\",\"status\":\"{status}\",\"role\":\"assistant\",\"content\":["
                );
                if done {
                    Self::text_part(o, text);
                }
                o.push_str("]}");
            }
            Reply::ToolCall { name, arguments } => {
                o.push_str("{\"id\":");
                quoted(o, &self.item_id("fc"));
                let _ = write!(
                    o,
                    ",\"type\":\"function_call\",\"status\":\"{status}\",\"call_id\":"
                );
                quoted(o, &self.item_id("call"));
                o.push_str(",\"name\":");
                quoted(o, name);
                o.push_str(",\"arguments\":");
                quoted(o, if done { arguments } else { "" });
                o.push('}');
            }
        }
    }

    /// Appends the final `output` array.
    fn output(&self, o: &mut String) {
        o.push('[');
        if let Some(s) = &self.plan.summary {
            self.reasoning_item(o, Some(s));
            o.push(',');
        }
        self.reply_item(o, true);
        o.push(']');
    }

    /// Appends the `response` object: `in_progress` without output/usage, or `completed`
    /// with usage and, when `output`, the items.
    fn response_into(&self, o: &mut String, completed: bool, output: bool) {
        o.push_str("{\"id\":");
        quoted(o, &self.id);
        let _ = write!(
            o,
            ",\"object\":\"response\",\"created_at\":{},\"status\":\"{}\",\"background\":false,\
             \"error\":null,\"incomplete_details\":null,\"instructions\":null,\"max_output_tokens\":null,\
             \"metadata\":{{}},\"model\":",
            self.created_at,
            if completed {
                "completed"
            } else {
                "in_progress"
            },
        );
        quoted(o, self.model);
        o.push_str(",\"output\":");
        if completed && output {
            self.output(o);
        } else {
            o.push_str("[]");
        }
        o.push_str(
            ",\"parallel_tool_calls\":true,\"previous_response_id\":null,\"prompt_cache_key\":",
        );
        match self.prompt_cache_key {
            Some(key) => quoted(o, key),
            None => o.push_str("null"),
        }
        o.push_str(
            ",\
             \"reasoning\":{\"effort\":null,\"summary\":null},\"store\":false,\"temperature\":1.0,\
             \"text\":{\"format\":{\"type\":\"text\"}},\"tool_choice\":\"auto\",\"tools\":[],\"top_p\":1.0,\
             \"truncation\":\"disabled\",\"user\":null,\"usage\":",
        );
        if completed {
            self.usage_json(o);
        } else {
            o.push_str("null");
        }
        o.push('}');
    }

    /// The final response object as JSON text (the non-streaming answer), with its items.
    pub fn response(&self, completed: bool) -> String {
        let mut o = String::with_capacity(1024);
        self.response_into(&mut o, completed, true);
        o
    }

    /// The whole SSE stream.
    pub fn sse(&self) -> Frames {
        let mut s = Sse {
            out: String::with_capacity(4096),
            ends: Vec::with_capacity(32),
            seq: 0,
        };
        for ty in ["response.created", "response.in_progress"] {
            let o = s.begin(ty);
            o.push_str(",\"response\":");
            self.response_into(o, false, false);
            s.end();
        }
        let mut index = 0;
        if let Some(summary) = &self.plan.summary {
            self.reasoning_events(&mut s, summary);
            index = 1;
        }
        let o = s.begin("response.output_item.added");
        let _ = write!(o, ",\"output_index\":{index},\"item\":");
        self.reply_item(o, false);
        s.end();
        match &self.plan.reply {
            Reply::Text(text) => self.text_events(&mut s, index, text),
            Reply::ToolCall { arguments, .. } => {
                let id = self.item_id("fc");
                s.item_event("response.function_call_arguments.delta", &id, index, |o| {
                    o.push_str(",\"delta\":");
                    quoted(o, arguments);
                });
                s.item_event("response.function_call_arguments.done", &id, index, |o| {
                    o.push_str(",\"arguments\":");
                    quoted(o, arguments);
                });
            }
        }
        let o = s.begin("response.output_item.done");
        let _ = write!(o, ",\"output_index\":{index},\"item\":");
        self.reply_item(o, true);
        s.end();
        let o = s.begin("response.completed");
        o.push_str(",\"response\":");
        self.response_into(o, true, self.completed_output);
        s.end();
        Frames {
            body: Bytes::from(s.out),
            ends: s.ends,
        }
    }

    fn reasoning_events(&self, s: &mut Sse, summary: &str) {
        let id = self.item_id("rs");
        let o = s.begin("response.output_item.added");
        o.push_str(",\"output_index\":0,\"item\":");
        self.reasoning_item(o, None);
        s.end();
        let part = |o: &mut String, text: &str| {
            o.push_str(",\"summary_index\":0,\"part\":{\"type\":\"summary_text\",\"text\":");
            quoted(o, text);
            o.push('}');
        };
        s.item_event("response.reasoning_summary_part.added", &id, 0, |o| {
            part(o, "")
        });
        for d in deltas(summary) {
            s.item_event("response.reasoning_summary_text.delta", &id, 0, |o| {
                o.push_str(",\"summary_index\":0,\"delta\":");
                quoted(o, d);
            });
        }
        s.item_event("response.reasoning_summary_text.done", &id, 0, |o| {
            o.push_str(",\"summary_index\":0,\"text\":");
            quoted(o, summary);
        });
        s.item_event("response.reasoning_summary_part.done", &id, 0, |o| {
            part(o, summary)
        });
        let o = s.begin("response.output_item.done");
        o.push_str(",\"output_index\":0,\"item\":");
        self.reasoning_item(o, Some(summary));
        s.end();
    }

    fn text_events(&self, s: &mut Sse, index: usize, text: &str) {
        let id = self.item_id("msg");
        let part = |o: &mut String, t: &str| {
            o.push_str(",\"content_index\":0,\"part\":");
            Self::text_part(o, t);
        };
        s.item_event("response.content_part.added", &id, index, |o| part(o, ""));
        for d in deltas(text) {
            s.item_event("response.output_text.delta", &id, index, |o| {
                o.push_str(",\"content_index\":0,\"delta\":");
                quoted(o, d);
            });
        }
        if let Some(n) = self.huge_delta {
            s.item_event("response.output_text.delta", &id, index, |o| {
                o.push_str(",\"content_index\":0,\"delta\":\"");
                o.extend(std::iter::repeat_n('x', n));
                o.push('"');
            });
        }
        s.item_event("response.output_text.done", &id, index, |o| {
            o.push_str(",\"content_index\":0,\"text\":");
            quoted(o, text);
        });
        s.item_event("response.content_part.done", &id, index, |o| part(o, text));
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn deltas_concatenate_to_the_text() {
        let t = "Hello big world.";
        assert_eq!(deltas(t).concat(), t);
        assert_eq!(deltas(t).len(), 3);
    }

    fn parsed(frames: &Frames) -> Vec<Value> {
        frames
            .split()
            .iter()
            .map(|f| {
                let text = std::str::from_utf8(f).expect("utf8");
                let (head, data) = text.split_once("\ndata: ").expect("data line");
                let v: Value = serde_json::from_str(data.trim_end()).expect("valid JSON");
                assert_eq!(head.strip_prefix("event: "), v["type"].as_str());
                v
            })
            .collect()
    }

    #[test]
    fn every_frame_is_valid_json_even_with_characters_that_need_escaping() {
        for reply in [
            Reply::Text("a \"quoted\"\n\\ \u{1} é".into()),
            Reply::ToolCall {
                name: "t\"x".into(),
                arguments: r#"{"cmd":"echo \"hi\"\n"}"#.into(),
            },
        ] {
            let plan = Plan {
                reply,
                summary: Some("think \"hard\"".into()),
                output_tokens: 9,
                reasoning_tokens: 3,
            };
            let a = Answer {
                id: "resp_1".into(),
                model: "m\"1",
                created_at: 5,
                plan: &plan,
                usage: Usage {
                    input: 10,
                    cached: 2,
                    output: 9,
                    reasoning: 3,
                },
                encrypted: Some("gAAAAB-x".into()),
                prompt_cache_key: Some("k\"1"),
                completed_output: true,
                huge_delta: None,
            };
            let ev = parsed(&a.sse());
            for (i, e) in ev.iter().enumerate() {
                assert_eq!(e["sequence_number"], i);
            }
            let last = ev.last().expect("events");
            assert_eq!(last["response"]["usage"]["total_tokens"], 19);
            assert_eq!(last["response"]["model"], "m\"1");
            assert_eq!(ev[0]["response"]["prompt_cache_key"], "k\"1", "echoed");
            assert_eq!(last["response"]["prompt_cache_key"], "k\"1", "echoed");
            let whole: Value = serde_json::from_str(&a.response(true)).expect("json");
            assert_eq!(&whole, &last["response"]);
        }
    }
}
