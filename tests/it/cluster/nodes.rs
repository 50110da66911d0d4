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
    log: PathBuf,
    pub(super) daemon: Option<Daemon>,
}

/// The shared parts: database, simulator, accounts, a client.
pub(super) struct Cluster {
    pg: ThrowawayPg,
    url: String,
    sim: SimHandle,
    pub(super) accounts: BTreeSet<String>,
    pub(super) http: reqwest::Client,
    tmp: tempfile::TempDir,
}

impl Cluster {
    /// A database holding `n` simulated accounts, unowned.
    pub(super) async fn start(n: usize) -> Cluster {
        let pg = ThrowawayPg::start();
        let url = pg.database("nodes").await;
        let sim = Simulator::start(SimOptions::default(), "127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("sim");
        let mut records = Vec::new();
        for _ in 0..n {
            let acct = sim.create_account(AccountSpec::default());
            records.extend(codex_rotor::demo::import_auth_json(&acct.auth_json).expect("import"));
        }
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
        let cluster = format!(
            "[cluster]\nenabled = true\nnode_id = {name:?}\nttl = \"{}ms\"\nmargin = \"500ms\"\n\
             claim_every = \"250ms\"\n",
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
    async fn pair(&self) -> (Node, Node) {
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

    /// The accounts node `n` runs an actor for (its admin API).
    pub(super) async fn running(&self, n: &Node) -> Option<BTreeSet<String>> {
        let r = self
            .http
            .get(format!("http://127.0.0.1:{}/admin/accounts", n.port))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .ok()?;
        let v: serde_json::Value = r.json().await.ok()?;
        Some(
            v["accounts"]
                .as_array()?
                .iter()
                .filter_map(|a| a["id"].as_str().map(str::to_owned))
                .collect(),
        )
    }

    async fn ready(&self, n: &Node) -> bool {
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
    let text = c
        .http
        .get(format!("http://127.0.0.1:{}/metrics", a.port))
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("body");
    let families = crate::metrics::prom::parse(&text).expect("a strict exposition");
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
