//! Cloudflare challenges under load (issue 15, item 17): a challenge page on 1 % of upstream
//! requests, at random, must cost the account that met it briefly and must not empty the pool.
//! The trial that found it: 10 accounts, steady concurrent load, and all 10 benched with 97 % of
//! client requests failing for 20 s.

use rotor_lab::chaos::cloudflare::{CloudflareOptions, cloudflare};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_percent_of_requests_challenged_fails_almost_no_client_request() {
    let opts = CloudflareOptions {
        duration: Duration::from_secs(10),
        ..CloudflareOptions::default()
    };
    let r = cloudflare(&opts).await.expect("the scenario runs");
    println!("{}", r.render());
    assert!(r.requests > 200, "the load ran: {} requests", r.requests);
    assert!(
        r.challenges >= 3,
        "the simulator challenged requests: {} of {} upstream",
        r.challenges,
        r.upstream_requests
    );
    // Each challenged request is retried on another account before any byte reaches the
    // client, so a failure needs the pool itself to refuse: the bound says it (nearly) never does.
    assert!(
        r.failure_share() < 0.02,
        "{:.2}% of client requests failed ({} of {})",
        r.failure_share() * 100.0,
        r.failed(),
        r.requests
    );
}
