//! Which account minted which encrypted reasoning. With `store: false` a Codex conversation
//! carries its reasoning as `encrypted_content` blobs that only the account that produced them
//! can decrypt; another account answers `400 invalid_encrypted_content` (docs/protocol.md §15).
//! The proxy learns each blob's account from the streamed `response.output_item.done` events
//! and, before a request goes to an account, drops the reasoning another account minted
//! ([`crate::proxy::reasoning`]).
//!
//! Bounded ([`super::bounded`]): at most [`CAPACITY`] blobs, the oldest forgotten first, each
//! kept as a 64-bit keyed hash of its length and end (never the blob itself, [`TAIL`]) and a
//! shared account name — under 4 MiB in all. A blob it does not know (forgotten, or minted before a restart) is left
//! in the request: the backstop of [`crate::proxy::reasoning`] covers it. A hash collision
//! (odds about 2⁻³³ at capacity) could only misplace one blob the same way.

use super::bounded::Bounded;
use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};

/// Most blobs remembered — the reasoning of a few hundred long conversations. At capacity the
/// map has 2¹⁷ buckets of 25 bytes (3.1 MiB) and the order queue 2¹⁶ slots of 8 (0.5 MiB):
/// under 4 MiB in all, plus one name per account.
pub const CAPACITY: usize = 1 << 16;

/// How much of a blob's end is hashed. A Codex blob is a Fernet token, whose last 43
/// characters are the HMAC over the whole token: its end tells tokens apart, and hashing only
/// it keeps the cost per blob flat (a replayed history carries dozens of blobs of kilobytes on
/// every turn) instead of proportional to the blob.
pub const TAIL: usize = 128;

/// Keyed hash of an `encrypted_content` blob → the account that minted it.
#[derive(Debug)]
pub struct MintedReasoning {
    /// Per-process key of the hash: the map holds no blob, and a blob cannot be forged to
    /// collide with another from outside.
    keys: RandomState,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Blob hash → minting account, the oldest forgotten first past [`CAPACITY`].
    map: Bounded<u64, Arc<str>>,
    /// Account names, shared by all of an account's entries (the pool has few accounts).
    accounts: HashSet<Arc<str>>,
}

impl Default for MintedReasoning {
    fn default() -> Self {
        Self {
            keys: RandomState::new(),
            inner: Mutex::new(Inner {
                map: Bounded::new(CAPACITY),
                accounts: HashSet::new(),
            }),
        }
    }
}

impl MintedReasoning {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// The hash `blob` is remembered by: of its length and its last [`TAIL`] bytes.
    fn key(&self, blob: &str) -> u64 {
        let b = blob.as_bytes();
        self.keys
            .hash_one((b.len(), &b[b.len().saturating_sub(TAIL)..]))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Remembers that `account` minted `blob`.
    pub fn remember(&self, blob: &str, account: &str) {
        let key = self.key(blob);
        let mut inner = self.lock();
        if inner.map.get(&key).is_some_and(|a| &**a == account) {
            return;
        }
        let name = match inner.accounts.get(account) {
            Some(a) => Arc::clone(a),
            None => {
                let a: Arc<str> = Arc::from(account);
                inner.accounts.insert(Arc::clone(&a));
                a
            }
        };
        inner.map.insert(key, name);
    }

    /// The account that minted `blob`, if remembered.
    pub fn minter(&self, blob: &str) -> Option<Arc<str>> {
        let key = self.key(blob);
        self.lock().map.get(&key).cloned()
    }

    /// Blobs remembered now.
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_the_minter_and_forgets_the_oldest_past_capacity() {
        let m = MintedReasoning::new();
        assert_eq!(m.minter("gAAAAB-a"), None);
        m.remember("gAAAAB-a", "acct-1");
        m.remember("gAAAAB-a", "acct-1");
        assert_eq!(m.minter("gAAAAB-a").as_deref(), Some("acct-1"));
        assert_eq!(m.len(), 1, "the same blob twice is one entry");
        for i in 0..CAPACITY {
            m.remember(&format!("gAAAAB-{i}"), "acct-2");
        }
        for i in 0..CAPACITY {
            m.remember(&format!("gAAAAB-again-{i}"), "acct-2");
        }
        assert_eq!(m.len(), CAPACITY);
        let (map, order) = m.lock().map.capacities();
        assert!(order <= CAPACITY, "{order}");
        assert!(map <= 2 * CAPACITY, "{map}");
        assert_eq!(m.minter("gAAAAB-a"), None, "oldest forgotten first");
        assert_eq!(m.minter("gAAAAB-again-7").as_deref(), Some("acct-2"));
        m.remember("gAAAAB-again-7", "acct-3");
        assert_eq!(m.minter("gAAAAB-again-7").as_deref(), Some("acct-3"));
        assert_eq!(m.len(), CAPACITY);
    }
}
