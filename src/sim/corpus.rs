//! The real backend's answers, read from the corpus in `tests/fixtures/upstream/` (its README
//! names each file's public source and confidence). Every refusal and failure body the
//! simulator sends is built from these files, so the simulator cannot drift from them; the
//! names, paths and lengths the real backend puts in a body are written into the example's
//! place.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// `store` missing or not `false`.
pub(crate) const STORE_MUST_BE_FALSE: &str =
    include_str!("../../tests/fixtures/upstream/store_must_be_false.json");
/// `stream` not `true`.
pub(crate) const STREAM_MUST_BE_TRUE: &str =
    include_str!("../../tests/fixtures/upstream/stream_must_be_true.json");
/// `input` given as a string.
pub(crate) const INPUT_MUST_BE_A_LIST: &str =
    include_str!("../../tests/fixtures/upstream/input_must_be_a_list.json");
/// A parameter the backend does not take; the example names `max_output_tokens`.
pub(crate) const UNSUPPORTED_PARAMETER: &str =
    include_str!("../../tests/fixtures/upstream/unsupported_parameter.json");
/// A name or call id longer than [`MAX_ID_LEN`]; the example is `input[0].name`, 65 long.
pub(crate) const STRING_ABOVE_MAX_LENGTH: &str =
    include_str!("../../tests/fixtures/upstream/string_above_max_length.json");
/// An `input` item with `role: "system"` (reported, shape inferred).
pub(crate) const SYSTEM_ROLE_IN_INPUT: &str =
    include_str!("../../tests/fixtures/upstream/system_role_in_input.json");
/// Reasoning encrypted by another account.
pub(crate) const INVALID_ENCRYPTED_CONTENT: &str =
    include_str!("../../tests/fixtures/upstream/invalid_encrypted_content.json");
/// A model that requires a newer Codex than the request's `version`; the example names
/// `gpt-5.5`.
pub(crate) const REQUIRES_NEWER_CODEX: &str =
    include_str!("../../tests/fixtures/upstream/requires_newer_codex.json");
/// 402.
pub(crate) const PAYMENT_REQUIRED: &str =
    include_str!("../../tests/fixtures/upstream/payment_required_402.json");
/// A non-Cloudflare 403 on `/codex/responses`.
pub(crate) const FORBIDDEN: &str = include_str!("../../tests/fixtures/upstream/forbidden_403.json");
/// 429 usage limit whose reset is only in the headers.
pub(crate) const USAGE_LIMIT_HEADERS_ONLY: &str =
    include_str!("../../tests/fixtures/upstream/usage_limit_headers_only_429.json");
/// 429 usage limit with a weekly reset (times are the example's).
pub(crate) const USAGE_LIMIT_WEEKLY: &str =
    include_str!("../../tests/fixtures/upstream/usage_limit_weekly_429.json");
/// 429 `usage_not_included`.
pub(crate) const USAGE_NOT_INCLUDED: &str =
    include_str!("../../tests/fixtures/upstream/usage_not_included_429.json");
/// `/wham/usage` without a rate limit.
pub(crate) const WHAM_USAGE_RATE_LIMIT_NULL: &str =
    include_str!("../../tests/fixtures/upstream/wham_usage_rate_limit_null.json");
/// `/wham/usage` refused.
pub(crate) const WHAM_USAGE_FORBIDDEN: &str =
    include_str!("../../tests/fixtures/upstream/wham_usage_403.json");
/// A mid-stream `error` event.
pub(crate) const ERROR_EVENT: &str = include_str!("../../tests/fixtures/upstream/error_event.sse");

/// Longest tool name or call id the backend takes (the Responses API limit).
pub(crate) const MAX_ID_LEN: usize = 64;

/// The mid-stream `response.failed` event of `code`, from its corpus file; a code without a
/// file takes the `rate_limit_exceeded` example with its code and message replaced.
pub(crate) fn response_failed(code: &str) -> Value {
    let text = match code {
        "rate_limit_exceeded" => {
            include_str!("../../tests/fixtures/upstream/response_failed_rate_limit_exceeded.sse")
        }
        "usage_limit_reached" => {
            include_str!("../../tests/fixtures/upstream/response_failed_usage_limit_reached.sse")
        }
        "insufficient_quota" => {
            include_str!("../../tests/fixtures/upstream/response_failed_insufficient_quota.sse")
        }
        "context_length_exceeded" => include_str!(
            "../../tests/fixtures/upstream/response_failed_context_length_exceeded.sse"
        ),
        "cyber_policy" => {
            include_str!("../../tests/fixtures/upstream/response_failed_cyber_policy.sse")
        }
        "invalid_prompt" => {
            include_str!("../../tests/fixtures/upstream/response_failed_invalid_prompt.sse")
        }
        _ => {
            let mut v = event_data(include_str!(
                "../../tests/fixtures/upstream/response_failed_rate_limit_exceeded.sse"
            ));
            v["response"]["error"] = serde_json::json!({"code": code, "message": code});
            return v;
        }
    };
    event_data(text)
}

/// The JSON of a one-event SSE file.
pub(crate) fn event_data(sse: &str) -> Value {
    sse.lines()
        .find_map(|l| l.strip_prefix("data: "))
        .and_then(|d| serde_json::from_str(d).ok())
        .unwrap_or(Value::Null)
}

/// A corpus JSON body as an answer.
pub(crate) fn answer(status: StatusCode, body: impl Into<String>) -> Response {
    let mut r = (status, body.into()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// The corpus body `body` with the example `example` replaced by `actual`.
pub(crate) fn with(body: &str, example: &str, actual: &str) -> String {
    body.replacen(example, actual, 1)
}
