//! Counting token refreshes: a [`TokenRefresher`] that delegates to the real one and records
//! each outcome (`ok`, `transient`, `permanent`, `deactivated`) in the metrics. Refreshes run
//! inside the account actors, which know no metrics; wrapping the effect handed to them at
//! spawn is the one place every refresh passes through.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use rotor_actors::{BoxFuture, NewTokens, RefreshError, RefreshReason, TokenRefresher};
use std::sync::{Arc, Mutex};

/// Refresh outcomes beyond this many distinct labels are counted as "other", so a caller bug
/// cannot blow up the scrape's cardinality.
const MAX_REFRESH_OUTCOMES: usize = 16;

/// Labels of `codex_rotor_token_refreshes_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct Outcome {
    /// How the refresh ended.
    outcome: String,
}

/// Refreshes by outcome; clones count into the same family.
#[derive(Clone, Debug, Default)]
pub(super) struct Outcomes {
    /// The exposed family.
    family: Family<Outcome, Counter>,
    /// How many distinct outcomes the family holds (besides "other"), for the cap.
    distinct: Arc<Mutex<usize>>,
}

impl Outcomes {
    /// The family, to register for exposition.
    pub(super) fn family(&self) -> Family<Outcome, Counter> {
        self.family.clone()
    }

    /// Counts one refresh that ended with `outcome`.
    pub(super) fn count(&self, outcome: &str) {
        let mut label = Outcome {
            outcome: outcome.to_owned(),
        };
        if let Some(counter) = self.family.get(&label) {
            counter.inc();
            return;
        }
        let mut distinct = self.distinct.lock().unwrap_or_else(|e| e.into_inner());
        if self.family.get(&label).is_none() {
            if *distinct < MAX_REFRESH_OUTCOMES {
                *distinct += 1;
            } else {
                label.outcome = "other".to_owned();
            }
        }
        self.family.get_or_create(&label).inc();
    }
}

/// The wrapper.
pub struct CountingRefresher {
    /// The real refresher (HTTP to the token endpoint).
    inner: Arc<dyn TokenRefresher>,
    /// The outcomes it counts into.
    outcomes: Outcomes,
}

impl CountingRefresher {
    /// Wraps `inner`, counting into `outcomes`.
    pub(super) fn new(inner: Arc<dyn TokenRefresher>, outcomes: Outcomes) -> Self {
        CountingRefresher { inner, outcomes }
    }
}

impl TokenRefresher for CountingRefresher {
    fn refresh(
        &self,
        refresh_token: String,
        reason: RefreshReason,
    ) -> BoxFuture<'static, Result<NewTokens, RefreshError>> {
        let fut = self.inner.refresh(refresh_token, reason);
        let outcomes = self.outcomes.clone();
        Box::pin(async move {
            let r = fut.await;
            let outcome = match &r {
                Ok(_) => "ok",
                Err(RefreshError::Transient(_)) => "transient",
                Err(RefreshError::Permanent { .. }) => "permanent",
                Err(RefreshError::Deactivated(_)) => "deactivated",
                Err(RefreshError::Unanswered(_)) => "unanswered",
            };
            outcomes.count(outcome);
            r
        })
    }
}
