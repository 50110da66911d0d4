//! Parsing of quota evidence: every `x-codex-*` header family (docs/protocol.md §4) and the
//! `/wham/usage` JSON (§9), snapshotted with times relative to `T0`.

use rotor_actors::quota::{headers, usage};
use serde_json::json;

use crate::support::{T0, relative, settings};

#[test]
fn header_parsing_covers_every_family() {
    let h = [
        ("X-Codex-Primary-Used-Percent", "42.5"),
        ("x-codex-primary-window-minutes", "300"),
        ("x-codex-primary-reset-at", "1795673493"),
        ("x-codex-secondary-used-percent", "12"),
        ("x-codex-secondary-window-minutes", "10080"),
        ("x-codex-secondary-reset-at", "1795756293"),
        ("x-codex-credits-has-credits", "1"),
        ("x-codex-credits-unlimited", "false"),
        ("x-codex-credits-balance", "3.50"),
        ("x-codex-bengalfox-primary-used-percent", "100"),
        ("x-codex-bengalfox-primary-window-minutes", "60"),
        ("x-codex-bengalfox-limit-name", "Spark"),
        ("x-codex-code-review-primary-used-percent", "7"),
        ("x-codex-primary-over-secondary-limit-percent", "0"),
        ("x-codex-other-secondary-used-percent", "not-a-number"),
        ("x-codex-active-limit", "codex-bengalfox"),
        ("content-type", "text/event-stream"),
    ];
    let o = headers::parse(h.iter().copied(), T0).expect("quota headers present");
    assert_eq!(
        o.primary.as_ref().map(|w| w.reset_at),
        Some(Some(1_795_673_493_000))
    );
    assert_eq!(o.extra["codex_bengalfox"].name.as_deref(), Some("Spark"));
    assert!(
        !o.extra.contains_key("codex_other"),
        "an unparsable value yields no window"
    );
    assert_eq!(o.code_review.as_ref().map(|w| w.used_percent), Some(7.0));
    assert_eq!(
        headers::active_limit(h.iter().copied()).as_deref(),
        Some("codex_bengalfox")
    );
    assert!(headers::parse([("content-type", "text/plain")], T0).is_none());
    assert!(
        headers::parse([("x-codex-credits-balance", "1")], T0).is_none(),
        "balance alone is no snapshot"
    );
    settings().bind(|| insta::assert_yaml_snapshot!(relative(&o)));
}

#[test]
fn usage_endpoint_parsing() {
    let body = json!({"plan_type":"plus",
     "rate_limit":{"allowed":true,"limit_reached":false,
       "primary_window":{"used_percent":42,"limit_window_seconds":18000,"reset_after_seconds":3600,"reset_at":1795673493},
       "secondary_window":{"used_percent":100,"limit_window_seconds":604800,"reset_after_seconds":86400}},
     "code_review_rate_limit":{"limit_reached":false,"primary_window":{"used_percent":3,"limit_window_seconds":18000,"reset_at":1795673493}},
     "credits":{"has_credits":false,"unlimited":false,"balance":"0"},
     "additional_rate_limits":[{"limit_name":"Spark","metered_feature":"codex_bengalfox",
        "rate_limit":{"limit_reached":true,"primary_window":{"used_percent":100,"limit_window_seconds":3600,"reset_at":1795660000}}}],
     "rate_limit_reached_type":{"type":"rate_limit_reached"}});
    let o = usage::parse(&body, T0).expect("valid usage body");
    assert_eq!(
        o.secondary.as_ref().and_then(|w| w.reset_at),
        Some(T0 + 86_400_000),
        "reset from reset_after"
    );
    assert_eq!(
        o.secondary.as_ref().and_then(|w| w.limit_reached),
        Some(true)
    );
    assert_eq!(
        o.primary.as_ref().and_then(|w| w.limit_reached),
        Some(false),
        "flag false, 42 %"
    );
    assert_eq!(
        o.extra["codex_bengalfox"]
            .primary
            .as_ref()
            .and_then(|w| w.limit_reached),
        Some(true)
    );
    assert!(usage::parse(&json!({"error":{"code":"unauthorized"}}), T0).is_err());
    settings().bind(|| insta::assert_yaml_snapshot!(relative(&o)));
}

#[test]
fn a_reset_after_seconds_header_counts_from_the_evidence_time() {
    let h = [
        ("x-codex-primary-used-percent", "100"),
        ("x-codex-primary-reset-after-seconds", "90"),
        ("x-codex-other-secondary-used-percent", "3"),
        ("x-codex-other-secondary-reset-at", "1795700000"),
        ("x-codex-other-secondary-reset-after-seconds", "5"),
    ];
    let o = headers::parse(h.iter().copied(), T0).expect("quota headers present");
    assert_eq!(o.primary.and_then(|w| w.reset_at), Some(T0 + 90_000));
    let other = &o.extra["codex_other"];
    assert_eq!(
        other.secondary.as_ref().and_then(|w| w.reset_at),
        Some(1_795_700_000_000),
        "an absolute reset wins"
    );
}

#[test]
fn a_usage_answer_with_rate_limit_null_is_valid_and_reports_no_window() {
    let o = usage::parse(
        &json!({"plan_type": "plus", "rate_limit": null, "credits": null}),
        T0,
    )
    .expect("valid: the OpenAPI model makes rate_limit optional");
    assert_eq!(
        (o.plan_type.as_deref(), o.primary, o.secondary),
        (Some("plus"), None, None)
    );
    assert!(
        usage::parse(&json!({"detail": "Forbidden"}), T0).is_err(),
        "a body without the key is not a usage answer"
    );
}
