//! Counters of the requests that crossed nodes, process-wide statics like the store's
//! fenced-out count, read by `/metrics` (`crate::metrics`): forwards sent by why and how they
//! ended, forwarded requests received by verdict, and requests no node could take.

use std::sync::atomic::{AtomicU64, Ordering};

/// Why a request was forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// Its conversation's account lives on the peer.
    Affinity,
    /// No local account could take it; the peer's summary said it could.
    Spill,
}

/// How a forward ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// The peer answered (whatever its status); its answer went to the client.
    Answered,
    /// The peer failed before its first byte; the request was served or refused locally.
    Failed,
}

/// Forwards sent, by [`Why`] × [`Sent`].
static SENT: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];
/// Forwarded requests received: accepted, refused.
static RECEIVED: [AtomicU64; 2] = [const { AtomicU64::new(0) }; 2];
/// Requests that found no local account and no peer that could serve.
static NOWHERE: AtomicU64 = AtomicU64::new(0);

fn sent_index(why: Why, how: Sent) -> usize {
    (why as usize) * 2 + how as usize
}

/// Counts a forward.
pub fn sent(why: Why, how: Sent) {
    SENT[sent_index(why, how)].fetch_add(1, Ordering::Relaxed);
}

/// Counts a forwarded request received, accepted or refused.
pub fn received(accepted: bool) {
    RECEIVED[usize::from(!accepted)].fetch_add(1, Ordering::Relaxed);
}

/// Counts a request no node could take.
pub fn nowhere() {
    NOWHERE.fetch_add(1, Ordering::Relaxed);
}

/// Forwards sent so far for `why` ending `how`.
pub fn sent_total(why: Why, how: Sent) -> u64 {
    SENT[sent_index(why, how)].load(Ordering::Relaxed)
}

/// Forwarded requests received so far, accepted or refused.
pub fn received_total(accepted: bool) -> u64 {
    RECEIVED[usize::from(!accepted)].load(Ordering::Relaxed)
}

/// Requests so far that no node could take.
pub fn nowhere_total() -> u64 {
    NOWHERE.load(Ordering::Relaxed)
}
