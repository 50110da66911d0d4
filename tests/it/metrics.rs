//! Prometheus `/metrics`: the exposition is checked with a strict parser of the text format
//! 0.0.4 (`metrics/prom.rs`), family by family, first on a registry fed known records (exact
//! values), then on a real daemon's scrape after real traffic through the simulator.

pub(crate) mod prom;
mod scrape;

use codex_rotor::Metrics;
use codex_rotor::RequestRecord;
use rotor_actors::quota::{Bucket, ExtraLimit, Quota};
use rotor_actors::{AccountView, Identity, PoolSummary, Status, Usage, UsageCounters};

/// Every family `/metrics` must expose, with its type.
pub const FAMILIES: &[(&str, &str)] = &[
    ("codex_rotor_requests_total", "counter"),
    ("codex_rotor_request_duration_seconds", "histogram"),
    ("codex_rotor_time_to_first_byte_seconds", "histogram"),
    ("codex_rotor_upstream_latency_seconds", "histogram"),
    ("codex_rotor_tokens_total", "counter"),
    ("codex_rotor_upstream_429_total", "counter"),
    ("codex_rotor_retries_total", "counter"),
    ("codex_rotor_failovers_total", "counter"),
    ("codex_rotor_actor_restarts_total", "counter"),
    ("codex_rotor_log_lines_dropped_total", "counter"),
    ("codex_rotor_store_fenced_writes_total", "counter"),
    ("codex_rotor_cluster_forwards_sent_total", "counter"),
    ("codex_rotor_cluster_forwards_received_total", "counter"),
    ("codex_rotor_cluster_unplaced_total", "counter"),
    ("codex_rotor_token_refreshes_total", "counter"),
    ("codex_rotor_pool_serving", "gauge"),
    ("codex_rotor_pool_in_flight", "gauge"),
    ("codex_rotor_pool_soonest_reset_timestamp_seconds", "gauge"),
    ("codex_rotor_accounts", "gauge"),
    ("codex_rotor_account_quota_used_percent", "gauge"),
    ("codex_rotor_account_quota_limit_reached", "gauge"),
    ("codex_rotor_account_leases", "gauge"),
];

/// A finished request as the proxy would record it.
fn record(
    route: &'static str,
    status: u16,
    ttfb_ms: Option<u64>,
    duration_ms: u64,
) -> RequestRecord {
    RequestRecord {
        at: 1_700_000_000_000,
        request_id: "req_1".into(),
        client_key: Some("ci".into()),
        route,
        model: Some("gpt-5.4".into()),
        account_id: Some("00000000000000a1".into()),
        status,
        ttfb_ms,
        duration_ms,
        usage: None,
        failovers: 0,
        retries: 0,
        upstream_429s: 0,
        error: None,
        forwarded_to: None,
        forwarded_from: None,
    }
}

/// A bucket at `used` percent.
fn bucket(used: f64, reached: bool) -> Bucket {
    Bucket {
        used_percent: used,
        window_secs: Some(18_000),
        reset_at: Some(1_700_000_600_000),
        limit_reached: reached,
        ..Bucket::default()
    }
}

/// An account view with the given derived status and quota.
pub fn view(id: &str, status: Status, derived: &str, quota: Quota) -> AccountView {
    AccountView {
        id: id.into(),
        identity: Identity::default(),
        status,
        status_reason: None,
        derived_status: derived.into(),
        quota,
        usage: UsageCounters::default(),
        leases: 2,
        cooldown_until: None,
        holds: Vec::new(),
        verify: false,
        last_error: None,
        token_expires_at: None,
    }
}

#[test]
fn the_registry_renders_every_family_with_exact_values() {
    let m = Metrics::new();
    let mut ok = record("responses", 200, Some(120), 900);
    ok.usage = Some(Usage {
        input_tokens: 100,
        cached_tokens: 20,
        output_tokens: 50,
        reasoning_tokens: 10,
    });
    ok.failovers = 1;
    ok.upstream_429s = 2;
    m.observe(&ok);
    m.observe(&ok);
    let mut limited = record("chat", 429, None, 30);
    limited.retries = 3;
    m.observe(&limited);
    m.upstream_latency(0.2);
    m.refresh_outcome("ok");
    m.refresh_outcome("permanent");
    m.actor_restart();

    let q1 = Quota {
        primary: Some(bucket(42.5, false)),
        secondary: Some(bucket(10.0, false)),
        ..Quota::default()
    };
    let mut q2 = Quota {
        primary: Some(bucket(100.0, true)),
        ..Quota::default()
    };
    // An odd limit id checks the label escaping round trip.
    q2.extra.insert(
        "we\"ird\\id".into(),
        ExtraLimit {
            name: None,
            primary: Some(bucket(7.0, false)),
            secondary: None,
        },
    );
    let accounts = vec![
        view("00000000000000a1", Status::Active, "active", q1),
        view("00000000000000a2", Status::Active, "rate_limited", q2),
        view(
            "00000000000000a3",
            Status::Disabled,
            "disabled",
            Quota::default(),
        ),
    ];
    let summary = PoolSummary {
        total: 3,
        active: 2,
        rate_limited: 1,
        disabled: 1,
        serving: true,
        soonest_reset_at: Some(1_700_000_600_000),
        in_flight: 4,
        ..PoolSummary::default()
    };
    let text = m.render(&summary, &accounts);
    let fams = prom::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    for (name, kind) in FAMILIES {
        let f = fams
            .get(*name)
            .unwrap_or_else(|| panic!("family {name} missing:\n{text}"));
        assert_eq!(f.kind, *kind, "{name}");
    }
    let one = |fam: &str, sample: &str, labels: &[(&str, &str)]| -> f64 {
        let f = &fams[fam];
        let s = f.with(sample, labels);
        assert_eq!(s.len(), 1, "{sample} {labels:?}: {s:?}");
        s[0].value
    };
    let req = "codex_rotor_requests_total";
    assert_eq!(
        one(req, req, &[("route", "responses"), ("status", "200")]),
        2.0
    );
    assert_eq!(one(req, req, &[("route", "chat"), ("status", "429")]), 1.0);
    let d = "codex_rotor_request_duration_seconds";
    assert_eq!(
        one(d, &format!("{d}_count"), &[("route", "responses")]),
        2.0
    );
    assert_eq!(
        one(
            d,
            &format!("{d}_bucket"),
            &[("route", "responses"), ("le", "0.5")]
        ),
        0.0
    );
    assert_eq!(
        one(
            d,
            &format!("{d}_bucket"),
            &[("route", "responses"), ("le", "1")]
        ),
        2.0
    );
    assert!((one(d, &format!("{d}_sum"), &[("route", "responses")]) - 1.8).abs() < 1e-9);
    let t = "codex_rotor_time_to_first_byte_seconds";
    assert_eq!(
        one(t, &format!("{t}_count"), &[("route", "responses")]),
        2.0
    );
    assert!(
        fams[t]
            .with(&format!("{t}_count"), &[("route", "chat")])
            .is_empty(),
        "no byte, no ttfb"
    );
    let u = "codex_rotor_upstream_latency_seconds";
    assert_eq!(one(u, &format!("{u}_bucket"), &[("le", "0.25")]), 1.0);
    let tok = "codex_rotor_tokens_total";
    for (kind, n) in [
        ("input", 200.0),
        ("cached", 40.0),
        ("output", 100.0),
        ("reasoning", 20.0),
    ] {
        assert_eq!(one(tok, tok, &[("kind", kind)]), n, "{kind}");
    }
    assert_eq!(
        one(
            "codex_rotor_upstream_429_total",
            "codex_rotor_upstream_429_total",
            &[]
        ),
        4.0
    );
    assert_eq!(
        one(
            "codex_rotor_failovers_total",
            "codex_rotor_failovers_total",
            &[]
        ),
        2.0
    );
    assert_eq!(
        one(
            "codex_rotor_retries_total",
            "codex_rotor_retries_total",
            &[]
        ),
        3.0
    );
    assert_eq!(
        one(
            "codex_rotor_actor_restarts_total",
            "codex_rotor_actor_restarts_total",
            &[]
        ),
        1.0
    );
    let r = "codex_rotor_token_refreshes_total";
    assert_eq!(one(r, r, &[("outcome", "ok")]), 1.0);
    assert_eq!(one(r, r, &[("outcome", "permanent")]), 1.0);
    assert_eq!(
        one("codex_rotor_pool_serving", "codex_rotor_pool_serving", &[]),
        1.0
    );
    assert_eq!(
        one(
            "codex_rotor_pool_in_flight",
            "codex_rotor_pool_in_flight",
            &[]
        ),
        4.0
    );
    let s = "codex_rotor_pool_soonest_reset_timestamp_seconds";
    assert_eq!(one(s, s, &[]), 1_700_000_600.0);
    let a = "codex_rotor_accounts";
    for (status, n) in [
        ("active", 1.0),
        ("rate_limited", 1.0),
        ("disabled", 1.0),
        ("banned", 0.0),
        ("expired", 0.0),
        ("cooling_down", 0.0),
        ("refreshing", 0.0),
    ] {
        assert_eq!(one(a, a, &[("derived_status", status)]), n, "{status}");
    }
    let p = "codex_rotor_account_quota_used_percent";
    assert_eq!(
        one(
            p,
            p,
            &[("account", "00000000000000a1"), ("bucket", "primary")]
        ),
        42.5
    );
    assert_eq!(
        one(
            p,
            p,
            &[("account", "00000000000000a1"), ("bucket", "secondary")]
        ),
        10.0
    );
    assert_eq!(
        one(
            p,
            p,
            &[
                ("account", "00000000000000a2"),
                ("bucket", "we\"ird\\id.primary")
            ]
        ),
        7.0
    );
    let l = "codex_rotor_account_quota_limit_reached";
    assert_eq!(
        one(
            l,
            l,
            &[("account", "00000000000000a2"), ("bucket", "primary")]
        ),
        1.0
    );
    assert_eq!(
        one(
            l,
            l,
            &[("account", "00000000000000a1"), ("bucket", "primary")]
        ),
        0.0
    );
    assert_eq!(
        one(
            "codex_rotor_account_leases",
            "codex_rotor_account_leases",
            &[("account", "00000000000000a3")]
        ),
        2.0
    );
}

#[test]
fn the_usage_series_buckets_requests_by_arrival_time() {
    let m = Metrics::new();
    let slot = m.series_slot_ms();
    let base = 1_700_000_000_000 - 1_700_000_000_000 % slot;
    for (offset, status) in [(0, 200), (1, 500), (slot, 200), (-3 * slot, 200)] {
        let mut r = record("responses", status, Some(5), 10);
        r.at = base + offset;
        r.usage = Some(Usage {
            input_tokens: 10,
            output_tokens: 5,
            ..Usage::default()
        });
        m.observe(&r);
    }
    let pts = m.series(base + slot + 1);
    let last = pts[pts.len() - 1];
    let prev = pts[pts.len() - 2];
    assert_eq!((last.t, last.requests, last.errors), (base + slot, 1, 0));
    assert_eq!(
        (prev.t, prev.requests, prev.errors, prev.input_tokens),
        (base, 2, 1, 20)
    );
    assert_eq!(
        pts[pts.len() - 5].requests,
        1,
        "a slot in the past is still filled"
    );
    assert_eq!(pts.iter().map(|p| p.requests).sum::<u64>(), 4);
    assert!(
        pts.windows(2).all(|w| w[1].t - w[0].t == slot),
        "every slot present, in order"
    );
}
