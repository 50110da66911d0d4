//! Every scripted fault kind of the simulator, seen from a real client.

use super::{access_token, body, events, post, start};
use codex_rotor::sim::{AccountSpec, FaultKind, FaultSpec, FaultTarget, SimHandle, SimOptions};
use serde_json::Value;
use std::time::{Duration, Instant};

async fn with_fault(kind: FaultKind) -> (SimHandle, String) {
    let sim = start(SimOptions::default()).await;
    let token = access_token(&sim.create_account(AccountSpec::default()).auth_json);
    sim.inject(FaultSpec::always(kind));
    (sim, token)
}

/// The full error chain of a reqwest error, for matching transport-level causes.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(" / ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[tokio::test]
async fn rate_limit_with_and_without_retry_after() {
    let (sim, token) = with_fault(FaultKind::RateLimit {
        retry_after_secs: Some(2),
    })
    .await;
    let resp = post(&sim, &token, &body("hi", true)).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "2");
    assert!(
        resp.headers().contains_key("x-codex-primary-used-percent"),
        "quota headers on every answer"
    );
    let v: Value = resp.json().await.expect("json");
    assert_eq!(v["error"]["type"], "rate_limit_exceeded");
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");
    sim.clear_faults();
    sim.inject(FaultSpec::always(FaultKind::RateLimit {
        retry_after_secs: None,
    }));
    let resp = post(&sim, &token, &body("hi", true)).await;
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().get("retry-after").is_none());
    assert_eq!(sim.total_counters().served_429, 2);
    sim.shutdown().await;
}

#[tokio::test]
async fn server_error_overloaded_and_cloudflare() {
    let (sim, token) = with_fault(FaultKind::ServerError).await;
    assert_eq!(post(&sim, &token, &body("hi", true)).await.status(), 500);
    sim.clear_faults();
    sim.inject(FaultSpec::always(FaultKind::Overloaded));
    let resp = post(&sim, &token, &body("hi", true)).await;
    assert_eq!(resp.status(), 503);
    let v: Value = resp.json().await.expect("json");
    assert_eq!(v["error"]["code"], "server_is_overloaded");
    sim.clear_faults();
    sim.inject(FaultSpec::always(FaultKind::Cloudflare));
    let resp = post(&sim, &token, &body("hi", true)).await;
    assert_eq!(resp.status(), 403);
    assert_eq!(resp.headers()["cf-mitigated"], "challenge");
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .expect("ct")
            .starts_with("text/html")
    );
    assert!(resp.text().await.expect("html").contains("<html"));
    sim.shutdown().await;
}

#[tokio::test]
async fn premature_close_ends_the_stream_without_a_terminal_event() {
    let (sim, token) = with_fault(FaultKind::PrematureClose {
        after_events: 3,
        mid_chunk: false,
    })
    .await;
    let resp = post(&sim, &token, &body("hi", true)).await;
    assert_eq!(resp.status(), 200);
    let ev = events(&resp.text().await.expect("clean end of body"));
    assert_eq!(ev.len(), 3);
    assert!(
        ev.iter()
            .all(|e| e["type"] != "response.completed" && e["type"] != "response.failed")
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn mid_chunk_cut_is_a_framing_error_for_the_client() {
    let (sim, token) = with_fault(FaultKind::PrematureClose {
        after_events: 2,
        mid_chunk: true,
    })
    .await;
    let resp = post(&sim, &token, &body("hi", true)).await;
    assert_eq!(resp.status(), 200);
    let mut resp = resp;
    let mut received = Vec::new();
    let err = loop {
        match resp.chunk().await {
            Ok(Some(c)) => received.extend_from_slice(&c),
            Ok(None) => panic!("body ended cleanly after {} bytes", received.len()),
            Err(e) => break e,
        }
    };
    let text = chain(&err);
    assert!(
        text.contains("unexpected EOF during chunk size line"),
        "{text}"
    );
    let ev = events(&String::from_utf8(received).expect("utf8"));
    assert_eq!(ev.len(), 2, "events before the cut arrive whole");
    sim.shutdown().await;
}

#[tokio::test]
async fn silence_delays_the_first_byte_then_answers() {
    let (sim, token) = with_fault(FaultKind::Silence { millis: 400 }).await;
    let t0 = Instant::now();
    let resp = post(&sim, &token, &body("hi", true)).await;
    assert!(t0.elapsed() >= Duration::from_millis(400));
    assert_eq!(resp.status(), 200);
    let ev = events(&resp.text().await.expect("body"));
    assert_eq!(ev.last().expect("ev")["type"], "response.completed");
    sim.shutdown().await;
}

#[tokio::test]
async fn stall_pauses_mid_stream_then_completes() {
    let (sim, token) = with_fault(FaultKind::Stall {
        after_events: 2,
        millis: 300,
    })
    .await;
    let t0 = Instant::now();
    let mut resp = post(&sim, &token, &body("hi", true)).await;
    let first = resp.chunk().await.expect("chunk").expect("some");
    assert!(
        t0.elapsed() < Duration::from_millis(250),
        "first events come before the stall"
    );
    assert!(!first.is_empty());
    let mut rest = first.to_vec();
    while let Some(c) = resp.chunk().await.expect("chunk") {
        rest.extend_from_slice(&c);
    }
    assert!(t0.elapsed() >= Duration::from_millis(300));
    let ev = events(&String::from_utf8(rest).expect("utf8"));
    assert_eq!(ev.last().expect("ev")["type"], "response.completed");
    sim.shutdown().await;
}

/// `split_event`: the huge delta's frame arrives in two parts with the pause between them —
/// when the pause begins, what came so far ends inside that event, not at a blank line.
#[tokio::test]
async fn split_event_pauses_inside_one_event() {
    let (sim, token) = with_fault(FaultKind::SplitEvent {
        bytes: 100_000,
        millis: 400,
    })
    .await;
    let mut resp = post(&sim, &token, &body("hi", true)).await;
    let (mut got, mut last, mut paused_inside) = (Vec::new(), Instant::now(), false);
    while let Some(c) = resp.chunk().await.expect("chunk") {
        if last.elapsed() >= Duration::from_millis(350) {
            paused_inside = !got.ends_with(b"\n\n");
        }
        got.extend_from_slice(&c);
        last = Instant::now();
    }
    assert!(paused_inside, "the pause fell inside an event");
    let ev = events(&String::from_utf8(got).expect("utf8"));
    let huge = ev
        .iter()
        .find(|e| e["delta"].as_str().is_some_and(|d| d.len() == 100_000));
    assert!(huge.is_some(), "the split event arrives whole");
    assert_eq!(ev.last().expect("ev")["type"], "response.completed");
    sim.shutdown().await;
}

#[tokio::test]
async fn connection_reset_fails_the_request() {
    let (sim, token) = with_fault(FaultKind::Reset).await;
    let err = reqwest::Client::new()
        .post(format!("{}/codex/responses", sim.backend_url()))
        .bearer_auth(&token)
        .json(&body("hi", true))
        .send()
        .await
        .expect_err("reset");
    let text = chain(&err);
    assert!(
        text.to_lowercase().contains("reset") || text.contains("closed"),
        "{text}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn faults_by_count_hit_only_their_account() {
    let sim = start(SimOptions::default()).await;
    let a = sim.create_account(AccountSpec::default());
    let b = access_token(&sim.create_account(AccountSpec::default()).auth_json);
    let ta = access_token(&a.auth_json);
    sim.inject(
        FaultSpec::always(FaultKind::Overloaded)
            .for_account(&a.id)
            .times(2),
    );
    assert_eq!(post(&sim, &b, &body("hi", true)).await.status(), 200);
    assert_eq!(post(&sim, &ta, &body("hi", true)).await.status(), 503);
    assert_eq!(post(&sim, &ta, &body("hi", true)).await.status(), 503);
    assert_eq!(post(&sim, &ta, &body("hi", true)).await.status(), 200);
    let c = sim.counters(&a.id);
    assert_eq!(
        (c.faults, c.served_5xx, c.requests, c.completed),
        (2, 2, 3, 1)
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn probabilistic_faults_are_seeded() {
    async fn pattern(seed: u64) -> Vec<u16> {
        let sim = start(SimOptions {
            seed,
            ..SimOptions::default()
        })
        .await;
        let token = access_token(&sim.create_account(AccountSpec::default()).auth_json);
        sim.inject(FaultSpec::always(FaultKind::ServerError).with_probability(0.5));
        let mut out = Vec::new();
        for _ in 0..24 {
            out.push(
                post(&sim, &token, &body("hi", true))
                    .await
                    .status()
                    .as_u16(),
            );
        }
        sim.shutdown().await;
        out
    }
    let a = pattern(7).await;
    assert_eq!(a, pattern(7).await, "same seed, same faults");
    assert!(a.contains(&500) && a.contains(&200), "{a:?}");
}

#[tokio::test]
async fn token_endpoint_faults_are_transient() {
    let sim = start(SimOptions::default()).await;
    let acct = sim.create_account(AccountSpec::default());
    sim.inject(
        FaultSpec::always(FaultKind::ServerError)
            .on(FaultTarget::Token)
            .times(1),
    );
    let rt = acct.auth_json["tokens"]["refresh_token"]
        .as_str()
        .expect("rt");
    let send = || {
        reqwest::Client::new()
            .post(sim.token_url())
            .json(&serde_json::json!({"grant_type": "refresh_token", "refresh_token": rt}))
            .send()
    };
    assert_eq!(send().await.expect("sent").status(), 500);
    assert_eq!(
        send().await.expect("sent").status(),
        200,
        "the failed call did not spend the token"
    );
    sim.shutdown().await;
}
