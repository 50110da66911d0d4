//! The Cloudflare cooldown as scripted traces against a real pool on tokio's paused clock
//! (issue 15, item 17). A challenge page costs the account that met it, briefly: the
//! escalation climbs only on consecutive challenges (no success in between), several requests
//! in flight that meet the same challenge are one incident, quiet time steps it back down, and a
//! pool whose accounts are all cooling still serves, on the account whose cooldown ends first.
//! Each step records the message, every account's badge and cooldown end (relative to the
//! start) and which account served; the assertions pin the rule each step is about.

use std::collections::BTreeMap;
use std::time::Duration;

use rotor_actors::quota::{Observation, Window};
use rotor_actors::{Lease, PickError, PickRequest, PoolHandle, UpstreamFailure};
use serde_json::{Value, json};

use crate::fakes::{Fx, record};
use crate::pool::{cfg, req, settle};
use crate::support::{Step, rel, relative, settings};

/// What upstream answers a request.
#[derive(Clone, Copy, Debug)]
enum Answer {
    /// 200 with quota headers: Cloudflare let the request through.
    Ok,
    /// The challenge page (403 HTML).
    Challenge,
}

/// One scripted step.
enum Do {
    /// A request that may only go to this account (the others are excluded, as after failing
    /// over from them), answered by upstream; the lease is dropped.
    On(&'static str, Answer),
    /// A request anywhere in the pool.
    Any(Answer),
    /// Two requests in flight on this account at once, both challenged.
    TwoChallenged(&'static str),
    /// A request on this account whose lease is kept (still streaming) until [`Do::ReleaseHeld`].
    Hold(&'static str),
    /// The held leases end.
    ReleaseHeld,
    /// Time passes.
    Wait(Duration),
}

fn message(d: &Do, now: i64) -> Value {
    let body = match d {
        Do::On(id, a) => json!({ "request_on": id, "answer": format!("{a:?}") }),
        Do::Any(a) => json!({ "request": "any account", "answer": format!("{a:?}") }),
        Do::TwoChallenged(id) => json!({ "two_requests_in_flight_on": id, "answer": "Challenge" }),
        Do::Hold(id) => json!({ "request_held_open_on": id }),
        Do::ReleaseHeld => json!("held requests end"),
        Do::Wait(t) => json!({ "wait": humantime::format_duration(*t).to_string() }),
    };
    json!({ "at": rel(now), "do": body })
}

fn only(ids: &[&str], on: &str) -> PickRequest {
    PickRequest {
        exclude: ids
            .iter()
            .filter(|i| **i != on)
            .map(|i| i.to_string())
            .collect(),
        ..req()
    }
}

fn answer(lease: &Lease, a: Answer) {
    match a {
        Answer::Ok => lease.observe_headers(Observation {
            at: lease.started_at,
            primary: Some(Window {
                used_percent: 10.0,
                window_secs: Some(18_000),
                reset_at: Some(lease.started_at + 18_000_000),
                limit_reached: None,
            }),
            ..Observation::default()
        }),
        Answer::Challenge => lease.failed(UpstreamFailure::Cloudflare),
    }
}

fn refused(e: PickError) -> Value {
    json!({ "refused": match e {
        PickError::Exhausted { .. } => "exhausted".to_string(),
        other => other.to_string(),
    }})
}

/// Runs a script against a pool of `ids`; returns the trace.
async fn run(ids: &[&str], script: Vec<Do>) -> Vec<Step> {
    let fx = Fx::new();
    let recs = ids.iter().map(|id| record(id, None)).collect();
    let pool = PoolHandle::start(cfg(), fx.effects(), recs)
        .await
        .expect("pool");
    settle(Duration::from_millis(10)).await;
    let (mut held, mut trace) = (Vec::new(), Vec::new());
    for d in script {
        let now = rotor_actors::Clock::now_ms(fx.clock.as_ref());
        let msg = message(&d, now);
        let effects = match d {
            Do::On(id, a) => serve(&pool, only(ids, id), a).await,
            Do::Any(a) => serve(&pool, req(), a).await,
            Do::TwoChallenged(id) => {
                let first = pool.pick(only(ids, id)).await;
                let second = pool.pick(only(ids, id)).await;
                match (first, second) {
                    (Ok(l1), Ok(l2)) => {
                        answer(&l1, Answer::Challenge);
                        answer(&l2, Answer::Challenge);
                        json!({ "served_by": [l1.account_id.clone(), l2.account_id.clone()] })
                    }
                    (a, b) => json!({ "not_both_leased": [a.is_ok(), b.is_ok()] }),
                }
            }
            Do::Hold(id) => match pool.pick(only(ids, id)).await {
                Ok(lease) => {
                    let v = json!({ "served_by": lease.account_id });
                    held.push(lease);
                    v
                }
                Err(e) => refused(e),
            },
            Do::ReleaseHeld => {
                held.clear();
                json!([])
            }
            Do::Wait(t) => {
                settle(t).await;
                json!([])
            }
        };
        settle(Duration::from_millis(10)).await;
        trace.push(Step {
            message: msg,
            state: state(&pool).await,
            effects,
        });
    }
    drop(held);
    pool.shutdown().await;
    trace
}

async fn serve(pool: &PoolHandle, r: PickRequest, a: Answer) -> Value {
    match pool.pick(r).await {
        Ok(lease) => {
            answer(&lease, a);
            json!({ "served_by": lease.account_id })
        }
        Err(e) => refused(e),
    }
}

/// Every account's badge and cooldown end, and whether the pool reports itself serving.
async fn state(pool: &PoolHandle) -> Value {
    let mut accounts = BTreeMap::new();
    for v in pool.accounts().await {
        accounts.insert(
            v.id.clone(),
            relative(&json!({
                "badge": v.derived_status,
                "cooldown_until": v.cooldown_until,
                "leases": v.leases,
            })),
        );
    }
    json!({ "accounts": accounts, "serving": pool.summary().await.serving })
}

/// The cooldown the step left on `id`, as an offset from that step's start ("10s", "1m 30s").
fn cooldown(trace: &[Step], i: usize, id: &str) -> Option<String> {
    let until = trace[i].state["accounts"][id]["cooldown_until"].as_str()?;
    let at = trace[i].message["at"].as_str()?;
    let parse = |s: &str| humantime::parse_duration(s.trim_start_matches('+')).ok();
    let d = parse(until)?.checked_sub(parse(at)?)?;
    Some(humantime::format_duration(Duration::from_secs(d.as_secs())).to_string())
}

fn served(trace: &[Step], i: usize) -> String {
    trace[i].effects["served_by"]
        .as_str()
        .map_or_else(|| trace[i].effects.to_string(), str::to_string)
}

const SEC: Duration = Duration::from_secs(1);

#[tokio::test(start_paused = true)]
async fn trace_challenges_escalate_only_when_consecutive_and_quiet_time_steps_them_down() {
    let trace = run(
        &["a", "b"],
        vec![
            Do::On("a", Answer::Challenge),
            Do::Wait(10 * SEC),
            Do::On("a", Answer::Ok),
            Do::On("a", Answer::Challenge),
            Do::Wait(10 * SEC),
            Do::On("a", Answer::Challenge),
            Do::Wait(30 * SEC),
            Do::On("a", Answer::Challenge),
            Do::Wait(90 * SEC),
            Do::On("a", Answer::Challenge),
            Do::Wait(120 * SEC),
            Do::On("a", Answer::Challenge),
            Do::TwoChallenged("b"),
            Do::Wait(600 * SEC),
            Do::On("a", Answer::Challenge),
        ],
    )
    .await;
    let cd = |i: usize, id: &str| cooldown(&trace, i, id).unwrap_or_else(|| "none".into());
    assert_eq!(cd(0, "a"), "10s", "a first challenge: a brief cooldown");
    assert_eq!(cd(0, "b"), "none", "it costs only the account that met it");
    assert_eq!(served(&trace, 2), "a", "back after its cooldown");
    assert_eq!(
        cd(3, "a"),
        "10s",
        "a success came between: the challenge is isolated again, no escalation"
    );
    assert_eq!(
        [cd(5, "a"), cd(7, "a"), cd(9, "a"), cd(11, "a")],
        ["30s", "1m 30s", "2m", "2m"],
        "challenged again on each next attempt: escalates to the cap"
    );
    assert_eq!(
        cd(12, "b"),
        "10s",
        "two requests in flight meeting the same challenge are one incident"
    );
    assert_eq!(
        cd(14, "a"),
        "1m 30s",
        "ten quiet minutes stepped the escalation down two levels"
    );
    settings().bind(|| insta::assert_yaml_snapshot!(trace));
}

#[tokio::test(start_paused = true)]
async fn trace_a_pool_of_cooling_accounts_keeps_serving_on_the_soonest_to_recover() {
    let trace = run(
        &["a", "b", "c"],
        vec![
            Do::On("a", Answer::Challenge),
            Do::On("a", Answer::Challenge),
            Do::On("b", Answer::Challenge),
            Do::Hold("c"),
            Do::Hold("c"),
            Do::Any(Answer::Ok),
            Do::Any(Answer::Ok),
            Do::On("b", Answer::Challenge),
            Do::On("b", Answer::Challenge),
            Do::Any(Answer::Ok),
            Do::ReleaseHeld,
            Do::On("c", Answer::Challenge),
            Do::Any(Answer::Ok),
            Do::Any(Answer::Ok),
        ],
    )
    .await;
    let cd = |i: usize, id: &str| cooldown(&trace, i, id).unwrap_or_else(|| "none".into());
    assert_eq!(
        (served(&trace, 1), cd(1, "a")),
        ("a".to_string(), "30s".to_string()),
        "the only account the request may use is cooling: it serves rather than refuse, and \
         meeting the challenge again escalates it"
    );
    assert_eq!(
        served(&trace, 5),
        "b",
        "c is full and b met one challenge: b takes the request instead of letting it wait"
    );
    assert_eq!(cd(5, "b"), "none", "and its success ends b's cooldown");
    assert_eq!(served(&trace, 6), "b");
    assert!(
        trace[9].effects.get("refused").is_some(),
        "c full, a and b challenged repeatedly: the request waits for c and is refused, it \
         does not hammer accounts Cloudflare keeps challenging: {}",
        trace[9].effects
    );
    assert_eq!(cd(11, "c"), "10s");
    assert_eq!(
        served(&trace, 12),
        "c",
        "every account cooling: the one whose cooldown ends first serves"
    );
    assert_eq!(trace[12].state["serving"], true);
    assert_eq!(
        (cd(12, "c"), served(&trace, 13)),
        ("none".to_string(), "c".to_string()),
        "its success ends its cooldown"
    );
    settings().bind(|| insta::assert_yaml_snapshot!(trace));
}
