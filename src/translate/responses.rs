//! The Responses SSE vocabulary, normalised: upstream events in, a short list of `Happening`s
//! (text, reasoning, tool-call pieces, the end) out, shared by both streaming translators and
//! by `collect`.
//!
//! Upstream may stream deltas, or only send whole items in `response.output_item.done`, or only
//! list them in `response.completed` (docs/protocol.md §5: the `done` item is the real answer). The
//! `Normalizer` reconciles the three: it remembers what it already emitted per output item and
//! emits only the missing remainder, so a client sees every character exactly once.

use super::{StreamEnd, TranslateError};
use item::{Kind, full_text, kind_of, remainder, str_of};
use serde_json::Value;
use std::collections::HashMap;

mod item;

/// Token usage reported by upstream: the one usage record the pool sums.
pub use rotor_actors::Usage;

/// Reads `response.usage` of a `response.completed` / `response.incomplete`; `None` when
/// upstream sent none.
pub fn usage_of(response: &Value) -> Option<Usage> {
    let u = response.get("usage").filter(|u| u.is_object())?;
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    Some(Usage {
        input_tokens: n(&u["input_tokens"]),
        cached_tokens: n(&u["input_tokens_details"]["cached_tokens"]),
        output_tokens: n(&u["output_tokens"]),
        reasoning_tokens: n(&u["output_tokens_details"]["reasoning_tokens"]),
    })
}

/// How the upstream response ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `response.completed` (or the caller said the stream completed).
    Completed,
    /// `response.incomplete`, with upstream's reason (`max_output_tokens`, `content_filter`).
    Incomplete(String),
    /// `response.failed`, an `error` event, a transport failure or a premature close.
    Failed(TranslateError),
}

/// One normalised step of an upstream response. `item` numbers output items in order of first
/// appearance, so translators can map them to content blocks / tool-call indices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Happening {
    /// Upstream acknowledged the request (`response.created`).
    Created {
        /// Upstream response id, reused for client-visible ids.
        id: Option<String>,
        /// Upstream creation time, unix seconds.
        created_at: Option<i64>,
    },
    /// More assistant text.
    Text { item: usize, delta: String },
    /// More reasoning summary text.
    Reasoning { item: usize, delta: String },
    /// A tool call begins; its arguments follow as `ToolArgs`.
    ToolStart {
        item: usize,
        call_id: String,
        name: String,
    },
    /// More tool-call arguments (a JSON text, in pieces).
    ToolArgs { item: usize, delta: String },
    /// An output item is complete; `signature` carries a reasoning item's encrypted content.
    ItemDone {
        item: usize,
        signature: Option<String>,
    },
    /// The response is over; nothing follows.
    End {
        outcome: Outcome,
        usage: Option<Usage>,
    },
}

/// Per output item: what was already emitted, so `done` items only add the remainder.
#[derive(Debug)]
struct Slot {
    kind: Kind,
    /// Text, reasoning or arguments emitted so far.
    emitted: String,
    /// Arguments received before the call's name was known.
    pending: String,
    /// For calls: whether `ToolStart` was emitted.
    started: bool,
    /// Whether `ItemDone` was emitted.
    closed: bool,
    /// Last reasoning summary part seen, to separate parts with a blank line.
    summary_index: Option<u64>,
}

/// Turns upstream events into `Happening`s; see the module docs.
#[derive(Debug, Default)]
pub struct Normalizer {
    slots: Vec<Slot>,
    by_index: HashMap<u64, usize>,
    by_id: HashMap<String, usize>,
    created: bool,
    ended: bool,
}

impl Normalizer {
    /// A normaliser for one upstream response.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether an `End` was already produced (later events are ignored).
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// The happenings for one upstream event (`data:` JSON of one SSE frame).
    pub fn on_event(&mut self, ev: &Value) -> Vec<Happening> {
        let mut out = Vec::new();
        if self.ended {
            return out;
        }
        let ty = ev.get("type").and_then(Value::as_str).unwrap_or("");
        match ty {
            "response.created" | "response.in_progress" | "response.queued" => {
                self.created(&ev["response"], &mut out)
            }
            "response.output_item.added" => self.item_added(ev, &mut out),
            "response.output_text.delta" | "response.refusal.delta" => {
                let i = self.slot(ev, Kind::Message);
                self.text(i, str_of(&ev["delta"]), &mut out);
            }
            "response.reasoning_summary_text.delta" | "response.reasoning_text.delta" => {
                let i = self.slot(ev, Kind::Reasoning);
                let part = ev["summary_index"]
                    .as_u64()
                    .or(ev["content_index"].as_u64());
                self.reasoning(i, part, str_of(&ev["delta"]), &mut out);
            }
            "response.function_call_arguments.delta" | "response.custom_tool_call_input.delta" => {
                let i = self.slot(ev, Kind::Call);
                self.args(i, str_of(&ev["delta"]), &mut out);
            }
            "response.output_item.done" => {
                let i = self.slot(ev, kind_of(&ev["item"]));
                self.item_done(i, &ev["item"], &mut out);
            }
            "response.completed" | "response.done" => self.completed(&ev["response"], &mut out),
            "response.incomplete" => {
                let r = &ev["response"];
                let reason = str_of(&r["incomplete_details"]["reason"]);
                let reason = if reason.is_empty() { "unknown" } else { reason };
                self.close_all(&mut out);
                self.end(Outcome::Incomplete(reason.into()), usage_of(r), &mut out);
            }
            "response.failed" => {
                let e = &ev["response"]["error"];
                let err = failure(e["code"].as_str(), e["message"].as_str());
                self.end(Outcome::Failed(err), None, &mut out);
            }
            "error" => {
                let e = if ev["error"].is_object() {
                    &ev["error"]
                } else {
                    ev
                };
                let err = failure(e["code"].as_str(), e["message"].as_str());
                self.end(Outcome::Failed(err), None, &mut out);
            }
            _ => {}
        }
        out
    }

    /// The happenings that end the response when the caller's stream ended (a no-op if
    /// upstream already ended it).
    pub fn finish(&mut self, outcome: StreamEnd) -> Vec<Happening> {
        let mut out = Vec::new();
        if self.ended {
            return out;
        }
        match outcome {
            StreamEnd::Completed => {
                self.close_all(&mut out);
                self.end(Outcome::Completed, None, &mut out);
            }
            StreamEnd::Failed { message } => {
                let err = TranslateError::upstream_failed(None, &message);
                self.end(Outcome::Failed(err), None, &mut out);
            }
            StreamEnd::PrematureClose => {
                let err = TranslateError::premature_close();
                self.end(Outcome::Failed(err), None, &mut out);
            }
        }
        out
    }

    fn created(&mut self, response: &Value, out: &mut Vec<Happening>) {
        if !self.created {
            self.created = true;
            out.push(Happening::Created {
                id: response["id"].as_str().map(str::to_owned),
                created_at: response["created_at"].as_i64(),
            });
        }
    }

    fn item_added(&mut self, ev: &Value, out: &mut Vec<Happening>) {
        let item = &ev["item"];
        let i = self.slot(ev, kind_of(item));
        if self.slots[i].kind == Kind::Call {
            self.start_call(i, item, out);
        }
    }

    /// Finds the slot an event belongs to (by output index, then item id), creating it if new.
    fn slot(&mut self, ev: &Value, kind: Kind) -> usize {
        let index = ev["output_index"].as_u64();
        let id = ev["item_id"].as_str().or(ev["item"]["id"].as_str());
        let found = index
            .and_then(|x| self.by_index.get(&x))
            .or_else(|| id.and_then(|x| self.by_id.get(x)))
            .copied();
        let i = match found {
            Some(i) => i,
            None => {
                self.slots.push(Slot {
                    kind,
                    emitted: String::new(),
                    pending: String::new(),
                    started: false,
                    closed: false,
                    summary_index: None,
                });
                self.slots.len() - 1
            }
        };
        if let Some(x) = index {
            self.by_index.entry(x).or_insert(i);
        }
        if let Some(x) = id {
            self.by_id.entry(x.to_owned()).or_insert(i);
        }
        if self.slots[i].kind == Kind::Other {
            self.slots[i].kind = kind;
        }
        i
    }

    fn text(&mut self, i: usize, delta: &str, out: &mut Vec<Happening>) {
        if delta.is_empty() || self.slots[i].kind != Kind::Message {
            return;
        }
        self.slots[i].emitted.push_str(delta);
        out.push(Happening::Text {
            item: i,
            delta: delta.to_owned(),
        });
    }

    fn reasoning(&mut self, i: usize, part: Option<u64>, delta: &str, out: &mut Vec<Happening>) {
        let slot = &mut self.slots[i];
        if delta.is_empty() || slot.kind != Kind::Reasoning {
            return;
        }
        let mut text = String::new();
        if part.is_some() && slot.summary_index.is_some() && part != slot.summary_index {
            text.push_str("\n\n");
        }
        slot.summary_index = part.or(slot.summary_index);
        text.push_str(delta);
        slot.emitted.push_str(&text);
        out.push(Happening::Reasoning {
            item: i,
            delta: text,
        });
    }

    fn args(&mut self, i: usize, delta: &str, out: &mut Vec<Happening>) {
        let slot = &mut self.slots[i];
        if delta.is_empty() || slot.kind != Kind::Call {
            return;
        }
        if slot.started {
            slot.emitted.push_str(delta);
            out.push(Happening::ToolArgs {
                item: i,
                delta: delta.to_owned(),
            });
        } else {
            slot.pending.push_str(delta);
        }
    }

    /// Emits `ToolStart` (and arguments that arrived early) once the call's name is known.
    fn start_call(&mut self, i: usize, item: &Value, out: &mut Vec<Happening>) {
        let name = str_of(&item["name"]);
        let slot = &mut self.slots[i];
        if slot.started || name.is_empty() {
            return;
        }
        let call_id = item["call_id"]
            .as_str()
            .or(item["id"].as_str())
            .unwrap_or("call_0");
        slot.started = true;
        out.push(Happening::ToolStart {
            item: i,
            call_id: call_id.to_owned(),
            name: name.to_owned(),
        });
        let pending = std::mem::take(&mut slot.pending);
        self.args(i, &pending, out);
    }

    fn item_done(&mut self, i: usize, item: &Value, out: &mut Vec<Happening>) {
        if self.slots[i].closed {
            return;
        }
        let full = full_text(item);
        match self.slots[i].kind {
            Kind::Message => {
                let rest = remainder(&self.slots[i].emitted, &full);
                self.text(i, &rest, out);
            }
            Kind::Reasoning => {
                let rest = remainder(&self.slots[i].emitted, &full);
                self.reasoning(i, None, &rest, out);
            }
            Kind::Call => {
                self.start_call(i, item, out);
                let rest = remainder(&self.slots[i].emitted, &full);
                self.args(i, &rest, out);
            }
            Kind::Other => {}
        }
        self.close(i, item["encrypted_content"].as_str(), out);
    }

    fn close(&mut self, i: usize, signature: Option<&str>, out: &mut Vec<Happening>) {
        let slot = &mut self.slots[i];
        if slot.closed || slot.kind == Kind::Other || (slot.kind == Kind::Call && !slot.started) {
            slot.closed = true;
            return;
        }
        slot.closed = true;
        out.push(Happening::ItemDone {
            item: i,
            signature: signature.map(str::to_owned),
        });
    }

    fn close_all(&mut self, out: &mut Vec<Happening>) {
        for i in 0..self.slots.len() {
            self.close(i, None, out);
        }
    }

    /// `response.completed`: items only listed there are emitted first, then the end.
    fn completed(&mut self, response: &Value, out: &mut Vec<Happening>) {
        let items = response["output"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        for (n, item) in items.iter().enumerate() {
            let seen = match item["id"].as_str() {
                Some(id) => self.by_id.contains_key(id),
                None => n < self.slots.len(),
            };
            if !seen {
                let ev = serde_json::json!({"item": item});
                let i = self.slot(&ev, kind_of(item));
                if self.slots[i].kind == Kind::Call {
                    self.start_call(i, item, out);
                }
                self.item_done(i, item, out);
            }
        }
        self.close_all(out);
        let outcome = match response["status"].as_str() {
            Some("incomplete") => {
                let reason = response["incomplete_details"]["reason"].as_str();
                Outcome::Incomplete(reason.unwrap_or("unknown").to_owned())
            }
            _ => Outcome::Completed,
        };
        self.end(outcome, usage_of(response), out);
    }

    fn end(&mut self, outcome: Outcome, usage: Option<Usage>, out: &mut Vec<Happening>) {
        self.ended = true;
        out.push(Happening::End { outcome, usage });
    }
}

/// The error for an upstream failure event; message defaulted so it is never empty.
fn failure(code: Option<&str>, message: Option<&str>) -> TranslateError {
    let message = match (message, code) {
        (Some(m), _) if !m.is_empty() => m.to_owned(),
        (_, Some(c)) => format!("upstream failed: {c}"),
        _ => "upstream failed without a message".to_owned(),
    };
    TranslateError::upstream_failed(code, &message)
}
