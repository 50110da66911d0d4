//! The request bodies the real backend refuses (issue 17 item 1, the corpus in
//! `tests/fixtures/upstream/`), refused the same way: `store` not `false`, `stream` not `true`,
//! a string `input`, a parameter the backend does not take, a tool name or call id longer than
//! 64 characters, a `system`-role `input` item (reported only, see the corpus README), and
//! reasoning encrypted by another account. On unless
//! [`super::SimOptions::lenient`] (the simulator's own tests of its JSON answer).
//!
//! Encrypted reasoning is minted per account: the opaque blob carries a keyed hash of the
//! account id ([`mint`]), and a blob another account minted — or one the simulator never
//! minted — is refused as `invalid_encrypted_content`, as the real backend refuses it.

use super::corpus;
use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Parameters the backend answers with `400 Unsupported parameter: NAME`.
pub(crate) const UNSUPPORTED: &[&str] = &[
    "max_output_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "truncation",
    "user",
    "metadata",
    "safety_identifier",
    "context_management",
    "prompt_cache_retention",
    "context_window",
    "max_context_window",
    "truncation_policy",
];

/// How every encrypted blob begins (the real ones are Fernet tokens).
const PREFIX: &str = "gAAAAB";

/// The answer to a body the real backend would refuse, if it would. `account` is the caller.
pub(crate) fn refusal(body: &Value, seed: u64, account: &str) -> Option<Response> {
    let bad = |b: String| Some(corpus::answer(StatusCode::BAD_REQUEST, b));
    if body.get("store") != Some(&Value::Bool(false)) {
        return bad(corpus::STORE_MUST_BE_FALSE.into());
    }
    if body.get("stream") != Some(&Value::Bool(true)) {
        return bad(corpus::STREAM_MUST_BE_TRUE.into());
    }
    if body.get("input").is_some_and(Value::is_string) {
        return bad(corpus::INPUT_MUST_BE_A_LIST.into());
    }
    if let Some(p) = UNSUPPORTED.iter().find(|p| body.get(**p).is_some()) {
        return bad(corpus::with(
            corpus::UNSUPPORTED_PARAMETER,
            "max_output_tokens",
            p,
        ));
    }
    if let Some((path, len)) = too_long(body) {
        let b = corpus::with(corpus::STRING_ABOVE_MAX_LENGTH, "input[0].name", &path);
        let b = corpus::with(&b, "input[0].name", &path);
        return bad(corpus::with(&b, "length 65", &format!("length {len}")));
    }
    let items = body.get("input").and_then(Value::as_array);
    if items
        .into_iter()
        .flatten()
        .any(|i| i.get("role").and_then(Value::as_str) == Some("system"))
    {
        return bad(corpus::SYSTEM_ROLE_IN_INPUT.into());
    }
    for item in items.into_iter().flatten() {
        if item.get("type").and_then(Value::as_str) != Some("reasoning") {
            continue;
        }
        if let Some(blob) = item.get("encrypted_content").and_then(Value::as_str)
            && !minted_by(seed, account, blob)
        {
            return bad(corpus::INVALID_ENCRYPTED_CONTENT.into());
        }
    }
    None
}

/// The answer to a request for a model whose minimum Codex version (`(model, version)` in
/// `minimums`) is above the request's `version` header, or the header is missing.
pub(crate) fn too_old(
    minimums: &[(String, String)],
    body: &Value,
    headers: &axum::http::HeaderMap,
) -> Option<Response> {
    let model = body.get("model").and_then(Value::as_str)?;
    let (_, need) = minimums.iter().find(|(m, _)| m == model)?;
    let have = headers.get("version").and_then(|v| v.to_str().ok());
    if have.is_some_and(|h| !older(h, need)) {
        return None;
    }
    let b = corpus::with(corpus::REQUIRES_NEWER_CODEX, "gpt-5.5", model);
    Some(corpus::answer(StatusCode::BAD_REQUEST, b))
}

/// Whether Codex version `have` is older than `need`: dotted numbers compared in order, a
/// pre-release (`0.130.0-alpha.5`) older than its release; an unreadable `have` is old.
fn older(have: &str, need: &str) -> bool {
    let parse = |v: &str| {
        let (core, pre) = v.split_once('-').map_or((v, None), |(c, p)| (c, Some(p)));
        let nums: Option<Vec<u64>> = core.split('.').map(|n| n.parse().ok()).collect();
        nums.map(|n| (n, pre.is_none()))
    };
    match (parse(have), parse(need)) {
        (Some(h), Some(n)) => h < n,
        _ => true,
    }
}

/// The first tool name or call id over the limit: its path and length.
fn too_long(body: &Value) -> Option<(String, usize)> {
    let long = |v: Option<&Value>| {
        v.and_then(Value::as_str)
            .map(|s| s.chars().count())
            .filter(|n| *n > corpus::MAX_ID_LEN)
    };
    let tools = body.get("tools").and_then(Value::as_array);
    for (i, t) in tools.into_iter().flatten().enumerate() {
        if let Some(n) = long(t.get("name")) {
            return Some((format!("tools[{i}].name"), n));
        }
    }
    let items = body.get("input").and_then(Value::as_array);
    for (i, item) in items.into_iter().flatten().enumerate() {
        for field in ["name", "call_id"] {
            if let Some(n) = long(item.get(field)) {
                return Some((format!("input[{i}].{field}"), n));
            }
        }
    }
    None
}

/// The keyed hash that ties a blob to its account.
fn tag(seed: u64, account: &str) -> String {
    let mut h = Sha256::new();
    h.update(seed.to_le_bytes());
    h.update(b"sim-reasoning:");
    h.update(account.as_bytes());
    h.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The `encrypted_content` of a reasoning item `account` is served in answer `response_id`.
pub(crate) fn mint(seed: u64, account: &str, response_id: &str) -> String {
    let inner = format!("sim:{}:{response_id}", tag(seed, account));
    format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(inner))
}

/// Whether `blob` was minted for `account`.
pub(crate) fn minted_by(seed: u64, account: &str, blob: &str) -> bool {
    let Some(inner) = blob
        .strip_prefix(PREFIX)
        .and_then(|b| URL_SAFE_NO_PAD.decode(b).ok())
    else {
        return false;
    };
    let inner = String::from_utf8_lossy(&inner);
    let mut parts = inner.splitn(3, ':');
    parts.next() == Some("sim") && parts.next() == Some(tag(seed, account).as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn valid() -> Value {
        json!({"model": "m", "store": false, "stream": true, "instructions": "i", "input": []})
    }

    async fn body_of(r: Response) -> (u16, String) {
        let status = r.status().as_u16();
        let b = axum::body::to_bytes(r.into_body(), 1 << 20)
            .await
            .expect("body");
        (status, String::from_utf8_lossy(&b).into_owned())
    }

    #[tokio::test]
    async fn each_refusal_has_the_real_body() {
        let cases = [
            (
                json!({"store": true}),
                r#"{"detail":"Store must be set to false"}"#.to_owned(),
            ),
            (
                json!({"stream": false}),
                r#"{"detail":"Stream must be set to true"}"#.into(),
            ),
            (
                json!({"input": "hi"}),
                r#"{"detail":"Input must be a list"}"#.into(),
            ),
            (
                json!({"temperature": 0.2}),
                r#"{"detail":"Unsupported parameter: temperature"}"#.into(),
            ),
            (
                json!({"input": [{"role": "user", "content": "hi"},
                    {"type": "message", "role": "system", "content": "be brief"}]}),
                corpus::SYSTEM_ROLE_IN_INPUT.into(),
            ),
        ];
        for (patch, want) in cases {
            let mut b = valid();
            for (k, v) in patch.as_object().expect("obj") {
                b[k] = v.clone();
            }
            let r = refusal(&b, 1, "a").expect("refused");
            assert_eq!(body_of(r).await, (400, want));
        }
        assert!(refusal(&valid(), 1, "a").is_none());
    }

    #[tokio::test]
    async fn long_names_and_foreign_reasoning_are_refused() {
        let mut b = valid();
        b["tools"] = json!([{"type": "function", "name": "x".repeat(65)}]);
        let (status, text) = body_of(refusal(&b, 1, "a").expect("long")).await;
        assert_eq!(status, 400);
        assert!(
            text.contains("tools[0].name") && text.contains("length 65"),
            "{text}"
        );
        let mine = mint(1, "a", "resp_1");
        let mut b = valid();
        b["input"] = json!([{"type": "reasoning", "summary": [], "encrypted_content": mine}]);
        assert!(refusal(&b, 1, "a").is_none());
        let (status, text) = body_of(refusal(&b, 1, "b").expect("foreign")).await;
        assert_eq!(
            (status, text.as_str()),
            (400, corpus::INVALID_ENCRYPTED_CONTENT)
        );
        assert!(!minted_by(1, "a", "gAAAAB-not-ours"));
    }

    #[test]
    fn versions_compare_by_number_and_a_pre_release_is_older() {
        assert!(older("0.129.9", "0.130.0"));
        assert!(older("0.9.0", "0.10.0"));
        assert!(older("0.130.0-alpha.5", "0.130.0"));
        assert!(older("garbage", "0.130.0"));
        assert!(!older("0.130.0", "0.130.0"));
        assert!(!older("0.131.0", "0.130.0"));
        assert!(!older("1.0.0", "0.130.0"));
    }
}
