//! The pool: a [`PoolHandle`] in front of the `PoolSupervisor`, which spawns one account actor
//! per account, restarts failed ones from their last durable state, keeps the availability view
//! and answers picks. Every call the handle makes across actors is time-bounded.

mod affinity;
mod board;
mod members;
mod report;
pub mod restart;
mod supervisor;
mod ticker;

use std::sync::Arc;
use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::{Actor, RpcReplyPort};
use serde::{Deserialize, Serialize};

pub use crate::rotation::Strategy;
pub use affinity::TTL_MS as AFFINITY_TTL_MS;
pub use report::PoolSummary;
pub use supervisor::summary;

use crate::account::{AccountMsg, AccountRef, AccountView, Explanation, Lease};
use crate::rotation::{NoChoice, View};
use crate::{AccountId, AccountRecord, Clock, Effects, UnixMs, quota};
use board::SharedBoard;
use supervisor::{AddStep, PoolArgs, PoolMsg, PoolRef, PoolSupervisor};

/// The pool's rotation, timing and refresh settings, built from the daemon's `[pool]` and
/// `[refresh]` config.
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
    /// Proactive token refresh (before expiry). Off when something else keeps the tokens fresh
    /// (refresh tokens are single-use: two refreshers revoke each other); a 401 still triggers
    /// the recovery refresh, since the alternative is losing the account.
    pub refresh_enabled: bool,
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
            default_429_backoff: quota::DEFAULT_429_BACKOFF,
            refresh_margin: Duration::from_secs(300),
            refresh_jitter: Duration::from_secs(60),
            refresh_enabled: true,
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

/// Told of the conversation affinity the pool records with every lease it grants for a
/// conversation key, so a cluster node can share it with the others (docs/cluster.md
/// "Requests across nodes"). Called under the availability board's lock: it must only queue.
pub trait AffinityShare: Send + Sync {
    /// `account` was just granted a lease for the conversation `key`.
    fn recorded(&self, key: &str, account: &str);
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
        /// What every account refused with, in operator words.
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
    /// An existing account (same workspace + user, or refresh token) took the import: its
    /// tokens when they were newer, its identity and label.
    Updated(AccountId),
    /// An existing account kept its own tokens: they are newer than the import's (the pool
    /// rotated them since the file was written).
    KeptNewer(AccountId),
}

/// Bound on a call to the supervisor (administration; picks do not go through it).
const SUPERVISOR_TIMEOUT: Duration = Duration::from_secs(2);
/// Bound on a `Reserve` call to one account.
const RESERVE_TIMEOUT: Duration = Duration::from_secs(1);
/// Bound on an operator call to one account.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Rounds of (pick, reserve each candidate) before giving up.
const PICK_ROUNDS: usize = 3;

/// How long a pick waits for a lease to free up when every account that could serve is at its
/// lease cap, and how often it looks again. A busy pool queues the request briefly instead of
/// answering 503 for work it can do in a moment.
const BUSY_WAIT: Duration = Duration::from_secs(5);
const BUSY_POLL: Duration = Duration::from_millis(10);

/// Cloneable handle to a running pool. Every call it makes is time-bounded.
#[derive(Clone)]
pub struct PoolHandle {
    /// The supervisor (membership, administration).
    sup: PoolRef,
    /// The availability board picks read without a supervisor hop.
    board: SharedBoard,
    /// Plan routing (model prefix → plans), fixed for the pool's life.
    routes: Arc<[(String, Vec<String>)]>,
    /// Time source.
    clock: Arc<dyn Clock>,
}

impl PoolHandle {
    /// Starts the pool with the given records (one actor each).
    pub async fn start(
        cfg: PoolConfig,
        effects: Effects,
        records: Vec<AccountRecord>,
    ) -> Result<PoolHandle, PoolError> {
        let board = SharedBoard::new(View::new(cfg.strategy));
        let routes = cfg.plan_routes.clone().into();
        let clock = effects.clock.clone();
        let args = PoolArgs {
            cfg,
            effects,
            records,
            board: board.clone(),
        };
        let (sup, _) = Actor::spawn(None, PoolSupervisor, args)
            .await
            .map_err(|e| PoolError::Spawn(e.to_string()))?;
        Ok(PoolHandle {
            sup,
            board,
            routes,
            clock,
        })
    }

    async fn ask<T: Send + 'static>(
        &self,
        f: impl FnOnce(RpcReplyPort<T>) -> PoolMsg,
    ) -> Result<T, PoolError> {
        match self.sup.call(f, Some(SUPERVISOR_TIMEOUT)).await {
            Ok(CallResult::Success(v)) => Ok(v),
            Ok(CallResult::Timeout) => Err(PoolError::Timeout),
            _ => Err(PoolError::Stopped),
        }
    }

    async fn actor(&self, id: &str) -> Result<AccountRef, PoolError> {
        let id = id.to_string();
        self.ask(|r| PoolMsg::Ref(id.clone(), r))
            .await?
            .ok_or(PoolError::NotFound(id))
    }

    /// Picks an account and leases it (time-bounded). A candidate that refuses is excluded and
    /// the next one is tried; the view may be stale, the account decides. Accounts cooling
    /// after a Cloudflare challenge serve only when the pool has nothing better
    /// ([`crate::rotation::Cooling`]).
    pub async fn pick(&self, mut req: PickRequest) -> Result<Lease, PickError> {
        let limit = quota::limit_for_model(&req.model).map(str::to_string);
        let busy_deadline = tokio::time::Instant::now() + BUSY_WAIT;
        let asked_to_exclude = req.exclude.len();
        let mut rounds = 0;
        loop {
            if rounds == PICK_ROUNDS {
                // Every candidate of every round refused (they filled up between the board's
                // hint and their own answer): that is a busy pool too, so wait for a lease to
                // free up and look again with only the request's own exclusions.
                if tokio::time::Instant::now() >= busy_deadline {
                    break;
                }
                req.exclude.truncate(asked_to_exclude);
                tokio::time::sleep(BUSY_POLL).await;
                rounds = 0;
            }
            rounds += 1;
            let now = self.clock.now_ms();
            let (cooling, cands) = match board::candidates(&self.board, &self.routes, &req, now) {
                Ok(c) => c,
                Err(_) if req.exclude.len() > asked_to_exclude => {
                    // Accounts that refused a lease in this pick are out of the view's answer;
                    // they may only have been full (two picks read the board at once). Look
                    // again with only the request's own exclusions: a full account then shows
                    // as busy and is waited for, and a pool that really is exhausted or
                    // unusable says so on the next look.
                    req.exclude.truncate(asked_to_exclude);
                    continue;
                }
                Err(NoChoice::Exhausted { soonest_reset }) => {
                    return Err(PickError::Exhausted { soonest_reset });
                }
                Err(NoChoice::Busy { reason }) => {
                    if tokio::time::Instant::now() >= busy_deadline {
                        return Err(PickError::Unavailable { reason });
                    }
                    tokio::time::sleep(BUSY_POLL).await;
                    rounds -= 1; // waiting for a free lease is not a refused round
                    continue;
                }
                Err(NoChoice::Unavailable { reason }) => {
                    return Err(PickError::Unavailable { reason });
                }
            };
            for (id, actor) in cands {
                let (model_limit, review) = (limit.clone(), req.review);
                let asked = actor
                    .call(
                        |reply| AccountMsg::Reserve {
                            model_limit,
                            review,
                            cooling,
                            reply,
                        },
                        Some(RESERVE_TIMEOUT),
                    )
                    .await;
                if let Ok(CallResult::Success(Ok(grant))) = asked {
                    if let Some(key) = req.affinity.take() {
                        let at = self.clock.now_ms();
                        let mut board = self.board.lock();
                        if let Some(share) = &board.share {
                            share.recorded(&key, &id);
                        }
                        board.affinity.record(key, id.clone(), at);
                    }
                    return Ok(Lease {
                        account_id: id,
                        creds: grant.creds,
                        started_at: grant.started_at,
                        model_limit: limit.clone(),
                        actor: Some(actor),
                        usage: None,
                    });
                }
                req.exclude.push(id);
            }
        }
        Err(PickError::Unavailable {
            reason: "every candidate refused the lease".into(),
        })
    }

    /// Pool summary (docs/quota.md rule 6). An unresponsive pool reports itself as not serving.
    pub async fn summary(&self) -> PoolSummary {
        self.ask(PoolMsg::Summary).await.unwrap_or_default()
    }

    async fn refs(&self) -> Vec<(AccountId, AccountRef)> {
        self.ask(PoolMsg::Refs).await.unwrap_or_default()
    }

    /// Every account's view (accounts that do not answer in time are left out).
    pub async fn accounts(&self) -> Vec<AccountView> {
        let calls = self
            .refs()
            .await
            .into_iter()
            .map(|(_, a)| async move { call(&a, AccountMsg::Snapshot).await.ok() });
        futures::future::join_all(calls)
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    /// One account's view.
    pub async fn account(&self, id: &str) -> Option<AccountView> {
        call(&self.actor(id).await.ok()?, AccountMsg::Snapshot)
            .await
            .ok()
    }

    /// Why an account is or is not available.
    pub async fn explain(&self, id: &str) -> Option<Explanation> {
        call(&self.actor(id).await.ok()?, AccountMsg::Explain)
            .await
            .ok()
    }

    /// Adds an account, or merges it into the account it is a copy of (same workspace and
    /// user, or a refresh token the account holds or has spent) by the one import rule,
    /// [`merge_import`](crate::merge_import): never a spent or older token back, never
    /// re-activating banned or disabled accounts. The result is durable before this returns.
    pub async fn add(&self, rec: AccountRecord) -> Result<AddOutcome, PoolError> {
        let step = match self
            .sup
            .call(
                |r| PoolMsg::Add(Box::new(rec.clone()), r),
                Some(ADMIN_TIMEOUT),
            )
            .await
        {
            Ok(CallResult::Success(step)) => step?,
            Ok(CallResult::Timeout) => return Err(PoolError::Timeout),
            _ => return Err(PoolError::Stopped),
        };
        Ok(match step {
            AddStep::Added(id) => AddOutcome::Added(id),
            AddStep::Existing(id, actor) => {
                match call(&actor, |r| AccountMsg::Merge(Box::new(rec), r)).await? {
                    crate::Merged::KeptNewer => AddOutcome::KeptNewer(id),
                    crate::Merged::Replaced | crate::Merged::Unchanged => AddOutcome::Updated(id),
                }
            }
        })
    }

    /// Has the account re-read its record from the store and merge it by the import rule
    /// (cluster mode: the owner picks up tokens imported on another node). `Ok(None)`: the
    /// store has no record of it.
    pub async fn reload(&self, id: &str) -> Result<Option<crate::Merged>, PoolError> {
        call(&self.actor(id).await?, AccountMsg::Reload).await
    }

    /// Enables or disables an account.
    pub async fn set_enabled(&self, id: &str, enabled: bool) -> Result<(), PoolError> {
        call(&self.actor(id).await?, |r| {
            AccountMsg::SetEnabled(enabled, r)
        })
        .await
    }

    /// Removes an account and its file.
    pub async fn remove(&self, id: &str) -> Result<(), PoolError> {
        let owned = id.to_string();
        let actor = self
            .ask(|r| PoolMsg::Forget(owned, r))
            .await?
            .ok_or(PoolError::NotFound(id.to_string()))?;
        call(&actor, AccountMsg::Remove).await
    }

    /// Runs an actor for `rec`, an account this node now owns (a cluster claim), from the
    /// record as stored: unlike [`PoolHandle::add`] nothing is merged or written. `Ok(false)`
    /// if the account already runs here.
    pub async fn adopt(&self, rec: AccountRecord) -> Result<bool, PoolError> {
        match self
            .sup
            .call(|r| PoolMsg::Adopt(Box::new(rec), r), Some(ADMIN_TIMEOUT))
            .await
        {
            Ok(CallResult::Success(r)) => r,
            Ok(CallResult::Timeout) => Err(PoolError::Timeout),
            _ => Err(PoolError::Stopped),
        }
    }

    /// Stops an account's actor without removing its record (a cluster release, a lost
    /// session): at once no pick finds it; leases in flight get up to `drain` to come back,
    /// then the actor stops, flushing what it has not written. `false` if it did not run here.
    pub async fn leave(&self, id: &str, drain: Duration) -> Result<bool, PoolError> {
        let owned = id.to_string();
        let Some(actor) = self.ask(|r| PoolMsg::Leave(owned, r)).await? else {
            return Ok(false);
        };
        let until = tokio::time::Instant::now() + drain;
        while tokio::time::Instant::now() < until {
            match call(&actor, AccountMsg::Snapshot).await {
                Ok(v) if v.leases > 0 => tokio::time::sleep(Duration::from_millis(20)).await,
                _ => break,
            }
        }
        let _ = actor
            .stop_and_wait(Some("left the pool".into()), Some(ADMIN_TIMEOUT))
            .await;
        Ok(true)
    }

    /// The accounts with a running actor, sorted.
    pub async fn members(&self) -> Result<Vec<AccountId>, PoolError> {
        Ok(self
            .ask(PoolMsg::Refs)
            .await?
            .into_iter()
            .map(|(id, _)| id)
            .collect())
    }

    /// Switches the rotation strategy at runtime.
    pub async fn set_strategy(&self, s: Strategy) {
        let _ = self.sup.cast(PoolMsg::SetStrategy(s));
    }

    /// Asks an account to probe its usage now.
    pub async fn probe(&self, id: &str) -> Result<(), PoolError> {
        self.actor(id)
            .await?
            .cast(AccountMsg::ProbeNow)
            .map_err(|_| PoolError::Stopped)
    }

    /// Every record, with tokens: only for CLI/admin export.
    pub async fn export(&self) -> Vec<AccountRecord> {
        let calls = self
            .refs()
            .await
            .into_iter()
            .map(|(_, a)| async move { call(&a, AccountMsg::Export).await.ok() });
        futures::future::join_all(calls)
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    /// The account a conversation key last went to, if remembered and fresh. Cluster mode
    /// reads it before picking: when that account now lives on another node, the request is
    /// forwarded there instead of starting the conversation over on a local account.
    pub fn affinity_of(&self, key: &str) -> Option<AccountId> {
        let now = self.clock.now_ms();
        self.board.lock().affinity.get(key, now)
    }

    /// From now on, tells `share` of every affinity a granted lease records (cluster mode);
    /// without it (a single node) nothing is told.
    pub fn share_affinity(&self, share: Arc<dyn AffinityShare>) {
        self.board.lock().share = Some(share);
    }

    /// Makes `account` the one `key` prefers from now on: a request another node forwarded
    /// for that account names it, so the pick here serves it on that account when it can.
    pub fn prefer(&self, key: &str, account: &str) {
        let now = self.clock.now_ms();
        self.board
            .lock()
            .affinity
            .record(key.to_owned(), account.to_owned(), now);
    }

    /// Stops every actor; each flushes its file.
    pub async fn shutdown(&self) {
        let _ = self
            .sup
            .stop_and_wait(Some("shutdown".into()), Some(Duration::from_secs(60)))
            .await;
    }
}

/// A time-bounded call to one account actor.
async fn call<T: Send + 'static>(
    a: &AccountRef,
    f: impl FnOnce(RpcReplyPort<T>) -> AccountMsg,
) -> Result<T, PoolError> {
    match a.call(f, Some(ADMIN_TIMEOUT)).await {
        Ok(CallResult::Success(v)) => Ok(v),
        Ok(CallResult::Timeout) => Err(PoolError::Timeout),
        _ => Err(PoolError::Stopped),
    }
}
