//! Tool names and call ids longer than the backend takes ([`MAX_LEN`] characters): the real
//! backend answers `400 string_above_max_length` (docs/protocol.md §13.1), and Claude Code's
//! MCP tools (`mcp__<server>__<tool>`) routinely pass the limit. [`shorten`] replaces each such
//! string in a Responses body by a short stand-in and returns the [`ToolNames`] that map the
//! answer back, so the client only ever sees its own names.
//!
//! The stand-in is deterministic — a readable part, `_`, and 8 hex digits of a SHA-256 of the
//! original — so the same name or id gets the same stand-in on every turn of a conversation
//! (the history a client sends back is shortened the same way, and upstream's prompt cache still
//! matches). The readable part of an `mcp__server__tool` name is `mcp__` and the tool's own
//! name; of anything else, its first characters. A stand-in that would equal another name of
//! the request is salted until it does not, so the mapping is reversible within the request.
//!
//! Only a body [`needs_shortening`] says has a long name is touched: that is a substring scan,
//! and every other body keeps its bytes.

use memchr::memmem;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;

/// Longest tool name or call id the backend takes, in characters.
pub const MAX_LEN: usize = 64;

/// Hex digits of the hash a stand-in ends with.
const HASH_HEX: usize = 8;

/// The keys whose string values are limited.
const KEYS: [&[u8]; 2] = [b"\"name\"", b"\"call_id\""];

/// The originals of one request's stand-ins; empty (and free) for nearly every request.
#[derive(Debug, Clone, Default)]
pub struct ToolNames(Option<Arc<Vec<(String, String)>>>);

impl ToolNames {
    /// Whether nothing was shortened.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// The original of `short`, if it is a stand-in.
    pub fn original(&self, short: &str) -> Option<&str> {
        let pairs = self.0.as_deref()?;
        pairs
            .iter()
            .find(|(s, _)| s == short)
            .map(|(_, o)| o.as_str())
    }

    /// `bytes` (complete SSE events or JSON) with every stand-in, as a JSON string, replaced by
    /// its original; the same bytes when none occurs.
    pub fn restore_bytes(&self, bytes: bytes::Bytes) -> bytes::Bytes {
        let Some(pairs) = self.0.as_deref() else {
            return bytes;
        };
        let mut out: Option<Vec<u8>> = None;
        for (short, original) in pairs {
            let quoted = format!("\"{short}\"");
            let src = out.as_deref().unwrap_or(&bytes);
            if memmem::find(src, quoted.as_bytes()).is_none() {
                continue;
            }
            let with = serde_json::to_string(original).unwrap_or_else(|_| quoted.clone());
            out = Some(replace_all(src, quoted.as_bytes(), with.as_bytes()));
        }
        out.map_or(bytes, bytes::Bytes::from)
    }

    /// Replaces every string of `v` that is a stand-in by its original.
    pub fn restore_value(&self, v: &mut Value) {
        if self.is_empty() {
            return;
        }
        match v {
            Value::String(s) => {
                if let Some(o) = self.original(s) {
                    *s = o.to_owned();
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|i| self.restore_value(i)),
            Value::Object(map) => map.values_mut().for_each(|i| self.restore_value(i)),
            _ => {}
        }
    }
}

/// `src` with every `from` replaced by `to`.
fn replace_all(src: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(src.len() + to.len());
    let mut at = 0;
    for i in memmem::find_iter(src, from) {
        out.extend_from_slice(&src[at..i]);
        out.extend_from_slice(to);
        at = i + from.len();
    }
    out.extend_from_slice(&src[at..]);
    out
}

/// Whether `body` may hold a `name` or `call_id` string longer than [`MAX_LEN`]: a substring
/// scan for the two keys, measuring the raw string after each. Raw bytes are never fewer than
/// characters, so `false` is certain; `true` only means [`shorten`] should look.
pub fn needs_shortening(body: &[u8]) -> bool {
    KEYS.iter().any(|key| {
        memmem::find_iter(body, key).any(|at| raw_string_len(&body[at + key.len()..]) > MAX_LEN)
    })
}

/// Length in bytes of the JSON string value that `rest` (what follows a key) starts with after
/// `:` and whitespace; 0 when the value is not a string.
fn raw_string_len(rest: &[u8]) -> usize {
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while rest.get(*i).is_some_and(u8::is_ascii_whitespace) {
            *i += 1;
        }
    };
    skip_ws(&mut i);
    if rest.get(i) != Some(&b':') {
        return 0;
    }
    i += 1;
    skip_ws(&mut i);
    if rest.get(i) != Some(&b'"') {
        return 0;
    }
    let start = i + 1;
    let mut j = start;
    while let Some(&b) = rest.get(j) {
        match b {
            b'"' => return j - start,
            b'\\' => j += 2,
            _ => j += 1,
        }
        if j - start > MAX_LEN {
            return j - start;
        }
    }
    0
}

/// Shortens, in place, every tool name (`tools[].name`, `tool_choice.name`) and every name and
/// call id of an `input` item longer than [`MAX_LEN`] characters; returns what maps them back.
pub fn shorten(body: &mut Value) -> ToolNames {
    let mut slots: Vec<&mut String> = Vec::new();
    let Some(obj) = body.as_object_mut() else {
        return ToolNames::default();
    };
    for (key, v) in obj.iter_mut() {
        match (key.as_str(), v) {
            ("tools" | "input", Value::Array(items)) => {
                for item in items.iter_mut().filter_map(Value::as_object_mut) {
                    for (k, v) in item.iter_mut() {
                        if let ("name" | "call_id", Value::String(s)) = (k.as_str(), v) {
                            slots.push(s);
                        }
                    }
                }
            }
            ("tool_choice", Value::Object(choice)) => {
                if let Some(Value::String(s)) = choice.get_mut("name") {
                    slots.push(s);
                }
            }
            _ => {}
        }
    }
    if !slots.iter().any(|s| s.chars().count() > MAX_LEN) {
        return ToolNames::default();
    }
    let mut taken: HashMap<String, String> = slots
        .iter()
        .filter(|s| s.chars().count() <= MAX_LEN)
        .map(|s| (s.to_string(), s.to_string()))
        .collect();
    let mut short_of: HashMap<String, String> = HashMap::new();
    for s in slots {
        if s.chars().count() <= MAX_LEN {
            continue;
        }
        let short = short_of
            .entry(s.clone())
            .or_insert_with(|| unique_stand_in(s, &mut taken))
            .clone();
        *s = short;
    }
    let pairs = short_of.into_iter().map(|(o, s)| (s, o)).collect();
    ToolNames(Some(Arc::new(pairs)))
}

/// The first stand-in of `original` that no other name of the request uses (`taken`: every
/// name so far, stand-in → original).
fn unique_stand_in(original: &str, taken: &mut HashMap<String, String>) -> String {
    for salt in 0u32.. {
        let s = stand_in(original, salt);
        if !taken.contains_key(&s) {
            taken.insert(s.clone(), original.to_owned());
            return s;
        }
    }
    unreachable!("a 32-bit salt space is never exhausted by one request")
}

/// `original`'s readable part, `_`, and 8 hex digits of its hash (with `salt` after the first
/// try): exactly [`MAX_LEN`] characters or fewer.
pub fn stand_in(original: &str, salt: u32) -> String {
    let mut h = Sha256::new();
    h.update(original.as_bytes());
    if salt > 0 {
        h.update(salt.to_le_bytes());
    }
    let hash: String = h.finalize()[..HASH_HEX / 2]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let budget = MAX_LEN - 1 - HASH_HEX;
    let readable: String = match original.strip_prefix("mcp__") {
        Some(rest) => {
            let tool = rest.rsplit("__").next().unwrap_or(rest);
            format!("mcp__{tool}").chars().take(budget).collect()
        }
        None => original.chars().take(budget).collect(),
    };
    format!("{readable}_{hash}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const MCP: &str =
        "mcp__claude_ai_Some_Very_Long_Server_Name_For_Testing__search_documents_by_query";

    #[test]
    fn long_names_and_ids_get_stand_ins_that_map_back() {
        let long_id = format!("call_{}", "9".repeat(70));
        let mut body = json!({
            "tools": [{"type": "function", "name": MCP}, {"type": "function", "name": "shell"}],
            "tool_choice": {"type": "function", "name": MCP},
            "input": [
                {"type": "function_call", "name": MCP, "call_id": long_id, "arguments": "{}"},
                {"type": "function_call_output", "call_id": long_id, "output": "ok"}
            ]
        });
        let names = shorten(&mut body);
        let short = body["tools"][0]["name"].as_str().expect("name").to_owned();
        assert!(
            short.starts_with("mcp__search_documents_by_query_"),
            "{short}"
        );
        assert!(short.chars().count() <= MAX_LEN);
        assert_eq!(body["tools"][1]["name"], "shell");
        assert_eq!(body["tool_choice"]["name"], short.as_str());
        assert_eq!(body["input"][0]["name"], short.as_str());
        let id = body["input"][0]["call_id"].as_str().expect("id").to_owned();
        assert_eq!(body["input"][1]["call_id"], id.as_str());
        assert!(id.chars().count() <= MAX_LEN);
        assert_eq!(names.original(&short), Some(MCP));
        assert_eq!(names.original(&id), Some(long_id.as_str()));
        let mut answer = json!({"output": [{"type": "function_call", "name": short}]});
        names.restore_value(&mut answer);
        assert_eq!(answer["output"][0]["name"], MCP);
        let sse = format!("data: {{\"item\":{{\"name\":\"{short}\"}}}}\n\n");
        let back = names.restore_bytes(bytes::Bytes::from(sse));
        assert_eq!(
            std::str::from_utf8(&back).expect("utf8"),
            format!("data: {{\"item\":{{\"name\":\"{MCP}\"}}}}\n\n")
        );
    }

    #[test]
    fn stand_ins_are_deterministic_and_unique_within_a_request() {
        assert_eq!(stand_in(MCP, 0), stand_in(MCP, 0));
        let a = format!("{}a", "x".repeat(70));
        let b = format!("{}b", "x".repeat(70));
        let mut body = json!({"tools": [{"name": a}, {"name": b}, {"name": stand_in(&a, 0)}]});
        let names = shorten(&mut body);
        let got: Vec<&str> = (0..3)
            .map(|i| body["tools"][i]["name"].as_str().expect("name"))
            .collect();
        assert_ne!(got[0], got[1]);
        assert_ne!(got[0], got[2], "an existing name is never reused");
        assert_eq!(names.original(got[0]), Some(a.as_str()));
        assert_eq!(names.original(got[1]), Some(b.as_str()));
    }

    #[test]
    fn the_scan_flags_only_long_strings() {
        assert!(!needs_shortening(
            br#"{"tools":[{"name":"shell"}],"input":[{"call_id":"call_1"}]}"#
        ));
        assert!(!needs_shortening(
            br#"{"properties":{"name":{"type":"string"}}}"#
        ));
        let long = format!(r#"{{"input":[{{"call_id" : "{}"}}]}}"#, "x".repeat(65));
        assert!(needs_shortening(long.as_bytes()));
        let exact = format!(r#"{{"name":"{}"}}"#, "x".repeat(64));
        assert!(!needs_shortening(exact.as_bytes()));
        let mut v: Value = serde_json::from_str(&exact).expect("json");
        assert!(shorten(&mut v).is_empty());
        let same = bytes::Bytes::from_static(b"x");
        assert_eq!(ToolNames::default().restore_bytes(same.clone()), same);
    }
}
