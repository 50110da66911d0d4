//! Chat Completions ⇄ Responses: request translation, streamed chunks and collected answers.

use super::{readable, settings, upstream};
use codex_rotor::translate::{ModelMap, StreamEnd, chat};
use serde_json::{Value, json};

fn models() -> ModelMap {
    ModelMap::new("gpt-5.5", [("gpt-mock", "gpt-5.5")])
}

fn translate(body: &Value) -> codex_rotor::translate::Translated {
    chat::request(body.to_string().as_bytes(), &models()).expect("translates")
}

/// Feeds a whole upstream sequence, then ends the stream the way the proxy would.
fn stream(events: &[Value], end: StreamEnd, include_usage: bool) -> Vec<Value> {
    let mut s =
        chat::ChatStream::with_identity("gpt-mock", include_usage, "chatcmpl-test", 1_795_670_210);
    let mut frames = Vec::new();
    for ev in events {
        frames.extend(s.on_event(ev));
    }
    frames.extend(s.finish(end));
    assert_eq!(
        frames.last().map(|f| &f[..]),
        Some(&b"data: [DONE]\n\n"[..]),
        "ends with [DONE]"
    );
    readable(&frames)
}

#[test]
fn request_plain_from_python_sdk_fixture() {
    // python_openai_anthropic_sdks.jsonl line 1: `client.chat.completions.create(...)`.
    let t =
        translate(&json!({"model": "gpt-mock", "messages": [{"role": "user", "content": "hi"}]}));
    assert_eq!(t.model, "gpt-5.5");
    assert!(!t.client_stream);
    assert_eq!(t.body["stream"], true);
    assert_eq!(t.body["store"], false);
    settings().bind(|| insta::assert_yaml_snapshot!("request_plain", t.body));
}

#[test]
fn request_full_conversation() {
    let body = json!({
        "model": "gpt-5.4-high-fast",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
            {"role": "user", "content": [
                {"type": "text", "text": "What is in this image, and what's the weather there?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}}
            ]},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18°C, cloudy"},
            {"role": "assistant", "content": "Paris: 18°C."},
            {"role": "user", "content": "Thanks"}
        ],
        "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather by city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "parallel_tool_calls": false,
        "response_format": {"type": "json_schema", "json_schema": {"name": "answer", "strict": true,
            "schema": {"type": "object", "properties": {"text": {"type": "string"}}}}},
        "stream": true, "stream_options": {"include_usage": true},
        "max_completion_tokens": 500, "temperature": 0.2, "user": "conv-42"
    });
    let t = translate(&body);
    assert_eq!(t.model, "gpt-5.4");
    assert_eq!(t.client_model, "gpt-5.4-high-fast");
    assert!(t.client_stream && t.include_usage);
    assert_eq!(t.affinity.as_deref(), Some("conv-42"));
    assert_eq!(
        t.body["reasoning"],
        json!({"effort": "high", "summary": "auto"})
    );
    assert_eq!(t.body["service_tier"], "priority");
    assert_eq!(t.body["include"], json!(["reasoning.encrypted_content"]));
    assert!(t.body.get("max_output_tokens").is_none() && t.body.get("temperature").is_none());
    settings().bind(|| insta::assert_yaml_snapshot!("request_full", t.body));
}

#[test]
fn explicit_reasoning_effort_beats_suffix_and_json_object_maps() {
    let t = translate(&json!({"model": "gpt-5.5-low", "reasoning_effort": "xhigh",
        "response_format": {"type": "json_object"}, "messages": [{"role": "user", "content": "x"}]}));
    assert_eq!(t.body["reasoning"]["effort"], "xhigh");
    assert_eq!(t.body["text"], json!({"format": {"type": "json_object"}}));
    assert!(t.body.get("service_tier").is_none());
}

#[test]
fn derived_affinity_is_stable_across_turns_of_one_conversation() {
    let turn1 = json!({"model": "gpt-5.5", "messages": [{"role": "system", "content": "S"},
        {"role": "user", "content": "first question"}]});
    let turn2 = json!({"model": "gpt-5.5", "messages": [{"role": "system", "content": "S"},
        {"role": "user", "content": "first question"}, {"role": "assistant", "content": "a"},
        {"role": "user", "content": "second"}]});
    let other =
        json!({"model": "gpt-5.5", "messages": [{"role": "user", "content": "another chat"}]});
    let (a, b, c) = (translate(&turn1), translate(&turn2), translate(&other));
    assert_eq!(a.affinity, b.affinity);
    assert_ne!(a.affinity, c.affinity);
    assert_eq!(a.body["prompt_cache_key"].as_str(), a.affinity.as_deref());
}

#[test]
fn stream_text_with_usage() {
    let frames = stream(&upstream::text(), StreamEnd::Completed, true);
    settings().bind(|| insta::assert_yaml_snapshot!("stream_text", frames));
}

#[test]
fn stream_reasoning_then_text() {
    let frames = stream(&upstream::reasoning_text(), StreamEnd::Completed, false);
    let reasoning: String = frames
        .iter()
        .filter_map(|f| f["data"]["choices"][0]["delta"]["reasoning_content"].as_str())
        .collect();
    assert_eq!(reasoning, "**Greeting** the user\n\nKeep it short.");
    settings().bind(|| insta::assert_yaml_snapshot!("stream_reasoning_text", frames));
}

#[test]
fn stream_tool_call() {
    let frames = stream(&upstream::tool_call(), StreamEnd::Completed, true);
    let finish = frames
        .iter()
        .find_map(|f| f["data"]["choices"][0]["finish_reason"].as_str());
    assert_eq!(finish, Some("tool_calls"));
    settings().bind(|| insta::assert_yaml_snapshot!("stream_tool_call", frames));
}

#[test]
fn stream_failure_ends_with_error_then_done() {
    let frames = stream(&upstream::failure(), StreamEnd::Completed, true);
    let err = &frames[frames.len() - 2]["data"]["error"];
    assert_eq!(err["type"], "server_error");
    settings().bind(|| insta::assert_yaml_snapshot!("stream_failure", frames));
}

#[test]
fn stream_premature_close_is_never_silent() {
    let frames = stream(&upstream::premature(), StreamEnd::PrematureClose, true);
    let err = &frames[frames.len() - 2]["data"]["error"];
    assert_eq!(err["code"], "codex_api_error");
    assert!(
        frames
            .iter()
            .all(|f| f["data"]["choices"][0]["finish_reason"].is_null()),
        "no fake finish"
    );
    settings().bind(|| insta::assert_yaml_snapshot!("stream_premature", frames));
}

#[test]
fn stream_items_only_and_incomplete() {
    let frames = stream(&upstream::items_only(), StreamEnd::Completed, false);
    let text: String = frames
        .iter()
        .filter_map(|f| f["data"]["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "hello from mock");
    let frames = stream(&upstream::incomplete(), StreamEnd::Completed, false);
    let finish = frames
        .iter()
        .find_map(|f| f["data"]["choices"][0]["finish_reason"].as_str());
    assert_eq!(finish, Some("length"));
}

#[test]
fn finish_after_terminal_event_adds_nothing() {
    let mut s = chat::ChatStream::new("m", false);
    for ev in upstream::text() {
        s.on_event(&ev);
    }
    assert!(s.finish(StreamEnd::PrematureClose).is_empty());
    assert!(
        s.on_event(&upstream::text()[2]).is_empty(),
        "events after the end are ignored"
    );
}

#[test]
fn collect_answers() {
    let mut out = Vec::new();
    for (name, evs) in [
        ("text", upstream::text()),
        ("reasoning_text", upstream::reasoning_text()),
        ("tool_call", upstream::tool_call()),
    ] {
        let mut v = chat::collect(&evs, "gpt-mock").expect("collects");
        assert!(
            v["id"]
                .as_str()
                .is_some_and(|id| id.starts_with("chatcmpl-"))
        );
        v["id"] = json!("[id]");
        out.push(json!({"case": name, "completion": v}));
    }
    settings().bind(|| insta::assert_yaml_snapshot!("collect", out));
}

#[test]
fn collect_failures_become_errors() {
    let e = chat::collect(&upstream::failure(), "m").expect_err("failed upstream");
    assert_eq!((e.status, e.kind), (503, "upstream_overloaded"));
    let e = chat::collect(&upstream::premature(), "m").expect_err("premature");
    assert_eq!(e.status, 504);
}

#[test]
fn bad_requests_name_the_field() {
    let cases: &[(&[u8], Option<&str>)] = &[
        (b"{not json", None),
        (b"[1,2]", None),
        // (No model at all is not an error: `models.default_model` applies.)
        (
            br#"{"model":["m"],"messages":[{"role":"user","content":"x"}]}"#,
            Some("model"),
        ),
        (br#"{"model":"m"}"#, Some("messages")),
        (br#"{"model":"m","messages":"hi"}"#, Some("messages")),
        (br#"{"model":"m","messages":[]}"#, Some("messages")),
        (
            br#"{"model":7,"messages":[{"role":"user","content":"x"}]}"#,
            Some("model"),
        ),
        (
            br#"{"model":"m","messages":[{"role":"wizard","content":"x"}]}"#,
            Some("messages[0].role"),
        ),
        (
            br#"{"model":"m","messages":[{"role":"user","content":[]}]}"#,
            Some("messages[0].content"),
        ),
        (
            br#"{"model":"m","messages":[{"role":"user"}]}"#,
            Some("messages[0].content"),
        ),
        (
            br#"{"model":"m","messages":[{"role":"user","content":5}]}"#,
            Some("messages[0].content"),
        ),
        (
            br#"{"model":"m","messages":[{"role":"tool","content":"x"}]}"#,
            Some("messages[0].tool_call_id"),
        ),
        (
            br#"{"model":"m","stream":"yes","messages":[{"role":"user","content":"x"}]}"#,
            Some("stream"),
        ),
        (
            br#"{"model":"m","messages":[{"role":"user","content":[{"type":"input_audio"}]}]}"#,
            Some("messages[0].content[0].type"),
        ),
    ];
    for (body, field) in cases {
        let e = chat::request(body, &models()).expect_err(&String::from_utf8_lossy(body));
        assert_eq!(e.status, 400, "{e:?}");
        assert_eq!(
            e.field.as_deref(),
            *field,
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}
