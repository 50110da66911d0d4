//! Pool and account gauges, read from the pool at scrape time: whether the pool serves, leases
//! in flight, accounts by derived status (docs/quota.md rule 7) and quota used % per account and
//! bucket, each bucket named by its [`BucketId`](rotor_actors::quota::BucketId) as the admin
//! API and the dashboard name it.

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use rotor_actors::{AccountView, PoolSummary};
use std::sync::atomic::AtomicU64;

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

/// Label pairs of a scrape-time gauge; built once per scrape, so owned strings cost nothing
/// on the request path.
type Labels = Vec<(&'static str, String)>;

/// A family of float gauges.
type Gauges = Family<Labels, Gauge<f64, AtomicU64>>;

/// Registers a family in `registry` and returns it to be filled.
fn gauges(registry: &mut Registry, name: &str, help: &str) -> Gauges {
    let family = Gauges::default();
    registry.register(name, help, super::Listed(family.clone()));
    family
}

/// Sets the sample of `family` with `labels` to `value`.
fn set(family: &Gauges, labels: Labels, value: f64) {
    family.get_or_create(&labels).set(value);
}

/// Registers the pool and account families in `registry`, holding this scrape's values.
pub fn register(registry: &mut Registry, summary: &PoolSummary, accounts: &[AccountView]) {
    let serving = gauges(
        registry,
        "codex_rotor_pool_serving",
        "1 if some account can serve a request now, else 0",
    );
    set(&serving, vec![], f64::from(u8::from(summary.serving)));
    let in_flight = gauges(
        registry,
        "codex_rotor_pool_in_flight",
        "Leases held by requests in flight",
    );
    set(&in_flight, vec![], summary.in_flight as f64);
    let soonest = gauges(
        registry,
        "codex_rotor_pool_soonest_reset_timestamp_seconds",
        "Unix time of the soonest quota reset among exhausted accounts (absent if none)",
    );
    if let Some(at) = summary.soonest_reset_at {
        set(&soonest, vec![], at as f64 / 1000.0);
    }

    let by_status = gauges(
        registry,
        "codex_rotor_accounts",
        "Accounts by derived status (active with an exhausted bucket counts as rate_limited)",
    );
    for status in DERIVED_STATUSES {
        set(&by_status, vec![("derived_status", status.to_owned())], 0.0);
    }
    for a in accounts {
        by_status
            .get_or_create(&vec![("derived_status", a.derived_status.clone())])
            .inc();
    }

    let used = gauges(
        registry,
        "codex_rotor_account_quota_used_percent",
        "Share of a quota window used, per account and bucket (0-100)",
    );
    let reached = gauges(
        registry,
        "codex_rotor_account_quota_limit_reached",
        "1 if a quota window of the account is exhausted, per account and bucket",
    );
    let leases = gauges(
        registry,
        "codex_rotor_account_leases",
        "Leases held on the account by requests in flight",
    );
    for a in accounts {
        for (bucket, b) in a.quota.buckets() {
            let labels = vec![("account", a.id.clone()), ("bucket", bucket)];
            set(&used, labels.clone(), b.used_percent);
            set(&reached, labels, f64::from(u8::from(b.limit_reached)));
        }
        set(
            &leases,
            vec![("account", a.id.clone())],
            f64::from(a.leases),
        );
    }
}
