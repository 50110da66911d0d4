//! The simulator against docs/protocol.md, over real sockets with reqwest: stream shapes the real
//! clients need (§5, §12), quota headers (§4), the exact 429 body (§6), token refresh (§7),
//! auth failures, the usage endpoint (§9), the control API; faults are in `sim/faults.rs`.

mod auth;
mod faults;
mod strict;

use codex_rotor::sim::{AccountSpec, SimHandle, SimOptions, Simulator};
use serde_json::{Value, json};

/// Starts a simulator on an ephemeral port.
pub async fn start(opts: SimOptions) -> SimHandle {
    Simulator::start(opts, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("sim starts")
}

/// The access token inside an `auth.json`.
pub fn access_token(auth: &Value) -> String {
    auth["tokens"]["access_token"]
        .as_str()
        .expect("access token")
        .to_string()
}

/// A Codex-like request body asking `text`.
pub fn body(text: &str, stream: bool) -> Value {
    json!({"model": "gpt-5.5", "stream": stream, "store": false, "instructions": "You are Codex.", "input": [
        {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "You are Codex."}]},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}]})
}

/// POSTs a body to the responses endpoint with a bearer token.
pub async fn post(sim: &SimHandle, token: &str, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/codex/responses", sim.backend_url()))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("request sent")
}

/// Parses an SSE body into its JSON events, checking each `event:` line matches `type`.
pub fn events(body: &str) -> Vec<Value> {
    body.split("\n\n")
        .filter(|f| !f.trim().is_empty())
        .map(|frame| {
            let ty = frame
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .expect("event line");
            let data = frame
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .expect("data line");
            let v: Value = serde_json::from_str(data).expect("event is JSON");
            assert_eq!(v["type"], ty, "event line matches type");
            v
        })
        .collect()
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("header {name}"))
}

fn types(ev: &[Value]) -> Vec<&str> {
    ev.iter()
        .map(|e| e["type"].as_str().expect("type"))
        .collect()
}

#[tokio::test]
async fn stream_has_every_event_codex_and_the_sdks_need() {
    let sim = start(SimOptions {
        completed_output: true,
        ..SimOptions::default()
    })
    .await;
    let acct = sim.create_account(AccountSpec::default());
    let resp = post(&sim, &access_token(&acct.auth_json), &body("say hi", true)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "content-type"), "text/event-stream");
    assert_eq!(header(&resp, "openai-model"), "gpt-5.5");
    assert!(header(&resp, "x-codex-turn-state").starts_with("ts_sim_"));
    assert_eq!(header(&resp, "x-codex-primary-window-minutes"), "300");
    assert_eq!(header(&resp, "x-codex-secondary-window-minutes"), "10080");
    assert!(
        header(&resp, "x-codex-primary-used-percent")
            .parse::<f64>()
            .expect("float")
            > 0.0
    );
    assert!(
        header(&resp, "x-codex-primary-reset-at")
            .parse::<i64>()
            .expect("unix s")
            > 1_700_000_000
    );
    assert_eq!(header(&resp, "x-codex-credits-has-credits"), "false");
    assert!(
        resp.headers()
            .get("x-codex-bengalfox-primary-used-percent")
            .is_none()
    );
    let ev = events(&resp.text().await.expect("body"));
    let t = types(&ev);
    assert_eq!(t[0], "response.created", "openai SDK needs created first");
    assert_eq!(*t.last().expect("events"), "response.completed");
    for (i, e) in ev.iter().enumerate() {
        assert_eq!(e["sequence_number"], i);
    }
    let deltas: String = ev
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .map(|e| e["delta"].as_str().expect("delta"))
        .collect();
    let done = ev
        .iter()
        .find(|e| e["type"] == "response.output_item.done")
        .expect("item done");
    assert_eq!(done["item"]["type"], "message");
    assert_eq!(done["item"]["role"], "assistant");
    assert_eq!(done["item"]["content"][0]["text"], deltas.as_str());
    let completed = &ev.last().expect("completed")["response"];
    assert_eq!(completed["status"], "completed");
    assert_eq!(
        completed["output"][0]["content"][0]["text"],
        deltas.as_str()
    );
    let u = &completed["usage"];
    let (input, output) = (
        u["input_tokens"].as_u64().expect("in"),
        u["output_tokens"].as_u64().expect("out"),
    );
    assert!(input > 10 && output > 0);
    assert_eq!(u["total_tokens"].as_u64(), Some(input + output));
    assert_eq!(u["input_tokens_details"]["cached_tokens"], 0);
    assert_eq!(u["output_tokens_details"]["reasoning_tokens"], 0);
    let c = sim.counters(&acct.id);
    assert_eq!((c.requests, c.completed, c.tokens), (1, 1, input + output));
    sim.shutdown().await;
}

#[tokio::test]
async fn reasoning_request_gets_summary_deltas_and_encrypted_content() {
    let sim = start(SimOptions {
        completed_output: true,
        ..SimOptions::default()
    })
    .await;
    let token = access_token(&sim.create_account(AccountSpec::default()).auth_json);
    let mut b = body("think first", true);
    b["reasoning"] = json!({"effort": "medium", "summary": "auto"});
    b["include"] = json!(["reasoning.encrypted_content"]);
    let ev = events(&post(&sim, &token, &b).await.text().await.expect("body"));
    let t = types(&ev);
    let first_summary = t
        .iter()
        .position(|x| *x == "response.reasoning_summary_text.delta")
        .expect("summary delta");
    let first_text = t
        .iter()
        .position(|x| *x == "response.output_text.delta")
        .expect("text delta");
    assert!(
        first_summary < first_text,
        "reasoning comes before the answer"
    );
    let completed = &ev.last().expect("completed")["response"];
    assert_eq!(completed["output"][0]["type"], "reasoning");
    assert!(completed["output"][0]["encrypted_content"].is_string());
    assert_eq!(completed["output"][1]["type"], "message");
    assert!(
        completed["usage"]["output_tokens_details"]["reasoning_tokens"]
            .as_u64()
            .expect("n")
            > 0
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn tool_use_is_deterministic_and_tool_output_is_quoted() {
    let sim = start(SimOptions::default()).await;
    let token = access_token(&sim.create_account(AccountSpec::default()).auth_json);
    let mut b = body("please use the tool exec_command to list files", true);
    b["tools"] = json!([{"type": "function", "name": "exec_command", "parameters": {}}]);
    let ev = events(&post(&sim, &token, &b).await.text().await.expect("body"));
    assert!(
        ev.iter()
            .any(|e| e["type"] == "response.function_call_arguments.delta" && e["delta"] == "{}")
    );
    assert!(ev.iter().any(|e| e["type"] == "response.function_call_arguments.done" && e["arguments"] == "{}"));
    let item = &ev
        .iter()
        .find(|e| e["type"] == "response.output_item.done")
        .expect("done")["item"];
    assert_eq!(item["type"], "function_call");
    assert_eq!(item["name"], "exec_command");
    assert_eq!(item["arguments"], "{}");
    let call_id = item["call_id"].as_str().expect("call id");
    let input = b["input"].as_array_mut().expect("input");
    input.push(item.clone());
    input.push(json!({"type": "function_call_output", "call_id": call_id, "output": "tool-ran"}));
    let ev = events(&post(&sim, &token, &b).await.text().await.expect("body"));
    let item = &ev
        .iter()
        .find(|e| e["type"] == "response.output_item.done")
        .expect("done")["item"];
    assert_eq!(
        item["content"][0]["text"],
        "Simulated answer: the tool returned: \"tool-ran\""
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn non_streaming_answer_is_the_final_response_object() {
    let sim = start(SimOptions {
        lenient: true,
        ..SimOptions::default()
    })
    .await;
    let token = access_token(&sim.create_account(AccountSpec::default()).auth_json);
    let mut b = body("hello", false);
    b["instructions"] = json!("Older CLIs send top-level instructions.");
    let resp = post(&sim, &token, &b).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("x-codex-primary-used-percent").is_some());
    let v: Value = resp.json().await.expect("json");
    assert_eq!(v["object"], "response");
    assert_eq!(v["status"], "completed");
    assert_eq!(v["output"][0]["type"], "message");
    assert!(v["usage"]["total_tokens"].as_u64().expect("total") > 0);
    sim.shutdown().await;
}

#[tokio::test]
async fn turn_state_is_echoed_and_answers_repeat_per_seed() {
    let sim = start(SimOptions {
        seed: 42,
        lenient: true,
        ..SimOptions::default()
    })
    .await;
    let token = access_token(&sim.create_account(AccountSpec::default()).auth_json);
    let resp = reqwest::Client::new()
        .post(format!("{}/codex/responses", sim.backend_url()))
        .bearer_auth(&token)
        .header("x-codex-turn-state", "ts-from-client")
        .json(&body("same question", false))
        .send()
        .await
        .expect("sent");
    assert_eq!(header(&resp, "x-codex-turn-state"), "ts-from-client");
    let a: Value = resp.json().await.expect("json");
    let b: Value = post(&sim, &token, &body("same question", false))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(a["output"][0]["content"], b["output"][0]["content"]);
    sim.shutdown().await;
}

#[tokio::test]
async fn usage_limit_429_body_and_headers_are_exact() {
    let sim = start(SimOptions::default()).await;
    let acct = sim.create_account(AccountSpec {
        plan: Some("pro".into()),
        ..AccountSpec::default()
    });
    let token = access_token(&acct.auth_json);
    sim.set_usage(&acct.id, 100.0, 20.0);
    let resp = post(&sim, &token, &body("hi", true)).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(header(&resp, "x-codex-active-limit"), "codex");
    assert_eq!(header(&resp, "x-codex-primary-used-percent"), "100");
    assert_eq!(header(&resp, "x-codex-secondary-used-percent"), "20");
    let reset_header: i64 = header(&resp, "x-codex-primary-reset-at")
        .parse()
        .expect("int");
    let v: Value = resp.json().await.expect("json");
    let err = v["error"].as_object().expect("error object");
    let mut keys: Vec<&str> = err.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        ["plan_type", "resets_at", "resets_in_seconds", "type"]
    );
    assert_eq!(v.as_object().expect("obj").len(), 1);
    assert_eq!(err["type"], "usage_limit_reached");
    assert_eq!(err["plan_type"], "pro");
    assert_eq!(err["resets_at"], reset_header);
    let secs = err["resets_in_seconds"].as_i64().expect("int");
    assert!(
        (17_990..=18_000).contains(&secs),
        "a fresh 5 h window: {secs}"
    );
    assert_eq!(sim.counters(&acct.id).served_429, 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn spark_models_use_the_bengalfox_family_and_its_own_limit() {
    let sim = start(SimOptions::default()).await;
    let acct = sim.create_account(AccountSpec {
        extra_quota_tokens: Some(1_000),
        ..AccountSpec::default()
    });
    let token = access_token(&acct.auth_json);
    let mut b = body("hi", true);
    b["model"] = json!("gpt-5.3-codex-spark");
    let resp = post(&sim, &token, &b).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        header(&resp, "x-codex-bengalfox-primary-window-minutes"),
        "300"
    );
    assert!(
        header(&resp, "x-codex-bengalfox-primary-used-percent")
            .parse::<f64>()
            .expect("f")
            > 0.0
    );
    sim.set_extra_usage(&acct.id, 100.0);
    let resp = post(&sim, &token, &b).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(header(&resp, "x-codex-active-limit"), "codex_bengalfox");
    assert_eq!(
        post(&sim, &token, &body("hi", true)).await.status(),
        200,
        "other models unaffected"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn quota_fills_with_tokens_and_resets_when_the_scaled_window_passes() {
    // 18000 s / 9000 = a 2 s primary window; tokens live 100 h / 9000 = 40 s.
    let opts = SimOptions {
        time_scale: 9000.0,
        primary_quota_tokens: 400,
        access_token_ttl: std::time::Duration::from_secs(100 * 3600),
        ..SimOptions::default()
    };
    let sim = start(opts).await;
    let acct = sim.create_account(AccountSpec::default());
    let token = access_token(&acct.auth_json);
    let mut last_percent = 0.0;
    let mut served = 0;
    let reset_at = loop {
        let resp = post(&sim, &token, &body("fill the window", true)).await;
        let pct: f64 = header(&resp, "x-codex-primary-used-percent")
            .parse()
            .expect("f");
        if resp.status() == 429 {
            let v: Value = resp.json().await.expect("json");
            break v["error"]["resets_at"].as_i64().expect("resets_at");
        }
        assert!(
            pct > last_percent,
            "fills in proportion to tokens: {pct} after {last_percent}"
        );
        last_percent = pct;
        served += 1;
        assert!(served < 20, "the window must fill");
    };
    assert!(served >= 2);
    assert!(sim.counters(&acct.id).tokens >= 400);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    assert!(
        reset_at >= now && reset_at <= now + 3,
        "reset_at is real unix seconds: {reset_at} vs {now}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(2_100)).await;
    let resp = post(&sim, &token, &body("after the reset", true)).await;
    assert_eq!(resp.status(), 200);
    let pct: f64 = header(&resp, "x-codex-primary-used-percent")
        .parse()
        .expect("f");
    assert!(pct < last_percent, "a new window started: {pct}");
    sim.shutdown().await;
}
