//! Scripted faults of the simulated world: which one hits a request (by account, endpoint,
//! remaining count and seeded probability), and the list operators see.

use super::{World, bump};
use crate::sim::options::{FaultKind, FaultSpec, FaultTarget};

/// A scripted fault and how many hits it has left.
pub(super) struct ActiveFault {
    /// The fault as scripted.
    spec: FaultSpec,
    /// Hits left; `None` = unlimited.
    remaining: Option<u32>,
}

impl World {
    /// Adds a scripted fault.
    pub fn inject(&self, spec: FaultSpec) {
        let remaining = spec.count;
        self.lock().faults.push(ActiveFault { spec, remaining });
    }

    /// Removes every scripted fault.
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// The first fault that hits this request, if any; spends one of its count.
    pub fn take_fault(&self, account: Option<&str>, target: FaultTarget) -> Option<FaultKind> {
        let mut g = self.lock();
        let g = &mut *g;
        let mut hit = None;
        for f in g.faults.iter_mut() {
            let applies = f.spec.target == target
                && f.remaining != Some(0)
                && f.spec.account.as_deref().is_none_or(|a| Some(a) == account);
            if !applies {
                continue;
            }
            if let Some(p) = f.spec.probability
                && g.rng.unit() >= p
            {
                continue;
            }
            if let Some(r) = f.remaining.as_mut() {
                *r -= 1;
            }
            hit = Some(f.spec.kind.clone());
            break;
        }
        g.faults.retain(|f| f.remaining != Some(0));
        if hit.is_some() {
            bump(g, account, |c| c.faults += 1);
        }
        hit
    }

    /// The scripted faults still active, `count` = hits left.
    pub fn faults(&self) -> Vec<FaultSpec> {
        let g = self.lock();
        g.faults
            .iter()
            .map(|f| FaultSpec {
                count: f.remaining,
                ..f.spec.clone()
            })
            .collect()
    }
}
