//! The state every handler shares: the pool handle, the current configuration (swapped on
//! SIGHUP), client keys, metrics, the recent-requests ring, the upstream session, the clock,
//! the account files quarantined at start, the link to the other nodes in cluster mode, and
//! the drain signal that tells open streams the
//! shutdown grace is over. Cheap to clone (one `Arc`).

use crate::cluster::affinity::SharedAffinity;
use crate::cluster::{ClusterView, Link};
use crate::config::Config;
use crate::keys::KeyStore;
use crate::metrics::Metrics;
use crate::recent::RecentRequests;
use crate::store::Quarantined;
use crate::store::postgres::records::PgStore;
use crate::upstream::Upstream;
use minted::MintedReasoning;
use pseudonyms::Pseudonyms;
use rotor_actors::{Clock, PoolHandle, UnixMs};
use std::sync::{Arc, RwLock};
use tokio::sync::watch;
use turns::TurnStates;

mod bounded;
pub mod minted;
pub mod pseudonyms;
pub mod turns;

/// Shared application state (see the module docs).
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    /// The account pool; the only way to reach an account.
    pool: PoolHandle,
    /// Current configuration; replaced as a whole on reload so a request sees one version.
    config: RwLock<Arc<Config>>,
    /// Client keys (reloadable through their own interior state).
    keys: KeyStore,
    /// Prometheus counters and histograms.
    metrics: Metrics,
    /// The last requests, for the admin API and dashboard.
    recent: RecentRequests,
    /// The shared upstream session.
    upstream: Upstream,
    /// Time source shared with the actors.
    clock: Arc<dyn Clock>,
    /// When the daemon started (unix ms).
    started_at: UnixMs,
    /// Set to `true` when open streams must end now (shutdown grace is over).
    drain: watch::Sender<bool>,
    /// `x-codex-turn-state` token → affinity key and minting account (sticky turns).
    turns: TurnStates,
    /// Which account minted which encrypted reasoning (shared with the streams that learn it).
    minted: Arc<MintedReasoning>,
    /// The client ids' stand-ins computed before, per account.
    pseudonyms: Pseudonyms,
    /// Account files that could not be loaded at start and were moved aside, so the admin
    /// API, the dashboard and `/readyz` can say so instead of only one log line.
    quarantined: Vec<Quarantined>,
    /// This node's view of the cluster; `None` on a single node (`[cluster] enabled = false`).
    cluster: Option<Arc<ClusterView>>,
    /// What forwarding between nodes needs besides the view (the secret, the peer client);
    /// set exactly when `cluster` is. A single node never forwards and accepts no forwarded
    /// request.
    link: Option<Link>,
    /// The shared database a cluster node's accounts live in, where the admin API adds
    /// accounts (`None` on a single node, and for a node whose view a test keeps).
    shared: Option<Arc<PgStore>>,
    /// The shared affinity table (a cluster node on PostgreSQL); `None` otherwise.
    affinity: Option<Arc<SharedAffinity>>,
}

/// Everything [`AppState::new`] needs.
pub struct Parts {
    /// The started pool.
    pub pool: PoolHandle,
    /// The loaded, validated configuration.
    pub config: Config,
    /// Client keys built from `config.keys`.
    pub keys: KeyStore,
    /// Metrics registry.
    pub metrics: Metrics,
    /// Recent-requests ring.
    pub recent: RecentRequests,
    /// Upstream session built from `config.upstream`.
    pub upstream: Upstream,
    /// Clock shared with the actors.
    pub clock: Arc<dyn Clock>,
    /// Account files `FileStore::open` quarantined (empty when not opened from a data dir).
    pub quarantined: Vec<Quarantined>,
    /// The cluster view the lease loop keeps current; `None` on a single node.
    pub cluster: Option<Arc<ClusterView>>,
    /// The link to the other nodes, with `cluster`.
    pub link: Option<Link>,
    /// The shared database of a cluster node's accounts (with the node's loops).
    pub shared: Option<Arc<PgStore>>,
    /// The shared affinity table, when the node runs one (its loops on PostgreSQL).
    pub affinity: Option<Arc<SharedAffinity>>,
}

impl AppState {
    /// Assembles the state.
    pub fn new(p: Parts) -> Self {
        let started_at = p.clock.now_ms();
        let (drain, _) = watch::channel(false);
        let inner = Inner {
            pool: p.pool,
            config: RwLock::new(Arc::new(p.config)),
            keys: p.keys,
            metrics: p.metrics,
            recent: p.recent,
            upstream: p.upstream,
            clock: p.clock,
            started_at,
            drain,
            turns: TurnStates::new(),
            minted: Arc::new(MintedReasoning::new()),
            pseudonyms: Pseudonyms::new(),
            quarantined: p.quarantined,
            cluster: p.cluster,
            link: p.link,
            shared: p.shared,
            affinity: p.affinity,
        };
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The account pool.
    pub fn pool(&self) -> &PoolHandle {
        &self.inner.pool
    }

    /// The current configuration.
    pub fn config(&self) -> Arc<Config> {
        match self.inner.config.read() {
            Ok(c) => Arc::clone(&c),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Replaces the configuration (SIGHUP); requests already running keep the old one.
    pub fn set_config(&self, cfg: Config) {
        let new = Arc::new(cfg);
        match self.inner.config.write() {
            Ok(mut c) => *c = new,
            Err(poisoned) => *poisoned.into_inner() = new,
        }
    }

    /// Client keys.
    pub fn keys(&self) -> &KeyStore {
        &self.inner.keys
    }

    /// Metrics registry.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Recent requests.
    pub fn recent(&self) -> &RecentRequests {
        &self.inner.recent
    }

    /// The upstream session.
    pub fn upstream(&self) -> &Upstream {
        &self.inner.upstream
    }

    /// When the daemon started (unix ms).
    pub fn started_at(&self) -> UnixMs {
        self.inner.started_at
    }

    /// Now, from the injected clock (unix ms).
    pub fn now_ms(&self) -> UnixMs {
        self.inner.clock.now_ms()
    }

    /// Turn-state routing memory.
    pub fn turns(&self) -> &TurnStates {
        &self.inner.turns
    }

    /// Which account minted which encrypted reasoning.
    pub fn minted(&self) -> &Arc<MintedReasoning> {
        &self.inner.minted
    }

    /// The client ids' stand-ins computed before ([`crate::upstream::pseudonym::Memory`]).
    pub fn pseudonyms(&self) -> &Pseudonyms {
        &self.inner.pseudonyms
    }

    /// Account files quarantined when the data directory was opened.
    pub fn quarantined(&self) -> &[Quarantined] {
        &self.inner.quarantined
    }

    /// This node's view of the cluster, when clustered (read it; the lease loop writes it).
    pub fn cluster(&self) -> Option<&Arc<ClusterView>> {
        self.inner.cluster.as_ref()
    }

    /// Where the admin API adds an account: the pool, or on a cluster node the shared
    /// database (the owner, whichever node that is, reloads it).
    pub fn add_target(&self) -> crate::accounts::Target<'_> {
        match &self.inner.shared {
            Some(store) => crate::accounts::Target::Shared(store),
            None => crate::accounts::Target::Pool(&self.inner.pool),
        }
    }

    /// The shared database of a cluster node's accounts; `None` on a single node.
    pub fn shared_store(&self) -> Option<&PgStore> {
        self.inner.shared.as_deref()
    }

    /// This node's view and its link to the other nodes, when clustered: what forwarding needs.
    pub fn node(&self) -> Option<(&Arc<ClusterView>, &Link)> {
        self.inner.cluster.as_ref().zip(self.inner.link.as_ref())
    }

    /// The shared affinity table, when this node runs one (cluster mode on PostgreSQL).
    pub fn shared_affinity(&self) -> Option<&Arc<SharedAffinity>> {
        self.inner.affinity.as_ref()
    }

    /// Why a cluster node admits no new request now (not Held, or shutting down); `None` for
    /// a single node and a Held one.
    pub fn cluster_refusal(&self) -> Option<&'static str> {
        self.inner.cluster.as_ref()?.refusal()
    }

    /// A receiver that turns `true` when open streams must end (shutdown grace over).
    pub fn drain(&self) -> watch::Receiver<bool> {
        self.inner.drain.subscribe()
    }

    /// Tells every open stream to end now with a terminal event.
    pub fn end_streams(&self) {
        self.inner.drain.send_replace(true);
    }
}
