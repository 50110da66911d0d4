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
//! Only a body whose long names [`super::shape::look`] found ([`LongList`], read in its one pass
//! over the body) is touched; every other body keeps its bytes.

use memchr::memmem;
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;

/// Longest tool name or call id the backend takes, in characters.
pub const MAX_LEN: usize = 64;

/// Hex digits of the hash a stand-in ends with.
const HASH_HEX: usize = 8;

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

/// Whether a tool name or call id is over the limit.
pub fn too_long(s: &str) -> bool {
    s.len() > MAX_LEN && s.chars().count() > MAX_LEN
}

/// A list (`tools`, `input`) as [`super::shape::look`] reads it in its one pass over the body:
/// whether an item's `name` or `call_id` is [`too_long`]. Anything that is not a list, items
/// that are not objects and values that are not strings count as not long; the strings are
/// borrowed, so nothing is allocated.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LongList(pub bool);

/// One list item, as [`LongList`] reads it.
pub struct LongItem(pub bool);

/// The two fields of an item that are limited.
#[derive(Deserialize)]
struct ItemIds {
    #[serde(default)]
    name: LongStr,
    #[serde(default)]
    call_id: LongStr,
}

/// A value that is a [`too_long`] string.
#[derive(Default)]
struct LongStr(bool);

/// The `visit_*` methods of a visitor whose value is `$wrap(false)` for every JSON value but
/// those it handles itself (skipping what they contain).
macro_rules! not_long {
    ($wrap:ident; $($skip:ident),*) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<$wrap, E> { Ok($wrap(false)) }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<$wrap, E> { Ok($wrap(false)) }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<$wrap, E> { Ok($wrap(false)) }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<$wrap, E> { Ok($wrap(false)) }
        fn visit_unit<E: de::Error>(self) -> Result<$wrap, E> { Ok($wrap(false)) }
        $(not_long!(@ $skip $wrap);)*
    };
    (@ str $wrap:ident) => {
        fn visit_str<E: de::Error>(self, _: &str) -> Result<$wrap, E> { Ok($wrap(false)) }
    };
    (@ seq $wrap:ident) => {
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<$wrap, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok($wrap(false))
        }
    };
    (@ map $wrap:ident) => {
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<$wrap, A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok($wrap(false))
        }
    };
}

impl<'de> Deserialize<'de> for LongList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = LongList;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list of items")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<LongList, A::Error> {
                let mut long = false;
                while let Some(item) = seq.next_element::<LongItem>()? {
                    long |= item.0;
                }
                Ok(LongList(long))
            }
            not_long!(LongList; str, map);
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for LongItem {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = LongItem;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an item")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<LongItem, A::Error> {
                let ids = ItemIds::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(LongItem(ids.name.0 || ids.call_id.0))
            }
            not_long!(LongItem; str, seq);
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for LongStr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = LongStr;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<LongStr, E> {
                Ok(LongStr(too_long(s)))
            }
            not_long!(LongStr; seq, map);
        }
        d.deserialize_any(V)
    }
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
    if !slots.iter().any(|s| too_long(s)) {
        return ToolNames::default();
    }
    let mut taken: HashMap<String, String> = slots
        .iter()
        .filter(|s| !too_long(s))
        .map(|s| (s.to_string(), s.to_string()))
        .collect();
    let mut short_of: HashMap<String, String> = HashMap::new();
    for s in slots {
        if !too_long(s) {
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
    fn the_look_flags_only_long_strings() {
        let long = |json: &str| serde_json::from_str::<LongList>(json).expect("json").0;
        assert!(!long(
            r#"[{"name":"shell"},{"call_id":"call_1"},"text",3,null]"#
        ));
        assert!(!long(
            r#"[{"parameters":{"properties":{"name":{"type":"string"}}}}]"#
        ));
        assert!(!long(r#""a string input""#));
        assert!(long(&format!(r#"[{{"call_id" : "{}"}}]"#, "x".repeat(65))));
        assert!(
            !long(&format!(r#"[{{"name":"{}"}}]"#, "é".repeat(64))),
            "characters, not bytes"
        );
        let mut v = json!({"tools": [{"name": "x".repeat(64)}]});
        assert!(shorten(&mut v).is_empty());
        let same = bytes::Bytes::from_static(b"x");
        assert_eq!(ToolNames::default().restore_bytes(same.clone()), same);
    }
}
