//! Fuzzing what upstream tells us about quota: the `x-codex-*` header parser, the `/wham/usage`
//! body parser, and the pure quota core they feed (`Quota::apply`). Upstream controls every
//! byte here, so nothing may panic (no overflow on absurd numbers either), and the rules of
//! docs/quota.md must hold on any input: a 429 never shrinks a reset, `used ≥ 100` means locked.

use super::{cases, json};
use proptest::prelude::*;
use rotor_actors::UnixMs;
use rotor_actors::quota::{
    BucketId, Effect, Event, Quota, QuotaConfig, Rejection429, RejectionKind, headers, usage,
};

/// 2026-01-01, a plausible "now".
const NOW: UnixMs = 1_767_225_600_000;

fn family() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("codex".to_string()),
        Just("codex-bengalfox".to_string()),
        Just("codex-code-review".to_string()),
        Just("Codex".to_string()),
        "[a-z-]{0,10}",
    ]
}

fn number_text() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u32..=150).prop_map(|v| v.to_string()),
        any::<f64>().prop_map(|v| v.to_string()),
        any::<i64>().prop_map(|v| v.to_string()),
        any::<u64>().prop_map(|v| v.to_string()),
        Just("NaN".into()),
        Just("inf".into()),
        Just("-0".into()),
        Just(" 42 ".into()),
        ".{0,8}",
    ]
}

/// One quota-shaped header (name, value).
fn header() -> impl Strategy<Value = (String, String)> {
    let window = prop::sample::select(&["primary", "secondary"][..]);
    let field = prop::sample::select(&["used-percent", "window-minutes", "reset-at"][..]);
    prop_oneof![
        6 => (family(), window, field, number_text())
            .prop_map(|(f, w, k, v)| (format!("x-{f}-{w}-{k}"), v)),
        1 => (family(), ".{0,12}").prop_map(|(f, v)| (format!("x-{f}-limit-name"), v)),
        1 => (prop::sample::select(&["x-codex-credits-has-credits", "x-codex-credits-unlimited",
                "x-codex-credits-balance", "x-codex-active-limit"][..]), ".{0,8}")
            .prop_map(|(n, v)| (n.to_string(), v)),
        1 => ("[ -~]{0,30}", ".{0,20}"),
    ]
}

fn rejection() -> impl Strategy<Value = Rejection429> {
    (
        prop::option::of(prop_oneof![
            Just("codex".to_string()),
            Just("codex_bengalfox".to_string()),
            "[a-z_-]{0,8}"
        ]),
        prop::option::of(any::<i64>()),
        prop::option::of(any::<u64>()),
        prop::option::of(any::<u64>()),
        -10_000_000i64..10_000_000,
    )
        .prop_map(
            |(limit, resets_at, resets_in_secs, retry_after_secs, dt)| Rejection429 {
                at: NOW + dt,
                limit,
                resets_at,
                resets_in_secs,
                retry_after_secs,
                kind: RejectionKind::UsageLimitReached,
                ..Rejection429::default()
            },
        )
}

/// Feeds headers-derived observations, probes, 429s and ticks to a quota, with `now` moving
/// forward by arbitrary steps (large ones included).
fn event() -> impl Strategy<Value = (Event, i64)> {
    // `now` stays a plausible clock (steps up to ten years); upstream numbers are unbounded.
    let step = prop_oneof![
        0i64..1000,
        0i64..100_000_000,
        Just(10 * 365 * 86_400_000i64)
    ];
    prop_oneof![
        (prop::collection::vec(header(), 0..10), step.clone()).prop_map(|(hs, s)| {
            let obs = headers::parse(hs.iter().map(|(n, v)| (n.as_str(), v.as_str())), NOW);
            (obs.map_or(Event::Tick, Event::HeaderObserved), s)
        }),
        (json::object(), step.clone()).prop_map(|(body, s)| {
            (
                usage::parse(&body, NOW).map_or(Event::Tick, Event::Probed),
                s,
            )
        }),
        (rejection(), step.clone()).prop_map(|(r, s)| (Event::Applied429(r), s)),
        step.prop_map(|s| (Event::Tick, s)),
    ]
}

proptest! {
    #![proptest_config(cases(1500))]

    #[test]
    fn header_parser_takes_anything(hs in prop::collection::vec(header(), 0..16)) {
        let pairs = || hs.iter().map(|(n, v)| (n.as_str(), v.as_str()));
        let _ = headers::active_limit(pairs());
        if let Some(obs) = headers::parse(pairs(), NOW) {
            for w in [&obs.primary, &obs.secondary, &obs.code_review].into_iter().flatten() {
                prop_assert!(w.used_percent.is_finite());
            }
        }
    }

    #[test]
    fn well_formed_main_headers_round_trip(used in 0u32..=100, minutes in 1u64..20_000, reset in 1_700_000_000i64..1_900_000_000) {
        let (u, m, r) = (used.to_string(), minutes.to_string(), reset.to_string());
        let hs = [("X-Codex-Primary-Used-Percent", u.as_str()), ("x-codex-primary-window-minutes", m.as_str()), ("x-codex-primary-reset-at", r.as_str())];
        let obs = headers::parse(hs, NOW).expect("quota headers were present");
        let p = obs.primary.expect("primary window");
        prop_assert_eq!(p.used_percent, f64::from(used));
        prop_assert_eq!(p.window_secs, Some(minutes * 60));
        prop_assert_eq!(p.reset_at, Some(reset * 1000));
    }

    #[test]
    fn usage_parser_takes_any_json(body in json::value()) {
        let _ = usage::parse(&body, NOW);
    }

    #[test]
    fn usage_parser_takes_any_usage_shaped_json(limits in json::object(), extra in json::value(), credits in json::value()) {
        let body = serde_json::json!({"plan_type": "plus", "rate_limit": limits,
            "additional_rate_limits": extra, "credits": credits, "code_review_rate_limit": limits});
        prop_assert!(usage::parse(&body, NOW).is_ok(), "a rate_limit object is accepted");
    }

    #[test]
    fn quota_core_never_panics_and_keeps_its_rules(events in prop::collection::vec(event(), 1..24)) {
        let mut q = Quota::default();
        let cfg = QuotaConfig::default();
        let mut now = NOW;
        for (ev, step) in events {
            now = now.saturating_add(step);
            let before = q.primary.as_ref().and_then(|b| b.reset_at);
            let is_429_on_primary = matches!(&ev, Event::Applied429(r)
                if r.limit.as_deref().is_none_or(|l| l.is_empty() || l.eq_ignore_ascii_case("codex")));
            let fx = q.apply(ev, now, &cfg);
            let locked = fx.iter().any(|e| matches!(e, Effect::Locked { bucket, .. } if *bucket == BucketId::Primary));
            if is_429_on_primary && locked {
                let b = q.primary.as_ref().expect("a 429 creates the primary bucket");
                prop_assert!(b.limit_reached, "a 429 locks the bucket");
                if let (Some(old), Some(new)) = (before, b.reset_at) {
                    prop_assert!(new >= old, "never shrink: {old} -> {new}");
                }
            }
        }
    }
}

/// Found by `quota_core_never_panics_and_keeps_its_rules`: a `Retry-After` (or
/// `resets_in_seconds`) just under `i64::MAX / 1000` overflowed `now + secs(..)`.
#[test]
fn an_absurd_retry_hint_locks_without_overflow() {
    let mut q = Quota::default();
    let r = Rejection429 {
        at: NOW,
        retry_after_secs: Some(9_223_370_269_629_176),
        kind: RejectionKind::UsageLimitReached,
        ..Rejection429::default()
    };
    let _ = q.apply(Event::Applied429(r), NOW, &QuotaConfig::default());
    let b = q.primary.expect("locked bucket");
    assert!(b.limit_reached);
    assert!(b.reset_at.is_some_and(|t| t > NOW));
}

/// Found by the same property: a hostile `x-codex-primary-reset-at` far in the past made the
/// tick's "advance by whole windows" subtract with overflow.
#[test]
fn a_reset_header_far_in_the_past_ticks_without_overflow() {
    let hs = [
        ("x-codex-primary-used-percent", "100"),
        ("x-codex-primary-window-minutes", "300"),
        ("x-codex-primary-reset-at", "-9223372036854775807"),
    ];
    let obs = headers::parse(hs, NOW).expect("observation");
    let mut q = Quota::default();
    let cfg = QuotaConfig::default();
    let _ = q.apply(Event::HeaderObserved(obs), NOW, &cfg);
    let _ = q.apply(Event::Tick, NOW + 1, &cfg);
    let b = q.primary.expect("bucket");
    assert!(!b.limit_reached, "a passed reset unlocks");
}
