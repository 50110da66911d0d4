//! Injected time. Every rule of the pool reads "now" from a [`Clock`] so that tests can drive
//! time by hand ([`ManualClock`]) while the daemon uses the wall clock ([`SystemClock`]).

use std::sync::atomic::{AtomicI64, Ordering};

use crate::UnixMs;

/// Source of the current time in unix milliseconds; shared by all actors of a pool.
pub trait Clock: Send + Sync + 'static {
    /// The current time, unix epoch milliseconds.
    fn now_ms(&self) -> UnixMs;
}

/// The real wall clock, used by the daemon.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> UnixMs {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
    }
}

/// A clock tests set and advance by hand, so that time-dependent rules are deterministic.
#[derive(Debug, Default)]
pub struct ManualClock {
    /// Current time in unix milliseconds.
    now: AtomicI64,
}

impl ManualClock {
    /// A manual clock that starts at `start`.
    pub fn new(start: UnixMs) -> Self {
        Self {
            now: AtomicI64::new(start),
        }
    }

    /// Sets the time to `now`.
    pub fn set(&self, now: UnixMs) {
        self.now.store(now, Ordering::SeqCst);
    }

    /// Moves time forward by `d`.
    pub fn advance(&self, d: std::time::Duration) {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        self.now.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> UnixMs {
        self.now.load(Ordering::SeqCst)
    }
}
