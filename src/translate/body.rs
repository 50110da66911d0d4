//! The upstream Responses request both request translators build, and the checked accessors
//! they read the client's JSON with (every type error names its field).
//!
//! Upstream rules applied here (docs/predecessor.md §8): `stream: true` and `store: false` always;
//! `reasoning = {effort, summary: "auto"}` with `include: ["reasoning.encrypted_content"]`
//! when an effort is known (effort `none` sends `{effort: "none"}` alone); `tool_choice`
//! defaults to `auto` and `parallel_tool_calls` to `true`, as Codex sends them; instructions
//! default to "You are a helpful assistant."; `prompt_cache_key` is always set (the affinity).

use super::TranslateError;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// Instructions sent when the client gave no system prompt (the backend requires some).
pub(crate) const DEFAULT_INSTRUCTIONS: &str = crate::upstream::shape::DEFAULT_INSTRUCTIONS;

/// Parses the body as a JSON object or says precisely why not.
pub(crate) fn parse_object(body: &[u8]) -> Result<Map<String, Value>, TranslateError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(TranslateError::invalid_body(format!(
            "request body must be a JSON object, got {}",
            type_name(&other)
        ))),
        Err(e) => Err(TranslateError::invalid_body(format!(
            "request body is not valid JSON: {e}"
        ))),
    }
}

/// A JSON type's name for error messages.
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The error for a field of the wrong type.
pub(crate) fn wrong_type(field: &str, expected: &str, got: &Value) -> TranslateError {
    TranslateError::invalid(field, format!("must be {expected}, got {}", type_name(got)))
}

/// A required non-empty array field.
pub(crate) fn required_array<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
) -> Result<&'a [Value], TranslateError> {
    match obj.get(key) {
        None | Some(Value::Null) => Err(TranslateError::invalid(key, "is required")),
        Some(Value::Array(a)) if a.is_empty() => {
            Err(TranslateError::invalid(key, "must not be empty"))
        }
        Some(Value::Array(a)) => Ok(a),
        Some(v) => Err(wrong_type(key, "an array", v)),
    }
}

/// An optional field of a given shape; `null` counts as absent.
pub(crate) fn optional<'a, T>(
    obj: &'a Map<String, Value>,
    key: &str,
    expected: &str,
    get: impl Fn(&'a Value) -> Option<T>,
) -> Result<Option<T>, TranslateError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => get(v).map(Some).ok_or_else(|| wrong_type(key, expected, v)),
    }
}

/// Everything the upstream body is made of, filled by a request translator.
#[derive(Debug, Default)]
pub(crate) struct Upstream {
    pub model: String,
    pub instructions: Vec<String>,
    pub input: Vec<Value>,
    pub tools: Vec<Value>,
    pub tool_choice: Option<Value>,
    pub parallel_tool_calls: Option<bool>,
    pub effort: Option<String>,
    pub service_tier: Option<String>,
    pub text_format: Option<Value>,
    pub prompt_cache_key: String,
}

impl Upstream {
    /// The instructions as sent: system texts joined by a blank line, or the default.
    pub fn instructions_text(&self) -> String {
        if self.instructions.is_empty() {
            DEFAULT_INSTRUCTIONS.to_owned()
        } else {
            self.instructions.join("\n\n")
        }
    }

    /// The translation result: the affinity is the client's conversation key when it gave a
    /// non-empty one, else one derived from the conversation's start; it is also sent upstream
    /// as `prompt_cache_key`.
    pub fn finish(
        mut self,
        client_key: Option<String>,
        client_model: String,
        client_stream: bool,
        include_usage: bool,
    ) -> super::Translated {
        let affinity = match client_key {
            Some(k) if !k.is_empty() => k,
            _ => derived_key(
                &self.model,
                &self.instructions_text(),
                &first_user_text(&self.input),
            ),
        };
        self.prompt_cache_key = affinity.clone();
        super::Translated {
            model: self.model.clone(),
            body: self.into_body(),
            client_model,
            client_stream,
            include_usage,
            affinity: Some(affinity),
        }
    }

    /// The Responses request body.
    pub fn into_body(self) -> Value {
        let mut b = Map::new();
        b.insert("model".into(), json!(self.model));
        b.insert("instructions".into(), json!(self.instructions_text()));
        b.insert("input".into(), Value::Array(self.input));
        if !self.tools.is_empty() {
            b.insert("tools".into(), Value::Array(self.tools));
        }
        b.insert(
            "tool_choice".into(),
            self.tool_choice.unwrap_or_else(|| json!("auto")),
        );
        b.insert(
            "parallel_tool_calls".into(),
            json!(self.parallel_tool_calls.unwrap_or(true)),
        );
        match self.effort.as_deref() {
            Some("none") => {
                b.insert("reasoning".into(), json!({"effort": "none"}));
            }
            Some(effort) => {
                b.insert(
                    "reasoning".into(),
                    json!({"effort": effort, "summary": "auto"}),
                );
                b.insert("include".into(), json!(["reasoning.encrypted_content"]));
            }
            None => {}
        }
        b.insert("store".into(), json!(false));
        b.insert("stream".into(), json!(true));
        b.insert("prompt_cache_key".into(), json!(self.prompt_cache_key));
        if let Some(format) = self.text_format {
            b.insert("text".into(), json!({ "format": format }));
        }
        if let Some(tier) = self.service_tier {
            b.insert("service_tier".into(), json!(tier));
        }
        Value::Object(b)
    }
}

/// A stable conversation key when the client gave none: sha256 of model, the first 2000
/// characters of the instructions and the first user text, formatted as a UUID. Every turn of
/// one conversation re-sends the same beginning, so its turns share a key (and an account).
pub(crate) fn derived_key(model: &str, instructions: &str, first_user_text: &str) -> String {
    let head: String = instructions.chars().take(2000).collect();
    let digest = Sha256::new()
        .chain_update(model)
        .chain_update([0])
        .chain_update(head)
        .chain_update([0])
        .chain_update(first_user_text)
        .finalize();
    let mut raw = [0u8; 16];
    raw.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(raw)
        .into_uuid()
        .to_string()
}

/// The first user text of a Responses input list (for `derived_key`).
pub(crate) fn first_user_text(input: &[Value]) -> String {
    input
        .iter()
        .find(|item| item["role"] == "user")
        .and_then(|item| item["content"].as_array())
        .and_then(|parts| parts.iter().find_map(|p| p["text"].as_str()))
        .unwrap_or("")
        .to_owned()
}

/// A tool's JSON schema as sent upstream: an empty object schema when absent, and without the
/// top-level `$schema` marker (Claude Code sends it; it says nothing the backend needs).
pub(crate) fn parameters(schema: Option<&Value>) -> Value {
    match schema {
        Some(Value::Object(o)) => {
            let mut o = o.clone();
            o.remove("$schema");
            Value::Object(o)
        }
        Some(other) if !other.is_null() => other.clone(),
        _ => json!({"type": "object", "properties": {}}),
    }
}

/// A fresh response id: `prefix` followed by 24 random alphanumerics (`chatcmpl-…`, `msg_…`).
pub fn random_id(prefix: &str) -> String {
    use rand::Rng;
    use rand::distr::Alphanumeric;
    let s: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(24)
        .map(char::from)
        .collect();
    format!("{prefix}{s}")
}
