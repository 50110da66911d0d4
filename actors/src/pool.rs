//! The pool: a [`PoolHandle`] in front of the `PoolSupervisor`, which spawns one account actor
//! per account, restarts failed ones from their last durable state, keeps the availability view
//! and answers picks. Every call the handle makes across actors is time-bounded.

mod lease;
mod report;

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use lease::{Lease, UpstreamFailure, UsageDelta};
pub use report::{AccountView, Explanation, PoolSummary};

use crate::{AccountId, AccountRecord, Effects, UnixMs};

/// How the next account is chosen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Fewest leases, then fewest requests, then least recently used.
    #[default]
    LeastUsed,
    /// Each account in turn.
    RoundRobin,
    /// Keep using the most recently used account until it cannot serve.
    Sticky,
}

/// Knobs of the pool (built from the daemon's config).
#[derive(Debug, Clone, PartialEq)]
pub struct PoolConfig {
    /// Rotation strategy at start (switchable at runtime).
    pub strategy: Strategy,
    /// Concurrent leases one account grants.
    pub max_leases_per_account: u32,
    /// Period of each account's `Tick` (quota resets, coalesced flushes, probes).
    pub tick: Duration,
    /// Lock length of a 429 that names no reset.
    pub default_429_backoff: Duration,
    /// Refresh this long before the access token expires.
    pub refresh_margin: Duration,
    /// Uniform ± jitter on the refresh time, so accounts do not refresh together.
    pub refresh_jitter: Duration,
    /// Pool-wide cap on refreshes in flight.
    pub max_concurrent_refreshes: usize,
    /// Pool-wide cap on refreshes started per minute.
    pub max_refreshes_per_minute: u32,
    /// Restarts a failed account actor gets per hour before it is left stopped.
    pub restart_budget: u32,
    /// Plan routing: model prefix → plans allowed to serve it.
    pub plan_routes: Vec<(String, Vec<String>)>,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            strategy: Strategy::LeastUsed,
            max_leases_per_account: 3,
            tick: Duration::from_secs(5),
            default_429_backoff: Duration::from_secs(60),
            refresh_margin: Duration::from_secs(300),
            refresh_jitter: Duration::from_secs(60),
            max_concurrent_refreshes: 4,
            max_refreshes_per_minute: 30,
            restart_budget: 5,
            plan_routes: Vec::new(),
        }
    }
}

/// What a request asks of the pool.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PickRequest {
    /// Upstream model (decides the extra limit and plan routing).
    pub model: String,
    /// Conversation key; the account that served it before is preferred.
    pub affinity: Option<String>,
    /// Accounts already tried for this request.
    pub exclude: Vec<AccountId>,
    /// A code-review request (consults the code-review bucket).
    pub review: bool,
}

/// Why no lease was granted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PickError {
    /// Every usable account is exhausted (answer 429 with `resets_at`).
    #[error("all accounts exhausted")]
    Exhausted {
        /// Soonest reset in the pool.
        soonest_reset: Option<UnixMs>,
    },
    /// No account can serve for another reason (answer 503).
    #[error("no account available: {reason}")]
    Unavailable {
        /// Why.
        reason: String,
    },
    /// The pool did not answer in time.
    #[error("pool did not answer in time")]
    Timeout,
}

/// Errors of pool administration.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PoolError {
    /// No such account.
    #[error("no account {0}")]
    NotFound(AccountId),
    /// An actor did not answer in time.
    #[error("the pool did not answer in time")]
    Timeout,
    /// The pool is stopped.
    #[error("the pool is stopped")]
    Stopped,
    /// Persisting failed.
    #[error("store error: {0}")]
    Store(String),
    /// The request is invalid (e.g. a malformed id).
    #[error("invalid: {0}")]
    Invalid(String),
    /// Spawning an actor failed.
    #[error("spawn failed: {0}")]
    Spawn(String),
}

/// Result of adding an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome", content = "id")]
pub enum AddOutcome {
    /// A new account was added.
    Added(AccountId),
    /// An existing account (same workspace + user) got the new tokens.
    Updated(AccountId),
}

/// Cloneable handle to a running pool.
#[derive(Clone)]
pub struct PoolHandle {}

impl PoolHandle {
    /// Starts the pool with the given records (one actor each).
    pub async fn start(
        cfg: PoolConfig,
        effects: Effects,
        records: Vec<AccountRecord>,
    ) -> Result<PoolHandle, PoolError> {
        let _ = (cfg, effects, records);
        Ok(PoolHandle {})
    }

    /// Picks an account and leases it (time-bounded).
    pub async fn pick(&self, req: PickRequest) -> Result<Lease, PickError> {
        let _ = req;
        Err(PickError::Unavailable {
            reason: "not implemented".into(),
        })
    }

    /// Pool summary (rule 6).
    pub async fn summary(&self) -> PoolSummary {
        PoolSummary::default()
    }

    /// Every account's view.
    pub async fn accounts(&self) -> Vec<AccountView> {
        Vec::new()
    }

    /// One account's view.
    pub async fn account(&self, id: &str) -> Option<AccountView> {
        let _ = id;
        None
    }

    /// Why an account is or is not available.
    pub async fn explain(&self, id: &str) -> Option<Explanation> {
        let _ = id;
        None
    }

    /// Adds an account, deduplicated by (workspace id, user id); never re-activates banned or
    /// disabled accounts.
    pub async fn add(&self, rec: AccountRecord) -> Result<AddOutcome, PoolError> {
        Ok(AddOutcome::Added(rec.id))
    }

    /// Enables or disables an account.
    pub async fn set_enabled(&self, id: &str, enabled: bool) -> Result<(), PoolError> {
        let _ = enabled;
        Err(PoolError::NotFound(id.to_string()))
    }

    /// Removes an account and its file.
    pub async fn remove(&self, id: &str) -> Result<(), PoolError> {
        Err(PoolError::NotFound(id.to_string()))
    }

    /// Switches the rotation strategy at runtime.
    pub async fn set_strategy(&self, s: Strategy) {
        let _ = s;
    }

    /// Asks an account to probe its usage now.
    pub async fn probe(&self, id: &str) -> Result<(), PoolError> {
        Err(PoolError::NotFound(id.to_string()))
    }

    /// Every record, with tokens: only for CLI/admin export.
    pub async fn export(&self) -> Vec<AccountRecord> {
        Vec::new()
    }

    /// Stops every actor; each flushes its file.
    pub async fn shutdown(&self) {}
}
