//! The simulator against PROTOCOL.md, over real sockets with reqwest.

use codex_rotor::sim::{AccountSpec, SimHandle, SimOptions, Simulator};
use serde_json::{Value, json};

async fn start(opts: SimOptions) -> SimHandle {
    Simulator::start(opts, "127.0.0.1:0".parse().expect("addr")).await.expect("sim starts")
}

fn access_token(auth: &Value) -> String {
    auth["tokens"]["access_token"].as_str().expect("access token").to_string()
}

/// Parses an SSE body into its JSON events.
fn events(body: &str) -> Vec<Value> {
    body.split("\n\n")
        .filter_map(|frame| frame.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(|d| serde_json::from_str(d).expect("event is JSON"))
        .collect()
}

#[tokio::test]
async fn streamed_answer_has_the_events_codex_needs() {
    let sim = start(SimOptions::default()).await;
    let acct = sim.create_account(AccountSpec::default());
    let resp = reqwest::Client::new()
        .post(format!("{}/codex/responses", sim.backend_url()))
        .bearer_auth(access_token(&acct.auth_json))
        .json(&json!({"model": "gpt-5.5", "stream": true, "input": [{"type":"message","role":"user","content":[{"type":"input_text","text":"say hi"}]}]}))
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), 200);
    let body = resp.text().await.expect("body");
    let ev = events(&body);
    assert_eq!(ev[0]["type"], "response.created");
    let last = ev.last().expect("events");
    assert_eq!(last["type"], "response.completed");
    assert!(ev.iter().any(|e| e["type"] == "response.output_item.done" && e["item"]["type"] == "message"));
    sim.shutdown().await;
}
