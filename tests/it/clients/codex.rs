//! The real Codex CLI (`codex exec`) with a custom provider pointing at the daemon
//! (docs/protocol.md §11: `wire_api = "responses"`, `env_key`): a plain answer, a pool-exhausted run
//! and a tool round trip through Codex's own tool router.
//!
//! The tool case: the simulator answers `use the tool exec_command with CMD` with a
//! `function_call` whose arguments fit `exec_command`'s schema (`{"cmd": CMD}`); Codex runs the
//! command in its sandbox and sends what it printed back as the `function_call_output`, which
//! the simulator quotes in the final answer.

use super::wire::Output;
use super::{
    RUN_LIMIT, Run, Sandbox, client_bin, env_with_wire, exhaust, only_message, records, settled,
};
use crate::support::{POOL_KEY, TestEnv, start_env_with};
use codex_rotor::sim::SimOptions;
use serde_json::Value;
use std::time::Duration;

/// Name of the variable `config.toml` tells Codex to read the pool key from.
const KEY_VAR: &str = "ROTOR_POOL_KEY";

/// `$CODEX_HOME/config.toml`: the daemon as a custom provider; update checks, analytics,
/// feedback, history and the plugin sync (which clones from GitHub) off; Codex's side traffic
/// (`chatgpt_base_url`) kept on the daemon.
fn config_toml(env: &TestEnv) -> String {
    config_toml_at(&env.url(""), false)
}

/// [`config_toml`] with the provider at `daemon`, optionally with Codex's WebSocket transport
/// on (`supports_websockets`: Codex then tries `GET {base}/responses` as a WebSocket first).
fn config_toml_at(daemon: &str, websockets: bool) -> String {
    let mut toml = format!(
        r#"model = "gpt-5.5"
model_provider = "rotor"
check_for_update_on_startup = false
chatgpt_base_url = "{daemon}/backend-api/"

[analytics]
enabled = false

[feedback]
enabled = false

[history]
persistence = "none"

[features]
plugins = false
remote_plugin = false

[model_providers.rotor]
name = "codex-rotor"
base_url = "{daemon}/v1"
wire_api = "responses"
env_key = "{KEY_VAR}"
"#
    );
    if websockets {
        toml.push_str("supports_websockets = true\n");
    }
    toml
}

/// `codex exec [extra…] prompt` in a fresh sandbox; returns the run and the sandbox.
async fn codex_exec(env: &TestEnv, extra: &[&str], prompt: &str) -> (Run, Sandbox) {
    let sb = Sandbox::new().await;
    (codex_exec_in(env, &sb, extra, prompt).await, sb)
}

/// `codex exec [extra…] prompt` in `sb` (whose `CODEX_HOME` keeps Codex's sessions between
/// runs).
async fn codex_exec_in(env: &TestEnv, sb: &Sandbox, extra: &[&str], prompt: &str) -> Run {
    codex_keyed(env, sb, POOL_KEY, RUN_LIMIT, extra, prompt).await
}

/// `codex exec [extra…] prompt` in `sb` with `key` in the provider's key variable, killed (and
/// the test failed) if it still runs after `limit`.
async fn codex_keyed(
    env: &TestEnv,
    sb: &Sandbox,
    key: &str,
    limit: Duration,
    extra: &[&str],
    prompt: &str,
) -> Run {
    let bin = client_bin("CODEX_BIN", "codex");
    let home = sb.path("codex-home");
    if !home.exists() {
        std::fs::create_dir(&home).expect("CODEX_HOME");
        std::fs::write(home.join("config.toml"), config_toml(env)).expect("config.toml");
    }
    let work = sb.path("work");
    let work = work.to_str().expect("utf-8 path");
    let mut args = vec![
        "exec",
        "--strict-config",
        "--skip-git-repo-check",
        "--color",
        "never",
        "-C",
        work,
    ];
    args.extend_from_slice(extra);
    args.push(prompt);
    let run = sb
        .run_within(
            limit,
            &bin,
            &args,
            &[
                ("CODEX_HOME", home.display().to_string()),
                (KEY_VAR, key.to_owned()),
            ],
        )
        .await;
    sb.assert_stayed_local();
    run
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_exec_prints_the_simulators_answer() {
    let (env, wire) = env_with_wire(2).await;
    let (run, _sb) = codex_exec(&env, &[], "say hi").await;
    assert!(run.status.success(), "codex exec failed: {run}");
    let answer = only_message(&wire);
    assert!(!answer.is_empty());
    assert_eq!(
        run.stdout.trim(),
        answer,
        "stdout is exactly the final answer the simulator sent: {run}"
    );
    let recs = settled(&env, "responses", 1).await;
    assert_eq!(recs.len(), 1, "one turn, no retry: {recs:?}");
    assert_eq!(recs[0].status, 200);
    assert!(
        recs[0].usage.as_ref().is_some_and(|u| u.output_tokens > 0),
        "usage seen by the daemon: {:?}",
        recs[0]
    );
    assert_eq!(env.upstream_requests(), 1);

    // The same prompt with --json: Codex's own account of the turn matches the simulator's.
    let (run, _sb) = codex_exec(&env, &["--json"], "say hi").await;
    assert!(run.status.success(), "codex exec --json failed: {run}");
    let events: Vec<Value> = run
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let said: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "item.completed" && e["item"]["type"] == "agent_message")
        .filter_map(|e| e["item"]["text"].as_str())
        .collect();
    assert_eq!(said, [answer.as_str()], "same text, same answer: {run}");
    let usage = &events
        .iter()
        .find(|e| e["type"] == "turn.completed")
        .unwrap_or_else(|| panic!("turn.completed: {run}"))["usage"];
    let sim = wire.completed().last().cloned().expect("second answer")["usage"].clone();
    assert_eq!(
        usage["input_tokens"], sim["input_tokens"],
        "{usage} vs {sim}"
    );
    assert_eq!(
        usage["cached_input_tokens"], sim["input_tokens_details"]["cached_tokens"],
        "{usage} vs {sim}"
    );
    assert_eq!(
        usage["output_tokens"], sim["output_tokens"],
        "{usage} vs {sim}"
    );
    assert_eq!(
        usage["reasoning_output_tokens"], sim["output_tokens_details"]["reasoning_tokens"],
        "{usage} vs {sim}"
    );
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_reports_the_usage_limit_of_an_exhausted_pool_after_one_request() {
    let (env, _wire) = env_with_wire(2).await;
    exhaust(&env);
    let (run, _sb) = codex_exec(&env, &[], "say hi").await;
    assert!(
        !run.status.success(),
        "an exhausted pool fails the turn: {run}"
    );
    assert!(
        run.stderr.contains("hit your usage limit"),
        "Codex shows its usage-limit message: {run}"
    );
    assert!(
        run.stderr.contains("Try again at"),
        "Codex read resets_at and says when to come back: {run}"
    );
    let recs = settled(&env, "responses", 1).await;
    assert_eq!(
        recs.len(),
        1,
        "usage_limit_reached is not retried by Codex: {recs:?}"
    );
    assert_eq!(recs[0].status, 429);
    let served: u64 = env
        .sim_ids
        .iter()
        .map(|id| env.sim.counters(id).served_429)
        .sum();
    assert_eq!(served, 2, "the daemon tried each account once");
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_tool_call_round_trips_through_the_pool() {
    let (env, wire) = env_with_wire(2).await;
    // The command prints a word the prompt does not contain, so finding it proves it ran.
    let (run, _sb) = codex_exec(
        &env,
        &[],
        "please use the tool exec_command with printf rotor-%s tool-ran",
    )
    .await;
    assert!(run.status.success(), "codex exec failed: {run}");
    let outputs = wire.outputs();
    let Some(Output::Call {
        name,
        call_id,
        arguments,
    }) = outputs.first().cloned()
    else {
        panic!("the simulator's first answer is a function call: {outputs:?}");
    };
    assert_eq!(name, "exec_command");
    let args: Value = serde_json::from_str(&arguments).expect("arguments are JSON");
    assert_eq!(
        args["cmd"], "printf rotor-%s tool-ran",
        "the call carries the command, valid for exec_command's schema: {arguments}"
    );
    let sent = wire.requests_text();
    assert!(
        sent.contains(r#""type":"function_call_output""#)
            && sent.matches(&format!(r#""call_id":"{call_id}""#)).count() >= 2,
        "Codex sent the call and its output back under the same call id {call_id}"
    );
    assert!(
        sent.contains("rotor-tool-ran"),
        "the command ran and its output went back upstream: {run}"
    );
    let answer = only_message(&wire);
    assert!(
        answer.starts_with("Simulated answer: the tool returned: ")
            && answer.contains("rotor-tool-ran"),
        "the final answer quotes what the tool printed: {answer}"
    );
    assert_eq!(run.stdout.trim(), answer, "{run}");
    let recs = settled(&env, "responses", 2).await;
    assert_eq!(recs.len(), 2, "call, then answer: {recs:?}");
    assert!(recs.iter().all(|r| r.status == 200), "{recs:?}");
    // Sticky turn: Codex echoed the simulator's turn-state token on the follow-up, the daemon
    // passed it upstream, and both requests of the turn were served by the same account.
    assert!(
        sent.lines()
            .any(|l| l.trim_end().starts_with("x-codex-turn-state: ts_sim_")),
        "the follow-up carried the turn-state token upstream"
    );
    assert!(recs[0].account_id.is_some(), "{recs:?}");
    assert_eq!(recs[0].account_id, recs[1].account_id, "{recs:?}");
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_resumed_thread_stays_on_its_account_and_hits_the_cache() {
    let (env, wire) = env_with_wire(2).await;
    let sb = Sandbox::new().await;
    let first = codex_exec_in(&env, &sb, &[], "say hi").await;
    assert!(first.status.success(), "first turn: {first}");
    let second = codex_exec_in(&env, &sb, &["resume", "--last"], "hello again").await;
    assert!(second.status.success(), "resumed turn: {second}");
    let said = wire.messages();
    assert_eq!(said.len(), 2, "{:?}", wire.outputs());
    assert_eq!(first.stdout.trim(), said[0], "{first}");
    assert_eq!(second.stdout.trim(), said[1], "{second}");
    let sent = wire.requests_text();
    assert!(
        sent.contains(&format!(r#""text":"{}""#, said[0])),
        "the resumed turn re-sent the first answer as history"
    );
    let recs = settled(&env, "responses", 2).await;
    assert_eq!(recs.len(), 2, "{recs:?}");
    assert!(recs[0].account_id.is_some(), "{recs:?}");
    assert_eq!(
        recs[0].account_id, recs[1].account_id,
        "the thread's prompt_cache_key keeps it on one account (least-used would switch)"
    );
    assert!(
        recs[1].usage.as_ref().is_some_and(|u| u.cached_tokens > 0),
        "the second turn is served from that account's cache: {:?}",
        recs[1]
    );
    env.shutdown().await;
}

/// Issue 17 item 3: turn 1 on account A, A runs out, `codex exec resume --last` replays A's
/// encrypted reasoning as history; the pool fails over to B and sends it B without A's
/// reasoning (the strict simulator would refuse it with `400 invalid_encrypted_content`, which
/// Codex does not retry), so the resumed turn succeeds on B.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_resumed_thread_survives_a_failover_with_another_accounts_reasoning() {
    let (env, wire) = env_with_wire(2).await;
    let sb = Sandbox::new().await;
    let first = codex_exec_in(&env, &sb, &[], "say hi").await;
    assert!(first.status.success(), "first turn: {first}");
    let recs = settled(&env, "responses", 1).await;
    let a = recs[0].account_id.clone().expect("served");
    assert!(
        !env.state.minted().is_empty(),
        "turn 1 carried encrypted reasoning and the pool learned whose it is"
    );
    env.sim.set_usage(&env.sim_id_of(&a).await, 100.0, 10.0);
    let second = codex_exec_in(&env, &sb, &["resume", "--last"], "hello again").await;
    assert!(second.status.success(), "resumed turn: {second}");
    let said = wire.messages();
    assert_eq!(said.len(), 2, "{:?}", wire.outputs());
    assert_eq!(second.stdout.trim(), said[1], "{second}");
    let recs = settled(&env, "responses", 2).await;
    assert_eq!(
        recs.len(),
        2,
        "one request per turn, no client retry: {recs:?}"
    );
    assert_eq!(recs[1].status, 200, "{recs:?}");
    assert_eq!(
        (recs[1].failovers, recs[1].retries),
        (1, 0),
        "A refused (429), B served the first body it got: {recs:?}"
    );
    assert_ne!(recs[1].account_id.as_deref(), Some(a.as_str()), "{recs:?}");
    let replayed = wire
        .requests_text()
        .matches(r#""encrypted_content":"gAAAAB"#)
        .count();
    assert_eq!(
        replayed, 1,
        "the resumed turn replayed A's reasoning to A only, not to B"
    );
    env.shutdown().await;
}

/// A wrong key (issue 15 item 13). Codex treats any 401/403 as a transient "unexpected status"
/// and reconnects up to its `stream_max_retries` (5) with backoff, whatever the body or
/// `x-should-retry` say (only a 400, or a 429/503 with specific codes, stop it at once — none of
/// which a wrong key is); so it fails after six quick attempts, printing the daemon's message.
/// The 30 s limit only guards against a hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_with_a_wrong_key_fails_promptly_and_says_why() {
    let (env, _wire) = env_with_wire(1).await;
    let sb = Sandbox::new().await;
    let limit = Duration::from_secs(30);
    let run = codex_keyed(&env, &sb, "sk-wrong-key-0000", limit, &[], "say hi").await;
    assert!(!run.status.success(), "a wrong key fails the turn: {run}");
    assert!(
        run.stderr.contains("401") && run.stderr.contains("API key"),
        "Codex shows the status and that the key is at fault: {run}"
    );
    let recs = records(&env, "responses");
    assert!(
        (1..=6).contains(&recs.len()) && recs.iter().all(|r| r.status == 401),
        "at most Codex's own reconnects, every one refused: {recs:?}"
    );
    assert_eq!(env.upstream_requests(), 0);
    env.shutdown().await;
}

/// With Codex's WebSocket transport on, the upgrade gets 426 and Codex falls back to HTTP at
/// once: one upgrade attempt, then the turn over `POST` (any other status would make it retry
/// the upgrade five times with backoff first, docs/protocol.md §13.3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_with_websockets_on_falls_back_to_http_after_one_426() {
    let (env, _wire) = env_with_wire(1).await;
    let front = super::wire::WireLog::start(env.addr);
    let sb = Sandbox::new().await;
    let home = sb.path("codex-home");
    std::fs::create_dir(&home).expect("CODEX_HOME");
    std::fs::write(
        home.join("config.toml"),
        config_toml_at(&format!("http://{}", front.addr), true),
    )
    .expect("config.toml");
    let run = codex_exec_in(&env, &sb, &[], "say hi").await;
    assert!(run.status.success(), "codex exec failed: {run}");
    let sent = front.requests_text();
    let upgrades = sent.matches("GET /v1/responses").count();
    assert!(
        sent.to_ascii_lowercase().contains("upgrade: websocket"),
        "Codex tried the WebSocket transport: {sent}"
    );
    assert_eq!(upgrades, 1, "one upgrade attempt, no retries: {sent}");
    assert_eq!(sent.matches("POST /v1/responses").count(), 1, "{sent}");
    let recs = settled(&env, "responses", 1).await;
    assert_eq!(recs[0].status, 200);
}

/// A client key at its concurrency limit while Codex starts a turn: the pool answers 503, which
/// Codex retries with backoff (a 429 would end the turn at once with "exceeded retry limit"),
/// and the turn succeeds once the other request is done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_waits_out_its_keys_concurrency_limit() {
    let opts = SimOptions {
        event_delay: Duration::from_millis(120),
        ..SimOptions::default()
    };
    let env = start_env_with(opts, 1, |cfg, _| {
        cfg.keys.keys[0].max_concurrent = Some(1);
    })
    .await;
    // Another request of the same key holds its one slot for about a second.
    let mut busy = env.responses(&crate::support::responses_body(true)).await;
    assert_eq!(busy.status(), 200);
    let first = busy.chunk().await.expect("first bytes");
    assert!(first.is_some());
    let holder = tokio::spawn(async move { while let Ok(Some(_)) = busy.chunk().await {} });
    let (run, _sb) = codex_exec(&env, &[], "say hi").await;
    holder.await.expect("holder");
    assert!(run.status.success(), "codex exec failed: {run}");
    let recs = settled(&env, "responses", 3).await;
    assert!(
        recs.iter().any(|r| r.status == 503),
        "Codex met the limit at least once: {recs:?}"
    );
    assert_eq!(
        recs.last().map(|r| r.status),
        Some(200),
        "and its retry was served: {recs:?}"
    );
}

/// No usable account (every one disabled): 503 `no_available_accounts`. Codex treats it as a
/// transient unexpected status: it reconnects five times, each after its own request retries,
/// then fails the turn printing the daemon's reason (docs/fidelity.md §4: measured 30 requests
/// in about 28 s). Bounded, and the reason reaches the user; the 90 s limit guards a hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_retries_a_pool_with_no_usable_account_then_says_why() {
    let (env, _wire) = env_with_wire(1).await;
    for v in env.views().await {
        env.state
            .pool()
            .set_enabled(&v.id, false)
            .await
            .expect("disable");
    }
    let sb = Sandbox::new().await;
    let run = codex_keyed(&env, &sb, POOL_KEY, Duration::from_secs(90), &[], "say hi").await;
    assert!(
        !run.status.success(),
        "no usable account fails the turn: {run}"
    );
    assert!(
        run.stderr.contains("503") && run.stderr.contains("none usable: 1 disabled"),
        "Codex shows the status and the daemon's reason: {run}"
    );
    let recs = records(&env, "responses");
    assert!(
        (2..=40).contains(&recs.len()) && recs.iter().all(|r| r.status == 503),
        "retried, but a bounded number of times: {recs:?}"
    );
    assert_eq!(env.upstream_requests(), 0);
    env.shutdown().await;
}
