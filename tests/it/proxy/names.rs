//! Tool names and call ids over 64 characters (issue 17 item 2) reach the strict simulator —
//! which refuses them as the real backend does — as short stand-ins, and come back to the
//! client as its own names in all three protocols, streamed and collected. The model (the
//! simulator) only ever sees the stand-in, so a prompt that makes it call the tool names the
//! stand-in, as a real model would.

use crate::support::{POOL_KEY, TestEnv, start_env};
use codex_rotor::internals::names::stand_in;
use serde_json::{Value, json};

/// A Claude Code-style MCP tool name (`mcp__<server>__<tool>`), 84 characters.
const MCP: &str = "mcp__claude_ai_Atlassian_Confluence_Workspace__search_confluence_pages_by_cql";

/// A call id over the limit, as some clients mint them.
fn long_call_id() -> String {
    format!("toolu_{}", "0123456789".repeat(7))
}

/// The prompt that makes the simulator call [`MCP`] through its stand-in.
fn call_prompt() -> String {
    format!("use the tool {} with release notes", stand_in(MCP, 0))
}

fn schema() -> Value {
    json!({"type": "object", "properties": {"cql": {"type": "string"}}, "required": ["cql"]})
}

/// The JSON events of an SSE body.
fn events(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect()
}

async fn post(env: &TestEnv, path: &str, body: &Value) -> (u16, String) {
    let resp = env
        .http
        .post(env.url(path))
        .bearer_auth(POOL_KEY)
        .json(body)
        .send()
        .await
        .expect("daemon answers");
    (resp.status().as_u16(), resp.text().await.expect("body"))
}

/// The client never sees a stand-in.
fn no_stand_in(text: &str) {
    assert!(
        !text.contains(&stand_in(MCP, 0)),
        "a stand-in leaked: {text}"
    );
}

#[tokio::test]
async fn responses_streamed_and_collected_get_their_long_tool_name_back() {
    let env = start_env(1).await;
    let body = |stream: bool| {
        json!({"model": "gpt-5.5", "stream": stream, "store": false, "instructions": "i",
            "tools": [{"type": "function", "name": MCP, "parameters": schema()}],
            "input": [{"type": "message", "role": "user",
                "content": [{"type": "input_text", "text": call_prompt()}]}]})
    };
    let (status, text) = post(&env, "/v1/responses", &body(true)).await;
    assert_eq!(status, 200, "{text}");
    no_stand_in(&text);
    let ev = events(&text);
    let call = ev
        .iter()
        .find(|e| e["type"] == "response.output_item.done")
        .expect("an item")["item"]
        .clone();
    assert_eq!(
        (call["type"].as_str(), call["name"].as_str()),
        (Some("function_call"), Some(MCP))
    );
    let completed = ev.last().expect("events");
    assert_eq!(completed["type"], "response.completed");
    assert_eq!(
        completed["response"]["output"][0]["name"], MCP,
        "back-filled, mapped back"
    );

    let (status, text) = post(&env, "/v1/responses", &body(false)).await;
    assert_eq!(status, 200, "{text}");
    no_stand_in(&text);
    let v: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(v["output"][0]["name"], MCP, "{v}");
    env.shutdown().await;
}

#[tokio::test]
async fn a_history_with_long_names_and_call_ids_is_accepted_and_answered() {
    let env = start_env(1).await;
    let id = long_call_id();
    let body = json!({"model": "gpt-5.5", "stream": true, "store": false, "instructions": "i",
        "tools": [{"type": "function", "name": MCP, "parameters": schema()}],
        "tool_choice": {"type": "function", "name": MCP},
        "input": [
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "find it"}]},
            {"type": "function_call", "name": MCP, "call_id": id, "arguments": "{\"cql\":\"x\"}"},
            {"type": "function_call_output", "call_id": id, "output": "found 3 pages"}]});
    let (status, text) = post(&env, "/v1/responses", &body).await;
    assert_eq!(status, 200, "the simulator refuses names over 64: {text}");
    assert!(
        text.contains("found 3 pages"),
        "the tool output was read: {text}"
    );
    env.shutdown().await;
}

#[tokio::test]
async fn chat_completions_streamed_and_collected_get_their_long_tool_name_back() {
    let env = start_env(1).await;
    let body = |stream: bool| {
        json!({"model": "gpt-5.5", "stream": stream,
            "tools": [{"type": "function", "function": {"name": MCP, "parameters": schema()}}],
            "messages": [{"role": "user", "content": call_prompt()}]})
    };
    let (status, text) = post(&env, "/v1/chat/completions", &body(false)).await;
    assert_eq!(status, 200, "{text}");
    no_stand_in(&text);
    let v: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(
        v["choices"][0]["message"]["tool_calls"][0]["function"]["name"], MCP,
        "{v}"
    );
    let (status, text) = post(&env, "/v1/chat/completions", &body(true)).await;
    assert_eq!(status, 200, "{text}");
    no_stand_in(&text);
    let named = events(&text)
        .into_iter()
        .any(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["name"] == MCP);
    assert!(named, "{text}");
    let id = long_call_id();
    let history = json!({"model": "gpt-5.5", "stream": false,
        "tools": [{"type": "function", "function": {"name": MCP, "parameters": schema()}}],
        "messages": [
            {"role": "user", "content": "find it"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": id, "type": "function",
                "function": {"name": MCP, "arguments": "{\"cql\":\"x\"}"}}]},
            {"role": "tool", "tool_call_id": id, "content": "found 3 pages"}]});
    let (status, text) = post(&env, "/v1/chat/completions", &history).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("found 3 pages"), "{text}");
    env.shutdown().await;
}

#[tokio::test]
async fn claude_codes_long_mcp_tool_name_round_trips_in_messages_streamed_and_not() {
    let env = start_env(1).await;
    let body = |stream: bool| {
        json!({"model": "claude-opus-4-8", "max_tokens": 1024, "stream": stream,
            "tools": [{"name": MCP, "description": "Search Confluence", "input_schema": schema()},
                {"name": "Bash", "input_schema": {"type": "object"}}],
            "messages": [{"role": "user", "content": [{"type": "text", "text": call_prompt()}]}]})
    };
    let (status, text) = post(&env, "/v1/messages", &body(false)).await;
    assert_eq!(status, 200, "{text}");
    no_stand_in(&text);
    let v: Value = serde_json::from_str(&text).expect("json");
    let used = v["content"]
        .as_array()
        .expect("content")
        .iter()
        .find(|b| b["type"] == "tool_use")
        .expect("a tool_use block")
        .clone();
    assert_eq!(used["name"], MCP, "{v}");
    assert_eq!(v["stop_reason"], "tool_use");

    let (status, text) = post(&env, "/v1/messages", &body(true)).await;
    assert_eq!(status, 200, "{text}");
    no_stand_in(&text);
    let started = events(&text)
        .into_iter()
        .find(|e| e["type"] == "content_block_start" && e["content_block"]["type"] == "tool_use")
        .expect("a tool_use block starts");
    assert_eq!(started["content_block"]["name"], MCP);

    // Claude Code's next turn: its tool_use (a long id) and the tool_result.
    let id = long_call_id();
    let next = json!({"model": "claude-opus-4-8", "max_tokens": 1024, "stream": false,
        "tools": [{"name": MCP, "input_schema": schema()}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "find it"}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": id, "name": MCP,
                "input": {"cql": "x"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": id,
                "content": "found 3 pages"}]}]});
    let (status, text) = post(&env, "/v1/messages", &next).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("found 3 pages"), "{text}");
    env.shutdown().await;
}
