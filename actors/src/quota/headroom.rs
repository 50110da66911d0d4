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

use super::{Bucket, Observation, Quota, Window};
use crate::UnixMs;

/// Grants remembered to find how many requests had completed when an observed request started.
/// An answer's headers arrive while its lease is held, so only the grants made since the oldest
/// lease in flight are needed (a few: leases per account are capped); 16 leaves a margin for
/// bursts and keeps this list at 256 bytes on each of thousands of accounts.
const GRANTS_KEPT: usize = 16;

/// Weight of one completed request's worth of evidence in the smoothed step.
const ALPHA: f64 = 0.3;

/// A window as [`Headroom::tight`] checks it: limit id (extra limits), window name, its step
/// estimate and its cached bucket.
type WindowRef<'s, 'q> = (
    Option<&'s str>,
    &'static str,
    &'s StepEstimate,
    Option<&'q Bucket>,
);

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

/// A window too full for another concurrent request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tight {
    /// Bucket name (`primary`, `secondary`, `code_review`, `<limit>.primary|secondary`).
    pub bucket: String,
    /// Percentage points left in the window.
    pub left: f64,
    /// Estimated percentage points one request costs.
    pub step: f64,
}

impl Tight {
    /// The operator's explanation of a lease refused by the headroom rule.
    pub fn reason(&self) -> String {
        let of = if self.bucket == "primary" {
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

    /// The tightest window relevant to a request (primary and secondary always, code review for
    /// review requests, an extra limit for its models) whose headroom `100 − used_percent` is
    /// smaller than `(in_flight + 1) × step`; `None` if every window has room (or no estimate).
    pub fn tight(
        &self,
        q: &Quota,
        in_flight: u32,
        model_limit: Option<&str>,
        review: bool,
    ) -> Option<Tight> {
        let (id, name, left, step) = self.tightest(q, in_flight, model_limit, review)?;
        Some(Tight {
            bucket: id.map_or_else(|| name.to_string(), |id| format!("{id}.{name}")),
            left,
            step,
        })
    }

    /// True iff [`tight`](Self::tight) would find a window, checked without allocating: it runs
    /// on every lease and after every message of the actor.
    pub fn is_tight(
        &self,
        q: &Quota,
        in_flight: u32,
        model_limit: Option<&str>,
        review: bool,
    ) -> bool {
        self.tightest(q, in_flight, model_limit, review).is_some()
    }

    /// `(limit id, window, points left, step)` of the tightest window, as in [`tight`](Self::tight).
    fn tightest(
        &self,
        q: &Quota,
        in_flight: u32,
        model_limit: Option<&str>,
        review: bool,
    ) -> Option<(Option<&str>, &'static str, f64, f64)> {
        let need = f64::from(in_flight) + 1.0;
        let extra = model_limit.and_then(|l| self.extra.get_key_value(l));
        let x = extra.and_then(|(id, _)| q.extra.get(id));
        let id = extra.map(|(id, _)| id.as_str());
        let windows: [Option<WindowRef<'_, '_>>; 5] = [
            Some((None, "primary", &self.primary, q.primary.as_ref())),
            Some((None, "secondary", &self.secondary, q.secondary.as_ref())),
            review.then_some((
                None,
                "code_review",
                &self.code_review,
                q.code_review.as_ref(),
            )),
            extra.map(|(_, e)| {
                (
                    id,
                    "primary",
                    &e.primary,
                    x.and_then(|x| x.primary.as_ref()),
                )
            }),
            extra.map(|(_, e)| {
                (
                    id,
                    "secondary",
                    &e.secondary,
                    x.and_then(|x| x.secondary.as_ref()),
                )
            }),
        ];
        windows
            .into_iter()
            .flatten()
            .filter_map(|(id, name, e, b)| {
                let step = e.step.filter(|s| *s > 0.0)?;
                let left = (100.0 - b?.used_percent).max(0.0);
                (left < need * step).then_some((left / step, id, name, left, step))
            })
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, id, name, left, step)| (id, name, left, step))
    }
}

#[cfg(test)]
mod tests;
