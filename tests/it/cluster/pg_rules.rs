//! The ownership rules on a real PostgreSQL (`codex_rotor::store::postgres::LeaseDb`): the
//! schema migrates once and refuses a newer one; random operation sequences give exactly the
//! verdicts and the rows of the in-memory reference rules (`rotor_actors::ownership::rules`);
//! concurrent claimers on separate connections never both win; a zombie's late write is
//! refused by the database; a node's connection neither waits on a row lock nor holds one,
//! idle in a transaction, past its bound.

use super::throwaway::ThrowawayPg;
use codex_rotor::store::postgres::{DbError, LeaseDb, SCHEMA_VERSION};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rotor_actors::ownership::rules::{Intent, Refusal, Rules};

const TTL: i64 = 10_000;

#[tokio::test]
async fn the_schema_migrates_once_and_a_newer_one_is_refused() {
    let pg = ThrowawayPg::start();
    let url = pg.database("migrate").await;
    let mut db = LeaseDb::connect(&url).await.expect("connect");
    assert_eq!(db.migrate().await.expect("first migration"), 0);
    assert_eq!(db.migrate().await.expect("second start"), SCHEMA_VERSION);
    let (c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    c.execute("update rotor_schema set version = 99", &[])
        .await
        .expect("pretend a newer codex-rotor wrote it");
    let err = db.migrate().await.expect_err("a newer schema is refused");
    assert!(matches!(err, DbError::NewerSchema { found: 99 }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("99") && msg.contains("upgrade codex-rotor"),
        "{msg}"
    );
    let v: i32 = c
        .query_one("select version from rotor_schema", &[])
        .await
        .expect("version")
        .get(0);
    assert_eq!(v, 99, "nothing was changed");
}

/// One random operation, applied to the reference and to the database with the same clock.
async fn step(
    rng: &mut StdRng,
    now: i64,
    model: &mut Rules,
    db: &mut LeaseDb,
    intents: &mut Vec<Intent>,
) {
    let nodes = ["n0", "n1", "n2"];
    let accounts = ["a0", "a1"];
    let node = nodes[rng.random_range(0..nodes.len())];
    let account = accounts[rng.random_range(0..accounts.len())];
    let epoch = model.sessions.get(node).map_or(1, |s| s.epoch);
    let og = model.accounts[account].owner_gen;
    let clock = Some(now);
    match rng.random_range(0..8) {
        0 => {
            let m = model.acquire(node, TTL, now);
            let d = db.acquire(node, TTL, clock).await.expect("db");
            assert_eq!(d, m, "acquire {node} at {now}");
        }
        1 => {
            let m = model.renew(node, epoch, TTL, now);
            let d = db.renew(node, epoch, TTL, clock).await.expect("db");
            assert_eq!(d, m, "renew {node} at {now}");
        }
        2 => {
            let m = model.claim(account, node, epoch, og, now);
            let d = db.claim(account, node, epoch, og, clock).await.expect("db");
            assert_eq!(d, m, "claim {account} by {node} at {now}");
        }
        3 => {
            // Few nonces, so a begin often meets a standing intent of its own nonce (one
            // sent again after a lost answer), and 0, an intent from before nonces.
            let nonce = rng.random_range(0..4);
            let m = model.begin_refresh(account, node, epoch, og, nonce, now + 3_000, now);
            let d = db
                .begin_refresh(account, node, epoch, og, nonce, 3_000, clock)
                .await
                .expect("db");
            assert_eq!(d, m, "begin_refresh {account} by {node} at {now}");
            if let Ok(i) = m {
                intents.push(i);
            }
        }
        4 | 5 => {
            let Some(intent) = intents.pop() else { return };
            if rng.random_bool(0.7) {
                let m = model.finish_refresh(account, node, epoch, og, &intent);
                let d = db
                    .finish_refresh(account, node, epoch, og, &intent)
                    .await
                    .expect("db");
                assert_eq!(d, m, "finish {account} by {node}");
            } else {
                let reached = rng.random_bool(0.5);
                let m = model.abandon_refresh(account, node, epoch, og, &intent, reached);
                let d = db
                    .abandon_refresh(account, node, epoch, og, &intent, reached)
                    .await
                    .expect("db");
                assert_eq!(d, m, "abandon {account} by {node}");
            }
        }
        6 => {
            let m = model.release(account, node, epoch, og);
            let d = db.release(account, node, epoch, og).await.expect("db");
            assert_eq!(d, m, "release {account} by {node}");
        }
        _ => {
            let m = model.import_tokens(account);
            let d = db.import_tokens(account).await.expect("db");
            assert_eq!(d, m, "import {account}");
        }
    }
}

#[tokio::test]
async fn the_database_decides_exactly_as_the_reference_rules() {
    let pg = ThrowawayPg::start();
    for seed in 0..6u64 {
        let url = pg.database(&format!("diff{seed}")).await;
        let mut db = LeaseDb::connect(&url).await.expect("connect");
        db.migrate().await.expect("migrate");
        let mut model = Rules::default();
        for a in ["a0", "a1"] {
            model.insert_account(a);
            db.insert_account(a).await.expect("insert");
        }
        let mut rng = StdRng::seed_from_u64(seed);
        let mut now = 0;
        let mut intents = Vec::new();
        for _ in 0..250 {
            now += rng.random_range(0..2_500);
            step(&mut rng, now, &mut model, &mut db, &mut intents).await;
        }
        let rows = db.snapshot().await.expect("snapshot");
        assert_eq!(rows.sessions, model.sessions, "seed {seed}: sessions");
        assert_eq!(rows.accounts, model.accounts, "seed {seed}: accounts");
    }
}

#[tokio::test]
async fn concurrent_claimers_on_separate_connections_never_both_win() {
    let pg = ThrowawayPg::start();
    let url = pg.database("claims").await;
    let mut setup = LeaseDb::connect(&url).await.expect("connect");
    setup.migrate().await.expect("migrate");
    for i in 0..20 {
        setup
            .insert_account(&format!("a{i}"))
            .await
            .expect("insert");
    }
    let mut dbs = Vec::new();
    for i in 0..4 {
        let mut db = LeaseDb::connect(&url).await.expect("connect");
        let epoch = db
            .acquire(&format!("n{i}"), 60_000, None)
            .await
            .expect("db")
            .expect("acquire");
        dbs.push((format!("n{i}"), epoch, db));
    }
    for i in 0..20 {
        let account = format!("a{i}");
        let seen = setup.owner_gen(&account).await.expect("db").expect("row");
        let claims = dbs.iter_mut().map(|(node, epoch, db)| {
            let account = account.clone();
            async move {
                db.claim(&account, node, *epoch, seen, None)
                    .await
                    .expect("db")
            }
        });
        let verdicts = futures::future::join_all(claims).await;
        let wins = verdicts.iter().filter(|v| v.is_ok()).count();
        assert_eq!(wins, 1, "{account}: {verdicts:?}");
        assert!(
            verdicts
                .iter()
                .filter_map(|v| v.as_ref().err())
                .all(|e| matches!(e, Refusal::StaleOwnerGen | Refusal::OwnedElsewhere)),
            "{verdicts:?}"
        );
    }
}

#[tokio::test]
async fn a_zombies_late_finish_is_refused_by_the_database() {
    let pg = ThrowawayPg::start();
    let url = pg.database("zombie").await;
    let mut db = LeaseDb::connect(&url).await.expect("connect");
    db.migrate().await.expect("migrate");
    db.insert_account("a").await.expect("insert");
    let e1 = db
        .acquire("n1", TTL, Some(0))
        .await
        .expect("db")
        .expect("n1");
    let e2 = db
        .acquire("n2", TTL, Some(0))
        .await
        .expect("db")
        .expect("n2");
    let g1 = db
        .claim("a", "n1", e1, 0, Some(0))
        .await
        .expect("db")
        .expect("claim")
        .owner_gen;
    let intent = db
        .begin_refresh("a", "n1", e1, g1, 1, 3_000, Some(0))
        .await
        .expect("db")
        .expect("begin");
    db.renew("n2", e2, TTL, Some(8_000))
        .await
        .expect("db")
        .expect("renew");
    let c = db
        .claim("a", "n2", e2, g1, Some(11_000))
        .await
        .expect("db")
        .expect("takeover after n1 lapsed");
    assert!(c.ambiguous);
    assert_eq!(
        db.finish_refresh("a", "n1", e1, g1, &intent)
            .await
            .expect("db"),
        Err(Refusal::NotOwner)
    );
    let rows = db.snapshot().await.expect("snapshot");
    assert_eq!(
        rows.accounts["a"].token_version, 0,
        "the zombie stored nothing"
    );
    assert!(rows.accounts["a"].refresh_ambiguous);
}

#[tokio::test]
async fn a_node_connection_waiting_on_a_held_row_lock_gives_up_within_its_bound() {
    let pg = ThrowawayPg::start();
    let url = pg.database("bounded").await;
    let mut setup = LeaseDb::connect(&url).await.expect("connect");
    setup.migrate().await.expect("migrate");
    let epoch = setup
        .acquire("n0", TTL, None)
        .await
        .expect("db")
        .expect("acquired");
    // Another session holds n0's session row locked and sits there (a node paused between two
    // statements, or an operator's open transaction).
    let (mut holder, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    let held = holder.transaction().await.expect("begin");
    held.execute(
        "select 1 from rotor_node_session where node = 'n0' for update",
        &[],
    )
    .await
    .expect("row locked");
    // The node's own connection, as its lease loop opens it.
    let bound = std::time::Duration::from_millis(400);
    let mut node_db: codex_rotor::store::postgres::Redialer<LeaseDb> =
        codex_rotor::store::postgres::Redialer::new(&url, bound, "the lease loop");
    let db = node_db.ready().await.expect("connect");
    let started = std::time::Instant::now();
    let renewed = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        db.renew("n0", epoch, TTL, None),
    )
    .await
    .expect("the renewal gave up on the lock instead of waiting behind it");
    let took = started.elapsed();
    let err = renewed.expect_err("a renewal that could not lock its row fails");
    let DbError::Postgres(pg_err) = &err else {
        panic!("not a statement's failure: {err}");
    };
    assert_eq!(
        pg_err.code(),
        Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE),
        "{pg_err:?}"
    );
    assert!(
        took >= bound && took < bound + std::time::Duration::from_secs(2),
        "{took:?}"
    );
    // Once the lock is gone the same connection goes on.
    held.rollback().await.expect("released");
    db.renew("n0", epoch, TTL, None)
        .await
        .expect("db")
        .expect("renewed");
}

/// The other half of the bound: a node's connection that stops inside a transaction holding a
/// row lock (the node paused between two statements, or its task cancelled mid-transaction)
/// is ended by the server once it sat idle for the bound, so the lock does not outlive it and
/// every other node goes on; the node's next use opens a new connection.
#[tokio::test]
async fn a_node_connection_idle_in_a_transaction_is_ended_after_its_bound_releasing_its_locks() {
    let pg = ThrowawayPg::start();
    let url = pg.database("idle_in_tx").await;
    let mut setup = LeaseDb::connect(&url).await.expect("connect");
    setup.migrate().await.expect("migrate");
    setup
        .acquire("n0", TTL, None)
        .await
        .expect("db")
        .expect("acquired");
    let bound = std::time::Duration::from_millis(400);
    let mut node_db: codex_rotor::store::postgres::Redialer<tokio_postgres::Client> =
        codex_rotor::store::postgres::Redialer::new(&url, bound, "the lease loop");
    node_db
        .ready()
        .await
        .expect("connect")
        .batch_execute("begin; select 1 from rotor_node_session where node = 'n0' for update")
        .await
        .expect("row locked");
    let locked = std::time::Instant::now();
    // The node stops here. Another node's statement waits on the lock (without a bound of its
    // own), and gets it once the server ended the idle transaction.
    let (other, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        other.execute(
            "update rotor_node_session set expires_at = expires_at where node = 'n0'",
            &[],
        ),
    )
    .await
    .expect("the lock was held past the idle bound")
    .expect("updated");
    let held_for = locked.elapsed();
    assert!(
        held_for >= bound && held_for < bound + std::time::Duration::from_secs(2),
        "the lock was held {held_for:?}"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while node_db.current().is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "the node never saw its connection end"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let one: i32 = node_db
        .ready()
        .await
        .expect("a new connection")
        .query_one("select 1", &[])
        .await
        .expect("answered")
        .get(0);
    assert_eq!(one, 1);
}
