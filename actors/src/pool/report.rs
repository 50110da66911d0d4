//! What the pool tells operators about itself: the pool summary (docs/quota.md rule 6). What
//! it tells about one account is the account's ([`crate::account::AccountView`]).

use serde::Serialize;

use crate::UnixMs;

/// Counts over the pool and whether it serves (docs/quota.md rule 6).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PoolSummary {
    /// Accounts in the pool.
    pub total: usize,
    /// Active accounts (including rate-limited ones).
    pub active: usize,
    /// Active accounts with an exhausted main bucket (derived, docs/quota.md rule 7).
    pub rate_limited: usize,
    /// Expired accounts.
    pub expired: usize,
    /// Banned accounts.
    pub banned: usize,
    /// Disabled accounts.
    pub disabled: usize,
    /// Accounts refreshing their token.
    pub refreshing: usize,
    /// Active accounts in a Cloudflare cooldown.
    pub cooling_down: usize,
    /// Active accounts in a refusal cooldown (upstream answered 403, 402 or an empty 404).
    pub refused: usize,
    /// Some account could serve a request now.
    pub serving: bool,
    /// Soonest reset among exhausted accounts (for 429 `resets_at`).
    pub soonest_reset_at: Option<UnixMs>,
    /// Leases held across the pool.
    pub in_flight: u64,
    /// Account actors the supervisor restarted after a failure since the pool started
    /// (`codex_rotor_actor_restarts_total`): a rising count means some account crash-loops.
    pub restarts: u64,
}
