//! Errors before a translated stream starts, rendered in the client's protocol. OpenAI clients
//! get the proxy's own rendering (the OpenAI shape, `Retry-After` where due); Anthropic clients
//! get `{"type":"error","error":{"type","message"}}` with the statuses of docs/predecessor.md §5.6 —
//! 529 `overloaded_error` when no account can serve, 429 `rate_limit_error` with
//! `Retry-After`, 504 `timeout_error` on a premature close.

use crate::http::errors::ApiError;
use crate::translate::Protocol;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// The response for an error in `protocol`.
pub(super) fn render(e: ApiError, protocol: Protocol) -> Response {
    match protocol {
        Protocol::Chat => e.into_response(),
        Protocol::Messages => anthropic(e),
    }
}

/// The Anthropic rendering of every `ApiError` (its headers are the error's own, see
/// [`ApiError::add_headers`]).
fn anthropic(e: ApiError) -> Response {
    let message = e.to_string();
    let (status, kind, message) = match &e {
        ApiError::Unauthorized => (401, "authentication_error", message),
        ApiError::Forbidden(_) => (403, "permission_error", message),
        ApiError::KeyRateLimited { .. } | ApiError::Exhausted { .. } => {
            (429, "rate_limit_error", message)
        }
        ApiError::BadRequest { message, param } => {
            let m = match param {
                Some(p) => format!("{p}: {message}"),
                None => message.clone(),
            };
            (400, "invalid_request_error", m)
        }
        ApiError::PayloadTooLarge { .. } => (413, "request_too_large", message),
        ApiError::NotFound { .. } | ApiError::ModelNotFound(_) => (404, "not_found_error", message),
        ApiError::MethodNotAllowed { .. } => (405, "invalid_request_error", message),
        ApiError::Unavailable(_) => (529, "overloaded_error", message),
        ApiError::Passthrough {
            status, message, ..
        } => (*status, "invalid_request_error", message.clone()),
        ApiError::Upstream {
            status,
            code,
            message,
        } => match (*status, *code) {
            (_, "no_available_accounts") | (503, _) => (529, "overloaded_error", message.clone()),
            (429, _) => (429, "rate_limit_error", message.clone()),
            (s, _) => (s, "api_error", message.clone()),
        },
        ApiError::PrematureClose(_) | ApiError::Timeout(_) => (504, "timeout_error", message),
        ApiError::Internal => (500, "api_error", message),
    };
    let body = json!({"type": "error", "error": {"type": kind, "message": message}});
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut resp = (status, axum::Json(body)).into_response();
    e.add_headers(resp.headers_mut());
    resp
}
