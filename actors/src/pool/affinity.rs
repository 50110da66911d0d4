//! Conversation affinity: which account served a conversation key last, so its follow-up
//! requests prefer the same account (upstream prompt caches and response chains are
//! account-scoped). Bounded in size and age; it is only a preference.

use std::collections::{HashMap, VecDeque};

use crate::{AccountId, UnixMs};

/// How long an affinity is remembered.
pub const TTL_MS: i64 = 4 * 3_600_000;
/// Most keys remembered.
pub const CAPACITY: usize = 100_000;

/// Conversation key → account.
#[derive(Debug, Default)]
pub struct Affinity {
    /// Key → (account, when recorded).
    map: HashMap<String, (AccountId, UnixMs)>,
    /// Insertion order for eviction (may hold stale duplicates).
    order: VecDeque<(String, UnixMs)>,
}

impl Affinity {
    /// The account a key prefers, if remembered and fresh.
    pub fn get(&self, key: &str, now: UnixMs) -> Option<AccountId> {
        self.map
            .get(key)
            .filter(|(_, at)| now - at < TTL_MS)
            .map(|(id, _)| id.clone())
    }

    /// Remembers that `id` served `key`.
    pub fn record(&mut self, key: String, id: AccountId, now: UnixMs) {
        self.map.insert(key.clone(), (id, now));
        self.order.push_back((key, now));
        while self.order.len() > CAPACITY * 2
            || self.order.front().is_some_and(|(_, at)| now - at >= TTL_MS)
        {
            let Some((k, at)) = self.order.pop_front() else {
                break;
            };
            if self.map.get(&k).is_some_and(|(_, t)| *t == at) {
                self.map.remove(&k);
            }
        }
        while self.map.len() > CAPACITY {
            let Some((k, _)) = self.order.pop_front() else {
                break;
            };
            self.map.remove(&k);
        }
    }

    /// Forgets every key pointing at a removed account.
    pub fn forget_account(&mut self, id: &str) {
        self.map.retain(|_, (a, _)| a != id);
    }
}
