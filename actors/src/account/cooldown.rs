//! The Cloudflare cooldown of one account. A challenge page (403 HTML) is not a ban: it benches
//! the account briefly, and the escalation (10, 30, 90, then 120 s) climbs only while the
//! account meets challenge after challenge. What counts is the account's own attempts, not the
//! clock: a request that got through after the last challenge steps the escalation back down
//! (and ends a cooldown it was let through), requests already in flight when a challenge was
//! recorded are the same incident, and each quiet period without a challenge steps it down
//! too. So challenges that hit a busy pool at random cost each account one short cooldown, and
//! an account Cloudflare keeps challenging is benched for minutes. Pure: `now` is an argument.

use serde::Serialize;

use crate::UnixMs;
use crate::rotation::Cooling;

/// Cooldown lengths by escalation level (level 1 first), in seconds.
pub const STEPS_SECS: [i64; 4] = [10, 30, 90, 120];
/// Each period this long without a challenge steps the escalation down one level. Longer than
/// the longest step, so an account challenged on every attempt stays at the cap.
pub const QUIET_MS: i64 = 5 * 60_000;

/// Escalating cooldown state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Cooldown {
    /// Escalation level as of [`last_hit`](Self::last_hit), before quiet-time decay: the
    /// challenges met in a row, less the requests that got through since.
    pub level: u32,
    /// End of the current cooldown.
    pub until: Option<UnixMs>,
    /// When the last counted challenge was recorded: requests started before it cannot add to
    /// it or undo it.
    pub last_hit: Option<UnixMs>,
}

impl Cooldown {
    /// The escalation level at `now`: the stored level less one per quiet period since the last
    /// challenge.
    pub fn level(&self, now: UnixMs) -> u32 {
        let quiet = self.last_hit.map_or(0, |t| (now - t).max(0) / QUIET_MS);
        self.level
            .saturating_sub(u32::try_from(quiet).unwrap_or(u32::MAX))
    }

    /// Records a challenge met by a request that started at `at`; returns the end of the
    /// cooldown it started, or `None` if it was the same incident as the last one counted (the
    /// request was already in flight when that was recorded).
    pub fn hit(&mut self, at: UnixMs, now: UnixMs) -> Option<UnixMs> {
        if self.last_hit.is_some_and(|t| at <= t) {
            return None;
        }
        let max = u32::try_from(STEPS_SECS.len()).unwrap_or(u32::MAX);
        self.level = (self.level(now) + 1).min(max);
        self.last_hit = Some(now);
        let step = STEPS_SECS[(self.level as usize).saturating_sub(1)];
        let until = now + step * 1000;
        self.until = Some(self.until.map_or(until, |u| u.max(until)));
        Some(until)
    }

    /// A request that started at `at` got through Cloudflare (upstream answered it). If it was
    /// sent after the last challenge, the account passes again: the cooldown ends and the
    /// escalation steps down one level. Older evidence changes nothing.
    pub fn passed(&mut self, at: UnixMs, now: UnixMs) {
        if self.last_hit.is_some_and(|t| at > t) && self.level(now) > 0 {
            self.level = self.level.saturating_sub(1);
            self.until = None;
        }
    }

    /// Forgets the escalation once it has decayed to nothing and no cooldown runs.
    pub fn forget_if_quiet(&mut self, now: UnixMs) {
        if self.last_hit.is_some() && self.level(now) == 0 && self.active(now).is_none() {
            *self = Cooldown::default();
        }
    }

    /// End of the cooldown if one is running at `now`.
    pub fn active(&self, now: UnixMs) -> Option<UnixMs> {
        self.until.filter(|u| *u > now)
    }

    /// Whether the running cooldown follows a single challenge (see [`Cooling::Soft`]).
    pub fn soft(&self, now: UnixMs) -> bool {
        self.active(now).is_some() && self.level <= 1
    }

    /// Whether the cooldown lets a lease be granted at `now` to a pick made `cooling`.
    pub fn permits(&self, cooling: Cooling, now: UnixMs) -> bool {
        !cooling.refuses(self.active(now), self.soft(now), now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escalates_on_consecutive_challenges_caps_and_steps_down() {
        let mut c = Cooldown::default();
        // Each challenge met by a request sent after the previous one was recorded.
        let ends: Vec<i64> = (0..5)
            .map(|i| c.hit(i * 1000, i * 1000).map_or(0, |u| u - i * 1000))
            .collect();
        assert_eq!(ends, [10_000, 30_000, 90_000, 120_000, 120_000]);
        assert_eq!(c.active(4_000 + 119_000), Some(124_000));
        assert_eq!(c.active(124_000), None);
        assert_eq!(
            c.hit(3_500, 5_000),
            None,
            "in flight before the last: same incident"
        );
        c.passed(3_000, 6_000);
        assert_eq!(c.level(6_000), 4, "older evidence changes nothing");
        c.passed(4_500, 6_000);
        assert_eq!(
            (c.level(6_000), c.until),
            (3, None),
            "got through: ends, steps down"
        );
        let later = 6_000 + 2 * QUIET_MS;
        assert_eq!(c.level(later), 1, "two quiet periods: two levels down");
        assert_eq!(c.hit(later, later).map(|u| u - later), Some(30_000));
        c.forget_if_quiet(later + 3 * QUIET_MS);
        assert_eq!(c, Cooldown::default(), "decayed to nothing: forgotten");
    }

    #[test]
    fn a_single_challenge_is_soft_and_only_a_pool_that_needs_it_may_use_it() {
        let mut c = Cooldown::default();
        c.hit(0, 0);
        assert!(c.soft(1));
        assert!(!c.permits(Cooling::Avoid, 1));
        assert!(c.permits(Cooling::Soft, 1) && c.permits(Cooling::Any, 1));
        c.hit(2, 2);
        assert!(!c.soft(3), "challenged again: no longer soft");
        assert!(!c.permits(Cooling::Soft, 3) && c.permits(Cooling::Any, 3));
        assert!(c.permits(Cooling::Avoid, 2 + 30_000), "over on time");
    }
}
