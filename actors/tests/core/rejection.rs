//! The quota truth around a 429, as scripted traces of the pure core: a 429 on an account the
//! pool knows nothing about yet, and a 429 that looked like the primary window's until the
//! headers of the same answer showed it was the secondary (weekly) window that ran out.

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
            // a 429 without x-codex-active-limit is charged to the primary window …
            (
                T0 + 10 * M + S,
                Event::Applied429(Rejection429 {
                    resets_in_secs: Some(50 * 3600),
                    ..r429(T0 + 10 * M)
                }),
            ),
            // … until the x-codex-* headers of that same answer say what really ran out
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
    assert!(!p.limit_reached, "the primary lock is lifted");
    assert_eq!(p.reset_at, Some(T0 + 3 * H), "with its real reset");
    assert!(s.limit_reached, "the secondary window is the one exhausted");
    assert_eq!(s.reset_at, Some(T0 + 50 * H));
    assert!(
        q.exhausted_for(None, false),
        "still excluded, for the right reason"
    );
    assert_eq!(trace[2].effects[0]["unlocked"]["bucket"], "primary");
    assert_eq!(trace[2].effects[1]["locked"]["bucket"], "secondary");
    settings().bind(|| insta::assert_yaml_snapshot!(trace));
}
