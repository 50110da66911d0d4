//! `[server]`: where the daemon listens and how it behaves behind a reverse proxy and during
//! shutdown.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::time::Duration;

/// The HTTP listener and its manners.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to bind. Loopback by default: exposing the pool needs a client key (see
    /// `Config::validate_bind`).
    pub listen: SocketAddr,
    /// Prefix every route is mounted under (e.g. `/codex` when nginx forwards
    /// `location /codex/`). Empty = mounted at `/`. Must start with `/` and not end with one.
    pub path_prefix: String,
    /// Believe `X-Forwarded-For` / `X-Forwarded-Proto` / `Forwarded` for the client address and
    /// scheme. Only turn on behind a reverse proxy that overwrites them.
    pub trust_forwarded_headers: bool,
    /// On SIGTERM/SIGINT, how long in-flight requests and streams may keep running before they
    /// are ended with a terminal error event. The systemd unit's `TimeoutStopSec` must exceed it.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// Interval of SSE comment heartbeats sent while upstream is silent (long reasoning), so
    /// reverse proxies and clients do not time the stream out.
    #[serde(with = "humantime_serde")]
    pub sse_heartbeat: Duration,
    /// Largest accepted request body in bytes (requests with big contexts and images are large).
    pub max_body_bytes: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            path_prefix: String::new(),
            trust_forwarded_headers: false,
            shutdown_grace: Duration::from_secs(30),
            sse_heartbeat: Duration::from_secs(15),
            max_body_bytes: 32 * 1024 * 1024,
        }
    }
}
