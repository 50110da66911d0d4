//! Import and export of the predecessor's `accounts.json` entries (REFERENCE.md §2.2), with the
//! one-shot migration of its retired rate-limit lock (DESIGN.md rule 8, REFERENCE.md §2.5).

use serde_json::Value;

use crate::{AccountRecord, UnixMs};

/// Converts one predecessor entry into a record at time `now`.
pub fn import(entry: &Value, now: UnixMs) -> Result<AccountRecord, String> {
    let _ = (entry, now);
    Err("not implemented".into())
}

/// Converts a record into a predecessor entry (never writes `rate_limit_until`).
pub fn export(rec: &AccountRecord) -> Value {
    serde_json::json!({ "id": rec.id })
}
