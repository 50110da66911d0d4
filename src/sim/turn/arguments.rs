//! Arguments of the simulated model's tool calls, built from the tool's own JSON schema (the
//! `parameters` the client sent), so that the client's tool router accepts the call and really
//! runs the tool: issue 15 item 16 found Codex refusing `{}` for `exec_command` (`missing field
//! cmd`) and Claude Code refusing it for `Read` (`file_path` is required), so a newcomer never saw
//! a tool run.
//!
//! Rules: an object gets every `required` property (optional ones are left out); a value takes
//! the schema's `const`, else its first `enum` entry, else its `default`, else one of its type:
//! the first string met takes the text the prompt gave after the tool name
//! (`use the tool exec_command with echo hi` → `cmd = "echo hi"`), later strings `"simulated"`;
//! integers and numbers their `minimum` (else 1, kept under a `maximum`); booleans `false`;
//! arrays `minItems` entries; `anyOf`/`oneOf` their first non-null branch. Deterministic, like
//! every other answer of the simulator.

use serde_json::{Map, Value, json};

/// What a string gets once the prompt's text was used (or when the prompt gave none).
const PLACEHOLDER: &str = "simulated";

/// Nesting followed before giving up (a recursive `$ref`-free schema is never this deep).
const MAX_DEPTH: usize = 16;

/// Arguments valid for `schema`; `{}` when the tool has no schema (custom and built-in tools).
pub(super) fn build(schema: Option<&Value>, text: Option<&str>) -> Value {
    let mut text = text;
    match schema {
        Some(s) if s.is_object() => match value(s, &mut text, 0) {
            v @ Value::Object(_) => v,
            _ => json!({}),
        },
        _ => json!({}),
    }
}

/// A value for `schema`; `text` is taken by the first string.
fn value(schema: &Value, text: &mut Option<&str>, depth: usize) -> Value {
    if depth > MAX_DEPTH {
        return Value::Null;
    }
    if let Some(v) = schema.get("const") {
        return v.clone();
    }
    if let Some(first) = schema
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    if let Some(v) = schema.get("default") {
        return v.clone();
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(branch) = schema
            .get(key)
            .and_then(Value::as_array)
            .and_then(|alts| alts.iter().find(|a| type_of(a) != Some("null")))
        {
            return value(branch, text, depth + 1);
        }
    }
    match type_of(schema) {
        Some("string") => Value::String(text.take().unwrap_or(PLACEHOLDER).to_owned()),
        Some("integer") => json!(number(schema).round() as i64),
        Some("number") => json!(number(schema)),
        Some("boolean") => Value::Bool(false),
        Some("null") => Value::Null,
        Some("array") => array(schema, text, depth),
        Some("object") => object(schema, text, depth),
        // No type: an object if it describes properties, else any value will do.
        _ if schema.get("properties").is_some() => object(schema, text, depth),
        _ => Value::String(text.take().unwrap_or(PLACEHOLDER).to_owned()),
    }
}

/// The schema's type; of a list of types, the first that is not `"null"`.
fn type_of(schema: &Value) -> Option<&str> {
    match schema.get("type")? {
        Value::String(t) => Some(t),
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).find(|t| *t != "null"),
        _ => None,
    }
}

/// `minimum` (or just above `exclusiveMinimum`), else 1, never above `maximum`.
fn number(schema: &Value) -> f64 {
    let get = |k: &str| schema.get(k).and_then(Value::as_f64);
    let low = get("minimum")
        .or_else(|| get("exclusiveMinimum").map(|m| m + 1.0))
        .unwrap_or(1.0);
    match get("maximum") {
        Some(max) if low > max => max,
        _ => low,
    }
}

fn array(schema: &Value, text: &mut Option<&str>, depth: usize) -> Value {
    let n = schema.get("minItems").and_then(Value::as_u64).unwrap_or(0);
    let items = schema.get("items").cloned().unwrap_or_else(|| json!({}));
    Value::Array(
        (0..n.min(8))
            .map(|_| value(&items, text, depth + 1))
            .collect(),
    )
}

fn object(schema: &Value, text: &mut Option<&str>, depth: usize) -> Value {
    let props = schema.get("properties");
    let mut out = Map::new();
    for name in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        let prop = props.and_then(|p| p.get(name)).cloned();
        let prop = prop.unwrap_or_else(|| json!({}));
        out.insert(name.to_owned(), value(&prop, text, depth + 1));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codex_exec_command_gets_the_prompts_command() {
        let schema = json!({"type":"object","properties":{
            "cmd":{"type":"string"},"login":{"type":"boolean"},"max_output_tokens":{"type":"number"}},
            "required":["cmd"],"additionalProperties":false});
        assert_eq!(
            build(Some(&schema), Some("echo hi")),
            json!({"cmd": "echo hi"})
        );
        assert_eq!(build(Some(&schema), None), json!({"cmd": "simulated"}));
    }

    #[test]
    fn every_required_property_gets_a_value_of_its_type() {
        let schema = json!({"type":"object","required":["path","n","ratio","flag","mode","tags","opt","inner"],
            "properties":{
                "path":{"type":"string"},
                "n":{"type":"integer","minimum":3},
                "ratio":{"type":["number","null"],"maximum":0.5},
                "flag":{"type":"boolean"},
                "mode":{"type":"string","enum":["fast","slow"]},
                "tags":{"type":"array","items":{"type":"string"},"minItems":2},
                "opt":{"anyOf":[{"type":"null"},{"type":"integer"}]},
                "inner":{"type":"object","properties":{"x":{"type":"string"}},"required":["x"]},
                "unused":{"type":"string"}}});
        assert_eq!(
            build(Some(&schema), Some("/tmp/note.txt")),
            json!({"path":"/tmp/note.txt","n":3,"ratio":0.5,"flag":false,"mode":"fast",
                   "tags":["simulated","simulated"],"opt":1,"inner":{"x":"simulated"}})
        );
    }

    #[test]
    fn no_schema_or_an_empty_one_is_an_empty_object() {
        assert_eq!(build(None, Some("x")), json!({}));
        assert_eq!(build(Some(&json!({})), Some("x")), json!({}));
        assert_eq!(
            build(Some(&json!({"type":"object","properties":{}})), None),
            json!({})
        );
    }
}
