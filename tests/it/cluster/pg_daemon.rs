//! One daemon on the PostgreSQL store, end to end: the real `codex-rotor serve` binary with
//! `[store] backend = "postgres"` against the throwaway database and the simulator, over real
//! sockets. An account imported twice through the admin API lands once; requests are served;
//! token rotations and quota evidence are written to the database (and no account file to
//! the data directory); after a restart the daemon serves from what the database kept, with
//! the newest refresh token and no refresh token ever used twice. Behind a stalled database
//! (the cuttable relay) the daemon goes on serving, keeps its writes queued until the
//! database answers again, and still exits promptly on SIGTERM, naming what did not land; so
//! does a cluster node, whose leaving (releases, end of session) is bounded too.

use super::pg_store::{KEY_B64, key};
use super::relay::Relay;
use super::throwaway::{ThrowawayPg, tcp_url};
use codex_rotor::sim::{AccountSpec, SimHandle, SimOptions, Simulator};
use codex_rotor::store::postgres::records::read_records;
use rotor_actors::AccountRecord;
use serde_json::json;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub(super) const POOL_KEY: &str = "sk-rotor-pg-daemon-pool-key-0123";
pub(super) const ADMIN_KEY: &str = "sk-rotor-pg-daemon-admin-key-0123";

pub(super) fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn write_config(dir: &Path, port: u16, sim: &SimHandle, url: &str) -> std::path::PathBuf {
    write_config_with(dir, port, sim, url, "")
}

/// The daemon's config in `dir` (its data directory below it), with `extra` appended (a
/// `[cluster]` section).
pub(super) fn write_config_with(
    dir: &Path,
    port: u16,
    sim: &SimHandle,
    url: &str,
    extra: &str,
) -> std::path::PathBuf {
    let path = dir.join("config.toml");
    let text = format!(
        "data_dir = {data:?}\n[server]\nlisten = \"127.0.0.1:{port}\"\nshutdown_grace = \"2s\"\n\
         [upstream]\nbase_url = {base:?}\ntoken_url = {token:?}\n\
         [refresh]\nmargin = \"2s\"\njitter = \"0s\"\n[pool]\ntick = \"100ms\"\n\
         [admin]\nkey_env = \"ROTOR_PGD_ADMIN\"\n\
         [[keys.keys]]\nname = \"client\"\nkey_env = \"ROTOR_PGD_POOL\"\n\
         [store]\nbackend = \"postgres\"\nurl = {url:?}\n{extra}",
        data = dir.join("data").display().to_string(),
        base = sim.backend_url(),
        token = sim.token_url(),
    );
    std::fs::write(&path, text).expect("config written");
    path
}

/// `codex-rotor serve` with the store key and the client keys in its environment.
pub(super) struct Daemon(pub(super) Child);

impl Daemon {
    pub(super) fn start(config: &Path, log: &Path) -> Daemon {
        let child = Command::new(env!("CARGO_BIN_EXE_codex-rotor"))
            .args(["serve", "--config"])
            .arg(config)
            .env("CODEX_ROTOR_STORE_KEY", KEY_B64)
            // The secret cluster nodes sign forwarded requests with (a test value).
            .env("CODEX_ROTOR_CLUSTER_SECRET", crate::support::CLUSTER_SECRET)
            .env("ROTOR_PGD_ADMIN", ADMIN_KEY)
            .env("ROTOR_PGD_POOL", POOL_KEY)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).expect("log"))
            .spawn()
            .expect("daemon starts");
        Daemon(child)
    }

    /// SIGTERM, then waits for the exit (the pool flushes every account first).
    pub(super) async fn stop(mut self) {
        let (status, _) = self.terminate(Duration::from_secs(20)).await;
        assert!(status.success(), "exit after SIGTERM: {status}");
    }

    /// SIGTERM, then the exit status and how long after the signal it came; fails the test
    /// if none came within `give_up`.
    async fn terminate(&mut self, give_up: Duration) -> (std::process::ExitStatus, Duration) {
        let _ = Command::new("kill")
            .args(["-s", "TERM", &self.0.id().to_string()])
            .status();
        let termed = Instant::now();
        loop {
            if let Some(status) = self.0.try_wait().expect("wait") {
                return (status, termed.elapsed());
            }
            assert!(
                termed.elapsed() < give_up,
                "the daemon did not exit within {give_up:?} of SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(super) async fn eventually<F: AsyncFnMut() -> bool>(what: &str, log: &Path, mut check: F) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = std::fs::read_to_string(log).unwrap_or_default();
    panic!("timed out waiting for: {what}; daemon log:\n{log}");
}

/// A client that never goes through a proxy of the environment.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
}

/// Imports `auth` through the admin API of the daemon at `base`; it must be accepted.
async fn import(http: &reqwest::Client, base: &str, auth: &serde_json::Value) {
    let r = http
        .post(format!("{base}/admin/accounts/import"))
        .bearer_auth(ADMIN_KEY)
        .body(auth.to_string())
        .send()
        .await
        .expect("import");
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
}

/// Waits until the daemon at `base` answers its health check.
async fn until_up(http: &reqwest::Client, base: &str, log: &Path) {
    eventually("the daemon is up", log, async || {
        http.get(format!("{base}/healthz")).send().await.is_ok()
    })
    .await;
}

pub(super) async fn served(http: &reqwest::Client, port: u16) -> bool {
    answer(http, port)
        .await
        .is_some_and(|(status, _)| status == 200)
}

/// The status and body of one small Responses request, `None` if the daemon did not answer.
pub(super) async fn answer(http: &reqwest::Client, port: u16) -> Option<(u16, String)> {
    let body = json!({"model": "gpt-5.5", "stream": false, "store": false, "instructions": "hi",
        "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hello"}]}]});
    let r = http
        .post(format!("http://127.0.0.1:{port}/v1/responses"))
        .bearer_auth(POOL_KEY)
        .json(&body)
        .send()
        .await
        .ok()?;
    let status = r.status().as_u16();
    Some((status, r.text().await.unwrap_or_default()))
}

async fn in_db(url: &str) -> Vec<AccountRecord> {
    read_records(url, &key()).await.expect("read the database")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_backed_daemon_keeps_accounts_rotations_and_quota_across_a_restart() {
    let pg = ThrowawayPg::start();
    let url = pg.database("daemon").await;
    let sim = Simulator::start(SimOptions::default(), "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("sim");
    let acct = sim.create_account(AccountSpec {
        access_token_ttl: Some(Duration::from_secs(4)),
        ..AccountSpec::default()
    });
    let tmp = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let config = write_config(tmp.path(), port, &sim, &url);
    let log = tmp.path().join("first.log");
    let daemon = Daemon::start(&config, &log);
    let http = client();
    let base = format!("http://127.0.0.1:{port}");
    until_up(&http, &base, &log).await;

    for _ in 0..2 {
        import(&http, &base, &acct.auth_json).await;
    }
    let held = in_db(&url).await;
    assert_eq!(held.len(), 1, "imported twice, landed once");
    let id = held[0].id.clone();
    assert!(served(&http, port).await, "a request is served");
    // A conversation's turn: a single node keeps its affinity to itself (no shared table).
    let keyed = json!({"model": "gpt-5.5", "stream": false, "store": false,
        "prompt_cache_key": "conv-single-node",
        "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hello"}]}]});
    let r = http
        .post(format!("{base}/v1/responses"))
        .bearer_auth(POOL_KEY)
        .json(&keyed)
        .send()
        .await
        .expect("a keyed turn");
    assert_eq!(r.status(), 200);

    // The access token lives 4 s and is refreshed 2 s before it ends: rotations happen while
    // the daemon serves, and each one is in the database.
    eventually(
        "two rotations are stored in the database",
        &log,
        async || {
            let db = in_db(&url).await;
            sim.counters(&acct.id).refreshes >= 2
                && db[0].lineage.len() >= 2
                && db[0].usage.requests >= 1
                && db[0].quota.primary.is_some()
        },
    )
    .await;
    // Seconds later (the cluster writer flushes every second), nothing was shared: a node
    // outside a cluster writes no affinity row and has no affinity metrics.
    let (c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    let rows: i64 = c
        .query_one("select count(*) from rotor_affinity", &[])
        .await
        .expect("the table exists (schema 5)")
        .get(0);
    assert_eq!(rows, 0, "a single node shares no affinity");
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("body");
    assert!(
        !metrics.contains("codex_rotor_cluster_affinity"),
        "no shared affinity table runs"
    );
    daemon.stop().await;
    let kept = in_db(&url).await;
    assert_eq!(kept.len(), 1);
    let refreshes = sim.counters(&acct.id).refreshes;
    assert!(
        kept[0].lineage.len() as u64 >= refreshes,
        "every rotation is durable: {} rotated away, {refreshes} refreshes",
        kept[0].lineage.len()
    );
    let dir = tmp.path().join("data").join("accounts");
    let files = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
    assert_eq!(files, 0, "no account file in the data directory");

    let log2 = tmp.path().join("second.log");
    let daemon = Daemon::start(&config, &log2);
    eventually(
        "the restarted daemon serves from the database",
        &log2,
        async || served(&http, port).await,
    )
    .await;
    eventually(
        "it rotates on from the stored refresh token",
        &log2,
        async || sim.counters(&acct.id).refreshes > refreshes,
    )
    .await;
    daemon.stop().await;
    let after = in_db(&url).await;
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].id, id, "the same account, not a new one");
    assert!(
        after[0].usage.requests >= 2,
        "usage kept across the restart"
    );
    assert_eq!(
        sim.counters(&acct.id).refresh_reused,
        0,
        "no refresh token used twice"
    );
    for name in ["first.log", "second.log"] {
        let text = std::fs::read_to_string(tmp.path().join(name)).unwrap_or_default();
        assert!(!text.contains(KEY_B64), "the store key is never logged");
    }
}

/// The request counter the database holds for the one account.
async fn stored_requests(url: &str) -> u64 {
    let held = in_db(url).await;
    assert_eq!(held.len(), 1);
    held[0].usage.requests
}

/// Lines of `log` (the daemon's stderr) containing every one of `parts`.
fn lines_with(log: &Path, parts: &[&str]) -> usize {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter(|l| parts.iter().all(|p| l.contains(p)))
        .count()
}

/// A request served while the database is stalled: the quota the simulator reports moves
/// first (`used`), so the account's next tick queues a coalesced write of it and its counters.
async fn served_stalled(http: &reqwest::Client, port: u16, sim: &SimHandle, acct: &str, used: f64) {
    sim.set_usage(acct, used, 1.0);
    let asked = Instant::now();
    assert!(
        served(http, port).await,
        "served while the database is stalled"
    );
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "served from the in-memory pool, not after a database bound: {:?}",
        asked.elapsed()
    );
}

/// What a stall test starts from: a throwaway PostgreSQL on TCP with database `db`, its URL, a
/// cuttable relay in front of it, and a simulator.
async fn behind_a_relay(db: &str) -> (ThrowawayPg, String, Relay, SimHandle) {
    let pg = ThrowawayPg::start_with_tcp();
    let url = pg.database(db).await;
    let relay = Relay::start(pg.tcp_addr().expect("tcp"))
        .await
        .expect("relay");
    let sim = Simulator::start(SimOptions::default(), "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("sim");
    (pg, url, relay, sim)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_database_neither_stops_serving_nor_shutdown_and_loses_no_queued_write() {
    let (_pg, url, relay, sim) = behind_a_relay("stalled").await;
    let acct = sim.create_account(AccountSpec::default());
    let tmp = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    // The daemon reaches the database through the relay; the test reads it directly.
    let config = write_config(tmp.path(), port, &sim, &tcp_url(relay.addr(), "stalled"));
    let log = tmp.path().join("daemon.log");
    let mut daemon = Daemon::start(&config, &log);
    let http = client();
    let base = format!("http://127.0.0.1:{port}");
    until_up(&http, &base, &log).await;
    import(&http, &base, &acct.auth_json).await;
    let id = in_db(&url).await[0].id.clone();
    assert!(served(&http, port).await, "a request is served");
    eventually("the first request is in the database", &log, async || {
        stored_requests(&url).await == 1
    })
    .await;

    // Stalled: requests are still served, their writes fail at the batch bound and stay
    // queued; nothing reaches the database meanwhile.
    relay.cut();
    let retrying =
        |log: &Path| lines_with(log, &["could not write the account record; retrying", &id]);
    for used in [10.0, 20.0, 30.0] {
        served_stalled(&http, port, &sim, &acct.id, used).await;
    }
    eventually(
        "the stalled writes are queued for a retry",
        &log,
        async || retrying(&log) >= 2,
    )
    .await;
    assert_eq!(
        stored_requests(&url).await,
        1,
        "nothing landed while stalled"
    );

    // Healed: what was queued lands.
    relay.heal();
    eventually(
        "the queued writes land once the database answers",
        &log,
        async || stored_requests(&url).await == 4,
    )
    .await;
    let stored = in_db(&url).await;
    let primary = stored[0].quota.primary.as_ref().map(|w| w.used_percent);
    // The simulator adds a little per request on top of what it was set to.
    assert!(
        primary.is_some_and(|p| (30.0..40.0).contains(&p)),
        "the latest snapshot landed: {primary:?}"
    );

    // Stalled again with a write pending: SIGTERM still ends the process, which names the
    // account whose write did not land.
    relay.cut();
    let before = retrying(&log);
    served_stalled(&http, port, &sim, &acct.id, 40.0).await;
    eventually("the last write is pending", &log, async || {
        retrying(&log) > before
    })
    .await;
    // Bound: the queue's final drain retries for its 2 s grace (`writer::DRAIN_GRACE`), and a
    // batch begun in it ends within the store's 2 s bound (`records::ANSWER_BOUND`); the pool
    // has nothing to flush (the pending write was queued already), no stream is open; 2 s
    // for the rest of the shutdown and the exit on a loaded 2-core machine.
    let bound = Duration::from_secs(2 + 2 + 2);
    let (status, took) = daemon.terminate(Duration::from_secs(30)).await;
    eprintln!("exit after SIGTERM with the database stalled: {took:?}");
    assert!(took < bound, "exit within {bound:?}: {took:?}");
    assert!(status.success(), "an orderly exit: {status}");
    let lost = lines_with(
        &log,
        &[
            "ERROR",
            "shutdown: the store did not take these records",
            &id,
        ],
    );
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(
        lost, 1,
        "the log names the account whose write did not land:\n{text}"
    );
    relay.heal();
    assert_eq!(
        stored_requests(&url).await,
        4,
        "the write the log names is the one missing"
    );
    let refresh = acct.auth_json.pointer("/tokens/refresh_token");
    let refresh = refresh.and_then(|t| t.as_str()).expect("a refresh token");
    assert!(!text.contains(refresh), "no token in the log");
    assert!(!text.contains(KEY_B64), "the store key is never logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_node_behind_a_stalled_database_still_leaves_and_exits_on_sigterm() {
    let (_pg, url, relay, sim) = behind_a_relay("stalled_node").await;
    let records: Vec<_> = (0..2)
        .flat_map(|_| {
            let auth = sim.create_account(AccountSpec::default()).auth_json;
            codex_rotor::demo::import_auth_json(&auth).expect("import")
        })
        .collect();
    codex_rotor::store::postgres::records::write_new(&url, &key(), &records)
        .await
        .expect("accounts stored");
    let tmp = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let ttl = Duration::from_secs(2);
    let cluster = format!(
        "[cluster]\nenabled = true\nnode_id = \"a\"\nttl = \"{}ms\"\nmargin = \"500ms\"\n\
         claim_every = \"250ms\"\n",
        ttl.as_millis()
    );
    let via = tcp_url(relay.addr(), "stalled_node");
    let config = write_config_with(tmp.path(), port, &sim, &via, &cluster);
    let log = tmp.path().join("node.log");
    let mut daemon = Daemon::start(&config, &log);
    let http = client();
    eventually(
        "the node claimed its accounts and serves",
        &log,
        async || served(&http, port).await,
    )
    .await;
    relay.cut();
    assert!(
        served(&http, port).await,
        "served while the database is stalled"
    );
    let (status, took) = daemon.terminate(Duration::from_secs(60)).await;
    eprintln!("a cluster node's exit after SIGTERM with the database stalled: {took:?}");
    // Bound: leaving within the TTL (`Node::leave`), an actor's flush on stop queued behind
    // the batch in flight (2 s, `records::ANSWER_BOUND`), the drain's 2 s grace and the batch
    // begun in it (2 s), and 2 s for the rest of the shutdown on a loaded 2-core machine.
    let bound = ttl + Duration::from_secs(2 + 2 + 2 + 2);
    assert!(took < bound, "exit within {bound:?}: {took:?}");
    assert!(status.success(), "an orderly exit: {status}");
    // The served request's write did not land: the drain names it, or (had the account
    // still been dirty when its actor stopped) the actor's own flush does.
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let named = |l: &&str| {
        l.contains("ERROR")
            && (l.contains("shutdown: the store did not take these records")
                || l.contains("could not persist the account"))
            && records.iter().any(|r| l.contains(&r.id))
    };
    assert!(
        text.lines().any(|l| named(&l)),
        "the log names what did not land:\n{text}"
    );
}
