//! Turning one imported entry — a token on a line, a JSON object in any of the shapes operators
//! bring (Codex CLI `auth.json`, the predecessor's `accounts.json` entries, Sub2API and
//! cockpit-style exports, plain `{access_token, refresh_token}`) — into one `AccountRecord`.
//! Every rejection names the place and the field, so an operator can fix the file.

use rotor_actors::jwt::Claims;
use rotor_actors::{AccountRecord, Status, Tokens, UnixMs};
use serde_json::{Map, Value};

use super::error::ImportError;
use types::{Kind, LEGACY_TYPES, check_types, type_of};

mod types;

/// Keys that may hold the access token, in order of preference.
const ACCESS_KEYS: [&str; 8] = [
    "token",
    "access_token",
    "accessToken",
    "tokens.access_token",
    "tokens.accessToken",
    "credentials.access_token",
    "credentials.accessToken",
    "credentials.token",
];
/// Keys that may hold the refresh token.
const REFRESH_KEYS: [&str; 6] = [
    "refreshToken",
    "refresh_token",
    "tokens.refresh_token",
    "tokens.refreshToken",
    "credentials.refresh_token",
    "credentials.refreshToken",
];
/// Keys that may hold the id token.
const ID_KEYS: [&str; 5] = [
    "id_token",
    "idToken",
    "tokens.id_token",
    "tokens.idToken",
    "credentials.id_token",
];
/// Keys that may hold the ChatGPT account id when the JWT lacks it (`auth.json` has it here).
const ACCOUNT_ID_KEYS: [&str; 4] = [
    "tokens.account_id",
    "account_id",
    "accountId",
    "credentials.chatgpt_account_id",
];
/// Keys that may hold an operator label.
const LABEL_KEYS: [&str; 7] = [
    "label",
    "name",
    "account_name",
    "accountName",
    "account_note",
    "accountNote",
    "note",
];
/// Longest label kept (the predecessor's limit).
const MAX_LABEL_CHARS: usize = 64;
/// Keys that mark an object as a predecessor `accounts.json` entry (besides `token`).
const LEGACY_MARKERS: [&str; 4] = ["id", "status", "usage", "cachedQuota"];
/// One string value and the field it came from, for error messages.
struct Found {
    /// The value, trimmed, without a `Bearer ` prefix.
    value: String,
    /// The dotted key it was read from.
    field: &'static str,
}

/// Which kind of token a bare string is.
enum TokenKind {
    /// A single-use refresh token (`rt_…`, `oaistb_rt_…`).
    Refresh,
    /// A JWT access token.
    Access,
}

/// A line holding just a token (refresh token or access JWT).
pub fn from_token(raw: &str, at: &str, now: UnixMs) -> Result<AccountRecord, ImportError> {
    let token = clean(raw);
    match kind_of(&token) {
        Some(TokenKind::Refresh) => from_tokens(
            None,
            Some(Found {
                value: token,
                field: "token",
            }),
            None,
            None,
            at,
            now,
        ),
        Some(TokenKind::Access) => from_tokens(
            Some(Found {
                value: token,
                field: "token",
            }),
            None,
            None,
            None,
            at,
            now,
        ),
        None => Err(ImportError::at(
            at,
            "neither a refresh token (rt_…, oaistb_rt_…) nor a JWT access token",
        )),
    }
}

/// One JSON object in any supported shape.
pub fn from_object(
    obj: &Map<String, Value>,
    at: &str,
    now: UnixMs,
) -> Result<AccountRecord, ImportError> {
    if is_legacy(obj) {
        return from_legacy(obj, at, now);
    }
    if obj.get("auth_mode").and_then(Value::as_str) == Some("apikey")
        && lookup(obj, "tokens").is_none()
    {
        return Err(ImportError::at(
            at,
            "field `auth_mode`: this auth.json holds an API key, not ChatGPT tokens",
        ));
    }
    let access = find(obj, &ACCESS_KEYS, at)?;
    let refresh = find(obj, &REFRESH_KEYS, at)?;
    let id_token = find(obj, &ID_KEYS, at)?;
    let label = find(obj, &LABEL_KEYS, at)?.map(|f| truncate_label(&f.value));
    let mut rec = from_tokens(access, refresh, id_token, label, at, now)?;
    if rec.identity.chatgpt_account_id.is_none() {
        rec.identity.chatgpt_account_id = find(obj, &ACCOUNT_ID_KEYS, at)?.map(|f| f.value);
    }
    check_types(obj, &[("last_refresh", Kind::String)], at)?;
    if let Some(t) = obj.get("last_refresh").and_then(Value::as_str) {
        rec.tokens.last_refresh = parse_time(t).or(rec.tokens.last_refresh);
    }
    Ok(rec)
}

/// Builds a record from loose tokens, checking that it can ever work: an access token must be a
/// JWT naming its workspace, and an expired one needs a refresh token beside it.
fn from_tokens(
    access: Option<Found>,
    refresh: Option<Found>,
    id_token: Option<Found>,
    label: Option<String>,
    at: &str,
    now: UnixMs,
) -> Result<AccountRecord, ImportError> {
    let id_claims = match &id_token {
        Some(f) => Claims::decode(&f.value).map_err(|e| ImportError::field(at, f.field, e))?,
        None => Claims::default(),
    };
    let (access_token, claims) = match &access {
        Some(f) => (
            f.value.clone(),
            Claims::decode(&f.value).map_err(|e| ImportError::field(at, f.field, e))?,
        ),
        None if refresh.is_some() => (String::new(), Claims::default()),
        None => {
            return Err(ImportError::at(
                at,
                "no access token or refresh token (looked for `token`, `access_token`, `tokens.access_token`, `refresh_token`, `refreshToken`, `credentials.*`)",
            ));
        }
    };
    if let Some(f) = &access {
        if refresh.is_none() && claims.exp.is_some_and(|exp| exp <= now) {
            return Err(ImportError::field(
                at,
                f.field,
                "the access token has expired and there is no refresh token to renew it",
            ));
        }
    }
    let merged = claims.clone().or(id_claims);
    let tokens = Tokens {
        access_token,
        refresh_token: refresh.map(|f| f.value),
        id_token: id_token.map(|f| f.value),
        // A refresh-only account has no usable access token: mark it expired now so the
        // account's actor refreshes at once instead of failing its first request.
        expires_at: if access.is_some() {
            claims.exp
        } else {
            Some(now)
        },
        last_refresh: None,
    };
    let mut rec = AccountRecord::new(new_id(), tokens, now);
    rec.identity.email = merged.email;
    rec.identity.plan = merged.chatgpt_plan_type;
    rec.identity.chatgpt_account_id = merged.chatgpt_account_id;
    rec.identity.chatgpt_user_id = merged.chatgpt_user_id;
    rec.identity.label = label;
    Ok(rec)
}

/// A predecessor `accounts.json` entry: converted by `rotor_actors::legacy::import` (docs/quota.md
/// rule 8), then identity back-filled from the JWT. A dead entry (expired token, no refresh
/// token) is kept as `expired` — the predecessor's file is not bad because one account died.
fn from_legacy(
    obj: &Map<String, Value>,
    at: &str,
    now: UnixMs,
) -> Result<AccountRecord, ImportError> {
    check_types(obj, &LEGACY_TYPES, at)?;
    // An exported refresh-only account has `token: ""`; the legacy reader wants a token, so
    // give it a placeholder and put the empty one back (due for refresh at once).
    let refresh_only = obj
        .get("token")
        .and_then(Value::as_str)
        .is_some_and(str::is_empty)
        && obj
            .get("refreshToken")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty());
    let mut entry = obj.clone();
    if refresh_only {
        entry.insert("token".into(), Value::String("refresh-only".into()));
    }
    let mut rec = rotor_actors::legacy::import(&Value::Object(entry), now)
        .map_err(|e| ImportError::at(at, e))?;
    if refresh_only {
        rec.tokens.access_token = String::new();
        rec.tokens.expires_at = Some(now);
    }
    if rec.id.len() != 16
        || !rec
            .id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        rec.id = new_id();
    }
    let claims = if rec.tokens.access_token.is_empty() && rec.tokens.refresh_token.is_some() {
        Claims::default()
    } else {
        Claims::decode(&rec.tokens.access_token).map_err(|e| ImportError::field(at, "token", e))?
    };
    let id_claims = rec
        .tokens
        .id_token
        .as_deref()
        .and_then(|t| Claims::decode(t).ok())
        .unwrap_or_default();
    let merged = claims.clone().or(id_claims);
    let ident = &mut rec.identity;
    ident.email = ident.email.take().or(merged.email);
    ident.plan = ident.plan.take().or(merged.chatgpt_plan_type);
    ident.chatgpt_account_id = ident
        .chatgpt_account_id
        .take()
        .or(merged.chatgpt_account_id);
    ident.chatgpt_user_id = ident.chatgpt_user_id.take().or(merged.chatgpt_user_id);
    ident.label = ident.label.take().map(|l| truncate_label(&l));
    rec.tokens.expires_at = rec.tokens.expires_at.or(claims.exp);
    let dead =
        rec.tokens.refresh_token.is_none() && rec.tokens.expires_at.is_some_and(|e| e <= now);
    if dead && rec.status == Status::Active {
        rec.status = Status::Expired;
        rec.status_reason = Some("needs login".into());
    }
    Ok(rec)
}

/// True if `obj` looks like an entry of the predecessor's `accounts.json`.
fn is_legacy(obj: &Map<String, Value>) -> bool {
    obj.get("token").is_some_and(Value::is_string)
        && LEGACY_MARKERS.iter().any(|k| obj.contains_key(*k))
}

/// Classifies a bare token string.
fn kind_of(token: &str) -> Option<TokenKind> {
    if token.starts_with("rt_") || token.starts_with("oaistb_rt_") {
        Some(TokenKind::Refresh)
    } else if rotor_actors::jwt::is_jwt(token) {
        Some(TokenKind::Access)
    } else {
        None
    }
}

/// The first present, non-null key of `keys`; a present key that is not a string is an error.
fn find(
    obj: &Map<String, Value>,
    keys: &[&'static str],
    at: &str,
) -> Result<Option<Found>, ImportError> {
    for key in keys {
        match lookup(obj, key) {
            None | Some(Value::Null) => continue,
            Some(Value::String(s)) if clean(s).is_empty() => continue,
            Some(Value::String(s)) => {
                return Ok(Some(Found {
                    value: clean(s),
                    field: key,
                }));
            }
            Some(v) => {
                let msg = format!("expected a string, found {}", type_of(v));
                return Err(ImportError::field(at, key, msg));
            }
        }
    }
    Ok(None)
}

/// Looks up a dotted path (`tokens.access_token`).
pub(super) fn lookup<'a>(obj: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let mut cur = obj.get(parts.next()?)?;
    for p in parts {
        cur = cur.as_object()?.get(p)?;
    }
    Some(cur)
}

/// Trims whitespace and a `Bearer ` prefix.
fn clean(raw: &str) -> String {
    let t = raw.trim();
    t.strip_prefix("Bearer ").unwrap_or(t).trim().to_owned()
}

/// Labels are free text for humans; keep them short.
fn truncate_label(label: &str) -> String {
    label.trim().chars().take(MAX_LABEL_CHARS).collect()
}

/// RFC 3339 (as in `auth.json`'s `last_refresh`) → unix ms.
fn parse_time(s: &str) -> Option<UnixMs> {
    let t = humantime::parse_rfc3339_weak(s).ok()?;
    let ms = t.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis();
    UnixMs::try_from(ms).ok()
}

/// A fresh daemon account id: 16 lowercase hex chars.
pub fn new_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}
