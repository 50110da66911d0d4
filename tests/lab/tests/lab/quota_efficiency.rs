//! Quota efficiency (issue 9): 8 simulated accounts with 15 000 tokens each, loaded through the
//! daemon by 16 concurrent clients (two per account, as in real use) until the first
//! client-visible 429. The pool must have served ≥ 98 % of its total
//! quota by then, hit at most one upstream 429 per account in the window, and answered nothing
//! but successes before the exhaustion 429.

use rotor_lab::chaos::quota::{QuotaOptions, quota_efficiency};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_serves_its_whole_quota_with_at_most_one_upstream_429_per_account() {
    let opts = QuotaOptions {
        accounts: 8,
        quota_tokens: 15_000,
        concurrency: 16,
    };
    let r = quota_efficiency(&opts).await.expect("the scenario runs");
    println!("{}", r.render());
    assert!(r.exhausted, "the load reached the pool's exhaustion 429");
    assert!(
        r.share() >= 0.98,
        "served {:.2}% of the quota",
        r.share() * 100.0
    );
    assert_eq!(
        r.other_failures, 0,
        "only successes before exhaustion: {:?}",
        r.failure_samples
    );
    // Issue 9's target: at most ONE upstream 429 per account per window. The headroom rule
    // makes it hold: an account whose window has less room left than its requests in flight
    // plus one would use serves one request at a time, so only its last request can meet the
    // 429 (which the proxy retries on another account before any byte reaches the client).
    assert!(
        r.max_429s_per_account <= 1,
        "upstream 429s: {} total, {} on the worst account",
        r.upstream_429s,
        r.max_429s_per_account
    );
}
