//! Dashboard login sessions: a random session id in an `HttpOnly; SameSite=Strict` cookie,
//! mapped server-side to an expiry and a fingerprint (SHA-256) of the admin key it was opened
//! with — the key itself is never stored or sent back. Changing the admin key (SIGHUP) ends
//! every session, because their fingerprints stop matching.
//!
//! The map is process-wide: a session id is 256 random bits and only ever handed out after a
//! login with the right key, so two daemons in one process (tests) sharing the map cannot
//! accept each other's sessions unless they share the same key.

use rand::RngCore;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// Name of the session cookie.
pub const COOKIE: &str = "rotor_session";
/// At most this many live sessions; the oldest is evicted beyond it (bounds memory under a
/// login flood).
const MAX_SESSIONS: usize = 1024;

/// One open session.
#[derive(Clone, Copy)]
struct Session {
    /// SHA-256 of the admin key the session was opened with.
    key_fingerprint: [u8; 32],
    /// When the session ends.
    expires: Instant,
}

/// Session id → session.
static SESSIONS: LazyLock<Mutex<HashMap<String, Session>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// SHA-256 of a key, the form in which keys are compared (equal lengths, constant time).
pub fn fingerprint(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// Whether `presented` equals `expected`, in time independent of where they differ.
pub fn keys_match(presented: &str, expected: &str) -> bool {
    bool::from(fingerprint(presented).ct_eq(&fingerprint(expected)))
}

/// Opens a session lasting `ttl` for someone who just presented the admin key whose
/// fingerprint is given, and returns its id (64 hex chars).
pub fn open(key_fingerprint: [u8; 32], ttl: Duration) -> String {
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    let id: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    let now = Instant::now();
    let mut map = lock();
    map.retain(|_, s| s.expires > now);
    if map.len() >= MAX_SESSIONS
        && let Some(oldest) = map
            .iter()
            .min_by_key(|(_, s)| s.expires)
            .map(|(k, _)| k.clone())
    {
        map.remove(&oldest);
    }
    map.insert(
        id.clone(),
        Session {
            key_fingerprint,
            expires: now + ttl,
        },
    );
    id
}

/// Whether `id` names a live session opened with the key whose fingerprint is given.
pub fn valid(id: &str, key_fingerprint: &[u8; 32]) -> bool {
    let map = lock();
    map.get(id).is_some_and(|s| {
        s.expires > Instant::now() && bool::from(s.key_fingerprint.ct_eq(key_fingerprint))
    })
}

/// Ends a session (logout).
pub fn close(id: &str) {
    lock().remove(id);
}

/// The session id carried by a `Cookie` header, if any.
pub fn from_cookie_header(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
}

/// Locks the map; a poisoned lock still holds valid sessions.
fn lock() -> std::sync::MutexGuard<'static, HashMap<String, Session>> {
    SESSIONS.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_bound_to_its_key() {
        let id = open(fingerprint("k1"), Duration::from_secs(60));
        assert!(valid(&id, &fingerprint("k1")));
        assert!(!valid(&id, &fingerprint("k2")));
        assert!(!valid("nope", &fingerprint("k1")));
        close(&id);
        assert!(!valid(&id, &fingerprint("k1")));
    }

    #[test]
    fn keys_compare_by_value() {
        assert!(keys_match("abc", "abc"));
        assert!(!keys_match("abc", "abd"));
        assert!(!keys_match("", "abc"));
        assert!(
            !keys_match("admin-key-000", "admin-key-0000"),
            "a prefix is not the key"
        );
    }
}
