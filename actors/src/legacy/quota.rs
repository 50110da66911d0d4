//! The predecessor's `cachedQuota` ↔ our [`Quota`]: `rate_limit` is the primary bucket,
//! `secondary_rate_limit` the secondary, `code_review_rate_limit` the code-review one and
//! `rate_limits_by_limit_id` the named extra limits; resets are unix seconds there, ms here.

use serde_json::{Map, Value, json};

use crate::UnixMs;
use crate::quota::{Bucket, ExtraLimit, Quota};

/// Reads a `cachedQuota` object fetched at `fetched_at`.
pub fn import(cq: &Value, fetched_at: Option<UnixMs>) -> Quota {
    let mut q = Quota {
        plan_type: cq
            .get("plan_type")
            .and_then(Value::as_str)
            .filter(|p| *p != "unknown")
            .map(str::to_string),
        primary: bucket(cq.get("rate_limit"), fetched_at),
        secondary: bucket(cq.get("secondary_rate_limit"), fetched_at),
        code_review: bucket(cq.get("code_review_rate_limit"), fetched_at),
        fetched_at,
        ..Quota::default()
    };
    if let Some(map) = cq.get("rate_limits_by_limit_id").and_then(Value::as_object) {
        for (id, x) in map {
            let extra = ExtraLimit {
                name: x
                    .get("limit_name")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                primary: bucket(Some(x), fetched_at),
                secondary: bucket(x.get("secondary_rate_limit"), fetched_at),
            };
            q.extra.insert(id.replace('-', "_"), extra);
        }
    }
    q.credits = crate::quota::usage::credits(cq);
    q
}

fn bucket(w: Option<&Value>, observed_at: Option<UnixMs>) -> Option<Bucket> {
    let w = w.filter(|w| w.is_object())?;
    let used = w.get("used_percent").and_then(Value::as_f64).unwrap_or(0.0);
    Some(Bucket {
        used_percent: used,
        window_secs: w.get("limit_window_seconds").and_then(Value::as_u64),
        reset_at: w
            .get("reset_at")
            .and_then(Value::as_f64)
            .map(|s| (s * 1000.0) as i64),
        limit_reached: w
            .get("limit_reached")
            .and_then(Value::as_bool)
            .unwrap_or(used >= 100.0),
        observed_at,
        recheck_at: None,
    })
}

/// Writes a `cachedQuota` object (`null` when nothing is known).
pub fn export(q: &Quota) -> Value {
    if *q == Quota::default() {
        return Value::Null;
    }
    let mut extra = Map::new();
    for (id, x) in &q.extra {
        let mut v = window(x.primary.as_ref());
        if let Value::Object(m) = &mut v {
            m.insert("limit_id".into(), json!(id));
            m.insert(
                "limit_name".into(),
                json!(x.name.clone().unwrap_or_else(|| id.clone())),
            );
            m.insert("secondary_rate_limit".into(), window(x.secondary.as_ref()));
        }
        extra.insert(id.clone(), v);
    }
    json!({
        "plan_type": q.plan_type.clone().unwrap_or_else(|| "unknown".into()),
        "rate_limit": window(q.primary.as_ref()),
        "secondary_rate_limit": window(q.secondary.as_ref()),
        "code_review_rate_limit": window(q.code_review.as_ref()),
        "rate_limits_by_limit_id": if extra.is_empty() { Value::Null } else { Value::Object(extra) },
        "credits": q.credits.as_ref().map(|c| json!({
            "has_credits": c.has_credits, "unlimited": c.unlimited,
            "balance": c.balance.as_ref().and_then(|b| b.parse::<f64>().ok()),
        })),
    })
}

fn window(b: Option<&Bucket>) -> Value {
    let Some(b) = b else { return Value::Null };
    json!({
        "allowed": !b.limit_reached,
        "limit_reached": b.limit_reached,
        "used_percent": b.used_percent,
        "remaining_percent": (100.0 - b.used_percent.clamp(0.0, 100.0)).round(),
        "reset_at": b.reset_at.map(|ms| ms / 1000),
        "limit_window_seconds": b.window_secs,
    })
}
