//! `[pool]` and `[refresh]`: how accounts are chosen and how their tokens are kept fresh. Both
//! feed `rotor_actors::PoolConfig` through `Config::pool_config`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// The rotation strategy is the pool's own type (serde names `least_used`, `round_robin`,
/// `sticky`), so config, admin API and pool agree on one spelling.
pub use rotor_actors::Strategy;

/// Rotation and the account actors' rhythm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PoolSection {
    /// Rotation strategy; reloadable with SIGHUP and settable at runtime from the admin API.
    pub strategy: Strategy,
    /// Concurrent requests one account may serve (upstream dislikes many parallel streams).
    pub max_leases_per_account: u32,
    /// Period of each account's `Tick` (reset expired buckets, flush state, schedule probes).
    #[serde(with = "humantime_serde")]
    pub tick: Duration,
    /// Lock length after a 429 that names no reset time (docs/quota.md rule 2).
    #[serde(with = "humantime_serde")]
    pub default_429_backoff: Duration,
    /// Restarts per hour of one crashed account actor tolerated (with backoff) before it
    /// stays down.
    pub restart_budget: u32,
    /// Model prefix → plans allowed to serve it, e.g. `"gpt-5.5-pro" = ["pro"]`. Models
    /// matching no prefix may use any plan.
    pub plan_routes: BTreeMap<String, Vec<String>>,
}

impl Default for PoolSection {
    fn default() -> Self {
        PoolSection {
            strategy: Strategy::LeastUsed,
            max_leases_per_account: 3,
            tick: Duration::from_secs(5),
            default_429_backoff: rotor_actors::quota::DEFAULT_429_BACKOFF,
            restart_budget: 5,
            plan_routes: BTreeMap::new(),
        }
    }
}

/// Token refresh (issue 6): refresh tokens are single-use, so pace and bound refreshes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RefreshConfig {
    /// Refresh access tokens proactively before they expire. When off, only an upstream 401
    /// triggers a refresh (for operators who refresh tokens elsewhere).
    pub enabled: bool,
    /// Refresh this long before the access token expires.
    #[serde(with = "humantime_serde")]
    pub margin: Duration,
    /// Uniform ± spread around each refresh time so accounts added together do not refresh
    /// together.
    #[serde(with = "humantime_serde")]
    pub jitter: Duration,
    /// Refreshes running at once, pool-wide (many at once can revoke a family of accounts).
    pub max_concurrent: usize,
    /// Refreshes started per minute, pool-wide.
    pub max_per_minute: u32,
    /// OAuth client id of Codex CLI, used for refresh and for adding accounts by PKCE login.
    pub client_id: String,
    /// OAuth authorize endpoint for adding accounts from the dashboard (PKCE).
    pub authorize_url: String,
}

impl Default for RefreshConfig {
    fn default() -> Self {
        RefreshConfig {
            enabled: true,
            margin: Duration::from_secs(5 * 60),
            jitter: Duration::from_secs(60),
            max_concurrent: 4,
            max_per_minute: 30,
            client_id: "app_EMoamEEZ73f0CkXaXp7hrann".into(),
            authorize_url: "https://auth.openai.com/oauth/authorize".into(),
        }
    }
}
