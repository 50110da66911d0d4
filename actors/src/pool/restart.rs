//! The restart budget of one account actor: a failed actor is restarted from its last durable
//! record after an exponential backoff, at most `max` times per hour; past that it stays
//! stopped (and says so) rather than crash-looping. Pure: `now` is an argument.

use std::collections::VecDeque;
use std::time::Duration;

use crate::UnixMs;

/// Window over which restarts are counted.
pub const WINDOW_MS: i64 = 3_600_000;
/// Backoff before the first restart; doubles per recent failure.
pub const BASE_BACKOFF: Duration = Duration::from_millis(200);
/// Longest backoff.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Recent failures of one actor.
#[derive(Debug, Clone, Default)]
pub struct RestartBudget {
    /// Failure times within the window.
    failures: VecDeque<UnixMs>,
}

impl RestartBudget {
    /// Records a failure at `now`; returns the backoff before restarting, or `None` when the
    /// budget of `max` restarts per hour is spent.
    pub fn on_failure(&mut self, now: UnixMs, max: u32) -> Option<Duration> {
        while self.failures.front().is_some_and(|t| now - t >= WINDOW_MS) {
            self.failures.pop_front();
        }
        if self.failures.len() >= max as usize {
            return None;
        }
        self.failures.push_back(now);
        let exp = u32::try_from(self.failures.len() - 1)
            .unwrap_or(u32::MAX)
            .min(16);
        Some(BASE_BACKOFF.saturating_mul(1 << exp).min(MAX_BACKOFF))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backs_off_exponentially_and_refuses_past_the_budget_until_the_hour_passes() {
        let mut b = RestartBudget::default();
        let got: Vec<Option<Duration>> = (0..4).map(|i| b.on_failure(i * 1000, 3)).collect();
        assert_eq!(
            got,
            [
                Some(BASE_BACKOFF),
                Some(BASE_BACKOFF * 2),
                Some(BASE_BACKOFF * 4),
                None
            ]
        );
        assert_eq!(
            b.on_failure(WINDOW_MS, 3),
            Some(BASE_BACKOFF * 4),
            "the first failure left the window"
        );
    }
}
