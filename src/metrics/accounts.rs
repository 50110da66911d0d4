//! Pool and account gauges, read from the pool at scrape time: whether the pool serves, leases
//! in flight, accounts by derived status (docs/quota.md rule 7) and quota used % per account and
//! bucket, each bucket named by its [`BucketId`](rotor_actors::quota::BucketId) as the admin
//! API and the dashboard name it.

use super::exposition::{Exposition, Kind};
use rotor_actors::{AccountView, PoolSummary};
use std::collections::BTreeMap;

/// Every derived status an account can show; each is rendered (as 0 when no account has it)
/// so dashboards and alerts see a stable set of series.
pub const DERIVED_STATUSES: [&str; 7] = [
    "active",
    "rate_limited",
    "cooling_down",
    "refreshing",
    "expired",
    "banned",
    "disabled",
];

/// Writes the pool and account families.
pub fn render(e: &mut Exposition, summary: &PoolSummary, accounts: &[AccountView]) {
    e.family(
        "codex_rotor_pool_serving",
        "1 if some account can serve a request now, else 0.",
        Kind::Gauge,
    );
    e.sample(
        "codex_rotor_pool_serving",
        &[],
        f64::from(u8::from(summary.serving)),
    );
    e.family(
        "codex_rotor_pool_in_flight",
        "Leases held by requests in flight.",
        Kind::Gauge,
    );
    e.sample("codex_rotor_pool_in_flight", &[], summary.in_flight as f64);
    e.family(
        "codex_rotor_pool_soonest_reset_timestamp_seconds",
        "Unix time of the soonest quota reset among exhausted accounts (absent if none).",
        Kind::Gauge,
    );
    if let Some(at) = summary.soonest_reset_at {
        e.sample(
            "codex_rotor_pool_soonest_reset_timestamp_seconds",
            &[],
            at as f64 / 1000.0,
        );
    }

    let mut by_status: BTreeMap<&str, u64> = DERIVED_STATUSES.iter().map(|s| (*s, 0)).collect();
    for a in accounts {
        *by_status.entry(a.derived_status.as_str()).or_default() += 1;
    }
    e.family(
        "codex_rotor_accounts",
        "Accounts by derived status (active with an exhausted bucket counts as rate_limited).",
        Kind::Gauge,
    );
    for (status, n) in &by_status {
        e.sample(
            "codex_rotor_accounts",
            &[("derived_status", status)],
            *n as f64,
        );
    }

    e.family(
        "codex_rotor_account_quota_used_percent",
        "Share of a quota window used, per account and bucket (0-100).",
        Kind::Gauge,
    );
    for a in accounts {
        for (bucket, b) in a.quota.buckets() {
            e.sample(
                "codex_rotor_account_quota_used_percent",
                &[("account", &a.id), ("bucket", &bucket)],
                b.used_percent,
            );
        }
    }
    e.family(
        "codex_rotor_account_quota_limit_reached",
        "1 if a quota window of the account is exhausted, per account and bucket.",
        Kind::Gauge,
    );
    for a in accounts {
        for (bucket, b) in a.quota.buckets() {
            e.sample(
                "codex_rotor_account_quota_limit_reached",
                &[("account", &a.id), ("bucket", &bucket)],
                f64::from(u8::from(b.limit_reached)),
            );
        }
    }
    e.family(
        "codex_rotor_account_leases",
        "Leases held on the account by requests in flight.",
        Kind::Gauge,
    );
    for a in accounts {
        e.sample(
            "codex_rotor_account_leases",
            &[("account", &a.id)],
            f64::from(a.leases),
        );
    }
}
