//! What `accounts list` shows of an account — never a token — built the same way from a record
//! on disk (offline) and from the admin API's account list (through a daemon), so both print
//! the same table: id, label, email, plan, the derived status badge (`rotor_actors::
//! derived_status`: an active account with an exhausted bucket is `rate_limited`), the quota
//! and the access token's expiry.

use rotor_actors::quota::Quota;
use rotor_actors::{AccountRecord, Identity, UnixMs, derived_status};
use serde::{Deserialize, Serialize};

/// One account as `accounts list` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ListedAccount {
    /// Daemon account id.
    pub id: String,
    /// Operator label.
    pub label: Option<String>,
    /// Email from the token claims.
    pub email: Option<String>,
    /// Subscription plan.
    pub plan: Option<String>,
    /// The status badge (`active`, `rate_limited`, `cooling_down`, `expired`…).
    pub status: String,
    /// Why, when not active (e.g. "needs login").
    pub status_reason: Option<String>,
    /// The quota for humans: each bucket's use, and when an exhausted one resets
    /// ("primary 12%, secondary 100% (resets in 1h)"); "-" when none is known yet.
    pub quota: String,
    /// Access token expiry for humans: "expires in 42m", "expired", "unknown".
    pub token: String,
}

/// The fields of an `/admin/accounts` entry the listing reads (the pool's `AccountView`).
#[derive(Debug, Deserialize)]
struct AdminAccount {
    /// Account id.
    id: String,
    /// Who it is.
    #[serde(default)]
    identity: Identity,
    /// The badge, derived by the account actor with [`derived_status`].
    derived_status: String,
    /// Why the status is what it is.
    #[serde(default)]
    status_reason: Option<String>,
    /// Cached quota.
    #[serde(default)]
    quota: Quota,
    /// Access token expiry.
    #[serde(default)]
    token_expires_at: Option<UnixMs>,
}

impl ListedAccount {
    /// The listing of a record at `now` (no daemon: no cooldown is running).
    pub fn of(rec: &AccountRecord, now: UnixMs) -> Self {
        let badge = derived_status(rec.status, false, &rec.quota);
        Self::row(
            &rec.id,
            &rec.identity,
            badge,
            rec.status_reason.clone(),
            &rec.quota,
            rec.tokens.expires_at,
            now,
        )
    }

    /// The listing of every account in an `/admin/accounts` answer, sorted by id.
    pub fn of_admin_list(doc: &serde_json::Value, now: UnixMs) -> Result<Vec<Self>, String> {
        let accounts = doc
            .get("accounts")
            .cloned()
            .ok_or("the admin answer has no `accounts`")?;
        let accounts: Vec<AdminAccount> = serde_json::from_value(accounts)
            .map_err(|e| format!("unexpected admin answer: {e}"))?;
        let mut rows: Vec<Self> = accounts
            .iter()
            .map(|a| {
                let reason = a.status_reason.clone();
                Self::row(
                    &a.id,
                    &a.identity,
                    &a.derived_status,
                    reason,
                    &a.quota,
                    a.token_expires_at,
                    now,
                )
            })
            .collect();
        rows.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(rows)
    }

    /// The listing of records, sorted by id (the order the daemon lists them in).
    pub fn of_records(records: &[AccountRecord], now: UnixMs) -> Vec<Self> {
        let mut rows: Vec<Self> = records.iter().map(|r| Self::of(r, now)).collect();
        rows.sort_by(|a, b| a.id.cmp(&b.id));
        rows
    }

    /// One row from its parts.
    fn row(
        id: &str,
        who: &Identity,
        badge: &str,
        status_reason: Option<String>,
        quota: &Quota,
        expires_at: Option<UnixMs>,
        now: UnixMs,
    ) -> Self {
        let token = match expires_at {
            Some(exp) if exp > now => format!("expires in {}", relative(exp - now)),
            Some(_) => "expired".to_owned(),
            None => "unknown".to_owned(),
        };
        ListedAccount {
            id: id.to_owned(),
            label: who.label.clone(),
            email: who.email.clone(),
            plan: who.plan.clone(),
            status: badge.to_owned(),
            status_reason,
            quota: quota_text(quota, now),
            token,
        }
    }
}

/// "primary 12%, secondary 100% (resets in 1h)", or "-".
fn quota_text(q: &Quota, now: UnixMs) -> String {
    let parts: Vec<String> = q
        .iter()
        .map(|(name, b)| {
            let pct = if b.limit_reached {
                100.0
            } else {
                b.used_percent.clamp(0.0, 100.0)
            };
            let reset = match b.reset_at {
                Some(r) if b.limit_reached && r > now => {
                    format!(" (resets in {})", relative(r - now))
                }
                _ => String::new(),
            };
            format!("{name} {pct:.0}%{reset}")
        })
        .collect();
    if parts.is_empty() {
        "-".to_owned()
    } else {
        parts.join(", ")
    }
}

/// Prints the table (or, with `json`, the rows as JSON).
pub fn print(rows: &[ListedAccount], json: bool) -> anyhow::Result<()> {
    if json {
        crate::outln!("{}", serde_json::to_string_pretty(rows)?)?;
        return Ok(());
    }
    crate::outln!(
        "{:<16}  {:<16}  {:<28}  {:<6}  {:<12}  {:<14}  {:<36}  REASON",
        "ID",
        "LABEL",
        "EMAIL",
        "PLAN",
        "STATUS",
        "TOKEN",
        "QUOTA"
    )?;
    for r in rows {
        crate::outln!(
            "{:<16}  {:<16}  {:<28}  {:<6}  {:<12}  {:<14}  {:<36}  {}",
            r.id,
            r.label.as_deref().unwrap_or("-"),
            r.email.as_deref().unwrap_or("-"),
            r.plan.as_deref().unwrap_or("-"),
            r.status,
            r.token,
            r.quota,
            r.status_reason.as_deref().unwrap_or("")
        )?;
    }
    Ok(())
}

/// A duration in ms as a short human string ("42s", "5m", "3h", "2d").
fn relative(ms: i64) -> String {
    let s = ms / 1000;
    match s {
        ..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86_399 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}
