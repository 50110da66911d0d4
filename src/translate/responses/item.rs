//! Output items of a Responses stream: their kind and their whole text, used to reconcile
//! `response.output_item.done` items with the deltas already emitted.

use serde_json::Value;

/// What kind of output item a slot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Message,
    Reasoning,
    Call,
    Other,
}

/// The kind of an output item by its `type`.
pub(super) fn kind_of(item: &Value) -> Kind {
    match item["type"].as_str() {
        Some("message") => Kind::Message,
        Some("reasoning") => Kind::Reasoning,
        Some("function_call" | "custom_tool_call") => Kind::Call,
        _ => Kind::Other,
    }
}

/// A done item's whole text: message text, reasoning summary, or call arguments.
pub(super) fn full_text(item: &Value) -> String {
    let texts = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|parts| {
                parts
                    .iter()
                    .filter_map(|p| p["text"].as_str().or(p["refusal"].as_str()))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    match kind_of(item) {
        Kind::Message => texts(&item["content"]).concat(),
        Kind::Reasoning => {
            let summary = texts(&item["summary"]);
            if summary.is_empty() {
                texts(&item["content"]).join("\n\n")
            } else {
                summary.join("\n\n")
            }
        }
        Kind::Call => item["arguments"]
            .as_str()
            .or(item["input"].as_str())
            .unwrap_or("")
            .to_owned(),
        Kind::Other => String::new(),
    }
}

/// What `full` adds to what was already emitted (nothing if they disagree).
pub(super) fn remainder(emitted: &str, full: &str) -> String {
    full.strip_prefix(emitted).unwrap_or("").to_owned()
}

/// A string field, or "" when absent or not a string.
pub(super) fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}
