//! JSON shapes the admin API and the dashboard show. An account is its pool
//! [`AccountView`] (which never holds a token) plus what an operator asks next: every quota
//! bucket as a list with its used %, reset time and "resets in", and the remaining cooldown.
//! The compact row of the live feed carries the same facts with short keys, because the
//! dashboard polls it for 1 000 accounts every few seconds. The account files quarantined at
//! start are listed here too, scrubbed of anything that could be a token.

use crate::store::Quarantined;
use rotor_actors::quota::{Bucket, BucketId};
use rotor_actors::{AccountView, PoolSummary, Status, UnixMs};
use serde::Serialize;
use serde_json::{Value, json};

/// One quota bucket as shown to operators.
#[derive(Debug, Clone, Serialize)]
pub struct BucketView {
    /// Stable name: `primary`, `secondary`, `code_review`, `<limit id>.primary|secondary`.
    pub name: String,
    /// Human title: "5h", "weekly", "code review", "codex_bengalfox (5h)".
    pub title: String,
    /// Share used, 0–100 (100 when the window is exhausted, whatever upstream last said).
    pub used_percent: f64,
    /// The window is exhausted.
    pub limit_reached: bool,
    /// Window length in seconds, when known.
    pub window_secs: Option<u64>,
    /// When the window resets (unix ms).
    pub reset_at: Option<UnixMs>,
    /// Seconds until the reset, from the time of the answer (0 when past).
    pub resets_in_secs: Option<i64>,
    /// The same as a human duration ("2h 3m 4s").
    pub resets_in: Option<String>,
}

/// The used share of a bucket as operators see it, 0–100: 100 once the window is exhausted,
/// whatever upstream last said (a 429 can lock a window upstream reported at 97 %).
fn used_of(b: &Bucket) -> f64 {
    if b.limit_reached {
        100.0
    } else {
        b.used_percent.clamp(0.0, 100.0)
    }
}

/// Human duration of whole seconds ("1h 2m 3s"; "0s" for anything not positive).
pub fn human_secs(secs: i64) -> String {
    if secs <= 0 {
        return "0s".into();
    }
    humantime::format_duration(std::time::Duration::from_secs(secs as u64)).to_string()
}

/// Title of a window from its length: "5h", "weekly", else the humanised length.
fn window_title(window_secs: Option<u64>, fallback: &str) -> String {
    match window_secs {
        Some(604_800) => "weekly".into(),
        Some(s) if s > 0 => human_secs(s as i64),
        _ => fallback.into(),
    }
}

/// The bucket list of an account, in display order.
pub fn buckets(v: &AccountView, now: UnixMs) -> Vec<BucketView> {
    v.quota.iter().map(|(id, b)| bucket(id, b, now)).collect()
}

/// One bucket as shown.
fn bucket(id: BucketId<&str>, b: &Bucket, now: UnixMs) -> BucketView {
    let title = match id {
        BucketId::Primary => window_title(b.window_secs, "primary"),
        BucketId::Secondary => "weekly".into(),
        BucketId::CodeReview => "code review".into(),
        BucketId::Extra(limit, span) => {
            format!("{limit} ({})", window_title(b.window_secs, span.as_str()))
        }
    };
    let resets_in_secs = b.reset_at.map(|r| ((r - now) / 1000).max(0));
    BucketView {
        title,
        used_percent: used_of(b),
        limit_reached: b.limit_reached,
        window_secs: b.window_secs,
        reset_at: b.reset_at,
        resets_in: resets_in_secs.map(human_secs),
        resets_in_secs,
        name: id.to_string(),
    }
}

/// An account for `/admin/accounts[/{id}]`: every field of the pool's view, plus `label`,
/// `plan`, `buckets` and `cooldown_in_secs`.
pub fn account(v: &AccountView, now: UnixMs) -> Value {
    let mut j = serde_json::to_value(v).unwrap_or_else(|_| json!({ "id": v.id }));
    if let Value::Object(map) = &mut j {
        let label = v
            .identity
            .label
            .clone()
            .or_else(|| v.identity.email.clone());
        map.insert("label".into(), json!(label));
        map.insert("plan".into(), json!(v.identity.plan));
        map.insert("buckets".into(), json!(buckets(v, now)));
        let cooldown = v.cooldown_until.map(|c| ((c - now) / 1000).max(0));
        map.insert("cooldown_in_secs".into(), json!(cooldown));
    }
    j
}

/// The compact row of one account in the live feed.
pub fn row(v: &AccountView) -> Value {
    let b: Vec<Value> = v
        .quota
        .buckets()
        .into_iter()
        .map(|(name, b)| {
            // A locked bucket shows when its lock may lift: a short 429 is a short lock, not
            // the rest of the window (Bucket::lock_until).
            let until = if b.limit_reached {
                b.lock_until()
            } else {
                b.reset_at
            };
            json!([
                name,
                (used_of(b) * 10.0).round() / 10.0,
                b.limit_reached,
                until,
                b.window_secs
            ])
        })
        .collect();
    let u = &v.usage;
    json!({
        "id": v.id,
        "label": v.identity.label.as_ref().or(v.identity.email.as_ref()),
        "plan": v.identity.plan,
        "ds": v.derived_status,
        "st": v.status,
        "why": v.status_reason,
        "err": v.last_error,
        "b": b,
        "l": v.leases,
        "r": u.requests,
        "tk": u.tokens.input_tokens + u.tokens.output_tokens,
        "cd": v.cooldown_until,
        "h": v.holds.iter().map(|h| json!([h.kind, h.until])).collect::<Vec<_>>(),
        "v": v.verify,
        "lu": u.last_used,
    })
}

/// Headroom of the pool: how many accounts could take a request now, and how much of the
/// short and weekly windows is left on average over the accounts in service (all but
/// disabled, banned and expired ones) that reported that window — with how many did, so a
/// figure from 3 of 200 accounts does not read like the pool's.
pub fn headroom(accounts: &[AccountView]) -> Value {
    let in_service: Vec<&AccountView> = accounts
        .iter()
        .filter(|a| {
            !matches!(
                a.status,
                Status::Disabled | Status::Banned | Status::Expired
            )
        })
        .collect();
    let left = |pick: fn(&AccountView) -> Option<&Bucket>| -> (usize, Option<f64>) {
        let used: Vec<f64> = in_service
            .iter()
            .filter_map(|a| pick(a))
            .map(used_of)
            .collect();
        let avg = (!used.is_empty()).then(|| used.iter().sum::<f64>() / used.len() as f64);
        (used.len(), avg.map(|u| (100.0 - u).clamp(0.0, 100.0)))
    };
    let (primary_reporting, primary_left) = left(|a| a.quota.primary.as_ref());
    let (weekly_reporting, weekly_left) = left(|a| a.quota.secondary.as_ref());
    json!({
        "usable_accounts": accounts.iter().filter(|a| a.derived_status == "active").count(),
        "in_service": in_service.len(),
        "primary_reporting": primary_reporting,
        "primary_left_percent": primary_left,
        "weekly_reporting": weekly_reporting,
        "weekly_left_percent": weekly_left,
        "leases": accounts.iter().map(|a| u64::from(a.leases)).sum::<u64>(),
    })
}

/// The account files quarantined at start, for the admin API: where each is now and why it
/// did not load. The reason is scrubbed of secrets — a JSON error can quote the value it
/// choked on, and in an account file that value may be a token.
pub fn quarantined(list: &[Quarantined]) -> Value {
    let files: Vec<Value> = list
        .iter()
        .map(|q| {
            json!({
                "file": q.path.file_name().map(|n| n.to_string_lossy()),
                "path": q.path.display().to_string(),
                "moved_to": q.moved_to.as_ref().map(|p| p.display().to_string()),
                "reason": crate::logging::redact(&q.reason),
            })
        })
        .collect();
    json!(files)
}

/// "1 account file quarantined" / "N account files quarantined".
fn quarantined_text(n: usize) -> String {
    format!(
        "{n} account file{} quarantined",
        if n == 1 { "" } else { "s" }
    )
}

/// Why the pool does or does not serve, in one sentence (for `/readyz` and the dashboard),
/// naming the account files quarantined at start: they hold accounts the pool does not have.
pub fn serving_reason(s: &PoolSummary, quarantined: usize, now: UnixMs) -> String {
    let reason = pool_reason(s, now);
    match quarantined {
        0 => reason,
        n if s.total == 0 => format!(
            "no account loaded: {} (unreadable; moved aside, see the log)",
            quarantined_text(n)
        ),
        n => format!("{reason}; {}", quarantined_text(n)),
    }
}

/// [`serving_reason`] from the pool alone. `active` in the summary includes rate-limited and
/// cooling-down accounts.
fn pool_reason(s: &PoolSummary, now: UnixMs) -> String {
    let usable = s.active.saturating_sub(s.rate_limited + s.cooling_down);
    if s.serving && usable == 0 && s.cooling_down > 0 {
        // The pool never refuses for cooldowns alone: the account whose cooldown ends first
        // still serves (docs/failures.md, Cloudflare).
        return format!(
            "serving on cooling accounts: all {} usable accounts are cooling down",
            s.cooling_down
        );
    }
    if s.serving {
        return format!("{usable} of {} accounts can serve", s.total);
    }
    if s.total == 0 {
        return "no accounts in the pool".into();
    }
    if s.active > 0 && usable == 0 && s.rate_limited > 0 {
        let when = s
            .soonest_reset_at
            .map(|r| format!("; soonest reset in {}", human_secs((r - now) / 1000)))
            .unwrap_or_default();
        return format!(
            "every active account is rate limited ({}) or cooling down ({}){when}",
            s.rate_limited, s.cooling_down
        );
    }
    format!(
        "no account can serve: {} disabled, {} expired, {} banned, {} refreshing, {} cooling down, {} rate limited",
        s.disabled, s.expired, s.banned, s.refreshing, s.cooling_down, s.rate_limited
    )
}

#[cfg(test)]
mod tests {
    use super::serving_reason;
    use rotor_actors::PoolSummary;

    #[test]
    fn a_pool_serving_only_on_cooling_accounts_says_so_instead_of_none_can_serve() {
        let all_cooling = PoolSummary {
            total: 10,
            active: 10,
            cooling_down: 10,
            serving: true,
            ..PoolSummary::default()
        };
        let reason = serving_reason(&all_cooling, 0, 0);
        assert!(!reason.starts_with("0 of"), "{reason}");
        assert!(
            reason.contains("10 usable accounts are cooling down"),
            "{reason}"
        );
        let healthy = PoolSummary {
            total: 10,
            active: 10,
            cooling_down: 3,
            serving: true,
            ..PoolSummary::default()
        };
        assert_eq!(serving_reason(&healthy, 0, 0), "7 of 10 accounts can serve");
    }
}
