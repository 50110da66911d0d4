//! `x-codex-turn-state` is one account's token (docs/protocol.md §4): a follow-up of a turn
//! reaches the account whose answer carried it, and when that account can no longer serve and
//! the turn fails over, the other account gets the request without the token (as a turn's
//! first request) and the client gets that account's own token back, which then reaches it.

use crate::clients::wire::WireLog;
use crate::support::TestEnv;
use serde_json::json;

const SESSION: &str = "019a8c2e-7f3b-7c1d-9e2f-0123456789ab";

/// One `POST …/codex/responses` the daemon sent: the account and the turn state it carried.
#[derive(Debug, Clone, PartialEq)]
struct Sent {
    account: String,
    turn_state: Option<String>,
}

fn sent(wire: &WireLog) -> Vec<Sent> {
    let text = wire.requests_text();
    text.split("POST /backend-api/codex/responses")
        .skip(1)
        .map(|part| {
            let (head, _) = part.split_once("\r\n\r\n").expect("a request head");
            let header = |name: &str| {
                head.lines().find_map(|l| {
                    let (k, v) = l.split_once(": ")?;
                    k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
                })
            };
            Sent {
                account: header("chatgpt-account-id").expect("an account header"),
                turn_state: header("x-codex-turn-state"),
            }
        })
        .collect()
}

/// A Codex request of one conversation, echoing `turn_state` when given; its status and the
/// turn state the answer carried.
async fn turn(env: &TestEnv, turn_state: Option<&str>) -> (u16, Option<String>) {
    let body = json!({"model": "gpt-5.5", "stream": true, "store": false,
        "instructions": "You are Codex.",
        "input": [{"type": "message", "role": "user",
            "content": [{"type": "input_text", "text": "go on"}]}],
        "prompt_cache_key": SESSION});
    let mut headers = vec![("session-id", SESSION)];
    if let Some(t) = turn_state {
        headers.push(("x-codex-turn-state", t));
    }
    let resp = env.responses_with(&body, &headers).await;
    let status = resp.status().as_u16();
    let token = resp
        .headers()
        .get("x-codex-turn-state")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let _ = resp.text().await;
    (status, token)
}

#[tokio::test]
async fn a_turn_state_goes_only_to_the_account_that_minted_it() {
    let (env, wire) = WireLog::behind(2).await;

    let (status, minted_by_a) = turn(&env, None).await;
    assert_eq!(status, 200);
    let token_a = minted_by_a.expect("upstream's answer carries a turn state");
    let (status, echoed) = turn(&env, Some(&token_a)).await;
    assert_eq!(status, 200);
    assert_eq!(echoed.as_deref(), Some(token_a.as_str()));
    let first = sent(&wire);
    assert_eq!(first.len(), 2);
    let a = first[0].account.clone();
    assert_eq!(
        first[1].account, a,
        "the follow-up reached the minting account"
    );
    assert_eq!(first[1].turn_state.as_deref(), Some(token_a.as_str()));

    env.sim.set_usage(&a, 100.0, 10.0);
    let (status, minted_by_b) = turn(&env, Some(&token_a)).await;
    assert_eq!(status, 200, "failed over");
    let all = sent(&wire);
    let to_b: Vec<&Sent> = all.iter().filter(|s| s.account != a).collect();
    assert_eq!(
        to_b.len(),
        1,
        "one request reached the other account: {all:#?}"
    );
    assert_eq!(
        to_b[0].turn_state, None,
        "account A's turn state reached account B: {all:#?}"
    );
    let token_b = minted_by_b.expect("B's answer carries its own turn state");
    assert_ne!(token_b, token_a, "the client is given B's token, not A's");

    let (status, _) = turn(&env, Some(&token_b)).await;
    assert_eq!(status, 200);
    let last = sent(&wire).pop().expect("a request");
    assert_eq!(
        last,
        Sent {
            account: to_b[0].account.clone(),
            turn_state: Some(token_b.clone()),
        },
        "B's token goes to B"
    );

    // A token the daemon never handed out (minted before a restart, or made up) reaches no
    // account: the request goes as a turn's first one.
    let (status, _) = turn(&env, Some("ts_unknown_to_the_pool")).await;
    assert_eq!(status, 200);
    let last = sent(&wire).pop().expect("a request");
    assert_eq!(last.turn_state, None, "{last:?}");
    env.shutdown().await;
}
