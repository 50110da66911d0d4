//! Everything one account actor owns, and the synchronous rules over it: leases, quota events,
//! failure classes, operator views. The actor (`account.rs`) calls these with `now` and performs
//! the returned actions (probe, refresh, persist) — no I/O here except the store calls.

use std::sync::Arc;

use super::{
    AccountConfig, AccountView, Explanation, Penalty, UpstreamFailure, cooldown::Cooldown,
};
use crate::quota::headroom::Headroom;
use crate::quota::{Effect, Event};
use crate::rotation::{Candidate, Cooling};
use crate::{AccountRecord, RefreshReason, Status, Store, UnixMs, UpstreamCreds, Usage};

/// How long usage counters alone (requests, tokens, last use) may wait for a flush: with every
/// account busy, a write per account per tick was hundreds of file writes a second for figures
/// that are statistics, not state (docs/architecture.md "Writes": quota and usage may be coalesced). Quota changes
/// still go out on the next tick; everything on shutdown.
pub const USAGE_FLUSH_MS: UnixMs = 60_000;

/// What the actor must do after a state change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Probe the usage endpoint.
    Probe,
    /// Refresh the tokens.
    Refresh(RefreshReason),
}

/// The state of one account actor.
pub struct AccountState {
    /// The durable record (tokens, status, quota, usage).
    pub rec: AccountRecord,
    /// The quota and failure timings this account runs with.
    pub cfg: Arc<AccountConfig>,
    /// Leases held now.
    pub leases: u32,
    /// Cloudflare cooldown.
    pub cooldown: Cooldown,
    /// Refusal cooldown (403 without a deactivation signal, 402, empty-body 404).
    pub penalty: Penalty,
    /// Quota/usage changed since the last flush (coalesced writes).
    pub dirty: bool,
    /// Something beyond the usage counters changed (quota, last error): flushed on the next
    /// tick. Counters alone wait for [`USAGE_FLUSH_MS`].
    pub dirty_quota: bool,
    /// When the last coalesced flush was handed to the store (`None`: not yet).
    pub last_flush_at: Option<UnixMs>,
    /// False between receiving new tokens and having them on disk: no lease may see them.
    pub tokens_durable: bool,
    /// A refresh is in flight (single-flight).
    pub refreshing: Option<RefreshReason>,
    /// The refresh in flight has taken the refresh token (`BeginRefresh` answered).
    pub refresh_token_out: bool,
    /// An import replaced the tokens since the refresh in flight started: its answer is about
    /// tokens the account no longer holds and is dropped when it comes (or, if it has not taken
    /// the refresh token yet, it is dropped when it asks for it).
    pub refresh_superseded: bool,
    /// The fence's ticket of the refresh in flight (begun in the store, not yet finished or
    /// abandoned).
    pub fence_ticket: Option<crate::FenceTicket>,
    /// The new tokens are on disk and the fence is being asked to finish (single-flight).
    pub fence_finishing: bool,
    /// Another node owns the account now (a write or the fence's finish was refused): the
    /// actor stops after this message, serving and persisting nothing more.
    pub lost: bool,
    /// Consecutive transient refresh failures (retry backoff).
    pub refresh_failures: u32,
    /// Consecutive begins the fence refused as "later" (its own short backoff,
    /// `refresh::begin_retry_delay`); 0 once a begin is granted.
    pub begin_refusals: u8,
    /// When the next refresh is due (proactive or retry); started by the tick.
    pub refresh_due_at: Option<UnixMs>,
    /// A usage probe is in flight.
    pub probing: bool,
    /// When the last probe started.
    pub last_probe_at: Option<UnixMs>,
    /// Last availability pushed to the supervisor.
    pub last_pushed: Option<Candidate>,
    /// What one request costs of each window: a nearly used window takes one lease at a time.
    pub headroom: Headroom,
}

impl AccountState {
    /// Fresh state around a record loaded from disk.
    pub fn new(rec: AccountRecord, cfg: Arc<AccountConfig>) -> Self {
        let penalty = Penalty::restored(rec.refusal.as_ref());
        Self {
            rec,
            cfg,
            leases: 0,
            cooldown: Cooldown::default(),
            penalty,
            dirty: false,
            dirty_quota: false,
            last_flush_at: None,
            tokens_durable: true,
            refreshing: None,
            refresh_token_out: false,
            refresh_superseded: false,
            fence_ticket: None,
            fence_finishing: false,
            lost: false,
            refresh_failures: 0,
            begin_refusals: 0,
            refresh_due_at: None,
            probing: false,
            last_probe_at: None,
            last_pushed: None,
            headroom: Headroom::default(),
        }
    }

    /// Credentials for a request.
    pub fn creds(&self) -> UpstreamCreds {
        UpstreamCreds {
            account_id: self.rec.id.clone(),
            access_token: self.rec.tokens.access_token.clone(),
            chatgpt_account_id: self.rec.identity.chatgpt_account_id.clone(),
        }
    }

    /// The lease cap for a request now: the configured one, or 1 while a window relevant to the
    /// request has less headroom than the requests in flight plus one would use (the headroom
    /// rule; it never refuses the only request — exhaustion is the cached quota's word).
    pub fn lease_cap(&self, model_limit: Option<&str>, review: bool) -> u32 {
        if self
            .headroom
            .is_tight(&self.rec.quota, self.leases, model_limit, review)
        {
            1
        } else {
            self.cfg.max_leases
        }
    }

    /// Grants a lease if nothing refuses it; a Cloudflare cooldown does not when the pool picked
    /// the account `cooling` ([`Cooling`]).
    pub fn reserve(
        &mut self,
        model_limit: Option<&str>,
        review: bool,
        cooling: Cooling,
        now: UnixMs,
    ) -> Result<UpstreamCreds, String> {
        if let Some(why) = self.refusal(model_limit, review, cooling, now) {
            return Err(why);
        }
        self.headroom.granted(now, self.rec.usage.requests);
        self.leases += 1;
        self.rec.usage.last_used = Some(now);
        self.dirty = true;
        Ok(self.creds())
    }

    /// A lease ended; counts the request.
    pub fn release(&mut self) {
        self.leases = self.leases.saturating_sub(1);
        self.rec.usage.requests += 1;
        self.dirty = true;
    }

    /// Feeds a quota event; returns the actions its effects ask for.
    pub fn quota(&mut self, ev: Event, now: UnixMs) -> Vec<Action> {
        if ev == Event::Tick && !self.rec.quota.tick_due(now) {
            return Vec::new();
        }
        if let Event::HeaderObserved(o) = &ev {
            self.headroom.observe(o);
            // Upstream answered: Cloudflare let this request through, and upstream took the
            // account.
            self.cooldown.passed(o.at, now);
            self.penalty.passed(o.at);
            self.keep_penalty();
        }
        let before = self.rec.quota.clone();
        let fx = self.rec.quota.apply(ev, now, &self.cfg.quota);
        if self.rec.quota != before {
            self.dirty = true;
            self.dirty_quota = true;
        }
        for e in &fx {
            match e {
                Effect::Locked { bucket, until } => {
                    tracing::info!(account = %self.rec.id, %bucket, ?until, "quota bucket locked")
                }
                Effect::Unlocked { bucket } => {
                    tracing::info!(account = %self.rec.id, %bucket, "quota bucket unlocked")
                }
                _ => {}
            }
        }
        fx.iter()
            .any(|e| matches!(e, Effect::Probe { .. }))
            .then_some(Action::Probe)
            .into_iter()
            .collect()
    }

    /// Copies the refusal cooldown into the record when it changed, to be flushed with the
    /// next tick (a restart must not lift it).
    fn keep_penalty(&mut self) {
        let stored = self.penalty.stored();
        if self.rec.refusal != stored {
            self.rec.refusal = stored;
            self.dirty = true;
            self.dirty_quota = true;
        }
    }

    /// Tokens used by a request.
    pub fn usage(&mut self, u: Usage) {
        self.rec.usage.tokens += u;
        self.dirty = true;
    }

    /// Applies an upstream failure class (docs/failures.md) met by a request that started at
    /// `at`. Returns whether the status changed (which is persisted at once) and the action.
    pub fn failure(
        &mut self,
        f: UpstreamFailure,
        at: UnixMs,
        now: UnixMs,
    ) -> (bool, Option<Action>) {
        match f {
            UpstreamFailure::Unauthorized => {
                self.rec.last_error = Some("upstream 401".into());
                (
                    false,
                    Some(Action::Refresh(RefreshReason::UnauthorizedRecovery)),
                )
            }
            UpstreamFailure::Banned { reason } => {
                (self.set_status(Status::Banned, Some(reason)), None)
            }
            UpstreamFailure::Deactivated { reason } => (
                self.set_status(Status::Banned, Some(format!("deactivated: {reason}"))),
                None,
            ),
            UpstreamFailure::Cloudflare => {
                // `None`: sent before the last challenge was recorded, the same incident.
                if let Some(until) = self.cooldown.hit(at, now) {
                    tracing::warn!(account = %self.rec.id, cooldown_ms = until - now, level = self.cooldown.level, "Cloudflare challenge: cooling down");
                }
                self.rec.last_error = Some("Cloudflare challenge".into());
                self.dirty = true;
                self.dirty_quota = true;
                (false, None)
            }
            UpstreamFailure::Refused { cause, reason } => {
                if let Some(until) = self.penalty.hit(cause, reason.clone(), at, now) {
                    tracing::warn!(account = %self.rec.id, ?cause, cooldown_ms = until - now, level = self.penalty.level, "upstream refused the account: cooling down");
                }
                self.keep_penalty();
                self.rec.last_error = Some(format!("{}: {reason}", cause.text()));
                self.dirty = true;
                self.dirty_quota = true;
                (false, None)
            }
            UpstreamFailure::Transient { reason } | UpstreamFailure::AfterFirstByte { reason } => {
                self.rec.usage.failures += 1;
                self.rec.last_error = Some(reason);
                self.dirty = true;
                self.dirty_quota = true;
                (false, None)
            }
            UpstreamFailure::PrematureClose { reason } => {
                tracing::debug!(account = %self.rec.id, %reason, "premature close: not the account's fault");
                (false, None)
            }
        }
    }

    /// Changes the lifecycle status (never to or from anything quota-related).
    pub fn set_status(&mut self, s: Status, reason: Option<String>) -> bool {
        let changed = self.rec.status != s || self.rec.status_reason != reason;
        if changed {
            tracing::info!(account = %self.rec.id, from = self.rec.status.as_str(), to = s.as_str(), ?reason, "status change");
        }
        self.rec.status = s;
        self.rec.status_reason = reason;
        changed
    }

    /// Persists now (tokens, status). Logs and keeps the state dirty on failure.
    pub fn persist(&mut self, store: &dyn Store) -> bool {
        match store.save(&self.rec) {
            Ok(()) => {
                self.dirty = false;
                self.dirty_quota = false;
                true
            }
            Err(e) if store.is_fenced_out(&e) => {
                tracing::warn!(account = %self.rec.id, "another node owns the account now: dropping it");
                self.lost = true;
                self.dirty = false;
                false
            }
            Err(e) => {
                tracing::error!(account = %self.rec.id, error = %e, "could not persist the account");
                self.dirty = true;
                false
            }
        }
    }

    /// Flushes coalesced quota/usage changes (on `Tick`) without waiting for the disk: the
    /// store writes the snapshot later, in order with this account's other records.
    pub fn flush(&mut self, store: &dyn Store, now: UnixMs) {
        let due = self.dirty_quota || self.last_flush_at.is_none_or(|t| now - t >= USAGE_FLUSH_MS);
        if !self.dirty || !due {
            return;
        }
        match store.save_coalesced(&self.rec) {
            Ok(()) => {
                self.dirty = false;
                self.dirty_quota = false;
                self.last_flush_at = Some(now);
            }
            Err(e) => {
                tracing::error!(account = %self.rec.id, error = %e, "could not queue the account's flush")
            }
        }
    }

    /// Flushes pending changes and waits until they are durable (shutdown, stop).
    pub fn flush_durable(&mut self, store: &dyn Store) {
        if self.dirty && !self.lost {
            self.persist(store);
        }
    }

    /// The operator view (never tokens).
    pub fn view(&self, now: UnixMs) -> AccountView {
        let cooling = self.cooldown.active(now).is_some() || self.penalty.active(now).is_some();
        let derived = super::derived_status(self.rec.status, cooling, &self.rec.quota).to_string();
        AccountView {
            id: self.rec.id.clone(),
            identity: self.rec.identity.clone(),
            status: self.rec.status,
            status_reason: self.rec.status_reason.clone(),
            derived_status: derived,
            quota: self.rec.quota.clone(),
            usage: self.rec.usage.clone(),
            leases: self.leases,
            cooldown_until: self.cooldown.active(now),
            holds: self.holds(now),
            verify: self.rec.quota.verify_since.is_some(),
            last_error: self.rec.last_error.clone(),
            token_expires_at: self.rec.tokens.expires_at,
        }
    }

    /// Why the account is (not) available for an ordinary request.
    pub fn explain(&self, now: UnixMs) -> Explanation {
        let refusals = self.refusals(None, false, now);
        let until = if refusals.iter().all(|h| h.until.is_some()) {
            refusals.iter().filter_map(|h| h.until).max()
        } else {
            None
        };
        Explanation {
            available: refusals.is_empty(),
            reasons: refusals.iter().map(|h| h.reason.clone()).collect(),
            holds: self.holds(now),
            until,
        }
    }
}

#[cfg(test)]
mod tests;
