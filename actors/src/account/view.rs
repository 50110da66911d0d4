//! What an account tells operators: its view (docs/quota.md rule 7: the `rate_limited` badge
//! is derived from the quota) and why it is or is not available. None of these ever carries a
//! token.

use serde::Serialize;

use crate::{AccountId, Identity, Status, UnixMs, UsageCounters, quota::Quota};

/// One account as operators see it. Never contains tokens.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccountView {
    /// Account id.
    pub id: AccountId,
    /// Who it is.
    pub identity: Identity,
    /// Lifecycle status.
    pub status: Status,
    /// The reason the status holds, when it is not `active`.
    pub status_reason: Option<String>,
    /// Badge: `rate_limited` iff active with an exhausted bucket, `cooling_down` during a
    /// Cloudflare cooldown, else the status.
    pub derived_status: String,
    /// Cached quota.
    pub quota: Quota,
    /// Usage counters.
    pub usage: UsageCounters,
    /// Leases held now.
    pub leases: u32,
    /// Cloudflare cooldown end.
    pub cooldown_until: Option<UnixMs>,
    /// Everything that holds the account off requests now, each with its kind and until when
    /// (what the dashboard and `explain` show).
    pub holds: Vec<Hold>,
    /// The quota awaits confirmation (request or probe).
    pub verify: bool,
    /// Last upstream error.
    pub last_error: Option<String>,
    /// Access token expiry.
    pub token_expires_at: Option<UnixMs>,
}

/// The status badge operators see (docs/quota.md rule 7): the lifecycle status, except that an
/// active account in a Cloudflare cooldown shows `cooling_down` and an active account with an
/// exhausted quota bucket shows `rate_limited`. Nothing else decides that badge: the account
/// view, the admin API, the dashboard and `accounts list` all read it from here.
pub fn derived_status(status: Status, cooling_down: bool, quota: &Quota) -> &'static str {
    if status != Status::Active {
        status.as_str()
    } else if cooling_down {
        "cooling_down"
    } else if !quota.locks().is_empty() {
        "rate_limited"
    } else {
        "active"
    }
}

/// One thing that holds an account off requests, and until when.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hold {
    /// What holds it: `status`, `tokens`, `cloudflare` (challenge cooldown), `refused`
    /// (403/402/404 refusal cooldown), `not_included` (429 `usage_not_included`), `quota` (an
    /// exhausted window), `busy` (lease cap, headroom).
    pub kind: &'static str,
    /// The operator's sentence.
    pub reason: String,
    /// When it ends by itself, if it does.
    pub until: Option<UnixMs>,
}

/// Whether an account is available, and every reason it is not.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Explanation {
    /// It could take a lease now (for some model).
    pub available: bool,
    /// Human-readable reasons it cannot (empty when available).
    pub reasons: Vec<String>,
    /// The same reasons with their kind and end, plus what holds the account off some models
    /// only (another family exhausted or not included in the plan).
    pub holds: Vec<Hold>,
    /// When the latest-ending timed reason ends, if all reasons are timed.
    pub until: Option<UnixMs>,
}
