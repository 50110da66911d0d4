//! The refresh fence on a real PostgreSQL (`codex_rotor::cluster::fence::PgFence`), with the
//! node sessions driven by the test on its own connection: a begin is refused (and nothing is
//! written) when the node's local lease or its session in the database does not outlive the
//! refresh window; a paused node's late finish is refused after another node claimed the
//! account, which the claim marked `refresh_ambiguous`; an abandon after the call may have
//! reached upstream marks it ambiguous too, and only an import clears it; a finish for a token
//! version an import replaced is refused; a finish whose answer was lost with its connection
//! is sent again on a new connection and accepted, the account kept.

use std::sync::Arc;
use std::time::Duration;

use super::pg_store::{key, records};
use super::throwaway::ThrowawayPg;
use codex_rotor::cluster::ClusterView;
use codex_rotor::cluster::fence::{PgFence, Window};
use codex_rotor::store::postgres::LeaseDb;
use codex_rotor::store::postgres::records::PgStore;
use rotor_actors::ownership::rules::{AccountRow, Intent};
use rotor_actors::{FenceRefusal, RefreshFence, Store};

/// A 1 s call, 0.5 s of writes, 0.5 s margin: a 2 s window.
pub(super) const WINDOW: Window = Window {
    call: Duration::from_secs(1),
    persist: Duration::from_millis(500),
    margin: Duration::from_millis(500),
};

/// The `application_name` of the fence's connection.
const FENCE_APP: &str = "rotor_fence";

/// Ends the server side of every connection named `app` (as a restart or a network cut
/// would); returns how many.
async fn cut(url: &str, app: &str) -> i64 {
    let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    let row = c
        .query_one(
            "select count(pg_terminate_backend(pid)) from pg_stat_activity
             where application_name = $1",
            &[&app],
        )
        .await
        .expect("terminate");
    row.get(0)
}

/// One node `n1` owning one account in a fresh database: the test's own connection (to drive
/// sessions and read rows), the node's view, its store and its fence.
pub(super) struct Node {
    pub(super) db: LeaseDb,
    view: Arc<ClusterView>,
    store: Arc<PgStore>,
    pub(super) fence: PgFence,
    pub(super) id: String,
    epoch: u64,
}

impl Node {
    async fn start(url: &str, local_ms: i64) -> Node {
        // As a node connects it (so the test can cut its connection by name, [`cut`]).
        Self::start_via(
            url,
            &format!("{url} application_name={FENCE_APP}"),
            local_ms,
        )
        .await
    }

    /// [`Node::start`] with the fence connecting to `fence_url` (through a relay the test
    /// can stall), the test's own connection to `url`, and the fence's window `WINDOW`.
    pub(super) async fn start_via(url: &str, fence_url: &str, local_ms: i64) -> Node {
        let (store, _) = PgStore::open(url, key()).await.expect("open");
        let rec = records(1).await.remove(0);
        store.save(&rec).expect("saved");
        let mut db = LeaseDb::connect(url).await.expect("connect");
        let epoch = db
            .acquire("n1", 60_000, None)
            .await
            .expect("db")
            .expect("acquire");
        let seen = db.owner_gen(&rec.id).await.expect("db").expect("row");
        let claimed = db
            .claim(&rec.id, "n1", epoch, seen, None)
            .await
            .expect("db")
            .expect("claim");
        assert!(!claimed.ambiguous);
        store.hold(&rec.id, claimed.owner_gen);
        let view = ClusterView::new("n1".into(), "http://127.0.0.1:1".into(), 60_000, 500);
        let store = Arc::new(store);
        let fence = PgFence::connect(
            fence_url,
            Duration::from_secs(2),
            view.clone(),
            store.clone(),
            WINDOW,
        )
        .await
        .expect("connect");
        let node = Node {
            db,
            view,
            store,
            fence,
            id: rec.id,
            epoch,
        };
        node.local_lease(local_ms);
        node
    }

    /// The node's local lease: granted now with `remaining_ms` left (a grant never shortens
    /// it).
    fn local_lease(&self, remaining_ms: i64) {
        let now = self.view.now();
        let mut s = self.view.write();
        let t = s.lease.sending(now);
        s.lease.granted(t, self.epoch, remaining_ms);
    }

    pub(super) async fn row(&self) -> AccountRow {
        let rules = self.db.snapshot().await.expect("snapshot");
        rules.accounts[&self.id].clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_begin_is_refused_unless_the_session_outlives_the_window_and_a_zombies_finish_is_refused()
{
    let pg = ThrowawayPg::start();
    let url = pg.database("fence_begin").await;
    let mut n = Node::start(&url, 1_500).await;

    // The local lease ends before the window would: begin is not even sent.
    let r = n.fence.begin(&n.id).await;
    assert!(
        matches!(r, Err(FenceRefusal::Later(ref m)) if m.contains("lease")),
        "{r:?}"
    );
    assert_eq!(n.row().await.intent, None, "nothing written");

    // The node believes it has time, but its session in the database is shorter: the
    // database refuses on its own clock.
    n.local_lease(60_000);
    n.db.renew("n1", n.epoch, 1_000, None)
        .await
        .expect("db")
        .expect("renew");
    let r = n.fence.begin(&n.id).await;
    assert!(
        matches!(r, Err(FenceRefusal::Later(ref m)) if m.contains("deadline")),
        "{r:?}"
    );
    assert_eq!(n.row().await.intent, None, "nothing written");

    // A session that outlives the window: the intent is committed before any call.
    n.db.renew("n1", n.epoch, 2_300, None)
        .await
        .expect("db")
        .expect("renew");
    let ticket = n.fence.begin(&n.id).await.expect("begun");
    let row = n.row().await;
    let intent = row.intent.clone().expect("intent committed");
    assert_eq!(
        (intent.intent_gen, intent.token_version),
        (ticket.intent_gen, ticket.token_version)
    );
    let version = row.token_version;

    // The node pauses past its session; another node claims the account.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let e2 =
        n.db.acquire("n2", 60_000, None)
            .await
            .expect("db")
            .expect("acquire");
    let claimed =
        n.db.claim(&n.id, "n2", e2, row.owner_gen, None)
            .await
            .expect("db")
            .expect("the lapsed owner's account is claimed");
    assert!(
        claimed.ambiguous,
        "an expired intent, token version unchanged: ambiguous"
    );

    // The zombie wakes up with new tokens: its finish is refused, nothing moves.
    let r = n.fence.finish(&n.id, ticket).await;
    assert!(matches!(r, Err(FenceRefusal::Lost(_))), "{r:?}");
    let row = n.row().await;
    assert_eq!(
        row.token_version, version,
        "the zombie's rotation is not stored"
    );
    assert!(row.refresh_ambiguous);
    assert_eq!(row.owner.expect("owner").node, "n2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandon_that_may_have_reached_upstream_is_ambiguous_until_an_import() {
    let pg = ThrowawayPg::start();
    let url = pg.database("fence_abandon").await;
    let mut n = Node::start(&url, 60_000).await;

    // A definite failure clears the intent and nothing else.
    let t = n.fence.begin(&n.id).await.expect("begun");
    n.fence.abandon(&n.id, t, false).await.expect("abandoned");
    let row = n.row().await;
    assert!(row.intent.is_none() && !row.refresh_ambiguous, "{row:?}");

    // A call with no answer may have spent the refresh token.
    let t = n.fence.begin(&n.id).await.expect("begun");
    n.fence.abandon(&n.id, t, true).await.expect("abandoned");
    assert!(n.row().await.refresh_ambiguous);
    let r = n.fence.begin(&n.id).await;
    assert_eq!(
        r,
        Err(FenceRefusal::Ambiguous),
        "no refresh until fresh tokens"
    );

    // An import of fresh tokens: a new version, the ambiguity gone, refreshing again.
    let before = n.row().await.token_version;
    n.fence.imported(&n.id).await.expect("imported");
    let row = n.row().await;
    assert!(!row.refresh_ambiguous);
    assert_eq!(row.token_version, before + 1);
    let t = n.fence.begin(&n.id).await.expect("begun after the import");
    assert_eq!(
        t.token_version,
        before + 1,
        "the intent uses the store's token version"
    );
    n.fence.finish(&n.id, t).await.expect("stored");
    assert_eq!(n.row().await.token_version, before + 2);

    // The node's own rotations and imports do not look like another node's import; an import
    // through another node does (the test's connection stands in for it).
    let listed = n.row().await.token_version;
    assert!(
        !n.fence.moved_elsewhere(&n.id, listed),
        "this node stored it"
    );
    n.db.import_tokens(&n.id)
        .await
        .expect("db")
        .expect("imported on another node");
    let listed = n.row().await.token_version;
    assert!(n.fence.moved_elsewhere(&n.id, listed), "the owner reloads");
    assert!(
        n.fence.moved_elsewhere(&n.id, listed),
        "until it has reloaded"
    );
    // Until the reload, no refresh begins on the tokens the import replaced.
    let r = n.fence.begin(&n.id).await;
    assert!(matches!(r, Err(FenceRefusal::Later(_))), "{r:?}");
    assert!(n.row().await.intent.is_none(), "the intent was abandoned");
    // The reload reads the record with its token version.
    rotor_actors::Store::load(n.store.as_ref(), &n.id)
        .expect("load")
        .expect("record");
    assert!(!n.fence.moved_elsewhere(&n.id, listed), "reloaded");

    // A rotation begun on tokens an import replaced meanwhile is refused at finish.
    let t = n.fence.begin(&n.id).await.expect("begun");
    n.fence.imported(&n.id).await.expect("imported");
    let r = n.fence.finish(&n.id, t).await;
    assert!(
        matches!(r, Err(FenceRefusal::Lost(_))),
        "a stale token version: {r:?}"
    );
    assert_eq!(
        n.row().await.token_version,
        before + 4,
        "only the import counted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finish_whose_answer_was_lost_with_its_connection_is_sent_again_and_keeps_the_account() {
    let pg = ThrowawayPg::start();
    let url = pg.database("fence_lost_finish").await;
    let mut n = Node::start(&url, 60_000).await;
    let t = n.fence.begin(&n.id).await.expect("begun");
    let before = n.row().await;

    // The finish reaches the database and commits, and its answer is lost with the
    // connection: the test's connection sends the very statement, then the fence's is cut.
    let intent = Intent {
        intent_gen: t.intent_gen,
        deadline: t.deadline,
        token_version: t.token_version,
        nonce: t.nonce,
    };
    n.db.finish_refresh(&n.id, "n1", t.epoch, t.owner_gen, &intent)
        .await
        .expect("db")
        .expect("the finish landed");
    let stored = n.row().await;
    assert_eq!(stored.token_version, before.token_version + 1);
    assert_eq!(cut(&url, FENCE_APP).await, 1, "the fence's connection");

    // The actor sends the finish again on its ticks until the store answers: the first
    // attempt may still meet the dead connection (not now: nothing changed); then the fence
    // connects again and the store recognises the rotation it already holds.
    let mut answers = Vec::new();
    for _ in 0..3 {
        let r = n.fence.finish(&n.id, t.clone()).await;
        answers.push(r.clone());
        if r.is_ok() {
            break;
        }
        assert!(matches!(r, Err(FenceRefusal::Later(_))), "{answers:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        answers.last(),
        Some(&Ok(())),
        "the account is kept: {answers:?}"
    );
    assert_eq!(
        n.row().await,
        stored,
        "the finish sent again changed nothing"
    );

    // The fence goes on: the next refresh begins and is stored.
    let t = n.fence.begin(&n.id).await.expect("begun after the cut");
    assert_eq!(t.token_version, stored.token_version);
    n.fence.finish(&n.id, t).await.expect("stored");
    assert_eq!(n.row().await.token_version, stored.token_version + 1);
}

/// The store of a node that freezes (as under SIGSTOP) for `freeze` when it is about to write
/// a rotated refresh token, then writes through `PgStore`.
struct FreezingStore {
    inner: Arc<PgStore>,
    original_rt: Option<String>,
    freeze: Duration,
    frozen: std::sync::atomic::AtomicBool,
}

impl Store for FreezingStore {
    fn save(&self, rec: &rotor_actors::AccountRecord) -> std::io::Result<()> {
        let rotated = rec.tokens.refresh_token != self.original_rt;
        if rotated && !self.frozen.swap(true, std::sync::atomic::Ordering::SeqCst) {
            std::thread::sleep(self.freeze);
        }
        self.inner.save(rec)
    }
    fn save_coalesced(&self, rec: &rotor_actors::AccountRecord) -> std::io::Result<()> {
        self.inner.save_coalesced(rec)
    }
    fn remove(&self, id: &str) -> std::io::Result<()> {
        self.inner.remove(id)
    }
    fn load(&self, id: &str) -> std::io::Result<Option<rotor_actors::AccountRecord>> {
        self.inner.load(id)
    }
    fn is_fenced_out(&self, err: &std::io::Error) -> bool {
        self.inner.is_fenced_out(err)
    }
}

struct NoProbe;

impl rotor_actors::QuotaProber for NoProbe {
    fn probe(
        &self,
        _: rotor_actors::UpstreamCreds,
    ) -> rotor_actors::BoxFuture<
        'static,
        Result<rotor_actors::quota::Observation, rotor_actors::ProbeError>,
    > {
        Box::pin(async { Err(rotor_actors::ProbeError::Transient("offline".into())) })
    }
}

/// A real pool (the real token refresher against the simulator, `PgStore`, `PgFence`) whose
/// node freezes between the token endpoint's answer and writing it, past its session; another
/// node claims the account meanwhile. The claim finds the expired intent and marks the account
/// `refresh_ambiguous`; the frozen node, when it thaws, has its write refused and drops the
/// account — the new tokens are never served — and no refresh token is ever presented twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn a_node_frozen_mid_refresh_past_its_session_drops_the_account_and_no_token_is_reused() {
    use codex_rotor::sim::{AccountSpec, SimOptions, Simulator};
    use rotor_actors::{Effects, PickRequest, PoolConfig, PoolHandle, SystemClock};

    let pg = ThrowawayPg::start();
    let url = pg.database("fence_frozen").await;
    let sim = Simulator::start(SimOptions::default(), "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("sim");
    let acct = sim.create_account(AccountSpec::default());
    let rec = codex_rotor::demo::import_auth_json(&acct.auth_json)
        .expect("imports")
        .remove(0);
    let (store, _) = PgStore::open(&url, key()).await.expect("open");
    store.save(&rec).expect("saved");
    let store = Arc::new(store);
    let mut db = LeaseDb::connect(&url).await.expect("connect");
    const TTL: i64 = 6_000;
    let epoch = db
        .acquire("n1", TTL, None)
        .await
        .expect("db")
        .expect("acquire");
    let seen = db.owner_gen(&rec.id).await.expect("db").expect("row");
    let claimed = db
        .claim(&rec.id, "n1", epoch, seen, None)
        .await
        .expect("db")
        .expect("claim");
    store.hold(&rec.id, claimed.owner_gen);
    let view = ClusterView::new("n1".into(), "http://127.0.0.1:1".into(), TTL, 500);
    {
        let now = view.now();
        let mut s = view.write();
        let t = s.lease.sending(now);
        s.lease.granted(t, epoch, TTL);
    }
    let fence = PgFence::connect(
        &url,
        Duration::from_secs(2),
        view.clone(),
        store.clone(),
        WINDOW,
    )
    .await
    .expect("connect");
    let effects = Effects {
        store: Arc::new(FreezingStore {
            inner: store.clone(),
            original_rt: rec.tokens.refresh_token.clone(),
            freeze: Duration::from_millis(TTL as u64 + 2_000),
            frozen: Default::default(),
        }),
        refresher: Arc::new(codex_rotor::HttpRefresher::new(
            reqwest::Client::new(),
            sim.token_url(),
        )),
        prober: Arc::new(NoProbe),
        fence: Arc::new(fence),
        clock: Arc::new(SystemClock),
    };
    let cfg = PoolConfig {
        tick: Duration::from_millis(100),
        refresh_jitter: Duration::ZERO,
        ..PoolConfig::default()
    };
    let pool = PoolHandle::start(cfg, effects, vec![rec.clone()])
        .await
        .expect("pool");
    let req = || PickRequest {
        model: "gpt-5.5".into(),
        ..PickRequest::default()
    };
    // Upstream rejects the access token: the account refreshes at once, under the fence.
    sim.expire_access_token(&acct.id);
    let lease = pool.pick(req()).await.expect("lease");
    lease.failed(rotor_actors::UpstreamFailure::Unauthorized);
    drop(lease);

    // While n1 is frozen with the new tokens in hand, its session lapses and n2 claims.
    tokio::time::sleep(Duration::from_millis(TTL as u64 + 300)).await;
    assert_eq!(
        sim.counters(&acct.id).refreshes,
        1,
        "the call reached upstream"
    );
    let e2 = db
        .acquire("n2", 60_000, None)
        .await
        .expect("db")
        .expect("acquire");
    let row = db.snapshot().await.expect("rows").accounts[&rec.id].clone();
    assert!(
        row.intent.is_some(),
        "n1's intent was committed before the call"
    );
    let taken = db
        .claim(&rec.id, "n2", e2, row.owner_gen, None)
        .await
        .expect("db")
        .expect("n1's session lapsed: n2 claims");
    assert!(
        taken.ambiguous,
        "an expired intent with an unchanged token version"
    );

    // n1 thaws: its write is refused, it drops the account and never serves the new tokens.
    let mut dropped = false;
    for _ in 0..100 {
        if pool.account(&rec.id).await.is_none() {
            dropped = true;
            break;
        }
        if let Ok(l) = pool.pick(req()).await {
            assert_eq!(
                l.creds.access_token, rec.tokens.access_token,
                "only the old access token is ever served"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(dropped, "the zombie dropped the account");
    let row = db.snapshot().await.expect("rows").accounts[&rec.id].clone();
    assert_eq!(row.owner.expect("owner").node, "n2");
    assert!(row.refresh_ambiguous && row.intent.is_none());
    assert_eq!(row.token_version, 0, "no rotation was stored");
    let stored = store.load(&rec.id).expect("read").expect("record");
    assert_eq!(
        stored.tokens.refresh_token, rec.tokens.refresh_token,
        "the zombie's write never landed"
    );
    assert_eq!(sim.counters(&acct.id).refresh_reused, 0);
    pool.shutdown().await;
}

/// Two real `codex-rotor serve` nodes on one database: node `a` is paused (SIGSTOP) while its
/// refresh call is in flight, past its session; node `b` takes the account over, finds the
/// refresh ambiguous and says so; `a`, resumed, drops the account; and the simulator saw no
/// refresh token presented twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_paused_mid_refresh_leaves_the_account_ambiguous_on_the_new_owner() {
    use super::pg_daemon::{ADMIN_KEY, Daemon, free_port, served, write_config_with};
    use codex_rotor::sim::{AccountSpec, FaultKind, FaultSpec, FaultTarget, SimOptions, Simulator};
    use codex_rotor::store::postgres::records::write_new;
    use std::time::Instant;

    let pg = ThrowawayPg::start();
    let url = pg.database("fence_paused").await;
    let sim = Simulator::start(SimOptions::default(), "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("sim");
    let acct = sim.create_account(AccountSpec::default());
    let rec = codex_rotor::demo::import_auth_json(&acct.auth_json)
        .expect("import")
        .remove(0);
    write_new(&url, &key(), std::slice::from_ref(&rec))
        .await
        .expect("stored");
    let tmp = tempfile::tempdir().expect("tempdir");
    // TTL 4 s: the refresh window (1.6 s call + 0.4 s writes + 0.5 s margin) fits the lease.
    let start = |name: &str| {
        let dir = tmp.path().join(name);
        std::fs::create_dir_all(&dir).expect("dir");
        let port = free_port();
        let cluster = format!(
            "[cluster]\nenabled = true\nnode_id = {name:?}\nttl = \"4s\"\nmargin = \"500ms\"\n\
             claim_every = \"250ms\"\n"
        );
        let config = write_config_with(&dir, port, &sim, &url, &cluster);
        let log = dir.join(format!("{name}.log"));
        (Daemon::start(&config, &log), port, log)
    };
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let owner = async || {
        let db = LeaseDb::connect(&url).await.expect("connect");
        let rules = db.snapshot().await.expect("snapshot");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis() as i64;
        let row = rules.accounts[&rec.id].clone();
        let live = rules.owner_live(&row, now);
        (
            live.then(|| row.owner.clone().map(|o| o.node)).flatten(),
            row,
        )
    };
    let wait = async |what: &str,
                      limit: Duration,
                      logs: &[&std::path::Path],
                      mut f: Box<
        dyn FnMut() -> futures::future::BoxFuture<'static, bool> + Send,
    >| {
        let t0 = Instant::now();
        while t0.elapsed() < limit {
            if f().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let text: String = logs
            .iter()
            .map(|l| std::fs::read_to_string(l).unwrap_or_default())
            .collect();
        panic!("not within {limit:?}: {what}\n{text}");
    };
    let (a, a_port, a_log) = start("a");
    let t0 = Instant::now();
    while owner().await.0.as_deref() != Some("a") || !served(&http, a_port).await {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "a owns and serves the account"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The token endpoint answers slowly; upstream rejects the access token, so a refreshes.
    sim.inject(FaultSpec {
        kind: FaultKind::Silence { millis: 1_200 },
        account: None,
        target: FaultTarget::Token,
        probability: None,
        count: Some(1),
    });
    sim.expire_access_token(&acct.id);
    let (h, p) = (http.clone(), a_port);
    let request = tokio::spawn(async move { served(&h, p).await });
    let t0 = Instant::now();
    while sim.total_counters().faults == 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "a's refresh reached the token endpoint"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let pid = a.0.id().to_string();
    let signal = |sig: &str| {
        let ok = std::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {sig} {pid}");
    };
    signal("-STOP");
    let (row_at_pause_intent, _) = (owner().await.1.intent.is_some(), ());
    assert!(
        row_at_pause_intent,
        "a's intent was committed before its call"
    );

    // b joins while a is paused, and takes the account over once a's session lapsed.
    let (b, b_port, b_log) = start("b");
    let _ = &b;
    let logs = [a_log.as_path(), b_log.as_path()];
    let url2 = url.clone();
    let id = rec.id.clone();
    wait(
        "b owns the account",
        Duration::from_secs(30),
        &logs,
        Box::new(move || {
            let (url, id) = (url2.clone(), id.clone());
            Box::pin(async move {
                let db = LeaseDb::connect(&url).await.expect("connect");
                let rules = db.snapshot().await.expect("snapshot");
                rules.accounts[&id]
                    .owner
                    .as_ref()
                    .is_some_and(|o| o.node == "b")
            })
        }),
    )
    .await;
    let (_, row) = owner().await;
    assert!(
        row.refresh_ambiguous,
        "b's claim found a's expired intent: {row:?}"
    );
    let explain = format!(
        "http://127.0.0.1:{b_port}/admin/accounts/{}/explain",
        rec.id
    );
    let t0 = Instant::now();
    let why = loop {
        let r = http.get(&explain).bearer_auth(ADMIN_KEY).send().await;
        if let Ok(r) = r
            && r.status() == 200
        {
            break r.json::<serde_json::Value>().await.expect("json");
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "b runs the account");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let said = why.to_string();
    assert!(said.contains(rotor_actors::AMBIGUOUS), "b says why: {said}");

    // a resumes: it refreshes nothing more and drops the account.
    signal("-CONT");
    let accounts = format!("http://127.0.0.1:{a_port}/admin/accounts");
    let t0 = Instant::now();
    loop {
        let r = http.get(&accounts).bearer_auth(ADMIN_KEY).send().await;
        let listed = match r {
            Ok(r) => r.text().await.unwrap_or_default().contains(&rec.id),
            Err(_) => true,
        };
        if !listed {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "a dropped the account"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = request.await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let c = sim.counters(&acct.id);
    eprintln!("refreshes {} reused {}", c.refreshes, c.refresh_reused);
    assert_eq!(c.refresh_reused, 0, "no refresh token was presented twice");
    assert_eq!(
        owner().await.1.token_version,
        0,
        "the paused node's rotation was never stored"
    );
    drop((a, b));
}
