//! The duplicate rules of an import, applied to records on disk when no daemon is running (the
//! pool applies the same rules itself in `PoolHandle::add`). An incoming account that matches an
//! existing one by (ChatGPT account id, user id) — or by refresh token — updates its tokens and
//! identity in place, keeping its id, quota and usage. A banned or disabled account is never
//! re-activated by an import; an expired one is, because fresh tokens are exactly its cure.

use rotor_actors::{AccountRecord, Status};
use serde::Serialize;

use super::import::dedup_key;

/// What a merge did, for the CLI and admin answers. Ids only, never tokens.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MergeReport {
    /// Accounts that were not in the pool.
    pub added: Vec<String>,
    /// Existing accounts whose tokens were replaced.
    pub updated: Vec<String>,
    /// Existing accounts updated but left banned/disabled (id and status), so the operator
    /// knows the import did not bring them back.
    pub kept_inactive: Vec<(String, Status)>,
}

/// Merges `incoming` into `existing` and returns the report plus the records to save (new or
/// changed). `existing` is updated in place.
pub fn merge(
    existing: &mut Vec<AccountRecord>,
    incoming: Vec<AccountRecord>,
) -> (MergeReport, Vec<AccountRecord>) {
    let mut report = MergeReport::default();
    let mut changed = Vec::new();
    for mut rec in incoming {
        match existing.iter_mut().find(|e| same_account(e, &rec)) {
            Some(old) => {
                update(old, rec);
                if matches!(old.status, Status::Banned | Status::Disabled) {
                    report.kept_inactive.push((old.id.clone(), old.status));
                }
                report.updated.push(old.id.clone());
                changed.push(old.clone());
            }
            None => {
                while existing.iter().any(|e| e.id == rec.id) {
                    rec.id = super::new_id();
                }
                report.added.push(rec.id.clone());
                changed.push(rec.clone());
                existing.push(rec);
            }
        }
    }
    (report, changed)
}

/// True if `a` and `b` are the same upstream account.
pub fn same_account(a: &AccountRecord, b: &AccountRecord) -> bool {
    let same_rt =
        a.tokens.refresh_token.is_some() && a.tokens.refresh_token == b.tokens.refresh_token;
    let both_known =
        a.identity.chatgpt_account_id.is_some() && b.identity.chatgpt_account_id.is_some();
    same_rt || (both_known && dedup_key(a) == dedup_key(b))
}

/// Applies an incoming duplicate to the existing record.
pub fn update(old: &mut AccountRecord, new: AccountRecord) {
    if !new.tokens.access_token.is_empty() {
        old.tokens.access_token = new.tokens.access_token;
        old.tokens.expires_at = new.tokens.expires_at;
    }
    // A refresh token is never cleared, only replaced by a newer one.
    if new.tokens.refresh_token.is_some() {
        old.tokens.refresh_token = new.tokens.refresh_token;
        if old.tokens.access_token.is_empty() {
            old.tokens.expires_at = None;
        }
    }
    if new.tokens.id_token.is_some() {
        old.tokens.id_token = new.tokens.id_token;
    }
    old.tokens.last_refresh = new.tokens.last_refresh.or(old.tokens.last_refresh);
    // The imported tokens supersede whatever rotation was in flight when the old ones died.
    old.refresh_intent = None;
    let (o, n) = (&mut old.identity, new.identity);
    o.email = n.email.or(o.email.take());
    o.plan = n.plan.or(o.plan.take());
    o.chatgpt_account_id = n.chatgpt_account_id.or(o.chatgpt_account_id.take());
    o.chatgpt_user_id = n.chatgpt_user_id.or(o.chatgpt_user_id.take());
    o.label = n.label.or(o.label.take());
    if matches!(old.status, Status::Expired | Status::Refreshing) && new.status == Status::Active {
        old.status = Status::Active;
        old.status_reason = None;
        old.last_error = None;
    }
}
