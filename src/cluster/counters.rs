//! What the node's loops count, process-wide, for `/metrics` (read by `metrics`, like the
//! store's fenced writes): renewals and claims by outcome, releases, the node's standing and
//! how many accounts it owns.

use std::sync::atomic::{AtomicU64, Ordering};

use rotor_actors::ownership::session::Standing;

/// One counter per outcome.
#[derive(Debug, Default)]
pub struct Outcomes {
    /// The store granted it.
    pub granted: AtomicU64,
    /// The store refused it (a rule said no).
    pub refused: AtomicU64,
    /// The store could not be asked (connection lost, timeout).
    pub failed: AtomicU64,
}

impl Outcomes {
    const fn new() -> Self {
        Outcomes {
            granted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        }
    }

    /// `(outcome label, count)` for each outcome.
    pub fn by_outcome(&self) -> [(&'static str, u64); 3] {
        [
            ("granted", self.granted.load(Ordering::Relaxed)),
            ("refused", self.refused.load(Ordering::Relaxed)),
            ("failed", self.failed.load(Ordering::Relaxed)),
        ]
    }
}

/// Acquires and renewals of the node's session.
pub static RENEWALS: Outcomes = Outcomes::new();
/// Claims of accounts.
pub static CLAIMS: Outcomes = Outcomes::new();
/// Accounts handed over by a planned release.
pub static RELEASES: AtomicU64 = AtomicU64::new(0);
/// Accounts this node owns now.
pub static OWNED: AtomicU64 = AtomicU64::new(0);
/// The standing as a number: 0 unacquired, 1 held, 2 fenced; `u64::MAX` = not a cluster node.
static STANDING: AtomicU64 = AtomicU64::new(u64::MAX);

/// Records where the node stands.
pub fn set_standing(s: Standing) {
    let n = match s {
        Standing::Unacquired => 0,
        Standing::Held => 1,
        Standing::Fenced => 2,
    };
    STANDING.store(n, Ordering::Relaxed);
}

/// Where the node stood at its last look, `None` if this process is no cluster node.
pub fn standing() -> Option<Standing> {
    match STANDING.load(Ordering::Relaxed) {
        0 => Some(Standing::Unacquired),
        1 => Some(Standing::Held),
        2 => Some(Standing::Fenced),
        _ => None,
    }
}

/// The label of a standing (`/metrics`, `/readyz`).
pub fn standing_name(s: Standing) -> &'static str {
    match s {
        Standing::Unacquired => "unacquired",
        Standing::Held => "held",
        Standing::Fenced => "fenced",
    }
}
