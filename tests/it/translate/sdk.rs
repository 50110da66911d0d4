//! The real Python SDKs against the daemon in front of the simulator: `openai` chat (plain,
//! streamed with usage and reasoning, a tool round trip plain and streamed, a bad request) and
//! `anthropic` messages (plain, `messages.stream()` + `get_final_message()` with thinking, a
//! `tool_use` → `tool_result` round trip plain and streamed, `count_tokens`, bad request, bad
//! key), also with every upstream answer late, so heartbeats precede the first byte. The scripts
//! live in `tests/python/`; the interpreter is `$ROTOR_PYTHON` (default
//! `python3`) with `pip install openai anthropic`.

use crate::support::{POOL_KEY, start_env, start_env_with};
use codex_rotor::sim::{FaultKind, FaultSpec, SimOptions};
use serde_json::Value;
use std::time::Duration;

/// Runs one script against the daemon and returns the JSON it printed.
async fn run_script(script: &str, base_url: &str, key: &str, model: &str) -> Value {
    let python = std::env::var("ROTOR_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/").to_owned() + script;
    let output = tokio::process::Command::new(&python)
        .arg(&path)
        .args([base_url, key, model])
        .output()
        .await
        .unwrap_or_else(|e| panic!("running {python} {path}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{script} failed ({}):\nstdout: {stdout}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!("{script}: {stdout}");
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{script} printed no JSON ({e}): {stdout}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_sdk_chat_completions() {
    let d = start_env(2).await;
    let out = run_script("openai_chat.py", &d.url("/v1"), POOL_KEY, "gpt-5.5").await;
    check_openai_chat(&out);
    d.shutdown().await;
}

/// What `openai_chat.py` must have seen.
fn check_openai_chat(out: &Value) {
    let plain = &out["plain"];
    assert_eq!(plain["object"], "chat.completion");
    assert_eq!(plain["model"], "gpt-5.5");
    assert!(
        plain["content"].as_str().is_some_and(|s| !s.is_empty()),
        "{plain}"
    );
    assert_eq!(plain["finish_reason"], "stop");
    assert!(
        plain["total_tokens"].as_u64().is_some_and(|n| n > 0),
        "{plain}"
    );

    let s = &out["streamed"];
    assert_eq!(
        s["roles"],
        serde_json::json!(["assistant"]),
        "role comes once, first"
    );
    assert!(s["text"].as_str().is_some_and(|t| !t.is_empty()), "{s}");
    assert!(
        s["reasoning"].as_str().is_some_and(|t| !t.is_empty()),
        "reasoning_content streamed: {s}"
    );
    assert_eq!(s["finish"], serde_json::json!(["stop"]));
    assert!(
        s["usage_total"].as_u64().is_some_and(|n| n > 0),
        "usage chunk: {s}"
    );

    let t = &out["tool"];
    assert_eq!(t["finish_reason"], "tool_calls");
    assert_eq!(t["name"], "get_weather");
    assert_eq!(t["arguments"], "{}");
    assert!(
        t["answer"]
            .as_str()
            .is_some_and(|a| a.contains("18C and sunny")),
        "the answer quotes the tool output: {t}"
    );
    assert_eq!(t["answer_finish"], "stop");

    let ts = &out["tool_streamed"];
    assert_eq!(ts["finish"], "tool_calls");
    assert_eq!(ts["calls"][0]["name"], "get_weather");
    assert_eq!(ts["calls"][0]["arguments"], "{}");
    assert!(
        ts["calls"][0]["id"]
            .as_str()
            .is_some_and(|id| !id.is_empty())
    );

    assert_eq!(out["bad_role"]["status"], 400);
    assert_eq!(out["bad_role"]["param"], "messages[0].role");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_sdk_messages() {
    let d = start_env(2).await;
    let out = run_script(
        "anthropic_messages.py",
        &d.url(""),
        POOL_KEY,
        "claude-opus-4-8",
    )
    .await;
    check_anthropic(&out);
    d.shutdown().await;
}

/// The same scripts while every upstream answer is late (issue 15, item 8): each streamed
/// request gets heartbeats before the first byte — `: keep-alive` comments in Chat Completions,
/// `message_start` then `ping` events in Messages — and the SDKs must take them in their stride.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdks_take_heartbeats_before_the_first_byte() {
    let d = start_env_with(SimOptions::default(), 2, |cfg, _| {
        cfg.server.sse_heartbeat = Duration::from_millis(100);
    })
    .await;
    d.sim
        .inject(FaultSpec::always(FaultKind::Silence { millis: 350 }));
    let out = run_script("openai_chat.py", &d.url("/v1"), POOL_KEY, "gpt-5.5").await;
    check_openai_chat(&out);
    let out = run_script(
        "anthropic_messages.py",
        &d.url(""),
        POOL_KEY,
        "claude-opus-4-8",
    )
    .await;
    check_anthropic(&out);
    d.shutdown().await;
}

/// What `anthropic_messages.py` must have seen.
fn check_anthropic(out: &Value) {
    let plain = &out["plain"];
    assert_eq!(plain["type"], "message");
    assert_eq!(
        plain["model"], "claude-opus-4-8",
        "the client's model name is echoed"
    );
    assert_eq!(plain["blocks"], serde_json::json!(["text"]));
    assert!(
        plain["text"].as_str().is_some_and(|s| !s.is_empty()),
        "{plain}"
    );
    assert_eq!(plain["stop_reason"], "end_turn");

    let s = &out["streamed"];
    assert!(s["text"].as_str().is_some_and(|t| !t.is_empty()), "{s}");
    assert_eq!(
        s["text"], s["final_text"],
        "streamed text equals the final message's text"
    );
    assert_eq!(s["final_blocks"], serde_json::json!(["thinking", "text"]));
    assert!(s["thinking"].as_str().is_some_and(|t| !t.is_empty()), "{s}");
    assert_eq!(s["stop_reason"], "end_turn");
    assert!(s["output_tokens"].as_u64().is_some_and(|n| n > 0), "{s}");

    let t = &out["tool"];
    assert_eq!(t["stop_reason"], "tool_use");
    assert_eq!(t["name"], "get_weather");
    assert_eq!(t["input"], serde_json::json!({}));
    assert!(
        t["answer"]
            .as_str()
            .is_some_and(|a| a.contains("18C and sunny")),
        "{t}"
    );
    assert_eq!(t["answer_stop"], "end_turn");

    let ts = &out["tool_streamed"];
    assert_eq!(ts["stop_reason"], "tool_use");
    assert_eq!(ts["name"], "get_weather");
    assert_eq!(ts["input"], serde_json::json!({}));

    assert!(out["count_tokens"].as_u64().is_some_and(|n| n > 0), "{out}");
    assert_eq!(out["bad_role"]["status"], 400);
    assert_eq!(out["bad_role"]["type"], "invalid_request_error");
    assert!(
        out["bad_role"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("messages[0].role"))
    );
    assert_eq!(
        out["bad_key"],
        serde_json::json!({"status": 401, "type": "authentication_error"})
    );
}
