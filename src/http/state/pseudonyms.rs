//! The stand-ins of client ids computed before ([`crate::upstream::pseudonym`]), so that a
//! conversation's later turns hash nothing for the ids it keeps (its installation, session and
//! thread ids): each is a SHA-256 of the account and the id, some thousand instructions, where a
//! look-up here is a lock and a hash of 20 bytes.
//!
//! Bounded ([`super::bounded`]): at most [`CAPACITY`] (account, id) pairs, the oldest forgotten
//! first; a pair forgotten is computed again, the same. An entry is the id's 16 bytes, a small
//! account number and the 36-byte stand-in: at capacity 2¹⁵ buckets of 57 bytes (1.8 MiB) and
//! the order queue 2¹⁴ slots of 20 (0.3 MiB), under 2.5 MiB in all;
//! the account names are kept once each (the pool has few accounts). The ids are the client's
//! own, already in every request it sends: nothing here is a secret.

use super::bounded::Bounded;
use crate::upstream::pseudonym::Memory;
use std::collections::HashMap;
use std::sync::Mutex;

/// Most (account, client id) pairs remembered: the ids of thousands of conversations (a Codex
/// turn brings two or three ids, of which its turn id is new).
pub const CAPACITY: usize = 1 << 14;

/// A stand-in in text, as [`crate::upstream::pseudonym::pseudonym`] writes it.
type StandIn = [u8; 36];

/// (account, client id) → stand-in, bounded (see the module docs).
#[derive(Debug)]
pub struct Pseudonyms {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// (account number, client id) → stand-in.
    map: Bounded<(u32, [u8; 16]), StandIn>,
    /// Account name → its number in `map`'s keys.
    accounts: HashMap<Box<str>, u32>,
}

impl Default for Pseudonyms {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Inner {
                map: Bounded::new(CAPACITY),
                accounts: HashMap::new(),
            }),
        }
    }
}

impl Pseudonyms {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Pairs remembered now.
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Memory for Pseudonyms {
    fn recall(&self, account: &str, id: &[u8; 16]) -> Option<StandIn> {
        let inner = self.lock();
        let n = *inner.accounts.get(account)?;
        inner.map.get(&(n, *id)).copied()
    }

    fn keep(&self, account: &str, id: [u8; 16], stand_in: StandIn) {
        let mut inner = self.lock();
        let n = match inner.accounts.get(account) {
            Some(n) => *n,
            None => {
                let n = u32::try_from(inner.accounts.len()).unwrap_or(u32::MAX);
                inner.accounts.insert(account.into(), n);
                n
            }
        };
        inner.map.insert((n, id), stand_in);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::pseudonym;

    #[test]
    fn remembers_per_account_and_forgets_the_oldest_past_capacity() {
        let m = Pseudonyms::new();
        let id = [7u8; 16];
        assert_eq!(m.recall("a", &id), None);
        let pa = pseudonym::pseudonym("a", &id);
        m.keep("a", id, pa);
        m.keep("b", id, pseudonym::pseudonym("b", &id));
        assert_eq!(m.recall("a", &id), Some(pa));
        assert_ne!(m.recall("b", &id), Some(pa), "per account");
        assert_eq!(m.recall("c", &id), None);
        for i in 0..CAPACITY as u32 {
            let mut other = [0u8; 16];
            other[..4].copy_from_slice(&i.to_le_bytes());
            m.keep("a", other, pa);
        }
        assert_eq!(m.len(), CAPACITY);
        assert_eq!(m.recall("a", &id), None, "oldest forgotten first");
        let (map, order) = m.lock().map.capacities();
        assert!(order <= CAPACITY && map <= 2 * CAPACITY, "{map} {order}");
    }
}
