//! Watches the pool through `GET /admin/accounts` during a run and records every lock that
//! outlived its deadline: a quota lock must be gone by its `reset_at` (or its docs/quota.md rule 5
//! `recheck_at`, whichever is sooner) plus one tick plus a probe round trip, a Cloudflare
//! cooldown by its `cooldown_until` plus the same slack. No lock may be unescapable.

use serde_json::Value;

/// One lock seen past its deadline.
#[derive(Debug, Clone)]
pub struct Overdue {
    /// Account id.
    pub id: String,
    /// What was locked (`primary`, `secondary`, `cooldown`).
    pub what: String,
    /// How far past deadline + slack, in ms.
    pub late_ms: i64,
}

/// Checks one `/admin/accounts` answer taken at `now_ms`; `slack_ms` is tick + probe time.
pub fn overdue(accounts: &Value, now_ms: i64, slack_ms: i64) -> Vec<Overdue> {
    let mut out = Vec::new();
    for a in accounts["accounts"].as_array().into_iter().flatten() {
        let id = a["id"].as_str().unwrap_or("?").to_string();
        if a["status"] != "active" {
            continue;
        }
        for name in ["primary", "secondary"] {
            let b = &a["quota"][name];
            if b["limit_reached"] != true {
                continue;
            }
            let reset = b["reset_at"].as_i64();
            let recheck = b["recheck_at"].as_i64();
            let deadline = match (reset, recheck) {
                (Some(r), Some(c)) => r.min(c),
                (Some(r), None) => r,
                (None, Some(c)) => c,
                (None, None) => continue, // probed on the next tick; covered by the next sample
            };
            if now_ms > deadline + slack_ms {
                out.push(Overdue {
                    id: id.clone(),
                    what: name.into(),
                    late_ms: now_ms - deadline - slack_ms,
                });
            }
        }
        if let Some(until) = a["cooldown_until"].as_i64()
            && now_ms > until + slack_ms
            && a["derived_status"] == "cooling_down"
        {
            out.push(Overdue {
                id: id.clone(),
                what: "cooldown".into(),
                late_ms: now_ms - until - slack_ms,
            });
        }
    }
    out
}

/// Sum of in-flight leases over every account.
pub fn leases(accounts: &Value) -> u64 {
    accounts["accounts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["leases"].as_u64())
        .sum()
}
