//! Per-account quota windows of the simulated backend: plain data, `now` passed in, no clock.
//! A window starts at its first use, fills in proportion to tokens charged, and empties when
//! its reset time passes (checked lazily on every access, like the real backend looks).

use serde::Serialize;

/// Unix epoch milliseconds.
pub(crate) type Ms = i64;

/// One rolling window (primary 5 h, secondary weekly, or an extra limit's).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Window {
    /// Tokens allowed per window.
    pub limit_tokens: u64,
    /// Tokens charged in the current window.
    pub used_tokens: u64,
    /// Effective window length (already divided by the time scale).
    pub window_ms: Ms,
    /// When the current window ends; `None` until first use after a reset.
    pub reset_at: Option<Ms>,
}

impl Window {
    /// An unused window.
    pub fn new(limit_tokens: u64, window_ms: Ms) -> Self {
        Window {
            limit_tokens,
            used_tokens: 0,
            window_ms: window_ms.max(1),
            reset_at: None,
        }
    }

    /// Empties the window if its time has passed.
    pub fn roll(&mut self, now: Ms) {
        if self.reset_at.is_some_and(|r| now >= r) {
            self.used_tokens = 0;
            self.reset_at = None;
        }
    }

    /// Charges `tokens`, starting the window if it is not running.
    pub fn charge(&mut self, tokens: u64, now: Ms) {
        self.roll(now);
        self.reset_at.get_or_insert(now + self.window_ms);
        self.used_tokens = self.used_tokens.saturating_add(tokens);
    }

    /// Sets the fill level directly (control API), starting the window if needed.
    pub fn set_percent(&mut self, percent: f64, now: Ms) {
        self.roll(now);
        let pct = percent.clamp(0.0, 100.0);
        self.used_tokens = (self.limit_tokens as f64 * pct / 100.0).round() as u64;
        if self.used_tokens > 0 {
            self.reset_at.get_or_insert(now + self.window_ms);
        }
    }

    /// Share of the window used, 0..=100.
    pub fn used_percent(&self) -> f64 {
        if self.limit_tokens == 0 {
            return 100.0;
        }
        (self.used_tokens as f64 * 100.0 / self.limit_tokens as f64).min(100.0)
    }

    /// True once the window is full: requests are refused until it resets.
    pub fn exhausted(&self) -> bool {
        self.used_tokens >= self.limit_tokens
    }

    /// When the window resets, or would if it started now.
    pub fn reset_at_or_start(&self, now: Ms) -> Ms {
        self.reset_at.unwrap_or(now + self.window_ms)
    }

    /// Window length in whole minutes as the headers report it (at least 1).
    pub fn window_minutes(&self) -> i64 {
        ((self.window_ms + 59_999) / 60_000).max(1)
    }
}

/// Every window of one account.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Quota {
    /// The 5 h window.
    pub primary: Window,
    /// The weekly window.
    pub secondary: Window,
    /// The `codex_bengalfox` limit that applies to spark models, if the account has one.
    pub extra: Option<Window>,
}

/// Which window refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The primary or secondary window is full (`x-codex-active-limit: codex`).
    Codex {
        /// When the blocking window resets.
        reset_at: Ms,
    },
    /// The extra limit is full (`x-codex-active-limit: codex_bengalfox`).
    Extra {
        /// When the extra window resets.
        reset_at: Ms,
    },
}

impl Quota {
    /// Rolls every window whose time has passed.
    pub fn roll(&mut self, now: Ms) {
        self.primary.roll(now);
        self.secondary.roll(now);
        if let Some(e) = self.extra.as_mut() {
            e.roll(now);
        }
    }

    /// Whether a request for a model (extra limit or not) may be served now.
    pub fn check(&mut self, uses_extra: bool, now: Ms) -> Result<(), Refusal> {
        self.roll(now);
        if uses_extra && let Some(e) = self.extra.as_ref().filter(|e| e.exhausted()) {
            return Err(Refusal::Extra {
                reset_at: e.reset_at_or_start(now),
            });
        }
        let blocking: Vec<&Window> = [&self.primary, &self.secondary]
            .into_iter()
            .filter(|w| w.exhausted())
            .collect();
        match blocking.iter().map(|w| w.reset_at_or_start(now)).max() {
            Some(reset_at) => Err(Refusal::Codex { reset_at }),
            None => Ok(()),
        }
    }

    /// Charges tokens of a served answer to the windows that apply to its model.
    pub fn charge(&mut self, tokens: u64, uses_extra: bool, now: Ms) {
        self.primary.charge(tokens, now);
        self.secondary.charge(tokens, now);
        if uses_extra && let Some(e) = self.extra.as_mut() {
            e.charge(tokens, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_fills_refuses_and_resets_when_its_time_passes() {
        let mut q = Quota {
            primary: Window::new(100, 1_000),
            secondary: Window::new(1_000, 10_000),
            extra: None,
        };
        assert_eq!(q.check(false, 0), Ok(()));
        q.charge(60, false, 0);
        assert_eq!(q.primary.used_percent(), 60.0);
        assert_eq!(q.secondary.used_percent(), 6.0);
        q.charge(60, false, 500);
        assert_eq!(q.primary.used_percent(), 100.0);
        assert_eq!(q.check(false, 999), Err(Refusal::Codex { reset_at: 1_000 }));
        assert_eq!(q.check(false, 1_000), Ok(()));
        assert_eq!(q.primary.used_tokens, 0);
        assert_eq!(q.secondary.used_tokens, 120);
    }

    #[test]
    fn extra_limit_only_blocks_its_models() {
        let mut q = Quota {
            primary: Window::new(100, 1_000),
            secondary: Window::new(1_000, 10_000),
            extra: Some(Window::new(10, 2_000)),
        };
        q.charge(10, true, 0);
        assert_eq!(q.check(true, 1), Err(Refusal::Extra { reset_at: 2_000 }));
        assert_eq!(q.check(false, 1), Ok(()));
    }
}
