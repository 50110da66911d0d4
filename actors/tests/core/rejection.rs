//! The quota truth around a 429, as scripted traces of the pure core: a 429 on an account the
//! pool knows nothing about yet; a 429 whose reset lies beyond the 5 h window, the weekly
//! window's (which the headers of the same answer confirm); a short 429 after a weekly one; a
//! 429 whose own headers name another limit family; and `usage_not_included`, which locks no
//! window but keeps one model family off the account for a day.

use rotor_actors::quota::{Event, Quota, Rejection429};

use crate::quota::{obs, r429, run, win};
use crate::support::{H, M, S, T0, rel, settings};

#[test]
fn a_429_on_a_fresh_account_locks_primary_until_its_reset_then_verifies() {
    let mut q = Quota::default();
    let trace = run(
        &mut q,
        vec![
            (
                T0 + S,
                Event::Applied429(Rejection429 {
                    resets_in_secs: Some(30 * 60),
                    retry_after_secs: Some(5),
                    ..r429(T0)
                }),
            ),
            (T0 + 29 * M, Event::Tick),
            (T0 + 31 * M, Event::Tick),
        ],
    );
    assert_eq!(
        trace[0].effects[0]["locked"],
        serde_json::json!({ "bucket": "primary", "until": rel(T0 + S + 30 * M) }),
        "resets_in_seconds wins over Retry-After; nothing was known before"
    );
    assert_eq!(
        trace[0].state["primary"]["recheck_at"],
        serde_json::Value::Null
    );
    assert!(trace[1].effects.as_array().is_some_and(Vec::is_empty));
    assert_eq!(trace[2].effects[0]["unlocked"]["bucket"], "primary");
    assert_eq!(trace[2].state["verify_since"], rel(T0 + 31 * M));
    settings().bind(|| insta::assert_yaml_snapshot!(trace));
}

#[test]
fn a_header_shows_the_429_was_really_the_secondary_window() {
    let mut q = Quota::default();
    let trace = run(
        &mut q,
        vec![
            (
                T0,
                Event::HeaderObserved(obs(
                    T0,
                    Some(win(20.0, 300, 3 * H, T0)),
                    Some(win(97.0, 10_080, 50 * H, T0)),
                )),
            ),
            // a 429 without x-codex-active-limit whose reset lies beyond the 5 h window …
            (
                T0 + 10 * M + S,
                Event::Applied429(Rejection429 {
                    resets_in_secs: Some(50 * 3600),
                    ..r429(T0 + 10 * M)
                }),
            ),
            // … is the weekly window's, as the x-codex-* headers of that same answer say
            (
                T0 + 10 * M + 2 * S,
                Event::HeaderObserved(obs(
                    T0 + 10 * M,
                    Some(win(22.0, 300, 3 * H - 10 * M, T0 + 10 * M)),
                    Some(win(100.0, 10_080, 50 * H - 10 * M, T0 + 10 * M)),
                )),
            ),
        ],
    );
    let (p, s) = (
        q.primary.as_ref().expect("primary"),
        q.secondary.as_ref().expect("secondary"),
    );
    assert!(!p.limit_reached, "the primary window is not locked");
    assert_eq!(p.reset_at, Some(T0 + 3 * H), "with its real reset");
    assert!(s.limit_reached, "the secondary window is the one exhausted");
    assert_eq!(s.reset_at, Some(T0 + 50 * H));
    assert!(
        q.exhausted_for(None, false),
        "still excluded, for the right reason"
    );
    assert_eq!(
        trace[1].effects[0]["locked"]["bucket"], "secondary",
        "a 50 h reset is beyond the 5 h window: the weekly window's from the start"
    );
    assert!(
        trace[2].effects.as_array().is_some_and(Vec::is_empty),
        "the headers confirm it"
    );
    settings().bind(|| insta::assert_yaml_snapshot!(trace));
}

#[test]
fn a_reset_beyond_the_short_window_locks_the_weekly_window_until_it() {
    let mut q = Quota::default();
    let weekly = 471_284 * S;
    let trace = run(
        &mut q,
        vec![
            (
                T0,
                Event::HeaderObserved(obs(
                    T0,
                    Some(win(20.0, 300, 3 * H, T0)),
                    Some(win(60.0, 10_080, 2 * 24 * H, T0)),
                )),
            ),
            (
                T0 + M + S,
                Event::Applied429(Rejection429 {
                    resets_in_secs: Some(471_284),
                    ..r429(T0 + M)
                }),
            ),
            (
                T0 + 2 * M,
                Event::Applied429(Rejection429 {
                    resets_in_secs: Some(30),
                    ..r429(T0 + 2 * M)
                }),
            ),
        ],
    );
    let s = q.secondary.as_ref().expect("secondary");
    assert!(s.limit_reached, "days away: the weekly window's lock");
    assert_eq!(
        s.reset_at,
        Some(T0 + M + S + weekly),
        "until the real reset"
    );
    let p = q.primary.as_ref().expect("primary");
    assert_eq!(
        (p.limit_reached, p.reset_at, p.recheck_at),
        (true, Some(T0 + 3 * H), Some(T0 + 2 * M + 30 * S)),
        "a short 429 locks the short window, re-probed at its own time (rule 5)"
    );
    assert_eq!(
        q.locks()[0].until,
        Some(T0 + 2 * M + 30 * S),
        "and the lock shows its own end, not the window's"
    );
    settings().bind(|| insta::assert_yaml_snapshot!(trace));
}

#[test]
fn a_429s_own_headers_are_observed_and_an_unknown_family_locks_the_model_too() {
    let mut q = Quota::default();
    let mut other = obs(
        T0,
        Some(win(5.0, 300, 4 * H, T0)),
        Some(win(30.0, 10_080, 2 * 24 * H, T0)),
    );
    other.extra.insert(
        "codex_other".into(),
        rotor_actors::quota::ExtraObservation {
            name: Some("codex_other".into()),
            primary: Some(win(100.0, 10_080, 3 * 24 * H, T0)),
            secondary: None,
        },
    );
    let trace = run(
        &mut q,
        vec![(
            T0 + S,
            Event::Applied429(Rejection429 {
                limit: Some("codex_other".into()),
                resets_at: Some(T0 + 3 * 24 * H),
                observed: Some(other),
                ..r429(T0)
            }),
        )],
    );
    let x = &q.extra["codex_other"];
    assert!(x.primary.as_ref().is_some_and(|b| b.limit_reached));
    assert!(
        q.secondary
            .as_ref()
            .is_some_and(|b| b.limit_reached && b.reset_at == Some(T0 + 3 * 24 * H)),
        "the main models it metered are off until the family's reset (weekly window: days away)"
    );
    assert_eq!(
        q.primary.as_ref().map(|b| b.used_percent),
        Some(5.0),
        "the headers replaced the primary window"
    );
    settings().bind(|| insta::assert_yaml_snapshot!(trace));
}

#[test]
fn usage_not_included_keeps_one_family_off_for_a_day_and_locks_nothing() {
    use rotor_actors::quota::{NOT_INCLUDED_MS, RejectionKind};
    let mut q = Quota::default();
    let trace = run(
        &mut q,
        vec![
            (
                T0 + S,
                Event::Applied429(Rejection429 {
                    kind: RejectionKind::UsageNotIncluded,
                    model_limit: Some("codex_bengalfox".into()),
                    ..r429(T0)
                }),
            ),
            (T0 + 23 * H, Event::Tick),
            (T0 + S + NOT_INCLUDED_MS, Event::Tick),
        ],
    );
    assert!(q.locks().is_empty(), "no window is exhausted");
    assert_eq!(
        trace[0].state["not_included"]["codex_bengalfox"],
        rel(T0 + S + NOT_INCLUDED_MS)
    );
    assert_eq!(
        trace[1].state["not_included"]["codex_bengalfox"],
        rel(T0 + S + NOT_INCLUDED_MS)
    );
    assert!(q.not_included.is_empty(), "lapsed after a day");
    assert_eq!(
        q.not_included_for(Some("codex_bengalfox"), T0 + 2 * S),
        None
    );
    settings().bind(|| insta::assert_yaml_snapshot!(trace));
}
