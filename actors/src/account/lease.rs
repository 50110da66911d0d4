//! The lease a request holds on an account while it talks upstream, and what the request reports
//! back through it. RAII: dropping the lease releases it exactly once, even on panic or client
//! disconnect, because `Drop` runs once.

use serde::{Deserialize, Serialize};

use crate::account::{AccountMsg, AccountRef};
use crate::{AccountId, UnixMs, UpstreamCreds, Usage, quota};

/// A granted lease on one account. Dropping it casts `Release` to the account actor.
pub struct Lease {
    /// The account serving the request.
    pub account_id: AccountId,
    /// Credentials to send upstream.
    pub creds: UpstreamCreds,
    /// When the lease was granted (the request's start: evidence time of what it observes).
    pub started_at: UnixMs,
    /// The extra limit of the requested model ([`quota::limit_for_model`]; `None` = the main
    /// models): what a quota failure met mid-stream is charged to.
    pub model_limit: Option<String>,
    /// The account actor; `None` only for detached leases in tests.
    pub(crate) actor: Option<AccountRef>,
    /// Tokens reported by [`Lease::usage`], delivered with the release: one message to the
    /// actor at the end of a request instead of two.
    pub(crate) usage: Option<Usage>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("account_id", &self.account_id)
            .field("started_at", &self.started_at)
            .finish_non_exhaustive()
    }
}

impl Lease {
    /// A lease attached to no actor: what it reports goes nowhere. For tests of code that
    /// consumes leases without running a pool.
    pub fn detached(account_id: AccountId, creds: UpstreamCreds, started_at: UnixMs) -> Self {
        Self {
            account_id,
            creds,
            started_at,
            model_limit: None,
            actor: None,
            usage: None,
        }
    }

    fn cast(&self, msg: AccountMsg) {
        if let Some(a) = &self.actor {
            // The actor may be restarting; evidence lost then is re-learned on the next request.
            let _ = a.cast(msg);
        }
    }

    /// Reports the quota headers of the upstream answer (`HeaderObserved`).
    pub fn observe_headers(&self, obs: quota::Observation) {
        self.cast(AccountMsg::HeaderObserved(obs));
    }

    /// Reports a 429 (`Applied429`).
    pub fn rejected(&self, r: quota::Rejection429) {
        self.cast(AccountMsg::Applied429(Box::new(r)));
    }

    /// Reports a quota failure met after the head (a `response.failed` or `error` event with a
    /// quota code, docs/failures.md): a 429 of `kind` without a reset, charged to the
    /// requested model's family, so the quota locks it for `pool.default_429_backoff` and
    /// verifies when that passes.
    pub fn quota_failed(&self, kind: quota::RejectionKind) {
        self.rejected(quota::Rejection429 {
            at: self.started_at,
            limit: self.model_limit.clone(),
            kind,
            model_limit: self.model_limit.clone(),
            ..quota::Rejection429::default()
        });
    }

    /// Reports an upstream failure (`UpstreamFailed`).
    pub fn failed(&self, f: UpstreamFailure) {
        self.cast(AccountMsg::UpstreamFailed {
            failure: f,
            at: self.started_at,
        });
    }

    /// Reports the tokens the request used; they reach the account with the release, when the
    /// lease is dropped (a request reports its usage once, at its end).
    pub fn usage(&mut self, u: Usage) {
        *self.usage.get_or_insert_with(Usage::default) += u;
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let usage = self.usage.take();
        self.cast(AccountMsg::Release(usage));
    }
}

/// How an upstream attempt failed, as the HTTP front end classified it (docs/failures.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum UpstreamFailure {
    /// 401: refresh the token (single-flight); `expired` if that fails permanently.
    Unauthorized,
    /// 403 JSON ban.
    Banned {
        /// Upstream's reason.
        reason: String,
    },
    /// Account deactivated.
    Deactivated {
        /// Upstream's reason.
        reason: String,
    },
    /// 403/HTML Cloudflare challenge: short escalating cooldown, not a ban.
    Cloudflare,
    /// Upstream refused the account without saying it is gone (403 without a deactivation
    /// signal, 402, empty-body 404): an escalating refusal cooldown, not a ban.
    Refused {
        /// Which refusal it was.
        cause: super::PenaltyCause,
        /// Upstream's reason.
        reason: String,
    },
    /// 5xx, overload, connect error: counted, no lock.
    Transient {
        /// What happened.
        reason: String,
    },
    /// Stream ended without a terminal event: not the account's fault.
    PrematureClose {
        /// What happened.
        reason: String,
    },
    /// Error after bytes reached the client: recorded on the account.
    AfterFirstByte {
        /// What happened.
        reason: String,
    },
}
