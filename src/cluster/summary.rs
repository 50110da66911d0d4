//! What this node publishes about itself ([`Summary`]: accounts owned, how many can serve, the
//! soonest reset), computed from the pool's own summary about every second and written into
//! the view, where the lease loop picks it up with its next renewal. Peers read it to decide
//! whether a request none of their accounts can take may spill here, and for the pool-wide
//! soonest reset of a 429.

use std::sync::Arc;
use std::time::Duration;

use rotor_actors::{PoolHandle, PoolSummary};

use super::view::{ClusterView, Summary};

/// How often the summary is recomputed (peers see it at most a renewal later).
pub const EVERY: Duration = Duration::from_secs(1);

/// The published summary of a pool summary. `serving` counts the active accounts that are
/// neither exhausted nor held by a cooldown; when the pool says it serves, it is at least 1.
pub fn of(pool: &PoolSummary) -> Summary {
    let held = pool.rate_limited + pool.cooling_down + pool.refused;
    let serving = if pool.serving {
        pool.active.saturating_sub(held).max(1)
    } else {
        0
    };
    Summary {
        owned: u32::try_from(pool.total).unwrap_or(u32::MAX),
        serving: u32::try_from(serving).unwrap_or(u32::MAX),
        soonest_reset: pool.soonest_reset_at,
    }
}

/// Keeps `view`'s local summary current until the task is aborted (or the pool stops).
pub fn spawn(view: Arc<ClusterView>, pool: PoolHandle) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let summary = of(&pool.summary().await);
            view.write().local = summary;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serving_counts_active_accounts_not_held() {
        let pool = PoolSummary {
            total: 5,
            active: 4,
            rate_limited: 2,
            cooling_down: 1,
            serving: true,
            soonest_reset_at: Some(42),
            ..PoolSummary::default()
        };
        assert_eq!(
            of(&pool),
            Summary {
                owned: 5,
                serving: 1,
                soonest_reset: Some(42)
            }
        );
        let exhausted = PoolSummary {
            rate_limited: 4,
            serving: false,
            ..pool.clone()
        };
        assert_eq!(of(&exhausted).serving, 0);
        // The pool's own word wins when the counts lag behind it.
        let lagging = PoolSummary {
            rate_limited: 4,
            ..pool
        };
        assert_eq!(of(&lagging).serving, 1);
    }
}
