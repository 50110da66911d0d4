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

/// The refusal cooldown `id` shows, as the pool's view has it.
async fn refused_until(pool: &rotor_actors::PoolHandle, id: &str) -> Option<i64> {
    pool.accounts()
        .await
        .into_iter()
        .find(|v| v.id == id)
        .and_then(|v| v.holds.into_iter().find(|h| h.kind == "refused"))
        .and_then(|h| h.until)
}

/// A refusal cooldown outlives a restart: the pool flushes its step and end into the record, a
/// pool started from that record keeps the account off until the same end, and the next
/// refusal doubles from the stored step instead of starting at 30 minutes again. A record
/// without the field (every record written before it) loads with no cooldown.
#[tokio::test(start_paused = true)]
async fn a_restart_neither_lifts_a_refusal_cooldown_nor_restarts_its_escalation() {
    use crate::fakes::{Fx, record};
    use crate::pool::{cfg, req, settle};
    use rotor_actors::{Clock, PoolHandle, UpstreamFailure};
    use std::time::Duration;

    let fx = Fx::new();
    let pool = PoolHandle::start(cfg(), fx.effects(), vec![record("a", None)])
        .await
        .expect("pool");
    settle(Duration::from_millis(10)).await;
    let lease = pool.pick(req()).await.expect("lease");
    lease.failed(UpstreamFailure::Refused {
        cause: PenaltyCause::Forbidden,
        reason: "flagged".into(),
    });
    drop(lease);
    settle(Duration::from_millis(10)).await;
    let until = refused_until(&pool, "a").await.expect("cooling");
    pool.shutdown().await;

    let stored = fx.store.get("a").expect("flushed");
    let step = stored.refusal.expect("the cooldown is in the record");
    assert_eq!((step.level, step.until), (1, until));
    let json = serde_json::to_value(&stored).expect("json");
    assert_eq!(json["refusal"]["level"], 1);

    let fx2 = Fx::new();
    let pool = PoolHandle::start(cfg(), fx2.effects(), vec![stored.clone()])
        .await
        .expect("restarted pool");
    settle(Duration::from_millis(10)).await;
    assert_eq!(refused_until(&pool, "a").await, Some(until), "not lifted");
    assert!(pool.pick(req()).await.is_err(), "still off requests");
    let now = Clock::now_ms(fx2.clock.as_ref());
    settle(Duration::from_millis((until - now + 1000) as u64)).await;
    let lease = pool
        .pick(req())
        .await
        .expect("served once the cooldown ends");
    lease.failed(UpstreamFailure::Refused {
        cause: PenaltyCause::Forbidden,
        reason: "flagged again".into(),
    });
    let at = lease.started_at;
    drop(lease);
    settle(Duration::from_millis(10)).await;
    let again = refused_until(&pool, "a").await.expect("cooling again");
    assert!(
        (again - at - 60 * 60_000).abs() < 1000,
        "level 2: an hour, not 30 minutes: {} min",
        (again - at) / 60_000
    );
    pool.shutdown().await;

    let mut old = serde_json::to_value(&stored).expect("json");
    old.as_object_mut().expect("obj").remove("refusal");
    let old: rotor_actors::AccountRecord =
        serde_json::from_value(old).expect("an old record loads");
    assert_eq!(old.refusal, None);
}
