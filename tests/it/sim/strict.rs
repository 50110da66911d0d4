//! The simulator is as strict as the real backend (issue 17 item 1): every refusal of
//! docs/protocol.md §13.1 and every answer of §13.2, each checked against its file in
//! `tests/fixtures/upstream/` (status, body, headers).

use super::{access_token, body, events, post, start};
use codex_rotor::sim::{AccountSpec, FaultKind, FaultSpec, FaultTarget, SimHandle, SimOptions};
use serde_json::{Value, json};
use std::time::Duration;

/// A corpus file's text.
fn corpus(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/upstream/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A corpus file's JSON (the data of an `.sse` file's event).
fn corpus_json(name: &str) -> Value {
    let text = corpus(name);
    let data = text
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .unwrap_or(&text);
    serde_json::from_str(data).expect("corpus JSON")
}

async fn account(sim: &SimHandle) -> (String, String) {
    let a = sim.create_account(AccountSpec::default());
    (a.id.clone(), access_token(&a.auth_json))
}

async fn status_and_json(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.expect("body");
    (status, serde_json::from_str(&text).expect("json body"))
}

#[tokio::test]
async fn store_stream_and_string_input_are_refused_with_the_real_bodies() {
    let sim = start(SimOptions::default()).await;
    let (_, token) = account(&sim).await;
    let mut no_store = body("hi", true);
    no_store.as_object_mut().expect("obj").remove("store");
    let mut store_true = body("hi", true);
    store_true["store"] = json!(true);
    let mut string_input = body("hi", true);
    string_input["input"] = json!("hi");
    for (b, file) in [
        (no_store, "store_must_be_false.json"),
        (store_true, "store_must_be_false.json"),
        (body("hi", false), "stream_must_be_true.json"),
        (string_input, "input_must_be_a_list.json"),
    ] {
        let got = status_and_json(post(&sim, &token, &b).await).await;
        assert_eq!(got, (400, corpus_json(file)), "{file}");
    }
    assert_eq!(post(&sim, &token, &body("hi", true)).await.status(), 200);
    sim.shutdown().await;
}

#[tokio::test]
async fn every_parameter_the_daemon_drops_is_refused_by_name() {
    let sim = start(SimOptions::default()).await;
    let (_, token) = account(&sim).await;
    let example = corpus("unsupported_parameter.json");
    for p in codex_rotor::internals::shape::UNSUPPORTED {
        let mut b = body("hi", true);
        b[*p] = json!(1);
        let want: Value =
            serde_json::from_str(&example.replace("max_output_tokens", p)).expect("json");
        assert_eq!(
            status_and_json(post(&sim, &token, &b).await).await,
            (400, want),
            "{p}"
        );
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn tool_names_and_call_ids_over_64_characters_are_refused() {
    let sim = start(SimOptions::default()).await;
    let (_, token) = account(&sim).await;
    let example = corpus_json("string_above_max_length.json");
    let long = "x".repeat(65);
    let mut tool = body("hi", true);
    tool["tools"] = json!([{"type": "function", "name": long, "parameters": {"type": "object"}}]);
    let mut call = body("hi", true);
    call["input"]
        .as_array_mut()
        .expect("input")
        .push(json!({"type": "function_call_output", "call_id": long, "output": "x"}));
    for (b, path) in [(tool, "tools[0].name"), (call, "input[2].call_id")] {
        let (status, got) = status_and_json(post(&sim, &token, &b).await).await;
        assert_eq!(status, 400);
        assert_eq!(got["error"]["code"], example["error"]["code"]);
        assert_eq!(got["error"]["type"], example["error"]["type"]);
        assert_eq!(got["error"]["param"], path);
    }
    let mut ok = body("hi", true);
    ok["tools"] = json!([{"type": "function", "name": "x".repeat(64)}]);
    assert_eq!(post(&sim, &token, &ok).await.status(), 200);
    sim.shutdown().await;
}

#[tokio::test]
async fn reasoning_encrypted_by_another_account_is_invalid_encrypted_content() {
    let sim = start(SimOptions::default()).await;
    let (_, a) = account(&sim).await;
    let (_, b) = account(&sim).await;
    let mut ask = body("think", true);
    ask["reasoning"] = json!({"effort": "low", "summary": "auto"});
    ask["include"] = json!(["reasoning.encrypted_content"]);
    let ev = events(&post(&sim, &a, &ask).await.text().await.expect("body"));
    let item = ev
        .iter()
        .find(|e| e["type"] == "response.output_item.done" && e["item"]["type"] == "reasoning")
        .expect("reasoning item")["item"]
        .clone();
    assert!(item["encrypted_content"].is_string());
    let mut replay = ask.clone();
    replay["input"].as_array_mut().expect("input").push(item);
    assert_eq!(post(&sim, &a, &replay).await.status(), 200, "own reasoning");
    assert_eq!(
        status_and_json(post(&sim, &b, &replay).await).await,
        (400, corpus_json("invalid_encrypted_content.json")),
        "another account's reasoning"
    );
    sim.shutdown().await;
}

/// A `system`-role item anywhere in `input` is refused with the corpus body (reported,
/// shape inferred); the same text as a `developer` item is served.
#[tokio::test]
async fn a_system_role_input_item_is_refused() {
    let sim = start(SimOptions::default()).await;
    let (_, token) = account(&sim).await;
    let mut b = body("hi", true);
    b["input"]
        .as_array_mut()
        .expect("input")
        .push(json!({"type": "message", "role": "system", "content": "be brief"}));
    assert_eq!(
        status_and_json(post(&sim, &token, &b).await).await,
        (400, corpus_json("system_role_in_input.json"))
    );
    b["input"][2]["role"] = json!("developer");
    assert_eq!(post(&sim, &token, &b).await.status(), 200);
    sim.shutdown().await;
}

#[tokio::test]
async fn completed_output_is_empty_by_default_as_upstream_sends_it() {
    let sim = start(SimOptions::default()).await;
    let (_, token) = account(&sim).await;
    let ev = events(
        &post(&sim, &token, &body("hi", true))
            .await
            .text()
            .await
            .expect("body"),
    );
    let completed = ev.last().expect("events");
    let example = corpus_json("completed_empty_output.sse");
    assert_eq!(completed["type"], example["type"]);
    assert_eq!(
        completed["response"]["status"],
        example["response"]["status"]
    );
    assert_eq!(
        completed["response"]["output"],
        example["response"]["output"]
    );
    assert!(
        ev.iter()
            .any(|e| e["type"] == "response.output_item.done" && e["item"]["type"] == "message"),
        "the items are in their own events"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn linger_keeps_the_connection_open_after_the_terminal_event() {
    let sim = start(SimOptions::default()).await;
    let (_, token) = account(&sim).await;
    sim.inject(FaultSpec::always(FaultKind::Linger { millis: 600 }).times(1));
    let mut resp = post(&sim, &token, &body("hi", true)).await;
    let mut text = String::new();
    while !text.contains("response.completed") {
        let chunk = resp.chunk().await.expect("chunk").expect("more");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let started = std::time::Instant::now();
    let open = tokio::time::timeout(Duration::from_millis(300), resp.chunk()).await;
    assert!(open.is_err(), "still open after the terminal event");
    while resp.chunk().await.expect("chunk").is_some() {}
    assert!(started.elapsed() >= Duration::from_millis(500));
    sim.shutdown().await;
}

#[tokio::test]
async fn mid_stream_failures_of_each_code_and_the_error_event() {
    let sim = start(SimOptions::default()).await;
    let (_, token) = account(&sim).await;
    for code in [
        "rate_limit_exceeded",
        "usage_limit_reached",
        "insufficient_quota",
        "context_length_exceeded",
        "cyber_policy",
        "invalid_prompt",
    ] {
        let kind = FaultKind::ResponseFailed {
            code: code.into(),
            after_events: 2,
        };
        sim.inject(FaultSpec::always(kind).times(1));
        let resp = post(&sim, &token, &body("hi", true)).await;
        assert_eq!(resp.status(), 200);
        let ev = events(&resp.text().await.expect("body"));
        assert_eq!(ev.len(), 3, "{code}");
        let last = &ev[2];
        let example = corpus_json(&format!("response_failed_{code}.sse"));
        assert_eq!(last["type"], "response.failed");
        assert_eq!(last["sequence_number"], 2);
        assert_eq!(last["response"]["error"], example["response"]["error"]);
        assert_eq!(last["response"]["status"], "failed");
        assert_eq!(last["response"]["id"], ev[0]["response"]["id"]);
    }
    sim.inject(
        FaultSpec::always(FaultKind::ErrorEvent {
            after_events: 1,
            code: None,
        })
        .times(1),
    );
    let ev = events(
        &post(&sim, &token, &body("hi", true))
            .await
            .text()
            .await
            .expect("body"),
    );
    let mut want = corpus_json("error_event.sse");
    want["sequence_number"] = json!(1);
    assert_eq!(ev.len(), 2);
    assert_eq!(ev[1], want);
    sim.shutdown().await;
}

/// One fault's answer to a responses request: status, headers, body text.
async fn answer_to(
    kind: FaultKind,
    target: FaultTarget,
) -> (u16, reqwest::header::HeaderMap, String) {
    let sim = start(SimOptions::default()).await;
    let (_, token) = account(&sim).await;
    sim.inject(FaultSpec::always(kind).on(target).times(1));
    let url = match target {
        FaultTarget::Usage => format!("{}/wham/usage", sim.backend_url()),
        _ => format!("{}/codex/responses", sim.backend_url()),
    };
    let client = reqwest::Client::new();
    let req = match target {
        FaultTarget::Usage => client.get(url),
        _ => client.post(url).json(&body("hi", true)),
    };
    let resp = req.bearer_auth(&token).send().await.expect("sent");
    let out = (
        resp.status().as_u16(),
        resp.headers().clone(),
        resp.text().await.expect("body"),
    );
    sim.shutdown().await;
    out
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).expect("json")
}

#[tokio::test]
async fn payment_required_forbidden_and_the_empty_404() {
    let (s, _, b) = answer_to(FaultKind::PaymentRequired, FaultTarget::Responses).await;
    assert_eq!(
        (s, json_of(&b)),
        (402, corpus_json("payment_required_402.json"))
    );
    let (s, h, b) = answer_to(FaultKind::Forbidden, FaultTarget::Responses).await;
    assert_eq!((s, json_of(&b)), (403, corpus_json("forbidden_403.json")));
    assert!(h.get("cf-mitigated").is_none(), "not Cloudflare's page");
    let (s, _, b) = answer_to(FaultKind::NotFoundEmpty, FaultTarget::Responses).await;
    assert_eq!((s, b.as_str()), (404, ""));
}

/// The refusal of another account's reasoning on demand, whatever the body carries (the
/// daemon's backstop test needs it twice in a row).
#[tokio::test]
async fn the_invalid_encrypted_content_fault_answers_the_real_body() {
    let (s, _, b) = answer_to(FaultKind::InvalidEncryptedContent, FaultTarget::Responses).await;
    assert_eq!(
        (s, json_of(&b)),
        (400, corpus_json("invalid_encrypted_content.json"))
    );
}

#[tokio::test]
async fn usage_limits_with_the_reset_in_headers_days_away_or_in_another_family() {
    let (s, h, b) = answer_to(FaultKind::UsageLimitHeadersOnly, FaultTarget::Responses).await;
    assert_eq!(
        (s, json_of(&b)),
        (429, corpus_json("usage_limit_headers_only_429.json"))
    );
    assert_eq!(h["x-codex-active-limit"], "codex");
    assert!(
        h.get("x-codex-primary-reset-at").is_some(),
        "the reset is in the headers"
    );

    let (s, h, b) = answer_to(
        FaultKind::UsageLimitWeekly {
            resets_in_seconds: 471_284,
        },
        FaultTarget::Responses,
    )
    .await;
    let v = json_of(&b);
    let example = corpus_json("usage_limit_weekly_429.json");
    assert_eq!(s, 429);
    assert_eq!(v["error"]["type"], example["error"]["type"]);
    assert_eq!(
        v["error"]["resets_in_seconds"],
        example["error"]["resets_in_seconds"]
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let at = v["error"]["resets_at"].as_i64().expect("resets_at");
    assert!((at - now - 471_284).abs() <= 2, "{at}");
    assert_eq!(h["x-codex-active-limit"], "codex");

    let (s, h, b) = answer_to(
        FaultKind::OtherFamilyLimit {
            resets_in_seconds: 3600,
        },
        FaultTarget::Responses,
    )
    .await;
    assert_eq!(
        (s, json_of(&b)),
        (429, corpus_json("usage_limit_headers_only_429.json"))
    );
    assert_eq!(h["x-codex-active-limit"], "codex_other");
    assert_eq!(h["x-codex-other-primary-used-percent"], "100");
    let reset: i64 = h["x-codex-other-primary-reset-at"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("number");
    assert!((reset - now - 3600).abs() <= 2);

    let (s, _, b) = answer_to(FaultKind::UsageNotIncluded, FaultTarget::Responses).await;
    assert_eq!(
        (s, json_of(&b)),
        (429, corpus_json("usage_not_included_429.json"))
    );
}

#[tokio::test]
async fn usage_probe_with_a_null_rate_limit_and_a_403() {
    let (s, _, b) = answer_to(FaultKind::RateLimitNull, FaultTarget::Usage).await;
    assert_eq!(
        (s, json_of(&b)),
        (200, corpus_json("wham_usage_rate_limit_null.json"))
    );
    let (s, _, b) = answer_to(FaultKind::Forbidden, FaultTarget::Usage).await;
    assert_eq!((s, json_of(&b)), (403, corpus_json("wham_usage_403.json")));
}

#[tokio::test]
async fn the_new_faults_are_scripted_over_the_control_api_with_their_defaults() {
    let sim = start(SimOptions::default()).await;
    let (_, token) = account(&sim).await;
    let http = reqwest::Client::new();
    for spec in [
        json!({"kind": "response_failed", "code": "invalid_prompt", "count": 1}),
        json!({"kind": "usage_limit_weekly", "count": 1}),
    ] {
        let r = http
            .post(format!("{}/sim/faults", sim.base_url()))
            .json(&spec)
            .send()
            .await
            .expect("sent");
        assert_eq!(r.status(), 204, "{spec}");
    }
    let listed: Value = http
        .get(format!("{}/sim/faults", sim.base_url()))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(listed[0]["after_events"], 2);
    assert_eq!(listed[1]["resets_in_seconds"], 471_284);
    let ev = events(
        &post(&sim, &token, &body("hi", true))
            .await
            .text()
            .await
            .expect("body"),
    );
    assert_eq!(ev[2]["response"]["error"]["code"], "invalid_prompt");
    let (status, v) = status_and_json(post(&sim, &token, &body("hi", true)).await).await;
    assert_eq!(
        (status, &v["error"]["resets_in_seconds"]),
        (429, &json!(471_284))
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_model_refuses_a_missing_or_older_version_with_the_reported_body() {
    let sim = start(SimOptions {
        min_client_version: vec![("gpt-5.5".into(), "0.130.0".into())],
        ..SimOptions::default()
    })
    .await;
    let (_, token) = account(&sim).await;
    let send = |model: &str, version: Option<&str>| {
        let mut b = body("hi", true);
        b["model"] = json!(model);
        let mut r = reqwest::Client::new()
            .post(format!("{}/codex/responses", sim.backend_url()))
            .bearer_auth(&token)
            .json(&b);
        if let Some(v) = version {
            r = r.header("version", v);
        }
        r.send()
    };
    let refused = (400, corpus_json("requires_newer_codex.json"));
    for v in [None, Some("0.129.0"), Some("0.130.0-alpha.5")] {
        let got = status_and_json(send("gpt-5.5", v).await.expect("sent")).await;
        assert_eq!(got, refused, "{v:?}");
    }
    for v in ["0.130.0", "0.131.2"] {
        let r = send("gpt-5.5", Some(v)).await.expect("sent");
        assert_eq!(r.status(), 200, "{v}");
    }
    // A model without a minimum takes any identity, even none.
    assert_eq!(send("gpt-5.4", None).await.expect("sent").status(), 200);
    sim.shutdown().await;
}
