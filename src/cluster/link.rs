//! What a node needs to send requests to its peers and to trust the ones they send: the
//! shared view (who owns what, who is live, what they published), the cluster secret that
//! signs and checks the forwarded header ([`super::forward`]), and an HTTP client for peer
//! traffic — separate from the upstream session, whose proxy, cookies and identity headers are
//! for the Codex backend, not for a node on the LAN.

use std::sync::Arc;
use std::time::Duration;

use super::forward::ClusterSecret;
use super::view::ClusterView;

/// How long connecting to a peer may take: a peer on the same network answers at once, and a
/// dead one must not hold a request that could be served locally.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A node's link to the others (one per daemon in cluster mode; none for a single node).
#[derive(Clone, Debug)]
pub struct Link {
    /// The node's view, written by the lease loop.
    pub view: Arc<ClusterView>,
    /// Signs outgoing and checks incoming forwarded requests.
    pub secret: ClusterSecret,
    /// Requests to peers (no proxy: peers are reached directly at their advertised address).
    pub client: reqwest::Client,
}

impl Link {
    /// A link for `view` signing with `secret`.
    pub fn new(view: Arc<ClusterView>, secret: ClusterSecret) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .build()?;
        Ok(Link {
            view,
            secret,
            client,
        })
    }
}
