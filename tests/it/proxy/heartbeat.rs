//! Heartbeats only between events (issue 17 item 5, docs/fidelity.md §2): upstream pauses
//! inside one event (the simulator's `split_event` fault) for longer than
//! `server.sse_heartbeat`. The client's stream must stay well-formed SSE — every event parses,
//! a keepalive is only ever a block of its own — and must survive the pause, in every
//! protocol. With the event larger than the daemon's hold-back ([`codex_rotor::sse::MAX_LINE`])
//! the client already has part of it, so no keepalive can go until it ends; with a smaller one
//! the daemon holds the part back and the client hears keepalives during the pause.

use crate::support::{POOL_KEY, TestEnv, start_env_with};
use codex_rotor::sim::{FaultKind, FaultSpec, SimOptions};
use serde_json::{Value, json};
use std::time::Duration;

/// The heartbeat the daemon is configured with, and the pause inside the event (several).
const HEARTBEAT: Duration = Duration::from_millis(150);
const PAUSE_MS: u64 = 900;

/// One parsed block of the client's stream.
#[derive(Debug)]
enum Block {
    /// A comment-only block (`: keepalive`), or an Anthropic `ping` event.
    Keepalive,
    /// An event: its `event:` name (if any) and its JSON `data` (`None` for `[DONE]`).
    Event(Option<String>, Option<Value>),
}

/// Parses `body` as SSE strictly: blocks end in a blank line, a block is either only comment
/// lines or only `event:`/`data:` lines whose data is JSON (or `[DONE]`). Panics otherwise.
fn blocks(body: &str) -> Vec<Block> {
    assert!(
        body.ends_with("\n\n"),
        "the stream ends at a block boundary"
    );
    let mut out = Vec::new();
    for block in body[..body.len() - 2].split("\n\n") {
        let lines: Vec<&str> = block.split('\n').collect();
        if lines.iter().all(|l| l.starts_with(':')) {
            out.push(Block::Keepalive);
            continue;
        }
        let mut name = None;
        let mut data = None;
        for l in &lines {
            if let Some(n) = l.strip_prefix("event: ") {
                name = Some(n.to_owned());
            } else if let Some(d) = l.strip_prefix("data: ") {
                data = Some(d);
            } else {
                let shown: String = l.chars().take(120).collect();
                panic!("a line inside an event that is neither event: nor data: {shown:?}");
            }
        }
        let data = data.expect("an event has data");
        let json = (data != "[DONE]").then(|| {
            serde_json::from_str::<Value>(data).unwrap_or_else(|e| {
                let shown: String = data.chars().take(120).collect();
                panic!("event data does not parse ({e}): {shown}…")
            })
        });
        if name.as_deref() == Some("ping") {
            out.push(Block::Keepalive);
        } else {
            out.push(Block::Event(name, json));
        }
    }
    out
}

/// One account; the simulator splits the next answer's huge delta of `bytes` across a pause.
async fn env_with_split(bytes: usize) -> TestEnv {
    let env = start_env_with(SimOptions::default(), 1, |cfg, _| {
        cfg.server.sse_heartbeat = HEARTBEAT;
        cfg.upstream.idle_timeout = Duration::from_secs(30);
    })
    .await;
    env.sim.inject(
        FaultSpec::always(FaultKind::SplitEvent {
            bytes,
            millis: PAUSE_MS,
        })
        .times(1),
    );
    env
}

async fn post(env: &TestEnv, path: &str, body: &Value) -> String {
    let resp = env
        .http
        .post(env.url(path))
        .bearer_auth(POOL_KEY)
        .json(body)
        .send()
        .await
        .expect("daemon answers");
    assert_eq!(resp.status(), 200, "{path}");
    resp.text().await.expect("body")
}

/// The index of the block holding the huge delta, and how many keepalives came just before it
/// (after the event that preceded it).
fn around_huge(blocks: &[Block], bytes: usize) -> (usize, usize) {
    let huge = blocks
        .iter()
        .position(|b| match b {
            Block::Event(_, Some(v)) => v.to_string().len() > bytes,
            _ => false,
        })
        .expect("the split event arrives whole");
    let before = blocks[..huge]
        .iter()
        .rev()
        .take_while(|b| matches!(b, Block::Keepalive))
        .count();
    (huge, before)
}

fn responses_ends_completed(blocks: &[Block]) {
    match blocks.last() {
        Some(Block::Event(_, Some(v))) => assert_eq!(v["type"], "response.completed"),
        other => panic!("the stream ends with {other:?}"),
    }
}

#[tokio::test]
async fn a_pause_inside_an_event_past_the_hold_back_sends_no_heartbeat_inside_it() {
    let bytes = codex_rotor::sse::MAX_LINE + 64 * 1024;
    let env = env_with_split(bytes).await;
    let started = std::time::Instant::now();
    let body = post(&env, "/v1/responses", &crate::support::responses_body(true)).await;
    assert!(
        started.elapsed() >= Duration::from_millis(PAUSE_MS),
        "the pause happened"
    );
    let b = blocks(&body);
    let (huge, _) = around_huge(&b, bytes);
    match &b[huge] {
        Block::Event(_, Some(v)) => {
            assert_eq!(v["type"], "response.output_text.delta");
            assert_eq!(v["delta"].as_str().map(str::len), Some(bytes));
        }
        other => panic!("{other:?}"),
    }
    responses_ends_completed(&b);
    let view = env.view_of(&env.sim_ids[0]).await;
    assert_eq!(view.last_error, None, "the stream was not failed");
    env.shutdown().await;
}

#[tokio::test]
async fn a_pause_inside_a_held_back_event_is_bridged_by_heartbeats_at_its_boundary() {
    let bytes = 256 * 1024;
    let env = env_with_split(bytes).await;
    let body = post(&env, "/v1/responses", &crate::support::responses_body(true)).await;
    let b = blocks(&body);
    let (_, before) = around_huge(&b, bytes);
    assert!(
        before >= 2,
        "keepalives during the {PAUSE_MS} ms pause, before the held event: {before}"
    );
    responses_ends_completed(&b);
    env.shutdown().await;
}

#[tokio::test]
async fn translated_streams_hear_their_keepalives_across_a_pause_inside_an_upstream_event() {
    let bytes = 256 * 1024;
    let chat = json!({"model": "gpt-5.5", "stream": true,
        "messages": [{"role": "user", "content": "hi"}]});
    let messages = json!({"model": "gpt-5.5", "stream": true, "max_tokens": 64,
        "messages": [{"role": "user", "content": "hi"}]});
    for (path, body) in [("/v1/chat/completions", chat), ("/v1/messages", messages)] {
        let env = env_with_split(bytes).await;
        let text = post(&env, path, &body).await;
        let b = blocks(&text);
        let (_, before) = around_huge(&b, bytes);
        assert!(
            before >= 2,
            "{path}: keepalives during the {PAUSE_MS} ms pause: {before}"
        );
        let last = b.last().expect("blocks");
        match (path, last) {
            ("/v1/chat/completions", Block::Event(_, None)) => {}
            ("/v1/messages", Block::Event(Some(n), _)) if n == "message_stop" => {}
            _ => panic!("{path} ends with {last:?}"),
        }
        env.shutdown().await;
    }
}
