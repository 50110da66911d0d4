//! The headroom rule as a scripted trace of one account's state: requests are leased, answered
//! with quota headers (usage at their start, as upstream reports it) and released; each step
//! records the lease cap the account publishes, the learnt step and the explanation. The
//! assertions pin the rule: the cap narrows to one only near the end of a window, the account is
//! never marked exhausted by prediction, and the narrowed cap is republished to the board.

use std::sync::Arc;

use rotor_actors::account::{AccountConfig, AccountState};
use rotor_actors::quota::{Event, Observation, Window};
use rotor_actors::{AccountRecord, PoolConfig, Tokens};
use serde_json::{Value, json};

use crate::support::{H, S, T0, rel, settings};

/// One scripted step.
enum Do {
    /// Lease a request at this offset.
    Reserve,
    /// The headers of the request started at `T0 + .0` show the primary window at `.1` %.
    Headers(i64, f64),
    /// A lease ends.
    Release,
}

fn state() -> AccountState {
    let rec = AccountRecord::new("acct", Tokens::default(), 0);
    AccountState::new(rec, Arc::new(AccountConfig::from(&PoolConfig::default())))
}

fn headers(at: i64, used: f64) -> Observation {
    Observation {
        at,
        primary: Some(Window {
            used_percent: used,
            window_secs: Some(5 * 3600),
            reset_at: Some(T0 + 5 * H),
            limit_reached: None,
        }),
        ..Observation::default()
    }
}

/// Runs the script (step `i` at `T0 + i s`); returns the trace and whether the published
/// candidate ever went stale (differed from a freshly built one while reported unchanged).
fn run(st: &mut AccountState, script: &[Do]) -> (Vec<Value>, bool) {
    let mut stale = false;
    let mut last = st.candidate(T0);
    let mut out = Vec::new();
    for (i, d) in script.iter().enumerate() {
        let now = T0 + i64::try_from(i).unwrap_or(0) * S;
        let message = match d {
            Do::Reserve => {
                let r = st.reserve(None, false, Default::default(), now);
                json!({ "reserve": r.map(|_| "granted".to_string()).unwrap_or_else(|e| format!("refused: {e}")) })
            }
            Do::Headers(at, used) => {
                st.quota(Event::HeaderObserved(headers(T0 + at * S, *used)), now);
                json!({ "headers": { "request_started": rel(T0 + at * S), "primary_used_percent": used } })
            }
            Do::Release => {
                st.release();
                json!("release")
            }
        };
        let fresh = st.candidate(now);
        stale |= st.candidate_unchanged(&last, now) != (fresh == last);
        last = fresh;
        let step = st
            .headroom
            .primary
            .step()
            .map(|s| (s * 100.0).round() / 100.0);
        out.push(json!({
            "at": rel(now),
            "do": message,
            "leases": st.leases,
            "published_max_leases": last.max_leases,
            "locks": last.locks.len(),
            "step_percent": step,
            "explain": st.explain(now).reasons,
        }));
    }
    (out, stale)
}

#[test]
fn a_nearly_used_window_serves_one_request_at_a_time_and_is_never_locked_by_prediction() {
    use Do::*;
    let mut st = state();
    let script = [
        // Three concurrent requests early in the window; each costs 2 points.
        Reserve,
        Reserve,
        Reserve,
        Headers(0, 80.0),
        Headers(2, 80.0),
        Headers(1, 80.0),
        Release,
        Release,
        Reserve,
        Headers(8, 84.0),
        Release,
        Release,
        // 10 points left at ~2.5 per request: three in flight still fit, a fourth would not.
        Reserve,
        Headers(12, 90.0),
        Reserve,
        Reserve,
        Release,
        Release,
        Release,
        // 3 points left: fewer than two requests' worth, so one at a time; at 1 point left the
        // next request is still granted (only the cached quota says "exhausted").
        Reserve,
        Headers(19, 97.0),
        Reserve,
        Release,
        Reserve,
        Headers(23, 99.0),
        Release,
    ];
    let (trace, stale) = run(&mut st, &script);
    assert!(
        !stale,
        "the allocation-free comparison saw every cap change"
    );
    let at = |i: usize| &trace[i];
    assert_eq!(
        at(9)["step_percent"],
        json!(2.0),
        "4 points over 2 completed requests"
    );
    assert_eq!(
        at(14)["leases"],
        json!(2),
        "room for more: the cap is unchanged"
    );
    assert_eq!(at(15)["leases"], json!(3));
    assert_eq!(
        at(20)["published_max_leases"],
        json!(1),
        "3 left < 2 × 2: narrowed"
    );
    assert!(
        at(21)["do"]["reserve"]
            .as_str()
            .is_some_and(|r| r.starts_with("refused: quota nearly used: one request at a time")),
        "a second lease is refused with the reason: {}",
        at(21)["do"]
    );
    assert_eq!(
        at(22)["published_max_leases"],
        json!(3),
        "with nothing in flight one more fits: the cap applies to concurrent requests only"
    );
    assert_eq!(
        at(23)["do"]["reserve"],
        json!("granted"),
        "the only request is never refused"
    );
    assert_eq!(
        at(23)["published_max_leases"],
        json!(1),
        "and the board learns the cap"
    );
    assert!(
        trace.iter().all(|s| s["locks"] == json!(0)),
        "nothing is locked by prediction"
    );
    settings().bind(|| insta::assert_yaml_snapshot!("headroom_trace", trace));
}

/// Headers of a request showing the primary window at `used` %.
fn primary(lease: &rotor_actors::Lease, used: f64) {
    lease.observe_headers(headers(lease.started_at, used));
}

#[tokio::test(start_paused = true)]
async fn through_the_pool_a_tight_account_takes_one_request_at_a_time_and_stays_unlocked() {
    use crate::fakes::{Fx, record};
    use crate::pool::{cfg, req, settle};
    use rotor_actors::{PickError, PoolHandle};
    use std::time::Duration;

    let fx = Fx::new();
    let pool = PoolHandle::start(cfg(), fx.effects(), vec![record("a", None)])
        .await
        .expect("pool");
    settle(Duration::from_millis(10)).await;
    let l1 = pool.pick(req()).await.expect("first lease");
    primary(&l1, 70.0);
    drop(l1);
    settle(Duration::from_millis(10)).await;
    let l2 = pool.pick(req()).await.expect("second lease");
    primary(&l2, 80.0);
    settle(Duration::from_millis(10)).await;
    let l3 = pool
        .pick(req())
        .await
        .expect("20 left ≥ 2 × 10: the cap of 2 holds");
    drop((l2, l3));
    settle(Duration::from_millis(10)).await;
    let l4 = pool.pick(req()).await.expect("lease");
    primary(&l4, 95.0);
    settle(Duration::from_millis(10)).await;
    match pool.pick(req()).await {
        Err(PickError::Unavailable { .. }) => {}
        other => panic!("5 left < 2 × ~10: a second lease must wait, got {other:?}"),
    }
    let e = pool.explain("a").await.expect("explain");
    assert!(
        e.reasons
            .iter()
            .any(|r| r.starts_with("quota nearly used: one request at a time (5.0% left")),
        "{e:?}"
    );
    let v = pool.account("a").await.expect("view");
    assert!(
        v.quota.locks().is_empty() && v.derived_status == "active",
        "never locked by prediction: {v:?}"
    );
    assert!(pool.summary().await.serving);
    drop(l4);
    settle(Duration::from_millis(10)).await;
    let l5 = pool
        .pick(req())
        .await
        .expect("the only request is never refused");
    primary(&l5, 99.0);
    drop(l5);
    pool.shutdown().await;
}
