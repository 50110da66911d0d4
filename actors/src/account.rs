//! The account actor: the only owner of one account's state — identity, tokens, status, cached
//! quota, usage, leases, cooldown and refresh schedule. Supervised by the pool supervisor, which
//! restarts it from its last durable record. It does no network I/O in `handle`: refreshes and
//! probes are tasks it spawns whose results come back as messages.

mod cooldown;
mod lease;
mod penalty;
mod refresh;
mod standing;
mod state;
mod upkeep;
mod view;

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

pub use cooldown::Cooldown;
pub use lease::{Lease, UpstreamFailure};
pub use penalty::{Penalty, PenaltyCause};
pub use refresh::{AMBIGUOUS, NEEDS_LOGIN, RefreshGate};
pub use state::{AccountState, Action};
pub use view::{AccountView, Explanation, Hold, derived_status};

use crate::quota::{Event, QuotaConfig};
use crate::rotation::{Candidate, Cooling};
use crate::{
    AccountRecord, Effects, NewTokens, ProbeError, RefreshError, RefreshReason, UnixMs,
    UpstreamCreds, Usage, quota,
};
use refresh::{
    begin_refresh, fence_finished, fence_refused, schedule_refresh, start_refresh, tokens_refreshed,
};
use upkeep::{Imported, act, merge, probed, push, reload, set_enabled, start_probe, tick};

/// Reference to an account actor.
pub type AccountRef = ActorRef<AccountMsg>;

/// A lease grant: the credentials and the evidence time of the request.
#[derive(Debug, Clone)]
pub struct Grant {
    /// Credentials to use upstream.
    pub creds: UpstreamCreds,
    /// When the lease was granted.
    pub started_at: UnixMs,
}

/// Messages of the account actor.
pub enum AccountMsg {
    /// Ask for a lease for a request; refused if the account cannot serve it.
    Reserve {
        /// Extra limit of the requested model.
        model_limit: Option<String>,
        /// Code-review request.
        review: bool,
        /// Whether a Cloudflare cooldown may be waived (the pool has nothing better).
        cooling: Cooling,
        /// Answer: a grant, or the reason for refusal.
        reply: RpcReplyPort<Result<Grant, String>>,
    },
    /// A lease was dropped, with the tokens its request used (if upstream reported them).
    Release(Option<Usage>),
    /// Quota headers of an upstream answer.
    HeaderObserved(quota::Observation),
    /// Upstream answered 429. Boxed: a rejection carries the quota its headers report, and
    /// every message is as large as the largest variant, moved several times per lease.
    Applied429(Box<quota::Rejection429>),
    /// Upstream failed in another way.
    UpstreamFailed {
        /// The failure class and its evidence.
        failure: UpstreamFailure,
        /// When the request started.
        at: UnixMs,
    },
    /// Periodic timer.
    Tick,
    /// A refresh task obtained its pool-wide permit: write the intent, hand out the token.
    BeginRefresh {
        /// The fence's ticket of the intent it committed in the store.
        ticket: crate::FenceTicket,
        /// Answer: the refresh token to spend, or `None` if the refresh is no longer wanted.
        reply: RpcReplyPort<Option<String>>,
    },
    /// The fence refused to begin a refresh; nothing was sent.
    FenceRefused(crate::FenceRefusal),
    /// The fence answered the finish of a rotation whose tokens are durable.
    FenceFinished(Result<(), crate::FenceRefusal>),
    /// The token endpoint answered.
    TokensRefreshed(Result<NewTokens, RefreshError>),
    /// A usage probe answered.
    Probed(Result<quota::Observation, ProbeError>),
    /// Probe now (operator request).
    ProbeNow,
    /// Operator view.
    Snapshot(RpcReplyPort<AccountView>),
    /// Why available or not.
    Explain(RpcReplyPort<Explanation>),
    /// Full record with tokens (export).
    Export(RpcReplyPort<AccountRecord>),
    /// Merge an imported record for the same account by the one import rule
    /// ([`merge_import`](crate::merge_import)); answers what it did.
    Merge(Box<AccountRecord>, RpcReplyPort<crate::Merged>),
    /// Re-read the account's record from the store and merge it by the import rule: tokens
    /// imported on another node reach the owner (cluster mode). The store is not told of an
    /// import (the importing node did that). Answers what the merge did (`None`: the store has
    /// no record or could not be read).
    Reload(RpcReplyPort<Option<crate::Merged>>),
    /// Enable or disable.
    SetEnabled(bool, RpcReplyPort<()>),
    /// Remove the account's file and stop.
    Remove(RpcReplyPort<()>),
}

impl std::fmt::Debug for AccountMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            AccountMsg::Reserve { .. } => "Reserve",
            AccountMsg::Release(_) => "Release",
            AccountMsg::HeaderObserved(_) => "HeaderObserved",
            AccountMsg::Applied429(_) => "Applied429",
            AccountMsg::UpstreamFailed { .. } => "UpstreamFailed",
            AccountMsg::Tick => "Tick",
            AccountMsg::BeginRefresh { .. } => "BeginRefresh",
            AccountMsg::FenceRefused(_) => "FenceRefused",
            AccountMsg::FenceFinished(_) => "FenceFinished",
            AccountMsg::TokensRefreshed(_) => "TokensRefreshed",
            AccountMsg::Probed(_) => "Probed",
            AccountMsg::ProbeNow => "ProbeNow",
            AccountMsg::Snapshot(_) => "Snapshot",
            AccountMsg::Explain(_) => "Explain",
            AccountMsg::Export(_) => "Export",
            AccountMsg::Merge(..) => "Merge",
            AccountMsg::Reload(_) => "Reload",
            AccountMsg::SetEnabled(..) => "SetEnabled",
            AccountMsg::Remove(_) => "Remove",
        };
        f.write_str(name)
    }
}

/// The settings every account actor of a pool runs with, derived from the pool's
/// ([`PoolConfig`](crate::PoolConfig)) once and shared.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountConfig {
    /// Leases one account grants at once (at least 1; 1 while its headroom is tight).
    pub max_leases: u32,
    /// Period of the ticks that reset passed windows, flush coalesced writes and start probes.
    pub tick: Duration,
    /// The configured values the quota rules read (the 429 backoff).
    pub quota: QuotaConfig,
    /// Refresh this long before expiry.
    pub refresh_margin_ms: i64,
    /// ± jitter on the refresh time.
    pub refresh_jitter_ms: i64,
    /// Proactive refresh is scheduled (401 recovery happens regardless).
    pub refresh_enabled: bool,
    /// Minimum gap between background probes of an account awaiting verification.
    pub probe_retry_ms: i64,
}

/// What an account tells its supervisor without waiting (actors never call their parent).
#[derive(Debug, Clone)]
pub enum Report {
    /// Its availability changed: the supervisor's view is updated (the view is a hint).
    Availability(Candidate),
    /// It learned its dedup key (workspace id, user id) — e.g. an account imported from a
    /// refresh token alone, after its first refresh — so later imports find it and a duplicate
    /// of another account is reported.
    Identified {
        /// The account.
        id: crate::AccountId,
        /// `(chatgpt_account_id, chatgpt_user_id)`.
        key: (String, String),
    },
    /// It switched to a new refresh token (a rotation, or an import that replaced its
    /// tokens), so an import of that token finds the account.
    Rotated {
        /// The account.
        id: crate::AccountId,
        /// Fingerprint of the new refresh token (`record::import::fingerprint`).
        token: String,
    },
}

/// Where an account sends its [`Report`]s (the supervisor).
pub type Notify = Arc<dyn Fn(Report) + Send + Sync>;

/// What an account actor is spawned with.
pub struct AccountArgs {
    /// Its last durable record.
    pub record: AccountRecord,
    /// The quota and failure timings this account runs with.
    pub cfg: Arc<AccountConfig>,
    /// Store, refresher, prober, clock.
    pub effects: Effects,
    /// Pool-wide refresh limits.
    pub gate: Arc<RefreshGate>,
    /// Reports to the supervisor.
    pub notify: Notify,
}

/// The account actor (behaviour only; state is [`AccountState`] plus the effects).
pub struct AccountActor;

/// Actor state: the account's state and the effects it performs.
pub struct Running {
    /// The account.
    pub st: AccountState,
    /// Writes, probes and refreshes the last message asked for.
    fx: Effects,
    /// The pool-wide cap on refreshes this account's refreshes wait for.
    gate: Arc<RefreshGate>,
    /// Reports to the supervisor.
    notify: Notify,
}

impl Actor for AccountActor {
    type Msg = AccountMsg;
    type State = Running;
    type Arguments = AccountArgs;

    async fn pre_start(
        &self,
        _me: AccountRef,
        a: AccountArgs,
    ) -> Result<Running, ActorProcessingErr> {
        let st = AccountState::new(a.record, a.cfg);
        Ok(Running {
            st,
            fx: a.effects,
            gate: a.gate,
            notify: a.notify,
        })
    }

    async fn post_start(&self, me: AccountRef, s: &mut Running) -> Result<(), ActorProcessingErr> {
        if let Some(intent) = s.st.rec.refresh_intent.clone() {
            tracing::warn!(account = %s.st.rec.id, reason = intent.reason.as_str(), "a refresh was interrupted; retrying it");
            start_refresh(&me, s, intent.reason);
        } else if s.st.rec.status == crate::Status::Refreshing {
            start_refresh(&me, s, RefreshReason::UnauthorizedRecovery);
        } else {
            schedule_refresh(&me, s);
        }
        let now = s.fx.clock.now_ms();
        push(s, now);
        Ok(())
    }

    async fn post_stop(&self, _me: AccountRef, s: &mut Running) -> Result<(), ActorProcessingErr> {
        s.st.flush_durable(s.fx.store.as_ref());
        Ok(())
    }

    async fn handle(
        &self,
        me: AccountRef,
        msg: AccountMsg,
        s: &mut Running,
    ) -> Result<(), ActorProcessingErr> {
        let now = s.fx.clock.now_ms();
        match msg {
            AccountMsg::Reserve {
                model_limit,
                review,
                cooling,
                reply,
            } => {
                let granted = s.st.reserve(model_limit.as_deref(), review, cooling, now);
                let _ = reply.send(granted.map(|creds| Grant {
                    creds,
                    started_at: now,
                }));
            }
            AccountMsg::Release(usage) => {
                if let Some(u) = usage {
                    s.st.usage(u);
                }
                s.st.release();
            }
            AccountMsg::HeaderObserved(o) => {
                let actions = s.st.quota(Event::HeaderObserved(o), now);
                act(&me, s, actions, now);
            }
            AccountMsg::Applied429(r) => {
                let actions = s.st.quota(Event::Applied429(*r), now);
                act(&me, s, actions, now);
            }
            AccountMsg::UpstreamFailed { failure, at } => {
                let (status_changed, action) = s.st.failure(failure, at, now);
                if status_changed {
                    s.st.persist(s.fx.store.as_ref());
                }
                act(&me, s, action.into_iter().collect(), now);
            }
            AccountMsg::Tick => tick(&me, s, now),
            AccountMsg::BeginRefresh { ticket, reply } => {
                let rt = begin_refresh(&me, s, ticket, now);
                let _ = reply.send(rt);
            }
            AccountMsg::FenceRefused(refusal) => fence_refused(&me, s, refusal),
            AccountMsg::FenceFinished(r) => fence_finished(s, r),
            AccountMsg::TokensRefreshed(result) => tokens_refreshed(&me, s, result, now),
            AccountMsg::Probed(result) => probed(&me, s, result, now),
            AccountMsg::ProbeNow => start_probe(&me, s, now),
            AccountMsg::Snapshot(reply) => {
                let _ = reply.send(s.st.view(now));
            }
            AccountMsg::Explain(reply) => {
                let _ = reply.send(s.st.explain(now));
            }
            AccountMsg::Export(reply) => {
                let _ = reply.send(s.st.rec.clone());
            }
            AccountMsg::Merge(rec, reply) => {
                let _ = reply.send(merge(&me, s, *rec, Imported::Here));
            }
            AccountMsg::Reload(reply) => {
                let _ = reply.send(reload(&me, s));
            }
            AccountMsg::SetEnabled(on, reply) => {
                set_enabled(s, on);
                let _ = reply.send(());
            }
            AccountMsg::Remove(reply) => {
                if let Err(e) = s.fx.store.remove(&s.st.rec.id) {
                    tracing::error!(account = %s.st.rec.id, error = %e, "could not delete the account file");
                }
                s.st.dirty = false;
                let _ = reply.send(());
                me.stop(Some("removed".into()));
                return Ok(());
            }
        }
        if s.st.lost {
            // Another node owns the account now: serve nothing more, persist nothing more.
            push(s, now);
            me.stop(Some(LOST.into()));
            return Ok(());
        }
        push(s, now);
        Ok(())
    }
}

/// Why an account actor stopped when another node took its account over.
pub const LOST: &str = "another node owns the account now";

#[cfg(test)]
mod tests {
    /// A message is moved several times per lease (cast, mailbox, handler): no rare variant may
    /// make every `Reserve` and `Release` larger than the headers' observation they already carry.
    #[test]
    fn no_message_is_larger_than_an_observed_header() {
        let header = std::mem::size_of::<super::AccountMsg>();
        let observation = std::mem::size_of::<crate::quota::Observation>();
        assert!(
            header <= observation + 16,
            "AccountMsg {header} B, Observation {observation} B"
        );
    }
}
