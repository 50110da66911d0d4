//! One pool-wide ticker for every account's periodic `Tick`, instead of a timer task per
//! account: 1 000 accounts cost one task and one timer, not 1 000 of each (~450 bytes of task
//! and timer state per account, and a timer-wheel entry to turn for every one).
//!
//! The tick period is cut into [`TICK_SLOTS`] slots and every account sits in the slot given by
//! a stable hash of its id, so that 10 000 accounts do not all tick in the same instant (a
//! burst that would stall picks), while there are only [`TICK_SLOTS`] distinct wake-ups per
//! period: each one wakes a parked worker thread, and with accounts at millisecond offsets
//! those wake-ups were most of the idle daemon's CPU. Slots without an account are skipped, so
//! a pool of three accounts wakes three times a period, not fifty, and an empty pool not at all.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::account::{AccountMsg, AccountRef};

/// Slots per tick period the accounts' ticks are spread over.
pub const TICK_SLOTS: u64 = 50;

/// The accounts to tick, by slot. Shared by the supervisor (which adds every actor it spawns)
/// and the ticking task (which drops an actor once it no longer takes messages).
#[derive(Clone)]
pub struct Ticker {
    slots: Arc<Mutex<Vec<Vec<AccountRef>>>>,
    every: Duration,
    /// Wakes the ticking task when an account joins (it may sit in a slot the task skipped).
    added: Arc<tokio::sync::Notify>,
}

impl Ticker {
    /// A ticker that ticks every account once per `period` (rounded down to a whole number of
    /// millisecond slots: 1 234 ms ticks every 1 200 ms).
    pub fn new(period: Duration) -> Self {
        let period_ms = u64::try_from(period.as_millis()).unwrap_or(u64::MAX).max(1);
        let slot_ms = (period_ms / TICK_SLOTS).max(1);
        let slots = (period_ms / slot_ms).clamp(1, TICK_SLOTS);
        let slots = usize::try_from(slots).unwrap_or(1);
        Ticker {
            slots: Arc::new(Mutex::new(vec![Vec::new(); slots])),
            every: Duration::from_millis(slot_ms),
            added: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// Ticks `actor` (the account `id`) from now on, until it stops.
    pub fn add(&self, id: &str, actor: AccountRef) {
        let mut slots = self.lock();
        let n = slots.len() as u64;
        let slot = usize::try_from(slot_of(id) % n).unwrap_or(0);
        slots[slot].push(actor);
        drop(slots);
        self.added.notify_one();
    }

    /// Runs the ticker until the returned handle is aborted. Slot `k` (counted from the start)
    /// fires at `start + k × every`; the task sleeps until the next slot that has an account.
    /// After a stall (a suspended machine, a starved runtime) it resumes at the current slot
    /// rather than firing every missed one at once: a skipped tick is made up a period later.
    pub fn start(&self) -> tokio::task::AbortHandle {
        let t = self.clone();
        tokio::spawn(async move {
            let start = tokio::time::Instant::now();
            let every_ns = u64::try_from(t.every.as_nanos()).unwrap_or(u64::MAX).max(1);
            let n = t.lock().len() as u64;
            let mut next = 0u64;
            loop {
                let due = u64::try_from(start.elapsed().as_nanos() / u128::from(every_ns))
                    .unwrap_or(u64::MAX);
                next = next.max(due);
                let target = {
                    let slots = t.lock();
                    (next..next.saturating_add(n)).find(|k| !slots[index(*k, n)].is_empty())
                };
                let Some(k) = target else {
                    // No account at all: nothing to do until one is added.
                    t.added.notified().await;
                    continue;
                };
                let at = start + Duration::from_nanos(every_ns.saturating_mul(k));
                tokio::select! {
                    () = tokio::time::sleep_until(at) => {
                        // A stopped actor refuses the message: that is how it leaves the ticker.
                        t.lock()[index(k, n)].retain(|a| a.cast(AccountMsg::Tick).is_ok());
                        next = k.saturating_add(1);
                    }
                    // An account joined, maybe in an earlier slot: look again.
                    () = t.added.notified() => {}
                }
            }
        })
        .abort_handle()
    }

    /// The slots. A panic while holding the lock cannot leave them half-updated in a way that
    /// matters (a missed tick is made up by the next), so a poisoned lock is used as is.
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Vec<AccountRef>>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The slot of slot number `k` among `n` slots.
fn index(k: u64, n: u64) -> usize {
    usize::try_from(k % n).unwrap_or(0)
}

/// A stable slot number for an account id (FNV-1a), the same on every start.
fn slot_of(id: &str) -> u64 {
    id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    }) % TICK_SLOTS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_period_is_cut_into_at_most_tick_slots_of_at_least_a_millisecond() {
        let t = Ticker::new(Duration::from_secs(1));
        assert_eq!((t.lock().len(), t.every), (50, Duration::from_millis(20)));
        let t = Ticker::new(Duration::from_millis(10));
        assert_eq!((t.lock().len(), t.every), (10, Duration::from_millis(1)));
        let t = Ticker::new(Duration::ZERO);
        assert_eq!((t.lock().len(), t.every), (1, Duration::from_millis(1)));
        let t = Ticker::new(Duration::from_millis(1234));
        assert_eq!((t.lock().len(), t.every), (50, Duration::from_millis(24)));
    }

    #[test]
    fn an_account_keeps_its_slot_across_starts_and_accounts_spread_over_the_slots() {
        assert_eq!(slot_of("acct-1"), slot_of("acct-1"));
        let used: std::collections::HashSet<u64> =
            (0..1000).map(|i| slot_of(&format!("acct-{i}"))).collect();
        assert!(used.len() > 40, "{} of 50 slots used", used.len());
    }
}
