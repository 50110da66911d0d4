//! Turning a scripted [`FaultKind`] into what the client sees. Faults that replace the answer
//! (status codes, Cloudflare, reset) are rendered here; faults that shape an answer (premature
//! close, stall, a huge event or header) and silence are applied by the endpoint that streams.

use super::conn::ConnControl;
use super::options::FaultKind;
use super::reply;
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

/// What a fault does to a request on a connection.
pub(crate) fn effect(kind: FaultKind, conn: Option<&Arc<ConnControl>>) -> Effect {
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
        other @ (FaultKind::PrematureClose { .. }
        | FaultKind::Stall { .. }
        | FaultKind::HugeEvent { .. }
        | FaultKind::HugeHeader { .. }) => Effect::Stream(other),
    }
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
