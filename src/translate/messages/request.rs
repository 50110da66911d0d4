//! Anthropic Messages request → Responses request (docs/predecessor.md §8.2).
//!
//! `system` (string, text blocks, or plain strings) → `instructions`. Content blocks: `text` →
//! `input_text` / `output_text`; `image` (base64 → data URL, or url) → `input_image`;
//! `document` (base64 PDF) → `input_file`; `tool_use` → `function_call` (input serialised);
//! `tool_result` → `function_call_output` (text joined, `is_error` → "Error: " prefix, images
//! moved to a user message right after the outputs); `thinking` / `redacted_thinking` and
//! server-tool blocks are dropped (their signatures are not portable across accounts).
//! Effort: `output_config.effort` > `thinking` > model suffix; `thinking.budget_tokens`
//! < 2000 → low, < 8000 → medium, else high; `adaptive` → medium; `disabled` → none.

use super::options::{effort, session_of, tools};
use crate::config::ModelsConfig;
use crate::translate::body::{Upstream, optional, parse_object, required_array, wrong_type};
use crate::translate::{ModelAliases, TranslateError, Translated, model};
use serde_json::{Map, Value, json};

/// Translates a Messages request body into a Responses request.
pub fn request(body: &[u8], models: &dyn ModelAliases) -> Result<Translated, TranslateError> {
    let obj = parse_object(body)?;
    let named = optional(&obj, "model", "a string", Value::as_str)?;
    let client_model = ModelsConfig::named(named)
        .unwrap_or(models.default_model())
        .to_owned();
    let resolved = model::resolve(&client_model, models, true);
    let mut up = build(&obj, resolved.model.clone())?;
    up.effort = effort(&obj)?.or(resolved.effort);
    up.service_tier = resolved.service_tier.map(str::to_owned);
    let client_stream = optional(&obj, "stream", "a boolean", Value::as_bool)?.unwrap_or(false);
    Ok(up.finish(session_of(&obj), client_model, client_stream, false))
}

/// Everything but model resolution and effort: shared with `count_tokens`.
pub(crate) fn build(obj: &Map<String, Value>, model: String) -> Result<Upstream, TranslateError> {
    let messages = required_array(obj, "messages")?;
    optional(obj, "max_tokens", "an integer", Value::as_u64)?;
    let mut up = Upstream {
        model,
        ..Upstream::default()
    };
    system(&mut up, obj.get("system"))?;
    for (i, m) in messages.iter().enumerate() {
        message(&mut up, m, &format!("messages[{i}]"))?;
    }
    tools(&mut up, obj)?;
    if let Some(format) = obj.get("output_config").and_then(|c| c.get("format")) {
        if format["type"] == "json_schema" {
            up.text_format = Some(json!({"type": "json_schema", "name": "output",
                "schema": format.get("schema").cloned().unwrap_or(json!({})), "strict": false}));
        }
    }
    Ok(up)
}

/// `system`: a string, or an array of text blocks (plain strings tolerated).
fn system(up: &mut Upstream, system: Option<&Value>) -> Result<(), TranslateError> {
    match system {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s.is_empty() => {}
        Some(Value::String(s)) => up.instructions.push(s.clone()),
        Some(Value::Array(blocks)) => {
            for (i, b) in blocks.iter().enumerate() {
                match b.as_str().or(b.get("text").and_then(Value::as_str)) {
                    // Claude Code's per-version billing line: noise to the model, and it would
                    // change the prompt prefix (and the cache) on every client upgrade.
                    Some(t) if t.starts_with("x-anthropic-billing-header:") => {}
                    Some(t) => up.instructions.push(t.to_owned()),
                    None => {
                        return Err(TranslateError::invalid(
                            format!("system[{i}]"),
                            "must be a text block {\"type\":\"text\",\"text\":…}",
                        ));
                    }
                }
            }
        }
        Some(v) => {
            return Err(wrong_type(
                "system",
                "a string or an array of text blocks",
                v,
            ));
        }
    }
    Ok(())
}

/// One message: user (text, images, tool results) or assistant (text, tool uses).
fn message(up: &mut Upstream, m: &Value, field: &str) -> Result<(), TranslateError> {
    let Some(m) = m.as_object() else {
        return Err(wrong_type(field, "an object", m));
    };
    let role_field = format!("{field}.role");
    let role = match m.get("role") {
        Some(Value::String(r)) => r.as_str(),
        None | Some(Value::Null) => return Err(TranslateError::invalid(role_field, "is required")),
        Some(v) => return Err(wrong_type(&role_field, "a string", v)),
    };
    let cf = format!("{field}.content");
    let blocks: Vec<Value> = match m.get("content") {
        Some(Value::String(s)) => vec![json!({"type": "text", "text": s})],
        None | Some(Value::Null) => return Err(TranslateError::invalid(cf, "is required")),
        Some(Value::Array(b)) if b.is_empty() => {
            return Err(TranslateError::invalid(cf, "must not be empty"));
        }
        Some(Value::Array(b)) => b.clone(),
        Some(v) => return Err(wrong_type(&cf, "a string or an array of content blocks", v)),
    };
    match role {
        "user" => user(up, &blocks, &cf),
        "assistant" => assistant(up, &blocks, &cf),
        // Tolerated: some clients put late system text in the list; it stays in place.
        "system" => {
            let text = blocks
                .iter()
                .filter_map(|b| b["text"].as_str())
                .collect::<Vec<_>>();
            up.input.push(json!({"type": "message", "role": "developer",
                "content": [{"type": "input_text", "text": text.join("\n\n")}]}));
            Ok(())
        }
        other => Err(TranslateError::invalid(
            role_field,
            format!("unknown role '{other}' (expected user or assistant)"),
        )),
    }
}

/// The block's `type`, or an error naming the field.
fn block_type<'a>(b: &'a Value, field: &str) -> Result<&'a str, TranslateError> {
    match b.get("type") {
        Some(Value::String(t)) => Ok(t),
        None | Some(Value::Null) => Err(TranslateError::invalid(
            format!("{field}.type"),
            "is required",
        )),
        Some(v) => Err(wrong_type(&format!("{field}.type"), "a string", v)),
    }
}

/// Blocks a translation drops on purpose.
fn dropped(ty: &str) -> bool {
    matches!(
        ty,
        "thinking" | "redacted_thinking" | "server_tool_use" | "container_upload"
    ) || ty.ends_with("_tool_result")
}

fn user(up: &mut Upstream, blocks: &[Value], field: &str) -> Result<(), TranslateError> {
    let mut parts: Vec<Value> = Vec::new();
    let mut deferred: Vec<Value> = Vec::new();
    for (j, b) in blocks.iter().enumerate() {
        let bf = format!("{field}[{j}]");
        match block_type(b, &bf)? {
            "tool_result" => {
                flush(up, "user", &mut parts);
                let call_id = match b.get("tool_use_id") {
                    Some(Value::String(s)) if !s.is_empty() => s.clone(),
                    _ => {
                        return Err(TranslateError::invalid(
                            format!("{bf}.tool_use_id"),
                            "is required",
                        ));
                    }
                };
                let (mut text, images) = tool_result_content(b.get("content"), &bf)?;
                if b.get("is_error").and_then(Value::as_bool) == Some(true) {
                    text = format!("Error: {text}");
                }
                up.input.push(
                    json!({"type": "function_call_output", "call_id": call_id, "output": text}),
                );
                deferred.extend(images);
            }
            ty if dropped(ty) => {}
            _ => {
                if !deferred.is_empty() {
                    parts.append(&mut deferred);
                }
                parts.push(input_part(b, &bf)?);
            }
        }
    }
    parts.append(&mut deferred);
    flush(up, "user", &mut parts);
    Ok(())
}

fn assistant(up: &mut Upstream, blocks: &[Value], field: &str) -> Result<(), TranslateError> {
    let mut parts: Vec<Value> = Vec::new();
    for (j, b) in blocks.iter().enumerate() {
        let bf = format!("{field}[{j}]");
        match block_type(b, &bf)? {
            "text" => match b.get("text") {
                Some(Value::String(s)) if !s.is_empty() => {
                    parts.push(json!({"type": "output_text", "text": s}))
                }
                Some(Value::String(_)) => {}
                _ => {
                    return Err(TranslateError::invalid(
                        format!("{bf}.text"),
                        "must be a string",
                    ));
                }
            },
            "tool_use" => {
                flush(up, "assistant", &mut parts);
                let id = b
                    .get("id")
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty());
                let Some(id) = id else {
                    return Err(TranslateError::invalid(format!("{bf}.id"), "is required"));
                };
                let Some(name) = b
                    .get("name")
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                else {
                    return Err(TranslateError::invalid(format!("{bf}.name"), "is required"));
                };
                let input = b.get("input").cloned().unwrap_or(json!({}));
                up.input
                    .push(json!({"type": "function_call", "call_id": id, "name": name,
                    "arguments": input.to_string()}));
            }
            ty if dropped(ty) => {}
            other => {
                return Err(TranslateError::invalid(
                    format!("{bf}.type"),
                    format!("unsupported block type '{other}' in an assistant message"),
                ));
            }
        }
    }
    flush(up, "assistant", &mut parts);
    Ok(())
}

/// Pushes the gathered parts as one message item, if any.
fn flush(up: &mut Upstream, role: &str, parts: &mut Vec<Value>) {
    if !parts.is_empty() {
        let content = std::mem::take(parts);
        up.input
            .push(json!({"type": "message", "role": role, "content": content}));
    }
}

/// A user-side block (`text`, `image`, `document`) as a Responses input part.
fn input_part(b: &Value, field: &str) -> Result<Value, TranslateError> {
    match block_type(b, field)? {
        "text" => match b.get("text") {
            Some(Value::String(s)) => Ok(json!({"type": "input_text", "text": s})),
            _ => Err(TranslateError::invalid(
                format!("{field}.text"),
                "must be a string",
            )),
        },
        "image" => {
            Ok(json!({"type": "input_image", "image_url": source_url(b, field)?, "detail": "auto"}))
        }
        "document" => {
            let data = source_url(b, field)?;
            let name = b
                .get("title")
                .and_then(Value::as_str)
                .unwrap_or("document.pdf");
            Ok(json!({"type": "input_file", "filename": name, "file_data": data}))
        }
        other => Err(TranslateError::invalid(
            format!("{field}.type"),
            format!(
                "unsupported block type '{other}' (expected text, image, document or tool_result)"
            ),
        )),
    }
}

/// An image/document `source` as a URL: base64 → data URL, url → as is.
fn source_url(b: &Value, field: &str) -> Result<String, TranslateError> {
    let src = &b["source"];
    match src["type"].as_str() {
        Some("base64") => {
            let (Some(mt), Some(data)) = (src["media_type"].as_str(), src["data"].as_str()) else {
                return Err(TranslateError::invalid(
                    format!("{field}.source"),
                    "base64 source needs media_type and data",
                ));
            };
            Ok(format!("data:{mt};base64,{data}"))
        }
        Some("url") => match src["url"].as_str() {
            Some(u) => Ok(u.to_owned()),
            None => Err(TranslateError::invalid(
                format!("{field}.source.url"),
                "is required",
            )),
        },
        _ => Err(TranslateError::invalid(
            format!("{field}.source.type"),
            "must be base64 or url",
        )),
    }
}

/// A `tool_result`'s content: its text (blocks joined by newlines) and any images.
fn tool_result_content(
    c: Option<&Value>,
    field: &str,
) -> Result<(String, Vec<Value>), TranslateError> {
    let blocks = match c {
        None | Some(Value::Null) => return Ok((String::new(), Vec::new())),
        Some(Value::String(s)) => return Ok((s.clone(), Vec::new())),
        Some(Value::Array(b)) => b,
        Some(v) => {
            return Err(wrong_type(
                &format!("{field}.content"),
                "a string or an array of blocks",
                v,
            ));
        }
    };
    let mut texts = Vec::new();
    let mut images = Vec::new();
    for (k, b) in blocks.iter().enumerate() {
        let bf = format!("{field}.content[{k}]");
        match b.get("type").and_then(Value::as_str) {
            Some("image") => images.push(input_part(b, &bf)?),
            _ => match b.get("text").and_then(Value::as_str) {
                Some(t) => texts.push(t.to_owned()),
                None => texts.push(b.to_string()),
            },
        }
    }
    Ok((texts.join("\n"), images))
}
