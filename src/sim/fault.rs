//! Turning a scripted [`FaultKind`] into what the client sees. Faults that replace the answer
//! (status codes, Cloudflare, reset) are rendered here; faults that shape an answer (premature
//! close, stall, a huge or split event or header) and silence are applied by the endpoint that streams.

use super::conn::ConnControl;
use super::corpus;
use super::options::{FaultKind, FaultTarget};
use super::reply::{self, put};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::sync::Arc;

/// How a fault changes the current request.
pub(crate) enum Effect {
    /// Answer this instead of the normal answer.
    Replace(Response),
    /// The connection is reset; this placeholder answer never reaches the client.
    Reset(Response),
    /// Wait this long before answering normally.
    Delay(std::time::Duration),
    /// Shape the answer (premature close, stall, a huge event or header); non-streaming
    /// endpoints treat a premature close as a reset.
    Stream(FaultKind),
}

/// What a fault does to a request of `target` on a connection, at unix ms `now`.
pub(crate) fn effect(
    kind: FaultKind,
    target: FaultTarget,
    conn: Option<&Arc<ConnControl>>,
    now: i64,
) -> Effect {
    match kind {
        FaultKind::RateLimit { retry_after_secs } => {
            let body = json!({"error": {
                "message": "Rate limit reached. Please try again later.",
                "type": "rate_limit_exceeded", "param": null, "code": "rate_limit_exceeded"}});
            let mut resp = reply::json_status(StatusCode::TOO_MANY_REQUESTS, body);
            if let Some(s) = retry_after_secs {
                reply::put(resp.headers_mut(), "retry-after", s);
            }
            Effect::Replace(resp)
        }
        FaultKind::ServerError => Effect::Replace(reply::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "server_error",
            "The server had an error while processing your request.",
        )),
        FaultKind::Overloaded => Effect::Replace(reply::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_is_overloaded",
            "server_error",
            "Our servers are currently overloaded. Please try again later.",
        )),
        FaultKind::Cloudflare => Effect::Replace(reply::cloudflare()),
        FaultKind::Silence { millis } => Effect::Delay(std::time::Duration::from_millis(millis)),
        FaultKind::Reset => Effect::Reset(reset(conn)),
        FaultKind::PaymentRequired => Effect::Replace(corpus::answer(
            StatusCode::PAYMENT_REQUIRED,
            corpus::PAYMENT_REQUIRED,
        )),
        FaultKind::Forbidden => Effect::Replace(corpus::answer(
            StatusCode::FORBIDDEN,
            match target {
                FaultTarget::Usage => corpus::WHAM_USAGE_FORBIDDEN,
                _ => corpus::FORBIDDEN,
            },
        )),
        FaultKind::NotFoundEmpty => Effect::Replace(StatusCode::NOT_FOUND.into_response()),
        FaultKind::UsageLimitHeadersOnly => {
            Effect::Replace(limit(corpus::USAGE_LIMIT_HEADERS_ONLY.into(), "codex"))
        }
        FaultKind::UsageLimitWeekly { resets_in_seconds } => {
            let mut body: serde_json::Value =
                serde_json::from_str(corpus::USAGE_LIMIT_WEEKLY).unwrap_or_default();
            body["error"]["resets_in_seconds"] = json!(resets_in_seconds);
            body["error"]["resets_at"] = json!(now / 1000 + resets_in_seconds as i64);
            Effect::Replace(limit(body.to_string(), "codex"))
        }
        FaultKind::OtherFamilyLimit { resets_in_seconds } => {
            let mut resp = limit(corpus::USAGE_LIMIT_HEADERS_ONLY.into(), "codex_other");
            let h = resp.headers_mut();
            put(h, "x-codex-other-primary-used-percent", 100);
            put(h, "x-codex-other-primary-window-minutes", 10_080);
            put(
                h,
                "x-codex-other-primary-reset-at",
                now / 1000 + resets_in_seconds as i64,
            );
            put(h, "x-codex-other-limit-name", "codex_other");
            Effect::Replace(resp)
        }
        FaultKind::UsageNotIncluded => Effect::Replace(corpus::answer(
            StatusCode::TOO_MANY_REQUESTS,
            corpus::USAGE_NOT_INCLUDED,
        )),
        FaultKind::RateLimitNull => Effect::Replace(corpus::answer(
            StatusCode::OK,
            corpus::WHAM_USAGE_RATE_LIMIT_NULL,
        )),
        FaultKind::InvalidEncryptedContent => Effect::Replace(corpus::answer(
            StatusCode::BAD_REQUEST,
            corpus::INVALID_ENCRYPTED_CONTENT,
        )),
        other @ (FaultKind::PrematureClose { .. }
        | FaultKind::Stall { .. }
        | FaultKind::HugeEvent { .. }
        | FaultKind::SplitEvent { .. }
        | FaultKind::HugeHeader { .. }
        | FaultKind::Linger { .. }
        | FaultKind::ResponseFailed { .. }
        | FaultKind::ErrorEvent { .. }) => Effect::Stream(other),
    }
}

/// A 429 usage-limit answer whose `x-codex-active-limit` names `family`.
fn limit(body: String, family: &'static str) -> Response {
    let mut resp = corpus::answer(StatusCode::TOO_MANY_REQUESTS, body);
    put(resp.headers_mut(), "x-codex-active-limit", family);
    resp
}

/// Arms a connection reset and returns a placeholder answer that will never be delivered.
pub(crate) fn reset(conn: Option<&Arc<ConnControl>>) -> Response {
    if let Some(c) = conn {
        c.reset();
    }
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        [(header::CONNECTION, "close")],
        "",
    )
        .into_response()
}
