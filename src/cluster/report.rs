//! What a node tells an operator about the cluster (`GET /admin/cluster`, the dashboard's
//! Nodes panel): itself — id, session epoch, lease standing, time left before it would
//! self-fence, advertised URL, what it publishes — the live peers as the store last listed
//! them, and the owner of every owned account. Read from the [`ClusterView`] alone, so it
//! costs no store round trip and shows exactly what this node acts on.

use super::view::{ClusterView, Peer};
use rotor_actors::ownership::session::Standing;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The report of a clustered node (a single node answers `{"enabled": false}` instead).
pub fn report(view: &ClusterView) -> Value {
    let now = view.now();
    let s = view.read();
    let owners: BTreeMap<&str, &str> = s
        .owners
        .iter()
        .map(|(account, node)| (account.as_str(), node.as_str()))
        .collect();
    let owned_by = |node: &str| owners.values().filter(|n| **n == node).count();
    let peers: Vec<Value> = s.peers.iter().map(|p| peer(p, owned_by(&p.id))).collect();
    json!({
        "enabled": true,
        "node": {
            "id": view.node_id(),
            "advertise": view.advertise(),
            "epoch": s.lease.epoch(),
            "standing": standing(s.lease.standing(now)),
            "deadline_left_ms": s.lease.deadline_left(now),
            "owned": owned_by(view.node_id()),
            "summary": s.local,
        },
        "peers": peers,
        "owners": owners,
    })
}

/// One live peer: what the store listed, and how many accounts it owns in the listing.
fn peer(p: &Peer, owned: usize) -> Value {
    json!({
        "id": p.id,
        "epoch": p.epoch,
        "advertise": p.advertise,
        "standing": "live",
        "owned": owned,
        "summary": p.summary,
    })
}

/// The lease standing as the admin API spells it.
pub fn standing(s: Standing) -> &'static str {
    match s {
        Standing::Unacquired => "unacquired",
        Standing::Held => "held",
        Standing::Fenced => "fenced",
    }
}
