//! The ownership history the checks judge by, read from the database itself (its own socket,
//! never through a node's relay): every ~100 ms one consistent snapshot of the node sessions
//! and the account owners, stamped with the database's clock (`clock_timestamp()`, the clock
//! the leases are on; on one machine it is also the simulator's wall clock, so a refresh the
//! simulator logged can be placed in this history).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_postgres::{IsolationLevel, NoTls};

/// One node session row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// Node id.
    pub node: String,
    /// Session epoch.
    pub epoch: i64,
    /// Database ms when it lapses.
    pub expires_at: i64,
}

/// One account ownership row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerRow {
    /// Pool account id.
    pub account: String,
    /// Owning node, if any.
    pub node: Option<String>,
    /// Its epoch when it claimed.
    pub epoch: Option<i64>,
    /// The fencing generation.
    pub owner_gen: i64,
}

/// One snapshot.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Database ms of the snapshot.
    pub at: i64,
    /// Every session row.
    pub sessions: Vec<SessionRow>,
    /// Every ownership row.
    pub owners: Vec<OwnerRow>,
    /// Lock requests waiting in the whole server (`pg_locks` not granted): a node stalled
    /// inside a transaction shows as others waiting on its row locks.
    pub waiting: i64,
}

impl Sample {
    /// The node owning `account` in a live session (its epoch matches a session that has not
    /// lapsed at this snapshot).
    pub fn live_owner(&self, account: &str) -> Option<&str> {
        let o = self.owners.iter().find(|o| o.account == account)?;
        let node = o.node.as_deref()?;
        let live = self
            .sessions
            .iter()
            .any(|s| s.node == node && Some(s.epoch) == o.epoch && s.expires_at > self.at);
        live.then_some(node)
    }

    /// Nodes with a live session.
    pub fn live_nodes(&self) -> BTreeSet<String> {
        self.sessions
            .iter()
            .filter(|s| s.expires_at > self.at)
            .map(|s| s.node.clone())
            .collect()
    }

    /// Accounts per live owner (`None`: nobody live).
    pub fn by_owner(&self, accounts: &[String]) -> BTreeMap<Option<String>, Vec<String>> {
        let mut m: BTreeMap<Option<String>, Vec<String>> = BTreeMap::new();
        for a in accounts {
            m.entry(self.live_owner(a).map(str::to_owned))
                .or_default()
                .push(a.clone());
        }
        m
    }
}

/// The sampler's shared record.
#[derive(Default)]
pub struct History {
    samples: Mutex<Vec<Sample>>,
    /// Snapshots that failed (the database was unreachable from the harness).
    pub failures: std::sync::atomic::AtomicU64,
}

impl History {
    /// Every snapshot so far.
    pub fn samples(&self) -> Vec<Sample> {
        self.samples
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The newest snapshot.
    pub fn last(&self) -> Option<Sample> {
        self.samples
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .last()
            .cloned()
    }

    fn push(&self, s: Sample) {
        self.samples
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(s);
    }
}

/// Starts sampling `url` every `every`; the task ends when the history is dropped elsewhere
/// and the handle aborted.
pub fn start(url: String, every: Duration) -> (Arc<History>, tokio::task::JoinHandle<()>) {
    let history = Arc::new(History::default());
    let h = history.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut client, conn)) = tokio_postgres::connect(&url, NoTls).await else {
                h.failures
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(every).await;
                continue;
            };
            let conn = tokio::spawn(conn);
            while let Ok(s) = snapshot(&mut client).await {
                h.push(s);
                tokio::time::sleep(every).await;
            }
            h.failures
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            conn.abort();
        }
    });
    (history, task)
}

/// The database's clock, in ms.
const NOW: &str = "select (extract(epoch from clock_timestamp()) * 1000)::bigint";

async fn snapshot(client: &mut tokio_postgres::Client) -> Result<Sample, tokio_postgres::Error> {
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let sessions = tx
        .query(
            "select node, epoch, expires_at from rotor_node_session",
            &[],
        )
        .await?
        .iter()
        .map(|r| SessionRow {
            node: r.get(0),
            epoch: r.get(1),
            expires_at: r.get(2),
        })
        .collect();
    let owners = tx
        .query(
            "select account, owner_node, owner_epoch, owner_gen from rotor_account_owner",
            &[],
        )
        .await?
        .iter()
        .map(|r| OwnerRow {
            account: r.get(0),
            node: r.get(1),
            epoch: r.get(2),
            owner_gen: r.get(3),
        })
        .collect();
    let waiting: i64 = tx
        .query_one("select count(*) from pg_locks where not granted", &[])
        .await?
        .get(0);
    // The clock is read after the rows: a session seen live was live at least until `at`.
    let at: i64 = tx.query_one(NOW, &[]).await?.get(0);
    tx.commit().await?;
    Ok(Sample {
        at,
        sessions,
        owners,
        waiting,
    })
}

/// Whether `node` held a live session at database time `t`, by every renewal the history saw:
/// a session row `(epoch, expires_at)` was renewed (or acquired) at `expires_at - ttl` and
/// lived until `expires_at`.
pub fn lease_live_at(samples: &[Sample], node: &str, t: i64, ttl: i64) -> bool {
    samples
        .iter()
        .flat_map(|s| s.sessions.iter())
        .filter(|s| s.node == node)
        .any(|s| s.expires_at - ttl <= t && t < s.expires_at)
}

/// The last snapshot at or before `t` and the first after it.
pub fn around(samples: &[Sample], t: i64) -> (Option<&Sample>, Option<&Sample>) {
    let i = samples.partition_point(|s| s.at <= t);
    (i.checked_sub(1).map(|j| &samples[j]), samples.get(i))
}

/// Whether `node` owned `account` around `t`: in the snapshot before or the one after (a claim
/// or a release between two snapshots leaves one of them showing it).
pub fn owned_around(samples: &[Sample], account: &str, node: &str, t: i64) -> bool {
    let (before, after) = around(samples, t);
    let owns = |s: Option<&Sample>| {
        s.and_then(|s| s.owners.iter().find(|o| o.account == account))
            .is_some_and(|o| o.node.as_deref() == Some(node))
    };
    owns(before) || owns(after)
}
