//! The account actor: the only owner of one account's state — identity, tokens, status, cached
//! quota, usage, leases, cooldown and refresh schedule. Supervised by the pool supervisor, which
//! restarts it from its last durable record. It does no network I/O in `handle`: refreshes and
//! probes are tasks it spawns whose results come back as messages.

use ractor::{ActorRef, RpcReplyPort};

use crate::pool::{AccountView, Explanation, UpstreamFailure, UsageDelta};
use crate::{AccountRecord, NewTokens, ProbeError, RefreshError, UnixMs, UpstreamCreds, quota};

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
        /// Answer: a grant, or the reason for refusal.
        reply: RpcReplyPort<Result<Grant, String>>,
    },
    /// A lease was dropped.
    Release,
    /// Quota headers of an upstream answer.
    HeaderObserved(quota::Observation),
    /// Upstream answered 429.
    Applied429(quota::Rejection429),
    /// Upstream failed in another way.
    UpstreamFailed {
        /// How.
        failure: UpstreamFailure,
        /// When the request started.
        at: UnixMs,
    },
    /// Tokens a request used.
    UsageObserved(UsageDelta),
    /// Periodic timer.
    Tick,
    /// The refresh timer fired (generation-stamped: stale timers are ignored).
    RefreshDue {
        /// Generation of the timer.
        generation: u64,
    },
    /// A refresh task obtained its pool-wide permit: write the intent, hand out the token.
    BeginRefresh {
        /// Answer: the refresh token to spend, or `None` if the refresh is no longer wanted.
        reply: RpcReplyPort<Option<String>>,
    },
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
    /// Merge an imported record for the same account (new tokens, identity).
    Merge(Box<AccountRecord>, RpcReplyPort<()>),
    /// Enable or disable.
    SetEnabled(bool, RpcReplyPort<()>),
    /// Remove the account's file and stop.
    Remove(RpcReplyPort<()>),
}

impl std::fmt::Debug for AccountMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            AccountMsg::Reserve { .. } => "Reserve",
            AccountMsg::Release => "Release",
            AccountMsg::HeaderObserved(_) => "HeaderObserved",
            AccountMsg::Applied429(_) => "Applied429",
            AccountMsg::UpstreamFailed { .. } => "UpstreamFailed",
            AccountMsg::UsageObserved(_) => "UsageObserved",
            AccountMsg::Tick => "Tick",
            AccountMsg::RefreshDue { .. } => "RefreshDue",
            AccountMsg::BeginRefresh { .. } => "BeginRefresh",
            AccountMsg::TokensRefreshed(_) => "TokensRefreshed",
            AccountMsg::Probed(_) => "Probed",
            AccountMsg::ProbeNow => "ProbeNow",
            AccountMsg::Snapshot(_) => "Snapshot",
            AccountMsg::Explain(_) => "Explain",
            AccountMsg::Export(_) => "Export",
            AccountMsg::Merge(..) => "Merge",
            AccountMsg::SetEnabled(..) => "SetEnabled",
            AccountMsg::Remove(_) => "Remove",
        };
        f.write_str(name)
    }
}
