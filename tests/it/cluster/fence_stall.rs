//! The refresh fence behind a silent network stall (docs/cluster.md "Refresh in the actors"):
//! the fence reaches PostgreSQL through a relay the test cuts — TCP stays open, no byte
//! moves, as when packets are dropped — and every fence operation, the wait for a new
//! connection included, still ends within `Window::op_timeout`. A begin that timed out is not
//! begun (nothing written, nothing to call); a finish that timed out is a finish the store did
//! not answer: the intent stays, the finish is sent again once the network is back and
//! accepted, the account kept. A begin whose COMMIT landed and whose answer was lost is sent
//! again with its nonce and gets the intent it committed, so the account's refreshes go on.

use std::time::{Duration, Instant};

use super::fence::{Node, WINDOW};
use super::relay::Relay;
use super::throwaway::{ThrowawayPg, tcp_url};
use rotor_actors::{FenceRefusal, RefreshFence};

/// Slack over the op bound for a loaded machine.
const SLACK: Duration = Duration::from_millis(700);

/// Runs a fence op, failing the test (instead of hanging) far past any bound.
async fn timed<T>(op: impl Future<Output = T>) -> (T, Duration) {
    let started = Instant::now();
    let out = tokio::time::timeout(Duration::from_secs(10), op)
        .await
        .expect("the fence op never ended");
    (out, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fence_op_behind_a_stalled_network_ends_within_its_bound_as_unanswered() {
    let pg = ThrowawayPg::start_with_tcp();
    let url = pg.database("fence_stall").await;
    let relay = Relay::start(pg.tcp_addr().expect("tcp"))
        .await
        .expect("relay");
    let fence_url = tcp_url(relay.addr(), "fence_stall");
    let n = Node::start_via(&url, &fence_url, 60_000).await;
    let bound = WINDOW.op_timeout();

    // The fence's open connection stops answering: the begin ends at the bound, not begun.
    relay.cut();
    let (r, took) = timed(n.fence.begin(&n.id)).await;
    assert!(matches!(r, Err(FenceRefusal::Later(_))), "{r:?}");
    assert!(took < bound + SLACK, "{took:?}");
    assert_eq!(n.row().await.intent, None, "nothing begun");
    // The next one needs a new connection, which the stalled network accepts and never
    // answers: bounded the same.
    let (r, took) = timed(n.fence.begin(&n.id)).await;
    assert!(matches!(r, Err(FenceRefusal::Later(_))), "{r:?}");
    assert!(took < bound + SLACK, "{took:?}");

    relay.heal();
    let ticket = n
        .fence
        .begin(&n.id)
        .await
        .expect("begun once the network is back");
    let before = n.row().await;
    assert!(before.intent.is_some());

    // The finish meets the stall: unanswered, within the bound; nothing stored.
    relay.cut();
    let (r, took) = timed(n.fence.finish(&n.id, ticket.clone())).await;
    assert!(matches!(r, Err(FenceRefusal::Later(_))), "{r:?}");
    assert!(took < bound + SLACK, "{took:?}");
    assert_eq!(
        n.row().await,
        before,
        "the intent stands, no rotation stored"
    );

    // Sent again once the network is back: stored, the account kept.
    relay.heal();
    let (r, _) = timed(n.fence.finish(&n.id, ticket)).await;
    assert_eq!(r, Ok(()));
    let after = n.row().await;
    assert_eq!(after.token_version, before.token_version + 1);
    assert!(
        after.intent.is_none() && !after.refresh_ambiguous,
        "{after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_begin_whose_commit_landed_but_whose_answer_was_lost_is_taken_over_by_the_next_begin() {
    let pg = ThrowawayPg::start_with_tcp();
    let url = pg.database("fence_lost_begin").await;
    let relay = Relay::start(pg.tcp_addr().expect("tcp"))
        .await
        .expect("relay");
    let fence_url = tcp_url(relay.addr(), "fence_lost_begin");
    let n = Node::start_via(&url, &fence_url, 60_000).await;
    let bound = WINDOW.op_timeout();

    // The begin's COMMIT reaches the database; its answer never comes back.
    relay.cut_after(b"COMMIT");
    let (r, took) = timed(n.fence.begin(&n.id)).await;
    assert!(matches!(r, Err(FenceRefusal::Later(_))), "{r:?}");
    assert!(took < bound + SLACK, "{took:?}");
    let standing = n.row().await;
    let lost = standing.intent.clone().expect("the intent was committed");
    assert!(relay.is_cut());

    // Sent again once the network is back: the same intent, taken over, no new one begun.
    relay.heal();
    let ticket = n
        .fence
        .begin(&n.id)
        .await
        .expect("the lost begin taken over");
    assert_eq!(
        (ticket.intent_gen, ticket.token_version, ticket.nonce),
        (lost.intent_gen, lost.token_version, lost.nonce)
    );
    let row = n.row().await;
    assert_eq!(
        row.last_intent_gen, standing.last_intent_gen,
        "no new intent"
    );
    assert!(row.intent.is_some_and(|i| i.deadline >= lost.deadline));

    // It refreshes as any begun intent: the rotation is stored, and the next begin is new.
    n.fence.finish(&n.id, ticket).await.expect("finished");
    let after = n.row().await;
    assert_eq!(after.token_version, standing.token_version + 1);
    assert!(
        after.intent.is_none() && !after.refresh_ambiguous,
        "{after:?}"
    );
    let next = n.fence.begin(&n.id).await.expect("a new refresh");
    assert_eq!(next.intent_gen, lost.intent_gen + 1);
    assert_ne!(next.nonce, lost.nonce, "a new begin draws a new nonce");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_lost_abandon_only_an_unused_intent_is_taken_over() {
    let pg = ThrowawayPg::start_with_tcp();
    let url = pg.database("fence_lost_abandon").await;
    let relay = Relay::start(pg.tcp_addr().expect("tcp"))
        .await
        .expect("relay");
    let fence_url = tcp_url(relay.addr(), "fence_lost_abandon");
    let n = Node::start_via(&url, &fence_url, 60_000).await;

    // A call that used no token, its abandon lost in the stall: the intent stands, unused, and
    // the next begin takes it over.
    let unused = n.fence.begin(&n.id).await.expect("begun");
    relay.cut();
    let (r, _) = timed(n.fence.abandon(&n.id, unused.clone(), false)).await;
    assert!(matches!(r, Err(FenceRefusal::Later(_))), "{r:?}");
    relay.heal();
    assert!(n.row().await.intent.is_some(), "the abandon never landed");
    let again = n.fence.begin(&n.id).await.expect("taken over");
    assert_eq!(
        (again.intent_gen, again.token_version, again.nonce),
        (unused.intent_gen, unused.token_version, unused.nonce)
    );

    // A call that may have used the token, its abandon lost: its intent is never taken over.
    relay.cut();
    let (r, _) = timed(n.fence.abandon(&n.id, again, true)).await;
    assert!(matches!(r, Err(FenceRefusal::Later(_))), "{r:?}");
    relay.heal();
    let (r, _) = timed(n.fence.begin(&n.id)).await;
    assert!(
        matches!(&r, Err(FenceRefusal::Later(why)) if why.contains("in flight")),
        "{r:?}"
    );
    assert_eq!(
        n.row().await.last_intent_gen,
        unused.intent_gen,
        "no new intent"
    );
}
