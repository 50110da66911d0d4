//! The effects an account actor needs from the outside world — persist its record, refresh its
//! tokens, probe its usage — as small traits that `src/` implements with files and reqwest and
//! hands in at spawn. This is what keeps `actors/` free of HTTP.

use std::sync::Arc;

pub use futures::future::BoxFuture;
use serde::Serialize;

use crate::{AccountId, AccountRecord, Clock, RefreshReason, quota};

/// Durable storage of account records (one file per account in the daemon).
pub trait Store: Send + Sync + 'static {
    /// Writes the record durably (temp, fsync, rename, fsync dir) before returning.
    fn save(&self, rec: &AccountRecord) -> std::io::Result<()>;
    /// Hands over a coalesced quota/usage snapshot: it may become durable later (the
    /// default writes it at once), but never after a newer record of the same account.
    /// An `Err` means it was not accepted, and the caller keeps it dirty.
    fn save_coalesced(&self, rec: &AccountRecord) -> std::io::Result<()> {
        self.save(rec)
    }
    /// Deletes the account's record.
    fn remove(&self, id: &str) -> std::io::Result<()>;
    /// Reads the last durable record of one account; used to restart a failed actor.
    /// `Ok(None)` means the store cannot (or does not) hold it, and the actor is not restarted.
    fn load(&self, id: &str) -> std::io::Result<Option<AccountRecord>> {
        let _ = id;
        Ok(None)
    }
    /// True if `err` (from [`save`](Self::save)) says another process owns the account now:
    /// this one must drop it, never retry (files: never, the data directory's lock already
    /// makes one writer).
    fn is_fenced_out(&self, err: &std::io::Error) -> bool {
        let _ = err;
        false
    }
}

/// The refresh fence (docs/cluster.md "Refresh under fencing"): with several nodes on one
/// store, only the account's owner refreshes, under an intent the store committed before the
/// token endpoint is called. The actor asks it to [`begin`](Self::begin) before the refresh
/// token leaves, to [`finish`](Self::finish) once the new tokens are durable (they are served
/// only after that), and to [`abandon`](Self::abandon) a refresh that stored nothing. A single
/// node has nothing to fence ([`NoFence`]).
pub trait RefreshFence: Send + Sync + 'static {
    /// The longest the token endpoint may take under this fence (shorter than the intent's
    /// window); `None`: no bound beyond the refresher's own.
    fn call_timeout(&self) -> Option<std::time::Duration> {
        None
    }
    /// Commits the intent for `account`'s next refresh, or says why not.
    fn begin(&self, account: &str) -> BoxFuture<'static, Result<FenceTicket, FenceRefusal>>;
    /// Stores the rotation under the intent of `ticket` (the new tokens are durable).
    fn finish(
        &self,
        account: &str,
        ticket: FenceTicket,
    ) -> BoxFuture<'static, Result<(), FenceRefusal>>;
    /// Ends the refresh of `ticket` that stored nothing; `reached_upstream` if the call may have
    /// reached the token endpoint (and so spent the refresh token): the store then marks the
    /// account `refresh_ambiguous`.
    fn abandon(
        &self,
        account: &str,
        ticket: FenceTicket,
        reached_upstream: bool,
    ) -> BoxFuture<'static, Result<(), FenceRefusal>>;
    /// Fresh tokens were imported into `account` (and are durable): the store gives them a new
    /// token version and clears any intent and ambiguity. A single node has nothing to do.
    fn imported(&self, account: &str) -> BoxFuture<'static, Result<(), FenceRefusal>> {
        let _ = account;
        Box::pin(std::future::ready(Ok(())))
    }
}

/// A begun refresh as the fence knows it (opaque to the actor; the PostgreSQL fence keeps the
/// intent generation, deadline, token version and owner generation in it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FenceTicket {
    /// The intent generation.
    pub intent_gen: u64,
    /// The store time by which the call is over.
    pub deadline: i64,
    /// The token version the call uses.
    pub token_version: u64,
    /// The nonce the intent was begun with (`ownership::rules::Intent::nonce`).
    pub nonce: u64,
    /// The owner generation the intent was begun at.
    pub owner_gen: u64,
    /// The node's session epoch the intent was begun in.
    pub epoch: u64,
}

/// Why the fence refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FenceRefusal {
    /// Not now (the session does not outlive the window, the store is unreachable, a refresh
    /// is in flight): nothing was changed, try again later.
    #[error("not now: {0}")]
    Later(String),
    /// The account is `refresh_ambiguous` in the store: only fresh tokens clear it.
    #[error("the account's refresh is ambiguous")]
    Ambiguous,
    /// Another node owns the account now (or this node's session is gone): this node drops it.
    #[error("another node owns the account now: {0}")]
    Lost(String),
}

/// The fence of a single node: every refresh may go, nothing to store.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoFence;

impl RefreshFence for NoFence {
    fn begin(&self, _: &str) -> BoxFuture<'static, Result<FenceTicket, FenceRefusal>> {
        Box::pin(std::future::ready(Ok(FenceTicket::default())))
    }

    fn finish(&self, _: &str, _: FenceTicket) -> BoxFuture<'static, Result<(), FenceRefusal>> {
        Box::pin(std::future::ready(Ok(())))
    }

    fn abandon(
        &self,
        _: &str,
        _: FenceTicket,
        _: bool,
    ) -> BoxFuture<'static, Result<(), FenceRefusal>> {
        Box::pin(std::future::ready(Ok(())))
    }
}

/// Calls the OAuth token endpoint with a refresh token.
pub trait TokenRefresher: Send + Sync + 'static {
    /// Exchanges `refresh_token` for new tokens; refresh tokens are single-use upstream.
    fn refresh(
        &self,
        refresh_token: String,
        reason: RefreshReason,
    ) -> BoxFuture<'static, Result<NewTokens, RefreshError>>;
}

/// What the token endpoint returned; each present token replaces the stored one.
#[derive(Clone, Default)]
pub struct NewTokens {
    /// New access token.
    pub access_token: Option<String>,
    /// New (rotated) refresh token.
    pub refresh_token: Option<String>,
    /// New id token.
    pub id_token: Option<String>,
}

impl std::fmt::Debug for NewTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewTokens")
            .field(
                "access_token",
                &self.access_token.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "<redacted>"),
            )
            .field("id_token", &self.id_token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Why a refresh failed; decides between retry and "needs login".
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RefreshError {
    /// Network trouble or 5xx: retry later with the same refresh token.
    #[error("transient refresh failure: {0}")]
    Transient(String),
    /// The refresh token is dead (reused/expired/invalidated/invalid_grant/401): needs a login.
    #[error("refresh token rejected ({code}): {message}")]
    Permanent {
        /// Upstream error code.
        code: String,
        /// Upstream message.
        message: String,
    },
    /// The account itself is deactivated.
    #[error("account deactivated: {0}")]
    Deactivated(String),
    /// The call may have reached the token endpoint but gave no answer within the fenced
    /// window ([`RefreshFence::call_timeout`]): the refresh token may be spent, and the
    /// account becomes `refresh_ambiguous`.
    #[error("no answer from the token endpoint within the fenced window: {0}")]
    Unanswered(String),
}

/// Asks the usage endpoint (`/wham/usage`) what the account's quota really is.
pub trait QuotaProber: Send + Sync + 'static {
    /// Probes the usage endpoint with the account's credentials.
    fn probe(
        &self,
        creds: UpstreamCreds,
    ) -> BoxFuture<'static, Result<quota::Observation, ProbeError>>;
}

/// Why a usage probe failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProbeError {
    /// 401: the access token is no good.
    #[error("unauthorized")]
    Unauthorized,
    /// 403 ban/deactivation.
    #[error("banned: {0}")]
    Banned(String),
    /// Anything else; try again later.
    #[error("transient probe failure: {0}")]
    Transient(String),
}

/// What a request needs to talk upstream as this account. Secret: `Debug` redacts the token.
#[derive(Clone, Serialize)]
pub struct UpstreamCreds {
    /// Pool account id.
    pub account_id: AccountId,
    /// Bearer token.
    #[serde(skip)]
    pub access_token: String,
    /// Sent as `chatgpt-account-id`.
    pub chatgpt_account_id: Option<String>,
}

impl std::fmt::Debug for UpstreamCreds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamCreds")
            .field("account_id", &self.account_id)
            .field("access_token", &"<redacted>")
            .field("chatgpt_account_id", &self.chatgpt_account_id)
            .finish()
    }
}

/// All effects, handed to the pool at start.
#[derive(Clone)]
pub struct Effects {
    /// Durable storage.
    pub store: Arc<dyn Store>,
    /// Token endpoint.
    pub refresher: Arc<dyn TokenRefresher>,
    /// Usage endpoint.
    pub prober: Arc<dyn QuotaProber>,
    /// The refresh fence ([`NoFence`] on a single node).
    pub fence: Arc<dyn RefreshFence>,
    /// Time source.
    pub clock: Arc<dyn Clock>,
}
