//! Transitions of the cached quota (docs/quota.md rules 2–5): a 429 locks a bucket and never
//! shrinks its reset; observed headers and probes replace the buckets they mention unless they
//! are older than what is known; a tick clears windows whose reset passed and asks for
//! verification. Pure: `now` is an argument and effects are returned, not performed.

use std::time::Duration;

use serde::Serialize;

use super::{
    Bucket, BucketId, MAIN_LIMIT, NOT_INCLUDED_MS, Observation, Quota, Rejection429, RejectionKind,
    Span, Window,
};
use crate::UnixMs;

/// How long a 429 that names no reset locks its bucket unless `pool.default_429_backoff` says
/// otherwise (docs/quota.md rule 2). Also the `Retry-After` of an exhausted answer whose reset
/// is unknown (docs/quota.md rule 6).
pub const DEFAULT_429_BACKOFF: Duration = Duration::from_secs(60);

/// The configured values the quota rules read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuotaConfig {
    /// Lock length for a 429 that names no reset at all (`pool.default_429_backoff`).
    pub default_backoff_ms: i64,
}

impl QuotaConfig {
    /// The rules with `pool.default_429_backoff` = `backoff`.
    pub fn with_backoff(backoff: Duration) -> Self {
        Self {
            default_backoff_ms: i64::try_from(backoff.as_millis()).unwrap_or(i64::MAX / 2),
        }
    }
}

impl Default for QuotaConfig {
    fn default() -> Self {
        Self::with_backoff(DEFAULT_429_BACKOFF)
    }
}

impl Rejection429 {
    /// When the 429 lets its bucket serve again, counted from `from` (docs/quota.md rule 2): the
    /// body's `resets_at`, else `from` + its `resets_in_seconds`, else `from` + `Retry-After`,
    /// else `from` + the configured backoff. The one reading of a 429's reset hint: the quota
    /// locks the bucket with it (capped by the window) and the proxy answers with it.
    pub fn reset_hint(&self, from: UnixMs, cfg: &QuotaConfig) -> UnixMs {
        self.resets_at
            .or_else(|| self.resets_in_secs.map(|s| from.saturating_add(secs(s))))
            .or_else(|| self.retry_after_secs.map(|s| from.saturating_add(secs(s))))
            .unwrap_or_else(|| from.saturating_add(cfg.default_backoff_ms))
    }
}

/// Evidence fed to the quota.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// Upstream rejected a request with 429 (docs/quota.md rule 2).
    Applied429(Rejection429),
    /// `x-codex-*` headers of an upstream answer (docs/quota.md rule 3).
    HeaderObserved(Observation),
    /// A `/wham/usage` probe answered (authoritative; confirms a pending verification).
    Probed(Observation),
    /// Periodic timer: clear passed windows, schedule probes (docs/quota.md rules 4–5).
    Tick,
}

/// What the owner of the quota must do or know after an event.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// A bucket is now exhausted until `until`.
    Locked {
        /// The bucket.
        bucket: BucketId,
        /// Reset time.
        until: Option<UnixMs>,
    },
    /// A bucket is no longer exhausted.
    Unlocked {
        /// The bucket.
        bucket: BucketId,
    },
    /// Probe the usage endpoint to confirm the quota.
    Probe {
        /// What made the bucket doubtful, for the log.
        reason: String,
    },
    /// The plan does not include a model family (429 `usage_not_included`): the account is
    /// kept off it until `until`.
    NotIncluded {
        /// The family id (`codex` = the main models).
        family: String,
        /// When the account may try the family again.
        until: UnixMs,
    },
    /// Evidence older than what is known about a bucket was ignored.
    IgnoredStale {
        /// The bucket.
        bucket: BucketId,
    },
}

impl Quota {
    /// Applies one event at time `now`; returns the effects. The only way the quota changes.
    pub fn apply(&mut self, event: Event, now: UnixMs, cfg: &QuotaConfig) -> Vec<Effect> {
        let mut fx = Vec::new();
        match event {
            Event::Applied429(r) => self.apply_429(&r, now, cfg, &mut fx),
            Event::HeaderObserved(obs) | Event::Probed(obs) => self.observe(obs, now, &mut fx),
            Event::Tick => self.tick(now, &mut fx),
        }
        fx
    }

    fn apply_429(
        &mut self,
        r: &Rejection429,
        now: UnixMs,
        cfg: &QuotaConfig,
        fx: &mut Vec<Effect>,
    ) {
        let own = r.model_limit.as_deref().map(normalize_limit);
        if r.kind == RejectionKind::UsageNotIncluded {
            let family = own.unwrap_or_else(|| MAIN_LIMIT.to_owned());
            let until = now.saturating_add(NOT_INCLUDED_MS);
            self.not_included.insert(family.clone(), until);
            fx.push(Effect::NotIncluded { family, until });
            self.fetched_at = Some(now);
            return;
        }
        if let Some(obs) = r.observed.clone() {
            self.observe(obs, now, fx);
        }
        let named = r
            .limit
            .as_deref()
            .map(normalize_limit)
            .filter(|id| !id.is_empty() && id != MAIN_LIMIT);
        let hint = r.reset_hint(now, cfg);
        // An extra family the pool did not know meters the requested model evidently does:
        // the model's own family is locked beside it.
        let also_own = named.is_some() && own != named;
        let families = [Some(named), also_own.then_some(own)];
        for family in families.into_iter().flatten() {
            let id = self.bucket_for(family, hint, now);
            self.lock(id, r.at, hint, now, fx);
        }
        self.fetched_at = Some(now);
    }

    /// The bucket of `family` (`None` = the main windows) a 429 whose reset is `hint` locks:
    /// the short window, unless the reset lies beyond its known length (by more than a
    /// minute) — then the long window
    /// (a reset days away is the weekly window's, whichever window the 429 was charged to).
    fn bucket_for(&self, family: Option<String>, hint: UnixMs, now: UnixMs) -> BucketId {
        let (short, long) = match family {
            None => (BucketId::Primary, BucketId::Secondary),
            Some(id) => (
                BucketId::Extra(id.clone(), Span::Primary),
                BucketId::Extra(id, Span::Secondary),
            ),
        };
        let short_window = self.bucket(&short).and_then(|b| b.window_secs);
        // By more than a minute: header resets are whole seconds from upstream's clock.
        let beyond = |w: u64| hint > now.saturating_add(secs(w)).saturating_add(60_000);
        if short_window.is_some_and(beyond) {
            long
        } else {
            short
        }
    }

    /// Locks one bucket with a 429's reset `hint` (docs/quota.md rules 2 and 5).
    fn lock(
        &mut self,
        name: BucketId,
        at: UnixMs,
        hint: UnixMs,
        now: UnixMs,
        fx: &mut Vec<Effect>,
    ) {
        let b = self.slot_mut(&name).get_or_insert_with(Bucket::default);
        if b.observed_at.is_some_and(|seen| seen > at) {
            fx.push(Effect::IgnoredStale { bucket: name });
            return;
        }
        let hint = match b.window_secs {
            Some(w) => hint.min(now.saturating_add(secs(w))),
            None => hint,
        };
        let existing = b.reset_at.filter(|t| *t > hint);
        b.reset_at = Some(existing.unwrap_or(hint));
        b.recheck_at = existing.map(|_| b.recheck_at.map_or(hint, |t| t.min(hint)));
        b.limit_reached = true;
        b.used_percent = b.used_percent.max(100.0);
        b.observed_at = Some(b.observed_at.map_or(at, |t| t.max(at)));
        fx.push(Effect::Locked {
            bucket: name,
            until: b.reset_at,
        });
    }

    fn observe(&mut self, obs: Observation, now: UnixMs, fx: &mut Vec<Effect>) {
        let at = obs.at;
        let main = [obs.primary, obs.secondary, obs.code_review];
        for (id, w) in BucketId::MAIN.into_iter().zip(main) {
            replace(self.slot_mut(&id), w, at, id, fx);
        }
        for (id, x) in obs.extra {
            let id = normalize_limit(&id);
            let slot = self.extra.entry(id.clone()).or_default();
            if x.name.is_some() {
                slot.name = x.name;
            }
            for (span, w) in Span::ALL.into_iter().zip([x.primary, x.secondary]) {
                let name = BucketId::Extra(id.clone(), span);
                replace(slot.slot_mut(span), w, at, name, fx);
            }
        }
        if obs.credits.is_some() {
            self.credits = obs.credits;
        }
        if obs.plan_type.is_some() {
            self.plan_type = obs.plan_type;
        }
        if self.verify_since.is_some_and(|since| at >= since) {
            self.verify_since = None;
        }
        self.fetched_at = Some(now);
    }

    fn tick(&mut self, now: UnixMs, fx: &mut Vec<Effect>) {
        self.not_included.retain(|_, until| *until > now);
        let mut verify = false;
        let verify_pending = self.verify_since.is_some();
        let ids: Vec<BucketId> = self.ids().map(|id| id.to_owned()).collect();
        for name in ids {
            let Some(b) = self.slot_mut(&name).as_mut() else {
                continue;
            };
            if b.reset_at.is_some_and(|t| t <= now) {
                let was_locked = b.limit_reached;
                b.used_percent = 0.0;
                b.limit_reached = false;
                b.recheck_at = None;
                b.reset_at = next_reset(b.reset_at, b.window_secs, now);
                verify = true;
                if was_locked {
                    let reason = format!("{name} window reset passed");
                    fx.push(Effect::Unlocked { bucket: name });
                    fx.push(Effect::Probe { reason });
                }
            } else if b.recheck_at.is_some_and(|t| t <= now) {
                b.recheck_at = None;
                verify = true;
                fx.push(Effect::Probe {
                    reason: format!("{name} 429 retry time passed"),
                });
            } else if b.limit_reached && b.reset_at.is_none() && !verify_pending {
                verify = true;
                fx.push(Effect::Probe {
                    reason: format!("{name} locked without reset time"),
                });
            }
        }
        if verify && self.verify_since.is_none() {
            self.verify_since = Some(now);
        }
    }
}

/// Replaces one cached bucket with an observed window unless the cache holds newer evidence.
fn replace(
    slot: &mut Option<Bucket>,
    w: Option<Window>,
    at: UnixMs,
    name: BucketId,
    fx: &mut Vec<Effect>,
) {
    let Some(w) = w else { return };
    if slot
        .as_ref()
        .and_then(|b| b.observed_at)
        .is_some_and(|seen| seen > at)
    {
        fx.push(Effect::IgnoredStale { bucket: name });
        return;
    }
    let was_locked = slot.as_ref().is_some_and(|b| b.limit_reached);
    let cap = w.window_secs.map(|s| at + secs(s));
    let reset_at = match (w.reset_at, cap) {
        (Some(r), Some(c)) => Some(r.min(c)),
        (r, _) => r,
    };
    let limit_reached = w.limit_reached.unwrap_or(w.used_percent >= 100.0);
    let b = Bucket {
        used_percent: w.used_percent,
        window_secs: w.window_secs,
        reset_at,
        limit_reached,
        observed_at: Some(at),
        recheck_at: None,
    };
    match (was_locked, limit_reached) {
        (false, true) => fx.push(Effect::Locked {
            bucket: name,
            until: reset_at,
        }),
        (true, false) => fx.push(Effect::Unlocked { bucket: name }),
        _ => {}
    }
    *slot = Some(b);
}

/// The first reset after `now`, advancing by whole windows; unknown without a window length.
fn next_reset(reset_at: Option<UnixMs>, window_secs: Option<u64>, now: UnixMs) -> Option<UnixMs> {
    let (r, w) = (reset_at?, secs(window_secs?));
    if w <= 0 {
        return None;
    }
    Some(r.saturating_add((now.saturating_sub(r) / w + 1).saturating_mul(w)))
}

/// Limit ids use `_` (header families use `-`).
pub(crate) fn normalize_limit(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    normalize_limit_into(id, &mut out);
    out
}

/// [`normalize_limit`] written into `out` (cleared first), for callers that reuse one buffer.
pub(crate) fn normalize_limit_into(id: &str, out: &mut String) {
    out.clear();
    out.extend(id.trim().chars().map(|c| match c {
        '-' => '_',
        c => c.to_ascii_lowercase(),
    }));
}

fn secs(s: u64) -> i64 {
    i64::try_from(s)
        .map_or(i64::MAX / 2_000, |s| s.min(i64::MAX / 2_000))
        .saturating_mul(1000)
}
