//! Cluster mode end to end (docs/cluster.md "How a node runs"): real `codex-rotor serve`
//! processes with `[cluster] enabled` sharing one throwaway PostgreSQL and the simulator,
//! over real sockets. Two nodes split the accounts; a SIGKILLed node's accounts are taken
//! over within TTL + 2 s; a SIGTERMed one hands them over at once.

use super::pg_daemon::{ADMIN_KEY, Daemon, free_port, served, write_config_with};
use super::pg_store::key;
use super::throwaway::ThrowawayPg;
use codex_rotor::sim::{AccountSpec, SimHandle, SimOptions, Simulator};
use codex_rotor::store::postgres::LeaseDb;
use codex_rotor::store::postgres::records::write_new;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
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
    _pg: ThrowawayPg,
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
            _pg: pg,
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
    let a = c.node("a");
    let b = c.node("b");
    c.within(
        "a and b split the accounts",
        Duration::from_secs(30),
        &[&a, &b],
        async || c.split_between(&[&a, &b]).await,
    )
    .await;
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
}
