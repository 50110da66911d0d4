//! Sticky routing by `x-codex-turn-state`. Upstream hands out an opaque turn-state token in a
//! response header and Codex echoes it on the follow-up requests of the same turn (docs/protocol.md
//! §2, §12); those must reach the account that issued it. The pool's affinity is keyed by
//! conversation key, and it records a key when it grants a lease — before the token exists —
//! so the proxy remembers, per token, the affinity key of the request that received it. A
//! follow-up carrying the token then asks the pool for that same key.
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

/// Turn-state token → affinity key.
#[derive(Debug)]
pub struct TurnStates {
    /// Token → (affinity key, when it was learned), the oldest forgotten first past
    /// [`CAPACITY`] or [`TTL`].
    inner: Mutex<Bounded<String, (String, Instant)>>,
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

    fn lock(&self) -> std::sync::MutexGuard<'_, Bounded<String, (String, Instant)>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The affinity key of the request that received `token`, if remembered and fresh.
    pub fn affinity_for(&self, token: &str) -> Option<String> {
        self.lock()
            .get(token)
            .filter(|(_, at)| at.elapsed() < TTL)
            .map(|(k, _)| k.clone())
    }

    /// Remembers that `token` was issued to the request routed by `affinity`.
    pub fn remember(&self, token: &str, affinity: &str) {
        let mut map = self.lock();
        if map.get(token).is_some_and(|(k, _)| k == affinity) {
            return;
        }
        map.insert(token.to_owned(), (affinity.to_owned(), Instant::now()));
        map.expire_while(|(_, at)| at.elapsed() >= TTL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_and_bounds() {
        let t = TurnStates::new();
        assert_eq!(t.affinity_for("a"), None);
        t.remember("a", "cache:thread-1");
        assert_eq!(t.affinity_for("a").as_deref(), Some("cache:thread-1"));
        for i in 0..CAPACITY + 10 {
            t.remember(&format!("t{i}"), "k");
        }
        assert!(t.lock().len() <= CAPACITY);
        assert_eq!(t.affinity_for("a"), None, "oldest evicted first");
    }
}
