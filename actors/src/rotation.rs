//! Rotation: which account serves the next request. Pure — [`choose`] takes the candidates, a
//! [`Policy`] and `now` and returns the accounts to try, best first. The supervisor keeps the
//! same order incrementally in a [`View`] so that picking is O(log n); the chosen actor's
//! `Reserve` still has the last word.

mod view;

use serde::{Deserialize, Serialize};

pub use view::View;

use crate::{AccountId, Status, UnixMs, quota::Lock};

/// How the next account is chosen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Fewest leases, then fewest requests, then least recently used.
    #[default]
    LeastUsed,
    /// Each account in turn.
    RoundRobin,
    /// Keep using the most recently used account until it cannot serve.
    Sticky,
}

/// What an account tells the supervisor about its availability (pushed on every change).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Candidate {
    /// Account id.
    pub id: AccountId,
    /// Plan, for plan routing.
    pub plan: Option<String>,
    /// Lifecycle status (for the pool summary).
    pub status: Status,
    /// Lifecycle allows serving (status `active`, tokens usable).
    pub serving: bool,
    /// Leases currently held.
    pub leases: u32,
    /// Lease cap of the account.
    pub max_leases: u32,
    /// Requests served so far (least-used order).
    pub requests: u64,
    /// Last lease granted (sticky and least-used order).
    pub last_used: Option<UnixMs>,
    /// When the primary (short) window resets, if known. Least-used spends first the quota
    /// that is about to reset: what an account has left is lost at its reset anyway.
    pub window_reset_at: Option<UnixMs>,
    /// Exhausted buckets.
    pub locks: Vec<Lock>,
    /// Model families the plan does not include (429 `usage_not_included`), by family id
    /// ([`crate::quota::family_of`]); re-pushed when one lapses.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_included: Vec<String>,
    /// Cloudflare cooldown end.
    pub cooldown_until: Option<UnixMs>,
    /// End of a refusal cooldown (403, 402, empty-body 404): the account is not `serving`
    /// until then; kept apart for the pool summary and the 503's reasons.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused_until: Option<UnixMs>,
    /// The cooldown follows a single challenge since the account last got through: a pool
    /// with every other account at its lease cap may use it rather than make a request wait
    /// ([`Cooling::Soft`]).
    pub cooldown_soft: bool,
}

impl Candidate {
    /// True iff the main windows are exhausted (excluded for every model).
    pub fn main_locked(&self) -> bool {
        self.locks_for(None, false).next().is_some()
    }

    /// When every lock relevant to a request has reset (`None` if not locked or unknown).
    pub fn available_again(&self, model_limit: Option<&str>, review: bool) -> Option<UnixMs> {
        let untils: Option<Vec<UnixMs>> = self
            .locks_for(model_limit, review)
            .map(|l| l.until)
            .collect();
        untils?.into_iter().max()
    }

    /// Exhausted buckets that govern a request ([`BucketId::governs`](crate::quota::BucketId::governs)).
    pub fn locks_for<'a>(
        &'a self,
        model_limit: Option<&'a str>,
        review: bool,
    ) -> impl Iterator<Item = &'a Lock> {
        self.locks
            .iter()
            .filter(move |l| l.bucket.governs(model_limit, review))
    }
}

/// The request-specific side of a choice.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Policy {
    /// Extra limit the model is metered by (see [`crate::quota::limit_for_model`]).
    pub model_limit: Option<String>,
    /// A code-review request (consults the code-review bucket).
    pub review: bool,
    /// Plans allowed to serve the model; `None` = any. Accounts of unknown plan are allowed.
    pub plans: Option<Vec<String>>,
    /// Accounts already tried for this request.
    pub exclude: Vec<AccountId>,
    /// Account that served this conversation before; preferred if eligible.
    pub affinity: Option<AccountId>,
    /// Whether accounts cooling down after a Cloudflare challenge may serve.
    pub cooling: Cooling,
}

/// How a pick treats accounts cooling down after a Cloudflare challenge. A cooldown keeps
/// requests off an account Cloudflare may challenge again; it must never be what empties the
/// pool, since a challenge page costs one upstream round trip and a failover, while a refused
/// request costs the client its answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cooling {
    /// No account serves while its cooldown runs: the normal pick.
    #[default]
    Avoid,
    /// Every account that could serve is at its lease cap: an account that met a single
    /// challenge may serve rather than make the request wait. One that met challenge after
    /// challenge may not: trying it again under load would only collect more challenge pages.
    Soft,
    /// Nothing else can serve the request: any cooling account may, whose cooldown ends first
    /// first (it met the fewest or the oldest challenges).
    Any,
}

impl Cooling {
    /// Whether a cooldown running until `until` (`soft`: after a single challenge) refuses a
    /// lease at `now`. The one rule behind both the view's hint and the actor's answer.
    pub fn refuses(self, until: Option<UnixMs>, soft: bool, now: UnixMs) -> bool {
        until.is_some_and(|t| t > now)
            && match self {
                Cooling::Avoid => true,
                Cooling::Soft => !soft,
                Cooling::Any => false,
            }
    }

    /// The way to try cooling accounts after a pick found nothing: a busy pool may use the
    /// softly cooling ones; a pool that would refuse (everything cooling, exhausted or out of
    /// service) any of them.
    pub fn fallback(no: &NoChoice) -> Cooling {
        match no {
            NoChoice::Busy { .. } => Cooling::Soft,
            NoChoice::Exhausted { .. } | NoChoice::Unavailable { .. } => Cooling::Any,
        }
    }
}

/// Why a candidate cannot serve a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// Excluded by the request.
    Excluded,
    /// Status is not active.
    NotServing,
    /// Cloudflare cooldown.
    CoolingDown,
    /// A relevant bucket is exhausted.
    Exhausted,
    /// Plan does not serve the model.
    WrongPlan,
    /// Lease cap reached.
    Full,
}

/// Checks one candidate against a request.
pub fn eligible(c: &Candidate, p: &Policy, now: UnixMs) -> Result<(), Refusal> {
    if p.exclude.contains(&c.id) {
        return Err(Refusal::Excluded);
    }
    standing(c, p, now)
}

/// [`eligible`] without the request's exclusions: what the account itself could do.
fn standing(c: &Candidate, p: &Policy, now: UnixMs) -> Result<(), Refusal> {
    if !c.serving {
        return Err(Refusal::NotServing);
    }
    if p.cooling.refuses(c.cooldown_until, c.cooldown_soft, now) {
        return Err(Refusal::CoolingDown);
    }
    if let (Some(plans), Some(plan)) = (&p.plans, &c.plan)
        && !plans.iter().any(|x| x.eq_ignore_ascii_case(plan))
    {
        return Err(Refusal::WrongPlan);
    }
    let family = crate::quota::family_of(p.model_limit.as_deref());
    if c.not_included.iter().any(|f| f == family) {
        return Err(Refusal::WrongPlan);
    }
    if c.locks_for(p.model_limit.as_deref(), p.review)
        .next()
        .is_some()
    {
        return Err(Refusal::Exhausted);
    }
    if c.leases >= c.max_leases {
        return Err(Refusal::Full);
    }
    Ok(())
}

/// Sort key of a candidate under a strategy (smaller = preferred); ties broken by id.
///
/// `least_used` (exhausted accounts are already filtered out): earliest primary-window reset
/// first ("use it before it resets"; an unknown reset comes after every known one) → fewer
/// requests, counting those in flight (an account counts a request when its lease ends) →
/// least recently used. Serving a request raises the count and `last_used`, so accounts that
/// tie on the reset take turns.
pub fn key(strategy: Strategy, c: &Candidate) -> (i64, i64, i64) {
    let last = c.last_used.unwrap_or(0);
    match strategy {
        Strategy::LeastUsed => (
            c.window_reset_at.unwrap_or(UnixMs::MAX),
            i64::try_from(c.requests)
                .unwrap_or(i64::MAX)
                .saturating_add(i64::from(c.leases)),
            last,
        ),
        Strategy::Sticky => (-last, 0, 0),
        Strategy::RoundRobin => (0, 0, 0),
    }
}

/// Why no account could be chosen.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NoChoice {
    /// Every otherwise-usable account is exhausted; the soonest reset among them.
    Exhausted {
        /// Soonest reset.
        soonest_reset: Option<UnixMs>,
    },
    /// Every account that could serve is at its lease cap: a lease frees up soon, so the caller
    /// waits (bounded) instead of failing a request the pool can serve.
    Busy {
        /// Human-readable reason, used if the wait runs out.
        reason: String,
    },
    /// Nothing usable for another reason (empty pool, all disabled or cooling).
    Unavailable {
        /// Human-readable reason.
        reason: String,
    },
}

/// Orders the eligible candidates for a request, best first: the affinity account if eligible,
/// then by strategy (round robin starts after `rr_cursor`); through cooldowns
/// ([`Policy::cooling`]), the cooling accounts by cooldown end ([`through_cooldowns`]).
/// Returns at most `k`.
pub fn choose(
    candidates: &[Candidate],
    strategy: Strategy,
    rr_cursor: Option<&str>,
    p: &Policy,
    now: UnixMs,
    k: usize,
) -> Result<Vec<AccountId>, NoChoice> {
    if p.cooling != Cooling::Avoid {
        let mut cooling: Vec<&Candidate> = candidates
            .iter()
            .filter(|c| c.cooldown_until.is_some())
            .collect();
        cooling.sort_by(|a, b| (a.cooldown_until, &a.id).cmp(&(b.cooldown_until, &b.id)));
        let affinity = p
            .affinity
            .as_ref()
            .and_then(|a| candidates.iter().find(|c| &c.id == a));
        return through_cooldowns(affinity, cooling.into_iter(), p, now, k);
    }
    let mut ok: Vec<&Candidate> = candidates
        .iter()
        .filter(|c| eligible(c, p, now).is_ok())
        .collect();
    ok.sort_by(|a, b| (key(strategy, a), &a.id).cmp(&(key(strategy, b), &b.id)));
    if strategy == Strategy::RoundRobin
        && let Some(cur) = rr_cursor
    {
        let split = ok
            .iter()
            .position(|c| c.id.as_str() > cur)
            .unwrap_or(ok.len());
        ok.rotate_left(split);
    }
    let mut out: Vec<AccountId> = Vec::with_capacity(k);
    if let Some(a) = &p.affinity
        && ok.iter().any(|c| &c.id == a)
    {
        out.push(a.clone());
    }
    out.extend(
        ok.iter()
            .map(|c| c.id.clone())
            .filter(|id| p.affinity.as_ref() != Some(id)),
    );
    out.truncate(k);
    if out.is_empty() {
        return Err(no_choice(candidates.iter(), p, now));
    }
    Ok(out)
}

/// The pick through cooldowns: the affinity account if eligible, then the accounts with a
/// cooldown in the order given (soonest end first), at most `k`. Nothing eligible is `Busy`
/// if some were only at their lease cap (the request waits for one), else `Unavailable`; the
/// caller then keeps the classification of the pick that came first.
pub fn through_cooldowns<'a>(
    affinity: Option<&'a Candidate>,
    by_end: impl Iterator<Item = &'a Candidate>,
    p: &Policy,
    now: UnixMs,
    k: usize,
) -> Result<Vec<AccountId>, NoChoice> {
    let (mut out, mut full) = (Vec::with_capacity(k), false);
    for c in affinity.into_iter().chain(by_end) {
        if out.len() >= k {
            break;
        }
        match eligible(c, p, now) {
            Ok(()) if !out.contains(&c.id) => out.push(c.id.clone()),
            Err(Refusal::Full) => full = true,
            _ => {}
        }
    }
    match (out.is_empty(), full) {
        (false, _) => Ok(out),
        (true, true) => Err(NoChoice::Busy {
            reason: "every account that could serve is at its lease cap, cooling ones included"
                .into(),
        }),
        (true, false) => Err(NoChoice::Unavailable {
            reason: "no cooling account can serve either".into(),
        }),
    }
}

/// Classifies an empty choice: exhausted (docs/quota.md rule 6: answer 429 with the soonest reset) iff some
/// account would serve but for its quota, none is merely busy, and none that this request
/// already tried could still serve (a 5xx on it is not the pool running out of quota).
pub fn no_choice<'a>(
    all: impl Iterator<Item = &'a Candidate>,
    p: &Policy,
    now: UnixMs,
) -> NoChoice {
    let (mut soonest, mut total) = (None::<UnixMs>, 0usize);
    let mut reasons = std::collections::BTreeMap::<&'static str, usize>::new();
    for c in all {
        total += 1;
        let verdict = match eligible(c, p, now) {
            // An account this request already tried counts for what it is now: exhausted if
            // its 429 locked it, otherwise "excluded" (it could serve, only not this request,
            // e.g. after a 5xx), which means the pool is not exhausted.
            Err(Refusal::Excluded) => match standing(c, p, now) {
                Ok(()) | Err(Refusal::Full) => Err(Refusal::Excluded),
                other => other,
            },
            v => v,
        };
        match verdict {
            Err(Refusal::Exhausted) => {
                *reasons.entry("exhausted").or_default() += 1;
                if let Some(t) = c.available_again(p.model_limit.as_deref(), p.review) {
                    soonest = Some(soonest.map_or(t, |s: UnixMs| s.min(t)));
                }
            }
            Err(r) => *reasons.entry(refusal_name(r)).or_default() += 1,
            Ok(()) => *reasons.entry("eligible").or_default() += 1,
        }
    }
    let has = |reason| reasons.contains_key(reason);
    if has("exhausted") && !has("at lease cap") && !has("excluded") {
        return NoChoice::Exhausted {
            soonest_reset: soonest,
        };
    }
    let reason = if total == 0 {
        "no accounts in the pool".to_string()
    } else {
        let parts: Vec<String> = reasons.iter().map(|(k, v)| format!("{v} {k}")).collect();
        format!("no account can serve: {}", parts.join(", "))
    };
    if has("at lease cap") {
        NoChoice::Busy { reason }
    } else {
        NoChoice::Unavailable { reason }
    }
}

fn refusal_name(r: Refusal) -> &'static str {
    match r {
        Refusal::Excluded => "excluded",
        Refusal::NotServing => "not active",
        Refusal::CoolingDown => "cooling down",
        Refusal::Exhausted => "exhausted",
        Refusal::WrongPlan => "wrong plan",
        Refusal::Full => "at lease cap",
    }
}
