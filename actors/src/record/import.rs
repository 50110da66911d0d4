//! The one rule for a record that arrives for an account the pool may already have — an import
//! through the admin API, the offline `accounts --data-dir` command, or a second file for the
//! same account found at start. [`AccountIndex`] says which account it is (same ChatGPT
//! account and user, or a refresh token the account holds or has spent); [`freshness`] says
//! whose tokens are newer; [`merge_import`] applies the import. The running pool (the account
//! actor, on its own record) and the offline path (on the files) call the same functions.
//!
//! Refresh tokens are single-use and rotate: a backup, yesterday's export or the same file
//! imported twice holds a token the pool may have spent since. Putting it back loses the
//! account at its next refresh (`refresh_token_reused`), so an import replaces the tokens only
//! when it is not known to be older. Known older: its refresh token is one the account rotated
//! away from (the record's `lineage`), or both sides say when they were issued and the import's
//! time is not later. The account's tokens are known dead when it is `expired`: then any
//! import not known to be spent replaces them, since new tokens are exactly its cure.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use crate::{AccountId, AccountRecord, Status, Tokens, UnixMs, jwt};

/// Spent refresh tokens remembered per account. Rotations happen about once per access-token
/// lifetime (days), so this covers months of backups.
pub const LINEAGE_MAX: usize = 32;

/// A refresh token's fingerprint: the first 16 hex digits of its SHA-256. Enough to recognise
/// the token again; never enough to use it (and a spent token is worthless anyway).
pub fn fingerprint(refresh_token: &str) -> String {
    let digest = Sha256::digest(refresh_token.as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

impl AccountRecord {
    /// Switches to a new refresh token, remembering the old one's fingerprint in the lineage
    /// (the same token again changes nothing). Every rotation goes through here.
    pub fn replace_refresh_token(&mut self, new: String) {
        match self.tokens.refresh_token.replace(new) {
            Some(old) if Some(&old) != self.tokens.refresh_token.as_ref() => {
                let fp = fingerprint(&old);
                self.lineage.retain(|f| *f != fp);
                self.lineage.push(fp);
                let excess = self.lineage.len().saturating_sub(LINEAGE_MAX);
                self.lineage.drain(..excess);
            }
            _ => {}
        }
    }

    /// True iff `refresh_token` is one this account has rotated away from.
    pub fn has_spent(&self, refresh_token: &str) -> bool {
        let fp = fingerprint(refresh_token);
        self.lineage.contains(&fp)
    }

    /// Fingerprints of the current refresh token and of every spent one.
    fn fingerprints(&self) -> impl Iterator<Item = String> + '_ {
        let current = self.tokens.refresh_token.as_deref().map(fingerprint);
        current.into_iter().chain(self.lineage.iter().cloned())
    }
}

/// When a token set was issued, as far as it tells: the later of its last refresh and the
/// access token's `iat`.
pub fn issued_at(t: &Tokens) -> Option<UnixMs> {
    t.last_refresh.max(jwt::issued_at(&t.access_token))
}

/// How an incoming record's tokens compare with the account's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// The very tokens the account holds (same refresh token, or same access token and none).
    Same,
    /// Newer, or the account's are dead, or nothing tells them apart: take the incoming ones.
    Newer,
    /// Older than the account's: keep the account's.
    Older,
}

/// Compares `incoming`'s tokens with `existing`'s (see the module doc for the rule).
pub fn freshness(existing: &AccountRecord, incoming: &AccountRecord) -> Freshness {
    let (old, new) = (&existing.tokens, &incoming.tokens);
    match (&old.refresh_token, &new.refresh_token) {
        (Some(a), Some(b)) if a == b => return Freshness::Same,
        (_, Some(b)) if existing.has_spent(b) => return Freshness::Older,
        (_, None) if new.access_token == old.access_token => return Freshness::Same,
        _ => {}
    }
    if existing.status == Status::Expired {
        return Freshness::Newer;
    }
    let later = |newer: bool| {
        if newer {
            Freshness::Newer
        } else {
            Freshness::Older
        }
    };
    match (issued_at(old), issued_at(new)) {
        (Some(o), Some(n)) => later(n > o),
        (Some(_), None) => Freshness::Older,
        (None, _) => match (old.expires_at, new.expires_at) {
            (Some(o), Some(n)) => later(n >= o),
            _ => Freshness::Newer,
        },
    }
}

/// What [`merge_import`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Merged {
    /// The import's tokens replaced the account's; a rotation in flight is superseded.
    Replaced,
    /// The import held the account's own tokens; identity and label were updated.
    Unchanged,
    /// The account's tokens are newer than the import's and were kept; only identity fields
    /// the account lacked were filled in.
    KeptNewer,
}

/// Applies `new`, an imported record of the same upstream account, to `old`. Tokens follow
/// [`freshness`]; a refresh token is never cleared; `banned` and `disabled` are never lifted;
/// `expired` (or `refreshing`) becomes `active` with new tokens; the import's identity fields
/// and label win when the import is not older.
pub fn merge_import(old: &mut AccountRecord, new: AccountRecord) -> Merged {
    let verdict = freshness(old, &new);
    if verdict == Freshness::Older {
        fill_identity(old, new);
        return Merged::KeptNewer;
    }
    let t = new.tokens.clone();
    let later_access = t.expires_at.max(old.tokens.expires_at) == t.expires_at;
    if !t.access_token.is_empty() && (verdict == Freshness::Newer || later_access) {
        old.tokens.access_token = t.access_token;
        old.tokens.expires_at = t.expires_at;
    }
    if verdict == Freshness::Newer {
        if let Some(rt) = t.refresh_token.filter(|r| !r.is_empty()) {
            old.replace_refresh_token(rt);
            // A refresh token nobody can have spent ends an ambiguity.
            old.refresh_ambiguous = false;
            if old.tokens.access_token.is_empty() {
                old.tokens.expires_at = new.tokens.expires_at;
            }
        }
        if t.id_token.is_some() {
            old.tokens.id_token = t.id_token;
        }
        old.tokens.last_refresh = t.last_refresh.or(old.tokens.last_refresh);
        // The imported tokens supersede whatever rotation was under way with the old ones.
        old.refresh_intent = None;
        if matches!(old.status, Status::Expired | Status::Refreshing)
            && new.status == Status::Active
        {
            old.status = Status::Active;
            old.status_reason = None;
            old.last_error = None;
        }
    }
    let (o, n) = (&mut old.identity, new.identity);
    o.email = n.email.or(o.email.take());
    o.plan = n.plan.or(o.plan.take());
    o.chatgpt_account_id = n.chatgpt_account_id.or(o.chatgpt_account_id.take());
    o.chatgpt_user_id = n.chatgpt_user_id.or(o.chatgpt_user_id.take());
    o.label = n.label.or(o.label.take());
    if verdict == Freshness::Newer {
        Merged::Replaced
    } else {
        Merged::Unchanged
    }
}

/// Fills the identity fields `old` lacks from an older copy (its label included); nothing the
/// account knows is overwritten by stale data.
fn fill_identity(old: &mut AccountRecord, new: AccountRecord) {
    let (o, n) = (&mut old.identity, new.identity);
    o.email = o.email.take().or(n.email);
    o.plan = o.plan.take().or(n.plan);
    o.chatgpt_account_id = o.chatgpt_account_id.take().or(n.chatgpt_account_id);
    o.chatgpt_user_id = o.chatgpt_user_id.take().or(n.chatgpt_user_id);
    o.label = o.label.take().or(n.label);
}

/// Which account a record belongs to: by `(chatgpt_account_id, chatgpt_user_id)`, else by a
/// refresh token an account holds or has spent. Kept by the pool supervisor for imports into
/// the running pool, and built from the files by the offline command and at start.
#[derive(Debug, Default)]
pub struct AccountIndex {
    /// Identity key → the account that owns it (the first one seen).
    by_identity: HashMap<(String, String), AccountId>,
    /// Refresh-token fingerprint (current or spent) → account.
    by_token: HashMap<String, AccountId>,
}

impl AccountIndex {
    /// Indexes an account (identity only if no other account owns it yet).
    pub fn insert(&mut self, rec: &AccountRecord) {
        if let Some(key) = rec.identity.dedup_key() {
            self.by_identity
                .entry(key)
                .or_insert_with(|| rec.id.clone());
        }
        for fp in rec.fingerprints() {
            self.by_token.insert(fp, rec.id.clone());
        }
    }

    /// The account `rec` is a copy of, if any.
    pub fn find(&self, rec: &AccountRecord) -> Option<&AccountId> {
        rec.identity
            .dedup_key()
            .and_then(|k| self.by_identity.get(&k))
            .or_else(|| rec.fingerprints().find_map(|fp| self.by_token.get(&fp)))
    }

    /// Forgets an account.
    pub fn remove(&mut self, id: &str) {
        self.by_identity.retain(|_, v| v != id);
        self.by_token.retain(|_, v| v != id);
    }

    /// The account that owns an identity key.
    pub fn owner(&self, key: &(String, String)) -> Option<&AccountId> {
        self.by_identity.get(key)
    }

    /// Makes `id` the owner of `key` (after it learned its identity from a refresh).
    pub fn set_owner(&mut self, key: (String, String), id: AccountId) {
        self.by_identity.retain(|_, v| *v != id);
        self.by_identity.insert(key, id);
    }

    /// Records that `id` now holds the refresh token with fingerprint `fp`.
    pub fn add_token(&mut self, fp: String, id: AccountId) {
        self.by_token.insert(fp, id);
    }
}
