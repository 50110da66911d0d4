//! The real Claude Code (`claude -p`) with `ANTHROPIC_BASE_URL` at the daemon and the pool key
//! as `ANTHROPIC_API_KEY`: a plain answer over the streamed `/v1/messages` translation, a tool
//! round trip through Claude Code's `Read` tool, an exhausted pool, and the pool's own limits
//! (key concurrency and rpm, the daemon-wide cap, no usable account).
//!
//! The tool case: the simulator answers `use the tool Read on PATH` with a call whose input fits
//! `Read`'s schema (`{"file_path": PATH}`); Claude Code reads the temp file and returns its
//! content as the `tool_result`, which the daemon translates into a `function_call_output` and
//! the simulator quotes in the final answer.
//!
//! The MCP case: a stdio MCP server whose tool Claude Code names with 70 characters
//! (`mcp__<server>__<tool>`), over the backend's limit; upstream only sees its stand-in, and
//! Claude Code gets its own name back and calls its MCP server.

use super::wire::Output;
use super::{
    RUN_LIMIT, Run, Sandbox, client_bin, env_with_wire, exhaust, only_message, records, settled,
};
use crate::support::{POOL_KEY, TestEnv};
use serde_json::Value;
use std::time::Duration;

/// `claude -p prompt [extra…]` in a fresh sandbox (after `setup` prepared its working
/// directory).
async fn claude_print(
    env: &TestEnv,
    prompt: &str,
    extra: &[&str],
    setup: impl FnOnce(&Sandbox),
) -> Run {
    let sb = Sandbox::new().await;
    setup(&sb);
    claude_in(env, &sb, prompt, extra).await
}

/// `claude -p prompt [extra…]` in `sb` (whose `HOME` keeps Claude Code's sessions between runs).
async fn claude_in(env: &TestEnv, sb: &Sandbox, prompt: &str, extra: &[&str]) -> Run {
    claude_keyed(env, sb, POOL_KEY, RUN_LIMIT, prompt, extra, &[]).await
}

/// `claude -p prompt [extra…]` in `sb` with `key` as `ANTHROPIC_API_KEY` and the variables
/// `vars` besides the usual ones, killed (and the test failed) if it still runs after `limit`.
async fn claude_keyed(
    env: &TestEnv,
    sb: &Sandbox,
    key: &str,
    limit: Duration,
    prompt: &str,
    extra: &[&str],
    vars: &[(&str, String)],
) -> Run {
    let bin = client_bin("CLAUDE_BIN", "claude");
    let on = || "1".to_owned();
    let mut args = vec!["-p", prompt];
    args.extend_from_slice(extra);
    let mut all = vec![
        ("ANTHROPIC_BASE_URL", env.url("")),
        ("ANTHROPIC_API_KEY", key.to_owned()),
        ("DISABLE_TELEMETRY", on()),
        ("DISABLE_AUTOUPDATER", on()),
        ("DISABLE_ERROR_REPORTING", on()),
        ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", on()),
    ];
    all.extend_from_slice(vars);
    let run = sb.run_within(limit, &bin, &args, &all).await;
    sb.assert_stayed_local();
    run
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_print_shows_the_simulators_answer() {
    let (env, wire) = env_with_wire(2).await;
    let run = claude_print(&env, "hi", &[], |_| {}).await;
    assert!(run.status.success(), "claude -p failed: {run}");
    let answer = only_message(&wire);
    assert!(!answer.is_empty());
    assert_eq!(
        run.stdout.trim(),
        answer,
        "stdout is exactly the simulator's answer: {run}"
    );
    let recs = settled(&env, "messages", 1).await;
    assert_eq!(
        recs.len(),
        1,
        "one streamed request: Claude Code accepted the stream and did not re-send without \
         streaming: {recs:?}"
    );
    assert_eq!(recs[0].status, 200);
    assert!(
        recs[0].usage.as_ref().is_some_and(|u| u.output_tokens > 0),
        "{:?}",
        recs[0]
    );

    // The same prompt with --output-format json: Claude Code's account of the turn matches
    // the simulator's (stop reason and token counts survive the translation).
    let run = claude_print(&env, "hi", &["--output-format", "json"], |_| {}).await;
    assert!(
        run.status.success(),
        "claude -p --output-format json failed: {run}"
    );
    let result: Value = serde_json::from_str(run.stdout.trim())
        .unwrap_or_else(|e| panic!("one JSON result ({e}): {run}"));
    assert_eq!(result["is_error"], false, "{result}");
    assert_eq!(result["num_turns"], 1, "{result}");
    assert_eq!(result["stop_reason"], "end_turn", "{result}");
    assert_eq!(result["result"], answer.as_str(), "same text, same answer");
    let usage = &result["usage"];
    let sim = wire.completed().last().cloned().expect("second answer")["usage"].clone();
    let read = |v: &Value| v.as_u64().unwrap_or_default();
    assert_eq!(
        read(&usage["input_tokens"]) + read(&usage["cache_read_input_tokens"]),
        read(&sim["input_tokens"]),
        "{usage} vs {sim}"
    );
    assert_eq!(
        usage["cache_read_input_tokens"], sim["input_tokens_details"]["cached_tokens"],
        "{usage} vs {sim}"
    );
    assert_eq!(
        usage["output_tokens"], sim["output_tokens"],
        "{usage} vs {sim}"
    );
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_read_tool_round_trips_through_the_pool() {
    let (env, wire) = env_with_wire(2).await;
    let sb = Sandbox::new().await;
    let note = sb.path("work").join("note.txt");
    std::fs::write(&note, "rotor-note-42\n").expect("temp file");
    let prompt = format!("please use the tool Read on {}", note.display());
    let run = claude_in(&env, &sb, &prompt, &[]).await;
    assert!(run.status.success(), "claude -p failed: {run}");
    let outputs = wire.outputs();
    let Some(Output::Call {
        name,
        call_id,
        arguments,
    }) = outputs.first().cloned()
    else {
        panic!("the simulator's first answer is a function call: {outputs:?}");
    };
    assert_eq!(name, "Read");
    let args: Value = serde_json::from_str(&arguments).expect("arguments are JSON");
    assert_eq!(
        args["file_path"].as_str(),
        note.to_str(),
        "the call carries the path, valid for Read's schema: {arguments}"
    );
    let sent = wire.requests_text();
    assert!(
        sent.contains(r#""type":"function_call_output""#)
            && sent.matches(&format!(r#""call_id":"{call_id}""#)).count() >= 2,
        "Claude Code's tool_result came back to upstream under call id {call_id}"
    );
    assert!(
        sent.contains("rotor-note-42"),
        "Read ran and the file's content went back upstream: {run}"
    );
    let answer = only_message(&wire);
    assert!(
        answer.starts_with("Simulated answer: the tool returned: ")
            && answer.contains("rotor-note-42"),
        "the final answer quotes what Read returned: {answer}"
    );
    assert_eq!(run.stdout.trim(), answer, "{run}");
    let recs = settled(&env, "messages", 2).await;
    assert_eq!(recs.len(), 2, "tool_use, then the answer: {recs:?}");
    assert!(recs.iter().all(|r| r.status == 200), "{recs:?}");
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_fails_clearly_on_an_exhausted_pool() {
    let (env, _wire) = env_with_wire(2).await;
    exhaust(&env);
    let run = claude_print(&env, "hi", &[], |_| {}).await;
    assert!(!run.status.success(), "an exhausted pool fails: {run}");
    let all = run.all();
    assert!(
        all.contains("429") && all.contains("usage limit"),
        "Claude Code shows the status and the daemon's reason: {run}"
    );
    let recs = settled(&env, "messages", 1).await;
    assert_eq!(recs.len(), 1, "not retried: {recs:?}");
    assert_eq!(recs[0].status, 429);
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_continued_session_stays_on_its_account_and_hits_the_cache() {
    let (env, wire) = env_with_wire(2).await;
    let sb = Sandbox::new().await;
    let first = claude_in(&env, &sb, "hi", &[]).await;
    assert!(first.status.success(), "first turn: {first}");
    let second = claude_in(&env, &sb, "hello again", &["--continue"]).await;
    assert!(second.status.success(), "continued turn: {second}");
    let said = wire.messages();
    assert_eq!(said.len(), 2, "{:?}", wire.outputs());
    assert_eq!(first.stdout.trim(), said[0], "{first}");
    assert_eq!(second.stdout.trim(), said[1], "{second}");
    assert!(
        wire.requests_text().contains(&said[0]),
        "the continued turn re-sent the first answer as history"
    );
    let recs = settled(&env, "messages", 2).await;
    assert_eq!(recs.len(), 2, "{recs:?}");
    assert!(recs[0].account_id.is_some(), "{recs:?}");
    assert_eq!(
        recs[0].account_id, recs[1].account_id,
        "the session id keeps the conversation on one account (least-used would switch)"
    );
    assert!(
        recs[1].usage.as_ref().is_some_and(|u| u.cached_tokens > 0),
        "the second turn is served from that account's cache: {:?}",
        recs[1]
    );
    env.shutdown().await;
}

/// A wrong key (issue 15 item 13): Claude Code retries a plain 401 with backoff for minutes,
/// looking hung. The daemon's 401 carries `x-should-retry: false`, which Claude Code (and the
/// Anthropic SDK it is built on) obeys: it stops after the first answer. Its message names
/// `x-api-key`, which Claude Code recognises as a refused key of the user's own: it prints
/// "Invalid API key · Fix external API key". The 30 s limit only guards against the retrying.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_with_a_wrong_key_fails_at_once_and_says_why() {
    let (env, _wire) = env_with_wire(1).await;
    let sb = Sandbox::new().await;
    let limit = Duration::from_secs(30);
    let run = claude_keyed(&env, &sb, "sk-wrong-key-0000", limit, "hi", &[], &[]).await;
    assert!(!run.status.success(), "a wrong key fails: {run}");
    let all = run.all();
    assert!(
        all.contains("Invalid API key"),
        "Claude Code says the key is at fault: {run}"
    );
    let recs = records(&env, "messages");
    assert_eq!(recs.len(), 1, "asked once, not retried: {recs:?}");
    assert_eq!(recs[0].status, 401);
    assert_eq!(env.upstream_requests(), 0);
    env.shutdown().await;
}

/// A concurrency limit reached while Claude Code starts a turn (docs/fidelity.md, "the pool's
/// own answers"): the Messages route answers 429 `rate_limit_error` with `Retry-After: 1`,
/// which Claude Code (the Anthropic SDK's rule: 408/409/429/5xx are retried, `Retry-After` is
/// honoured, `x-should-retry` wins) retries after that second, and the turn succeeds once the
/// other request is gone. `limit` sets the limit to one request in flight.
async fn claude_waits_out_a_concurrency_limit(limit: fn(&mut codex_rotor::config::Config)) {
    // Slow events, so a stream holds its slot for many seconds unless its client hangs up.
    let opts = codex_rotor::sim::SimOptions {
        event_delay: Duration::from_millis(700),
        ..codex_rotor::sim::SimOptions::default()
    };
    let env = crate::support::start_env_with(opts, 1, |cfg, _| limit(cfg)).await;
    // Another request holds the one slot until Claude Code has been refused once (however long
    // Claude Code takes to start), then lets go of it by hanging up.
    let mut busy = env.responses(&crate::support::responses_body(true)).await;
    assert_eq!(busy.status(), 200);
    assert!(busy.chunk().await.expect("first bytes").is_some());
    let release = async {
        let refused = || records(&env, "messages").iter().any(|r| r.status == 429);
        let deadline = tokio::time::Instant::now() + RUN_LIMIT;
        while !refused() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        drop(busy);
    };
    let (run, ()) = tokio::join!(claude_print(&env, "hi", &[], |_| {}), release);
    assert!(run.status.success(), "claude -p failed: {run}");
    let recs = settled(&env, "messages", 2).await;
    assert!(
        recs.iter().any(|r| r.status == 429),
        "Claude Code met the limit at least once: {recs:?}"
    );
    assert!(
        recs[..recs.len() - 1].iter().all(|r| r.status == 429),
        "every earlier try was the limit: {recs:?}"
    );
    assert_eq!(
        recs.last().map(|r| r.status),
        Some(200),
        "and its retry was served: {recs:?}"
    );
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_waits_out_its_keys_concurrency_limit() {
    claude_waits_out_a_concurrency_limit(|cfg| cfg.keys.keys[0].max_concurrent = Some(1)).await;
}

/// The daemon-wide cap (`limits.max_concurrent_requests`) answers as a key's own limit does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_waits_out_the_daemons_concurrency_cap() {
    claude_waits_out_a_concurrency_limit(|cfg| cfg.limits.max_concurrent_requests = 1).await;
}

/// A key over its rpm: 429 `rate_limit_error` with `Retry-After` the seconds until its bucket
/// has a token again (15 s at 4 rpm, longer than Claude Code takes to start even on a
/// loaded machine). Claude Code sleeps that long and sends once more, served.
/// (Measured: at 1 rpm it waits the full 60 s the same way.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_waits_out_its_keys_rpm_limit() {
    let opts = codex_rotor::sim::SimOptions::default();
    let env =
        crate::support::start_env_with(opts, 1, |cfg, _| cfg.keys.keys[0].rpm = Some(4)).await;
    for _ in 0..4 {
        let r = env.responses(&crate::support::responses_body(false)).await;
        assert_eq!(r.status(), 200, "the bucket's four tokens");
    }
    let run = claude_print(&env, "hi", &[], |_| {}).await;
    assert!(run.status.success(), "claude -p failed: {run}");
    let recs = settled(&env, "messages", 2).await;
    let statuses: Vec<u16> = recs.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [429, 200], "one refusal, then served: {recs:?}");
}

/// No usable account (every one disabled): 529 `overloaded_error`. Claude Code retries a 529
/// twice with a short backoff and then gives up ("Repeated 529 Overloaded errors"), about 3 s in
/// all: right for a pool that will not heal by itself, and no wait of minutes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_gives_up_after_three_529s_when_no_account_is_usable() {
    let (env, _wire) = env_with_wire(1).await;
    for v in env.views().await {
        env.state
            .pool()
            .set_enabled(&v.id, false)
            .await
            .expect("disable");
    }
    let sb = Sandbox::new().await;
    let run = claude_keyed(&env, &sb, POOL_KEY, Duration::from_secs(60), "hi", &[], &[]).await;
    assert!(!run.status.success(), "no usable account fails: {run}");
    assert!(
        run.all().contains("529"),
        "Claude Code shows the status: {run}"
    );
    let recs = records(&env, "messages");
    assert!(
        (1..=3).contains(&recs.len()) && recs.iter().all(|r| r.status == 529),
        "a few 529s, no long retrying: {recs:?}"
    );
    assert_eq!(env.upstream_requests(), 0);
    env.shutdown().await;
}

/// A stdio MCP server offering one tool, [`MCP_TOOL`], that answers every call with
/// `rotor-mcp-result-7` (newline-delimited JSON-RPC, as Claude Code speaks it).
const MCP_SERVER: &str = r#"
import json, sys
for line in sys.stdin:
    msg = json.loads(line)
    if "id" not in msg:
        continue
    method, result = msg.get("method"), None
    if method == "initialize":
        result = {"protocolVersion": msg["params"]["protocolVersion"],
                  "capabilities": {"tools": {}}, "serverInfo": {"name": "rotor-mcp", "version": "1"}}
    elif method == "tools/list":
        result = {"tools": [{"name": "search_confluence_pages_by_cql",
                             "description": "Search pages", "inputSchema": {"type": "object",
                             "properties": {"cql": {"type": "string"}}, "required": ["cql"]}}]}
    elif method == "tools/call":
        result = {"content": [{"type": "text", "text": "rotor-mcp-result-7"}]}
    elif method == "ping":
        result = {}
    reply = {"jsonrpc": "2.0", "id": msg["id"]}
    if result is None:
        reply["error"] = {"code": -32601, "message": "no such method"}
    else:
        reply["result"] = result
    sys.stdout.write(json.dumps(reply) + "\n")
    sys.stdout.flush()
"#;

/// The MCP server's name in Claude Code's config.
const MCP_SERVER_NAME: &str = "rotor_confluence_workspace_server";

/// The tool as Claude Code names it: `mcp__<server>__<tool>`, 70 characters.
const MCP_TOOL: &str = "mcp__rotor_confluence_workspace_server__search_confluence_pages_by_cql";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_calls_an_mcp_tool_whose_name_is_over_64_characters() {
    assert!(MCP_TOOL.len() > 64);
    let (env, wire) = env_with_wire(1).await;
    let sb = Sandbox::new().await;
    let script = sb.path("work").join("mcp_server.py");
    std::fs::write(&script, MCP_SERVER).expect("server script");
    let python = std::env::var("ROTOR_PYTHON").unwrap_or_else(|_| "python3".into());
    let config = serde_json::json!({"mcpServers": {MCP_SERVER_NAME: {
        "command": python, "args": [script.to_str().expect("utf-8 path")]}}});
    let config_path = sb.path("work").join("mcp.json");
    std::fs::write(&config_path, config.to_string()).expect("mcp config");
    // The model only sees the stand-in, so that is the name it is asked to call.
    let short = codex_rotor::internals::names::stand_in(MCP_TOOL, 0);
    let prompt = format!("please use the tool {short} with space = DOCS");
    let config_arg = config_path.to_str().expect("utf-8 path");
    let extra = [
        "--mcp-config",
        config_arg,
        "--strict-mcp-config",
        "--allowedTools",
        MCP_TOOL,
    ];
    // MCP tools are offered up front, not behind Claude Code's deferred ToolSearch.
    let vars = [("ENABLE_TOOL_SEARCH", "false".to_owned())];
    let run = claude_keyed(&env, &sb, POOL_KEY, RUN_LIMIT, &prompt, &extra, &vars).await;
    assert!(run.status.success(), "claude -p failed: {run}");
    let Some(Output::Call { name, .. }) = wire.outputs().first().cloned() else {
        panic!("the simulator's first answer is a function call: {run}");
    };
    assert_eq!(name, short, "upstream saw only the stand-in");
    let sent = wire.requests_text();
    assert!(
        !sent.contains(MCP_TOOL),
        "the long name never reached upstream"
    );
    assert!(
        sent.contains("rotor-mcp-result-7"),
        "Claude Code called its MCP tool by its own name and sent the result back: {run}"
    );
    let answer = only_message(&wire);
    assert!(answer.contains("rotor-mcp-result-7"), "{answer}");
    assert_eq!(run.stdout.trim(), answer, "{run}");
    let recs = settled(&env, "messages", 2).await;
    assert!(recs.iter().all(|r| r.status == 200), "{recs:?}");
    env.shutdown().await;
}
