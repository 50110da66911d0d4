//! The shared affinity table (docs/cluster.md "Requests across nodes"; CLUSTER.md "What is
//! durable, where": write-behind, loss = a cache miss). A node remembers the conversations it
//! served itself (the pool's affinity); this table lets every node find a conversation another
//! node served, so its next turn goes to the account that holds its prompt cache.
//!
//! - **Write-behind.** The pool tells [`SharedAffinity`] of every affinity a granted lease
//!   records ([`AffinityShare`]): it only queues (bounded at [`QUEUE_CAPACITY`], the oldest
//!   dropped and counted). The writer task flushes the queue every [`FLUSH_EVERY`], each key
//!   once, in multi-row upserts. Nothing of it is on a request's path; a database outage
//!   costs misses only.
//! - **Read on a local miss** ([`SharedAffinity::recall`]): one indexed lookup bounded by
//!   [`LOOKUP_TIMEOUT`]; a timeout or an error is a fresh pick, never a failed request.
//! - **TTL.** A row as old as the pool's affinity TTL is ignored on read, and the writer
//!   deletes such rows at most once per [`SWEEP_EVERY`], at most [`SWEEP_LIMIT`] a time.
//! - **Keys.** A conversation key is a client's id: the table holds its HMAC-SHA256 under the
//!   cluster secret, never the key.
//!
//! Only a cluster node on PostgreSQL has one; a single node never builds it.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rotor_actors::pool::AffinityShare;

use super::forward::ClusterSecret;
use super::view::{ClusterView, Peer, Placement};
use crate::store::postgres::Redialer;
use crate::store::postgres::affinity::{AffinityDb, KeyHash};

/// How often the writer flushes what was queued.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Most affinities queued between flushes; past it the oldest is dropped.
pub const QUEUE_CAPACITY: usize = 10_000;
/// Rows per upsert statement.
pub const BATCH: usize = 1_000;
/// Bound on one lookup on the request path.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_millis(100);
/// Bound on (re)connecting the writer's connection, and on its lock waits.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Bound on one statement of the writer: a connection whose database stopped answering (a
/// partition sends no reset) is replaced instead of holding the writer.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the writer deletes expired rows, at most.
pub const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// Rows one sweep deletes, at most.
pub const SWEEP_LIMIT: i64 = 10_000;

/// What a lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recall {
    /// The conversation's account is this node's own.
    Local(String),
    /// The conversation's account lives on this live peer.
    Peer(Peer, String),
    /// No fresh row, or its account has no live owner.
    Miss,
    /// The table could not be asked in time (no connection, an error, the timeout).
    Failed,
}

/// Lookups by outcome: `hit_local`, `hit_peer`, `miss`, `error`.
static LOOKUPS: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];
/// Rows upserted.
static WRITTEN: AtomicU64 = AtomicU64::new(0);
/// Affinities dropped: the queue was full, or the flush that carried them failed.
static DROPPED: [AtomicU64; 2] = [const { AtomicU64::new(0) }; 2];
/// Whether this process runs a shared table (its metric families are shown only then).
static RUNNING: AtomicBool = AtomicBool::new(false);

impl Recall {
    fn index(&self) -> usize {
        match self {
            Recall::Local(_) => 0,
            Recall::Peer(..) => 1,
            Recall::Miss => 2,
            Recall::Failed => 3,
        }
    }
}

/// `(outcome label, count)` of the lookups so far.
pub fn lookups_total() -> [(&'static str, u64); 4] {
    let n = |i: usize| LOOKUPS[i].load(Ordering::Relaxed);
    [
        ("hit_local", n(0)),
        ("hit_peer", n(1)),
        ("miss", n(2)),
        ("error", n(3)),
    ]
}

/// Rows upserted so far.
pub fn written_total() -> u64 {
    WRITTEN.load(Ordering::Relaxed)
}

/// `(reason label, count)` of the affinities dropped so far.
pub fn dropped_total() -> [(&'static str, u64); 2] {
    [
        ("full", DROPPED[0].load(Ordering::Relaxed)),
        ("failed", DROPPED[1].load(Ordering::Relaxed)),
    ]
}

/// Whether this process runs a shared affinity table (a cluster node).
pub fn running() -> bool {
    RUNNING.load(Ordering::Relaxed)
}

/// The node's side of the shared table: the queue the pool feeds, the connection lookups use.
pub struct SharedAffinity {
    secret: ClusterSecret,
    /// Rows older than this are ignored and swept (the pool's affinity TTL), ms.
    ttl_ms: i64,
    /// (conversation key, account) recorded since the last flush, oldest first.
    queue: Mutex<VecDeque<(String, String)>>,
    /// The writer's connection while it is open, for lookups (the writer's [`Redialer`]
    /// opens it and publishes it here).
    db: Mutex<Option<Arc<AffinityDb>>>,
}

impl AffinityShare for SharedAffinity {
    fn recorded(&self, key: &str, account: &str) {
        let mut q = lock(&self.queue);
        if q.len() >= QUEUE_CAPACITY {
            q.pop_front();
            DROPPED[0].fetch_add(1, Ordering::Relaxed);
        }
        q.push_back((key.to_owned(), account.to_owned()));
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl SharedAffinity {
    /// A table keyed under `secret`, whose rows live `ttl_ms` (the pool's affinity TTL).
    pub fn new(secret: ClusterSecret, ttl_ms: i64) -> Arc<Self> {
        Arc::new(Self {
            secret,
            ttl_ms,
            queue: Mutex::new(VecDeque::new()),
            db: Mutex::new(None),
        })
    }

    /// The stored form of a conversation key.
    pub fn hash(&self, key: &str) -> KeyHash {
        let mut message = b"codex-rotor-affinity-v1\n".to_vec();
        message.extend_from_slice(key.as_bytes());
        self.secret.keyed_hash(&message)
    }

    /// Where the conversation `key` (unknown to this node's pool) went, as the table and
    /// `view` say: counted by outcome. Bounded by [`LOOKUP_TIMEOUT`].
    pub async fn recall(&self, view: &ClusterView, key: &str) -> Recall {
        let found = match self.current() {
            None => Err("no connection to the database".to_owned()),
            Some(db) => {
                let hash = self.hash(key);
                match tokio::time::timeout(LOOKUP_TIMEOUT, db.lookup(&hash, self.ttl_ms)).await {
                    Ok(Ok(found)) => Ok(found),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err(format!("no answer within {LOOKUP_TIMEOUT:?}")),
                }
            }
        };
        let recall = match found {
            Err(e) => {
                tracing::debug!(error = %e, "shared affinity lookup failed; picking fresh");
                Recall::Failed
            }
            Ok(None) => Recall::Miss,
            Ok(Some(account)) => match view.placement(&account) {
                Placement::Local => Recall::Local(account),
                Placement::Peer(p) => Recall::Peer(p, account),
                Placement::Nobody => Recall::Miss,
            },
        };
        LOOKUPS[recall.index()].fetch_add(1, Ordering::Relaxed);
        recall
    }

    /// The connection, unless there is none or it closed.
    fn current(&self) -> Option<Arc<AffinityDb>> {
        lock(&self.db).clone().filter(|db| !db.is_closed())
    }

    /// Starts the writer on the database at `url` (a secret: never logged); it runs until
    /// aborted.
    pub fn spawn_writer(self: &Arc<Self>, url: String) -> tokio::task::JoinHandle<()> {
        RUNNING.store(true, Ordering::Relaxed);
        let me = self.clone();
        tokio::spawn(async move { me.write_behind(&url).await })
    }

    async fn write_behind(&self, url: &str) {
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut link: Redialer<Arc<AffinityDb>> =
            Redialer::new(url, CONNECT_TIMEOUT, "the shared affinity table");
        let mut swept: Option<Instant> = None;
        let mut reachable = true;
        loop {
            tick.tick().await;
            let db = match link.ready().await {
                Ok(db) => db.clone(),
                Err(e) => {
                    *lock(&self.db) = None;
                    if std::mem::replace(&mut reachable, false) {
                        tracing::warn!(error = %e, "shared affinity table unreachable; conversations another node served are picked fresh until it is back");
                    }
                    continue; // the queue keeps (bounded) until the database is back
                }
            };
            reachable = true;
            *lock(&self.db) = Some(db.clone());
            if !self.flush(&db).await {
                self.forget(&mut link);
                continue;
            }
            if swept.is_none_or(|at| at.elapsed() >= SWEEP_EVERY) {
                swept = Some(Instant::now());
                let sweep = db.sweep(self.ttl_ms, SWEEP_LIMIT);
                match tokio::time::timeout(WRITE_TIMEOUT, sweep).await {
                    Ok(Ok(0)) => {}
                    Ok(Ok(n)) => tracing::debug!(rows = n, "shared affinity: expired rows deleted"),
                    Ok(Err(e)) => tracing::debug!(error = %e, "shared affinity: sweep failed"),
                    Err(_) => self.forget(&mut link),
                }
            }
        }
    }

    /// Drops the writer's connection (a statement got no answer in time) and stops lookups
    /// using it: the next tick opens a new one.
    fn forget(&self, link: &mut Redialer<Arc<AffinityDb>>) {
        link.forget();
        *lock(&self.db) = None;
    }

    /// Flushes what is queued now, on the connection the writer made (a planned shutdown).
    pub async fn flush_now(&self) {
        if let Some(db) = self.current() {
            self.flush(&db).await;
        }
    }

    /// Writes what was queued, each key once (its last account), in batches of [`BATCH`].
    /// On a failure the rest is dropped (counted); `false` then (the writer replaces the
    /// connection).
    async fn flush(&self, db: &Arc<AffinityDb>) -> bool {
        let queued = std::mem::take(&mut *lock(&self.queue));
        let rows = self.rows(queued);
        for (i, batch) in rows.chunks(BATCH).enumerate() {
            let error = match tokio::time::timeout(WRITE_TIMEOUT, db.upsert(batch)).await {
                Ok(Ok(n)) => {
                    WRITTEN.fetch_add(n, Ordering::Relaxed);
                    continue;
                }
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("no answer within {WRITE_TIMEOUT:?}"),
            };
            let lost = rows.len() - i * BATCH;
            DROPPED[1].fetch_add(lost as u64, Ordering::Relaxed);
            tracing::debug!(%error, rows = lost, "shared affinity: a flush failed; its rows are dropped");
            return false;
        }
        true
    }

    /// The rows a queue becomes: keys hashed, each once with its last account, in the order
    /// of their last record.
    fn rows(&self, queued: VecDeque<(String, String)>) -> Vec<(KeyHash, String)> {
        let mut last: HashMap<KeyHash, usize> = HashMap::with_capacity(queued.len());
        let mut rows: Vec<Option<(KeyHash, String)>> = Vec::with_capacity(queued.len());
        for (key, account) in queued {
            let hash = self.hash(&key);
            if let Some(i) = last.insert(hash, rows.len()) {
                rows[i] = None;
            }
            rows.push(Some((hash, account)));
        }
        rows.into_iter().flatten().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Arc<SharedAffinity> {
        let secret = ClusterSecret::new(b"0123456789abcdef0123456789abcdef".to_vec()).unwrap();
        SharedAffinity::new(secret, 1_000)
    }

    #[test]
    fn keys_are_hashed_under_the_secret_and_never_kept_raw() {
        let t = table();
        let other = SharedAffinity::new(
            ClusterSecret::new(b"fedcba9876543210fedcba9876543210".to_vec()).unwrap(),
            1_000,
        );
        let h = t.hash("cache:thread-1");
        assert_eq!(h, t.hash("cache:thread-1"), "the same on every node");
        assert_ne!(h, t.hash("cache:thread-2"));
        assert_ne!(h, other.hash("cache:thread-1"), "keyed by the secret");
        let raw = b"cache:thread-1";
        assert!(!h.windows(raw.len()).any(|w| w == raw));
    }

    #[test]
    fn a_flush_writes_each_key_once_with_its_last_account() {
        let t = table();
        t.recorded("k1", "a");
        t.recorded("k2", "b");
        t.recorded("k1", "c");
        let queued = std::mem::take(&mut *lock(&t.queue));
        let rows = t.rows(queued);
        assert_eq!(
            rows,
            vec![
                (t.hash("k2"), "b".to_owned()),
                (t.hash("k1"), "c".to_owned())
            ]
        );
    }

    #[tokio::test]
    async fn without_a_connection_a_lookup_fails_at_once_and_is_counted() {
        let t = table();
        let view = ClusterView::new("n1".into(), "http://127.0.0.1:1".into(), 10_000, 2_000);
        let before = LOOKUPS[3].load(Ordering::Relaxed);
        let started = Instant::now();
        assert_eq!(t.recall(&view, "cache:thread-1").await, Recall::Failed);
        assert!(started.elapsed() < LOOKUP_TIMEOUT);
        assert!(LOOKUPS[3].load(Ordering::Relaxed) > before);
    }

    #[test]
    fn the_queue_is_bounded_dropping_the_oldest_and_counting_it() {
        let t = table();
        let before = DROPPED[0].load(Ordering::Relaxed);
        for i in 0..QUEUE_CAPACITY + 3 {
            t.recorded(&format!("k{i}"), "a");
        }
        let q = lock(&t.queue);
        assert_eq!(q.len(), QUEUE_CAPACITY);
        assert_eq!(q.front().map(|(k, _)| k.as_str()), Some("k3"));
        assert!(DROPPED[0].load(Ordering::Relaxed) >= before + 3);
    }
}
