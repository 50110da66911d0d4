//! What this node knows about the cluster, shared by the lease loop (which writes it) and the
//! handlers, the refresh fence and the admin API (which read it): the session lease on the
//! node's monotonic clock, the other live nodes with what they published, and the owner of
//! every account as the store last listed it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use rotor_actors::ownership::session::{SessionLease, Standing};
use rotor_actors::ownership::{Ms, NodeId};
use serde::{Deserialize, Serialize};

/// What a node publishes about itself with each renewal, so peers can spill to it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Accounts it owns.
    pub owned: u32,
    /// Of those, accounts that can serve a request now.
    pub serving: u32,
    /// Unix ms of the soonest reset among its accounts that cannot serve.
    pub soonest_reset: Option<i64>,
}

/// Another live node, as the store last listed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    /// Its node id.
    pub id: NodeId,
    /// Its session epoch.
    pub epoch: u64,
    /// The base URL its client listener is reached at.
    pub advertise: String,
    /// What it published with its last renewal.
    pub summary: Summary,
}

/// Who owns an account, as far as this node knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// This node, in its current session.
    Local,
    /// A live peer.
    Peer(Peer),
    /// Nobody live (unowned, its owner lapsed, or unknown to the last listing).
    Nobody,
}

/// Where the first claim pass of the node's current session stands (readiness).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstPass {
    /// A claim pass completed in this session: the node runs what it should own.
    Done,
    /// Not yet, and the session is younger than a TTL: not ready.
    Waiting,
    /// Not within a TTL of acquiring: the passes keep failing, and readiness stops waiting
    /// (the node forwards what it cannot serve); the ms since the session was acquired.
    Overdue(Ms),
}

/// The node's cluster state.
#[derive(Debug)]
pub struct ClusterView {
    node_id: NodeId,
    advertise: String,
    /// The session lease asked of the store, ms (how long readiness waits for a claim pass).
    ttl: Ms,
    origin: Instant,
    state: RwLock<State>,
    /// Set once the node shuts down (planned release): it admits nothing more.
    leaving: AtomicBool,
}

/// What changes while the node runs.
#[derive(Debug)]
pub struct State {
    /// The node's session lease, on [`ClusterView::now`].
    pub lease: SessionLease,
    /// The other live nodes.
    pub peers: Vec<Peer>,
    /// The owning node of every account whose owner is live.
    pub owners: HashMap<String, NodeId>,
    /// What this node publishes with its next renewal.
    pub local: Summary,
    /// How many accounts the store held at the last listing (`None` before the first).
    pub listed: Option<usize>,
    /// When the current session was acquired, on [`ClusterView::now`].
    pub acquired_at: Option<Ms>,
    /// The session epoch in which a claim pass last completed.
    pub claimed_in: Option<u64>,
}

impl ClusterView {
    /// A node that holds no session yet.
    pub fn new(node_id: NodeId, advertise: String, ttl: Ms, margin: Ms) -> Arc<Self> {
        Arc::new(ClusterView {
            node_id,
            advertise,
            ttl,
            origin: Instant::now(),
            state: RwLock::new(State {
                lease: SessionLease::new(ttl, margin),
                peers: Vec::new(),
                owners: HashMap::new(),
                local: Summary::default(),
                listed: None,
                acquired_at: None,
                claimed_in: None,
            }),
            leaving: AtomicBool::new(false),
        })
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// The base URL peers reach this node at.
    pub fn advertise(&self) -> &str {
        &self.advertise
    }

    /// The node's monotonic clock, in ms since the view was made (the lease's clock).
    pub fn now(&self) -> Ms {
        self.origin.elapsed().as_millis() as Ms
    }

    /// Reads the state.
    pub fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes the state (the lease loop).
    pub fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Where the node stands now: serving and refreshing only while [`Standing::Held`].
    pub fn standing(&self) -> Standing {
        self.read().lease.standing(self.now())
    }

    /// The node shuts down: it admits no new request from now on.
    pub fn set_leaving(&self) {
        self.leaving.store(true, Ordering::Relaxed);
    }

    /// True once the node shuts down.
    pub fn leaving(&self) -> bool {
        self.leaving.load(Ordering::Relaxed)
    }

    /// Why the node admits no new request now, or `None` while it does (Held, not leaving).
    pub fn refusal(&self) -> Option<&'static str> {
        if self.leaving() {
            return Some("this node is shutting down");
        }
        match self.standing() {
            Standing::Held => None,
            Standing::Unacquired => {
                Some("this node holds no cluster session (starting, or its session was lost)")
            }
            Standing::Fenced => Some(
                "this node could not renew its cluster session in time (the database is \
                 unreachable) and serves nothing until it does",
            ),
        }
    }

    /// Where the current session's first claim pass stands (`/readyz` waits for it, at most a
    /// TTL after the session was acquired).
    pub fn first_pass(&self) -> FirstPass {
        let now = self.now();
        let s = self.read();
        match s.lease.epoch() {
            Some(e) if s.claimed_in == Some(e) => FirstPass::Done,
            _ => match s.acquired_at {
                Some(at) if now - at >= self.ttl => FirstPass::Overdue(now - at),
                _ => FirstPass::Waiting,
            },
        }
    }

    /// The session epoch, once acquired.
    pub fn epoch(&self) -> Option<u64> {
        self.read().lease.epoch()
    }

    /// True if a refresh whose whole window is `window` ms ends before the local deadline.
    pub fn may_refresh(&self, window: Ms) -> bool {
        self.read().lease.may_refresh(self.now(), window)
    }

    /// Who owns `account`.
    pub fn placement(&self, account: &str) -> Placement {
        let s = self.read();
        match s.owners.get(account) {
            Some(n) if *n == self.node_id => Placement::Local,
            Some(n) => s
                .peers
                .iter()
                .find(|p| p.id == *n)
                .cloned()
                .map_or(Placement::Nobody, Placement::Peer),
            None => Placement::Nobody,
        }
    }

    /// Why this node's pool has no account to serve from, for the 503 a client reads: in a
    /// cluster, an empty pool means this node owns none right now, not that none exist.
    pub fn owns_none(&self) -> String {
        let s = self.read();
        let Some(listed) = s.listed else {
            return "this node owns no account yet: it has not listed the cluster's accounts \
                    (it is starting, or cannot reach the database)"
                .into();
        };
        if listed == 0 {
            return "the cluster has no accounts; import some through any node \
                    (codex-rotor accounts import)"
                .into();
        }
        let by_peers = s.owners.values().filter(|n| **n != self.node_id).count();
        match (by_peers, s.peers.len()) {
            (0, _) => format!(
                "this node owns no account right now: none of the cluster's {listed} accounts \
                 is claimed yet (this node or a peer claims them on its next round)"
            ),
            (k, p) => format!(
                "this node owns no account right now: {k} of the cluster's {listed} accounts \
                 belong to {p} live peer node{} and none of those could take the request{}",
                if p == 1 { "" } else { "s" },
                if k < listed {
                    format!(" ({} not claimed yet)", listed - k)
                } else {
                    String::new()
                }
            ),
        }
    }

    /// The other live nodes.
    pub fn peers(&self) -> Vec<Peer> {
        self.read().peers.clone()
    }
}
