//! The refusal cooldown (403 without a deactivation signal, 402, empty-body 404) as a scripted
//! trace of its pure core: 30 minutes, doubling on each refusal met after the last one was
//! recorded, capped at 8 hours; a request in flight before the last refusal is the same
//! incident; a request that got through afterwards ends the escalation.

use rotor_actors::account::{Penalty, PenaltyCause};
use serde_json::json;

use crate::support::{H, M, S, Step, T0, rel, relative, settings};

/// One scripted step.
enum Do {
    /// A refusal met by a request that started at the given time.
    Refused(PenaltyCause, i64),
    /// A request that started at the given time got through (upstream answered it).
    Passed(i64),
}

#[test]
fn refusals_escalate_from_thirty_minutes_cap_and_a_success_ends_them() {
    use PenaltyCause::*;
    let script = vec![
        (T0, Do::Refused(Forbidden, T0)),
        (T0 + S, Do::Refused(Forbidden, T0 - S)),
        (T0 + 31 * M, Do::Refused(Forbidden, T0 + 31 * M)),
        (T0 + 2 * H, Do::Refused(PaymentRequired, T0 + 2 * H)),
        (T0 + 7 * H, Do::Refused(StealthDeny, T0 + 7 * H)),
        (T0 + 12 * H, Do::Refused(Forbidden, T0 + 12 * H)),
        (T0 + 21 * H, Do::Refused(Forbidden, T0 + 21 * H)),
        (T0 + 30 * H, Do::Passed(T0 + 29 * H)),
        (T0 + 30 * H, Do::Refused(Forbidden, T0 + 30 * H)),
    ];
    let mut p = Penalty::default();
    let mut trace = Vec::new();
    let mut lengths = Vec::new();
    for (now, d) in script {
        let (message, effect) = match d {
            Do::Refused(cause, at) => {
                let until = p.hit(cause, format!("{cause:?}"), at, now);
                lengths.push(until.map(|u| (u - now) / M));
                (
                    json!({ "now": rel(now), "refused": cause, "request_started": rel(at) }),
                    json!({ "cooldown_until": until.map(rel) }),
                )
            }
            Do::Passed(at) => {
                p.passed(at);
                (json!({ "now": rel(now), "passed": rel(at) }), json!(null))
            }
        };
        trace.push(Step {
            message,
            state: relative(&p),
            effects: effect,
        });
    }
    assert_eq!(
        lengths,
        [
            Some(30),
            None,
            Some(60),
            Some(120),
            Some(240),
            Some(480),
            Some(480),
            Some(30)
        ],
        "30 min, same incident, doubling, capped at 8 h, reset by a success"
    );
    settings().bind(|| insta::assert_yaml_snapshot!(trace));
}
