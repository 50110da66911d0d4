//! Conversations survive a failover (issue 17 item 3, docs/protocol.md §15): reasoning one
//! account encrypted reaches no other account — the strict simulator refuses it with
//! `400 invalid_encrypted_content`, as the real backend does — and that refusal, when it comes
//! anyway, is retried once without the encrypted reasoning, penalising nobody.

use crate::clients::wire::WireLog;
use crate::support::{TestEnv, start_env};
use codex_rotor::sim::{FaultKind, FaultSpec};
use serde_json::{Value, json};

/// A Codex-like turn asking for encrypted reasoning, with `input` as history.
fn turn(input: Value) -> Value {
    json!({"model": "gpt-5.5", "stream": true, "store": false, "instructions": "You are Codex.",
        "reasoning": {"effort": "low", "summary": "auto"},
        "include": ["reasoning.encrypted_content"], "prompt_cache_key": "thread-1",
        "input": input})
}

fn user(text: &str) -> Value {
    json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]})
}

/// Streams `body`; returns the status, the body text and the items of its
/// `response.output_item.done` events.
async fn stream(env: &TestEnv, body: &Value) -> (u16, String, Vec<Value>) {
    let resp = env.responses(body).await;
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    let items = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter(|e| e["type"] == "response.output_item.done")
        .map(|e| e["item"].clone())
        .collect();
    (status, text, items)
}

/// The record of the request that just ended, once its stream has been accounted.
async fn record(env: &TestEnv, n: usize) -> codex_rotor::RequestRecord {
    let state = env.state.clone();
    env.eventually("the request is recorded", move || {
        let done = state.recent().list(100).len() >= n;
        async move { done }
    })
    .await;
    env.last_record()
}

#[tokio::test]
async fn reasoning_another_account_minted_is_dropped_before_the_account_that_serves_it() {
    let (env, wire) = WireLog::behind(2).await;
    let (status, text, items) = stream(&env, &turn(json!([user("hi")]))).await;
    assert_eq!(status, 200, "{text}");
    let first = record(&env, 1).await;
    let a = first.account_id.clone().expect("served");
    let reasoning = items
        .iter()
        .find(|i| i["type"] == "reasoning")
        .cloned()
        .unwrap_or_else(|| panic!("the answer carries reasoning: {items:?}"));
    let blob = reasoning["encrypted_content"]
        .as_str()
        .expect("encrypted")
        .to_owned();
    assert_eq!(
        env.state.minted().minter(&blob).as_deref(),
        Some(a.as_str())
    );

    // A runs out; the conversation's next turn replays A's reasoning and is served by B.
    let sim_a = env.sim_id_of(&a).await;
    env.sim.set_usage(&sim_a, 100.0, 10.0);
    let mut history = vec![user("hi")];
    history.extend(items);
    history.push(user("and now?"));
    let (status, text, _) = stream(&env, &turn(Value::Array(history))).await;
    assert_eq!(
        status, 200,
        "served despite A's reasoning in the history: {text}"
    );
    let second = record(&env, 2).await;
    assert_ne!(second.account_id.as_deref(), Some(a.as_str()), "{second:?}");
    assert_eq!((second.failovers, second.retries), (1, 0), "{second:?}");
    let sent = wire.requests_text();
    assert_eq!(
        sent.matches(&blob).count(),
        1,
        "A's reasoning went to A (which answered 429) and not to B"
    );
    assert!(
        sent.matches("\"and now?\"").count() == 2,
        "both accounts got the rest of the turn"
    );
    for id in &env.sim_ids {
        let want = if *id == sim_a { 2 } else { 1 };
        assert_eq!(env.sim.counters(id).requests, want, "{id}");
    }
    env.shutdown().await;
}

#[tokio::test]
async fn reasoning_of_unknown_origin_is_sent_and_on_refusal_retried_once_without_it() {
    let env = start_env(1).await;
    // Minted before a restart, or by an account the pool never had: the pool cannot know.
    let stranger = json!({"type": "reasoning", "id": "rs_old", "summary": [],
        "encrypted_content": "gAAAABnot-minted-by-this-pool"});
    let (status, text, _) = stream(&env, &turn(json!([user("hi"), stranger, user("go on")]))).await;
    assert_eq!(status, 200, "{text}");
    let rec = record(&env, 1).await;
    assert_eq!((rec.retries, rec.failovers), (1, 0), "{rec:?}");
    assert_eq!(env.upstream_requests(), 2, "refused once, then served");
    let view = env.view_of(&env.sim_ids[0]).await;
    assert_eq!(view.derived_status, "active", "nobody penalised: {view:?}");
    assert_eq!(view.last_error, None, "{view:?}");
    env.shutdown().await;
}

#[tokio::test]
async fn a_second_invalid_encrypted_content_reaches_the_client_and_penalises_nobody() {
    let env = start_env(2).await;
    env.sim
        .inject(FaultSpec::always(FaultKind::InvalidEncryptedContent).times(3));
    let own = json!({"type": "reasoning", "summary": [], "encrypted_content": "gAAAABx"});
    let resp = env.responses(&turn(json!([user("hi"), own]))).await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["error"]["code"], "invalid_encrypted_content", "{body}");
    assert_eq!(
        env.upstream_requests(),
        2,
        "retried exactly once, on the same account, never failed over"
    );
    let rec = record(&env, 1).await;
    assert_eq!(
        (rec.status, rec.retries, rec.failovers),
        (400, 1, 0),
        "{rec:?}"
    );

    // Without encrypted reasoning there is nothing to retry without: the refusal is final.
    let resp = env.responses(&turn(json!([user("hi")]))).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(env.upstream_requests(), 3, "not retried");
    for id in &env.sim_ids {
        let view = env.view_of(id).await;
        assert_eq!(view.derived_status, "active", "nobody penalised: {view:?}");
    }
    env.shutdown().await;
}

/// A `stream: false` client's answer is collected from the same events: its reasoning is
/// learned too, so the client's next turn is as safe after a failover.
#[tokio::test]
async fn a_collected_answer_teaches_the_pool_whose_reasoning_it_carries() {
    let env = start_env(1).await;
    let mut body = turn(json!([user("hi")]));
    body["stream"] = json!(false);
    let resp = env.responses(&body).await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.expect("json");
    let blob = v["output"]
        .as_array()
        .and_then(|o| o.iter().find(|i| i["type"] == "reasoning"))
        .and_then(|i| i["encrypted_content"].as_str())
        .unwrap_or_else(|| panic!("the answer carries encrypted reasoning: {v}"))
        .to_owned();
    let served = record(&env, 1).await.account_id.expect("served");
    assert_eq!(
        env.state.minted().minter(&blob).as_deref(),
        Some(served.as_str())
    );
    env.shutdown().await;
}
