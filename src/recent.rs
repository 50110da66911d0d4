//! The recent-requests ring buffer: the last few thousand requests the daemon served, kept in
//! memory so an operator can answer "what just happened?" from the admin API and the dashboard
//! without a log pipeline. One [`RequestRecord`] is pushed by the proxy when a request ends
//! (success, failure or client disconnect); the oldest record falls off when the ring is full.
//!
//! Records hold the client key's *name* and never a key or a token, so the whole ring can be
//! serialised to an operator as is.

use rotor_actors::{UnixMs, Usage};
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::Mutex;

/// One request the daemon answered, as the operator sees it.
#[derive(Debug, Clone, Serialize)]
pub struct RequestRecord {
    /// When the request arrived (unix ms), so the list can show "12 s ago".
    pub at: UnixMs,
    /// The id the daemon gave the request (also in its logs), to correlate.
    pub request_id: String,
    /// The *name* of the client key that made the request, never the key itself.
    pub client_key: Option<String>,
    /// Which front-end route served it: "responses" | "chat" | "messages" | "count_tokens" | "models".
    pub route: &'static str,
    /// The model the client asked for (after aliasing), if the request named one.
    pub model: Option<String>,
    /// The account that finally served it (the last one tried), if any was picked.
    pub account_id: Option<String>,
    /// HTTP status returned to the client.
    pub status: u16,
    /// Time from arrival to the first byte sent to the client, when any byte was sent.
    pub ttfb_ms: Option<u64>,
    /// Time from arrival to the end of the response.
    pub duration_ms: u64,
    /// Tokens upstream reported for the request, when it reported any.
    pub usage: Option<Usage>,
    /// How many times the request moved to another account before answering.
    pub failovers: u32,
    /// How many times the request was retried on the same account.
    pub retries: u32,
    /// How many 429 answers upstream gave while serving it.
    pub upstream_429s: u32,
    /// A short, secret-free description of what went wrong, if anything did.
    pub error: Option<String>,
    /// In cluster mode, the peer this node forwarded the request to (its answer is the peer's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forwarded_to: Option<String>,
    /// In cluster mode, the node that forwarded the request here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forwarded_from: Option<String>,
}

/// A bounded, thread-safe ring of the most recent [`RequestRecord`]s.
///
/// A plain mutex is enough: a push is a pointer move, far cheaper than the request it records,
/// and reads happen at human speed (dashboard polls).
#[derive(Debug)]
pub struct RecentRequests {
    /// How many records are kept; the oldest is dropped beyond this.
    capacity: usize,
    /// Oldest at the front, newest at the back.
    ring: Mutex<VecDeque<RequestRecord>>,
}

impl RecentRequests {
    /// A ring keeping at most `capacity` records (at least one).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        RecentRequests {
            capacity,
            ring: Mutex::new(VecDeque::with_capacity(capacity.min(4096))),
        }
    }

    /// Records one finished request, dropping the oldest when full.
    pub fn push(&self, r: RequestRecord) {
        let mut ring = self.lock();
        if ring.len() == self.capacity {
            ring.pop_front();
        }
        ring.push_back(r);
    }

    /// The newest `limit` records, newest first.
    pub fn list(&self, limit: usize) -> Vec<RequestRecord> {
        self.lock().iter().rev().take(limit).cloned().collect()
    }

    /// How many records are held now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no request has been recorded yet.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Locks the ring; a poisoned lock (a panic elsewhere while pushing) still holds valid
    /// records, so it is recovered rather than propagated.
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<RequestRecord>> {
        self.ring.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Default for RecentRequests {
    /// A ring of 1 000 records.
    fn default() -> Self {
        RecentRequests::new(1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str) -> RequestRecord {
        RequestRecord {
            at: 0,
            request_id: id.into(),
            client_key: None,
            route: "responses",
            model: None,
            account_id: None,
            status: 200,
            ttfb_ms: None,
            duration_ms: 1,
            usage: None,
            failovers: 0,
            retries: 0,
            upstream_429s: 0,
            error: None,
            forwarded_to: None,
            forwarded_from: None,
        }
    }

    #[test]
    fn the_ring_keeps_the_newest_and_lists_them_first() {
        let ring = RecentRequests::new(3);
        assert!(ring.is_empty());
        for id in ["a", "b", "c", "d"] {
            ring.push(rec(id));
        }
        assert_eq!(ring.len(), 3);
        let ids: Vec<String> = ring.list(10).into_iter().map(|r| r.request_id).collect();
        assert_eq!(ids, ["d", "c", "b"]);
        assert_eq!(ring.list(1)[0].request_id, "d");
    }
}
