//! Property tests: no input panics a request translator (arbitrary bytes, arbitrary JSON, and
//! JSON shaped like requests), and the streaming translators never panic on arbitrary upstream
//! event sequences and always end with exactly one terminal frame after `finish`.
//!
//! Run: `cargo test --test it translate::props` (set `PROPTEST_CASES=5000` for a longer run).

use codex_rotor::translate::{ModelMap, StreamEnd, chat, messages};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// Field names the translators read, so generated objects reach deep code paths.
const KEYS: &[&str] = &[
    "model",
    "messages",
    "role",
    "content",
    "type",
    "text",
    "tools",
    "tool_choice",
    "tool_calls",
    "tool_call_id",
    "function",
    "name",
    "arguments",
    "parameters",
    "image_url",
    "url",
    "source",
    "media_type",
    "data",
    "input",
    "input_schema",
    "tool_use_id",
    "is_error",
    "system",
    "thinking",
    "budget_tokens",
    "stream",
    "stream_options",
    "include_usage",
    "response_format",
    "json_schema",
    "schema",
    "reasoning_effort",
    "metadata",
    "user_id",
    "id",
    "file",
    "custom",
    "output_config",
    "effort",
    "max_tokens",
    "functions",
    "function_call",
    "parallel_tool_calls",
    "service_tier",
    "item",
    "delta",
    "output_index",
    "item_id",
    "response",
    "output",
    "usage",
    "error",
    "code",
    "message",
    "summary",
    "summary_index",
    "call_id",
    "encrypted_content",
    "status",
    "incomplete_details",
    "reason",
    "input_tokens",
    "output_tokens",
    "created_at",
];

/// Strings the translators compare against.
const WORDS: &[&str] = &[
    "user",
    "assistant",
    "system",
    "developer",
    "tool",
    "function",
    "text",
    "image_url",
    "image",
    "tool_use",
    "tool_result",
    "thinking",
    "enabled",
    "adaptive",
    "disabled",
    "base64",
    "url",
    "auto",
    "any",
    "none",
    "required",
    "json_object",
    "json_schema",
    "message",
    "reasoning",
    "function_call",
    "custom_tool_call",
    "output_text",
    "summary_text",
    "claude-opus-4-8",
    "gpt-5.5-high-fast",
    "-fast",
    "{\"a\":1}",
    "{\"ci",
    "",
    "max_output_tokens",
    "completed",
    "incomplete",
    "rate_limit_exceeded",
    "{\"session_id\":\"s\"}",
    "user_x_account__session_y",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-3i64..70_000).prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        prop::sample::select(WORDS).prop_map(|w| json!(w)),
        ".{0,12}".prop_map(Value::String),
    ]
}

fn arb_json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|kv| {
                Value::Object(
                    kv.into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect::<Map<_, _>>(),
                )
            }),
        ]
    })
}

/// An object shaped like a request: model and messages present, other fields arbitrary.
fn arb_request() -> impl Strategy<Value = Value> {
    (
        arb_json(),
        prop::collection::vec(arb_json(), 1..5),
        prop::sample::select(WORDS),
        arb_json(),
    )
        .prop_map(|(extra, msgs, role, tools)| {
            let msgs: Vec<Value> = msgs
                .into_iter()
                .map(|c| {
                    json!({"role": role, "content": c,
                "tool_calls": c, "tool_call_id": "x"})
                })
                .collect();
            let mut body = json!({"model": "claude-opus-4-8", "messages": msgs, "tools": tools});
            if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
                for (k, v) in e {
                    if k != "messages" {
                        b.insert(k, v);
                    }
                }
            }
            body
        })
}

const EVENT_TYPES: &[&str] = &[
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.output_text.delta",
    "response.reasoning_summary_text.delta",
    "response.function_call_arguments.delta",
    "response.output_item.done",
    "response.completed",
    "response.incomplete",
    "response.failed",
    "error",
    "response.content_part.added",
    "bogus",
];

fn arb_event() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(EVENT_TYPES),
        0u64..3,
        prop::sample::select(&["a", "b", "c"][..]),
        ".{0,6}",
        arb_json(),
        arb_json(),
        any::<u8>(),
    )
        .prop_map(|(ty, idx, id, delta, item, response, shape)| {
            let mut ev = json!({"type": ty, "delta": delta, "item": item, "response": response});
            if shape & 1 == 0 {
                ev["output_index"] = json!(idx);
            }
            if shape & 2 == 0 {
                ev["item_id"] = json!(id);
            }
            if shape & 4 == 0 {
                ev["summary_index"] = json!(shape % 3);
            }
            if shape & 8 == 0 {
                let kind = ["message", "reasoning", "function_call"][(shape as usize / 16) % 3];
                ev["item"] = json!({"id": id, "type": kind, "name": "f", "call_id": "c",
                    "arguments": "{}", "content": [{"type": "output_text", "text": delta}],
                    "summary": [{"text": delta}]});
            }
            ev
        })
}

fn arb_end() -> impl Strategy<Value = StreamEnd> {
    prop_oneof![
        Just(StreamEnd::Completed),
        Just(StreamEnd::PrematureClose),
        ".{0,8}".prop_map(|message| StreamEnd::Failed { message }),
    ]
}

fn models() -> ModelMap {
    ModelMap::new("gpt-5.5", [("claude-*", "gpt-5.4-high")])
}

/// Every frame is a well-formed SSE frame whose data is JSON (or `[DONE]`).
fn well_formed(frames: &[bytes::Bytes]) -> Result<(), TestCaseError> {
    for f in frames {
        let text = std::str::from_utf8(f).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(text.ends_with("\n\n"), "frame not terminated: {text:?}");
        let data = text.lines().find_map(|l| l.strip_prefix("data: "));
        let data = data.ok_or_else(|| TestCaseError::fail(format!("no data line: {text:?}")))?;
        prop_assert!(
            data == "[DONE]" || serde_json::from_str::<Value>(data).is_ok(),
            "{data}"
        );
    }
    Ok(())
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = chat::request(&bytes, &models());
        let _ = messages::request(&bytes, &models());
        let _ = messages::count_tokens(&bytes);
    }

    #[test]
    fn arbitrary_json_never_panics(v in arb_json()) {
        let body = v.to_string();
        for r in [chat::request(body.as_bytes(), &models()), messages::request(body.as_bytes(), &models())] {
            if let Err(e) = r { prop_assert_eq!(e.status, 400); }
        }
    }

    #[test]
    fn request_shaped_json_never_panics(v in arb_request()) {
        let body = v.to_string();
        for r in [chat::request(body.as_bytes(), &models()), messages::request(body.as_bytes(), &models())] {
            match r {
                Ok(t) => {
                    prop_assert_eq!(&t.body["stream"], &json!(true));
                    prop_assert_eq!(&t.body["store"], &json!(false));
                }
                Err(e) => prop_assert_eq!(e.status, 400),
            }
        }
        let _ = messages::count_tokens(body.as_bytes());
    }

    #[test]
    fn chat_stream_always_ends_with_one_done(events in prop::collection::vec(arb_event(), 0..25), end in arb_end()) {
        let mut s = chat::ChatStream::new("m", true);
        let mut frames = Vec::new();
        for ev in &events { frames.extend(s.on_event(ev)); }
        frames.extend(s.finish(end));
        well_formed(&frames)?;
        let done = frames.iter().filter(|f| &f[..] == b"data: [DONE]\n\n").count();
        prop_assert_eq!(done, 1);
        prop_assert_eq!(frames.last().map(|f| &f[..]), Some(&b"data: [DONE]\n\n"[..]));
        let _ = chat::collect(&events, "m");
    }

    #[test]
    fn messages_stream_always_ends_with_one_terminal_event(events in prop::collection::vec(arb_event(), 0..25), end in arb_end()) {
        let mut s = messages::MessagesStream::new("m");
        let mut frames = Vec::new();
        for ev in &events { frames.extend(s.on_event(ev)); frames.extend(s.ping()); }
        frames.extend(s.finish(end));
        well_formed(&frames)?;
        let terminal = |f: &bytes::Bytes| f.starts_with(b"event: message_stop") || f.starts_with(b"event: error");
        prop_assert_eq!(frames.iter().filter(|f| terminal(f)).count(), 1);
        prop_assert!(frames.last().is_some_and(terminal));
        // Blocks are balanced: every start has its stop.
        let count = |p: &[u8]| frames.iter().filter(|f| f.starts_with(p)).count();
        if frames.last().is_some_and(|f| f.starts_with(b"event: message_stop")) {
            prop_assert_eq!(count(b"event: content_block_start"), count(b"event: content_block_stop"));
        }
        let _ = messages::collect(&events, "m");
    }
}

/// Upstream may send a text as deltas, as a done item, only inside `response.completed`, or any
/// mix: the client must see every character exactly once.
fn text_events(
    text: &str,
    cuts: &[usize],
    deltas: bool,
    done: bool,
    in_completed: bool,
) -> Vec<Value> {
    let chars: Vec<char> = text.chars().collect();
    let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (chars.len() + 1)).collect();
    bounds.extend([0, chars.len()]);
    bounds.sort_unstable();
    bounds.dedup();
    let item = json!({"id": "msg_1", "type": "message", "role": "assistant",
        "content": [{"type": "output_text", "text": text}]});
    let mut evs = vec![json!({"type": "response.created", "response": {"id": "r"}})];
    if deltas {
        for w in bounds.windows(2) {
            let piece: String = chars[w[0]..w[1]].iter().collect();
            evs.push(json!({"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 0, "delta": piece}));
        }
    }
    if done {
        evs.push(json!({"type": "response.output_item.done", "output_index": 0, "item": item}));
    }
    let output = if in_completed {
        json!([item])
    } else {
        json!([])
    };
    evs.push(json!({"type": "response.completed", "response": {"id": "r", "output": output}}));
    evs
}

proptest! {
    #[test]
    fn every_character_reaches_the_client_exactly_once(
        text in ".{1,40}", cuts in prop::collection::vec(0usize..64, 0..6),
        deltas in any::<bool>(), done in any::<bool>(), in_completed in any::<bool>(),
    ) {
        prop_assume!(deltas || done || in_completed);
        let evs = text_events(&text, &cuts, deltas, done, in_completed);
        let mut s = chat::ChatStream::new("m", false);
        let mut frames = Vec::new();
        for ev in &evs { frames.extend(s.on_event(ev)); }
        frames.extend(s.finish(StreamEnd::Completed));
        let mut streamed = String::new();
        for f in &frames {
            let text = std::str::from_utf8(f).map_err(|e| TestCaseError::fail(e.to_string()))?;
            if let Some(Ok(v)) = text.strip_prefix("data: ").map(|d| serde_json::from_str::<Value>(d.trim())) {
                streamed.push_str(v["choices"][0]["delta"]["content"].as_str().unwrap_or(""));
            }
        }
        prop_assert_eq!(&streamed, &text);
        let collected = chat::collect(&evs, "m").map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(collected["choices"][0]["message"]["content"].as_str(), Some(text.as_str()));
        let message = messages::collect(&evs, "m").map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(message["content"][0]["text"].as_str(), Some(text.as_str()));
    }
}

/// Parallel tool calls whose events upstream interleaves: each call's own events stay in
/// order (added, argument deltas, done), and `picks` chooses which call speaks next.
fn interleaved_calls(args: &[String], picks: &[usize]) -> Vec<Value> {
    let call = |k: usize, arguments: &str| {
        json!({"id": format!("fc_{k}"), "type": "function_call", "call_id": format!("call_{k}"),
            "name": format!("tool_{k}"), "arguments": arguments})
    };
    let mut per_call: Vec<std::collections::VecDeque<Value>> = args
        .iter()
        .enumerate()
        .map(|(k, a)| {
            let mut evs = std::collections::VecDeque::new();
            evs.push_back(json!({"type": "response.output_item.added", "output_index": k, "item": call(k, "")}));
            let chars: Vec<char> = a.chars().collect();
            for piece in chars.chunks(3) {
                evs.push_back(json!({"type": "response.function_call_arguments.delta",
                    "item_id": format!("fc_{k}"), "output_index": k,
                    "delta": piece.iter().collect::<String>()}));
            }
            evs.push_back(json!({"type": "response.output_item.done", "output_index": k, "item": call(k, a)}));
            evs
        })
        .collect();
    let mut evs = vec![json!({"type": "response.created", "response": {"id": "r"}})];
    let mut picks = picks.iter().cycle();
    while per_call.iter().any(|q| !q.is_empty()) {
        let live: Vec<usize> = (0..per_call.len())
            .filter(|&k| !per_call[k].is_empty())
            .collect();
        let k = live[picks.next().copied().unwrap_or(0) % live.len()];
        evs.extend(per_call[k].pop_front());
    }
    evs.push(json!({"type": "response.completed", "response": {"id": "r", "output": []}}));
    evs
}

proptest! {
    #[test]
    fn interleaved_parallel_tool_calls_keep_every_argument_in_their_own_block(
        args in prop::collection::vec("[a-z0-9:{}\",]{0,20}", 1..4),
        picks in prop::collection::vec(0usize..8, 1..40),
    ) {
        let evs = interleaved_calls(&args, &picks);
        let mut s = messages::MessagesStream::new("m");
        let mut frames = Vec::new();
        for ev in &evs { frames.extend(s.on_event(ev)); }
        frames.extend(s.finish(StreamEnd::Completed));
        well_formed(&frames)?;
        // Anthropic blocks never interleave, and each tool_use block gets all of its call's
        // arguments, in order.
        let mut open: Option<u64> = None;
        let mut call_of = std::collections::HashMap::new();
        let mut received: std::collections::HashMap<String, String> = Default::default();
        for f in &frames {
            let text = std::str::from_utf8(f).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let Some(data) = text.lines().find_map(|l| l.strip_prefix("data: ")) else { continue };
            let v: Value = serde_json::from_str(data).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let index = v["index"].as_u64();
            match v["type"].as_str() {
                Some("content_block_start") => {
                    prop_assert_eq!(open, None, "a block opened inside another");
                    open = index;
                    if let Some(id) = v["content_block"]["id"].as_str() {
                        call_of.insert(index, id.to_owned());
                        prop_assert!(received.insert(id.to_owned(), String::new()).is_none(), "{} twice", id);
                    }
                }
                Some("content_block_delta") => {
                    prop_assert_eq!(index, open, "a delta outside the open block");
                    if let Some(piece) = v["delta"]["partial_json"].as_str() {
                        let id = call_of.get(&index).ok_or_else(|| TestCaseError::fail("args outside a call"))?;
                        if let Some(r) = received.get_mut(id) {
                            r.push_str(piece);
                        }
                    }
                }
                Some("content_block_stop") => {
                    prop_assert_eq!(index, open, "closing a block that is not open");
                    open = None;
                }
                _ => {}
            }
        }
        prop_assert_eq!(open, None);
        for (k, a) in args.iter().enumerate() {
            prop_assert_eq!(received.get(&format!("call_{k}")), Some(a), "call {}", k);
        }
        // The other two views of the same answer agree.
        let message = messages::collect(&evs, "m").map_err(|e| TestCaseError::fail(e.to_string()))?;
        let uses: Vec<&Value> = message["content"].as_array().into_iter().flatten()
            .filter(|b| b["type"] == "tool_use").collect();
        prop_assert_eq!(uses.len(), args.len());
        let chat = chat::collect(&evs, "m").map_err(|e| TestCaseError::fail(e.to_string()))?;
        let calls = chat["choices"][0]["message"]["tool_calls"].as_array().map_or(0, Vec::len);
        prop_assert_eq!(calls, args.len());
    }
}
