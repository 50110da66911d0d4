//! `[cluster]`: several nodes sharing one pool through the PostgreSQL store (docs/cluster.md).
//! Off by default; a single node needs none of it.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// The environment variable the cluster secret (the HMAC key of forwarded requests) is read
/// from unless `secret_env`/`secret_file` say else.
pub const DEFAULT_SECRET_ENV: &str = "CODEX_ROTOR_CLUSTER_SECRET";

/// The `[cluster]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// Join the cluster (needs `[store] backend = "postgres"`).
    pub enabled: bool,
    /// This node's id: unique in the cluster and stable across restarts (default: the host
    /// name).
    pub node_id: Option<String>,
    /// The base URL other nodes reach this node's client listener at
    /// (`http://10.0.0.5:8080`); requests forwarded to this node arrive there.
    pub advertise: Option<String>,
    /// The session lease: a node that has not renewed for this long loses its accounts.
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
    /// How long before its lease would lapse a node stops acting as an owner (self-fencing).
    #[serde(with = "humantime_serde")]
    pub margin: Duration,
    /// How often a node looks for accounts to claim or hand over.
    #[serde(with = "humantime_serde")]
    pub claim_every: Duration,
    /// Environment variable holding the secret that signs forwarded requests (every node the
    /// same).
    pub secret_env: String,
    /// File holding that secret instead; wins over `secret_env`.
    pub secret_file: Option<PathBuf>,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            enabled: false,
            node_id: None,
            advertise: None,
            ttl: Duration::from_secs(10),
            margin: Duration::from_secs(1),
            claim_every: Duration::from_secs(1),
            secret_env: DEFAULT_SECRET_ENV.to_owned(),
            secret_file: None,
        }
    }
}
