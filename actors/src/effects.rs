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
    /// Time source.
    pub clock: Arc<dyn Clock>,
}
