//! Cluster mode end to end (docs/cluster.md "How a node runs"): real `codex-rotor serve`
//! processes with `[cluster] enabled` sharing one throwaway PostgreSQL and the simulator,
//! over real sockets. Two nodes split the accounts; a SIGKILLed node's accounts are taken
//! over within TTL + 2 s; a SIGTERMed one hands them over at once; a joining node gets its
//! share by planned release while requests keep being served; a node cut off from the
//! database stops serving within the TTL and comes back with the database.

use super::pg_daemon::{ADMIN_KEY, Daemon, answer, free_port, served, write_config_with};
use super::pg_store::key;
use super::throwaway::ThrowawayPg;
use codex_rotor::sim::{AccountSpec, SimHandle, SimOptions, Simulator};
use codex_rotor::store::postgres::LeaseDb;
use codex_rotor::store::postgres::records::write_new;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The TTL the nodes run with (short, to keep the tests fast).
const TTL: Duration = Duration::from_secs(2);

/// One node: its port, log and process.
pub(super) struct Node {
    pub(super) name: &'static str,
    pub(super) port: u16,
    pub(super) log: PathBuf,
    pub(super) daemon: Option<Daemon>,
}

/// The shared parts: database, simulator, accounts, a client.
pub(super) struct Cluster {
    pub(super) pg: ThrowawayPg,
    pub(super) url: String,
    pub(super) sim: SimHandle,
    pub(super) accounts: BTreeSet<String>,
    pub(super) http: reqwest::Client,
    tmp: tempfile::TempDir,
}

/// True when each of `nodes` is the placement of at least one of `records`.
fn spread(records: &[rotor_actors::AccountRecord], nodes: &[&str]) -> bool {
    use rotor_actors::ownership::placement::owner_of;
    nodes
        .iter()
        .all(|n| records.iter().any(|r| owner_of(&r.id, nodes) == Some(*n)))
}

impl Cluster {
    /// A database holding `n` simulated accounts, unowned, placed so that two nodes (a, b)
    /// and three (a, b, c) each get at least one.
    pub(super) async fn start(n: usize) -> Cluster {
        let pg = ThrowawayPg::start();
        let url = pg.database("nodes").await;
        let sim = Simulator::start(SimOptions::default(), "127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("sim");
        let auths: Vec<_> = (0..n)
            .map(|_| sim.create_account(AccountSpec::default()).auth_json)
            .collect();
        // Placement hashes the account ids, which are random: draw them again until a and b
        // (and a, b and c) each win one, or a test waiting for the nodes to split the
        // accounts waits for what cannot happen (with six accounts, one run in 32 put all of
        // them on one node of two).
        let records = loop {
            let records: Vec<_> = auths
                .iter()
                .flat_map(|a| codex_rotor::demo::import_auth_json(a).expect("import"))
                .collect();
            if spread(&records, &["a", "b"]) && spread(&records, &["a", "b", "c"]) {
                break records;
            }
        };
        write_new(&url, &key(), &records)
            .await
            .expect("accounts stored");
        let accounts = records.iter().map(|r| r.id.clone()).collect();
        Cluster {
            pg,
            url,
            sim,
            accounts,
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("client"),
            tmp: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// Starts node `name` (its own config and data directory).
    pub(super) fn node(&self, name: &'static str) -> Node {
        let dir = self.tmp.path().join(name);
        std::fs::create_dir_all(&dir).expect("node dir");
        let port = free_port();
        let secret = dir.join("cluster-secret");
        std::fs::write(&secret, crate::support::CLUSTER_SECRET).expect("secret");
        let cluster = format!(
            "[cluster]\nenabled = true\nnode_id = {name:?}\nttl = \"{}ms\"\nmargin = \"500ms\"\n\
             claim_every = \"250ms\"\nsecret_file = {secret:?}\n",
            TTL.as_millis()
        );
        let config = write_config_with(&dir, port, &self.sim, &self.url, &cluster);
        let log = dir.join(format!("{name}.log"));
        let daemon = Daemon::start(&config, &log);
        Node {
            name,
            port,
            log,
            daemon: Some(daemon),
        }
    }

    /// Nodes a and b, once they split the accounts between them.
    pub(super) async fn pair(&self) -> (Node, Node) {
        let a = self.node("a");
        let b = self.node("b");
        self.within(
            "a and b split the accounts",
            Duration::from_secs(30),
            &[&a, &b],
            async || self.split_between(&[&a, &b]).await,
        )
        .await;
        (a, b)
    }

    /// Every account's live owner, as the database says.
    pub(super) async fn owners(&self) -> BTreeMap<String, String> {
        let db = LeaseDb::connect(&self.url).await.expect("connect");
        let rules = db.snapshot().await.expect("snapshot");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis() as i64;
        rules
            .accounts
            .iter()
            .filter(|(_, row)| rules.owner_live(row, now))
            .filter_map(|(id, row)| Some((id.clone(), row.owner.as_ref()?.node.clone())))
            .collect()
    }

    /// The last request node `n` recorded (its admin API).
    pub(super) async fn last_request(&self, n: &Node) -> serde_json::Value {
        let v = self
            .admin_get(n, "/admin/requests?limit=1")
            .await
            .expect("admin");
        v["requests"][0].clone()
    }

    /// `GET path` of node `n`'s admin API as JSON; `None` when it did not answer with JSON.
    pub(super) async fn admin_get(&self, n: &Node, path: &str) -> Option<serde_json::Value> {
        self.http
            .get(format!("http://127.0.0.1:{}{path}", n.port))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()
    }

    /// Node `n`'s `/metrics`: the text, and its families as a strict parse reads them.
    pub(super) async fn scrape(
        &self,
        n: &Node,
    ) -> (String, BTreeMap<String, crate::metrics::prom::Family>) {
        let text = self
            .http
            .get(format!("http://127.0.0.1:{}/metrics", n.port))
            .send()
            .await
            .expect("scrape")
            .text()
            .await
            .expect("body");
        let families = crate::metrics::prom::parse(&text).expect("a strict exposition");
        (text, families)
    }

    /// Sample `sample` with `labels` of node `n`'s `/metrics` (parsed strictly), `None` when
    /// the node shows no such sample.
    pub(super) async fn sample(
        &self,
        n: &Node,
        sample: &str,
        labels: &[(&str, &str)],
    ) -> Option<f64> {
        let (_, families) = self.scrape(n).await;
        let family = sample.strip_suffix("_total").unwrap_or(sample);
        families
            .get(family)
            .or_else(|| families.get(sample))
            .and_then(|f| f.with(sample, labels).first().map(|s| s.value))
    }

    /// The accounts node `n` runs an actor for (its admin API).
    pub(super) async fn running(&self, n: &Node) -> Option<BTreeSet<String>> {
        let v = self.admin_get(n, "/admin/accounts").await?;
        Some(
            v["accounts"]
                .as_array()?
                .iter()
                .filter_map(|a| a["id"].as_str().map(str::to_owned))
                .collect(),
        )
    }

    pub(super) async fn ready(&self, n: &Node) -> bool {
        self.http
            .get(format!("http://127.0.0.1:{}/readyz", n.port))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    }

    /// True when `nodes` run disjoint sets of accounts covering them all, each matching what
    /// the database says it owns, each node ready with at least one account.
    pub(super) async fn split_between(&self, nodes: &[&Node]) -> bool {
        let owners = self.owners().await;
        let mut union = BTreeSet::new();
        for n in nodes {
            let Some(run) = self.running(n).await else {
                return false;
            };
            let owned: BTreeSet<String> = owners
                .iter()
                .filter(|(_, o)| o.as_str() == n.name)
                .map(|(a, _)| a.clone())
                .collect();
            if run.is_empty() || run != owned || !run.is_disjoint(&union) || !self.ready(n).await {
                return false;
            }
            union.extend(run);
        }
        union == self.accounts
    }

    /// Waits up to `limit` for `check`; the time it took, or a panic with the nodes' logs.
    pub(super) async fn within<F: AsyncFnMut() -> bool>(
        &self,
        what: &str,
        limit: Duration,
        logs: &[&Node],
        mut check: F,
    ) -> Duration {
        let start = Instant::now();
        while start.elapsed() < limit {
            if check().await {
                return start.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut text = String::new();
        for n in logs {
            text += &format!(
                "--- {}:\n{}\n",
                n.name,
                std::fs::read_to_string(&n.log).unwrap_or_default()
            );
        }
        panic!("not within {limit:?}: {what}\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_split_the_accounts_and_a_killed_ones_are_served_by_the_other_within_the_ttl() {
    let c = Cluster::start(8).await;
    let (a, b) = c.pair().await;
    assert!(served(&c.http, a.port).await, "a serves");
    assert!(served(&c.http, b.port).await, "b serves");

    // SIGKILL: no release, no session end; a waits out b's TTL, then claims.
    let mut b = b;
    drop(b.daemon.take());
    let took = c
        .within(
            "a owns every account",
            TTL + Duration::from_secs(10),
            &[&a],
            async || c.split_between(&[&a]).await,
        )
        .await;
    eprintln!("takeover after SIGKILL: {took:?}");
    assert!(
        took <= TTL + Duration::from_secs(2),
        "takeover took {took:?}, more than TTL + 2 s"
    );
    for _ in 0..8 {
        assert!(served(&c.http, a.port).await, "a serves every account");
    }
    for id in c.sim.accounts() {
        assert_eq!(
            c.sim.counters(&id).refresh_reused,
            0,
            "no refresh token used twice"
        );
    }
    // The node's families, in a scrape that parses strictly.
    let (text, families) = c.scrape(&a).await;
    let value = |family: &str, sample: &str, labels: &[(&str, &str)]| {
        families
            .get(family)
            .unwrap_or_else(|| panic!("{family} in\n{text}"))
            .with(sample, labels)[0]
            .value
    };
    let held = [("standing", "held")];
    let standing = "codex_rotor_cluster_standing";
    assert_eq!(value(standing, standing, &held), 1.0);
    let owned = "codex_rotor_cluster_accounts_owned";
    assert_eq!(value(owned, owned, &[]), 8.0);
    let granted = [("outcome", "granted")];
    let claims = value(
        "codex_rotor_cluster_claims_total",
        "codex_rotor_cluster_claims_total",
        &granted,
    );
    assert!(
        claims >= 8.0,
        "a claimed every account at least once: {claims}"
    );
    let renewals = "codex_rotor_cluster_renewals_total";
    assert!(value(renewals, renewals, &granted) >= 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigtermed_node_hands_its_accounts_over_without_waiting_out_the_ttl() {
    let c = Cluster::start(8).await;
    let (a, mut b) = c.pair().await;
    let sent = Instant::now();
    b.daemon.take().expect("b runs").stop().await;
    c.within("a owns every account", TTL * 5, &[&a, &b], async || {
        c.split_between(&[&a]).await
    })
    .await;
    let took = sent.elapsed();
    eprintln!("handover after SIGTERM (b's exit included): {took:?}");
    assert!(
        took < TTL,
        "a planned release needs no TTL wait, took {took:?}"
    );
    let log = std::fs::read_to_string(&b.log).unwrap_or_default();
    assert!(log.contains("session ended"), "b ended its session:\n{log}");
    assert!(served(&c.http, a.port).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joining_node_takes_its_share_by_planned_release_and_no_request_fails() {
    let c = Arc::new(Cluster::start(16).await);
    let (a, b) = c.pair().await;
    let before = c.owners().await;
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let load = {
        let (c, stop, sent, failed) = (c.clone(), stop.clone(), sent.clone(), failed.clone());
        let ports = [a.port, b.port];
        tokio::spawn(async move {
            let mut failures = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                for port in ports {
                    sent.fetch_add(1, Ordering::Relaxed);
                    match answer(&c.http, port).await {
                        Some((200, _)) => {}
                        other => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            failures.push(format!("{port}: {other:?}"));
                        }
                    }
                }
            }
            failures
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let n = c.node("c");
    c.within(
        "a, b and c split the accounts",
        Duration::from_secs(30),
        &[&a, &b, &n],
        async || c.split_between(&[&a, &b, &n]).await,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let failures = load.await.expect("load");
    let after = c.owners().await;
    let moved: Vec<_> = after
        .iter()
        .filter(|(id, o)| before.get(*id) != Some(*o))
        .collect();
    assert!(
        moved.iter().all(|(_, o)| o.as_str() == "c"),
        "only accounts c wins moved, and they moved to c: {moved:?}"
    );
    let sent = sent.load(Ordering::Relaxed);
    eprintln!(
        "join: {} of 16 accounts moved to c; {sent} requests during the join",
        moved.len()
    );
    assert!(sent >= 10, "requests were sent during the join: {sent}");
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "no request failed: {failures:?}"
    );
    let log = std::fs::read_to_string(&a.log).unwrap_or_default()
        + &std::fs::read_to_string(&b.log).unwrap_or_default();
    assert!(
        log.contains("released to the node that should own it"),
        "moved by release"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_from_the_database_stops_serving_within_the_ttl_and_recovers() {
    let c = Cluster::start(4).await;
    let a = c.node("a");
    c.within(
        "a owns every account",
        Duration::from_secs(30),
        &[&a],
        async || c.split_between(&[&a]).await,
    )
    .await;
    assert!(served(&c.http, a.port).await);
    c.pg.stop();
    let took = c
        .within("a is not ready", TTL * 3, &[&a], async || {
            !c.ready(&a).await
        })
        .await;
    eprintln!("readyz 503 after the database stopped: {took:?}");
    assert!(took <= TTL, "503 within the TTL, took {took:?}");
    let (status, body) = answer(&c.http, a.port).await.expect("a answers");
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("cluster session"),
        "says why, in the protocol's shape: {body}"
    );
    let v: serde_json::Value = serde_json::from_str(&body).expect("a JSON error");
    assert!(v["error"]["message"].is_string(), "{body}");
    // Down longer than the TTL: the session lapses in the store, so the node comes back
    // under a new epoch and claims its accounts again.
    tokio::time::sleep(TTL).await;
    c.pg.restart();
    c.within(
        "a serves again",
        Duration::from_secs(30),
        &[&a],
        async || c.split_between(&[&a]).await && served(&c.http, a.port).await,
    )
    .await;
    let log = std::fs::read_to_string(&a.log).unwrap_or_default();
    assert!(
        log.contains("the session was lost"),
        "re-acquired after the outage:\n{log}"
    );
    for id in c.sim.accounts() {
        assert_eq!(
            c.sim.counters(&id).refresh_reused,
            0,
            "no refresh token used twice"
        );
    }
}

/// A request a node's exhausted accounts cannot take, on real nodes (docs/cluster.md
/// "Requests across nodes"): it spills to the other node, which its listing says can serve
/// (the summary each node publishes with its renewals); once every account of both is
/// exhausted, the answer is a 429 with a reset, and the exhausted peer is not asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_accounts_are_exhausted_spills_to_the_other_by_its_published_summary() {
    // Eight accounts: each of two nodes owns some but for a 1-in-128 split.
    let c = Cluster::start(8).await;
    let (a, b) = c.pair().await;
    let records = codex_rotor::store::postgres::records::read_records(&c.url, &key())
        .await
        .expect("records");
    let sim_of = |id: &str| {
        records
            .iter()
            .find(|r| r.id == id)
            .and_then(|r| r.identity.chatgpt_account_id.clone())
            .expect("a simulated account")
    };
    let owners = c.owners().await;
    let on = |node: &str| -> Vec<String> {
        owners
            .iter()
            .filter(|(_, n)| n.as_str() == node)
            .map(|(id, _)| sim_of(id))
            .collect()
    };
    let (on_a, on_b) = (on("a"), on("b"));
    let asked = |ids: &[String]| -> u64 { ids.iter().map(|id| c.sim.counters(id).requests).sum() };
    for id in &on_a {
        c.sim.set_usage(id, 100.0, 10.0);
    }
    let before = asked(&on_b);
    let post = |port: u16| {
        let http = c.http.clone();
        async move {
            let body = serde_json::json!({"model": "gpt-5.5", "stream": false, "store": false,
                "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}]});
            let r = http
                .post(format!("http://127.0.0.1:{port}/v1/responses"))
                .bearer_auth(super::pg_daemon::POOL_KEY)
                .json(&body)
                .send()
                .await
                .expect("answer");
            let status = r.status().as_u16();
            (
                status,
                r.json::<serde_json::Value>().await.unwrap_or_default(),
            )
        }
    };
    // b's summary says it serves once its first renewal after claiming is listed by a.
    c.within(
        "a's request spills to b",
        Duration::from_secs(10),
        &[&a, &b],
        async || post(a.port).await.0 == 200,
    )
    .await;
    assert_eq!(asked(&on_b), before + 1, "by one of b's accounts");
    assert!(
        on_a.iter().all(|id| c.sim.counters(id).served_429 <= 1),
        "a's accounts were each tried at most once"
    );

    for id in &on_b {
        c.sim.set_usage(id, 100.0, 10.0);
    }
    // b tries each account once, then its pool serves nothing (its /admin/pool says so).
    c.within(
        "b knows its accounts are exhausted",
        Duration::from_secs(10),
        &[&b],
        async || post(b.port).await.0 == 429 && !serves(&c, &b).await,
    )
    .await;
    // Its summary reaches a within a second (summary) + a renewal + a listing round.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let served_by_b = async || -> usize {
        let v = c
            .admin_get(&b, "/admin/requests?limit=10000")
            .await
            .expect("admin");
        v["count"].as_u64().unwrap_or(0) as usize
    };
    let (settled, asked_b) = (served_by_b().await, asked(&on_b));
    let last = post(a.port).await;
    assert_eq!(last.0, 429, "{}", last.1);
    assert_eq!(last.1["error"]["type"], "usage_limit_reached", "{}", last.1);
    assert!(
        last.1["error"]["resets_at"].as_i64().is_some(),
        "{}",
        last.1
    );
    assert_eq!(
        (served_by_b().await, asked(&on_b)),
        (settled, asked_b),
        "a answered itself: no spill to a peer that serves nothing"
    );
}

/// A conversation whose account moves on real nodes (docs/cluster.md "Requests across
/// nodes"): a served its first turn on one of its accounts, a joining node takes that account
/// by planned release, and the next turn arriving at a is forwarded to the new owner and
/// streamed back, served by the same account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turn_whose_account_moved_to_a_joining_node_is_forwarded_there_and_streams_back() {
    let c = Cluster::start(8).await;
    let (a, b) = c.pair().await;
    let turn = |key: &str| {
        serde_json::json!({"model": "gpt-5.5", "stream": true, "store": false,
            "prompt_cache_key": key,
            "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}]})
    };
    let send = async |port: u16, key: &str| {
        let r = c
            .http
            .post(format!("http://127.0.0.1:{port}/v1/responses"))
            .bearer_auth(super::pg_daemon::POOL_KEY)
            .json(&turn(key))
            .send()
            .await
            .expect("answer");
        let (status, kind) = (
            r.status().as_u16(),
            r.headers().get("content-type").cloned(),
        );
        (status, kind, r.text().await.unwrap_or_default())
    };
    // The first turn, on one of a's accounts; then a joining node that rendezvous hashing
    // gives that account.
    assert_eq!(send(a.port, "conv-1").await.0, 200);
    let moved = c.last_request(&a).await["account_id"]
        .as_str()
        .expect("served on an account")
        .to_owned();
    let joiner: &'static str = (0..200)
        .map(|i| format!("node-{i}"))
        .find(|n| {
            rotor_actors::ownership::placement::owner_of(&moved, &["a", "b", n.as_str()])
                == Some(n.as_str())
        })
        .map(|n| &*Box::leak(n.into_boxed_str()))
        .expect("some joining node takes the account");
    let j = c.node(joiner);
    c.within(
        "the joining node takes the account by planned release",
        Duration::from_secs(30),
        &[&a, &b, &j],
        async || {
            c.owners().await.get(&moved).map(String::as_str) == Some(joiner)
                && c.running(&j).await.is_some_and(|r| r.contains(&moved))
                && c.running(&a).await.is_some_and(|r| !r.contains(&moved))
                && c.ready(&j).await
        },
    )
    .await;
    // a lists the new owner with its next rounds (every 250 ms).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let records = codex_rotor::store::postgres::records::read_records(&c.url, &key())
        .await
        .expect("records");
    let sim_id = records
        .iter()
        .find(|r| r.id == moved)
        .and_then(|r| r.identity.chatgpt_account_id.clone())
        .expect("sim id");
    let before = c.sim.counters(&sim_id).requests;
    let (status, kind, body) = send(a.port, "conv-1").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        kind.as_ref().and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    assert!(body.contains("response.completed"), "{body}");
    assert_eq!(
        c.sim.counters(&sim_id).requests,
        before + 1,
        "served by the moved account"
    );
    let (sent, got) = (c.last_request(&a).await, c.last_request(&j).await);
    assert_eq!(sent["forwarded_to"], joiner, "{sent}");
    assert_eq!(got["forwarded_from"], "a", "{got}");
    assert_eq!(got["account_id"], moved.as_str(), "{got}");
    assert_eq!(got["client_key"], sent["client_key"], "{got}");
}

/// Whether node `n`'s pool says it can serve a request now.
async fn serves(c: &Cluster, n: &Node) -> bool {
    let v = c.admin_get(n, "/admin/pool").await.expect("admin");
    v["serving"].as_bool().unwrap_or(true)
}
