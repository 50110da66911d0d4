//! The account records on a real PostgreSQL (`codex_rotor::store::postgres::records`): tokens
//! are sealed at rest and open only with the store key; a process whose accounts were taken
//! over has its writes refused and counted; a wrong key stops the open with a message that
//! names where the key comes from and never the key; `codex-rotor store migrate` moves a data
//! directory into the database and back with every record, tokens included, unchanged; a
//! write queued under a generation the process has since lost never lands under the next one;
//! a copy that has not reloaded an imported label does not put the old one back; imports and
//! the writer's batches of the same accounts never deadlock.

use super::throwaway::ThrowawayPg;
use codex_rotor::sim::{AccountSpec, SimOptions, Simulator};
use codex_rotor::store::postgres::records::{PgStore, read_records};
use codex_rotor::store::postgres::{DbError, LeaseDb};
use codex_rotor::store::{FileStore, SealError, StoreKey};
use rotor_actors::{AccountRecord, Store};
use std::path::Path;
use std::process::Command;

/// A key in the format operators write (base64 of 32 bytes).
pub(super) const KEY_B64: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

pub(super) fn key() -> StoreKey {
    StoreKey::parse(KEY_B64, "test").expect("key")
}

/// `n` records of simulated accounts, with quota evidence, usage and a lineage, so a copy
/// that drops any field shows.
pub(super) async fn records(n: usize) -> Vec<AccountRecord> {
    let sim = Simulator::start(SimOptions::default(), "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("sim");
    let mut out = Vec::new();
    for i in 0..n {
        let acct = sim.create_account(AccountSpec::default());
        for mut rec in codex_rotor::demo::import_auth_json(&acct.auth_json).expect("imports") {
            rec.usage.requests = 10 + i as u64;
            rec.usage.last_used = Some(1_700_000_000_000 + i as i64);
            rec.last_error = Some(format!("error {i}"));
            rec.replace_refresh_token(format!("rt_rotated_{i}_{}", rec.id));
            out.push(rec);
        }
    }
    out
}

async fn raw(url: &str) -> tokio_postgres::Client {
    let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_sealed_a_taken_over_writer_is_fenced_out_and_a_wrong_key_is_refused() {
    let pg = ThrowawayPg::start();
    let url = pg.database("records").await;
    let recs = records(2).await;
    let (first, loaded) = PgStore::open(&url, key()).await.expect("open");
    assert!(loaded.is_empty());
    for r in &recs {
        first.save(r).expect("saved");
    }
    let c = raw(&url).await;
    for row in c
        .query("select record::text, tokens from rotor_account", &[])
        .await
        .expect("rows")
    {
        let (json, sealed): (String, Vec<u8>) = (row.get(0), row.get(1));
        assert!(
            !json.contains("\"tokens\""),
            "no tokens in the clear: {json}"
        );
        for r in &recs {
            let rt = r.tokens.refresh_token.as_deref().expect("rt");
            for secret in [rt, r.tokens.access_token.as_str()] {
                assert!(!json.contains(secret));
                assert!(!sealed.windows(secret.len()).any(|w| w == secret.as_bytes()));
            }
        }
    }

    // A second process on the same database takes the accounts over.
    let (second, reloaded) = PgStore::open(&url, key()).await.expect("second open");
    let mut want = recs.clone();
    want.sort_by(|a, b| (a.added_at, &a.id).cmp(&(b.added_at, &b.id)));
    assert_eq!(reloaded, want, "every record back, tokens included");
    let mut stale = recs[0].clone();
    stale.usage.requests = 999;
    let err = first.save(&stale).expect_err("the old owner is fenced out");
    assert!(err.to_string().contains("fenced out"), "{err}");
    first.save_coalesced(&stale).expect("queued");
    drop(first);
    assert_eq!(
        second
            .load(&recs[0].id)
            .expect("load")
            .expect("held")
            .usage
            .requests,
        recs[0].usage.requests,
        "neither the waited nor the coalesced stale write landed"
    );
    let mut newer = recs[0].clone();
    newer.usage.requests = 42;
    second.save(&newer).expect("the new owner writes");
    assert_eq!(second.load(&newer.id).expect("load"), Some(newer.clone()));
    second.remove(&recs[1].id).expect("removed");
    assert_eq!(second.load(&recs[1].id).expect("load"), None);
    assert_eq!(second.fenced_out(), 0);
    drop(second);

    let other = StoreKey::parse(&"ab".repeat(32), "CODEX_ROTOR_STORE_KEY").expect("key");
    let err = PgStore::open(&url, other).await.expect_err("wrong key");
    assert!(
        matches!(err, DbError::Seal(SealError::WrongKey { .. })),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("another key") && !msg.contains(&"ab".repeat(8)),
        "{msg}"
    );
    let back = read_records(&url, &key()).await.expect("read");
    assert_eq!(back, vec![newer], "a refused open changed nothing");
}

#[tokio::test]
async fn a_stale_writer_is_counted_and_not_retried() {
    let pg = ThrowawayPg::start();
    let url = pg.database("fenced").await;
    let recs = records(1).await;
    let (first, _) = PgStore::open(&url, key()).await.expect("open");
    first.save(&recs[0]).expect("saved");
    let (_second, _) = PgStore::open(&url, key()).await.expect("takeover");
    assert!(first.save(&recs[0]).is_err());
    first.save(&recs[0]).expect_err("still fenced");
    assert_eq!(first.fenced_out(), 2, "each refused write counted once");
    assert!(
        codex_rotor::store::postgres::records::fenced_out_total() >= 2,
        "and in the process's total, which /metrics exposes"
    );
}

/// The writer queue outlives a session: a snapshot queued under the generation the node held
/// before it lost its session must not land once the node claimed the account again under a
/// new generation (the new session's actor has loaded the record and writes on from it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_queued_before_a_lost_session_never_lands_under_the_next_sessions_generation() {
    let pg = ThrowawayPg::start();
    let url = pg.database("stale_queue").await;
    let recs = records(2).await;
    let (a, x) = (recs[0].clone(), recs[1].clone());
    {
        let (seed, _) = PgStore::open(&url, key()).await.expect("open");
        seed.save(&a).expect("saved");
        seed.save(&x).expect("saved");
    }
    let store = PgStore::open_for_cluster(&url, key()).await.expect("open");
    let mut db = LeaseDb::connect(&url).await.expect("connect");
    let claim = async |db: &mut LeaseDb, id: &str, epoch: u64| {
        let seen = db.owner_gen(id).await.expect("db").expect("row");
        let c = db.claim(id, "n1", epoch, seen, None).await.expect("db");
        c.expect("claimed").owner_gen
    };
    let e1 = db
        .acquire("n1", 60_000, None)
        .await
        .expect("db")
        .expect("n1");
    for id in [&a.id, &x.id] {
        let g = claim(&mut db, id, e1).await;
        store.hold(id, g);
    }

    // Hold the writer up inside a batch: the test locks x's row, and a write of x waits.
    let lock = raw(&url).await;
    lock.batch_execute(&format!(
        "begin; select 1 from rotor_account_owner where account = '{}' for update",
        x.id
    ))
    .await
    .expect("lock");
    store.save_coalesced(&x).expect("queued");
    let watch = raw(&url).await;
    for _ in 0..100 {
        let waiting: i64 = watch
            .query_one(
                "select count(*) from pg_stat_activity where wait_event_type = 'Lock'
                 and datname = current_database()",
                &[],
            )
            .await
            .expect("activity")
            .get(0);
        if waiting > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    // The old session's actor hands over its last snapshot of a: queued behind the batch.
    let mut stale = a.clone();
    stale.usage.requests = 999_999;
    store.save_coalesced(&stale).expect("queued");

    // The session is lost; the node gives the account up, acquires a new session and claims
    // it again: a new generation, and the new actor starts from the stored record.
    store.unhold(&a.id);
    db.end_session("n1", e1).await.expect("db").expect("ended");
    let e2 = db
        .acquire("n1", 60_000, None)
        .await
        .expect("db")
        .expect("n1");
    let g2 = claim(&mut db, &a.id, e2).await;
    store.hold(&a.id, g2);
    let fenced_before = store.fenced_out();

    lock.batch_execute("commit").await.expect("unlock");
    store.save(&x).expect("the queue drained up to here");
    assert_eq!(
        store.load(&a.id).expect("load").expect("a").usage.requests,
        a.usage.requests,
        "the stale snapshot did not land under the new generation"
    );
    assert_eq!(store.fenced_out(), fenced_before + 1, "it was counted");

    // The new generation's own writes land.
    let mut fresh = a.clone();
    fresh.usage.requests += 1;
    store.save(&fresh).expect("the holder's write lands");
    assert_eq!(
        store.load(&a.id).expect("load").expect("a").usage.requests,
        fresh.usage.requests
    );
}

/// A config file for `store migrate`: `data` as the data directory, the database of `url`.
fn migrate_config(dir: &Path, data: &Path, url: &str) -> std::path::PathBuf {
    let path = dir.join(format!(
        "{}.toml",
        data.file_name().and_then(|n| n.to_str()).unwrap_or("c")
    ));
    let text = format!(
        "data_dir = {data:?}\n[store]\nbackend = \"files\"\nurl = {url:?}\n",
        data = data.display().to_string()
    );
    std::fs::write(&path, text).expect("config");
    path
}

fn migrate(config: &Path, from: &str, to: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_codex-rotor"))
        .args(["store", "migrate", "--from", from, "--to", to, "--config"])
        .arg(config)
        .env("CODEX_ROTOR_STORE_KEY", KEY_B64)
        .output()
        .expect("run store migrate")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_migrate_moves_a_data_dir_to_postgres_and_back_with_nothing_lost() {
    let pg = ThrowawayPg::start();
    let url = pg.database("migrate_round_trip").await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let (src, dst) = (tmp.path().join("source"), tmp.path().join("back"));
    let recs = records(3).await;
    let (files, _, _) = FileStore::open(&src).expect("source dir");
    files.save_all(&recs).expect("seeded");
    drop(files);

    let out = migrate(&migrate_config(tmp.path(), &src, &url), "files", "postgres");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("JSON report");
    assert_eq!(report["accounts"], 3);
    let again = migrate(&migrate_config(tmp.path(), &src, &url), "files", "postgres");
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        !again.status.success() && err.contains("already holds 3 accounts"),
        "{err}"
    );

    let out = migrate(&migrate_config(tmp.path(), &dst, &url), "postgres", "files");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, mut back, quarantined) = FileStore::open(&dst).expect("target dir");
    assert!(quarantined.is_empty());
    let mut want = recs.clone();
    want.sort_by(|a, b| a.id.cmp(&b.id));
    back.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(back, want, "every record and token made the round trip");
    let (_, still, _) = FileStore::open(&src).expect("source dir");
    assert_eq!(still.len(), 3, "the source is left as it was");

    let wrong = Command::new(env!("CARGO_BIN_EXE_codex-rotor"))
        .args([
            "store", "migrate", "--from", "postgres", "--to", "files", "--config",
        ])
        .arg(migrate_config(tmp.path(), &tmp.path().join("third"), &url))
        .env("CODEX_ROTOR_STORE_KEY", "bm90LWEta2V5")
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        !wrong.status.success() && err.contains("CODEX_ROTOR_STORE_KEY"),
        "{err}"
    );
    assert!(
        !err.contains("bm90LWEta2V5"),
        "the key is never echoed: {err}"
    );
}

#[tokio::test]
async fn a_database_of_a_newer_codex_rotor_is_refused_unchanged() {
    let pg = ThrowawayPg::start();
    let url = pg.database("newer").await;
    drop(
        PgStore::open(&url, key())
            .await
            .expect("first open migrates"),
    );
    let c = raw(&url).await;
    c.execute("update rotor_schema set version = 99", &[])
        .await
        .expect("pretend a newer codex-rotor wrote it");
    let err = PgStore::open(&url, key()).await.expect_err("refused");
    assert!(matches!(err, DbError::NewerSchema { found: 99 }), "{err}");
    assert!(err.to_string().contains("upgrade codex-rotor"), "{err}");
}

#[test]
fn a_postgres_store_without_a_usable_key_or_url_is_a_config_problem_naming_the_key() {
    use codex_rotor::config::{Backend, Config};
    let mut cfg = Config::default();
    cfg.store.backend = Backend::Postgres;
    let problems = |cfg: &Config, env: &dyn Fn(&str) -> Option<String>| {
        cfg.validate_in(env)
            .into_iter()
            .filter(|p| p.key.starts_with("store."))
            .map(|p| (p.key, p.message))
            .collect::<Vec<_>>()
    };
    let none = problems(&cfg, &|_| None);
    assert_eq!(none.len(), 2, "{none:?}");
    assert_eq!(none[0].0, "store.url");
    assert_eq!(none[1].0, "store.key_env");
    assert!(none[1].1.contains("CODEX_ROTOR_STORE_KEY"), "{none:?}");

    cfg.store.url_env = Some("ROTOR_TEST_DB".into());
    let short = |name: &str| match name {
        "ROTOR_TEST_DB" => Some("host=/tmp dbname=x".to_owned()),
        "CODEX_ROTOR_STORE_KEY" => Some("hunter2hunter2".to_owned()),
        _ => None,
    };
    let bad = problems(&cfg, &short);
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert!(
        bad[0].1.contains("not 32 bytes") && !bad[0].1.contains("hunter2"),
        "{bad:?}"
    );
    let good = |name: &str| match name {
        "CODEX_ROTOR_STORE_KEY" => Some(KEY_B64.to_owned()),
        other => short(other),
    };
    assert!(problems(&cfg, &good).is_empty());
}

/// A node's first steps written against the seam alone, as cluster mode will be: any
/// [`LeaseStore`] backend must give these verdicts.
async fn first_steps<S: codex_rotor::store::LeaseStore>(s: &mut S) -> (u64, u64) {
    let epoch = s
        .acquire("n1", 10_000)
        .await
        .expect("store")
        .expect("acquired");
    let again = s.acquire("n1", 10_000).await.expect("store");
    assert!(again.is_err(), "a live session is never stolen: {again:?}");
    let claimed = (s.claim("a1", "n1", epoch, 0).await)
        .expect("store")
        .expect("an unowned account is claimed");
    let twice = s.claim("a1", "n1", epoch, 0).await.expect("store");
    assert!(
        twice.is_err(),
        "a claim at a stale generation loses: {twice:?}"
    );
    let intent = (s
        .begin_refresh("a1", "n1", epoch, claimed.owner_gen, 1, 3_000)
        .await)
        .expect("store")
        .expect("the owner may refresh");
    let version = (s
        .finish_refresh("a1", "n1", epoch, claimed.owner_gen, &intent)
        .await)
        .expect("store")
        .expect("the owner stores the rotation");
    (s.release("a1", "n1", epoch, claimed.owner_gen).await)
        .expect("store")
        .expect("released");
    (epoch, version)
}

#[tokio::test]
async fn lease_db_serves_the_lease_store_seam() {
    let pg = ThrowawayPg::start();
    let url = pg.database("seam").await;
    let mut db = codex_rotor::store::postgres::LeaseDb::connect(&url)
        .await
        .expect("connect");
    db.migrate().await.expect("migrate");
    db.insert_account("a1").await.expect("account row");
    assert_eq!(first_steps(&mut db).await, (1, 1));
}

/// A label imported into the database (`PgStore::import`, the import through any node) while
/// a node runs the account: the record generation moves on and the token version does not;
/// until the node's copy has reloaded, a write of that copy — a rotation stored before the
/// reload, still with the old label — stores its tokens (the rotation is durable) but leaves
/// the imported record; after the reload the copy's writes land whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_that_has_not_reloaded_an_imported_label_stores_its_tokens_and_not_its_old_label() {
    let pg = ThrowawayPg::start();
    let url = pg.database("record_gen").await;
    let a = records(1).await.remove(0);
    {
        let (seed, _) = PgStore::open(&url, key()).await.expect("open");
        seed.save(&a).expect("saved");
    }
    let store = PgStore::open_for_cluster(&url, key()).await.expect("open");
    let mut db = LeaseDb::connect(&url).await.expect("connect");
    let e = db
        .acquire("n1", 60_000, None)
        .await
        .expect("db")
        .expect("n1");
    let seen = db.owner_gen(&a.id).await.expect("db").expect("row");
    let g = db
        .claim(&a.id, "n1", e, seen, None)
        .await
        .expect("db")
        .expect("claimed");
    store.hold(&a.id, g.owner_gen);
    let copy = store.load(&a.id).expect("load").expect("a");
    let listed = async |db: &mut LeaseDb| {
        let l = db.listing().await.expect("listing");
        let o = l
            .accounts
            .into_iter()
            .find(|o| o.account == a.id)
            .expect("listed");
        (o.token_version, o.record_gen)
    };
    let (version, record_gen) = listed(&mut db).await;
    assert!(!store.record_moved(&a.id, record_gen));

    let mut relabelled = a.clone();
    relabelled.identity.label = Some("imported label".into());
    store
        .import(|existing| codex_rotor::internals::merge::merge(existing, vec![relabelled.clone()]))
        .await
        .expect("imported");
    let (version_after, record_gen_after) = listed(&mut db).await;
    assert_eq!(version_after, version, "a label is no import of tokens");
    assert!(
        record_gen_after > record_gen,
        "the record generation moved on"
    );
    assert!(
        store.record_moved(&a.id, record_gen_after),
        "the copy is to reload"
    );

    // The copy, not reloaded yet, stores a rotation of its own.
    let mut rotated = copy.clone();
    rotated.replace_refresh_token("rt_rotated_by_the_owner".into());
    rotated.usage.requests += 5;
    store.save(&rotated).expect("durable");
    let stored = store.load(&a.id).expect("load").expect("a");
    assert_eq!(
        stored.identity.label.as_deref(),
        Some("imported label"),
        "the old label was not put back"
    );
    assert_eq!(
        stored.tokens.refresh_token.as_deref(),
        Some("rt_rotated_by_the_owner"),
        "the rotation is stored"
    );
    assert_eq!(
        stored.usage.requests, a.usage.requests,
        "the rest waits for the reload"
    );

    // That load was the reload: the copy's writes land whole again.
    assert!(!store.record_moved(&a.id, record_gen_after));
    let mut merged = rotated.clone();
    merged.identity.label = stored.identity.label.clone();
    store.save(&merged).expect("saved");
    let stored = store.load(&a.id).expect("load").expect("a");
    assert_eq!(stored.usage.requests, merged.usage.requests);
    assert_eq!(stored.identity.label.as_deref(), Some("imported label"));
    assert_eq!(store.fenced_out(), 0);
}

/// Imports through the database (`PgStore::import`) of every account at once, while the
/// node's writer stores batches of the same accounts: the import and the writer take the
/// owner rows in one order (id order; the import through `decide_in`), so neither ever meets
/// a deadlock — the import has no retry for one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_of_every_account_and_the_writers_batches_never_deadlock() {
    let pg = ThrowawayPg::start();
    let url = pg.database("import_order").await;
    let recs = records(20).await;
    {
        let (seed, _) = PgStore::open(&url, key()).await.expect("open");
        for r in &recs {
            seed.save(r).expect("saved");
        }
    }
    let store = std::sync::Arc::new(PgStore::open_for_cluster(&url, key()).await.expect("open"));
    let mut db = LeaseDb::connect(&url).await.expect("connect");
    let e = db
        .acquire("n1", 600_000, None)
        .await
        .expect("db")
        .expect("n1");
    for r in &recs {
        let seen = db.owner_gen(&r.id).await.expect("db").expect("row");
        let g = db
            .claim(&r.id, "n1", e, seen, None)
            .await
            .expect("db")
            .expect("claimed");
        store.hold(&r.id, g.owner_gen);
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (store, stop, recs) = (store.clone(), stop.clone(), recs.clone());
        tokio::task::spawn_blocking(move || {
            let mut round = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                round += 1;
                for r in &recs {
                    let mut r = r.clone();
                    r.usage.requests += round;
                    store.save_coalesced(&r).expect("queued");
                }
                store.save(&recs[0]).expect("a batch landed");
            }
            round
        })
    };
    let started = std::time::Instant::now();
    for k in 0..15 {
        let incoming: Vec<AccountRecord> = recs
            .iter()
            .map(|r| {
                let mut r = r.clone();
                r.identity.label = Some(format!("import {k}"));
                r
            })
            .collect();
        store
            .import(|existing| codex_rotor::internals::merge::merge(existing, incoming.clone()))
            .await
            .unwrap_or_else(|e| panic!("import {k}: {e:?}"));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let rounds = writer.await.expect("writer");
    assert!(
        rounds > 1,
        "the writer wrote while the imports ran: {rounds} rounds"
    );
    eprintln!(
        "15 imports of 20 accounts beside {rounds} writer rounds in {:?}",
        started.elapsed()
    );
}
