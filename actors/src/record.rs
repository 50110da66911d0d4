//! The durable record of one account — exactly what its JSON file holds. The account actor owns
//! it in memory and hands it to the [`Store`](crate::Store) to persist. Tokens never appear in
//! `Debug` output: [`Tokens`] redacts itself. What an import may change of a record is decided
//! in one place, [`import`].

pub mod import;

use serde::{Deserialize, Serialize};

use crate::{AccountId, UnixMs, quota::Quota};

/// Version of the on-disk record format, bumped when a field changes meaning.
pub const RECORD_VERSION: u32 = 1;

/// OAuth credentials of one account. Secret: never logged, never shown to operators.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Tokens {
    /// Bearer token sent upstream; short-lived.
    pub access_token: String,
    /// Single-use refresh token; losing it loses the account, so it is persisted before use.
    pub refresh_token: Option<String>,
    /// OpenID token carrying identity claims, kept for export to Codex CLI.
    pub id_token: Option<String>,
    /// When the access token expires (JWT `exp`), drives the proactive refresh schedule.
    pub expires_at: Option<UnixMs>,
    /// When the tokens were last refreshed, the fallback schedule when `exp` is unknown.
    pub last_refresh: Option<UnixMs>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("access_token", &"<redacted>")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "<redacted>"),
            )
            .field("id_token", &self.id_token.as_ref().map(|_| "<redacted>"))
            .field("expires_at", &self.expires_at)
            .field("last_refresh", &self.last_refresh)
            .finish()
    }
}

/// Who the account is; shown to operators and used to deduplicate imports.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Identity {
    /// E-mail from the id token, for operators.
    pub email: Option<String>,
    /// Subscription plan (`free`, `plus`, `pro`, `team`…), used for plan routing.
    pub plan: Option<String>,
    /// Workspace id sent upstream as `chatgpt-account-id`; half of the dedup key.
    pub chatgpt_account_id: Option<String>,
    /// User id; team members share the account id and differ here.
    pub chatgpt_user_id: Option<String>,
    /// Free-form operator label.
    pub label: Option<String>,
}

impl Identity {
    /// Fills every field this identity lacks from the claims of a fresh token (`label` is never
    /// a claim); the plan follows the claim when it changes (upgrades, downgrades). Returns true
    /// iff something changed. Known account and user ids are never overwritten: they are the
    /// dedup key.
    pub fn learn(&mut self, claims: Identity) -> bool {
        let before = self.clone();
        fill(&mut self.email, claims.email);
        fill(&mut self.chatgpt_account_id, claims.chatgpt_account_id);
        fill(&mut self.chatgpt_user_id, claims.chatgpt_user_id);
        if claims.plan.is_some() {
            self.plan = claims.plan;
        }
        *self != before
    }

    /// Dedup key `(chatgpt_account_id, chatgpt_user_id)`, when the account id is known.
    pub fn dedup_key(&self) -> Option<(String, String)> {
        let acct = self.chatgpt_account_id.clone()?;
        Some((acct, self.chatgpt_user_id.clone().unwrap_or_default()))
    }
}

/// Sets `slot` to `v` if `slot` is empty.
fn fill(slot: &mut Option<String>, v: Option<String>) {
    if slot.as_deref().is_none_or(str::is_empty) && v.is_some() {
        *slot = v;
    }
}

/// Lifecycle marker of an account. Never means "rate limited": that is read from the quota.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Usable (subject to quota, leases and cooldowns).
    #[default]
    Active,
    /// Switched off by an operator; never re-activated implicitly.
    Disabled,
    /// Tokens unusable; needs a new login.
    Expired,
    /// Banned or deactivated upstream.
    Banned,
    /// Access token rejected; a refresh is under way.
    Refreshing,
}

impl Status {
    /// Lowercase name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Disabled => "disabled",
            Status::Expired => "expired",
            Status::Banned => "banned",
            Status::Refreshing => "refreshing",
        }
    }
}

/// Why a token refresh happens; sent upstream as `refresh_reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefreshReason {
    /// The access token is about to expire.
    ProactiveExpiry,
    /// Upstream answered 401 with the current access token.
    UnauthorizedRecovery,
}

impl RefreshReason {
    /// Wire name (`proactive_expiry` / `unauthorized_recovery`).
    pub fn as_str(self) -> &'static str {
        match self {
            RefreshReason::ProactiveExpiry => "proactive_expiry",
            RefreshReason::UnauthorizedRecovery => "unauthorized_recovery",
        }
    }
}

/// Durable marker written before the token endpoint is called: if the daemon dies mid-rotation,
/// the next start knows a refresh token may have been spent and retries (or asks for a login).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefreshIntent {
    /// When the refresh started.
    pub started_at: UnixMs,
    /// Why it started.
    pub reason: RefreshReason,
}

/// Tokens upstream reported: those of one request (its terminal event's `usage`), or the sum
/// over an account's requests ([`UsageCounters::tokens`]). The one usage record; `+=` adds
/// another to it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Usage {
    /// Input tokens (`input_tokens`).
    pub input_tokens: u64,
    /// Cached input tokens (`input_tokens_details.cached_tokens`).
    pub cached_tokens: u64,
    /// Output tokens (`output_tokens`).
    pub output_tokens: u64,
    /// Reasoning tokens (`output_tokens_details.reasoning_tokens`).
    pub reasoning_tokens: u64,
}

impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, u: Usage) {
        self.input_tokens += u.input_tokens;
        self.cached_tokens += u.cached_tokens;
        self.output_tokens += u.output_tokens;
        self.reasoning_tokens += u.reasoning_tokens;
    }
}

/// Per-account usage counters, for operators and least-used rotation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UsageCounters {
    /// Requests served (counted when the lease is released).
    pub requests: u64,
    /// Tokens reported by upstream, summed; stored flat beside the counts, as the record
    /// always had them.
    #[serde(flatten)]
    pub tokens: Usage,
    /// When a lease on this account was last granted.
    pub last_used: Option<UnixMs>,
    /// Upstream failures recorded against the account.
    pub failures: u64,
}

/// One account as stored in `<data_dir>/accounts/<id>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountRecord {
    /// Format version ([`RECORD_VERSION`]).
    #[serde(default = "record_version")]
    pub version: u32,
    /// Daemon-generated id (16 lowercase hex chars); also the file name.
    pub id: AccountId,
    /// Who the account is.
    #[serde(default)]
    pub identity: Identity,
    /// OAuth credentials.
    pub tokens: Tokens,
    /// Lifecycle marker.
    #[serde(default)]
    pub status: Status,
    /// Why the status is what it is (e.g. "needs login").
    #[serde(default)]
    pub status_reason: Option<String>,
    /// Cached quota: the single truth about exhaustion.
    #[serde(default)]
    pub quota: Quota,
    /// Usage counters.
    #[serde(default)]
    pub usage: UsageCounters,
    /// When the account was added.
    #[serde(default)]
    pub added_at: UnixMs,
    /// Set (durably) before calling the token endpoint, cleared after the new tokens are durable.
    #[serde(default)]
    pub refresh_intent: Option<RefreshIntent>,
    /// Last upstream error seen, for operators.
    #[serde(default)]
    pub last_error: Option<String>,
    /// Fingerprints of the refresh tokens this account has rotated away from, oldest first
    /// (at most [`import::LINEAGE_MAX`]): an imported copy holding one of them is older than the
    /// account, whatever its file says, and must not put a spent token back.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lineage: Vec<String>,
    /// The escalating refusal cooldown running when the record was written (docs/failures.md):
    /// kept so that a restart neither lifts it nor starts its escalation over. Absent in older
    /// records and when no refusal is counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<RefusalStep>,
    /// A refresh may have spent the current refresh token without its result being stored
    /// (docs/cluster.md "Refresh under fencing"): the account serves on its access token until
    /// that expires and is never refreshed; only fresh tokens (an import, a re-login) clear it.
    /// Set by a cluster claim that found an expired intent, or a refresh abandoned after its call
    /// may have reached the token endpoint.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub refresh_ambiguous: bool,
}

/// The durable part of an account's refusal cooldown ([`crate::account::Penalty`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusalStep {
    /// Refusals met in a row: the next one doubles the cooldown from here.
    pub level: u32,
    /// End of the current cooldown.
    pub until: UnixMs,
    /// When the last refusal was recorded: a request that gets through after it ends the
    /// escalation.
    pub last_hit: UnixMs,
}

fn record_version() -> u32 {
    RECORD_VERSION
}

impl AccountRecord {
    /// A fresh active record with the given id and tokens, everything else empty.
    pub fn new(id: impl Into<AccountId>, tokens: Tokens, added_at: UnixMs) -> Self {
        Self {
            version: RECORD_VERSION,
            id: id.into(),
            identity: Identity::default(),
            tokens,
            status: Status::Active,
            status_reason: None,
            quota: Quota::default(),
            usage: UsageCounters::default(),
            added_at,
            refresh_intent: None,
            last_error: None,
            lineage: Vec::new(),
            refusal: None,
            refresh_ambiguous: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_counters_keep_their_tokens_flat_beside_the_counts() {
        let mut c = UsageCounters {
            requests: 2,
            last_used: Some(5),
            failures: 1,
            ..UsageCounters::default()
        };
        let one = Usage {
            input_tokens: 10,
            cached_tokens: 4,
            output_tokens: 7,
            reasoning_tokens: 2,
        };
        c.tokens += one;
        c.tokens += one;
        let json = serde_json::to_string(&c).expect("serializes");
        assert_eq!(
            json,
            r#"{"requests":2,"input_tokens":20,"cached_tokens":8,"output_tokens":14,"reasoning_tokens":4,"last_used":5,"failures":1}"#
        );
        assert_eq!(serde_json::from_str::<UsageCounters>(&json).ok(), Some(c));
        let old = r#"{"requests":3,"output_tokens":9}"#;
        let read: UsageCounters = serde_json::from_str(old).expect("a partial record reads");
        assert_eq!((read.requests, read.tokens.output_tokens), (3, 9));
    }
}
