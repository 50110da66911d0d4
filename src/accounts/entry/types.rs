//! The JSON type each known field of an import entry must have. Readers that skip a field of
//! the wrong type would import the account without it (`"refreshToken": 12345` → no refresh
//! token), breaking the all-or-nothing promise; these checks refuse the file instead, naming
//! the field, the expected type and the type found.

use serde_json::{Map, Value};

use super::lookup;
use crate::accounts::error::ImportError;

/// Fields of a predecessor entry and the JSON type each must have: the legacy reader skips a
/// field of the wrong type, so without this check `"refreshToken": 12345` would import the
/// account without its refresh token instead of refusing the file.
pub(super) const LEGACY_TYPES: [(&str, Kind); 20] = [
    ("id", Kind::String),
    ("token", Kind::String),
    ("refreshToken", Kind::String),
    ("idToken", Kind::String),
    ("email", Kind::String),
    ("accountId", Kind::String),
    ("userId", Kind::String),
    ("label", Kind::String),
    ("planType", Kind::String),
    ("status", Kind::String),
    ("addedAt", Kind::Time),
    ("quotaFetchedAt", Kind::Time),
    ("quotaVerifyRequired", Kind::Bool),
    ("cachedQuota", Kind::Object),
    ("usage", Kind::Object),
    ("usage.request_count", Kind::Number),
    ("usage.input_tokens", Kind::Number),
    ("usage.output_tokens", Kind::Number),
    ("usage.cached_tokens", Kind::Number),
    ("usage.last_used", Kind::Time),
];

/// The JSON type a field must have.
#[derive(Clone, Copy)]
pub(super) enum Kind {
    String,
    Number,
    Bool,
    Object,
    /// An ISO-8601 string or unix milliseconds.
    Time,
}

impl Kind {
    /// True if `v` (not null) has this type.
    fn admits(self, v: &Value) -> bool {
        match self {
            Kind::String => v.is_string(),
            Kind::Number => v.is_number(),
            Kind::Bool => v.is_boolean(),
            Kind::Object => v.is_object(),
            Kind::Time => v.is_string() || v.is_number(),
        }
    }

    /// "a string", "a number"… for messages.
    fn name(self) -> &'static str {
        match self {
            Kind::String => "a string",
            Kind::Number => "a number",
            Kind::Bool => "true or false",
            Kind::Object => "an object",
            Kind::Time => "a timestamp (ISO-8601 string or unix ms)",
        }
    }
}

/// What JSON type `v` is, for messages ("a number").
pub(super) fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Refuses the entry if a present, non-null field of `types` has another JSON type.
pub(super) fn check_types(
    obj: &Map<String, Value>,
    types: &[(&'static str, Kind)],
    at: &str,
) -> Result<(), ImportError> {
    for (key, kind) in types {
        if let Some(v) = lookup(obj, key).filter(|v| !v.is_null())
            && !kind.admits(v)
        {
            let msg = format!("expected {}, found {}", kind.name(), type_of(v));
            return Err(ImportError::field(at, key, msg));
        }
    }
    Ok(())
}
