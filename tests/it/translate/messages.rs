//! Anthropic Messages ⇄ Responses: request translation, streamed events, collected answers,
//! and the count_tokens estimate.

use super::{readable, settings, upstream};
use codex_rotor::translate::{ModelMap, StreamEnd, messages};
use serde_json::{Value, json};

fn models() -> ModelMap {
    ModelMap::new(
        "gpt-5.5",
        [
            ("claude-opus-*", "gpt-5.5"),
            ("claude-haiku-*", "gpt-5.4-mini-low"),
        ],
    )
}

fn translate(body: &Value) -> codex_rotor::translate::Translated {
    messages::request(body.to_string().as_bytes(), &models()).expect("translates")
}

fn stream(events: &[Value], end: StreamEnd) -> Vec<Value> {
    let mut s = messages::MessagesStream::with_id("claude-opus-4-8", "msg_test");
    let mut frames = Vec::new();
    for ev in events {
        frames.extend(s.on_event(ev));
    }
    frames.extend(s.finish(end));
    let last = readable(&frames).pop().expect("frames");
    assert!(
        last["event"] == "message_stop" || last["event"] == "error",
        "terminal: {last}"
    );
    readable(&frames)
}

/// Claude Code 2.1's request (claude_code_print_hi.jsonl, body shape as captured; long texts cut).
fn claude_code_body() -> Value {
    json!({
        "model": "claude-opus-4-8",
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "<system-reminder>\nAs you answer the user's questions, you can use the following context...\n</system-reminder>"},
            {"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}
        ]}],
        "system": [
            {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.197.0df; cc_entrypoint=sdk-cli;"},
            {"type": "text", "text": "You are a Claude agent, built on Anthropic's Claude Agent SDK.", "cache_control": {"type": "ephemeral"}}
        ],
        "tools": [
            {"name": "Bash", "description": "Executes a given bash command", "input_schema": {"type": "object",
                "properties": {"command": {"type": "string"}, "timeout": {"type": "number"}}, "required": ["command"],
                "additionalProperties": false, "$schema": "http://json-schema.org/draft-07/schema#"}},
            {"name": "Read", "description": "Reads a file", "input_schema": {"type": "object",
                "properties": {"file_path": {"type": "string"}}, "required": ["file_path"]}},
            {"type": "web_search_20250305", "name": "web_search", "max_uses": 8}
        ],
        "metadata": {"user_id": "{\"device_id\":\"e4153d583499cc9a\",\"account_uuid\":\"\",\"session_id\":\"eb4f3718-14f4-41ab-b9c7-16b154c5f7ee\"}"},
        "max_tokens": 64000,
        "thinking": {"type": "adaptive"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "output_config": {"effort": "high"},
        "stream": true
    })
}

#[test]
fn request_from_claude_code() {
    let t = translate(&claude_code_body());
    assert_eq!(t.model, "gpt-5.5");
    assert_eq!(t.client_model, "claude-opus-4-8");
    assert!(t.client_stream);
    assert_eq!(
        t.affinity.as_deref(),
        Some("eb4f3718-14f4-41ab-b9c7-16b154c5f7ee")
    );
    assert_eq!(
        t.body["reasoning"]["effort"], "high",
        "output_config.effort wins over adaptive"
    );
    assert!(
        t.body.get("max_output_tokens").is_none(),
        "max_tokens is not sent upstream"
    );
    settings().bind(|| insta::assert_yaml_snapshot!("request_claude_code", t.body));
}

#[test]
fn request_plain_from_python_sdk_fixture() {
    // python_openai_anthropic_sdks.jsonl: `client.messages.create(max_tokens=64, ...)`.
    let t = translate(
        &json!({"max_tokens": 64, "messages": [{"role": "user", "content": "hi"}], "model": "claude-mock"}),
    );
    assert_eq!(
        t.model, "gpt-5.5",
        "unmatched claude-* names use the default model"
    );
    assert!(!t.client_stream);
    assert!(t.body.get("reasoning").is_none());
    settings().bind(|| insta::assert_yaml_snapshot!("request_plain", t.body));
}

#[test]
fn request_tool_round_trip_with_images_and_errors() {
    let body = json!({
        "model": "claude-haiku-4-5", "max_tokens": 1024, "system": "Use tools.",
        "thinking": {"type": "enabled", "budget_tokens": 4096},
        "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
        "tools": [{"name": "screenshot", "description": "Takes a screenshot", "input_schema": {"type": "object", "properties": {}}}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Look at this"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "I should look.", "signature": "sig"},
                {"type": "text", "text": "Taking two screenshots."},
                {"type": "tool_use", "id": "toolu_1", "name": "screenshot", "input": {}},
                {"type": "tool_use", "id": "toolu_2", "name": "screenshot", "input": {"region": "top"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": [
                    {"type": "text", "text": "captured"},
                    {"type": "image", "source": {"type": "url", "url": "https://example.test/a.png"}}]},
                {"type": "tool_result", "tool_use_id": "toolu_2", "is_error": true, "content": "display not found"},
                {"type": "text", "text": "What do you see?"}]}
        ]
    });
    let t = translate(&body);
    assert_eq!(t.model, "gpt-5.4-mini");
    assert_eq!(
        t.body["reasoning"]["effort"], "medium",
        "budget 4096 → medium beats the -low suffix"
    );
    assert_eq!(t.body["parallel_tool_calls"], false);
    assert_eq!(t.body["tool_choice"], "required");
    settings().bind(|| insta::assert_yaml_snapshot!("request_tool_round_trip", t.body));
}

#[test]
fn thinking_modes_map_to_effort() {
    let effort = |thinking: Value| {
        let t = translate(
            &json!({"model": "claude-mock", "max_tokens": 1, "thinking": thinking,
            "messages": [{"role": "user", "content": "x"}]}),
        );
        t.body["reasoning"]["effort"].as_str().map(str::to_owned)
    };
    assert_eq!(
        effort(json!({"type": "enabled", "budget_tokens": 1024})).as_deref(),
        Some("low")
    );
    assert_eq!(
        effort(json!({"type": "enabled", "budget_tokens": 7999})).as_deref(),
        Some("medium")
    );
    assert_eq!(
        effort(json!({"type": "enabled", "budget_tokens": 32000})).as_deref(),
        Some("high")
    );
    assert_eq!(
        effort(json!({"type": "adaptive"})).as_deref(),
        Some("medium")
    );
    assert_eq!(effort(json!({"type": "disabled"})).as_deref(), Some("none"));
}

#[test]
fn session_header_overrides_affinity() {
    let t = translate(&claude_code_body()).with_affinity("hdr-session");
    assert_eq!(t.affinity.as_deref(), Some("hdr-session"));
    assert_eq!(t.body["prompt_cache_key"], "hdr-session");
}

#[test]
fn stream_text() {
    let frames = stream(&upstream::text(), StreamEnd::Completed);
    settings().bind(|| insta::assert_yaml_snapshot!("stream_text", frames));
}

#[test]
fn stream_reasoning_then_text() {
    let frames = stream(&upstream::reasoning_text(), StreamEnd::Completed);
    settings().bind(|| insta::assert_yaml_snapshot!("stream_reasoning_text", frames));
}

#[test]
fn stream_tool_call() {
    let frames = stream(&upstream::tool_call(), StreamEnd::Completed);
    let stop = frames
        .iter()
        .find_map(|f| f["data"]["delta"]["stop_reason"].as_str());
    assert_eq!(stop, Some("tool_use"));
    settings().bind(|| insta::assert_yaml_snapshot!("stream_tool_call", frames));
}

#[test]
fn stream_failure_and_premature_close_end_with_error_event() {
    let failed = stream(&upstream::failure(), StreamEnd::Completed);
    assert!(failed.iter().all(|f| f["event"] != "message_stop"));
    assert_eq!(
        failed.last().map(|f| &f["data"]["error"]["type"]),
        Some(&json!("overloaded_error"))
    );
    let premature = stream(&upstream::premature(), StreamEnd::PrematureClose);
    settings().bind(|| insta::assert_yaml_snapshot!("stream_failure", failed));
    settings().bind(|| insta::assert_yaml_snapshot!("stream_premature", premature));
}

#[test]
fn stream_incomplete_is_max_tokens_and_ping_starts_the_message() {
    let frames = stream(&upstream::incomplete(), StreamEnd::Completed);
    let stop = frames
        .iter()
        .find_map(|f| f["data"]["delta"]["stop_reason"].as_str());
    assert_eq!(stop, Some("max_tokens"));
    let mut s = messages::MessagesStream::with_id("claude-x", "msg_p");
    let first = readable(&s.ping());
    assert_eq!(
        first.iter().map(|f| f["event"].clone()).collect::<Vec<_>>(),
        vec![json!("message_start"), json!("ping")]
    );
    assert_eq!(readable(&s.ping()).len(), 1, "message_start only once");
    s.finish(StreamEnd::Completed);
    assert!(s.ping().is_empty(), "no pings after the end");
}

#[test]
fn collect_answers() {
    let mut out = Vec::new();
    for (name, evs) in [
        ("text", upstream::text()),
        ("reasoning_text", upstream::reasoning_text()),
        ("tool_call", upstream::tool_call()),
        ("items_only", upstream::items_only()),
    ] {
        let mut v = messages::collect(&evs, "claude-opus-4-8").expect("collects");
        assert!(v["id"].as_str().is_some_and(|id| id.starts_with("msg_")));
        v["id"] = json!("[id]");
        out.push(json!({"case": name, "message": v}));
    }
    settings().bind(|| insta::assert_yaml_snapshot!("collect", out));
    let e = messages::collect(&upstream::premature(), "m").expect_err("premature");
    assert_eq!(e.status, 504);
}

#[test]
fn count_tokens_estimates_from_the_translated_request() {
    let small = messages::count_tokens(
        br#"{"model":"claude-x","messages":[{"role":"user","content":"hi"}]}"#,
    )
    .expect("counts");
    // Default instructions (28 chars) + "hi" (2) = 30 chars → 8 tokens, + 4 for the one item.
    assert_eq!(small, json!({"input_tokens": 12}));
    let big = messages::count_tokens(claude_code_body().to_string().as_bytes()).expect("counts");
    assert!(big["input_tokens"].as_u64().unwrap_or(0) > 100, "{big}");
    let e = messages::count_tokens(br#"{"model":"claude-x"}"#).expect_err("no messages");
    assert_eq!(e.field.as_deref(), Some("messages"));
}

#[test]
fn bad_requests_name_the_field() {
    let cases: &[(&[u8], Option<&str>)] = &[
        (b"", None),
        (b"\"hi\"", None),
        (br#"{"model":"claude-x","max_tokens":1}"#, Some("messages")),
        (br#"{"model":"claude-x","messages":{}}"#, Some("messages")),
        // (No model at all is not an error: `models.default_model` applies.)
        (br#"{"model":{},"messages":[{"role":"user","content":"x"}]}"#, Some("model")),
        (br#"{"model":"c","messages":[{"role":"robot","content":"x"}]}"#, Some("messages[0].role")),
        (br#"{"model":"c","messages":[{"role":"user","content":[]}]}"#, Some("messages[0].content")),
        (br#"{"model":"c","messages":[{"role":"user","content":[{"text":"x"}]}]}"#, Some("messages[0].content[0].type")),
        (br#"{"model":"c","messages":[{"role":"user","content":[{"type":"tool_result"}]}]}"#,
            Some("messages[0].content[0].tool_use_id")),
        (br#"{"model":"c","max_tokens":"many","messages":[{"role":"user","content":"x"}]}"#, Some("max_tokens")),
        (br#"{"model":"c","system":5,"messages":[{"role":"user","content":"x"}]}"#, Some("system")),
        (br#"{"model":"c","thinking":{"type":"deep"},"messages":[{"role":"user","content":"x"}]}"#, Some("thinking.type")),
        (br#"{"model":"c","tool_choice":{"type":"maybe"},"messages":[{"role":"user","content":"x"}]}"#, Some("tool_choice.type")),
    ];
    for (body, field) in cases {
        let e = messages::request(body, &models()).expect_err(&String::from_utf8_lossy(body));
        assert_eq!(e.status, 400, "{e:?}");
        assert_eq!(
            e.field.as_deref(),
            *field,
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}
