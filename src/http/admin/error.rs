//! The one error type of the admin API and dashboard handlers. Every failure renders as JSON
//! `{"error": {"type": "...", "message": "..."}}` with a fitting 4xx/5xx status, so scripts and
//! the dashboard can show the message as is. Messages never contain a key or a token.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Why an admin request failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No admin key (or session) was presented, or it was wrong.
    #[error("{0}")]
    Unauthorized(String),
    /// The admin API is switched off in config.
    #[error("the admin API is disabled (admin.enabled = false)")]
    Disabled,
    /// No account has that id.
    #[error("no account with id {0:?}")]
    NoSuchAccount(String),
    /// No admin endpoint at that path.
    #[error("no admin endpoint at {0}")]
    NoRoute(String),
    /// The path exists but not with this method.
    #[error("{0} is not allowed here")]
    MethodNotAllowed(String),
    /// The request itself is malformed (bad JSON, bad parameter, nothing to import…).
    #[error("{0}")]
    BadRequest(String),
    /// Too many wrong admin keys from this client address lately (`admin.auth_failure_*`).
    #[error("too many wrong admin keys from this address; try again in {retry_after_secs}s")]
    Throttled {
        /// Seconds until one more attempt is allowed (also sent as `Retry-After`).
        retry_after_secs: u64,
    },
    /// A state-changing request from the dashboard lacked its CSRF header.
    #[error("missing x-rotor-csrf header on a state-changing dashboard request")]
    Csrf,
    /// The body is larger than `server.max_body_bytes` (the message names the limit).
    #[error("{0}")]
    TooLarge(String),
    /// The pool refused or failed the operation.
    #[error("{0}")]
    Pool(String),
}

impl AdminError {
    /// HTTP status and machine-readable type of this error.
    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            AdminError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            AdminError::Disabled => (StatusCode::NOT_FOUND, "admin_disabled"),
            AdminError::NoSuchAccount(_) => (StatusCode::NOT_FOUND, "not_found"),
            AdminError::NoRoute(_) => (StatusCode::NOT_FOUND, "not_found"),
            AdminError::MethodNotAllowed(_) => {
                (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
            }
            AdminError::BadRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            AdminError::Throttled { .. } => (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts"),
            AdminError::Csrf => (StatusCode::FORBIDDEN, "csrf"),
            AdminError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "request_too_large"),
            AdminError::Pool(_) => (StatusCode::CONFLICT, "pool_error"),
        }
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let (status, kind) = self.parts();
        let body = json!({ "error": { "type": kind, "message": self.to_string() } });
        let mut resp = (status, Json(body)).into_response();
        if let AdminError::Throttled { retry_after_secs } = self {
            resp.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(retry_after_secs),
            );
        }
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"codex-rotor admin\""),
            );
        }
        resp
    }
}

/// Turns a malformed JSON body or query string into a clear 400 instead of axum's plain-text
/// rejection.
impl From<axum::extract::rejection::JsonRejection> for AdminError {
    fn from(e: axum::extract::rejection::JsonRejection) -> Self {
        AdminError::BadRequest(format!("invalid JSON body: {}", e.body_text()))
    }
}

impl From<axum::extract::rejection::QueryRejection> for AdminError {
    fn from(e: axum::extract::rejection::QueryRejection) -> Self {
        AdminError::BadRequest(format!("invalid query string: {}", e.body_text()))
    }
}
