//! Pool-level trace snapshots: a scripted sequence of requests (and their upstream answers),
//! waits and crashes against a real pool on tokio's paused clock. Each step records the message,
//! every account's view after it (badge, leases, usage, locks; times relative to the start) and
//! its effect (which account served, or why none could). The assertions pin the rule each
//! scenario is about, so a wrong snapshot cannot be accepted silently.

use std::collections::BTreeMap;
use std::time::Duration;

use rotor_actors::quota::{Observation, Rejection429, RejectionKind, Window};
use rotor_actors::{PickError, PickRequest, PoolHandle};
use serde_json::{Value, json};

use crate::fakes::{Fx, record};
use crate::pool::{cfg, settle};
use crate::support::{Step, rel, relative, settings};

/// What upstream answers a request.
#[derive(Clone, Copy)]
enum Answer {
    /// 200, no quota headers.
    Ok,
    /// 429 on the limit (`None` = primary) with `resets_in_seconds`.
    Limit429(Option<&'static str>, u64),
    /// 200 whose headers show the primary window at `used` %, resetting in 5 h.
    Primary(f64),
}

/// One scripted step.
enum Do {
    /// A request for `model` (with an affinity key) answered by upstream; the lease is dropped.
    Request(&'static str, Option<&'static str>, Answer),
    /// A request whose lease is kept (still streaming) until the scenario ends.
    Hold(&'static str),
    /// Time passes.
    Wait(Duration),
    /// The next durable write of this account panics, and an operator action triggers one.
    Crash(&'static str),
}

fn message(d: &Do, now: i64) -> Value {
    let answer = |a: &Answer| match a {
        Answer::Ok => json!("200"),
        Answer::Limit429(limit, s) => json!({ "429": { "limit": limit, "resets_in_secs": s } }),
        Answer::Primary(used) => json!({ "200_primary_used_percent": used }),
    };
    let body = match d {
        Do::Request(model, aff, a) => {
            json!({ "request": { "model": model, "affinity": aff, "answer": answer(a) } })
        }
        Do::Hold(model) => json!({ "request_held_open": { "model": model } }),
        Do::Wait(t) => json!({ "wait": humantime::format_duration(*t).to_string() }),
        Do::Crash(id) => json!({ "crash": id }),
    };
    json!({ "at": rel(now), "do": body })
}

/// Runs a script against a pool of `ids`; returns the trace.
async fn run(ids: &[&str], script: Vec<Do>) -> Vec<Step> {
    let fx = Fx::new();
    for id in ids {
        // every account has a durable record, as in the daemon
        let r = record(id, None);
        fx.store.recs.lock().unwrap().insert(r.id.clone(), r);
    }
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
            Do::Request(model, affinity, answer) => {
                let req = PickRequest {
                    model: model.into(),
                    affinity: affinity.map(str::to_string),
                    ..PickRequest::default()
                };
                match pool.pick(req).await {
                    Ok(lease) => {
                        respond(&lease, answer);
                        json!({ "served_by": lease.account_id })
                    }
                    Err(e) => refused(e),
                }
            }
            Do::Hold(model) => {
                let req = PickRequest {
                    model: model.into(),
                    ..PickRequest::default()
                };
                match pool.pick(req).await {
                    Ok(lease) => {
                        let v = json!({ "served_by": lease.account_id });
                        held.push(lease);
                        v
                    }
                    Err(e) => refused(e),
                }
            }
            Do::Wait(t) => {
                settle(t).await;
                json!([])
            }
            Do::Crash(id) => {
                *fx.store.panic_on.lock().unwrap() = Some(id.into());
                let r = pool.set_enabled(id, false).await;
                json!({ "operator_call": if r.is_ok() { "answered" } else { "failed: actor crashed" } })
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

fn respond(lease: &rotor_actors::Lease, a: Answer) {
    match a {
        Answer::Ok => {}
        Answer::Limit429(limit, secs) => lease.rejected(Rejection429 {
            at: lease.started_at,
            limit: limit.map(str::to_string),
            resets_in_secs: Some(secs),
            kind: RejectionKind::UsageLimitReached,
            model_limit: lease.model_limit.clone(),
            ..Rejection429::default()
        }),
        Answer::Primary(used) => lease.observe_headers(Observation {
            at: lease.started_at,
            primary: Some(Window {
                used_percent: used,
                window_secs: Some(18_000),
                reset_at: Some(lease.started_at + 18_000_000),
                limit_reached: None,
            }),
            ..Observation::default()
        }),
    }
}

fn refused(e: PickError) -> Value {
    json!({ "refused": relative(&match e {
        PickError::Exhausted { soonest_reset } => json!({ "exhausted": { "soonest_reset": soonest_reset } }),
        other => json!({ "unavailable": other.to_string() }),
    })})
}

/// Every account's view (compact) and the pool-level facts the scenarios are about.
async fn state(pool: &PoolHandle) -> Value {
    let mut accounts = BTreeMap::new();
    for v in pool.accounts().await {
        accounts.insert(
            v.id.clone(),
            relative(&json!({
                "badge": v.derived_status,
                "leases": v.leases,
                "requests": v.usage.requests,
                "last_used": v.usage.last_used,
                "locks": v.quota.locks(),
                "verify": v.verify,
            })),
        );
    }
    let s = pool.summary().await;
    json!({ "accounts": accounts, "pool": { "total": s.total, "serving": s.serving, "restarts": s.restarts } })
}

fn served(trace: &[Step]) -> Vec<String> {
    trace
        .iter()
        .map(|s| {
            s.effects["served_by"]
                .as_str()
                .map_or_else(|| s.effects.to_string(), str::to_string)
        })
        .collect()
}

const GPT: &str = "gpt-5.5";
const SPARK: &str = "gpt-5.3-codex-spark";
const SEC: Duration = Duration::from_secs(1);

#[tokio::test(start_paused = true)]
async fn trace_a_spark_limit_lock_excludes_only_spark_models() {
    let trace = run(
        &["a", "b"],
        vec![
            Do::Request(SPARK, None, Answer::Limit429(Some("codex_bengalfox"), 600)),
            Do::Wait(SEC),
            Do::Request(SPARK, None, Answer::Ok),
            Do::Request(GPT, None, Answer::Ok),
            Do::Request(SPARK, None, Answer::Limit429(Some("codex_bengalfox"), 900)),
            Do::Request(SPARK, None, Answer::Ok),
            Do::Request(GPT, None, Answer::Ok),
        ],
    )
    .await;
    assert_eq!(served(&trace)[..4], ["a", "[]", "b", "a"]);
    assert!(
        trace[5].effects["refused"]["exhausted"]["soonest_reset"]
            .as_str()
            .is_some_and(|t| t.starts_with("+10m")),
        "every account Spark-locked: exhausted, soonest reset is a's: {}",
        trace[5].effects
    );
    assert!(
        trace[6].effects["served_by"].is_string(),
        "other models are still served"
    );
    assert_eq!(trace[6].state["pool"]["serving"], true);
    settings().bind(|| insta::assert_yaml_snapshot!(trace));
}

#[tokio::test(start_paused = true)]
async fn trace_least_used_orders_by_leases_then_requests_and_rotates_ties() {
    let trace = run(
        &["a", "b", "c"],
        vec![
            Do::Request(GPT, None, Answer::Ok),
            Do::Request(GPT, None, Answer::Ok),
            Do::Request(GPT, None, Answer::Ok),
            Do::Request(GPT, None, Answer::Ok),
            Do::Request(GPT, None, Answer::Ok),
            Do::Hold(GPT),
            Do::Hold(GPT),
            Do::Request(GPT, None, Answer::Ok),
        ],
    )
    .await;
    assert_eq!(
        served(&trace),
        ["a", "b", "c", "a", "b", "c", "a", "b"],
        "ties rotate; then fewer leases first, then fewer requests"
    );
    settings().bind(|| insta::assert_yaml_snapshot!(trace));
}

#[tokio::test(start_paused = true)]
async fn trace_affinity_keeps_a_conversation_then_moves_it_on_exhaustion() {
    let conv = Some("conv-1");
    let trace = run(
        &["a", "b", "c"],
        vec![
            Do::Request(GPT, conv, Answer::Ok),
            Do::Request(GPT, conv, Answer::Ok),
            Do::Request(GPT, None, Answer::Ok),
            Do::Request(GPT, conv, Answer::Primary(100.0)),
            Do::Request(GPT, conv, Answer::Ok),
            Do::Request(GPT, conv, Answer::Ok),
        ],
    )
    .await;
    assert_eq!(
        served(&trace),
        ["a", "a", "b", "a", "c", "c"],
        "kept on a (least_used would move), moved when a's headers show it exhausted, kept on c"
    );
    settings().bind(|| insta::assert_yaml_snapshot!(trace));
}

#[tokio::test(start_paused = true)]
async fn trace_a_panicking_account_actor_is_restarted_with_its_quota_intact() {
    let trace = run(
        &["a", "b"],
        vec![
            Do::Request(GPT, None, Answer::Limit429(None, 3600)),
            Do::Wait(2 * SEC),
            Do::Crash("a"),
            Do::Request(GPT, None, Answer::Ok),
            Do::Wait(SEC),
            Do::Request(GPT, None, Answer::Ok),
        ],
    )
    .await;
    let a_lock = |i: usize| trace[i].state["accounts"]["a"]["locks"].clone();
    assert_eq!(trace[2].effects["operator_call"], "failed: actor crashed");
    assert!(
        trace[2].state["accounts"].get("a").is_none(),
        "a is down meanwhile"
    );
    assert_eq!(served(&trace)[3], "b", "the pool keeps serving");
    assert_eq!(trace[4].state["pool"]["restarts"], 1);
    assert_eq!(
        a_lock(4),
        a_lock(1),
        "restarted from its durable record: the 429 lock survives"
    );
    assert_eq!(a_lock(4)[0]["bucket"], "primary");
    assert_eq!(
        served(&trace)[5],
        "b",
        "a is still locked after its restart"
    );
    settings().bind(|| insta::assert_yaml_snapshot!(trace));
}
