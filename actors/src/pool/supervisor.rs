//! The pool supervisor. Spawns one account actor per account with `spawn_linked`; a failed
//! child does not stop the pool (`handle_supervisor_evt` is overridden) but is restarted from
//! its last durable record after a backoff, within a restart budget. It owns membership of the
//! availability [board](super::board) the accounts push to and the handles pick from in
//! O(log n) — a hint: the chosen actor's `Reserve` has the last word. It never calls its
//! children; the handle does.

use std::collections::HashMap;
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};

use super::board::SharedBoard;
use super::members::{Leaving, Members};
use super::restart::RestartBudget;
use super::{PoolConfig, PoolError, PoolSummary, Strategy};
use crate::account::{
    AccountActor, AccountArgs, AccountConfig, AccountRef, AccountState, RefreshGate, Report,
};
use crate::quota::QuotaConfig;
use crate::rotation::{Candidate, View};
use crate::{AccountId, AccountIndex, AccountRecord, Effects, Status};
use std::time::Duration;

/// Reference to the supervisor.
pub type PoolRef = ActorRef<PoolMsg>;

/// What `Add` found.
pub enum AddStep {
    /// Spawned a new account.
    Added(AccountId),
    /// The account exists; the handle merges the record into it.
    Existing(AccountId, AccountRef),
}

/// Messages of the pool supervisor.
pub enum PoolMsg {
    /// An account learned its dedup key (after a refresh): index it, warn on a duplicate.
    Identified {
        /// The account.
        id: AccountId,
        /// `(chatgpt_account_id, chatgpt_user_id)`.
        key: (String, String),
    },
    /// Pool summary (docs/quota.md rule 6).
    Summary(RpcReplyPort<PoolSummary>),
    /// All account actors.
    Refs(RpcReplyPort<Vec<(AccountId, AccountRef)>>),
    /// One account actor.
    Ref(AccountId, RpcReplyPort<Option<AccountRef>>),
    /// An account switched to a new refresh token: index it, so an import of that token
    /// (or, later, of this one once spent) finds the account.
    Rotated {
        /// The account.
        id: AccountId,
        /// Fingerprint of its new refresh token.
        token: String,
    },
    /// Add (or find) an account.
    Add(Box<AccountRecord>, RpcReplyPort<Result<AddStep, PoolError>>),
    /// Forget an account that is being removed; returns its actor.
    Forget(AccountId, RpcReplyPort<Option<AccountRef>>),
    /// Run an actor for an account this node now owns, from its durable record as loaded (a
    /// cluster claim): no import merge, nothing written. `false` if it already runs.
    Adopt(Box<AccountRecord>, RpcReplyPort<Result<bool, PoolError>>),
    /// Take an account out of the pool without touching its record (a cluster release or a
    /// lost session): no new leases; returns its actor for the handle to drain and stop.
    Leave(AccountId, RpcReplyPort<Option<AccountRef>>),
    /// Switch the rotation strategy.
    SetStrategy(Strategy),
    /// Restart a failed account from its durable record (after its backoff).
    Respawn(AccountId),
}

/// The supervisor actor.
pub struct PoolSupervisor;

/// What the supervisor is started with.
pub struct PoolArgs {
    /// The pool's rotation and timing settings.
    pub cfg: PoolConfig,
    /// Effects handed to every account.
    pub effects: Effects,
    /// Accounts to start with.
    pub records: Vec<AccountRecord>,
    /// The board the handles pick from.
    pub board: SharedBoard,
}

/// Supervisor state.
pub struct PoolState {
    cfg: PoolConfig,
    acfg: Arc<AccountConfig>,
    fx: Effects,
    gate: Arc<RefreshGate>,
    board: SharedBoard,
    /// The running account actors ([`Members`]).
    members: Members,
    /// Which account an imported record is a copy of (identity, refresh tokens).
    index: AccountIndex,
    budgets: HashMap<AccountId, RestartBudget>,
    /// Failed account actors restarted so far (reported in the summary).
    restarts: u64,
    /// The ticking task, stopped with the pool.
    ticking: tokio::task::AbortHandle,
}

impl Actor for PoolSupervisor {
    type Msg = PoolMsg;
    type State = PoolState;
    type Arguments = PoolArgs;

    async fn pre_start(&self, me: PoolRef, a: PoolArgs) -> Result<PoolState, ActorProcessingErr> {
        let gate = Arc::new(RefreshGate::new(
            a.cfg.max_concurrent_refreshes,
            a.cfg.max_refreshes_per_minute,
        ));
        let acfg = Arc::new(AccountConfig::from(&a.cfg));
        let ticker = super::ticker::Ticker::new(acfg.tick);
        let mut st = PoolState {
            ticking: ticker.start(),
            members: Members::new(a.board.clone(), ticker),
            acfg,
            board: a.board,
            cfg: a.cfg,
            fx: a.effects,
            gate,
            index: AccountIndex::default(),
            budgets: HashMap::new(),
            restarts: 0,
        };
        for rec in a.records {
            if st.members.contains(&rec.id) {
                tracing::warn!(account = %rec.id, "duplicate account id at start; keeping the first");
                continue;
            }
            spawn_account(&me, &mut st, rec).await?;
        }
        Ok(st)
    }

    async fn post_stop(&self, me: PoolRef, st: &mut PoolState) -> Result<(), ActorProcessingErr> {
        st.ticking.abort();
        me.stop_children_and_wait(
            Some("pool shutdown".into()),
            Some(std::time::Duration::from_secs(30)),
        )
        .await;
        Ok(())
    }

    async fn handle(
        &self,
        me: PoolRef,
        msg: PoolMsg,
        st: &mut PoolState,
    ) -> Result<(), ActorProcessingErr> {
        let now = st.fx.clock.now_ms();
        match msg {
            PoolMsg::Identified { id, key } => identified(st, id, key),
            PoolMsg::Rotated { id, token } => {
                if st.members.contains(&id) {
                    st.index.add_token(token, id);
                }
            }
            PoolMsg::Summary(reply) => {
                let _ = reply.send(PoolSummary {
                    restarts: st.restarts,
                    ..summary(&st.board.lock().view, now)
                });
            }
            PoolMsg::Refs(reply) => {
                let _ = reply.send(st.members.sorted());
            }
            PoolMsg::Ref(id, reply) => {
                let _ = reply.send(st.members.get(&id).cloned());
            }
            PoolMsg::Add(rec, reply) => {
                let r = add(&me, st, *rec).await;
                let _ = reply.send(r);
            }
            PoolMsg::Forget(id, reply) => {
                let r = st.members.remove(&id, Leaving::Forgotten);
                st.index.remove(&id);
                st.budgets.remove(&id);
                let _ = reply.send(r);
            }
            PoolMsg::Adopt(rec, reply) => {
                let r = if st.members.contains(&rec.id) {
                    Ok(false)
                } else {
                    spawn_account(&me, st, *rec)
                        .await
                        .map(|_| true)
                        .map_err(|e| PoolError::Spawn(e.to_string()))
                };
                let _ = reply.send(r);
            }
            PoolMsg::Leave(id, reply) => {
                let r = st.members.remove(&id, Leaving::Stopped);
                st.index.remove(&id);
                st.budgets.remove(&id);
                let _ = reply.send(r);
            }
            PoolMsg::SetStrategy(s) => {
                tracing::info!(strategy = ?s, "rotation strategy switched");
                st.cfg.strategy = s;
                st.board.lock().view.set_strategy(s);
            }
            PoolMsg::Respawn(id) => respawn(&me, st, id).await,
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        me: PoolRef,
        evt: SupervisionEvent,
        st: &mut PoolState,
    ) -> Result<(), ActorProcessingErr> {
        match evt {
            SupervisionEvent::ActorFailed(cell, err) => {
                let Some(id) = st.members.remove_cell(&cell.get_id(), Leaving::Failed) else {
                    return Ok(());
                };
                let now = st.fx.clock.now_ms();
                let budget = st.budgets.entry(id.clone()).or_default();
                match budget.on_failure(now, st.cfg.restart_budget) {
                    Some(backoff) => {
                        tracing::error!(account = %id, error = %err, ?backoff, "account actor failed; restarting it");
                        me.send_after(backoff, move || PoolMsg::Respawn(id));
                    }
                    None => {
                        tracing::error!(account = %id, error = %err, "account actor failed; restart budget spent, left stopped")
                    }
                }
            }
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                if let Some(id) = st.members.remove_cell(&cell.get_id(), Leaving::Stopped) {
                    tracing::warn!(account = %id, ?reason, "account actor stopped");
                }
            }
            _ => {}
        }
        Ok(())
    }
}

async fn spawn_account(
    me: &PoolRef,
    st: &mut PoolState,
    rec: AccountRecord,
) -> Result<AccountRef, ActorProcessingErr> {
    let id = rec.id.clone();
    st.index.insert(&rec);
    // Seeded before the actor runs, so its first push (from `post_start`) lands on the board
    // after the seed, and a pick right after start finds the account.
    let seed = AccountState::seed(&rec, st.acfg.max_leases, st.fx.clock.now_ms());
    st.board.lock().view.upsert(seed);
    let (sup, board) = (me.clone(), st.board.clone());
    let args = AccountArgs {
        record: rec,
        cfg: st.acfg.clone(),
        effects: st.fx.clone(),
        gate: st.gate.clone(),
        notify: Arc::new(move |r| match r {
            Report::Availability(c) => board.push(c),
            Report::Identified { id, key } => {
                let _ = sup.cast(PoolMsg::Identified { id, key });
            }
            Report::Rotated { id, token } => {
                let _ = sup.cast(PoolMsg::Rotated { id, token });
            }
        }),
    };
    let (actor, _) = match Actor::spawn_linked(None, AccountActor, args, me.get_cell()).await {
        Ok(spawned) => spawned,
        Err(e) => {
            let mut b = st.board.lock();
            if let Some(c) = b.view.get(&id).cloned() {
                b.view.upsert(Candidate {
                    serving: false,
                    ..c
                });
            }
            return Err(e.into());
        }
    };
    st.members.insert(id, actor.clone());
    Ok(actor)
}

async fn respawn(me: &PoolRef, st: &mut PoolState, id: AccountId) {
    // Forgotten or left (a cluster release) while the backoff ran: not ours to restart.
    if !st.budgets.contains_key(&id) || st.members.contains(&id) {
        return;
    }
    match st.fx.store.load(&id) {
        Ok(Some(rec)) => match spawn_account(me, st, rec).await {
            Ok(_) => {
                st.restarts += 1;
                tracing::info!(account = %id, "account actor restarted from its durable record")
            }
            Err(e) => {
                tracing::error!(account = %id, error = %e, "could not restart the account actor")
            }
        },
        Ok(None) => tracing::error!(account = %id, "no durable record to restart the account from"),
        Err(e) => {
            tracing::error!(account = %id, error = %e, "could not read the account's record to restart it")
        }
    }
}

async fn add(me: &PoolRef, st: &mut PoolState, rec: AccountRecord) -> Result<AddStep, PoolError> {
    let valid = !rec.id.is_empty()
        && rec.id.len() <= 64
        && rec
            .id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !valid {
        return Err(PoolError::Invalid(format!(
            "account id {:?} is not a safe file name",
            rec.id
        )));
    }
    let existing = st
        .index
        .find(&rec)
        .cloned()
        .or_else(|| st.members.contains(&rec.id).then(|| rec.id.clone()));
    if let Some(id) = existing
        && let Some(r) = st.members.get(&id)
    {
        return Ok(AddStep::Existing(id, r.clone()));
    }
    st.fx
        .store
        .save(&rec)
        .map_err(|e| PoolError::Store(e.to_string()))?;
    let id = rec.id.clone();
    spawn_account(me, st, rec)
        .await
        .map_err(|e| PoolError::Spawn(e.to_string()))?;
    Ok(AddStep::Added(id))
}

/// An account learned its identity: later imports of it are merged into it. If another live
/// account already has the same key, both are kept (deleting an account is an operator's
/// call) and the duplicate is logged for the operator.
fn identified(st: &mut PoolState, id: AccountId, key: (String, String)) {
    if !st.members.contains(&id) {
        return;
    }
    match st.index.owner(&key) {
        Some(other) if *other != id && st.members.contains(other) => {
            tracing::warn!(account = %id, duplicate_of = %other, chatgpt_account_id = %key.0, "account duplicates another (same ChatGPT account and user); both kept: remove one");
        }
        _ => st.index.set_owner(key, id),
    }
}

/// Pool summary from the view (docs/quota.md rule 6: an all-exhausted pool is not serving).
pub fn summary(view: &View, now: i64) -> PoolSummary {
    let mut s = PoolSummary {
        total: view.len(),
        ..PoolSummary::default()
    };
    for c in view.candidates() {
        let cooling = c.cooldown_until.is_some_and(|t| t > now);
        match c.status {
            Status::Active => s.active += 1,
            Status::Expired => s.expired += 1,
            Status::Banned => s.banned += 1,
            Status::Disabled => s.disabled += 1,
            Status::Refreshing => s.refreshing += 1,
        }
        if c.status == Status::Active {
            s.rate_limited += usize::from(!c.locks.is_empty());
            s.cooling_down += usize::from(cooling);
            s.refused += usize::from(c.refused_until.is_some_and(|t| t > now));
            if let Some(t) = c.available_again(None, false) {
                s.soonest_reset_at = Some(s.soonest_reset_at.map_or(t, |x| x.min(t)));
            }
        }
        // A cooling account still serves when nothing else can (`rotation::Cooling::Any`): a
        // pool of cooling accounts is degraded, not down.
        s.serving |= c.serving && !c.main_locked();
        s.in_flight += u64::from(c.leases);
    }
    s
}

/// The account actors' settings, from the pool's.
impl From<&PoolConfig> for AccountConfig {
    fn from(c: &PoolConfig) -> Self {
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Self {
            max_leases: c.max_leases_per_account.max(1),
            tick: c.tick,
            quota: QuotaConfig::with_backoff(c.default_429_backoff),
            refresh_margin_ms: ms(c.refresh_margin),
            refresh_jitter_ms: ms(c.refresh_jitter),
            refresh_enabled: c.refresh_enabled,
            probe_retry_ms: 60_000,
        }
    }
}
