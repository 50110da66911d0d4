//! Guessing the admin key (issue 15 item 4): failed admin authentications — a wrong
//! `Authorization: Bearer` at `/admin`, a wrong key at the dashboard's `/login` — are limited per
//! client address by a token bucket (`admin.auth_failure_burst`, refilled one per
//! `admin.auth_failure_refill`); past it the address gets 429 with `Retry-After`, even for the
//! right key, while other addresses are unaffected. Counted by answers, never by time: the
//! refill is an hour, so no attempt is forgiven while a test runs.

use super::rig::{ADMIN_KEY, Rig};
use codex_rotor::config::Config;
use futures::{StreamExt, stream};
use reqwest::StatusCode;
use serde_json::json;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

/// Failures one address may make in a row in these tests.
const BURST: usize = 5;

fn tight(cfg: &mut Config) {
    cfg.admin.auth_failure_burst = BURST as u32;
    cfg.admin.auth_failure_refill = Duration::from_secs(3600);
}

/// Runs the requests 100 at a time and collects their answers.
async fn parallel<F>(requests: impl Iterator<Item = F>) -> Vec<reqwest::Response>
where
    F: std::future::Future<Output = reqwest::Result<reqwest::Response>>,
{
    stream::iter(requests)
        .buffer_unordered(100)
        .map(|r| r.expect("answer"))
        .collect()
        .await
}

/// Tallies `(401s, 429s with Retry-After, anything else)`.
fn tally(answers: &[reqwest::Response]) -> (usize, usize, usize) {
    let mut t = (0, 0, 0);
    for r in answers {
        match r.status() {
            StatusCode::UNAUTHORIZED => t.0 += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert!(
                    r.headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<u64>().ok())
                        .is_some_and(|s| s > 0),
                    "a 429 says when to come back: {:?}",
                    r.headers()
                );
                t.1 += 1;
            }
            _ => t.2 += 1,
        }
    }
    t
}

#[tokio::test]
async fn wrong_admin_keys_from_one_peer_are_answered_429_past_the_burst() {
    let rig = Rig::start_with(Default::default(), tight).await;
    let url = rig.url("/admin/accounts/export");
    // 1 000 wrong keys in parallel from 127.0.0.1; a spoofed X-Forwarded-For changes nothing
    // while trust_forwarded_headers is off.
    let answers = parallel((0..1000).map(|i| {
        rig.http
            .get(&url)
            .bearer_auth(format!("guess-{i}"))
            .header("x-forwarded-for", format!("198.51.100.{}", i % 250))
            .send()
    }))
    .await;
    assert_eq!(tally(&answers), (BURST, 1000 - BURST, 0));
    let r = answers
        .into_iter()
        .find(|r| r.status() == StatusCode::TOO_MANY_REQUESTS)
        .expect("a 429");
    let v: serde_json::Value = r.json().await.expect("JSON 429");
    assert_eq!(v["error"]["type"], "too_many_attempts", "{v}");
    // While locked out, even the right key from this address is refused, unread.
    let r = rig
        .http
        .get(&url)
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 429);
    // Another address (127.0.0.2, the same loopback interface) is not affected.
    let other = reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)))
        .build()
        .expect("client");
    let r = other
        .get(&url)
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 200, "another peer with the right key is served");
    let r = other
        .get(&url)
        .bearer_auth("nope")
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 401, "another peer has its own budget");
    // A session cookie or no credentials at all are not guesses of the key.
    for _ in 0..2 * BURST {
        let r = other
            .get(rig.url("/admin/pool"))
            .send()
            .await
            .expect("answer");
        assert_eq!(r.status(), 401);
        let r = other
            .get(rig.url("/admin/pool"))
            .header("cookie", "rotor_session=0123")
            .send()
            .await
            .expect("answer");
        assert_eq!(r.status(), 401);
    }
    let r = other
        .get(&url)
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 200);
    rig.shutdown().await;
}

#[tokio::test]
async fn dashboard_logins_share_the_budget_of_the_forwarded_address() {
    let rig = Rig::start_with(Default::default(), |c| {
        tight(c);
        c.server.trust_forwarded_headers = true;
    })
    .await;
    let login = |key: String, client: &'static str| {
        rig.http
            .post(rig.url("/login"))
            .header("x-forwarded-for", client)
            .json(&json!({ "key": key }))
            .send()
    };
    // 200 parallel wrong logins reported by the proxy as coming from one client.
    let answers = parallel((0..200).map(|i| login(format!("guess-{i}"), "203.0.113.7"))).await;
    assert_eq!(tally(&answers), (BURST, 200 - BURST, 0));
    // The same client's Bearer guesses draw from the same, empty, budget.
    let r = rig
        .http
        .get(rig.url("/admin/pool"))
        .header("x-forwarded-for", "203.0.113.7")
        .bearer_auth("guess")
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 429);
    let r = login(ADMIN_KEY.to_owned(), "203.0.113.7")
        .await
        .expect("answer");
    assert_eq!(r.status(), 429, "locked out, even with the right key");
    // Another client behind the same proxy logs in.
    let r = login(ADMIN_KEY.to_owned(), "203.0.113.8")
        .await
        .expect("answer");
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("set-cookie").is_some());
    // Successes do not spend the budget: the operator may log in and call the API freely.
    for _ in 0..3 * BURST {
        let r = login(ADMIN_KEY.to_owned(), "203.0.113.9")
            .await
            .expect("answer");
        assert_eq!(r.status(), 200);
    }
    rig.shutdown().await;
}
