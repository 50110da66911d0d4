//! The shared affinity table on real nodes (docs/cluster.md "Requests across nodes"): two
//! `codex-rotor serve` processes on one throwaway PostgreSQL. A conversation served on a's
//! account is written behind to `rotor_affinity` (hashed, never the key), and its next turn
//! sent to b — which never saw it — is forwarded to a and served by the same account; once a
//! hands its accounts to b, b finds the conversation in the table as its own account's. With
//! the database stalled, a lookup gives up at its bound and the turn is served locally.

use super::nodes::{Cluster, Node};
use super::pg_daemon::POOL_KEY;
use super::pg_store::key;
use std::time::Duration;

/// One streamed turn of the conversation `conv` to node `port`: its status and body.
async fn turn(c: &Cluster, port: u16, conv: &str) -> (u16, String) {
    let body = serde_json::json!({"model": "gpt-5.5", "stream": true, "store": false,
        "prompt_cache_key": conv,
        "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}]});
    let r = c
        .http
        .post(format!("http://127.0.0.1:{port}/v1/responses"))
        .bearer_auth(POOL_KEY)
        .json(&body)
        .send()
        .await
        .expect("answer");
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

/// A counter of node `n` (0 when absent), by its family name.
async fn sample(c: &Cluster, n: &Node, family: &str, labels: &[(&str, &str)]) -> f64 {
    c.sample(n, &format!("{family}_total"), labels)
        .await
        .unwrap_or(0.0)
}

/// The table's rows: (key hash, account).
async fn rows(c: &Cluster) -> Vec<(Vec<u8>, String)> {
    let (client, conn) = tokio_postgres::connect(&c.url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    client
        .query("select key_hash, account from rotor_affinity", &[])
        .await
        .expect("rows")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turn_another_node_served_is_forwarded_to_its_account_through_the_shared_table() {
    let c = Cluster::start(8).await;
    let (a, mut b) = c.pair().await;
    let conv = "conv-shared-1";
    let lookups = "codex_rotor_cluster_affinity_lookups";

    // A conversation nobody served: looked up, missed, picked fresh on b. Its account's
    // window starts first, so a fresh pick on b prefers it to every other account later.
    let (status, _) = turn(&c, b.port, "conv-shared-new").await;
    assert_eq!(status, 200);
    let b_first = c.last_request(&b).await;
    assert!(b_first["forwarded_to"].is_null(), "{b_first}");
    assert_eq!(sample(&c, &b, lookups, &[("outcome", "miss")]).await, 1.0);

    // The first turn, on one of a's own accounts; written behind within about a second.
    let (status, body) = turn(&c, a.port, conv).await;
    assert_eq!(status, 200, "{body}");
    let served = c.last_request(&a).await["account_id"]
        .as_str()
        .expect("served on an account")
        .to_owned();
    assert_eq!(
        c.owners().await.get(&served).map(String::as_str),
        Some("a"),
        "a served it on an account it owns"
    );
    // Both nodes write behind on their own second, so wait for both rows, not a's alone.
    c.within(
        "a and b write their conversations' accounts behind",
        Duration::from_secs(10),
        &[&a, &b],
        async || {
            let stored = rows(&c).await;
            stored.len() >= 2 && stored.iter().any(|(_, acct)| acct == &served)
        },
    )
    .await;
    let stored = rows(&c).await;
    assert_eq!(stored.len(), 2, "two conversations, a row each");
    for (hash, _) in &stored {
        assert_eq!(hash.len(), 32, "a key is stored as its HMAC-SHA256");
        for raw in [conv, "conv-shared-new"] {
            assert!(
                !hash.windows(raw.len()).any(|w| w == raw.as_bytes()),
                "never the conversation key itself"
            );
        }
    }
    let written = "codex_rotor_cluster_affinity_writes";
    assert!(sample(&c, &a, written, &[]).await >= 1.0);

    // The next turn at b, which never saw the conversation: forwarded to a, on that account.
    let sim_id = codex_rotor::store::postgres::records::read_records(&c.url, &key())
        .await
        .expect("records")
        .into_iter()
        .find(|r| r.id == served)
        .and_then(|r| r.identity.chatgpt_account_id)
        .expect("sim id");
    let before = c.sim.counters(&sim_id).requests;
    let (status, body) = turn(&c, b.port, conv).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("response.completed"), "{body}");
    assert_eq!(
        c.sim.counters(&sim_id).requests,
        before + 1,
        "served by the conversation's account"
    );
    let (sent, got) = (c.last_request(&b).await, c.last_request(&a).await);
    assert_eq!(sent["forwarded_to"], "a", "{sent}");
    assert_eq!(got["forwarded_from"], "b", "{got}");
    assert_eq!(got["account_id"], served.as_str(), "{got}");
    assert_eq!(
        sample(&c, &b, lookups, &[("outcome", "hit_peer")]).await,
        1.0
    );
    let affinity = [("reason", "affinity"), ("outcome", "answered")];
    let forwards = "codex_rotor_cluster_forwards_sent";
    assert_eq!(sample(&c, &b, forwards, &affinity).await, 1.0);

    // a hands its accounts to b (SIGTERM: planned release). b finds the conversation in the
    // table as one of its own accounts' now, and serves it there.
    let mut a = a;
    a.daemon.take().expect("a runs").stop().await;
    c.within(
        "b owns every account",
        Duration::from_secs(30),
        &[&b],
        async || c.split_between(&[&b]).await,
    )
    .await;
    let before = c.sim.counters(&sim_id).requests;
    let (status, body) = turn(&c, b.port, conv).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        c.sim.counters(&sim_id).requests,
        before + 1,
        "the conversation's account, now b's, served it"
    );
    assert_eq!(c.last_request(&b).await["account_id"], served.as_str());
    assert_eq!(
        sample(&c, &b, lookups, &[("outcome", "hit_local")]).await,
        1.0
    );
    // Not the account b picks fresh (that is the one whose window started first): the table
    // chose it.
    let (status, _) = turn(&c, b.port, "conv-shared-after").await;
    assert_eq!(status, 200);
    let fresh = c.last_request(&b).await;
    assert_ne!(fresh["account_id"], served.as_str(), "{fresh}");
    assert_eq!(fresh["account_id"], b_first["account_id"], "{fresh}");
    drop(b.daemon.take());
}

/// The table itself (`store::postgres::affinity`): a database at version 4 gains it, unlogged,
/// at the next start; a batch upsert keeps each key's newest account; a row as old as the TTL
/// is ignored on read; a sweep deletes such rows, at most its limit a time.
#[tokio::test]
async fn the_table_migrates_in_keeps_the_newest_account_and_forgets_rows_past_the_ttl() {
    use super::throwaway::ThrowawayPg;
    use codex_rotor::store::postgres::affinity::AffinityDb;
    use codex_rotor::store::postgres::{LeaseDb, SCHEMA_VERSION};
    let pg = ThrowawayPg::start();
    let url = pg.database("affinity").await;
    let mut lease = LeaseDb::connect(&url).await.expect("connect");
    lease.migrate().await.expect("migrate");
    let (c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    // A database codex-rotor wrote before the table existed.
    c.batch_execute(
        "drop table rotor_affinity;
         alter table rotor_account_owner drop column record_gen, drop column intent_nonce;
         update rotor_schema set version = 4",
    )
    .await
    .expect("back to version 4");
    assert_eq!(lease.migrate().await.expect("migrate again"), 4);
    assert_eq!(SCHEMA_VERSION, 7);
    let persistence: i8 = c
        .query_one(
            "select relpersistence::\"char\" from pg_class where relname = 'rotor_affinity'",
            &[],
        )
        .await
        .expect("the table exists")
        .get(0);
    assert_eq!(persistence as u8, b'u', "unlogged");

    let db = AffinityDb::connect(&url).await.expect("connect");
    let (k1, k2) = ([1u8; 32], [2u8; 32]);
    let n = db
        .upsert(&[(k1, "acct-a".into()), (k2, "acct-b".into())])
        .await
        .expect("upsert");
    assert_eq!(n, 2);
    db.upsert(&[(k1, "acct-c".into())]).await.expect("again");
    assert_eq!(
        db.lookup(&k1, 60_000).await.expect("lookup").as_deref(),
        Some("acct-c")
    );
    assert_eq!(db.lookup(&[3u8; 32], 60_000).await.expect("lookup"), None);
    // What a lookup costs on the request path (printed: the figure docs/benchmarks.md has).
    let mut took: Vec<Duration> = Vec::new();
    for _ in 0..500 {
        let at = std::time::Instant::now();
        db.lookup(&k1, 60_000).await.expect("lookup");
        took.push(at.elapsed());
    }
    took.sort();
    eprintln!(
        "affinity lookup on a Unix socket: p50 {:?}, p99 {:?}",
        took[took.len() / 2],
        took[took.len() * 99 / 100]
    );
    assert!(took[took.len() / 2] < Duration::from_millis(50), "{took:?}");
    // Rows an hour old: past a TTL of a minute, not of a day.
    c.execute(
        "update rotor_affinity set updated_at = updated_at - 3600000",
        &[],
    )
    .await
    .expect("age the rows");
    assert_eq!(db.lookup(&k1, 60_000).await.expect("lookup"), None);
    assert!(db.lookup(&k1, 86_400_000).await.expect("lookup").is_some());
    assert_eq!(db.sweep(86_400_000, 10).await.expect("sweep"), 0);
    assert_eq!(db.sweep(60_000, 1).await.expect("sweep"), 1, "bounded");
    assert_eq!(db.sweep(60_000, 10).await.expect("sweep"), 1);
    let left: i64 = c
        .query_one("select count(*) from rotor_affinity", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(left, 0);
}

/// Pauses (`STOP`) or resumes (`CONT`) the whole database: the postmaster and every client
/// backend — its connections stay open and answer nothing, as behind a silent network stall.
/// Returns the process ids signalled.
async fn stall(c: &Cluster, sig: &str, pids: Option<Vec<u32>>) -> Vec<u32> {
    let pids = match pids {
        Some(p) => p,
        None => {
            let (client, conn) = tokio_postgres::connect(&c.url, tokio_postgres::NoTls)
                .await
                .expect("connect");
            tokio::spawn(conn);
            let mut pids: Vec<u32> = client
                .query(
                    "select pid from pg_stat_activity
                     where backend_type = 'client backend' and pid <> pg_backend_pid()",
                    &[],
                )
                .await
                .expect("backends")
                .iter()
                .map(|r| r.get::<_, i32>(0) as u32)
                .collect();
            pids.push(c.pg.postmaster_pid().expect("postmaster.pid"));
            pids
        }
    };
    let ok = std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .args(pids.iter().map(u32::to_string))
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill -{sig} {pids:?}");
    pids
}

/// With the database stalled (open connections, no answers), a turn of a conversation the node
/// does not know is looked up for at most `LOOKUP_TIMEOUT`, counted as `error`, and served on
/// the node's own account: the outage costs the lookup's bound, not the request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lookup_against_a_stalled_database_gives_up_at_its_bound_and_the_turn_is_served_here() {
    use codex_rotor::cluster::affinity::LOOKUP_TIMEOUT;
    // Eight accounts, so rendezvous hashing leaves each node some (as the other pairs).
    let c = Cluster::start(8).await;
    let (a, mut b) = c.pair().await;
    let lookups = "codex_rotor_cluster_affinity_lookups";
    // b's writer has its connection (lookups use it) once it flushed a first row.
    let (status, _) = turn(&c, b.port, "conv-stall-warm").await;
    assert_eq!(status, 200);
    c.within(
        "b writes its conversation behind",
        Duration::from_secs(10),
        &[&a, &b],
        async || !rows(&c).await.is_empty(),
    )
    .await;
    // A normal serve, its lookup (a miss) included.
    let started = std::time::Instant::now();
    let (status, _) = turn(&c, b.port, "conv-stall-baseline").await;
    let normal = started.elapsed();
    assert_eq!(status, 200);
    let errors = sample(&c, &b, lookups, &[("outcome", "error")]).await;

    let pids = stall(&c, "STOP", None).await;
    let started = std::time::Instant::now();
    let answered = tokio::time::timeout(
        Duration::from_secs(3),
        turn(&c, b.port, "conv-stall-during"),
    )
    .await;
    let took = started.elapsed();
    stall(&c, "CONT", Some(pids)).await;
    let (status, body) = answered.expect("the turn is answered while the database is stalled");
    eprintln!("stalled database: served in {took:?} (normal {normal:?})");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("response.completed"), "{body}");
    assert!(
        took >= LOOKUP_TIMEOUT,
        "the lookup waited on the stalled database: {took:?}"
    );
    assert!(
        took < LOOKUP_TIMEOUT + normal + Duration::from_millis(400),
        "{took:?}, normal {normal:?}"
    );
    let served = c.last_request(&b).await;
    assert!(served["forwarded_to"].is_null(), "served here: {served}");
    assert_eq!(
        sample(&c, &b, lookups, &[("outcome", "error")]).await,
        errors + 1.0,
        "the lookup counted as an error"
    );
    drop(b.daemon.take());
}
