//! Tests of the step estimate and the headroom cap: learning, window resets, out-of-order and
//! missing evidence, and which windows a request is checked against.

use super::*;
use crate::quota::{Bucket, ExtraLimit, ExtraObservation};

const T: UnixMs = 1_000_000;

fn window(used: f64, reset_at: UnixMs) -> Option<Window> {
    Some(Window {
        used_percent: used,
        window_secs: Some(18_000),
        reset_at: Some(reset_at),
        limit_reached: None,
    })
}

fn bucket(used: f64) -> Option<Bucket> {
    Some(Bucket {
        used_percent: used,
        ..Bucket::default()
    })
}

#[test]
fn no_data_means_no_estimate_and_never_tight() {
    let mut e = StepEstimate::default();
    assert_eq!(e.step(), None);
    e.observe(T, 50.0, None, 0);
    assert_eq!(e.step(), None, "one observation is no rise yet");
    let h = Headroom::default();
    let q = Quota {
        primary: bucket(99.9),
        ..Quota::default()
    };
    assert_eq!(h.tight(&q, 2, None, false), None);
    assert!(!h.is_tight(&q, 2, None, false));
}

#[test]
fn the_step_is_the_rise_per_completed_request_smoothed() {
    let mut e = StepEstimate::default();
    e.observe(T, 10.0, None, 0);
    e.observe(T + 1, 12.0, None, 1);
    assert_eq!(e.step(), Some(2.0), "first sample taken as is");
    e.observe(T + 2, 16.0, None, 3);
    assert_eq!(e.step(), Some(2.0), "two requests of 2 points each");
    e.observe(T + 3, 20.0, None, 4);
    let s = e.step().expect("estimate");
    assert!(
        s > 2.0 && s < 4.0,
        "a dearer request moves it part way: {s}"
    );
}

#[test]
fn a_rise_with_no_completion_in_between_counts_against_later_ones() {
    let mut e = StepEstimate::default();
    e.observe(T, 10.0, None, 0);
    e.observe(T + 1, 12.0, None, 0);
    assert_eq!(e.step(), None);
    e.observe(T + 2, 14.0, None, 2);
    assert_eq!(e.step(), Some(2.0), "4 points over 2 requests");
}

#[test]
fn a_window_reset_starts_a_new_baseline_and_keeps_the_estimate() {
    let mut e = StepEstimate::default();
    e.observe(T, 10.0, Some(T + 100), 0);
    e.observe(T + 1, 13.0, Some(T + 100), 1);
    assert_eq!(e.step(), Some(3.0));
    e.observe(T + 2, 1.0, Some(T + 200), 2);
    assert_eq!(
        e.step(),
        Some(3.0),
        "usage dropped: a reset, not a negative cost"
    );
    e.observe(T + 3, 4.0, Some(T + 200), 3);
    assert_eq!(e.step(), Some(3.0), "measured from the new baseline");
    // The reset time passed between two observations: the window refilled past the old level.
    e.observe(T + 300, 50.0, Some(T + 400), 4);
    assert_eq!(e.step(), Some(3.0), "a rise across a reset is no cost");
    e.observe(T + 301, 53.0, Some(T + 400), 5);
    assert_eq!(e.step(), Some(3.0));
}

#[test]
fn older_evidence_than_the_baseline_teaches_nothing() {
    let mut e = StepEstimate::default();
    e.observe(T + 10, 20.0, None, 5);
    e.observe(T + 5, 30.0, None, 6);
    assert_eq!(e.step(), None, "out of order: ignored");
    e.observe(T + 11, 22.0, None, 6);
    assert_eq!(e.step(), Some(2.0));
}

#[test]
fn headers_are_measured_by_the_completions_when_their_request_started() {
    let mut h = Headroom::default();
    let obs = |at, used| Observation {
        at,
        primary: window(used, T + 18_000_000),
        secondary: window(used / 8.0, T + 604_800_000),
        ..Observation::default()
    };
    // Three requests leased at once (nothing completed yet), then one after two completed.
    h.granted(T, 0);
    h.granted(T + 1, 0);
    h.granted(T + 2, 0);
    h.granted(T + 50, 2);
    h.observe(&obs(T, 10.0));
    h.observe(&obs(T + 2, 10.0));
    h.observe(&obs(T + 1, 10.0));
    h.observe(&obs(T + 50, 14.0));
    assert_eq!(h.primary.step(), Some(2.0));
    assert_eq!(h.secondary.step(), Some(0.25));
    // Headers of a request whose grant was never seen (older than every remembered one).
    h.observe(&obs(T - 1, 0.0));
    assert_eq!(h.primary.step(), Some(2.0));
}

fn learnt(step: f64) -> Headroom {
    let mut h = Headroom::default();
    for (i, e) in [&mut h.primary, &mut h.secondary].into_iter().enumerate() {
        let s = if i == 0 { step } else { step / 10.0 };
        e.observe(T, 0.0, None, 0);
        e.observe(T + 1, s, None, 1);
    }
    h
}

#[test]
fn the_cap_narrows_when_the_headroom_is_below_the_requests_in_flight_plus_one() {
    let h = learnt(2.0);
    let q = |used| Quota {
        primary: bucket(used),
        secondary: bucket(10.0),
        ..Quota::default()
    };
    assert_eq!(h.tight(&q(90.0), 2, None, false), None, "10 left ≥ 3 × 2");
    assert_eq!(h.tight(&q(95.0), 1, None, false), None, "5 left ≥ 2 × 2");
    let t = h.tight(&q(95.0), 2, None, false).expect("5 left < 3 × 2");
    assert_eq!(
        (t.bucket.to_string().as_str(), t.left, t.step),
        ("primary", 5.0, 2.0)
    );
    assert!(
        h.tight(&q(99.0), 0, None, false).is_some(),
        "1 left < 1 × 2"
    );
    assert!(
        h.tight(&q(120.0), 0, None, false)
            .is_some_and(|t| t.left == 0.0),
        "over 100 %: no headroom, not negative"
    );
    for (used, n) in [(90.0, 2), (95.0, 2), (99.0, 0), (50.0, 3)] {
        assert_eq!(
            h.is_tight(&q(used), n, None, false),
            h.tight(&q(used), n, None, false).is_some()
        );
    }
}

#[test]
fn the_secondary_window_tightens_too_and_the_tightest_is_named() {
    let mut h = learnt(2.0);
    h.secondary.step = Some(1.0);
    let q = Quota {
        primary: bucket(95.0),
        secondary: bucket(99.5),
        ..Quota::default()
    };
    let t = h.tight(&q, 2, None, false).expect("tight");
    assert_eq!((t.bucket.to_string().as_str(), t.left), ("secondary", 0.5));
}

#[test]
fn code_review_and_extra_limits_only_tighten_their_own_requests() {
    let mut h = learnt(2.0);
    h.code_review.step = Some(5.0);
    h.extra
        .entry("codex_bengalfox".into())
        .or_default()
        .primary
        .step = Some(5.0);
    let mut q = Quota {
        primary: bucket(10.0),
        secondary: bucket(1.0),
        code_review: bucket(98.0),
        ..Quota::default()
    };
    q.extra.insert(
        "codex_bengalfox".into(),
        ExtraLimit {
            primary: bucket(97.0),
            ..ExtraLimit::default()
        },
    );
    assert_eq!(h.tight(&q, 0, None, false), None);
    assert_eq!(
        h.tight(&q, 0, None, true).map(|t| t.bucket.to_string()),
        Some("code_review".to_string())
    );
    assert_eq!(
        h.tight(&q, 0, Some("codex_bengalfox"), false)
            .map(|t| t.bucket.to_string()),
        Some("codex_bengalfox.primary".to_string())
    );
    assert_eq!(h.tight(&q, 0, Some("other"), false), None);
}

#[test]
fn extra_limit_headers_are_learnt_under_their_normalized_id() {
    let mut h = Headroom::default();
    let obs = |at, used| {
        let mut o = Observation {
            at,
            ..Observation::default()
        };
        o.extra.insert(
            "codex-bengalfox".into(),
            ExtraObservation {
                primary: window(used, T + 18_000_000),
                ..ExtraObservation::default()
            },
        );
        o
    };
    h.granted(T, 0);
    h.granted(T + 1, 1);
    h.observe(&obs(T, 40.0));
    h.observe(&obs(T + 1, 43.0));
    assert_eq!(h.extra["codex_bengalfox"].primary.step(), Some(3.0));
    assert_eq!(
        h.primary.step(),
        None,
        "headers without a window teach nothing"
    );
}
