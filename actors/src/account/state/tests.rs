//! Tests of the account state: coalesced flushes and the allocation-free availability check.

use super::*;
use crate::Tokens;
use std::sync::Mutex;

/// Counts the coalesced saves it is handed.
#[derive(Default)]
struct Saves(Mutex<Vec<AccountRecord>>);

impl Store for Saves {
    fn save(&self, rec: &AccountRecord) -> std::io::Result<()> {
        self.0.lock().expect("lock").push(rec.clone());
        Ok(())
    }
    fn remove(&self, _id: &str) -> std::io::Result<()> {
        Ok(())
    }
}

fn state() -> AccountState {
    let rec = AccountRecord::new("a", Tokens::default(), 0);
    // The pool's defaults, spelt out: this module sits below `pool`, which builds the real one.
    let cfg = AccountConfig {
        max_leases: 3,
        tick: std::time::Duration::from_secs(5),
        quota: crate::quota::QuotaConfig::default(),
        refresh_margin_ms: 5 * 60_000,
        refresh_jitter_ms: 60_000,
        refresh_enabled: true,
        probe_retry_ms: 60_000,
    };
    AccountState::new(rec, Arc::new(cfg))
}

#[test]
fn usage_alone_waits_for_its_interval_but_a_failure_goes_out_on_the_next_tick() {
    let (store, mut st) = (Saves::default(), state());
    st.flush(&store, 1_000);
    assert!(
        store.0.lock().expect("lock").is_empty(),
        "nothing dirty, nothing written"
    );
    st.release();
    st.flush(&store, 1_000);
    assert_eq!(
        store.0.lock().expect("lock").len(),
        1,
        "first flush of a dirty account"
    );
    st.release();
    st.flush(&store, 1_000 + USAGE_FLUSH_MS - 1);
    assert_eq!(
        store.0.lock().expect("lock").len(),
        1,
        "counters alone wait"
    );
    st.failure(
        UpstreamFailure::Transient {
            reason: "502".into(),
        },
        2_000,
        2_000,
    );
    st.flush(&store, 2_000);
    let saves = store.0.lock().expect("lock");
    assert_eq!(saves.len(), 2, "a recorded failure is not held back");
    assert_eq!(
        saves[1].usage.requests, 2,
        "and carries the counters with it"
    );
}

#[test]
fn counters_are_flushed_once_their_interval_passed() {
    let (store, mut st) = (Saves::default(), state());
    st.release();
    st.flush(&store, 1_000);
    st.release();
    st.flush(&store, 1_000 + USAGE_FLUSH_MS);
    let saves = store.0.lock().expect("lock");
    assert_eq!(saves.len(), 2);
    assert_eq!(saves[1].usage.requests, 2);
}

#[test]
fn the_allocation_free_comparison_agrees_with_building_the_candidate() {
    use crate::quota::{Bucket, ExtraLimit};
    let mut st = state();
    let locked = |reset_at| {
        Some(Bucket {
            limit_reached: true,
            reset_at,
            ..Bucket::default()
        })
    };
    let last = st.candidate(10);
    assert!(st.candidate_unchanged(&last, 10));
    st.rec.quota.primary = locked(Some(99));
    assert!(!st.candidate_unchanged(&last, 10), "a new lock");
    let last = st.candidate(10);
    assert!(st.candidate_unchanged(&last, 10));
    st.rec.quota.primary = locked(Some(100));
    assert!(!st.candidate_unchanged(&last, 10), "a moved reset");
    st.rec.quota.extra.insert(
        "codex_bengalfox".into(),
        ExtraLimit {
            secondary: locked(None),
            ..ExtraLimit::default()
        },
    );
    let last = st.candidate(10);
    assert_eq!(last.locks.len(), 2);
    assert!(st.candidate_unchanged(&last, 10));
    st.rec.quota.extra.clear();
    assert!(!st.candidate_unchanged(&last, 10), "a lock gone");
    let last = st.candidate(10);
    st.rec.quota.primary = Some(Bucket {
        reset_at: Some(500),
        ..Bucket::default()
    });
    assert!(!st.candidate_unchanged(&last, 10), "a window reset learnt");
    let last = st.candidate(10);
    st.leases += 1;
    assert!(!st.candidate_unchanged(&last, 10), "a lease");
    let last = st.candidate(10);
    st.tokens_durable = false;
    assert!(!st.candidate_unchanged(&last, 10), "tokens not durable");
    assert_eq!(st.candidate_unchanged(&last, 10), st.candidate(10) == last);
}

#[test]
fn the_push_builds_the_candidate_only_when_it_changed() {
    let mut st = state();
    let mut last = None;
    assert_eq!(
        st.candidate_if_changed(&mut last, 10),
        Some(st.candidate(10))
    );
    assert_eq!(last, Some(st.candidate(10)), "the first push is remembered");
    assert_eq!(st.candidate_if_changed(&mut last, 10), None, "nothing new");
    st.leases += 1;
    let pushed = st.candidate_if_changed(&mut last, 10);
    assert_eq!(pushed, Some(st.candidate(10)), "a lease");
    assert_eq!(pushed.as_ref().map(|c| c.leases), Some(1));
    assert_eq!(last, pushed, "the remembered push is the pushed one");
    st.rec.usage.last_used = Some(10);
    st.rec.identity.plan = Some("team".into());
    let pushed = st.candidate_if_changed(&mut last, 10);
    assert_eq!(pushed, Some(st.candidate(10)), "last used and plan");
    assert_eq!(last, pushed);
    assert_eq!(st.candidate_if_changed(&mut last, 10), None);
    st.rec.quota.primary = Some(crate::quota::Bucket {
        limit_reached: true,
        reset_at: Some(99),
        ..crate::quota::Bucket::default()
    });
    st.rec
        .quota
        .not_included
        .insert("codex_bengalfox".into(), 500);
    let pushed = st.candidate_if_changed(&mut last, 10);
    assert_eq!(
        pushed,
        Some(st.candidate(10)),
        "a lock and a family left out"
    );
    assert_eq!(last, pushed, "locks and families remembered");
    st.rec.quota.primary = None;
    st.rec.quota.not_included.clear();
    let pushed = st.candidate_if_changed(&mut last, 10);
    assert_eq!(pushed.as_ref().map(|c| c.locks.len()), Some(0));
    assert_eq!(last, pushed, "and their clearing");
}
