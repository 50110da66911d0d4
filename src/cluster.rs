//! Cluster mode (docs/cluster.md): several daemons share one pool through the PostgreSQL
//! store. Each node holds a session lease, owns the accounts rendezvous hashing gives it among
//! the live nodes, runs actors only for those, refreshes only under a fenced intent, and
//! forwards a request whose affinity lives on another node to that node.
//!
//! [`view`] is what the rest of the daemon reads: the node's standing, the live peers and who
//! owns which account. The loops that keep it current write it; handlers only read it.
//! [`forward`] signs and checks the header of a request one node forwards to another,
//! [`link`] is what a node needs to do so, [`summary`] what it publishes about itself and
//! [`traffic`] counts what crossed nodes.
//! [`report`] is how it reads to an operator (admin API, dashboard). [`affinity`] shares the
//! conversations' accounts between the nodes, so a turn another node served is found here.

pub mod affinity;
pub mod counters;
pub mod envelope;
pub mod fence;
pub mod forward;
pub mod link;
pub mod node;
pub mod plan;
pub mod report;
pub mod summary;
pub mod traffic;
pub mod view;

pub use fence::PgFence;
pub use link::Link;
pub use node::{Node, NodeParts, Timing};
pub use view::{ClusterView, FirstPass, Peer, Placement, Summary};
