//! Fuzzing protocol translation (`codex_rotor::translate`): both request translators (Chat
//! Completions and Messages → Responses) on arbitrary bytes, mutated valid bodies and generated
//! request-shaped JSON; both stream translators on generated Responses event sequences. A bad
//! request must become a 4xx `TranslateError`, never a panic; an accepted one must be a
//! streaming Responses request; every translated stream must consist of well-formed SSE frames
//! and end with exactly one terminal frame whatever upstream sent.

use super::{cases, json};
use codex_rotor::sse::SseParser;
use codex_rotor::translate::{ModelMap, StreamEnd, TranslateError, Translated, chat, messages};
use proptest::prelude::*;
use serde_json::{Value, json};

fn models() -> ModelMap {
    ModelMap::new("gpt-5.5", [("claude-*", "gpt-5.5"), ("gpt-4*", "gpt-5.4")])
}

/// The shared verdict on any translation result.
fn check(r: Result<Translated, TranslateError>) -> Result<(), TestCaseError> {
    match r {
        Ok(t) => {
            prop_assert_eq!(
                t.body.get("stream"),
                Some(&Value::Bool(true)),
                "upstream always streams"
            );
            prop_assert!(!t.model.is_empty(), "a model was chosen");
        }
        Err(e) => prop_assert!(
            (400..500).contains(&e.status),
            "client error, got {}",
            e.status
        ),
    }
    Ok(())
}

fn role() -> impl Strategy<Value = Value> {
    prop::sample::select(&["user", "assistant", "system", "tool", "developer", "x"][..])
        .prop_map(Value::from)
}

/// A chat- or messages-shaped message: role plus string or part-list content.
fn message() -> impl Strategy<Value = Value> {
    let part = (
        prop::sample::select(
            &[
                "text",
                "image_url",
                "image",
                "tool_use",
                "tool_result",
                "input_text",
                "thinking",
                "document",
            ][..],
        ),
        json::object(),
    )
        .prop_map(|(ty, mut rest)| {
            if let Some(o) = rest.as_object_mut() {
                o.insert("type".into(), ty.into());
                o.entry("text").or_insert("hi".into());
            }
            rest
        });
    (
        role(),
        prop_oneof![
            ".{0,20}".prop_map(Value::from),
            prop::collection::vec(part, 0..4).prop_map(Value::Array),
            json::value()
        ],
        json::object(),
    )
        .prop_map(|(role, content, mut extra)| {
            if let Some(o) = extra.as_object_mut() {
                o.insert("role".into(), role);
                o.insert("content".into(), content);
            }
            extra
        })
}

/// A request body in either client protocol, with random extra fields.
fn request() -> impl Strategy<Value = Value> {
    (
        prop_oneof![
            Just(json!("gpt-5.5")),
            Just(json!("claude-sonnet-4-5")),
            Just(json!("gpt-4o")),
            json::value()
        ],
        prop::collection::vec(message(), 0..5),
        any::<bool>(),
        json::object(),
    )
        .prop_map(|(model, messages, stream, mut extra)| {
            if let Some(o) = extra.as_object_mut() {
                o.insert("model".into(), model);
                o.insert("messages".into(), Value::Array(messages));
                o.insert("stream".into(), stream.into());
                o.entry("max_tokens").or_insert(json!(256));
            }
            extra
        })
}

/// Upstream Responses events: mostly the real vocabulary, with random payloads.
fn upstream_event() -> impl Strategy<Value = Value> {
    let ty = prop::sample::select(
        &[
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.output_text.delta",
            "response.function_call_arguments.delta",
            "response.reasoning_summary_text.delta",
            "response.output_item.done",
            "response.completed",
            "response.failed",
            "response.incomplete",
            "error",
            "x",
        ][..],
    );
    let item = prop_oneof![
        Just(json!({"type": "message", "id": "m1", "role": "assistant"})),
        Just(
            json!({"type": "function_call", "id": "f1", "call_id": "c1", "name": "ls", "arguments": ""})
        ),
        Just(json!({"type": "reasoning", "id": "r1"})),
        json::object(),
    ];
    (ty, item, ".{0,10}", 0u64..4, json::object(), json::object()).prop_map(
        |(ty, item, delta, idx, response, rest)| {
            let mut ev = rest;
            if let Some(o) = ev.as_object_mut() {
                o.insert("type".into(), ty.into());
                o.insert("item".into(), item.clone());
                o.insert(
                    "item_id".into(),
                    item.get("id").cloned().unwrap_or(Value::Null),
                );
                o.insert("output_index".into(), idx.into());
                o.insert("delta".into(), delta.into());
                o.insert("response".into(), response);
            }
            ev
        },
    )
}

fn stream_end() -> impl Strategy<Value = StreamEnd> {
    prop_oneof![
        Just(StreamEnd::Completed),
        Just(StreamEnd::PrematureClose),
        ".{0,10}".prop_map(|message| StreamEnd::Failed { message }),
    ]
}

/// Parses the frames back with the SSE parser: every frame complete, every payload JSON
/// (or `[DONE]`). Returns `(event name, payload)` pairs.
fn frames(bytes: &[bytes::Bytes]) -> Result<Vec<(Option<String>, String)>, TestCaseError> {
    let mut p = SseParser::new();
    let mut out = Vec::new();
    for b in bytes {
        prop_assert!(b.ends_with(b"\n\n"), "frame is complete: {:?}", b);
        for ev in p.feed(b) {
            let data =
                String::from_utf8(ev.data).map_err(|e| TestCaseError::fail(e.to_string()))?;
            if data != "[DONE]" {
                prop_assert!(
                    serde_json::from_str::<Value>(&data).is_ok(),
                    "payload is JSON: {}",
                    data
                );
            }
            out.push((ev.event, data));
        }
    }
    prop_assert!(p.finish().is_none(), "nothing left half-written");
    Ok(out)
}

proptest! {
    #![proptest_config(cases(1500))]

    #[test]
    fn request_translators_take_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        check(chat::request(&bytes, &models()))?;
        check(messages::request(&bytes, &models()))?;
        let _ = messages::count_tokens(&bytes);
    }

    #[test]
    fn request_translators_take_any_json(body in json::value()) {
        let bytes = serde_json::to_vec(&body).expect("serialises");
        check(chat::request(&bytes, &models()))?;
        check(messages::request(&bytes, &models()))?;
        let _ = messages::count_tokens(&bytes);
    }

    #[test]
    fn request_translators_take_request_shaped_json(body in request()) {
        let bytes = serde_json::to_vec(&body).expect("serialises");
        check(chat::request(&bytes, &models()))?;
        check(messages::request(&bytes, &models()))?;
        let _ = messages::count_tokens(&bytes);
    }

    #[test]
    fn request_translators_take_mutated_valid_bodies(bytes in json::mutate(br#"{"model":"gpt-5.5","stream":true,"max_tokens":64,"messages":[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"hi"}]}]}"#.to_vec())) {
        check(chat::request(&bytes, &models()))?;
        check(messages::request(&bytes, &models()))?;
    }

    #[test]
    fn chat_stream_always_ends_with_one_done(events in prop::collection::vec(upstream_event(), 0..12), end in stream_end(), usage in any::<bool>()) {
        let mut s = chat::ChatStream::new("gpt-5.5", usage);
        let mut out = Vec::new();
        for ev in &events {
            out.extend(s.on_event(ev));
        }
        out.extend(s.finish(end));
        let fr = frames(&out)?;
        let dones = fr.iter().filter(|(_, d)| d == "[DONE]").count();
        prop_assert_eq!(dones, 1, "exactly one [DONE]");
        prop_assert_eq!(fr.last().map(|(_, d)| d.as_str()), Some("[DONE]"), "[DONE] is last");
        let _ = chat::collect(&events, "gpt-5.5");
    }

    #[test]
    fn messages_stream_always_ends_with_one_terminal(events in prop::collection::vec(upstream_event(), 0..12), end in stream_end(), pings in prop::collection::vec(any::<bool>(), 12)) {
        let mut s = messages::MessagesStream::new("claude-sonnet-4-5");
        let mut out = Vec::new();
        for (ev, ping) in events.iter().zip(&pings) {
            if *ping {
                out.extend(s.ping());
            }
            out.extend(s.on_event(ev));
        }
        out.extend(s.finish(end));
        let fr = frames(&out)?;
        let terminal = |n: &Option<String>| matches!(n.as_deref(), Some("message_stop" | "error"));
        prop_assert_eq!(fr.iter().filter(|(n, _)| terminal(n)).count(), 1, "exactly one terminal: {:?}", fr);
        prop_assert!(fr.last().is_some_and(|(n, _)| terminal(n)), "terminal is last");
        let _ = messages::collect(&events, "claude-sonnet-4-5");
    }
}
