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
    pool.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn past_the_restart_budget_a_crashing_account_stays_stopped_and_the_pool_goes_on() {
    let fx = Fx::new();
    let c = PoolConfig {
        restart_budget: 1,
        ..cfg()
    };
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
        pool.set_enabled("a", true).await.ok();
    }
    assert!(
        pool.account("a").await.is_none(),
        "budget of 1 restart spent: left stopped"
    );
    let s = pool.summary().await;
    assert_eq!((s.total, s.serving), (2, true), "{s:?}");
    assert_eq!(pool.pick(req()).await.expect("b serves").account_id, "b");
    pool.shutdown().await;
}
