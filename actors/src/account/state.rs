//! Everything one account actor owns, and the synchronous rules over it: leases, quota events,
//! failure classes, operator views. The actor (`account.rs`) calls these with `now` and performs
//! the returned actions (probe, refresh, persist) — no I/O here except the store calls.

use std::sync::Arc;

use super::{AccountConfig, cooldown::Cooldown};
use crate::pool::{AccountView, Explanation, UpstreamFailure, UsageDelta};
use crate::quota::headroom::Headroom;
use crate::quota::{Effect, Event};
use crate::rotation::{Candidate, Cooling};
use crate::{AccountRecord, RefreshReason, Status, Store, UnixMs, UpstreamCreds};

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
    /// The refresh in flight spends tokens an import has replaced since: its answer is about
    /// tokens the account no longer holds and is dropped when it comes.
    pub refresh_superseded: bool,
    /// Consecutive transient refresh failures (retry backoff).
    pub refresh_failures: u32,
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
        Self {
            rec,
            cfg,
            leases: 0,
            cooldown: Cooldown::default(),
            dirty: false,
            dirty_quota: false,
            last_flush_at: None,
            tokens_durable: true,
            refreshing: None,
            refresh_token_out: false,
            refresh_superseded: false,
            refresh_failures: 0,
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

    /// Why the account cannot take a lease for a request (empty = it can).
    pub fn refusals(
        &self,
        model_limit: Option<&str>,
        review: bool,
        now: UnixMs,
    ) -> Vec<(String, Option<UnixMs>)> {
        let mut out = Vec::new();
        if self.rec.status != Status::Active {
            let why = self
                .rec
                .status_reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default();
            out.push((format!("status is {}{why}", self.rec.status.as_str()), None));
        }
        if !self.tokens_durable {
            out.push(("new tokens are not yet on disk".to_string(), None));
        }
        if self.rec.tokens.expires_at.is_some_and(|t| t <= now) {
            out.push(("access token expired; refresh pending".to_string(), None));
        }
        if let Some(until) = self.cooldown.active(now) {
            out.push(("Cloudflare challenge cooldown".to_string(), Some(until)));
        }
        for l in self.rec.quota.locks_for(model_limit, review) {
            out.push((format!("quota bucket {} exhausted", l.bucket), l.until));
        }
        if self.leases >= self.cfg.max_leases {
            out.push((format!("all {} leases in use", self.cfg.max_leases), None));
        } else if self.leases > 0
            && let Some(t) = self
                .headroom
                .tight(&self.rec.quota, self.leases, model_limit, review)
        {
            out.push((t.reason(), None));
        }
        out
    }

    /// True iff [`refusals`](Self::refusals) would be empty (but for a cooldown `cooling`
    /// lets through), checked without allocating: the path every lease takes.
    fn can_serve(
        &self,
        model_limit: Option<&str>,
        review: bool,
        cooling: Cooling,
        now: UnixMs,
    ) -> bool {
        self.rec.status == Status::Active
            && self.tokens_durable
            && self.rec.tokens.expires_at.is_none_or(|t| t > now)
            && self.cooldown.permits(cooling, now)
            && !self.rec.quota.exhausted_for(model_limit, review)
            && self.leases < self.lease_cap(model_limit, review)
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
        if !self.can_serve(model_limit, review, cooling, now) {
            let why = self.refusals(model_limit, review, now).into_iter().next();
            return Err(why.map_or_else(|| "unavailable".to_string(), |(w, _)| w));
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
            // Upstream answered: Cloudflare let this request through.
            self.cooldown.passed(o.at, now);
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

    /// Tokens used by a request.
    pub fn usage(&mut self, u: UsageDelta) {
        let c = &mut self.rec.usage;
        c.input_tokens += u.input_tokens;
        c.cached_tokens += u.cached_tokens;
        c.output_tokens += u.output_tokens;
        c.reasoning_tokens += u.reasoning_tokens;
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
        if self.dirty {
            self.persist(store);
        }
    }

    /// Availability as the supervisor's view needs it.
    pub fn candidate(&self, now: UnixMs) -> Candidate {
        let mut c = Self::seed(&self.rec, self.cfg.max_leases, now);
        c.serving &= self.tokens_durable;
        c.leases = self.leases;
        c.max_leases = self.lease_cap(None, false);
        c.cooldown_until = self.cooldown.active(now);
        c.cooldown_soft = self.cooldown.soft(now);
        c
    }

    /// True iff [`candidate`](Self::candidate) would equal `last`, checked without allocating:
    /// the actor asks after every message, and most messages (ticks, observed headers and
    /// usage) change nothing the supervisor's view holds.
    pub fn candidate_unchanged(&self, last: &Candidate, now: UnixMs) -> bool {
        let rec = &self.rec;
        let plan = rec.identity.plan.as_ref().or(rec.quota.plan_type.as_ref());
        let serving = rec.status == Status::Active
            && rec.tokens.expires_at.is_none_or(|t| t > now)
            && self.tokens_durable;
        last.id == rec.id
            && last.plan.as_ref() == plan
            && last.status == rec.status
            && last.serving == serving
            && last.leases == self.leases
            && last.max_leases == self.lease_cap(None, false)
            && last.requests == rec.usage.requests
            && last.last_used == rec.usage.last_used
            && last.window_reset_at == rec.quota.primary.as_ref().and_then(|b| b.reset_at)
            && last.cooldown_until == self.cooldown.active(now)
            && last.cooldown_soft == self.cooldown.soft(now)
            && rec.quota.locks_are(&last.locks)
    }

    /// Availability of a record before its actor runs: the supervisor seeds its view with it
    /// at spawn, so a pick right after start does not find an empty pool.
    pub fn seed(rec: &AccountRecord, max_leases: u32, now: UnixMs) -> Candidate {
        Candidate {
            id: rec.id.clone(),
            plan: rec
                .identity
                .plan
                .clone()
                .or_else(|| rec.quota.plan_type.clone()),
            status: rec.status,
            serving: rec.status == Status::Active && rec.tokens.expires_at.is_none_or(|t| t > now),
            leases: 0,
            max_leases,
            requests: rec.usage.requests,
            last_used: rec.usage.last_used,
            window_reset_at: rec.quota.primary.as_ref().and_then(|b| b.reset_at),
            locks: rec.quota.locks(),
            cooldown_until: None,
            cooldown_soft: false,
        }
    }

    /// The operator view (never tokens).
    pub fn view(&self, now: UnixMs) -> AccountView {
        let cooling = self.cooldown.active(now).is_some();
        let derived = crate::derived_status(self.rec.status, cooling, &self.rec.quota).to_string();
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
            verify: self.rec.quota.verify_since.is_some(),
            last_error: self.rec.last_error.clone(),
            token_expires_at: self.rec.tokens.expires_at,
        }
    }

    /// Why the account is (not) available for an ordinary request.
    pub fn explain(&self, now: UnixMs) -> Explanation {
        let refusals = self.refusals(None, false, now);
        let until = if refusals.iter().all(|(_, u)| u.is_some()) {
            refusals.iter().filter_map(|(_, u)| *u).max()
        } else {
            None
        };
        Explanation {
            available: refusals.is_empty(),
            reasons: refusals.into_iter().map(|(r, _)| r).collect(),
            until,
        }
    }
}

#[cfg(test)]
mod tests;
