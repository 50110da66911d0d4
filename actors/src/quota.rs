//! The cached quota of one account — the single truth about whether it is exhausted (docs/quota.md
//! rules 1–5). Plain data and pure functions: evidence goes in with the time upstream produced
//! it, effects come out; no tokio, no clock. Parsing of the evidence lives in [`headers`] (the
//! `x-codex-*` response headers) and [`usage`] (the `/wham/usage` JSON); the transitions in
//! [`apply`](Quota::apply).

mod apply;
pub mod headers;
pub mod headroom;
pub mod usage;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use apply::{Effect, Event, QuotaConfig};

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

/// A bucket's name as [`Quota::buckets`] spells it, borrowed until it is displayed.
#[derive(Debug, Clone, Copy)]
enum BucketName<'a> {
    /// `primary`, `secondary` or `code_review`.
    Main(&'static str),
    /// `<limit>.primary` or `<limit>.secondary`.
    Extra(&'a str, &'static str),
}

impl std::fmt::Display for BucketName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BucketName::Main(name) => f.write_str(name),
            BucketName::Extra(id, window) => write!(f, "{id}.{window}"),
        }
    }
}

/// A bucket that currently excludes the account, with its name and when it resets.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Lock {
    /// Bucket name: `primary`, `secondary`, `code_review`, or `<limit>.primary|secondary`.
    pub bucket: String,
    /// When it resets, if known.
    pub until: Option<UnixMs>,
}

impl Quota {
    /// Every bucket with its name, in a stable order.
    pub fn buckets(&self) -> Vec<(String, &Bucket)> {
        let mut out = Vec::new();
        self.each_bucket(|name, b| out.push((name.to_string(), b)));
        out
    }

    /// Calls `f` with every bucket and its name, in the order of [`buckets`](Self::buckets),
    /// without allocating: the name is built only by a caller that keeps it.
    fn each_bucket<'a>(&'a self, mut f: impl FnMut(BucketName<'a>, &'a Bucket)) {
        let main = [
            ("primary", &self.primary),
            ("secondary", &self.secondary),
            ("code_review", &self.code_review),
        ];
        for (name, b) in main {
            if let Some(b) = b {
                f(BucketName::Main(name), b);
            }
        }
        for (id, x) in &self.extra {
            for (w, b) in [("primary", &x.primary), ("secondary", &x.secondary)] {
                if let Some(b) = b {
                    f(BucketName::Extra(id, w), b);
                }
            }
        }
    }

    /// True iff a tick at `now` would change something: the cheap check actors run every tick.
    pub fn tick_due(&self, now: UnixMs) -> bool {
        let pending = self.verify_since.is_some();
        let main = [&self.primary, &self.secondary, &self.code_review];
        let extra = self.extra.values().flat_map(|x| [&x.primary, &x.secondary]);
        main.into_iter().chain(extra).flatten().any(|b| {
            b.reset_at.is_some_and(|t| t <= now)
                || b.recheck_at.is_some_and(|t| t <= now)
                || (b.limit_reached && b.reset_at.is_none() && !pending)
        })
    }

    /// All exhausted buckets (any model).
    pub fn locks(&self) -> Vec<Lock> {
        let mut out = Vec::new();
        self.each_bucket(|name, b| {
            if b.limit_reached {
                out.push(Lock {
                    bucket: name.to_string(),
                    until: b.reset_at,
                });
            }
        });
        out
    }

    /// Exhausted buckets relevant to a request (docs/quota.md rule 1): primary and secondary always,
    /// code review only for review requests, an extra limit only for the models it meters.
    pub fn locks_for(&self, model_limit: Option<&str>, review: bool) -> Vec<Lock> {
        self.locks()
            .into_iter()
            .filter(|l| match l.bucket.as_str() {
                "primary" | "secondary" => true,
                "code_review" => review,
                other => model_limit.is_some_and(|id| other.split('.').next() == Some(id)),
            })
            .collect()
    }

    /// True iff some bucket relevant to the request is exhausted (docs/quota.md rule 1): the same buckets as
    /// [`locks_for`](Self::locks_for), checked without allocating (it runs on every lease).
    pub fn exhausted_for(&self, model_limit: Option<&str>, review: bool) -> bool {
        let hit = |b: &Option<Bucket>| b.as_ref().is_some_and(|b| b.limit_reached);
        hit(&self.primary)
            || hit(&self.secondary)
            || (review && hit(&self.code_review))
            || model_limit.is_some_and(|id| {
                self.extra.iter().any(|(k, x)| {
                    k.split('.').next() == Some(id) && (hit(&x.primary) || hit(&x.secondary))
                })
            })
    }

    /// True iff the main windows (primary/secondary) are exhausted: excluded for every model.
    pub fn main_exhausted(&self) -> bool {
        self.exhausted_for(None, false)
    }

    /// True iff `locks` is exactly [`locks`](Self::locks) (same buckets, same order, same reset times),
    /// checked without building the bucket names.
    pub fn locks_are(&self, locks: &[Lock]) -> bool {
        let q = self;
        let mut it = locks.iter();
        let mut matches = |prefix: Option<&str>, name: &str, b: &Option<Bucket>| {
            let Some(b) = b.as_ref().filter(|b| b.limit_reached) else {
                return true;
            };
            let Some(l) = it.next() else { return false };
            let named = match prefix {
                None => l.bucket == name,
                Some(id) => l
                    .bucket
                    .strip_prefix(id)
                    .and_then(|r| r.strip_prefix('.'))
                    .is_some_and(|w| w == name),
            };
            named && l.until == b.reset_at
        };
        let main = matches(None, "primary", &q.primary)
            && matches(None, "secondary", &q.secondary)
            && matches(None, "code_review", &q.code_review);
        main && q.extra.iter().all(|(id, x)| {
            matches(Some(id), "primary", &x.primary) && matches(Some(id), "secondary", &x.secondary)
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
}
