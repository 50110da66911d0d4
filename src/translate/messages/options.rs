//! Request options of a Messages request that are not conversation content: tools and
//! `tool_choice`, the reasoning effort (`output_config.effort` > `thinking`), and the
//! conversation id carried in `metadata.user_id`.

use crate::translate::TranslateError;
use crate::translate::body::{self, Upstream, optional};
use serde_json::{Map, Value, json};

/// `tools` (custom tools → function tools; web search → `web_search`; other Anthropic-defined
/// tools are dropped) and `tool_choice`.
pub(super) fn tools(up: &mut Upstream, obj: &Map<String, Value>) -> Result<(), TranslateError> {
    if let Some(list) = optional(obj, "tools", "an array", Value::as_array)? {
        for (i, t) in list.iter().enumerate() {
            let ty = t.get("type").and_then(Value::as_str).unwrap_or("custom");
            if ty.starts_with("web_search") {
                up.tools.push(json!({"type": "web_search"}));
                continue;
            }
            if ty != "custom" {
                continue;
            }
            let Some(name) = t
                .get("name")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
            else {
                return Err(TranslateError::invalid(
                    format!("tools[{i}].name"),
                    "is required",
                ));
            };
            let mut tool = json!({"type": "function", "name": name, "strict": false,
                "parameters": body::parameters(t.get("input_schema"))});
            if let Some(d) = t.get("description") {
                tool["description"] = d.clone();
            }
            up.tools.push(tool);
        }
    }
    if let Some(tc) = optional(obj, "tool_choice", "an object", Value::as_object)? {
        up.tool_choice = Some(match tc.get("type").and_then(Value::as_str) {
            Some("auto") => json!("auto"),
            Some("any") => json!("required"),
            Some("none") => json!("none"),
            Some("tool") => {
                json!({"type": "function", "name": tc.get("name").cloned().unwrap_or(Value::Null)})
            }
            _ => {
                return Err(TranslateError::invalid(
                    "tool_choice.type",
                    "must be auto, any, tool or none",
                ));
            }
        });
        if tc.get("disable_parallel_tool_use").and_then(Value::as_bool) == Some(true) {
            up.parallel_tool_calls = Some(false);
        }
    }
    Ok(())
}

/// Effort from `output_config.effort`, else from `thinking`.
pub(super) fn effort(obj: &Map<String, Value>) -> Result<Option<String>, TranslateError> {
    if let Some(e) = obj
        .get("output_config")
        .and_then(|c| c.get("effort"))
        .and_then(Value::as_str)
    {
        return Ok(Some(if e == "max" {
            "xhigh".into()
        } else {
            e.to_owned()
        }));
    }
    let Some(t) = optional(obj, "thinking", "an object", Value::as_object)? else {
        return Ok(None);
    };
    Ok(match t.get("type").and_then(Value::as_str) {
        Some("enabled") => {
            let budget = t.get("budget_tokens").and_then(Value::as_u64).unwrap_or(0);
            Some(budget_effort(budget).to_owned())
        }
        Some("adaptive") => Some("medium".into()),
        Some("disabled") => Some("none".into()),
        _ => {
            return Err(TranslateError::invalid(
                "thinking.type",
                "must be enabled, adaptive or disabled",
            ));
        }
    })
}

/// Effort for a thinking budget: < 2000 low, < 8000 medium, else high.
pub(super) fn budget_effort(budget: u64) -> &'static str {
    match budget {
        0..2000 => "low",
        2000..8000 => "medium",
        _ => "high",
    }
}

/// The conversation id in `metadata.user_id`: Claude Code's JSON `{session_id}`, the older
/// `user_…_account__session_<uuid>` form, or the whole value.
pub(super) fn session_of(obj: &Map<String, Value>) -> Option<String> {
    let uid = obj
        .get("metadata")?
        .get("user_id")?
        .as_str()
        .filter(|s| !s.is_empty())?;
    if let Ok(v) = serde_json::from_str::<Value>(uid) {
        if let Some(s) = v
            .get("session_id")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        {
            return Some(s.to_owned());
        }
    }
    match uid.rsplit_once("_session_") {
        Some((_, s)) if !s.is_empty() => Some(s.to_owned()),
        _ => Some(uid.to_owned()),
    }
}
