//! The headroom rule: how much of each quota window one request costs, learnt from the quota
//! headers, and whether the rest of a window is too small for the requests in flight plus one
//! more. Upstream's headers show the usage at a request's START, so several requests leased at
//! once to an account that is about to fill all pass and the next ones all meet 429s; an account
//! whose headroom is tight therefore serves one request at a time. This only narrows
//! concurrency: exhaustion stays the cached quota's word alone (docs/quota.md rule 1).
//! Pure: times are arguments, nothing is persisted (after a restart there is no estimate yet,
//! and without one behaviour is unchanged).

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;

use super::{BucketId, Observation, Quota, Span, Window};
use crate::UnixMs;

/// Grants remembered to find how many requests had completed when an observed request started.
/// An answer's headers arrive while its lease is held, so only the grants made since the oldest
/// lease in flight are needed (a few: leases per account are capped); 16 leaves a margin for
/// bursts and keeps this list at 256 bytes on each of thousands of accounts.
const GRANTS_KEPT: usize = 16;

/// Weight of one completed request's worth of evidence in the smoothed step.
const ALPHA: f64 = 0.3;

/// One observation of a window, with the completed-request count at its evidence time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
struct Sample {
    at: UnixMs,
    used: f64,
    done: u64,
    reset_at: Option<UnixMs>,
}

/// What one request costs in one window (percentage points), learnt from successive
/// observations: the rise of `used_percent` divided by the requests completed in between,
/// smoothed. A window reset (usage drops, or the previous reset time passed) starts a new
/// baseline; older evidence than the baseline teaches nothing; no data means no estimate.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StepEstimate {
    /// The observation later ones are compared with.
    last: Option<Sample>,
    /// Smoothed percentage points per request, once known.
    step: Option<f64>,
}

impl StepEstimate {
    /// The estimate, once at least one rise over completed requests was seen.
    pub fn step(&self) -> Option<f64> {
        self.step
    }

    /// Feeds one observation: `used` percent at evidence time `at` (the request's start), when
    /// `done` requests had completed, in a window resetting at `reset_at`.
    pub fn observe(&mut self, at: UnixMs, used: f64, reset_at: Option<UnixMs>, done: u64) {
        if !used.is_finite() {
            return;
        }
        let s = Sample {
            at,
            used,
            done,
            reset_at,
        };
        let Some(prev) = self.last else {
            self.last = Some(s);
            return;
        };
        if at < prev.at {
            return;
        }
        let reset = used < prev.used || prev.reset_at.is_some_and(|r| at >= r);
        if reset || done < prev.done {
            self.last = Some(s);
            return;
        }
        let n = done - prev.done;
        if n == 0 {
            // Usage rose with no completion in between (requests still in flight, or use
            // outside the pool): keep the baseline so the rise counts against later ones.
            return;
        }
        let sample = (used - prev.used) / n as f64;
        let weight = 1.0 - (1.0 - ALPHA).powi(i32::try_from(n).unwrap_or(i32::MAX));
        self.step = Some(self.step.map_or(sample, |s| s + weight * (sample - s)));
        self.last = Some(s);
    }
}

/// Step estimates of an extra limit's windows.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ExtraSteps {
    /// Short window.
    pub primary: StepEstimate,
    /// Long window.
    pub secondary: StepEstimate,
}

/// A window too full for another concurrent request. `L` as in [`BucketId`]: borrowed while
/// the account checks a lease, owned when it is kept.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(bound(serialize = "L: AsRef<str>"))]
pub struct Tight<L = String> {
    /// The bucket.
    pub bucket: BucketId<L>,
    /// Percentage points left in the window.
    pub left: f64,
    /// Estimated percentage points one request costs.
    pub step: f64,
}

impl<L: AsRef<str>> Tight<L> {
    /// The operator's explanation of a lease refused by the headroom rule.
    pub fn reason(&self) -> String {
        let of = if self.bucket.as_ref() == BucketId::Primary {
            String::new()
        } else {
            format!(" of {}", self.bucket)
        };
        format!(
            "quota nearly used: one request at a time ({:.1}% left{of}, ~{:.2}% per request)",
            self.left, self.step
        )
    }
}

/// The step estimates of every window of one account, and the grants they are measured by.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Headroom {
    /// Recent lease grants: `(start time, requests completed then)`, oldest first.
    #[serde(skip)]
    grants: VecDeque<(UnixMs, u64)>,
    /// Main short window.
    pub primary: StepEstimate,
    /// Main long window.
    pub secondary: StepEstimate,
    /// Code-review window.
    pub code_review: StepEstimate,
    /// Named extra limits by id.
    pub extra: BTreeMap<String, ExtraSteps>,
}

impl Headroom {
    /// A lease was granted at `at` (the evidence time its answer will carry) when `done`
    /// requests had completed.
    pub fn granted(&mut self, at: UnixMs, done: u64) {
        if self.grants.len() == GRANTS_KEPT {
            self.grants.pop_front();
        }
        self.grants.push_back((at, done));
    }

    /// Requests completed when a request starting at `at` was granted (`None`: not remembered).
    fn done_at(&self, at: UnixMs) -> Option<u64> {
        self.grants
            .iter()
            .rev()
            .find(|(t, _)| *t <= at)
            .map(|(_, d)| *d)
    }

    /// Learns from the quota headers of an answer. Headers of a request whose grant is no
    /// longer remembered teach nothing.
    pub fn observe(&mut self, obs: &Observation) {
        let Some(done) = self.done_at(obs.at) else {
            return;
        };
        let feed = |e: &mut StepEstimate, w: &Option<Window>| {
            if let Some(w) = w {
                e.observe(obs.at, w.used_percent, w.reset_at, done);
            }
        };
        feed(&mut self.primary, &obs.primary);
        feed(&mut self.secondary, &obs.secondary);
        feed(&mut self.code_review, &obs.code_review);
        for (id, x) in &obs.extra {
            let id = super::apply::normalize_limit(id);
            let steps = self.extra.entry(id).or_default();
            feed(&mut steps.primary, &x.primary);
            feed(&mut steps.secondary, &x.secondary);
        }
    }

    /// The tightest window among the buckets that govern a request ([`BucketId::governs`]) whose
    /// headroom `100 − used_percent` is smaller than `(in_flight + 1) × step`; `None` if every
    /// window has room (or no estimate).
    pub fn tight(
        &self,
        q: &Quota,
        in_flight: u32,
        model_limit: Option<&str>,
        review: bool,
    ) -> Option<Tight> {
        let t = self.tightest(q, in_flight, model_limit, review)?;
        Some(Tight {
            bucket: t.bucket.to_owned(),
            left: t.left,
            step: t.step,
        })
    }

    /// [`tight`](Self::tight) borrowing the quota, so it allocates nothing: it runs on every
    /// lease and after every message of the actor.
    pub fn tightest<'q>(
        &self,
        q: &'q Quota,
        in_flight: u32,
        model_limit: Option<&str>,
        review: bool,
    ) -> Option<Tight<&'q str>> {
        let need = f64::from(in_flight) + 1.0;
        q.iter()
            .filter(|(id, _)| id.governs(model_limit, review))
            .filter_map(|(id, b)| {
                let step = self.steps(&id)?.step.filter(|s| *s > 0.0)?;
                let left = (100.0 - b.used_percent).max(0.0);
                (left < need * step).then_some((left / step, id, left, step))
            })
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, bucket, left, step)| Tight { bucket, left, step })
    }

    /// True iff [`tight`](Self::tight) finds a window.
    pub fn is_tight(
        &self,
        q: &Quota,
        in_flight: u32,
        model_limit: Option<&str>,
        review: bool,
    ) -> bool {
        self.tightest(q, in_flight, model_limit, review).is_some()
    }

    /// The step estimate of a bucket, once its windows were observed.
    fn steps<L: AsRef<str>>(&self, id: &BucketId<L>) -> Option<&StepEstimate> {
        match id {
            BucketId::Primary => Some(&self.primary),
            BucketId::Secondary => Some(&self.secondary),
            BucketId::CodeReview => Some(&self.code_review),
            BucketId::Extra(l, span) => self.extra.get(l.as_ref()).map(|x| match span {
                Span::Primary => &x.primary,
                Span::Secondary => &x.secondary,
            }),
        }
    }
}

#[cfg(test)]
mod tests;
