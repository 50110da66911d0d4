//! Protocol translation (Chat Completions and Messages ⇄ Responses): snapshot tests of each
//! direction on realistic inputs (the captured client fixtures) and realistic upstream event
//! sequences, error shapes, and property tests that no input panics a translator and every
//! stream ends with a terminal frame.
//!
//! Run: `cargo test --test it translate::` (property tests: `translate::props::`).

mod bounds;
mod chat;
mod daemon;
mod errors;
mod messages;
mod props;
mod sdk;
mod upstream;

use bytes::Bytes;
use serde_json::{Value, json};

/// Snapshot settings: YAML files in the top-level `snapshots/`, named as every snapshot is
/// (`<test binary>__<module>__<name>.snap`, checked by
/// `snapshots::every_snapshot_is_referenced_and_none_is_pending`).
fn settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_snapshot_path(concat!(env!("CARGO_MANIFEST_DIR"), "/snapshots"));
    s.set_prepend_module_to_snapshot(true);
    s
}

/// SSE frames as readable values: `{event?, data}` with the data parsed as JSON when it is.
fn readable(frames: &[Bytes]) -> Vec<Value> {
    frames
        .iter()
        .map(|f| {
            let text = String::from_utf8_lossy(f);
            let mut event = None;
            let mut data = String::new();
            for line in text.lines() {
                if let Some(e) = line.strip_prefix("event: ") {
                    event = Some(e.to_owned());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data.push_str(d);
                } else if line.starts_with(':') {
                    data.push_str(line);
                }
            }
            let data = serde_json::from_str::<Value>(&data).unwrap_or(Value::String(data));
            match event {
                Some(e) => json!({"event": e, "data": data}),
                None => json!({ "data": data }),
            }
        })
        .collect()
}
