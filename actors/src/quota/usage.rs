//! Parses the `/wham/usage` JSON (docs/protocol.md §9) into an [`Observation`]. Unlike headers, the
//! body carries an explicit `limit_reached` flag and `additional_rate_limits` keyed by metered
//! feature; a body without `rate_limit` (e.g. an error JSON) is rejected.

use serde_json::Value;

use super::{Credits, ExtraObservation, Observation, Window, apply::normalize_limit};
use crate::UnixMs;

/// Parses a `/wham/usage` body produced at `at` (the probe's start time).
///
/// `"rate_limit": null` is a valid answer (the backend's OpenAPI model makes it optional): no
/// window is reported, so none is replaced, and the rest of the body (plan, credits, extra
/// limits) still counts. A body without the `rate_limit` key is not a usage answer.
pub fn parse(body: &Value, at: UnixMs) -> Result<Observation, String> {
    let rl = body
        .get("rate_limit")
        .filter(|v| v.is_object() || v.is_null())
        .ok_or_else(|| "usage response has no rate_limit object".to_string())?;
    let (primary, secondary) = if rl.is_null() {
        (None, None)
    } else {
        windows(rl, at)
    };
    let mut obs = Observation {
        at,
        plan_type: body
            .get("plan_type")
            .and_then(Value::as_str)
            .map(str::to_string),
        primary,
        secondary,
        ..Observation::default()
    };
    if let Some(cr) = body.get("code_review_rate_limit").filter(|v| v.is_object()) {
        obs.code_review = windows(cr, at).0;
    }
    for item in body
        .get("additional_rate_limits")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let id = item
            .get("metered_feature")
            .or_else(|| item.get("limit_name"))
            .and_then(Value::as_str)
            .map(normalize_limit);
        let (Some(id), Some(rl)) = (id, item.get("rate_limit").filter(|v| v.is_object())) else {
            continue;
        };
        let (primary, secondary) = windows(rl, at);
        let name = item
            .get("limit_name")
            .and_then(Value::as_str)
            .map(str::to_string);
        if matches!(
            id.as_str(),
            "codex_code_review" | "codex_review" | "code_review"
        ) {
            obs.code_review = obs.code_review.or(primary);
        } else {
            obs.extra.insert(
                id,
                ExtraObservation {
                    name,
                    primary,
                    secondary,
                },
            );
        }
    }
    obs.credits = credits(body);
    Ok(obs)
}

/// The `credits` object of a usage body (or of a legacy record that stored one): `None` when
/// absent or not an object; a missing flag reads `false`, a numeric balance as its text.
pub(crate) fn credits(body: &Value) -> Option<Credits> {
    body.get("credits")
        .filter(|v| v.is_object())
        .map(|c| Credits {
            has_credits: c
                .get("has_credits")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            unlimited: c.get("unlimited").and_then(Value::as_bool).unwrap_or(false),
            balance: match c.get("balance") {
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Number(n)) => Some(n.to_string()),
                _ => None,
            },
        })
}

/// Primary and secondary windows of one `rate_limit` object. The single upstream
/// `limit_reached` flag is attributed to the primary window unless the secondary is the full one.
fn windows(rl: &Value, at: UnixMs) -> (Option<Window>, Option<Window>) {
    let flag = rl
        .get("limit_reached")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let secondary = rl.get("secondary_window").and_then(|w| window(w, at));
    let secondary_full = secondary.as_ref().is_some_and(|w| w.used_percent >= 100.0);
    let primary = rl
        .get("primary_window")
        .and_then(|w| window(w, at))
        .map(|mut w| {
            w.limit_reached = Some(w.used_percent >= 100.0 || (flag && !secondary_full));
            w
        });
    let secondary = secondary.map(|mut w| {
        w.limit_reached = Some(w.used_percent >= 100.0);
        w
    });
    (primary, secondary)
}

fn window(w: &Value, at: UnixMs) -> Option<Window> {
    let used = w.get("used_percent").and_then(Value::as_f64)?;
    let reset_at = w
        .get("reset_at")
        .and_then(Value::as_i64)
        .map(|s| s.saturating_mul(1000))
        .or_else(|| {
            w.get("reset_after_seconds")
                .and_then(Value::as_i64)
                .map(|s| at + s.saturating_mul(1000))
        });
    Some(Window {
        used_percent: used,
        window_secs: w.get("limit_window_seconds").and_then(Value::as_u64),
        reset_at,
        limit_reached: None,
    })
}
