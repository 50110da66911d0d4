//! Realistic upstream (Codex Responses SSE) event sequences, shaped like the backend's own
//! streams: `response.created`, item added, content part, deltas, `output_text.done`, item
//! done, `response.completed` with usage — plus failure and premature-close variants.

use serde_json::{Value, json};

const RESP: &str = "resp_68a1c0ffee";
const CREATED_AT: i64 = 1_795_670_210;

fn created() -> Vec<Value> {
    let r = json!({"id": RESP, "object": "response", "created_at": CREATED_AT,
        "status": "in_progress", "model": "gpt-5.5", "output": []});
    vec![
        json!({"type": "response.created", "sequence_number": 0, "response": r}),
        json!({"type": "response.in_progress", "sequence_number": 1, "response": r}),
    ]
}

fn usage(input: u64, cached: u64, output: u64, reasoning: u64) -> Value {
    json!({"input_tokens": input, "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": output, "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": input + output})
}

fn completed(output: Vec<Value>, usage: Value) -> Value {
    json!({"type": "response.completed", "response": {"id": RESP, "object": "response",
        "created_at": CREATED_AT, "status": "completed", "model": "gpt-5.5",
        "output": output, "usage": usage}})
}

/// An assistant message item streamed as `chunks`, at output index `idx`.
fn message(idx: u64, id: &str, chunks: &[&str]) -> (Vec<Value>, Value) {
    let text: String = chunks.concat();
    let done_item = json!({"id": id, "type": "message", "status": "completed", "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}]});
    let mut evs = vec![
        json!({"type": "response.output_item.added", "output_index": idx, "item": {"id": id,
            "type": "message", "status": "in_progress", "role": "assistant", "content": []}}),
        json!({"type": "response.content_part.added", "item_id": id, "output_index": idx,
            "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}}),
    ];
    for c in chunks {
        evs.push(
            json!({"type": "response.output_text.delta", "item_id": id, "output_index": idx,
            "content_index": 0, "delta": c}),
        );
    }
    evs.push(
        json!({"type": "response.output_text.done", "item_id": id, "output_index": idx,
        "content_index": 0, "text": text}),
    );
    evs.push(
        json!({"type": "response.content_part.done", "item_id": id, "output_index": idx,
        "content_index": 0, "part": {"type": "output_text", "text": text}}),
    );
    evs.push(json!({"type": "response.output_item.done", "output_index": idx, "item": done_item}));
    (evs, done_item)
}

/// Plain text answer: "Hello! How can I help you today?"
pub fn text() -> Vec<Value> {
    let mut evs = created();
    let (m, item) = message(0, "msg_01", &["Hello", "! How can I", " help you today?"]);
    evs.extend(m);
    evs.push(completed(vec![item], usage(21, 0, 11, 0)));
    evs
}

/// A reasoning item with two summary parts, then a text answer; cached input.
pub fn reasoning_text() -> Vec<Value> {
    let mut evs = created();
    let rid = "rs_01";
    evs.push(
        json!({"type": "response.output_item.added", "output_index": 0,
        "item": {"id": rid, "type": "reasoning", "summary": []}}),
    );
    let parts = [["**Greeting**", " the user"], ["Keep it", " short."]];
    for (si, part) in parts.iter().enumerate() {
        evs.push(
            json!({"type": "response.reasoning_summary_part.added", "item_id": rid,
            "output_index": 0, "summary_index": si, "part": {"type": "summary_text", "text": ""}}),
        );
        for d in part {
            evs.push(
                json!({"type": "response.reasoning_summary_text.delta", "item_id": rid,
                "output_index": 0, "summary_index": si, "delta": d}),
            );
        }
        evs.push(
            json!({"type": "response.reasoning_summary_text.done", "item_id": rid,
            "output_index": 0, "summary_index": si, "text": part.concat()}),
        );
    }
    let reasoning_item = json!({"id": rid, "type": "reasoning", "encrypted_content": "gAAAAB-enc-1",
        "summary": [{"type": "summary_text", "text": "**Greeting** the user"},
                    {"type": "summary_text", "text": "Keep it short."}]});
    evs.push(
        json!({"type": "response.output_item.done", "output_index": 0, "item": reasoning_item}),
    );
    let (m, item) = message(1, "msg_02", &["Hi", " there."]);
    evs.extend(m);
    evs.push(completed(
        vec![reasoning_item, item],
        usage(1200, 1024, 90, 64),
    ));
    evs
}

/// A function call `get_weather({"city":"Paris"})` with streamed arguments.
pub fn tool_call() -> Vec<Value> {
    let mut evs = created();
    let (id, call) = ("fc_01", "call_QXh0b3e1");
    evs.push(
        json!({"type": "response.output_item.added", "output_index": 0, "item": {"id": id,
        "type": "function_call", "status": "in_progress", "arguments": "", "call_id": call,
        "name": "get_weather"}}),
    );
    for d in ["{\"ci", "ty\":\"Pa", "ris\"}"] {
        evs.push(
            json!({"type": "response.function_call_arguments.delta", "item_id": id,
            "output_index": 0, "delta": d}),
        );
    }
    let args = "{\"city\":\"Paris\"}";
    evs.push(
        json!({"type": "response.function_call_arguments.done", "item_id": id,
        "output_index": 0, "arguments": args}),
    );
    let item = json!({"id": id, "type": "function_call", "status": "completed", "arguments": args,
        "call_id": call, "name": "get_weather"});
    evs.push(json!({"type": "response.output_item.done", "output_index": 0, "item": item}));
    evs.push(completed(vec![item], usage(80, 0, 18, 0)));
    evs
}

/// Some text, then `response.failed` (upstream overloaded).
pub fn failure() -> Vec<Value> {
    let mut evs = created();
    let (m, _) = message(0, "msg_03", &["Partial"]);
    evs.extend(m.into_iter().take(3));
    evs.push(json!({"type": "response.failed", "response": {"id": RESP, "status": "failed",
        "error": {"code": "server_is_overloaded", "message": "Our servers are currently overloaded. Please try again later."}}}));
    evs
}

/// Some text, then the stream just stops (no terminal event).
pub fn premature() -> Vec<Value> {
    let mut evs = created();
    let (m, _) = message(0, "msg_04", &["Once upon", " a time"]);
    evs.extend(m.into_iter().take(4));
    evs
}

/// The minimal answer Codex accepts: only the done item and `response.completed`.
pub fn items_only() -> Vec<Value> {
    vec![
        json!({"type": "response.output_item.done", "item": {"type": "message", "role": "assistant",
            "content": [{"type": "output_text", "text": "hello from mock"}]}}),
        json!({"type": "response.completed", "response": {"id": "resp_1"}}),
    ]
}

/// `response.incomplete` after some text (hit max_output_tokens).
pub fn incomplete() -> Vec<Value> {
    let mut evs = created();
    let (m, _) = message(0, "msg_05", &["A very long"]);
    evs.extend(m.into_iter().take(3));
    evs.push(
        json!({"type": "response.incomplete", "response": {"id": RESP, "status": "incomplete",
        "incomplete_details": {"reason": "max_output_tokens"}, "usage": usage(10, 0, 64, 0)}}),
    );
    evs
}
