//! What a node needs, besides its view, to send requests to its peers and to trust the ones
//! they send: the cluster secret that signs and checks the forwarded header
//! ([`super::forward`]), and an HTTP client for peer traffic — separate from the upstream
//! session, whose proxy, cookies and identity headers are for the Codex backend, not for a
//! node on the LAN.

use std::time::Duration;

use super::forward::ClusterSecret;
use crate::config::ClusterConfig;
use crate::config::access::EnvLookup;

/// How long connecting to a peer may take: a peer on the same network answers at once, and a
/// dead one must not hold a request that could be served locally.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A node's link to the others (one per daemon in cluster mode; none for a single node).
#[derive(Clone, Debug)]
pub struct Link {
    /// Signs outgoing and checks incoming forwarded requests.
    pub secret: ClusterSecret,
    /// Requests to peers (no proxy: peers are reached directly at their advertised address).
    pub client: reqwest::Client,
}

impl Link {
    /// The link `[cluster]` configures: its secret read from `secret_file` or `secret_env`.
    /// The error names where the secret was looked for, never the secret.
    pub fn from_config(cfg: &ClusterConfig, env: EnvLookup<'_>) -> Result<Self, String> {
        let secret = ClusterSecret::load(cfg, env)?;
        Self::new(secret).map_err(|e| format!("building the HTTP client for peers: {e}"))
    }

    /// A link signing with `secret`.
    pub fn new(secret: ClusterSecret) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .build()?;
        Ok(Link { secret, client })
    }
}
