//! Import and export of the predecessor's `accounts.json` entries (docs/predecessor.md §2.2): camelCase
//! top level, snake_case `usage` and `cachedQuota`, ISO timestamps and unix-second resets. The
//! import applies the one-shot migration of the retired rate-limit lock (docs/quota.md rule 8,
//! docs/predecessor.md §2.5): `rate_limited` becomes `active`; a future `usage.rate_limit_until`
//! becomes a locked primary bucket unless the cached quota was fetched after it; a past one is
//! dropped. The export never writes `rate_limit_until` or `rate_limited`.

mod quota;

use serde_json::{Value, json};

use crate::{
    AccountRecord, Identity, Status, Tokens, UnixMs, Usage, UsageCounters, jwt, quota::Bucket,
};

/// Converts one predecessor entry into a record at time `now`.
pub fn import(entry: &Value, now: UnixMs) -> Result<AccountRecord, String> {
    let obj = entry.as_object().ok_or("entry is not a JSON object")?;
    let id = text(entry, "id").ok_or("entry has no id")?;
    let safe = id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !safe {
        return Err(format!("entry id {id:?} is not a safe file name"));
    }
    let access = text(entry, "token").ok_or_else(|| format!("entry {id} has no token"))?;
    let status = match obj
        .get("status")
        .and_then(Value::as_str)
        .unwrap_or("active")
    {
        "active" | "rate_limited" | "quota_exhausted" | "refreshing" => Status::Active,
        "expired" => Status::Expired,
        "disabled" => Status::Disabled,
        "banned" => Status::Banned,
        other => return Err(format!("entry {id} has unknown status {other:?}")),
    };
    let usage = entry.get("usage").cloned().unwrap_or(Value::Null);
    let fetched_at = entry.get("quotaFetchedAt").and_then(iso_ms);
    let mut q = entry
        .get("cachedQuota")
        .filter(|v| v.is_object())
        .map(|cq| quota::import(cq, fetched_at))
        .unwrap_or_default();
    if entry.get("quotaVerifyRequired").and_then(Value::as_bool) == Some(true) {
        q.verify_since = Some(now);
    }
    let until = usage.get("rate_limit_until").and_then(iso_ms);
    let quota_is_fresh =
        q != crate::quota::Quota::default() && fetched_at.zip(until).is_some_and(|(f, u)| f > u);
    if let Some(until) = until.filter(|u| *u > now)
        && !quota_is_fresh
    {
        let window = usage.get("limit_window_seconds").and_then(Value::as_u64);
        let b = q.primary.get_or_insert_with(|| Bucket {
            window_secs: window,
            ..Bucket::default()
        });
        b.limit_reached = true;
        b.used_percent = b.used_percent.max(100.0);
        b.reset_at = Some(until);
        b.recheck_at = None;
        q.fetched_at = Some(now);
    }
    let tokens = Tokens {
        expires_at: jwt::expires_at(&access),
        access_token: access,
        refresh_token: text(entry, "refreshToken"),
        id_token: text(entry, "idToken"),
        last_refresh: None,
    };
    let identity = Identity {
        email: text(entry, "email"),
        plan: text(entry, "planType"),
        chatgpt_account_id: text(entry, "accountId"),
        chatgpt_user_id: text(entry, "userId"),
        label: text(entry, "label"),
    };
    let n = |k: &str| usage.get(k).and_then(Value::as_u64).unwrap_or(0);
    let counters = UsageCounters {
        requests: n("request_count"),
        tokens: Usage {
            input_tokens: n("input_tokens"),
            cached_tokens: n("cached_tokens"),
            output_tokens: n("output_tokens"),
            reasoning_tokens: 0,
        },
        last_used: usage.get("last_used").and_then(iso_ms),
        failures: 0, // empty responses were upstream cuts, not the account's fault
    };
    let mut rec = AccountRecord::new(
        id,
        tokens,
        entry.get("addedAt").and_then(iso_ms).unwrap_or(now),
    );
    rec.identity = identity;
    rec.status = status;
    rec.quota = q;
    rec.usage = counters;
    Ok(rec)
}

/// Converts a record into a predecessor entry (tokens included: this is an export).
pub fn export(rec: &AccountRecord) -> Value {
    let u = &rec.usage;
    json!({
        "id": rec.id,
        "token": rec.tokens.access_token,
        "refreshToken": rec.tokens.refresh_token,
        "email": rec.identity.email,
        "accountId": rec.identity.chatgpt_account_id,
        "userId": rec.identity.chatgpt_user_id,
        "label": rec.identity.label,
        "planType": rec.identity.plan,
        "status": rec.status.as_str(),
        "usage": {
            "request_count": u.requests,
            "input_tokens": u.tokens.input_tokens,
            "output_tokens": u.tokens.output_tokens,
            "cached_tokens": u.tokens.cached_tokens,
            "empty_response_count": 0,
            "last_used": u.last_used.map(iso),
        },
        "addedAt": iso(rec.added_at),
        "cachedQuota": quota::export(&rec.quota),
        "quotaFetchedAt": rec.quota.fetched_at.map(iso),
        "quotaVerifyRequired": rec.quota.verify_since.is_some(),
    })
}

/// A non-empty string field.
fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// An ISO-8601 timestamp (as the predecessor writes them) or unix ms, as unix ms.
fn iso_ms(v: &Value) -> Option<UnixMs> {
    match v {
        Value::String(s) => {
            let t = humantime::parse_rfc3339_weak(s.trim()).ok()?;
            let d = t.duration_since(std::time::UNIX_EPOCH).ok()?;
            i64::try_from(d.as_millis()).ok()
        }
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

/// Unix ms as an ISO-8601 UTC timestamp with milliseconds.
fn iso(ms: UnixMs) -> String {
    let t =
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_millis(t).to_string()
}
