//! Counting token refreshes: a [`TokenRefresher`] that delegates to the real one and records
//! each outcome (`ok`, `transient`, `permanent`, `deactivated`) in the metrics. Refreshes run
//! inside the account actors, which know no metrics; wrapping the effect handed to them at
//! spawn is the one place every refresh passes through.

use super::{Inner, count_refresh};
use rotor_actors::{BoxFuture, NewTokens, RefreshError, RefreshReason, TokenRefresher};
use std::sync::{Arc, Mutex};

/// The wrapper.
pub struct CountingRefresher {
    /// The real refresher (HTTP to the token endpoint).
    inner: Arc<dyn TokenRefresher>,
    /// The metrics it counts into.
    metrics: Arc<Mutex<Inner>>,
}

impl CountingRefresher {
    /// Wraps `inner`, counting into `metrics`.
    pub(super) fn new(inner: Arc<dyn TokenRefresher>, metrics: Arc<Mutex<Inner>>) -> Self {
        CountingRefresher { inner, metrics }
    }
}

impl TokenRefresher for CountingRefresher {
    fn refresh(
        &self,
        refresh_token: String,
        reason: RefreshReason,
    ) -> BoxFuture<'static, Result<NewTokens, RefreshError>> {
        let fut = self.inner.refresh(refresh_token, reason);
        let metrics = Arc::clone(&self.metrics);
        Box::pin(async move {
            let r = fut.await;
            let outcome = match &r {
                Ok(_) => "ok",
                Err(RefreshError::Transient(_)) => "transient",
                Err(RefreshError::Permanent { .. }) => "permanent",
                Err(RefreshError::Deactivated(_)) => "deactivated",
            };
            count_refresh(&metrics, outcome);
            r
        })
    }
}
