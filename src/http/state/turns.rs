//! Sticky routing by `x-codex-turn-state`. Upstream hands out an opaque turn-state token in a
//! response header and Codex echoes it on the follow-up requests of the same turn (docs/protocol.md
//! §2, §12); those must reach the account that issued it. The pool's affinity is keyed by
//! conversation key, and it records a key when it grants a lease — before the token exists —
//! so the proxy remembers, per token, the affinity key of the request that received it. A
//! follow-up carrying the token then asks the pool for that same key.
//!
//! A token is one account's: the map also names the account whose answer carried it, so a
//! follow-up that fails over to another account goes there without it (the other account's
//! upstream never minted it) and gets that account's own token back.
//!
//! Bounded in size and age ([`super::bounded`]): it is a routing preference, never a source of
//! truth. A token re-issued to another affinity takes the new key and a fresh time but keeps its
//! place in the order of forgetting.

use super::bounded::Bounded;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most tokens remembered.
pub const CAPACITY: usize = 50_000;
/// How long a token is remembered (turns are short).
pub const TTL: Duration = Duration::from_secs(3600);

/// What is known of one turn-state token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    /// The affinity key of the request whose answer carried the token.
    pub affinity: String,
    /// The pool account whose upstream answer carried (minted) the token.
    pub account: String,
}

/// Turn-state token → its [`Turn`].
#[derive(Debug)]
pub struct TurnStates {
    /// Token → (its turn, when it was learned), the oldest forgotten first past
    /// [`CAPACITY`] or [`TTL`].
    inner: Mutex<Bounded<String, (Turn, Instant)>>,
}

impl Default for TurnStates {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Bounded::new(CAPACITY)),
        }
    }
}

impl TurnStates {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Bounded<String, (Turn, Instant)>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The turn `token` belongs to, if remembered and fresh.
    pub fn get(&self, token: &str) -> Option<Turn> {
        self.lock()
            .get(token)
            .filter(|(_, at)| at.elapsed() < TTL)
            .map(|(t, _)| t.clone())
    }

    /// Remembers that `account`'s answer to the request routed by `affinity` carried `token`.
    pub fn remember(&self, token: &str, affinity: &str, account: &str) {
        let mut map = self.lock();
        if map
            .get(token)
            .is_some_and(|(t, _)| t.affinity == affinity && t.account == account)
        {
            return;
        }
        let turn = Turn {
            affinity: affinity.to_owned(),
            account: account.to_owned(),
        };
        map.insert(token.to_owned(), (turn, Instant::now()));
        map.expire_while(|(_, at)| at.elapsed() >= TTL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_and_bounds() {
        let t = TurnStates::new();
        assert_eq!(t.get("a"), None);
        t.remember("a", "cache:thread-1", "acct-a");
        let turn = t.get("a").expect("remembered");
        assert_eq!(turn.affinity, "cache:thread-1");
        assert_eq!(turn.account, "acct-a");
        // Re-issued by another account: the token is that account's now.
        t.remember("a", "cache:thread-1", "acct-b");
        assert_eq!(t.get("a").expect("kept").account, "acct-b");
        for i in 0..CAPACITY + 10 {
            t.remember(&format!("t{i}"), "k", "acct");
        }
        assert!(t.lock().len() <= CAPACITY);
        assert_eq!(t.get("a"), None, "oldest evicted first");
    }
}
