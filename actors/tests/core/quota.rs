//! The quota truth (docs/quota.md rules 1–5) as scripted traces: each scenario feeds events at given
//! times and snapshots `(message, state after, effects)`; the assertions next to each snapshot
//! pin the rule it is about, so a wrong snapshot cannot be accepted silently.

use rotor_actors::quota::{
    Event, ExtraObservation, Observation, Quota, QuotaConfig, Rejection429, RejectionKind, Window,
    limit_for_model,
};
use serde_json::json;

use crate::support::{H, M, S, Step, T0, rel, relative, settings};

pub fn run(q: &mut Quota, script: Vec<(i64, Event)>) -> Vec<Step> {
    let cfg = QuotaConfig::default();
    script
        .into_iter()
        .map(|(now, ev)| {
            let message = json!({ "now": rel(now), "event": relative(&ev) });
            let fx = q.apply(ev, now, &cfg);
            Step {
                message,
                state: relative(q),
                effects: relative(&fx),
            }
        })
        .collect()
}

pub fn win(used: f64, window_min: u64, reset_in: i64, at: i64) -> Window {
    Window {
        used_percent: used,
        window_secs: Some(window_min * 60),
        reset_at: Some(at + reset_in),
        limit_reached: None,
    }
}

pub fn obs(at: i64, primary: Option<Window>, secondary: Option<Window>) -> Observation {
    Observation {
        at,
        primary,
        secondary,
        ..Observation::default()
    }
}

pub fn r429(at: i64) -> Rejection429 {
    Rejection429 {
        at,
        kind: RejectionKind::UsageLimitReached,
        ..Rejection429::default()
    }
}

#[test]
fn a_429_locks_primary_never_shrinks_and_is_rechecked_at_its_own_retry_time() {
    let mut q = Quota::default();
    let trace = run(
        &mut q,
        vec![
            (
                T0,
                Event::HeaderObserved(obs(T0, Some(win(40.0, 300, 3 * H, T0)), None)),
            ),
            (
                T0 + 10 * S,
                Event::Applied429(Rejection429 {
                    resets_in_secs: Some(60),
                    ..r429(T0 + 9 * S)
                }),
            ),
            (T0 + 30 * S, Event::Tick),
            (T0 + 71 * S, Event::Tick),
            (
                T0 + 72 * S,
                Event::Probed(obs(
                    T0 + 71 * S,
                    Some(win(41.0, 300, 3 * H - 71 * S, T0 + 71 * S)),
                    None,
                )),
            ),
        ],
    );
    let p = q.primary.as_ref().expect("primary bucket");
    assert!(
        !p.limit_reached,
        "the probe after the 429's own retry time unlocks the account"
    );
    assert_eq!(q.verify_since, None, "the probe confirmed the quota");
    assert_eq!(
        trace[1].effects[0]["locked"]["until"],
        rel(T0 + 3 * H),
        "never shrinks the 3h reset"
    );
    assert_eq!(trace[1].state["primary"]["recheck_at"], rel(T0 + 70 * S));
    assert_eq!(
        trace[3].effects[0]["probe"]["reason"],
        "primary 429 retry time passed"
    );
    settings().bind(|| insta::assert_yaml_snapshot!(trace));
}

#[test]
fn a_later_429_extends_the_lock() {
    let mut q = Quota::default();
    let trace = run(
        &mut q,
        vec![
            (
                T0,
                Event::Applied429(Rejection429 {
                    retry_after_secs: Some(30),
                    ..r429(T0)
                }),
            ),
            (
                T0 + S,
                Event::Applied429(Rejection429 {
                    resets_at: Some(T0 + 2 * H),
                    ..r429(T0 + S)
                }),
            ),
            (T0 + 2 * S, Event::Applied429(r429(T0 + 2 * S))),
        ],
    );
    let p = q.primary.as_ref().expect("primary");
    assert_eq!(p.reset_at, Some(T0 + 2 * H));
    assert!(
        p.recheck_at == Some(T0 + 2 * S + 60 * S),
        "the default 60 s backoff is the recheck time"
    );
    settings().bind(|| insta::assert_yaml_snapshot!(trace));
}

#[test]
fn reset_hints_are_capped_by_the_window_length() {
    let mut q = Quota::default();
    let trace = run(
        &mut q,
        vec![
            (
                T0,
                Event::HeaderObserved(obs(
                    T0,
                    Some(Window {
                        reset_at: Some(T0 + 9 * H),
                        ..win(100.0, 300, 0, T0)
                    }),
                    Some(win(10.0, 10_080, 2 * 24 * H, T0)),
                )),
            ),
            (
                T0 + S,
                Event::Applied429(Rejection429 {
                    resets_at: Some(T0 + 8 * 24 * H),
                    ..r429(T0 + S)
                }),
            ),
        ],
    );
    let p = q.primary.as_ref().expect("primary");
    assert_eq!(
        p.reset_at,
        Some(T0 + 5 * H),
        "an observed reset beyond evidence time + window is cut to it"
    );
    let s = q.secondary.as_ref().expect("secondary");
    assert_eq!(
        (s.limit_reached, s.reset_at),
        (true, Some(T0 + S + 7 * 24 * H)),
        "a hint beyond the 5 h window is the weekly window's, capped at its length"
    );
    settings().bind(|| insta::assert_yaml_snapshot!(trace));
}

#[test]
fn headers_replace_what_they_mention_and_keep_extra_limits_and_credits() {
    let mut q = Quota::default();
    let mut with_credits = obs(
        T0,
        Some(win(10.0, 300, H, T0)),
        Some(win(5.0, 10080, 24 * H, T0)),
    );
    with_credits.credits = Some(rotor_actors::quota::Credits {
        has_credits: true,
        unlimited: false,
        balance: Some("12.5".into()),
    });
    let trace = run(
        &mut q,
        vec![
            (T0, Event::HeaderObserved(with_credits)),
            (
                T0 + M,
                Event::Applied429(Rejection429 {
                    limit: Some("codex_bengalfox".into()),
                    resets_in_secs: Some(600),
                    model_limit: Some("codex_bengalfox".into()),
                    ..r429(T0 + M)
                }),
            ),
            (
                T0 + 2 * M,
                Event::HeaderObserved(obs(
                    T0 + 2 * M,
                    Some(win(100.0, 300, 58 * M, T0 + 2 * M)),
                    None,
                )),
            ),
        ],
    );
    assert!(
        q.extra["codex_bengalfox"]
            .primary
            .as_ref()
            .is_some_and(|b| b.limit_reached),
        "Spark lock kept"
    );
    assert!(q.credits.is_some(), "credits kept when headers carry none");
    assert!(q.exhausted_for(None, false), "used 100% ⇒ limit_reached");
    assert_eq!(
        q.secondary.as_ref().map(|b| b.used_percent),
        Some(5.0),
        "unmentioned secondary kept"
    );
    settings().bind(|| insta::assert_yaml_snapshot!(trace));
}

#[test]
fn a_success_that_started_before_a_429_cannot_unlock() {
    let mut q = Quota::default();
    let trace = run(
        &mut q,
        vec![
            (
                T0 + 10 * S,
                Event::Applied429(Rejection429 {
                    resets_in_secs: Some(3600),
                    ..r429(T0 + 8 * S)
                }),
            ),
            // a long request that started at +5s finishes after the 429 and reports 20 %
            (
                T0 + 20 * S,
                Event::HeaderObserved(obs(T0 + 5 * S, Some(win(20.0, 300, H, T0)), None)),
            ),
            // a request that started after the 429 is newer evidence and wins
            (
                T0 + 30 * S,
                Event::HeaderObserved(obs(T0 + 25 * S, Some(win(20.0, 300, H, T0)), None)),
            ),
        ],
    );
    assert_eq!(trace[1].effects[0]["ignored_stale"]["bucket"], "primary");
    assert!(trace[1].state["primary"]["limit_reached"].as_bool() == Some(true));
    assert!(!q.exhausted_for(None, false));
    settings().bind(|| insta::assert_yaml_snapshot!(trace));
}

#[test]
fn a_tick_past_reset_clears_the_window_advances_it_and_asks_to_verify() {
    let mut q = Quota::default();
    let trace = run(
        &mut q,
        vec![
            (
                T0,
                Event::HeaderObserved(obs(
                    T0,
                    Some(win(100.0, 300, H, T0)),
                    Some(win(30.0, 10080, 48 * H, T0)),
                )),
            ),
            (T0 + 30 * M, Event::Tick),
            (T0 + H + 5 * M, Event::Tick),
            (
                T0 + H + 6 * M,
                Event::HeaderObserved(obs(
                    T0 + H + 6 * M,
                    Some(win(1.0, 300, 299 * M, T0 + H)),
                    None,
                )),
            ),
        ],
    );
    assert!(
        trace[1].effects.as_array().is_some_and(Vec::is_empty),
        "nothing to do before the reset"
    );
    assert_eq!(
        trace[2].state["primary"]["reset_at"],
        rel(T0 + 6 * H),
        "advanced by one whole 5h window"
    );
    assert_eq!(trace[2].state["verify_since"], rel(T0 + H + 5 * M));
    assert_eq!(
        q.verify_since, None,
        "the next request's headers confirmed it"
    );
    settings().bind(|| insta::assert_yaml_snapshot!(trace));
}

#[test]
fn a_lock_without_reset_time_is_probed_once_not_kept_forever() {
    let mut q = Quota::default();
    let locked = Window {
        used_percent: 100.0,
        window_secs: None,
        reset_at: None,
        limit_reached: None,
    };
    let trace = run(
        &mut q,
        vec![
            (T0, Event::HeaderObserved(obs(T0, None, Some(locked)))),
            (T0 + 5 * S, Event::Tick),
            (T0 + 10 * S, Event::Tick),
        ],
    );
    assert_eq!(
        trace[1].effects[0]["probe"]["reason"],
        "secondary locked without reset time"
    );
    assert!(
        trace[2].effects.as_array().is_some_and(Vec::is_empty),
        "one probe request, the actor retries"
    );
    settings().bind(|| insta::assert_yaml_snapshot!(trace));
}

#[test]
fn only_buckets_relevant_to_the_model_exclude_the_account() {
    let mut q = Quota::default();
    let cfg = QuotaConfig::default();
    let spark = Rejection429 {
        limit: Some("codex-bengalfox".into()),
        model_limit: Some("codex_bengalfox".into()),
        ..r429(T0)
    };
    q.apply(Event::Applied429(spark), T0, &cfg);
    let review = obs(T0, None, None);
    q.apply(
        Event::HeaderObserved(Observation {
            code_review: Some(win(100.0, 300, H, T0)),
            ..review
        }),
        T0,
        &cfg,
    );
    assert_eq!(
        limit_for_model("gpt-5.3-codex-spark"),
        Some("codex_bengalfox")
    );
    assert_eq!(limit_for_model("GPT-5-BENGALFOX"), Some("codex_bengalfox"));
    assert_eq!(limit_for_model("gpt-5.5"), None);
    assert!(!q.exhausted_for(limit_for_model("gpt-5.5"), false));
    assert!(q.exhausted_for(limit_for_model("gpt-5.3-codex-spark"), false));
    assert!(
        q.exhausted_for(None, true),
        "code review only blocks review requests"
    );
    assert!(!q.main_exhausted());
}

#[test]
fn extra_observation_for_unknown_limits_is_kept_by_name() {
    let mut q = Quota::default();
    let mut o = obs(T0, None, None);
    o.extra.insert(
        "codex-other".into(),
        ExtraObservation {
            name: None,
            primary: Some(win(50.0, 60, M, T0)),
            secondary: None,
        },
    );
    let fx = q.apply(Event::HeaderObserved(o), T0, &QuotaConfig::default());
    assert!(fx.is_empty());
    assert_eq!(
        q.extra["codex_other"]
            .primary
            .as_ref()
            .map(|b| b.used_percent),
        Some(50.0)
    );
    assert!(matches!(
        q.apply(Event::Tick, T0 + 2 * M, &QuotaConfig::default())
            .as_slice(),
        []
    ));
}
