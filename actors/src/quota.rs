//! The cached quota of one account — the single truth about whether it is exhausted (docs/quota.md
//! rules 1–5). Plain data and pure functions: evidence goes in with the time upstream produced
//! it, effects come out; no tokio, no clock. Parsing of the evidence lives in [`headers`] (the
//! `x-codex-*` response headers) and [`usage`] (the `/wham/usage` JSON); the transitions in
//! [`apply`](Quota::apply).

mod apply;
mod bucket;
pub mod headers;
pub mod headroom;
pub mod usage;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use apply::{DEFAULT_429_BACKOFF, Effect, Event, QuotaConfig};
pub use bucket::{BucketId, Span, UnknownBucket};

use crate::UnixMs;

/// One observed rate-limit window, as upstream reported it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Window {
    /// Share of the window used, 0–100 (may exceed 100).
    pub used_percent: f64,
    /// Window length in seconds, if known.
    pub window_secs: Option<u64>,
    /// When the window resets.
    pub reset_at: Option<UnixMs>,
    /// Explicit upstream flag; `None` means derive it from `used_percent >= 100`.
    pub limit_reached: Option<bool>,
}

/// Credit balance of the account, kept until newer evidence replaces it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Credits {
    /// The account has purchased credits.
    pub has_credits: bool,
    /// Credits are unlimited.
    pub unlimited: bool,
    /// Balance as upstream formats it (a decimal string).
    pub balance: Option<String>,
}

/// Windows of one named extra limit (e.g. `codex_bengalfox`, the Spark models).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ExtraObservation {
    /// Display name (`x-<id>-limit-name`).
    pub name: Option<String>,
    /// Short window.
    pub primary: Option<Window>,
    /// Long window.
    pub secondary: Option<Window>,
}

/// Everything one upstream answer (headers) or one /wham/usage probe said about quota.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Observation {
    /// When the evidence was produced: the request's START time (older evidence never wins).
    pub at: UnixMs,
    /// Plan reported alongside.
    pub plan_type: Option<String>,
    /// The main short window (5 h for paid plans).
    pub primary: Option<Window>,
    /// The main long window (weekly).
    pub secondary: Option<Window>,
    /// Code-review limit.
    pub code_review: Option<Window>,
    /// Named extra limits by id.
    pub extra: BTreeMap<String, ExtraObservation>,
    /// Credits snapshot.
    pub credits: Option<Credits>,
}

/// What kind of 429 upstream sent (`error.type` / `error.code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectionKind {
    /// `usage_limit_reached`: a quota window is exhausted.
    UsageLimitReached,
    /// `rate_limit_exceeded`: short-term throttling.
    RateLimitExceeded,
    /// `usage_not_included`: the plan does not include the requested model family; no window
    /// is locked, the account is kept off that family ([`Quota::not_included`]).
    UsageNotIncluded,
    /// Anything else.
    #[default]
    Other,
}

/// A 429 from upstream, already parsed from body + headers by `src/`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Rejection429 {
    /// When the rejected request started.
    pub at: UnixMs,
    /// Limit id from `x-codex-active-limit` (e.g. `codex_bengalfox`); `None`/`"codex"` = primary.
    pub limit: Option<String>,
    /// `error.resets_at` (converted to ms).
    pub resets_at: Option<UnixMs>,
    /// `error.resets_in_seconds`.
    pub resets_in_secs: Option<u64>,
    /// `Retry-After` header.
    pub retry_after_secs: Option<u64>,
    /// What kind of 429 it was.
    pub kind: RejectionKind,
    /// The limit family of the requested model ([`limit_for_model`]; `None` = the main
    /// models): the family a `usage_not_included` keeps the account off, and the one locked
    /// beside an extra family the 429 names (that family evidently meters the model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_limit: Option<String>,
    /// The quota the 429's own headers report (docs/quota.md rule 3): applied before the
    /// lock, so a window the headers show exhausted is locked until its own reset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<Observation>,
}

/// One cached window: what the pool believes about it, and how sure it is.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Bucket {
    /// Share used, 0–100.
    pub used_percent: f64,
    /// Window length in seconds, if known; caps reset hints and advances resets.
    pub window_secs: Option<u64>,
    /// When the window resets.
    pub reset_at: Option<UnixMs>,
    /// The window is exhausted: the account is excluded for models this bucket applies to.
    pub limit_reached: bool,
    /// Time of the newest evidence about this bucket; older evidence is ignored.
    pub observed_at: Option<UnixMs>,
    /// Rule 5: a lock kept longer than the 429 asked only by never-shrink is re-probed then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recheck_at: Option<UnixMs>,
}

impl Bucket {
    /// When a lock of this bucket may lift: the 429's own retry time when only never-shrink
    /// holds the lock longer (rule 5: the bucket is re-probed then), else its reset. What the
    /// pool, the dashboard and `explain` show as the lock's end — a short 429 is a short lock,
    /// not the rest of a 5-hour window.
    pub fn lock_until(&self) -> Option<UnixMs> {
        self.recheck_at.or(self.reset_at)
    }
}

/// Cached windows of one named extra limit.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ExtraLimit {
    /// Display name.
    pub name: Option<String>,
    /// Short window.
    pub primary: Option<Bucket>,
    /// Long window.
    pub secondary: Option<Bucket>,
}

/// The cached quota of one account.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Quota {
    /// Plan as upstream last reported it.
    pub plan_type: Option<String>,
    /// Main short window.
    pub primary: Option<Bucket>,
    /// Main long window.
    pub secondary: Option<Bucket>,
    /// Code-review window (only consulted for review requests).
    pub code_review: Option<Bucket>,
    /// Named extra limits by id, kept when headers do not mention them.
    pub extra: BTreeMap<String, ExtraLimit>,
    /// Credits, kept until replaced.
    pub credits: Option<Credits>,
    /// When quota evidence was last applied.
    pub fetched_at: Option<UnixMs>,
    /// Set when a reset was inferred locally (or a lock has no reset): the next request or a
    /// probe must confirm the quota. Holds the time it was set.
    pub verify_since: Option<UnixMs>,
    /// Model families upstream said the plan does not include (429 `usage_not_included`), by
    /// family id ([`family_of`]), with when the account may try that family again
    /// ([`NOT_INCLUDED_MS`] later). Not exhaustion: the account still serves other families.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub not_included: BTreeMap<String, UnixMs>,
}

/// The family id of the main models' limit (`x-codex-*`).
pub const MAIN_LIMIT: &str = "codex";

/// How long a `usage_not_included` keeps an account off a model family: long enough that the
/// pool does not ask again all day, short enough that a plan upgrade is noticed without an
/// operator.
pub const NOT_INCLUDED_MS: UnixMs = 24 * 60 * 60_000;

/// The family id of a request's limit: its extra limit, or [`MAIN_LIMIT`].
pub fn family_of(model_limit: Option<&str>) -> &str {
    model_limit.unwrap_or(MAIN_LIMIT)
}

/// The extra limit that applies to a model: Spark (`spark`/`bengalfox`) → `codex_bengalfox`.
pub fn limit_for_model(model: &str) -> Option<&'static str> {
    let has = |word: &str| {
        model
            .as_bytes()
            .windows(word.len())
            .any(|w| w.eq_ignore_ascii_case(word.as_bytes()))
    };
    (has("spark") || has("bengalfox")).then_some("codex_bengalfox")
}

/// A bucket that currently excludes the account, with its id and when it resets.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Lock {
    /// The exhausted bucket.
    pub bucket: BucketId,
    /// When it resets, if known.
    pub until: Option<UnixMs>,
}

impl ExtraLimit {
    /// The slot of one of its windows.
    pub fn slot(&self, span: Span) -> &Option<Bucket> {
        match span {
            Span::Primary => &self.primary,
            Span::Secondary => &self.secondary,
        }
    }

    /// The slot of one of its windows, to change it.
    pub fn slot_mut(&mut self, span: Span) -> &mut Option<Bucket> {
        match span {
            Span::Primary => &mut self.primary,
            Span::Secondary => &mut self.secondary,
        }
    }
}

impl Quota {
    /// The id of every bucket slot the quota has, in the stable order: the main buckets,
    /// then each extra limit by id, short window first. The one enumeration of buckets.
    pub fn ids(&self) -> impl Iterator<Item = BucketId<&str>> {
        let extra = self
            .extra
            .keys()
            .flat_map(|id| Span::ALL.map(|s| BucketId::Extra(id.as_str(), s)));
        BucketId::MAIN.into_iter().chain(extra)
    }

    /// The cached bucket an id names, if known.
    pub fn bucket<L: AsRef<str>>(&self, id: &BucketId<L>) -> Option<&Bucket> {
        match id {
            BucketId::Primary => self.primary.as_ref(),
            BucketId::Secondary => self.secondary.as_ref(),
            BucketId::CodeReview => self.code_review.as_ref(),
            BucketId::Extra(l, s) => self.extra.get(l.as_ref())?.slot(*s).as_ref(),
        }
    }

    /// The slot of the bucket an id names, to change it (an extra limit is added if new).
    pub fn slot_mut(&mut self, id: &BucketId) -> &mut Option<Bucket> {
        match id {
            BucketId::Primary => &mut self.primary,
            BucketId::Secondary => &mut self.secondary,
            BucketId::CodeReview => &mut self.code_review,
            BucketId::Extra(l, s) => self.extra.entry(l.clone()).or_default().slot_mut(*s),
        }
    }

    /// Every known bucket with its id, in the order of [`ids`](Self::ids), without allocating.
    pub fn iter(&self) -> impl Iterator<Item = (BucketId<&str>, &Bucket)> {
        // Walks the slots themselves rather than looking each id of `ids` up again: it runs
        // several times per lease (the availability push, the headroom rule).
        let main = [
            (BucketId::Primary, &self.primary),
            (BucketId::Secondary, &self.secondary),
            (BucketId::CodeReview, &self.code_review),
        ];
        let extra = self
            .extra
            .iter()
            .flat_map(|(id, x)| Span::ALL.map(|s| (BucketId::Extra(id.as_str(), s), x.slot(s))));
        main.into_iter()
            .chain(extra)
            .filter_map(|(id, b)| Some((id, b.as_ref()?)))
    }

    /// Every known bucket with its name, in the order of [`ids`](Self::ids).
    pub fn buckets(&self) -> Vec<(String, &Bucket)> {
        self.iter().map(|(id, b)| (id.to_string(), b)).collect()
    }

    /// Until when the plan is known not to include the family of a request's model
    /// (`model_limit`), if it is at `now`.
    pub fn not_included_for(&self, model_limit: Option<&str>, now: UnixMs) -> Option<UnixMs> {
        self.not_included
            .get(family_of(model_limit))
            .copied()
            .filter(|t| *t > now)
    }

    /// True iff a tick at `now` would change something: the cheap check actors run every tick.
    pub fn tick_due(&self, now: UnixMs) -> bool {
        let pending = self.verify_since.is_some();
        self.not_included.values().any(|t| *t <= now)
            || self.iter().any(|(_, b)| {
                b.reset_at.is_some_and(|t| t <= now)
                    || b.recheck_at.is_some_and(|t| t <= now)
                    || (b.limit_reached && b.reset_at.is_none() && !pending)
            })
    }

    /// The exhausted buckets, borrowed, in the order of [`ids`](Self::ids).
    fn exhausted(&self) -> impl Iterator<Item = (BucketId<&str>, &Bucket)> {
        self.iter().filter(|(_, b)| b.limit_reached)
    }

    /// All exhausted buckets (any model).
    pub fn locks(&self) -> Vec<Lock> {
        // `for_each` lets the chained iterator run its own loop (cheaper than `collect`'s
        // `next` calls): this builds every availability push.
        let mut out = Vec::new();
        self.exhausted().for_each(|(id, b)| {
            out.push(Lock {
                bucket: id.to_owned(),
                until: b.lock_until(),
            })
        });
        out
    }

    /// The exhausted buckets that govern a request ([`BucketId::governs`]), borrowed.
    pub fn governing_locks<'q>(
        &'q self,
        model_limit: Option<&'q str>,
        review: bool,
    ) -> impl Iterator<Item = (BucketId<&'q str>, &'q Bucket)> {
        self.exhausted()
            .filter(move |(id, _)| id.governs(model_limit, review))
    }

    /// Exhausted buckets that govern a request ([`governing_locks`](Self::governing_locks)).
    pub fn locks_for(&self, model_limit: Option<&str>, review: bool) -> Vec<Lock> {
        self.governing_locks(model_limit, review)
            .map(|(id, b)| Lock {
                bucket: id.to_owned(),
                until: b.lock_until(),
            })
            .collect()
    }

    /// True iff some bucket that governs the request is exhausted, checked without allocating
    /// (it runs on every lease).
    pub fn exhausted_for(&self, model_limit: Option<&str>, review: bool) -> bool {
        self.governing_locks(model_limit, review).next().is_some()
    }

    /// True iff the main windows (primary/secondary) are exhausted: excluded for every model.
    pub fn main_exhausted(&self) -> bool {
        self.exhausted_for(None, false)
    }

    /// True iff `locks` is exactly [`locks`](Self::locks) (same buckets, same order, same reset
    /// times), checked without allocating.
    pub fn locks_are(&self, locks: &[Lock]) -> bool {
        let mut it = locks.iter();
        self.exhausted().all(|(id, b)| {
            it.next()
                .is_some_and(|l| l.bucket.as_ref() == id && l.until == b.lock_until())
        }) && it.next().is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exhausted_for_agrees_with_locks_for_on_every_combination() {
        let b = |on: bool| {
            Some(Bucket {
                limit_reached: on,
                ..Bucket::default()
            })
        };
        for mask in 0u32..32 {
            let bit = |i: u32| mask & (1 << i) != 0;
            let mut q = Quota {
                primary: b(bit(0)),
                secondary: b(bit(1)),
                code_review: b(bit(2)),
                ..Quota::default()
            };
            for (i, id) in [(3, "codex_bengalfox"), (4, "other_limit")] {
                q.extra.insert(
                    id.into(),
                    ExtraLimit {
                        secondary: b(bit(i)),
                        ..ExtraLimit::default()
                    },
                );
            }
            for limit in [None, Some("codex_bengalfox"), Some("other_limit")] {
                for review in [false, true] {
                    assert_eq!(
                        q.exhausted_for(limit, review),
                        !q.locks_for(limit, review).is_empty(),
                        "mask {mask:05b} limit {limit:?} review {review}"
                    );
                }
            }
        }
    }

    #[test]
    fn iter_lists_every_known_bucket_in_the_order_of_ids() {
        let b = Some(Bucket::default());
        let mut q = Quota {
            primary: b.clone(),
            code_review: b.clone(),
            ..Quota::default()
        };
        for (id, primary, secondary) in [("zz_limit", true, true), ("codex_bengalfox", false, true)]
        {
            q.extra.insert(
                id.into(),
                ExtraLimit {
                    primary: if primary { b.clone() } else { None },
                    secondary: if secondary { b.clone() } else { None },
                    ..ExtraLimit::default()
                },
            );
        }
        let by_lookup: Vec<_> = q.ids().filter(|id| q.bucket(id).is_some()).collect();
        let listed: Vec<_> = q.iter().map(|(id, _)| id).collect();
        assert_eq!(listed, by_lookup);
        assert_eq!(listed.len(), 5);
        assert_eq!(
            listed[2],
            BucketId::Extra("codex_bengalfox", Span::Secondary)
        );
    }

    #[test]
    fn a_429_reset_hint_reads_the_body_then_retry_after_then_the_configured_backoff() {
        let cfg = QuotaConfig::with_backoff(std::time::Duration::from_secs(90));
        let r = |resets_at, resets_in_secs, retry_after_secs| Rejection429 {
            resets_at,
            resets_in_secs,
            retry_after_secs,
            ..Rejection429::default()
        };
        assert_eq!(
            r(Some(5_000), Some(7), Some(9)).reset_hint(1_000, &cfg),
            5_000
        );
        assert_eq!(r(None, Some(7), Some(9)).reset_hint(1_000, &cfg), 8_000);
        assert_eq!(r(None, None, Some(9)).reset_hint(1_000, &cfg), 10_000);
        assert_eq!(r(None, None, None).reset_hint(1_000, &cfg), 91_000);
        assert_eq!(QuotaConfig::default().default_backoff_ms, 60_000);
    }
}
