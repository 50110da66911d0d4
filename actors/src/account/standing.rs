//! What an account can do now, each answered once: whether it can take a lease for a request
//! (and, for the operator, every reason it cannot), and the availability summary the pool's
//! view holds ([`Candidate`]). Both borrow the state, so the paths every lease and every
//! message take allocate nothing.

use std::ops::ControlFlow;

use super::{AccountState, Cooldown, Hold, Penalty};
use crate::quota::BucketId;
use crate::quota::headroom::Tight;
use crate::rotation::{Candidate, Cooling};
use crate::{AccountRecord, Status, UnixMs};

/// One reason the account cannot take a lease, borrowed from its state.
enum Refusal<'a> {
    /// The lifecycle status is not `active`, with its reason.
    Status(Status, Option<&'a str>),
    /// Another node owns the account now; the actor is stopping.
    Lost,
    /// New tokens are not yet durable.
    NotDurable,
    /// The access token expired (and cannot be refreshed if the refresh is ambiguous).
    Expired {
        /// The account is `refresh_ambiguous`.
        ambiguous: bool,
    },
    /// The account is `refresh_ambiguous`: it serves until its access token expires; this is
    /// listed among its holds only, never as a refusal.
    Ambiguous,
    /// A Cloudflare cooldown runs until then.
    Cooldown(UnixMs),
    /// A refusal cooldown (403, 402, empty-body 404) runs until then.
    Refused(&'a Penalty, UnixMs),
    /// The plan does not include the request's model family until then.
    NotIncluded(&'a str, UnixMs),
    /// A bucket that governs the request is exhausted until then (if known).
    Exhausted(BucketId<&'a str>, Option<UnixMs>),
    /// Every lease is in use.
    Full(u32),
    /// The headroom rule allows one lease at a time and one is held.
    Tight(Tight<&'a str>),
}

impl Refusal<'_> {
    /// The operator's sentence.
    fn text(&self) -> String {
        match self {
            Refusal::Status(s, why) => {
                let why = why.map(|r| format!(": {r}")).unwrap_or_default();
                format!("status is {}{why}", s.as_str())
            }
            Refusal::Lost => super::LOST.to_string(),
            Refusal::NotDurable => "new tokens are not yet on disk".to_string(),
            Refusal::Expired { ambiguous: false } => {
                "access token expired; refresh pending".to_string()
            }
            Refusal::Expired { ambiguous: true } | Refusal::Ambiguous => {
                super::AMBIGUOUS.to_string()
            }
            Refusal::Cooldown(_) => "Cloudflare challenge cooldown".to_string(),
            Refusal::Refused(p, _) => p.text(),
            Refusal::NotIncluded(family, _) => {
                format!("the plan does not include the {family} models (usage_not_included)")
            }
            Refusal::Exhausted(id, _) => format!("quota bucket {id} exhausted"),
            Refusal::Full(max) => format!("all {max} leases in use"),
            Refusal::Tight(t) => t.reason(),
        }
    }

    /// When this reason ends by itself, if it does.
    fn until(&self) -> Option<UnixMs> {
        match self {
            Refusal::Cooldown(t) | Refusal::Refused(_, t) | Refusal::NotIncluded(_, t) => Some(*t),
            Refusal::Exhausted(_, t) => *t,
            _ => None,
        }
    }

    /// What kind of hold it is, as the dashboard and `explain` name it.
    fn kind(&self) -> &'static str {
        match self {
            Refusal::Status(..) => "status",
            Refusal::Lost | Refusal::NotDurable | Refusal::Expired { .. } => "tokens",
            Refusal::Ambiguous => "refresh_ambiguous",
            Refusal::Cooldown(_) => "cloudflare",
            Refusal::Refused(..) => "refused",
            Refusal::NotIncluded(..) => "not_included",
            Refusal::Exhausted(..) => "quota",
            Refusal::Full(_) | Refusal::Tight(_) => "busy",
        }
    }

    fn hold(&self) -> Hold {
        Hold {
            kind: self.kind(),
            reason: self.text(),
            until: self.until(),
        }
    }
}

impl AccountState {
    /// Hands `f` every reason the account cannot take a lease for a request picked `cooling`,
    /// in the order the operator reads them, until `f` breaks. The one list of conditions
    /// behind [`refusals`](Self::refusals) and [`refusal`](Self::refusal).
    fn each_refusal<'a>(
        &'a self,
        model_limit: Option<&'a str>,
        review: bool,
        cooling: Cooling,
        now: UnixMs,
        f: &mut impl FnMut(Refusal<'a>) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        let rec = &self.rec;
        if rec.status != Status::Active {
            f(Refusal::Status(rec.status, rec.status_reason.as_deref()))?;
        }
        if self.lost {
            f(Refusal::Lost)?;
        }
        if !self.tokens_durable {
            f(Refusal::NotDurable)?;
        }
        if rec.tokens.expires_at.is_some_and(|t| t <= now) {
            f(Refusal::Expired {
                ambiguous: rec.refresh_ambiguous,
            })?;
        }
        if let Some(until) = self.cooldown.active(now)
            && !self.cooldown.permits(cooling, now)
        {
            f(Refusal::Cooldown(until))?;
        }
        if let Some(until) = self.penalty.active(now) {
            f(Refusal::Refused(&self.penalty, until))?;
        }
        if let Some(until) = rec.quota.not_included_for(model_limit, now) {
            f(Refusal::NotIncluded(
                crate::quota::family_of(model_limit),
                until,
            ))?;
        }
        for (id, b) in rec.quota.governing_locks(model_limit, review) {
            f(Refusal::Exhausted(id, b.lock_until()))?;
        }
        if self.leases >= self.cfg.max_leases {
            f(Refusal::Full(self.cfg.max_leases))?;
        } else if self.leases > 0
            && let Some(t) = self
                .headroom
                .tightest(&rec.quota, self.leases, model_limit, review)
        {
            f(Refusal::Tight(t))?;
        }
        ControlFlow::Continue(())
    }

    /// Why the account cannot take a lease for an ordinary pick, each reason with its kind and
    /// when it ends by itself (empty = it can).
    pub fn refusals(&self, model_limit: Option<&str>, review: bool, now: UnixMs) -> Vec<Hold> {
        let mut out = Vec::new();
        let _ = self.each_refusal(model_limit, review, Cooling::Avoid, now, &mut |r| {
            out.push(r.hold());
            ControlFlow::Continue(())
        });
        out
    }

    /// Everything that holds the account off some requests now, for operators: the reasons an
    /// ordinary request is refused, then each model family the plan does not include (an
    /// ordinary request of the main models may still be served).
    pub fn holds(&self, now: UnixMs) -> Vec<Hold> {
        let mut out = self.refusals(None, false, now);
        if self.rec.refresh_ambiguous && !out.iter().any(|h| h.reason == super::AMBIGUOUS) {
            out.push(Refusal::Ambiguous.hold());
        }
        for (family, until) in &self.rec.quota.not_included {
            if *until > now && family != crate::quota::MAIN_LIMIT {
                out.push(Refusal::NotIncluded(family.as_str(), *until).hold());
            }
        }
        for (id, b) in self.rec.quota.iter() {
            if b.limit_reached && !id.governs(None, false) {
                out.push(Refusal::Exhausted(id, b.lock_until()).hold());
            }
        }
        out
    }

    /// The first reason the account cannot take a lease for a request picked `cooling`
    /// (`None` = it can). Allocates only to word a refusal.
    pub fn refusal(
        &self,
        model_limit: Option<&str>,
        review: bool,
        cooling: Cooling,
        now: UnixMs,
    ) -> Option<String> {
        let mut first = None;
        let _ = self.each_refusal(model_limit, review, cooling, now, &mut |r| {
            first = Some(r.text());
            ControlFlow::Break(())
        });
        first
    }

    /// Availability as the supervisor's view needs it.
    pub fn candidate(&self, now: UnixMs) -> Candidate {
        self.summary(now).to_candidate()
    }

    /// True iff [`candidate`](Self::candidate) would equal `last`, checked without allocating:
    /// the actor asks after every message, and most messages (ticks, observed headers and
    /// usage) change nothing the supervisor's view holds.
    pub fn candidate_unchanged(&self, last: &Candidate, now: UnixMs) -> bool {
        self.summary(now).is(last)
    }

    /// The availability to push: [`candidate`](Self::candidate) iff it differs from `last`
    /// (always without one), from one summary, so the push after every message derives the
    /// headroom's lease cap once, not once to compare and again to build. `last` becomes
    /// the pushed candidate.
    pub fn candidate_if_changed(
        &self,
        last: &mut Option<Candidate>,
        now: UnixMs,
    ) -> Option<Candidate> {
        let sum = self.summary(now);
        match last {
            Some(l) if sum.is(l) => None,
            _ => {
                let c = sum.to_candidate();
                *last = Some(c.clone());
                Some(c)
            }
        }
    }

    /// Availability of a record before its actor runs: the supervisor seeds its view with it
    /// at spawn, so a pick right after start does not find an empty pool.
    pub fn seed(rec: &AccountRecord, max_leases: u32, now: UnixMs) -> Candidate {
        let benched = Penalty::default();
        Summary::of(
            rec,
            true,
            0,
            max_leases,
            (&Cooldown::default(), &benched),
            now,
        )
        .to_candidate()
    }

    fn summary(&self, now: UnixMs) -> Summary<'_> {
        let cap = self.lease_cap(None, false);
        Summary::of(
            &self.rec,
            self.tokens_durable && !self.lost,
            self.leases,
            cap,
            (&self.cooldown, &self.penalty),
            now,
        )
    }
}

/// The availability summary of an account, borrowed from its state: what a [`Candidate`]
/// holds, derived in one place.
struct Summary<'a> {
    rec: &'a AccountRecord,
    plan: Option<&'a String>,
    serving: bool,
    leases: u32,
    max_leases: u32,
    window_reset_at: Option<UnixMs>,
    cooldown_until: Option<UnixMs>,
    cooldown_soft: bool,
    refused_until: Option<UnixMs>,
}

impl<'a> Summary<'a> {
    /// The summary of `rec` with `leases` held under a cap of `max_leases`; `tokens_durable`
    /// false while new tokens are not on disk.
    fn of(
        rec: &'a AccountRecord,
        tokens_durable: bool,
        leases: u32,
        max_leases: u32,
        (cooldown, penalty): (&Cooldown, &Penalty),
        now: UnixMs,
    ) -> Self {
        Summary {
            rec,
            plan: rec.identity.plan.as_ref().or(rec.quota.plan_type.as_ref()),
            serving: rec.status == Status::Active
                && rec.tokens.expires_at.is_none_or(|t| t > now)
                && tokens_durable
                && penalty.active(now).is_none(),
            leases,
            max_leases,
            window_reset_at: rec.quota.primary.as_ref().and_then(|b| b.reset_at),
            cooldown_until: cooldown.active(now),
            cooldown_soft: cooldown.soft(now),
            refused_until: penalty.active(now),
        }
    }

    fn to_candidate(&self) -> Candidate {
        Candidate {
            id: self.rec.id.clone(),
            plan: self.plan.cloned(),
            status: self.rec.status,
            serving: self.serving,
            leases: self.leases,
            max_leases: self.max_leases,
            requests: self.rec.usage.requests,
            last_used: self.rec.usage.last_used,
            window_reset_at: self.window_reset_at,
            locks: self.rec.quota.locks(),
            not_included: self.rec.quota.not_included.keys().cloned().collect(),
            cooldown_until: self.cooldown_until,
            cooldown_soft: self.cooldown_soft,
            refused_until: self.refused_until,
        }
    }

    /// True iff [`to_candidate`](Self::to_candidate) would equal `c`.
    fn is(&self, c: &Candidate) -> bool {
        c.id == self.rec.id
            && c.plan.as_ref() == self.plan
            && c.status == self.rec.status
            && c.serving == self.serving
            && c.leases == self.leases
            && c.max_leases == self.max_leases
            && c.requests == self.rec.usage.requests
            && c.last_used == self.rec.usage.last_used
            && c.window_reset_at == self.window_reset_at
            && c.cooldown_until == self.cooldown_until
            && c.cooldown_soft == self.cooldown_soft
            && c.refused_until == self.refused_until
            && self.rec.quota.locks_are(&c.locks)
            && c.not_included.iter().eq(self.rec.quota.not_included.keys())
    }
}
