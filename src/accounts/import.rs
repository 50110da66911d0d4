//! Reading an import file of any supported format into account records, all or nothing. The
//! format is recognised from the content, not the file name: a JSON document (the predecessor's
//! `{"accounts": […]}`, a Codex CLI `auth.json`, an array of tokens or objects, a single
//! object), or lines — each a JSON object (JSON lines) or a bare token (`rt_…` refresh token or
//! JWT access token); blank lines and `#` comments are skipped. The first bad entry aborts the
//! whole import with an error naming its line or field.

use rotor_actors::{AccountRecord, UnixMs};
use serde_json::Value;
use std::collections::HashMap;

use super::entry;
pub use super::error::ImportError;

/// Parses an import file into account records, deduplicated by (ChatGPT account id, user id)
/// — or by refresh token when the identity is not known yet — keeping the last occurrence.
/// Records get fresh ids (a predecessor entry keeps its own) and `added_at = now`.
pub fn parse_file(bytes: &[u8], now: UnixMs) -> Result<Vec<AccountRecord>, ImportError> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        ImportError::at(
            "file",
            format!(
                "not UTF-8 text (first bad byte at offset {})",
                e.valid_up_to()
            ),
        )
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let trimmed = text.trim_start();
    if trimmed.is_empty() {
        return Err(ImportError::at("file", "the file is empty"));
    }
    let records = if trimmed.starts_with('[') {
        parse_document(parse_json(text)?, now)?
    } else if trimmed.starts_with('{') {
        match serde_json::from_str::<Value>(text) {
            Ok(doc) => parse_document(doc, now)?,
            // A multi-line file whose first line is a whole object is JSON lines; otherwise
            // report the JSON error where serde found it.
            Err(e) if first_line_is_object(text) && e.line() > 1 => parse_lines(text, now)?,
            Err(e) => return Err(json_error(&e)),
        }
    } else {
        parse_lines(text, now)?
    };
    if records.is_empty() {
        return Err(ImportError::at("file", "no accounts in the file"));
    }
    Ok(dedup(records))
}

/// The identity used to find duplicates: (account id, user id) when known, else the tokens.
pub fn dedup_key(rec: &AccountRecord) -> String {
    match &rec.identity.chatgpt_account_id {
        Some(acct) => format!(
            "id:{acct}/{}",
            rec.identity.chatgpt_user_id.as_deref().unwrap_or("")
        ),
        None => match &rec.tokens.refresh_token {
            Some(rt) => format!("rt:{rt}"),
            None => format!("at:{}", rec.tokens.access_token),
        },
    }
}

/// Keeps the last record of each identity, in first-seen order.
fn dedup(records: Vec<AccountRecord>) -> Vec<AccountRecord> {
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut out: Vec<AccountRecord> = Vec::with_capacity(records.len());
    for rec in records {
        match index.get(&dedup_key(&rec)) {
            Some(&i) => out[i] = rec,
            None => {
                index.insert(dedup_key(&rec), out.len());
                out.push(rec);
            }
        }
    }
    out
}

/// Parses the whole text as one JSON value.
fn parse_json(text: &str) -> Result<Value, ImportError> {
    serde_json::from_str(text).map_err(|e| json_error(&e))
}

/// A JSON syntax error, located by line and column.
fn json_error(e: &serde_json::Error) -> ImportError {
    ImportError::at(
        &format!("line {} column {}", e.line(), e.column()),
        format!("not valid JSON: {e}"),
    )
}

/// True if the first non-blank line is a complete JSON object on its own.
fn first_line_is_object(text: &str) -> bool {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .is_some_and(|l| matches!(serde_json::from_str::<Value>(l), Ok(Value::Object(_))))
}

/// A whole JSON document.
fn parse_document(doc: Value, now: UnixMs) -> Result<Vec<AccountRecord>, ImportError> {
    match doc {
        Value::Array(items) => parse_items(&items, "", now),
        Value::Object(obj) => match obj.get("accounts") {
            Some(Value::Array(items)) => parse_items(items, "accounts", now),
            Some(_) => Err(ImportError::field(
                "file",
                "accounts",
                "expected an array of accounts",
            )),
            None => Ok(vec![entry::from_object(&obj, "file", now)?]),
        },
        _ => Err(ImportError::at("file", "expected a JSON object or array")),
    }
}

/// The elements of a JSON array: token strings or objects.
fn parse_items(
    items: &[Value],
    prefix: &str,
    now: UnixMs,
) -> Result<Vec<AccountRecord>, ImportError> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let at = format!("{prefix}[{i}]");
            match item {
                Value::String(s) => entry::from_token(s, &at, now),
                Value::Object(obj) => entry::from_object(obj, &at, now),
                _ => Err(ImportError::at(&at, "expected a token string or an object")),
            }
        })
        .collect()
}

/// Line-oriented files: JSON lines, bare tokens, or a mix; `#` starts a comment line.
fn parse_lines(text: &str, now: UnixMs) -> Result<Vec<AccountRecord>, ImportError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = format!("line {}", i + 1);
        if line.starts_with('{') {
            match serde_json::from_str::<Value>(line) {
                Ok(Value::Object(obj)) => out.push(entry::from_object(&obj, &at, now)?),
                Ok(_) => return Err(ImportError::at(&at, "expected a JSON object")),
                Err(e) => {
                    return Err(ImportError::at(
                        &format!("{at} column {}", e.column()),
                        format!("not valid JSON: {e}"),
                    ));
                }
            }
        } else {
            out.push(entry::from_token(line, &at, now)?);
        }
    }
    Ok(out)
}
