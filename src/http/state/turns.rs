//! Sticky routing by `x-codex-turn-state`. Upstream hands out an opaque turn-state token in a
//! response header and Codex echoes it on the follow-up requests of the same turn (docs/protocol.md
//! §2, §12); those must reach the account that issued it. The pool's affinity is keyed by
//! conversation key, and it records a key when it grants a lease — before the token exists —
//! so the proxy remembers, per token, the affinity key of the request that received it. A
//! follow-up carrying the token then asks the pool for that same key.
//!
//! Bounded in size and age: it is a routing preference, never a source of truth.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most tokens remembered.
pub const CAPACITY: usize = 50_000;
/// How long a token is remembered (turns are short).
pub const TTL: Duration = Duration::from_secs(3600);

/// Turn-state token → affinity key.
#[derive(Debug, Default)]
pub struct TurnStates {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    map: HashMap<String, (String, Instant)>,
    order: VecDeque<(String, Instant)>,
}

impl TurnStates {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// The affinity key of the request that received `token`, if remembered and fresh.
    pub fn affinity_for(&self, token: &str) -> Option<String> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner
            .map
            .get(token)
            .filter(|(_, at)| at.elapsed() < TTL)
            .map(|(k, _)| k.clone())
    }

    /// Remembers that `token` was issued to the request routed by `affinity`.
    pub fn remember(&self, token: &str, affinity: &str) {
        let now = Instant::now();
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner.map.get(token).is_some_and(|(k, _)| k == affinity) {
            return;
        }
        inner
            .map
            .insert(token.to_owned(), (affinity.to_owned(), now));
        inner.order.push_back((token.to_owned(), now));
        while inner.order.len() > CAPACITY
            || inner
                .order
                .front()
                .is_some_and(|(_, at)| at.elapsed() >= TTL)
        {
            let Some((k, at)) = inner.order.pop_front() else {
                break;
            };
            if inner.map.get(&k).is_some_and(|(_, t)| *t == at) {
                inner.map.remove(&k);
            }
        }
    }

    /// Tokens remembered now.
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map
            .len()
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
    fn remembers_and_bounds() {
        let t = TurnStates::new();
        assert_eq!(t.affinity_for("a"), None);
        t.remember("a", "cache:thread-1");
        assert_eq!(t.affinity_for("a").as_deref(), Some("cache:thread-1"));
        for i in 0..CAPACITY + 10 {
            t.remember(&format!("t{i}"), "k");
        }
        assert!(t.len() <= CAPACITY);
        assert_eq!(t.affinity_for("a"), None, "oldest evicted first");
    }
}
