//! Writing accounts out: the full form is the predecessor's `{"accounts": […]}` shape (via
//! `rotor_actors::legacy::export`), so a backup can be re-imported by this daemon or read by
//! tools that know the old format; the minimal form keeps only refresh tokens and labels —
//! enough to rebuild a pool, nothing more. Both contain secrets: they go to the operator who
//! asked (CLI stdout, admin export), never to logs.

use rotor_actors::AccountRecord;
use serde_json::{Value, json};

/// `{"accounts": [<predecessor entry>…]}` with tokens, quota and usage.
pub fn full(records: &[AccountRecord]) -> Value {
    let accounts: Vec<Value> = records.iter().map(rotor_actors::legacy::export).collect();
    json!({ "accounts": accounts })
}

/// `{"accounts": [{"refreshToken", "label"?}…]}` for accounts that have a refresh token.
pub fn minimal(records: &[AccountRecord]) -> Value {
    let accounts: Vec<Value> = records
        .iter()
        .filter_map(|r| {
            let rt = r.tokens.refresh_token.as_ref()?;
            let mut entry = json!({ "refreshToken": rt });
            if let Some(label) = &r.identity.label {
                entry["label"] = json!(label);
            }
            Some(entry)
        })
        .collect();
    json!({ "accounts": accounts })
}

/// The minimal form of a full export document (`{"accounts": [{"refreshToken", "label"}…]}`),
/// for exports fetched from a running daemon's admin API.
pub fn minimal_of_full(full: &Value) -> Value {
    let accounts: Vec<Value> = full["accounts"]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
        .filter_map(|e| {
            let rt = e.get("refreshToken")?.as_str().filter(|s| !s.is_empty())?;
            let mut entry = json!({ "refreshToken": rt });
            if let Some(label) = e.get("label").and_then(Value::as_str) {
                entry["label"] = json!(label);
            }
            Some(entry)
        })
        .collect();
    json!({ "accounts": accounts })
}
