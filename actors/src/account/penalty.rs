//! The refusal cooldown of one account: upstream refused the account itself (a 403 without an
//! explicit deactivation signal, a 402, an empty-body 404 — docs/failures.md) without saying it
//! is gone for good. A permanent ban needs upstream to say so (`account_deactivated`, "banned");
//! anything less benches the account for 30 minutes, doubling on every refusal met after the
//! last one was recorded, up to [`CAP_MS`]. A request that got through after the last refusal
//! (upstream answered it with its quota headers) ends the escalation: the next refusal starts at
//! 30 minutes again. Requests already in flight when a refusal was recorded are the same
//! incident. Its step, end and last refusal are kept in the account's record
//! ([`RefusalStep`]), so a restart neither lifts a running cooldown nor starts the escalation
//! over; cause and upstream's words are not (the record's `last_error` keeps them for
//! operators). Pure: `now` is an argument.

use serde::{Deserialize, Serialize};

use crate::UnixMs;
use crate::record::RefusalStep;

/// The first cooldown, in milliseconds (CPA's 30 minutes for 402/403).
pub const BASE_MS: i64 = 30 * 60_000;
/// The longest cooldown, in milliseconds: an account refused again and again is retried a few
/// times a day, never forgotten.
pub const CAP_MS: i64 = 8 * 60 * 60_000;

/// Which refusal benched the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PenaltyCause {
    /// 403 JSON that names no deactivation or ban.
    Forbidden,
    /// 402: the account's quota or subscription is exhausted.
    PaymentRequired,
    /// 404 with an empty body: Cloudflare's "stealth deny" of the account.
    StealthDeny,
}

impl PenaltyCause {
    /// The operator's word for it.
    pub fn text(self) -> &'static str {
        match self {
            PenaltyCause::Forbidden => "upstream refused the account (403)",
            PenaltyCause::PaymentRequired => "upstream asked for payment (402)",
            PenaltyCause::StealthDeny => "upstream denied the account (404, empty body)",
        }
    }
}

/// Escalating refusal cooldown state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Penalty {
    /// Refusals met in a row (since the last request that got through).
    pub level: u32,
    /// End of the current cooldown.
    pub until: Option<UnixMs>,
    /// What the last counted refusal was.
    pub cause: Option<PenaltyCause>,
    /// Upstream's own words with the last refusal.
    pub reason: Option<String>,
    /// When the last counted refusal was recorded: requests started before it are the same
    /// incident.
    pub last_hit: Option<UnixMs>,
}

impl Penalty {
    /// Records a refusal met by a request that started at `at`; returns the end of the
    /// cooldown it started, or `None` if the request was already in flight when the last one
    /// was recorded (same incident).
    pub fn hit(
        &mut self,
        cause: PenaltyCause,
        reason: String,
        at: UnixMs,
        now: UnixMs,
    ) -> Option<UnixMs> {
        if self.last_hit.is_some_and(|t| at <= t) {
            return None;
        }
        self.level = self.level.saturating_add(1);
        let shift = self.level.saturating_sub(1).min(16);
        let until = now + BASE_MS.saturating_mul(1 << shift).min(CAP_MS);
        self.until = Some(self.until.map_or(until, |u| u.max(until)));
        self.cause = Some(cause);
        self.reason = Some(reason);
        self.last_hit = Some(now);
        Some(until)
    }

    /// A request that started at `at` got through: if it was sent after the last refusal, the
    /// escalation is over. Older evidence changes nothing.
    pub fn passed(&mut self, at: UnixMs) {
        if self.last_hit.is_some_and(|t| at > t) {
            *self = Penalty::default();
        }
    }

    /// The cooldown as a record loaded from disk kept it (`None`: no refusal counted).
    pub fn restored(step: Option<&RefusalStep>) -> Self {
        step.map_or_else(Penalty::default, |s| Penalty {
            level: s.level,
            until: Some(s.until),
            last_hit: Some(s.last_hit),
            ..Penalty::default()
        })
    }

    /// What the record keeps of it: `None` once no refusal is counted.
    pub fn stored(&self) -> Option<RefusalStep> {
        match (self.level, self.until, self.last_hit) {
            (1.., Some(until), Some(last_hit)) => Some(RefusalStep {
                level: self.level,
                until,
                last_hit,
            }),
            _ => None,
        }
    }

    /// End of the cooldown if one is running at `now`.
    pub fn active(&self, now: UnixMs) -> Option<UnixMs> {
        self.until.filter(|u| *u > now)
    }

    /// The operator's sentence for the running cooldown.
    pub fn text(&self) -> String {
        let cause = self
            .cause
            .map_or("upstream refused the account", PenaltyCause::text);
        let why = self
            .reason
            .as_deref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        format!("{cause}{why}; refusal cooldown, level {}", self.level)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: i64 = 60_000;

    #[test]
    fn doubles_from_thirty_minutes_caps_and_a_success_resets_it() {
        let mut p = Penalty::default();
        let mut now = 0;
        let mut lengths = Vec::new();
        for _ in 0..6 {
            let until = p.hit(PenaltyCause::Forbidden, "flagged".into(), now, now);
            lengths.push(until.map(|u| (u - now) / M));
            now = p.until.unwrap_or(now) + 1;
        }
        assert_eq!(
            lengths,
            [30, 60, 120, 240, 480, 480].map(Some),
            "30 min, doubling, capped at 8 h"
        );
        let last = p.last_hit.unwrap_or_default();
        assert_eq!(
            p.hit(PenaltyCause::Forbidden, "x".into(), last - 1, now),
            None,
            "in flight before the last refusal: same incident"
        );
        p.passed(last - 1);
        assert_eq!(p.level, 6, "older evidence changes nothing");
        p.passed(last + 5);
        assert_eq!(p, Penalty::default(), "got through: escalation over");
        let until = p.hit(
            PenaltyCause::PaymentRequired,
            "pay".into(),
            now + 6,
            now + 6,
        );
        assert_eq!(until.map(|u| (u - now - 6) / M), Some(30));
        assert_eq!(p.active(now + 6 + 30 * M), None, "over on time");
    }

    #[test]
    fn what_the_record_keeps_restores_the_step_and_the_end() {
        assert_eq!(Penalty::default().stored(), None);
        assert_eq!(Penalty::restored(None), Penalty::default());
        let mut p = Penalty::default();
        p.hit(PenaltyCause::Forbidden, "flagged".into(), 0, 0);
        p.hit(PenaltyCause::Forbidden, "flagged".into(), 10, 10);
        let back = Penalty::restored(p.stored().as_ref());
        assert_eq!(
            (back.level, back.until, back.last_hit),
            (2, p.until, p.last_hit)
        );
        let mut next = back.clone();
        assert_eq!(
            next.hit(PenaltyCause::Forbidden, "again".into(), 20, 20),
            Some(20 + 4 * BASE_MS),
            "the escalation goes on from the restored step"
        );
        let mut ended = back;
        ended.passed(11);
        assert_eq!(
            ended.stored(),
            None,
            "a success after it ends it, stored or not"
        );
    }
}
