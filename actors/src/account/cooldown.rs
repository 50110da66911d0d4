//! The Cloudflare cooldown of one account: a challenge page (403/HTML) is not a ban, it benches
//! the account for 10, 30, 90, then 120 s on repeated hits; an hour without a hit forgets the
//! escalation. Pure: `now` is an argument.

use serde::Serialize;

use crate::UnixMs;

/// Cooldown lengths by escalation level, in seconds.
pub const STEPS_SECS: [i64; 4] = [10, 30, 90, 120];
/// Quiet time after which the escalation is forgotten.
pub const QUIET_MS: i64 = 3_600_000;

/// Escalating cooldown state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Cooldown {
    /// Number of hits in the current escalation.
    pub hits: u32,
    /// End of the current cooldown.
    pub until: Option<UnixMs>,
    /// Time of the last hit.
    pub last_hit: Option<UnixMs>,
}

impl Cooldown {
    /// Records a challenge at `now`; returns the end of the cooldown.
    pub fn hit(&mut self, now: UnixMs) -> UnixMs {
        self.forget_if_quiet(now);
        let step = STEPS_SECS[(self.hits as usize).min(STEPS_SECS.len() - 1)];
        self.hits = self.hits.saturating_add(1);
        self.last_hit = Some(now);
        let until = now + step * 1000;
        self.until = Some(self.until.map_or(until, |u| u.max(until)));
        until
    }

    /// Forgets the escalation after an hour without a hit.
    pub fn forget_if_quiet(&mut self, now: UnixMs) {
        if self.last_hit.is_some_and(|t| now - t >= QUIET_MS) {
            *self = Cooldown::default();
        }
    }

    /// End of the cooldown if one is running at `now`.
    pub fn active(&self, now: UnixMs) -> Option<UnixMs> {
        self.until.filter(|u| *u > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escalates_caps_and_forgets_after_an_hour_of_quiet() {
        let mut c = Cooldown::default();
        let ends: Vec<i64> = (0..5).map(|i| c.hit(i * 1000) - i * 1000).collect();
        assert_eq!(ends, [10_000, 30_000, 90_000, 120_000, 120_000]);
        assert_eq!(c.active(4_000 + 119_000), Some(124_000));
        assert_eq!(c.active(124_000), None);
        let later = 4_000 + QUIET_MS;
        assert_eq!(
            c.hit(later) - later,
            10_000,
            "an hour of quiet resets the escalation"
        );
    }
}
