//! Structure-aware JSON generators shared by the fuzz targets: arbitrary JSON whose object keys
//! are drawn mostly from the vocabulary of the protocols being parsed, so generated documents
//! reach deep into the parsers instead of being rejected at the first field.

use proptest::prelude::*;
use serde_json::{Map, Value};

/// Keys the Responses, Chat, Messages, usage and legacy formats use.
const KEYS: &[&str] = &[
    "type",
    "model",
    "stream",
    "input",
    "messages",
    "role",
    "content",
    "text",
    "delta",
    "item",
    "item_id",
    "output_index",
    "content_index",
    "response",
    "usage",
    "input_tokens",
    "output_tokens",
    "status",
    "error",
    "code",
    "message",
    "tools",
    "tool_choice",
    "name",
    "arguments",
    "call_id",
    "id",
    "system",
    "max_tokens",
    "temperature",
    "stream_options",
    "include_usage",
    "image_url",
    "url",
    "source",
    "data",
    "media_type",
    "tool_use_id",
    "thinking",
    "reasoning",
    "effort",
    "summary",
    "output",
    "function",
    "parameters",
    "rate_limit",
    "primary_window",
    "secondary_window",
    "used_percent",
    "limit_window_seconds",
    "reset_after_seconds",
    "reset_at",
    "limit_reached",
    "allowed",
    "plan_type",
    "additional_rate_limits",
    "metered_feature",
    "limit_name",
    "credits",
    "has_credits",
    "unlimited",
    "balance",
    "code_review_rate_limit",
    "token",
    "refreshToken",
    "email",
    "cachedQuota",
    "quotaFetchedAt",
    "rate_limit_until",
    "accountId",
    "prompt_cache_key",
    "instructions",
    "metadata",
    "stop",
    "n",
    "response_format",
    "input_tokens_details",
    "cached_tokens",
    "output_tokens_details",
    "reasoning_tokens",
    "incomplete_details",
];

/// Strings that mean something to some parser (event types, roles, statuses, models).
const WORDS: &[&str] = &[
    "response.created",
    "response.output_text.delta",
    "response.completed",
    "response.failed",
    "response.incomplete",
    "response.output_item.added",
    "response.output_item.done",
    "response.function_call_arguments.delta",
    "response.reasoning_summary_text.delta",
    "response.reasoning_text.delta",
    "message",
    "function_call",
    "reasoning",
    "user",
    "assistant",
    "system",
    "tool",
    "developer",
    "text",
    "input_text",
    "output_text",
    "image",
    "image_url",
    "tool_use",
    "tool_result",
    "function",
    "auto",
    "none",
    "required",
    "gpt-5.5",
    "claude-sonnet-4",
    "gpt-5.3-codex-spark",
    "active",
    "rate_limited",
    "expired",
    "banned",
    "2026-01-01T00:00:00Z",
    "data:image/png;base64,AAAA",
    "",
    "\u{0}",
    "é😀",
];

/// A leaf: null, bool, numbers (including extreme ones), vocabulary or random strings.
fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        (-5i64..200).prop_map(Value::from),
        prop::sample::select(WORDS).prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ]
}

/// A key: usually from the vocabulary, sometimes random.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(KEYS).prop_map(str::to_owned),
        1 => "[a-z_]{1,8}",
    ]
}

/// Arbitrary JSON up to a few levels deep, biased towards protocol keys.
pub fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..7)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A JSON object (most parsers reject anything else at once).
pub fn object() -> impl Strategy<Value = Value> {
    prop::collection::vec((key(), value()), 0..8)
        .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>()))
}

/// Applies byte-level mutations (flip, delete, insert, truncate) to a valid document.
pub fn mutate(base: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let len = base.len().max(1);
    prop::collection::vec((0..len, any::<u8>(), 0u8..4), 1..6).prop_map(move |edits| {
        let mut b = base.clone();
        for (pos, byte, op) in edits {
            let at = pos.min(b.len());
            match op {
                0 if at < b.len() => b[at] = byte,
                1 if at < b.len() => {
                    b.remove(at);
                }
                2 => b.insert(at, byte),
                _ => b.truncate(at),
            }
        }
        b
    })
}
