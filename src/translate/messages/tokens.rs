//! `POST /v1/messages/count_tokens` without an upstream call: an estimate from the translated
//! request, so Claude Code's context accounting works without spending quota.
//!
//! Estimator: the request is translated exactly as for `/v1/messages` (so the same 400s apply);
//! then every text the model would read — instructions, message texts, tool-call arguments and
//! outputs, and the tool definitions as JSON — is counted at one token per 4 characters
//! (rounded up), plus 4 tokens of framing per input item and 1 500 per image or file. This
//! tends to over-estimate English prose slightly, which is the safe side for context limits.

use super::request::build;
use crate::translate::TranslateError;
use crate::translate::body::parse_object;
use serde_json::{Value, json};

/// Characters per token of the estimate.
const CHARS_PER_TOKEN: usize = 4;
/// Framing tokens per input item (role markers, separators).
const ITEM_OVERHEAD: u64 = 4;
/// Flat cost of one image or file part.
const ATTACHMENT_TOKENS: u64 = 1_500;

/// Estimates `{"input_tokens": N}` for a Messages request body.
pub fn count_tokens(body: &[u8]) -> Result<Value, TranslateError> {
    let obj = parse_object(body)?;
    let up = build(&obj, String::new())?;
    let mut chars = up.instructions_text().chars().count();
    let mut tokens = 0u64;
    for item in &up.input {
        tokens += ITEM_OVERHEAD;
        for key in ["arguments", "output"] {
            chars += item[key].as_str().map_or(0, |s| s.chars().count());
        }
        for part in item["content"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
            match part["type"].as_str() {
                Some("input_image" | "input_file") => tokens += ATTACHMENT_TOKENS,
                _ => chars += part["text"].as_str().map_or(0, |s| s.chars().count()),
            }
        }
    }
    for tool in &up.tools {
        chars += tool.to_string().chars().count();
    }
    tokens += chars.div_ceil(CHARS_PER_TOKEN) as u64;
    Ok(json!({ "input_tokens": tokens }))
}
