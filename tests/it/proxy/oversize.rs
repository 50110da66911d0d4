//! Oversized upstream answers (issue 15, item 9), through the daemon: a response header far
//! beyond what any client reads is not forwarded (the quota headers still are), and an SSE event
//! longer than the observer's line limit still reaches a Responses client byte for byte.

use crate::support::{POOL_KEY, event_types, responses_body, start_env};
use codex_rotor::sim::{FaultKind, FaultSpec};
use serde_json::{Value, json};

/// 200 KB: an HTTP client's whole head budget is 16–64 KiB (Node, h11), so forwarding it would
/// break the client even though it fits the daemon's own upstream limit.
const HUGE: usize = 200_000;

#[tokio::test]
async fn an_oversized_upstream_header_is_not_forwarded_but_the_quota_headers_are() {
    let env = start_env(1).await;
    env.sim.inject(FaultSpec::always(FaultKind::HugeHeader {
        name: "x-codex-promo-message".into(),
        bytes: HUGE,
    }));
    for stream in [true, false] {
        let resp = env.responses(&responses_body(stream)).await;
        assert_eq!(resp.status(), 200);
        let h = resp.headers().clone();
        assert!(
            !h.contains_key("x-codex-promo-message"),
            "a {HUGE}-byte header is dropped (stream: {stream})"
        );
        assert!(h.contains_key("x-codex-primary-used-percent"), "{h:?}");
        assert!(h.contains_key("x-codex-turn-state"), "{h:?}");
        let body = resp.text().await.expect("body");
        if stream {
            assert_eq!(
                event_types(&body).last().map(String::as_str),
                Some("response.completed")
            );
        } else {
            let v: Value = serde_json::from_str(&body).expect("json");
            assert_eq!(v["status"], "completed");
        }
    }
    let chat = env
        .http
        .post(env.url("/v1/chat/completions"))
        .bearer_auth(POOL_KEY)
        .json(&json!({"model": "gpt-5.5", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("answer");
    assert_eq!(chat.status(), 200);
    assert!(!chat.headers().contains_key("x-codex-promo-message"));
    assert!(chat.headers().contains_key("x-codex-primary-used-percent"));
    assert!(
        chat.text()
            .await
            .expect("body")
            .ends_with("data: [DONE]\n\n")
    );
    env.shutdown().await;
}

#[tokio::test]
async fn an_event_over_the_observer_limit_reaches_a_responses_client_unchanged() {
    let env = start_env(1).await;
    let bytes = codex_rotor::sse::MAX_LINE + 1024;
    env.sim
        .inject(FaultSpec::always(FaultKind::HugeEvent { bytes }).times(1));
    let resp = env.responses(&responses_body(true)).await;
    assert_eq!(resp.status(), 200);
    let body = resp.text().await.expect("body");
    let huge = body
        .split("\n\n")
        .find(|f| f.len() > bytes)
        .expect("the huge event arrives whole");
    assert!(huge.contains("response.output_text.delta"));
    assert_eq!(
        event_types(&body).last().map(String::as_str),
        Some("response.completed"),
        "and the stream ends as upstream ended it"
    );
    let view = env.view_of(&env.sim_ids[0]).await;
    assert_eq!(view.last_error, None, "the account did nothing wrong");
    env.shutdown().await;
}
