//! Supervision: a failed account actor is restarted from its durable record with backoff,
//! within a restart budget; the rest of the pool keeps serving throughout.

use std::time::Duration;

use rotor_actors::{PoolConfig, PoolHandle, Status};

use crate::fakes::{Fx, record};
use crate::pool::{cfg, req, settle};

#[tokio::test(start_paused = true)]
async fn a_failed_actor_is_restarted_from_its_durable_record_and_the_pool_keeps_serving() {
    let fx = Fx::new();
    let pool = PoolHandle::start(
        cfg(),
        fx.effects(),
        vec![record("a", None), record("b", None)],
    )
    .await
    .expect("pool");
    settle(Duration::from_millis(10)).await;
    assert_eq!(pool.summary().await.restarts, 0);
    pool.set_enabled("a", false)
        .await
        .expect("disable a: durable");
    *fx.store.panic_on.lock().unwrap() = Some("a".into());
    assert!(
        pool.set_enabled("a", true).await.is_err(),
        "the actor panicked while saving"
    );
    assert_eq!(
        pool.pick(req())
            .await
            .expect("b serves meanwhile")
            .account_id,
        "b"
    );
    settle(Duration::from_secs(1)).await;
    let v = pool.account("a").await.expect("a is back");
    assert_eq!(
        v.status,
        Status::Disabled,
        "restarted from the last durable record"
    );
    assert_eq!(pool.summary().await.restarts, 1, "the restart is counted");
    pool.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn past_the_restart_budget_a_crashing_account_stays_stopped_and_the_pool_goes_on() {
    let fx = Fx::new();
    let c = PoolConfig {
        restart_budget: 1,
        ..cfg()
    };
    // a's durable record exists, so its first failure really is restarted from it
    fx.store
        .recs
        .lock()
        .unwrap()
        .insert("a".into(), record("a", None));
    let pool = PoolHandle::start(c, fx.effects(), vec![record("a", None), record("b", None)])
        .await
        .expect("pool");
    settle(Duration::from_millis(10)).await;
    for round in 0..2 {
        *fx.store.panic_on.lock().unwrap() = Some("a".into());
        assert!(
            pool.set_enabled("a", false).await.is_err(),
            "round {round}: the actor crashed"
        );
        settle(Duration::from_secs(2)).await;
        assert_eq!(
            pool.account("a").await.is_some(),
            round == 0,
            "round {round}: restarted only within the budget"
        );
    }
    assert!(
        pool.account("a").await.is_none(),
        "budget of 1 restart spent: left stopped"
    );
    let s = pool.summary().await;
    assert_eq!((s.total, s.serving), (2, true), "{s:?}");
    assert_eq!(
        s.restarts, 1,
        "one restart, then none: the budget was spent"
    );
    assert_eq!(pool.pick(req()).await.expect("b serves").account_id, "b");
    pool.shutdown().await;
}

/// Child half of the test below: runs only when spawned by it, with the panic env set.
#[tokio::test(start_paused = true)]
async fn child_pool_with_an_injected_tick_panic() {
    if std::env::var("ROTOR_PANIC_CHILD").is_err() {
        return;
    }
    let fx = Fx::new();
    let mut a = record("a", None);
    a.quota.plan_type = Some("pro".into());
    fx.store.recs.lock().unwrap().insert("a".into(), a.clone());
    let pool = PoolHandle::start(cfg(), fx.effects(), vec![a, record("b", None)])
        .await
        .expect("pool");
    // several ticks: the first of a's panics, the restarted actor's ticks must not
    settle(Duration::from_secs(10)).await;
    assert_eq!(pool.summary().await.restarts, 1, "restarted exactly once");
    let v = pool.account("a").await.expect("a is back, not lost");
    assert_eq!(v.quota.plan_type.as_deref(), Some("pro"), "quota intact");
    // 4 held leases at 2 per account: a must take its share
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(pool.pick(req()).await.expect("the pool serves"));
    }
    let served: Vec<&str> = held.iter().map(|l| l.account_id.as_str()).collect();
    assert_eq!(
        served.iter().filter(|id| **id == "a").count(),
        2,
        "a serves again: {served:?}"
    );
    drop(held);
    pool.shutdown().await;
}

#[test]
fn an_injected_tick_panic_restarts_the_account_once_and_it_keeps_serving() {
    let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "supervision::child_pool_with_an_injected_tick_panic",
            "--test-threads=1",
            "--nocapture",
        ])
        .env("ROTOR_PANIC_CHILD", "1")
        .env(rotor_actors::fault::PANIC_ENV, "a")
        .output()
        .expect("spawn child");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed:\n{text}");
    assert!(text.contains("1 passed"), "the child test ran:\n{text}");
    assert!(
        text.contains(rotor_actors::fault::PANIC_MESSAGE),
        "the panic was injected:\n{text}"
    );
}
