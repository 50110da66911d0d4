//! The daemon's life around the requests: heartbeats and idle timeouts on long streams, ordered
//! shutdown, start-up refusal of an open pool, SIGHUP reload, the demo, body limits and the
//! usage prober.

use super::stream_once;
use crate::support::{event_types, responses_body, start_env, start_env_with};
use codex_rotor::sim::{FaultKind, FaultSpec, SimOptions};
use serde_json::Value;
use std::time::Duration;

#[tokio::test]
async fn long_upstream_silence_gets_keepalive_comments_then_the_answer() {
    let env = start_env_with(SimOptions::default(), 1, |cfg, _| {
        cfg.server.sse_heartbeat = Duration::from_millis(100);
    })
    .await;
    env.sim.inject(
        FaultSpec::always(FaultKind::Stall {
            after_events: 1,
            millis: 450,
        })
        .times(1),
    );
    let (status, _, body) = stream_once(&env, &[]).await;
    assert_eq!(status, 200);
    let keepalives = body.matches(": keepalive\n\n").count();
    assert!(
        (2..=6).contains(&keepalives),
        "{keepalives} keepalives in {body}"
    );
    assert_eq!(
        event_types(&body).last().map(String::as_str),
        Some("response.completed")
    );
    env.shutdown().await;
}

#[tokio::test]
async fn upstream_idle_past_the_timeout_ends_the_stream_with_response_failed() {
    let env = start_env_with(SimOptions::default(), 2, |cfg, _| {
        cfg.server.sse_heartbeat = Duration::from_millis(50);
        cfg.upstream.idle_timeout = Duration::from_millis(200);
    })
    .await;
    env.sim.inject(
        FaultSpec::always(FaultKind::Stall {
            after_events: 1,
            millis: 3_000,
        })
        .times(1),
    );
    let (status, _, body) = stream_once(&env, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(
        event_types(&body).last().map(String::as_str),
        Some("response.failed")
    );
    assert!(body.contains("upstream_idle_timeout"), "{body}");
    assert_eq!(env.upstream_requests(), 1);
    env.shutdown().await;
}

#[tokio::test]
async fn shutdown_lets_streams_finish_within_the_grace_then_ends_the_rest() {
    let opts = SimOptions {
        event_delay: Duration::from_millis(100),
        answer_words: 300,
        ..SimOptions::default()
    };
    let mut env = start_env_with(opts, 1, |cfg, _| {
        cfg.server.shutdown_grace = Duration::from_millis(300);
    })
    .await;
    let resp = env.responses(&responses_body(true)).await;
    assert_eq!(resp.status(), 200);
    let reading = tokio::spawn(async move { resp.text().await.expect("body ends cleanly") });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let daemon = env.take_daemon();
    let addr = daemon.addr;
    let started = std::time::Instant::now();
    daemon.shutdown().await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(5),
        "grace honoured, then ended: {took:?}"
    );
    let body = reading.await.expect("reader");
    assert_eq!(
        event_types(&body).last().map(String::as_str),
        Some("response.failed"),
        "{body}"
    );
    assert!(body.contains("server_shutting_down"));
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "no longer accepting"
    );
    // The pool stopped after the server: the account flushed its usage to its file.
    let dir = env.state.config().data_dir.clone();
    let rec = std::fs::read_dir(dir.join("accounts"))
        .expect("data dir")
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .map(|e| {
            serde_json::from_slice::<rotor_actors::AccountRecord>(
                &std::fs::read(e.path()).expect("readable"),
            )
            .expect("an account record")
        })
        .next()
        .expect("an account file");
    assert_eq!(rec.usage.requests, 1, "usage flushed on shutdown");
    env.sim.clone().shutdown().await;
}

#[tokio::test]
async fn open_pool_refuses_a_public_address_and_sighup_reload_swaps_keys() {
    let sim = codex_rotor::sim::Simulator::start(SimOptions::default(), crate::support::loopback())
        .await
        .expect("sim");
    let dir = tempfile::tempdir().expect("dir");
    let (store, _, _) = codex_rotor::store::FileStore::open(dir.path()).expect("store");
    let mut open = crate::support::test_config(&sim, dir.path());
    open.keys.keys.clear();
    open.server.listen = "0.0.0.0:0".parse().expect("addr");
    let refused = codex_rotor::server::start(open, std::sync::Arc::new(store), Vec::new()).await;
    let err = refused
        .err()
        .expect("an open pool on 0.0.0.0 must not start");
    assert!(format!("{err:#}").contains("no client key"), "{err:#}");
    sim.shutdown().await;

    let env = start_env(1).await;
    let file = dir.path().join("reload.toml");
    let key_file = dir.path().join("rotated.key");
    std::fs::write(&key_file, "rotated-key-abcdef0123456789\n").expect("write key");
    let toml = format!(
        "data_dir = {:?}\n[upstream]\nbase_url = {:?}\ntoken_url = {:?}\n[[keys.keys]]\nname = \"rotated\"\nkey_file = {:?}\n",
        env.state.config().data_dir,
        env.sim.backend_url(),
        env.sim.token_url(),
        key_file
    );
    std::fs::write(&file, toml).expect("write config");
    codex_rotor::server::reload(&env.state, Some(&file)).await;
    let old = env.responses(&responses_body(false)).await;
    assert_eq!(old.status(), 401, "the old key is gone after reload");
    let new = env
        .http
        .post(env.url("/v1/responses"))
        .bearer_auth("rotated-key-abcdef0123456789")
        .json(&responses_body(false))
        .send()
        .await
        .expect("answer");
    assert_eq!(new.status(), 200);
    env.shutdown().await;
}

#[tokio::test]
async fn demo_serves_its_simulated_accounts_and_prints_the_setup() {
    let dir = tempfile::tempdir().expect("dir");
    let args = codex_rotor::demo::DemoArgs {
        listen: crate::support::loopback(),
        accounts: 3,
        pool_key: None,
        admin_key: Some("demo-admin-key-0123456789".into()),
        data_dir: Some(dir.path().to_path_buf()),
        sim_quota_tokens: None,
    };
    let demo = codex_rotor::demo::launch(args).await.expect("demo starts");
    let text = codex_rotor::demo::instructions(&demo);
    let addr = demo.daemon.addr.to_string();
    assert!(text.contains(&demo.pool_key) && text.contains(&addr));
    assert!(
        text.contains("wire_api = \"responses\"") && text.contains("ANTHROPIC_BASE_URL"),
        "{text}"
    );
    assert_eq!(demo.daemon.state.pool().accounts().await.len(), 3);
    let http = reqwest::Client::new();
    let resp = http
        .post(format!("http://{addr}/v1/responses"))
        .bearer_auth(&demo.pool_key)
        .json(&responses_body(true))
        .send()
        .await
        .expect("answer");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        event_types(&resp.text().await.expect("body"))
            .last()
            .map(String::as_str),
        Some("response.completed")
    );
    let pool = http
        .get(format!("http://{addr}/admin/pool"))
        .bearer_auth("demo-admin-key-0123456789")
        .send()
        .await
        .expect("answer");
    assert_eq!(pool.status(), 200);
    demo.daemon.shutdown().await;
    demo.sim.shutdown().await;
}

#[tokio::test]
async fn oversized_body_is_413_in_the_openai_shape() {
    let env = start_env_with(SimOptions::default(), 1, |cfg, _| {
        cfg.server.max_body_bytes = 1024
    })
    .await;
    let mut body = responses_body(true);
    body["input"] = "x".repeat(4096).into();
    let resp = env.responses(&body).await;
    assert_eq!(resp.status(), 413);
    let v: Value = resp.json().await.expect("json");
    assert_eq!(v["error"]["code"], "payload_too_large");
    assert_eq!(env.upstream_requests(), 0);
    env.shutdown().await;
}

#[tokio::test]
async fn usage_probe_reads_wham_usage_into_the_quota() {
    let env = start_env(1).await;
    let sim_id = env.sim_ids[0].clone();
    let id = env.view_of(&sim_id).await.id;
    env.sim.set_usage(&sim_id, 100.0, 20.0);
    let probes = env.sim.counters(&sim_id).usage_probes;
    env.state.pool().probe(&id).await.expect("probe accepted");
    env.eventually("the prober asked /wham/usage", || async {
        env.sim.counters(&sim_id).usage_probes > probes
    })
    .await;
    env.eventually("and the quota says exhausted", || async {
        env.view_of(&sim_id).await.derived_status == "rate_limited"
    })
    .await;
    let resp = env.responses(&responses_body(true)).await;
    assert_eq!(resp.status(), 429, "the pool answers from the probed quota");
    assert_eq!(env.sim.counters(&sim_id).requests, 0);
    env.shutdown().await;
}

/// The daemon caps hyper's per-connection read buffer (memory per client connection): a large
/// but normal request head (12 KiB of headers) and a body many times the cap still pass, and a
/// head beyond the cap gets a clear 431 instead of a hang or a reset.
#[tokio::test]
async fn large_heads_and_bodies_pass_the_read_buffer_cap_and_an_oversized_head_is_431() {
    let env = start_env(1).await;
    let big = "x".repeat(12 * 1024);
    let (status, _, body) = stream_once(&env, &[("x-large-but-normal", &big)]).await;
    assert_eq!(status, 200, "{body}");
    let text = "word ".repeat(60_000);
    let long = serde_json::json!({"model": "gpt-5.5", "stream": true, "input": [{"type": "message",
        "role": "user", "content": [{"type": "input_text", "text": text}]}]});
    let resp = reqwest::Client::new()
        .post(env.url("/v1/responses"))
        .bearer_auth(crate::support::POOL_KEY)
        .json(&long)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 200, "300 KB body");
    let answer = resp.text().await.expect("body");
    assert!(answer.contains("response.completed"), "{answer}");
    let huge = "y".repeat(40 * 1024);
    let resp = reqwest::Client::new()
        .post(env.url("/v1/responses"))
        .bearer_auth(crate::support::POOL_KEY)
        .header("x-too-large", &huge)
        .json(&long)
        .send()
        .await
        .expect("an answer, not a reset");
    assert_eq!(resp.status().as_u16(), 431);
    env.shutdown().await;
}
