//! Chat Completions request → Responses request (docs/predecessor.md §8.1).
//!
//! Messages map one by one: `system`/`developer` → `instructions`; `user` → a user message
//! (`text` → `input_text`, `image_url` → `input_image`, `file` → `input_file`); `assistant`
//! text → an assistant message and its `tool_calls` → `function_call` / `custom_tool_call`
//! items; `tool` → `function_call_output`; legacy `function_call` / `function` messages use
//! call id `fc_<name>`. Effort: `reasoning_effort` beats a model suffix.

use crate::config::ModelsConfig;
use crate::translate::body::{self, Upstream, optional, parse_object, required_array, wrong_type};
use crate::translate::{ModelAliases, TranslateError, Translated, model};
use serde_json::{Map, Value, json};

/// Translates a Chat Completions request body into a Responses request.
pub fn request(body: &[u8], models: &dyn ModelAliases) -> Result<Translated, TranslateError> {
    let obj = parse_object(body)?;
    let named = optional(&obj, "model", "a string", Value::as_str)?;
    let client_model = ModelsConfig::named(named)
        .unwrap_or(models.default_model())
        .to_owned();
    let messages = required_array(&obj, "messages")?;
    let resolved = model::resolve(&client_model, models, false);
    let mut up = Upstream {
        model: resolved.model.clone(),
        ..Upstream::default()
    };
    for (i, m) in messages.iter().enumerate() {
        message(&mut up, m, &format!("messages[{i}]"))?;
    }
    tools(&mut up, &obj)?;
    up.parallel_tool_calls = optional(&obj, "parallel_tool_calls", "a boolean", Value::as_bool)?;
    up.text_format = response_format(&obj)?;
    let effort = optional(&obj, "reasoning_effort", "a string", Value::as_str)?;
    up.effort = effort.map(str::to_owned).or(resolved.effort);
    let tier = optional(&obj, "service_tier", "a string", Value::as_str)?;
    up.service_tier = match tier {
        Some(t) => crate::upstream::shape::service_tier(t).map(str::to_owned),
        None => resolved.service_tier.map(str::to_owned),
    };
    let client_stream = optional(&obj, "stream", "a boolean", Value::as_bool)?.unwrap_or(false);
    let include_usage = match obj.get("stream_options") {
        None | Some(Value::Null) => false,
        Some(Value::Object(o)) => o.get("include_usage").and_then(Value::as_bool) == Some(true),
        Some(v) => return Err(wrong_type("stream_options", "an object", v)),
    };
    let explicit = optional(&obj, "prompt_cache_key", "a string", Value::as_str)?.or(optional(
        &obj,
        "user",
        "a string",
        Value::as_str,
    )?);
    Ok(up.finish(
        explicit.map(str::to_owned),
        client_model,
        client_stream,
        include_usage,
    ))
}

/// One chat message into instructions or input items.
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
    let content_field = format!("{field}.content");
    match role {
        "system" | "developer" => {
            let text = texts(m.get("content"), &content_field, true)?;
            up.instructions.push(text);
        }
        "user" => {
            let parts = user_parts(m.get("content"), &content_field)?;
            up.input
                .push(json!({"type": "message", "role": "user", "content": parts}));
        }
        "assistant" => assistant(up, m, field)?,
        "tool" => {
            let call_id = match m.get("tool_call_id") {
                Some(Value::String(s)) if !s.is_empty() => s.clone(),
                Some(
                    v @ (Value::Bool(_) | Value::Number(_) | Value::Array(_) | Value::Object(_)),
                ) => {
                    return Err(wrong_type(&format!("{field}.tool_call_id"), "a string", v));
                }
                _ => {
                    return Err(TranslateError::invalid(
                        format!("{field}.tool_call_id"),
                        "is required for tool messages",
                    ));
                }
            };
            let output = texts(m.get("content"), &content_field, false)?;
            up.input.push(
                json!({"type": "function_call_output", "call_id": call_id, "output": output}),
            );
        }
        "function" => {
            let name = m.get("name").and_then(Value::as_str).unwrap_or("function");
            let output = texts(m.get("content"), &content_field, false)?;
            up.input.push(json!({"type": "function_call_output",
                "call_id": format!("fc_{name}"), "output": output}));
        }
        other => {
            return Err(TranslateError::invalid(
                role_field,
                format!(
                    "unknown role '{other}' (expected system, developer, user, assistant, tool or function)"
                ),
            ));
        }
    }
    Ok(())
}

/// Text content: a string, or an array of `text` parts joined together.
fn texts(content: Option<&Value>, field: &str, required: bool) -> Result<String, TranslateError> {
    match content {
        Some(Value::String(s)) => Ok(s.clone()),
        None | Some(Value::Null) if !required => Ok(String::new()),
        None | Some(Value::Null) => Err(TranslateError::invalid(field, "is required")),
        Some(Value::Array(parts)) if parts.is_empty() && required => {
            Err(TranslateError::invalid(field, "must not be empty"))
        }
        Some(Value::Array(parts)) => {
            let mut out = Vec::new();
            for (j, p) in parts.iter().enumerate() {
                match p.get("text").or(p.get("refusal")) {
                    Some(Value::String(s)) => out.push(s.as_str()),
                    _ => {
                        return Err(TranslateError::invalid(
                            format!("{field}[{j}]"),
                            "must be a text part {\"type\":\"text\",\"text\":…}",
                        ));
                    }
                }
            }
            Ok(out.concat())
        }
        Some(v) => Err(wrong_type(field, "a string or an array of parts", v)),
    }
}

/// User content as Responses input parts.
fn user_parts(content: Option<&Value>, field: &str) -> Result<Vec<Value>, TranslateError> {
    let parts = match content {
        Some(Value::String(s)) => return Ok(vec![json!({"type": "input_text", "text": s})]),
        None | Some(Value::Null) => return Err(TranslateError::invalid(field, "is required")),
        Some(Value::Array(p)) if p.is_empty() => {
            return Err(TranslateError::invalid(field, "must not be empty"));
        }
        Some(Value::Array(p)) => p,
        Some(v) => return Err(wrong_type(field, "a string or an array of parts", v)),
    };
    parts
        .iter()
        .enumerate()
        .map(|(j, p)| user_part(p, &format!("{field}[{j}]")))
        .collect()
}

/// One user content part.
fn user_part(p: &Value, field: &str) -> Result<Value, TranslateError> {
    let ty = p.get("type").and_then(Value::as_str).unwrap_or("");
    match ty {
        "text" | "input_text" => match p.get("text") {
            Some(Value::String(s)) => Ok(json!({"type": "input_text", "text": s})),
            Some(v) => Err(wrong_type(&format!("{field}.text"), "a string", v)),
            None => Err(TranslateError::invalid(
                format!("{field}.text"),
                "is required",
            )),
        },
        "image_url" => {
            let (url, detail) = match p.get("image_url") {
                Some(Value::String(u)) => (Some(u.as_str()), None),
                Some(Value::Object(o)) => (
                    o.get("url").and_then(Value::as_str),
                    o.get("detail").and_then(Value::as_str),
                ),
                _ => (None, None),
            };
            let Some(url) = url else {
                return Err(TranslateError::invalid(
                    format!("{field}.image_url.url"),
                    "is required (a URL or a data: URL)",
                ));
            };
            let mut part = json!({"type": "input_image", "image_url": url});
            part["detail"] = json!(detail.unwrap_or("auto"));
            Ok(part)
        }
        "file" => {
            let f = p.get("file").and_then(Value::as_object);
            let mut part = Map::new();
            part.insert("type".into(), json!("input_file"));
            for key in ["file_data", "file_id", "filename"] {
                if let Some(v) = f.and_then(|f| f.get(key)).filter(|v| v.is_string()) {
                    part.insert(key.into(), v.clone());
                }
            }
            if part.len() == 1 {
                return Err(TranslateError::invalid(
                    format!("{field}.file"),
                    "needs file_data or file_id",
                ));
            }
            Ok(Value::Object(part))
        }
        other => Err(TranslateError::invalid(
            format!("{field}.type"),
            format!("unsupported content part type '{other}' (expected text, image_url or file)"),
        )),
    }
}

/// An assistant message: its text (if any), then its tool calls.
fn assistant(up: &mut Upstream, m: &Map<String, Value>, field: &str) -> Result<(), TranslateError> {
    let text = texts(m.get("content"), &format!("{field}.content"), false)?;
    if !text.is_empty() {
        up.input.push(json!({"type": "message", "role": "assistant",
            "content": [{"type": "output_text", "text": text}]}));
    }
    if let Some(fc) = m.get("function_call").filter(|v| !v.is_null()) {
        let name = fc.get("name").and_then(Value::as_str).unwrap_or("function");
        let args = fc.get("arguments").and_then(Value::as_str).unwrap_or("{}");
        up.input.push(
            json!({"type": "function_call", "call_id": format!("fc_{name}"),
            "name": name, "arguments": args}),
        );
    }
    let calls = match m.get("tool_calls") {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::Array(c)) => c,
        Some(v) => return Err(wrong_type(&format!("{field}.tool_calls"), "an array", v)),
    };
    for (j, c) in calls.iter().enumerate() {
        let cf = format!("{field}.tool_calls[{j}]");
        let id = c.get("id").and_then(Value::as_str);
        let Some(id) = id.filter(|s| !s.is_empty()) else {
            return Err(TranslateError::invalid(format!("{cf}.id"), "is required"));
        };
        if c.get("type").and_then(Value::as_str) == Some("custom") {
            let name = c["custom"]["name"].as_str().unwrap_or("");
            let input = c["custom"]["input"].as_str().unwrap_or("");
            up.input.push(
                json!({"type": "custom_tool_call", "call_id": id, "name": name, "input": input}),
            );
            continue;
        }
        let Some(name) = c["function"]["name"].as_str().filter(|s| !s.is_empty()) else {
            return Err(TranslateError::invalid(
                format!("{cf}.function.name"),
                "is required",
            ));
        };
        let args = match &c["function"]["arguments"] {
            Value::String(s) => s.clone(),
            Value::Null => "{}".to_owned(),
            other => other.to_string(),
        };
        up.input
            .push(json!({"type": "function_call", "call_id": id, "name": name, "arguments": args}));
    }
    Ok(())
}

/// `tools` / legacy `functions`, `tool_choice` / legacy `function_call`.
fn tools(up: &mut Upstream, obj: &Map<String, Value>) -> Result<(), TranslateError> {
    if let Some(list) = optional(obj, "tools", "an array", Value::as_array)? {
        for (i, t) in list.iter().enumerate() {
            up.tools.push(tool(t, &format!("tools[{i}]"))?);
        }
    }
    if let Some(list) = optional(obj, "functions", "an array", Value::as_array)? {
        for (i, f) in list.iter().enumerate() {
            up.tools.push(function_tool(f, &format!("functions[{i}]"))?);
        }
    }
    let choice = obj.get("tool_choice").or(obj.get("function_call"));
    up.tool_choice = match choice {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(json!(s)),
        Some(Value::Object(o)) => match o.get("type").and_then(Value::as_str) {
            Some("function") => Some(json!({"type": "function",
                "name": o.get("function").and_then(|f| f.get("name")).cloned().unwrap_or(Value::Null)})),
            Some(_) => Some(Value::Object(o.clone())),
            None => Some(
                json!({"type": "function", "name": o.get("name").cloned().unwrap_or(Value::Null)}),
            ),
        },
        Some(v) => return Err(wrong_type("tool_choice", "a string or an object", v)),
    };
    Ok(())
}

/// One `tools[]` entry: function tools flatten, custom tools keep their format, others pass.
fn tool(t: &Value, field: &str) -> Result<Value, TranslateError> {
    match t.get("type").and_then(Value::as_str) {
        Some("function") => function_tool(
            t.get("function").unwrap_or(&Value::Null),
            &format!("{field}.function"),
        ),
        Some("custom") => {
            let c = t.get("custom").unwrap_or(&Value::Null);
            let mut out =
                json!({"type": "custom", "name": c.get("name").cloned().unwrap_or(Value::Null)});
            for key in ["description", "format"] {
                if let Some(v) = c.get(key) {
                    out[key] = v.clone();
                }
            }
            Ok(out)
        }
        Some(_) => Ok(t.clone()),
        None => Err(TranslateError::invalid(
            format!("{field}.type"),
            "is required",
        )),
    }
}

/// A function definition `{name, description?, parameters?, strict?}` as a Responses tool.
fn function_tool(f: &Value, field: &str) -> Result<Value, TranslateError> {
    let Some(name) = f
        .get("name")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    else {
        return Err(TranslateError::invalid(
            format!("{field}.name"),
            "is required",
        ));
    };
    let mut out = json!({"type": "function", "name": name,
        "parameters": body::parameters(f.get("parameters"))});
    if let Some(d) = f.get("description") {
        out["description"] = d.clone();
    }
    if let Some(s) = f.get("strict").filter(|v| v.is_boolean()) {
        out["strict"] = s.clone();
    }
    Ok(out)
}

/// `response_format` → `text.format`.
fn response_format(obj: &Map<String, Value>) -> Result<Option<Value>, TranslateError> {
    let Some(rf) = optional(obj, "response_format", "an object", Value::as_object)? else {
        return Ok(None);
    };
    match rf.get("type").and_then(Value::as_str) {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(json!({"type": "json_object"}))),
        Some("json_schema") => {
            let Some(js) = rf.get("json_schema").and_then(Value::as_object) else {
                return Err(TranslateError::invalid(
                    "response_format.json_schema",
                    "is required",
                ));
            };
            let mut out = json!({"type": "json_schema",
                "name": js.get("name").and_then(Value::as_str).unwrap_or("response"),
                "schema": js.get("schema").cloned().unwrap_or(json!({}))});
            for key in ["strict", "description"] {
                if let Some(v) = js.get(key).filter(|v| !v.is_null()) {
                    out[key] = v.clone();
                }
            }
            Ok(Some(out))
        }
        _ => Err(TranslateError::invalid(
            "response_format.type",
            "must be text, json_object or json_schema",
        )),
    }
}
