//! The supervisor's availability view: every account's last pushed [`Candidate`], plus an
//! ordered index by strategy key so that a pick walks from the best end — O(log n) when the
//! front is eligible. It is a hint; the actor's `Reserve` decides.

use std::collections::{BTreeSet, HashMap};

use super::Strategy;
use super::{Candidate, Cooling, NoChoice, Policy, eligible, key, no_choice, through_cooldowns};
use crate::{AccountId, UnixMs};

type Key = ((i64, i64, i64), AccountId);

/// Candidates by id with an index ordered by the current strategy.
#[derive(Debug, Default)]
pub struct View {
    /// Strategy the index is ordered by.
    strategy: Strategy,
    /// Last pushed availability of every account.
    entries: HashMap<AccountId, Candidate>,
    /// Accounts whose main windows are open and whose lifecycle allows serving.
    index: BTreeSet<Key>,
    /// Round robin: the last account handed out first.
    rr_cursor: Option<AccountId>,
    /// Accounts with a Cloudflare cooldown, by its end: where a pick through cooldowns starts,
    /// so a busy pool looking for a softly cooling account does not walk every account.
    cooling: BTreeSet<(UnixMs, AccountId)>,
}

impl View {
    /// An empty view ordered by `strategy`.
    pub fn new(strategy: Strategy) -> Self {
        Self {
            strategy,
            ..Self::default()
        }
    }

    /// Current strategy.
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// Number of accounts known.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True iff no account is known.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// All candidates (unordered).
    pub fn candidates(&self) -> impl Iterator<Item = &Candidate> {
        self.entries.values()
    }

    /// One candidate.
    pub fn get(&self, id: &str) -> Option<&Candidate> {
        self.entries.get(id)
    }

    /// Inserts or replaces an account's availability.
    pub fn upsert(&mut self, c: Candidate) {
        if let Some(c) = self.update(c) {
            if indexed(&c) {
                self.index.insert((key(self.strategy, &c), c.id.clone()));
            }
            if let Some(t) = c.cooldown_until {
                self.cooling.insert((t, c.id.clone()));
            }
            self.entries.insert(c.id.clone(), c);
        }
    }

    /// Replaces the availability of a known account (`None`); an unknown one is handed back
    /// (`Some`) and not inserted. The index moves only when the account's sort key does, and the
    /// id the index holds is reused, so the push after every lease and release allocates nothing
    /// here.
    pub fn update(&mut self, c: Candidate) -> Option<Candidate> {
        let strategy = self.strategy;
        let Some(old) = self.entries.get_mut(&c.id) else {
            return Some(c);
        };
        if old.cooldown_until != c.cooldown_until {
            if let Some(t) = old.cooldown_until {
                self.cooling.remove(&(t, c.id.clone()));
            }
            if let Some(t) = c.cooldown_until {
                self.cooling.insert((t, c.id.clone()));
            }
        }
        let old_key = indexed(old).then(|| key(strategy, old));
        let new_key = indexed(&c).then(|| key(strategy, &c));
        if old_key != new_key {
            let mut id = None;
            if let Some(k) = old_key {
                let probe = (k, std::mem::take(&mut old.id));
                id = self.index.take(&probe).map(|(_, id)| id);
            }
            if let Some(k) = new_key {
                let id = id.unwrap_or_else(|| c.id.clone());
                self.index.insert((k, id));
            }
        }
        *old = c;
        None
    }

    /// Forgets an account.
    pub fn remove(&mut self, id: &str) {
        if let Some(old) = self.entries.remove(id) {
            if let Some(t) = old.cooldown_until {
                self.cooling.remove(&(t, old.id.clone()));
            }
            self.index.remove(&(key(self.strategy, &old), old.id));
        }
    }

    /// Switches strategy and rebuilds the index (O(n log n), operator action only).
    pub fn set_strategy(&mut self, s: Strategy) {
        self.strategy = s;
        self.index = self
            .entries
            .values()
            .filter(|c| indexed(c))
            .map(|c| (key(s, c), c.id.clone()))
            .collect();
    }

    /// [`pick`](Self::pick), and when it finds nothing, the cooling accounts that may serve
    /// instead ([`Cooling::fallback`]). `p.cooling` is left saying how the accounts were
    /// chosen, for their actors' `Reserve`. If the fallback finds nothing either, the first
    /// answer stands, unless the cooling accounts are only at their lease cap (then the
    /// request waits for one of them).
    pub fn pick_or_cooling(
        &mut self,
        p: &mut Policy,
        now: UnixMs,
        k: usize,
    ) -> Result<Vec<AccountId>, NoChoice> {
        let first = match self.pick(p, now, k) {
            Ok(ids) => return Ok(ids),
            Err(no) if self.cooling.is_empty() => return Err(no),
            Err(no) => no,
        };
        p.cooling = Cooling::fallback(&first);
        match self.pick(p, now, k) {
            Ok(ids) => Ok(ids),
            Err(busy @ NoChoice::Busy { .. }) => Err(busy),
            Err(_) => {
                p.cooling = Cooling::Avoid;
                Err(first)
            }
        }
    }

    /// Up to `k` accounts to try, best first; same order as [`super::choose`].
    pub fn pick(&mut self, p: &Policy, now: UnixMs, k: usize) -> Result<Vec<AccountId>, NoChoice> {
        if p.cooling != Cooling::Avoid {
            let affinity = p.affinity.as_ref().and_then(|a| self.entries.get(a));
            let by_end = self
                .cooling
                .iter()
                .filter_map(|(_, id)| self.entries.get(id));
            return through_cooldowns(affinity, by_end, p, now, k);
        }
        let mut out: Vec<AccountId> = Vec::with_capacity(k);
        if let Some(a) = &p.affinity
            && self
                .entries
                .get(a)
                .is_some_and(|c| eligible(c, p, now).is_ok())
        {
            out.push(a.clone());
        }
        let take = |out: &mut Vec<AccountId>, it: &mut dyn Iterator<Item = &Key>| {
            for (_, id) in it {
                if out.len() >= k {
                    break;
                }
                if out.contains(id) {
                    continue;
                }
                if self
                    .entries
                    .get(id)
                    .is_some_and(|c| eligible(c, p, now).is_ok())
                {
                    out.push(id.clone());
                }
            }
        };
        match (self.strategy, &self.rr_cursor) {
            (Strategy::RoundRobin, Some(cur)) => {
                let pivot = ((0, 0, 0), cur.clone());
                let mut after = self.index.range((
                    std::ops::Bound::Excluded(pivot.clone()),
                    std::ops::Bound::Unbounded,
                ));
                take(&mut out, &mut after);
                let mut before = self.index.range(..=pivot);
                take(&mut out, &mut before);
            }
            _ => take(&mut out, &mut self.index.iter()),
        }
        if out.is_empty() {
            return Err(no_choice(self.entries.values(), p, now));
        }
        if self.strategy == Strategy::RoundRobin {
            self.rr_cursor = out
                .iter()
                .find(|id| p.affinity.as_ref() != Some(*id))
                .or(out.first())
                .cloned();
        }
        Ok(out)
    }
}

/// Only accounts that could serve some request are indexed; the rest wait for a push.
fn indexed(c: &Candidate) -> bool {
    c.serving && !c.main_locked()
}
