//! Readiness waits for a session's first claim pass (docs/cluster.md "How a node runs"): a
//! real node whose session is lost and re-acquired while its claim passes cannot read the
//! ownership table answers 503 on `/readyz` — held, but no pass completed — then, a TTL after
//! acquiring, 200 saying its claim passes keep failing; once the table can be read, a pass
//! completes and it is ready as usual, running every account again.

use super::nodes::{Cluster, Node};
use serde_json::Value;
use std::time::Duration;

/// `/readyz` of node `n`: status and reason.
async fn readyz(c: &Cluster, n: &Node) -> Option<(u16, String)> {
    let r = c
        .http
        .get(format!("http://127.0.0.1:{}/readyz", n.port))
        .send()
        .await
        .ok()?;
    let status = r.status().as_u16();
    let v: Value = r.json().await.ok()?;
    Some((status, v["reason"].as_str().unwrap_or("").to_owned()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_is_ready_only_after_its_first_claim_pass_or_a_ttl_of_failing_ones() {
    let c = Cluster::start(4).await;
    let a = c.node("a");
    c.within(
        "a runs every account",
        Duration::from_secs(30),
        &[&a],
        async || c.split_between(&[&a]).await,
    )
    .await;

    // The ownership table cannot be read (the node's statements give up at their lock
    // timeout), and a's session ends in the database: a loses it and acquires a new one.
    let (mut locker, conn) = tokio_postgres::connect(&c.url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    let tx = locker.transaction().await.expect("begin");
    tx.batch_execute("lock table rotor_account_owner in access exclusive mode")
        .await
        .expect("lock");
    let (other, conn) = tokio_postgres::connect(&c.url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    other
        .execute(
            "update rotor_node_session set expires_at = 0 where node = 'a'",
            &[],
        )
        .await
        .expect("expire a's session");

    let waiting = c
        .within(
            "held again, not ready before a claim pass",
            Duration::from_secs(10),
            &[&a],
            async || {
                readyz(&c, &a).await.is_some_and(|(s, why)| {
                    s == 503 && why.contains("has not completed its first claim pass")
                })
            },
        )
        .await;
    let overdue = c
        .within(
            "ready a TTL later, saying the claim passes fail",
            Duration::from_secs(10),
            &[&a],
            async || {
                readyz(&c, &a)
                    .await
                    .is_some_and(|(s, why)| s == 200 && why.contains("no claim pass has completed"))
            },
        )
        .await;
    eprintln!("503 after {waiting:?}, ready (overdue) {overdue:?} later");
    assert!(
        overdue >= Duration::from_millis(1000),
        "it waited for the pass: {overdue:?}"
    );

    tx.rollback().await.expect("unlock");
    c.within(
        "a pass completes: ready as usual, every account running",
        Duration::from_secs(15),
        &[&a],
        async || {
            c.split_between(&[&a]).await
                && readyz(&c, &a)
                    .await
                    .is_some_and(|(s, why)| s == 200 && !why.contains("claim pass"))
        },
    )
    .await;
}
