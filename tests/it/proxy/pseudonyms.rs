//! The ids a client sends that could link pool accounts (docs/fidelity.md §3) reach each
//! account as that account's own stable pseudonyms: one Codex conversation served by two
//! accounts (the first exhausted mid-conversation) shows each account one stable set of ids
//! and the two accounts different ones, in the headers and in the body's `prompt_cache_key`
//! and `client_metadata`; the client's own ids reach no account, and the conversation's
//! content is sent as written. The daemon's affinity still keys on the client's ids.

use crate::clients::wire::WireLog;
use crate::support::TestEnv;
use serde_json::{Value, json};
use std::collections::BTreeMap;

const SESSION: &str = "019a8c2e-7f3b-7c1d-9e2f-0123456789ab";
const INSTALLATION: &str = "5f0c1e2d-3b4a-4c5d-8e6f-a1b2c3d4e5f6";
const TURN: &str = "019a8c2e-8000-7000-8000-00000000beef";

/// One request the daemon sent the simulator: its account and the ids it carried.
#[derive(Debug, PartialEq, Clone)]
struct Sent {
    account: String,
    session: String,
    window: String,
    cache_key: String,
    installation: String,
    metadata_header: String,
    content: String,
}

/// Every `POST …/codex/responses` in the relayed bytes.
fn sent(wire: &WireLog) -> Vec<Sent> {
    let text = wire.requests_text();
    let mut out = Vec::new();
    for part in text.split("POST /backend-api/codex/responses").skip(1) {
        let (head, rest) = part.split_once("\r\n\r\n").expect("a request head");
        let header = |name: &str| {
            head.lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(": ")?;
                    k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
                })
                .unwrap_or_default()
        };
        let len: usize = header("content-length").parse().expect("content-length");
        let body: Value = serde_json::from_str(&rest[..len]).expect("JSON body");
        out.push(Sent {
            account: header("chatgpt-account-id"),
            session: header("session-id"),
            window: header("x-codex-window-id"),
            metadata_header: header("x-codex-turn-metadata"),
            cache_key: body["prompt_cache_key"].as_str().unwrap_or_default().into(),
            installation: body["client_metadata"]["x-codex-installation-id"]
                .as_str()
                .unwrap_or_default()
                .into(),
            content: body["input"][0]["content"][0]["text"]
                .as_str()
                .unwrap_or_default()
                .into(),
        });
    }
    out
}

async fn two_accounts_behind_a_wire() -> (TestEnv, WireLog) {
    WireLog::behind(2).await
}

/// A Codex turn as the CLI sends it: the ids in headers, `prompt_cache_key`, `client_metadata`.
async fn codex_turn(env: &TestEnv) -> u16 {
    codex_turn_answer(env, true).await.0
}

/// [`codex_turn`], streamed or not; its status and the answer's text.
async fn codex_turn_answer(env: &TestEnv, stream: bool) -> (u16, String) {
    let metadata = json!({"installation_id": INSTALLATION, "session_id": SESSION,
        "thread_id": SESSION, "turn_id": TURN})
    .to_string();
    let body = json!({"model": "gpt-5.5", "stream": stream, "store": false,
        "instructions": "You are Codex.", "include": ["reasoning.encrypted_content"],
        "input": [{"type": "message", "role": "user",
            "content": [{"type": "input_text", "text": format!("my id is {SESSION}")}]}],
        "prompt_cache_key": SESSION,
        "client_metadata": {"x-codex-installation-id": INSTALLATION,
            "x-codex-turn-metadata": metadata, "session_id": SESSION}});
    let window = format!("{SESSION}:0");
    let resp = env
        .responses_with(
            &body,
            &[
                ("session-id", SESSION),
                ("x-codex-window-id", &window),
                ("x-codex-turn-metadata", &metadata),
            ],
        )
        .await;
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

/// The `response` objects of a streamed answer's events, by event type.
fn responses_in(sse: &str) -> Vec<(String, Value)> {
    sse.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter(|ev| ev.get("response").is_some())
        .map(|ev| {
            (
                ev["type"].as_str().unwrap_or_default().to_owned(),
                ev["response"].clone(),
            )
        })
        .collect()
}

/// Upstream echoes the `prompt_cache_key` it got (the account's stand-in) in its response
/// objects; the client reads its own key back, streamed and collected, and no stand-in.
#[tokio::test]
async fn the_echoed_prompt_cache_key_is_the_clients_own() {
    let (env, wire) = two_accounts_behind_a_wire().await;
    let (status, sse) = codex_turn_answer(&env, true).await;
    assert_eq!(status, 200, "{sse}");
    let (status, collected) = codex_turn_answer(&env, false).await;
    assert_eq!(status, 200, "{collected}");
    let sent = sent(&wire);
    assert_eq!(sent.len(), 2);
    let stand_in = sent[0].cache_key.clone();
    assert_ne!(stand_in, SESSION);
    let echoed = wire.completed();
    assert_eq!(echoed.len(), 2, "the simulator streamed both");
    for r in &echoed {
        assert_eq!(
            r["prompt_cache_key"],
            stand_in.as_str(),
            "upstream echoes what it got"
        );
    }
    let events = responses_in(&sse);
    let types: Vec<&str> = events.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        types,
        [
            "response.created",
            "response.in_progress",
            "response.completed"
        ],
        "{sse}"
    );
    for (ty, r) in &events {
        assert_eq!(
            r["prompt_cache_key"], SESSION,
            "{ty} shows the client's key"
        );
    }
    assert!(
        !sse.contains(&stand_in),
        "no stand-in reaches the client: {sse}"
    );
    let v: Value = serde_json::from_str(&collected).expect("a JSON answer");
    assert_eq!(v["prompt_cache_key"], SESSION, "{v}");
    assert!(!collected.contains(&stand_in), "{collected}");
    env.shutdown().await;
}

#[tokio::test]
async fn two_accounts_serving_one_session_see_their_own_stable_ids() {
    let (env, wire) = two_accounts_behind_a_wire().await;
    assert_eq!(codex_turn(&env).await, 200);
    assert_eq!(codex_turn(&env).await, 200);
    let first = sent(&wire);
    assert_eq!(first.len(), 2);
    assert_eq!(first[0].account, first[1].account, "affinity: one account");
    let exhausted = first[0].account.clone();
    env.sim.set_usage(&exhausted, 100.0, 10.0);
    assert_eq!(codex_turn(&env).await, 200, "failed over");
    let all = sent(&wire);
    let mut by_account: BTreeMap<String, Vec<Sent>> = BTreeMap::new();
    for s in &all {
        by_account
            .entry(s.account.clone())
            .or_default()
            .push(s.clone());
    }
    assert_eq!(by_account.len(), 2, "both accounts were asked: {all:#?}");
    for s in &all {
        for own in [SESSION, INSTALLATION, TURN] {
            for (what, v) in [
                ("session-id", &s.session),
                ("x-codex-window-id", &s.window),
                ("prompt_cache_key", &s.cache_key),
                ("installation id", &s.installation),
                ("x-codex-turn-metadata", &s.metadata_header),
            ] {
                assert!(!v.contains(own), "{what} carried the client's id: {v}");
            }
        }
        assert_eq!(
            s.content,
            format!("my id is {SESSION}"),
            "content as written"
        );
        assert_eq!(
            s.window,
            format!("{}:0", s.session),
            "the window keeps its shape"
        );
        assert_eq!(
            s.cache_key, s.session,
            "one client id, one pseudonym per account"
        );
        assert_eq!(s.session.len(), SESSION.len());
    }
    let ids = |s: &Sent| {
        (
            s.session.clone(),
            s.installation.clone(),
            s.metadata_header.clone(),
        )
    };
    let per_account: Vec<_> = by_account
        .values()
        .map(|reqs| {
            assert!(
                reqs.iter().all(|r| ids(r) == ids(&reqs[0])),
                "stable within one account: {reqs:#?}"
            );
            ids(&reqs[0])
        })
        .collect();
    assert_ne!(
        per_account[0].0, per_account[1].0,
        "session differs across accounts"
    );
    assert_ne!(
        per_account[0].1, per_account[1].1,
        "installation differs across accounts"
    );
    env.shutdown().await;
}
