//! The error policy of the HTTP front end, in one place.
//!
//! - Boundaries (config, store, upstream, translate) return their own `thiserror` types.
//! - Handlers return [`ApiError`], which renders *in the client's protocol*. This file renders
//!   the OpenAI/Responses shape `{"error":{"message","type","param","code"}}` used by
//!   `/v1/responses`, `/v1/models` and `/v1/chat/completions`; the Anthropic shape is rendered
//!   by the translate module's own functions from the same variants.
//! - `anyhow` is only used in wiring (`serve`, `demo`, `main`).
//!
//! Two rules live here (docs/quota.md rule 6, docs/failures.md): an exhausted pool answers **429**
//! `usage_limit_reached` with `resets_at`/`resets_in_seconds` and a `Retry-After` header (never
//! 401), and an upstream answer that is the request's own fault (400/404/422) is returned to
//! the client exactly as upstream sent it.
//!
//! A refused key (401/403) carries `x-should-retry: false`, in every protocol: both SDKs obey
//! it, and without it Claude Code retries a 401 with backoff for minutes, looking hung (issue
//! 15 item 13; the Codex CLI reconnects five times whatever the header says, then gives up).

use crate::request_body::{BodyError, DecodeError, limit_text};
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::json;

/// Every way a request can fail at the edge of the daemon.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No client key, or an unknown one.
    #[error(
        "invalid or missing API key: send one of this codex-rotor daemon's client keys as \
         `Authorization: Bearer <key>` or `x-api-key: <key>`"
    )]
    Unauthorized,
    /// The key exists but is disabled, or may not use this model.
    #[error("{0}")]
    Forbidden(String),
    /// The client key's own rate limit (rpm / concurrency) was hit — not the pool's quota.
    #[error("client key rate limit exceeded")]
    KeyRateLimited {
        /// Seconds until the key may send again.
        retry_after_secs: u64,
    },
    /// The request body is malformed; `param` names the offending field.
    #[error("{message}")]
    BadRequest {
        /// What is wrong, for a human.
        message: String,
        /// The JSON field at fault, when known.
        param: Option<String>,
    },
    /// The body exceeds `server.max_body_bytes` (as sent, or once decompressed: `decoded`);
    /// the message states the limit.
    #[error(
        "{}request body is larger than the limit of {} (server.max_body_bytes)",
        if *decoded { "the decompressed " } else { "" },
        limit_text(*limit)
    )]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
        /// The limit was passed while decompressing a smaller body (`Content-Encoding`).
        decoded: bool,
    },
    /// No endpoint at this path (a wrong base URL is the usual cause, hence the list).
    #[error(
        "no endpoint at {method} {path}; codex-rotor serves POST /v1/responses, \
         POST /v1/chat/completions, POST /v1/messages and GET /v1/models"
    )]
    NotFound {
        /// The request's method.
        method: String,
        /// The request's path.
        path: String,
    },
    /// `GET /v1/models/{id}` for a model this daemon neither advertises nor maps.
    #[error("the model `{0}` does not exist or is not served by this codex-rotor pool")]
    ModelNotFound(String),
    /// The path exists but not with this method (the answer's `Allow` header lists those it has).
    #[error("{method} is not allowed on {path} (see the Allow header)")]
    MethodNotAllowed {
        /// The request's method.
        method: String,
        /// The request's path.
        path: String,
    },
    /// Every account that could serve this model is out of quota (docs/quota.md rule 6).
    #[error("all accounts have reached their usage limit")]
    Exhausted {
        /// Soonest reset in the pool, unix seconds.
        resets_at: Option<i64>,
        /// Seconds from now until `resets_at`.
        resets_in_seconds: Option<u64>,
    },
    /// No usable account for a reason other than quota (all disabled, all expired, …).
    #[error("no available account: {0}")]
    Unavailable(String),
    /// The upstream answered with the request's fault (400/404/422): passed through as is.
    #[error("upstream rejected the request with status {status}")]
    Passthrough {
        /// Upstream status code.
        status: u16,
        /// Upstream `content-type`, if any.
        content_type: Option<HeaderValue>,
        /// Upstream body, unchanged.
        body: Bytes,
        /// What the body says ([`crate::upstream::evidence::Evidence::message`]), for a
        /// protocol that cannot carry the body itself.
        message: String,
        /// The body's `error.code`, as the classifier read it
        /// ([`crate::upstream::classify::Said`]).
        code: Option<String>,
    },
    /// Upstream failed in a way the daemon could not route around (after failover).
    #[error("{message}")]
    Upstream {
        /// Status to answer with (502, 503, 500 …).
        status: u16,
        /// Machine-readable code, e.g. `codex_api_error`, `cloudflare_challenge`.
        code: &'static str,
        /// What happened, for a human.
        message: String,
    },
    /// Upstream closed the stream without a terminal event (non-streaming request): fail fast.
    #[error("{0}")]
    PrematureClose(String),
    /// An internal bound (actor call, first byte) expired.
    #[error("{0}")]
    Timeout(String),
    /// A bug or an unexpected internal failure; details are in the log, not the answer.
    #[error("internal error")]
    Internal,
}

impl ApiError {
    /// Builds the exhaustion error from the pool's soonest reset (unix ms) and `now` (unix ms).
    pub fn exhausted(soonest_reset_ms: Option<i64>, now_ms: i64) -> Self {
        let resets_at = soonest_reset_ms.map(|ms| ms.div_euclid(1000));
        let resets_in_seconds = soonest_reset_ms.map(|ms| {
            u64::try_from((ms - now_ms).max(0))
                .unwrap_or(0)
                .div_ceil(1000)
        });
        ApiError::Exhausted {
            resets_at,
            resets_in_seconds,
        }
    }

    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        let code = match self {
            ApiError::Unauthorized => 401,
            ApiError::Forbidden(_) => 403,
            ApiError::KeyRateLimited { .. } | ApiError::Exhausted { .. } => 429,
            ApiError::BadRequest { .. } => 400,
            ApiError::PayloadTooLarge { .. } => 413,
            ApiError::NotFound { .. } | ApiError::ModelNotFound(_) => 404,
            ApiError::MethodNotAllowed { .. } => 405,
            ApiError::Unavailable(_) => 503,
            ApiError::Passthrough { status, .. } | ApiError::Upstream { status, .. } => *status,
            ApiError::PrematureClose(_) => 504,
            ApiError::Timeout(_) => 504,
            ApiError::Internal => 500,
        };
        StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY)
    }

    /// `(type, code)` of the OpenAI error object.
    fn kind(&self) -> (&'static str, &'static str) {
        match self {
            ApiError::Unauthorized => ("invalid_request_error", "invalid_api_key"),
            ApiError::Forbidden(_) => ("permission_error", "forbidden"),
            ApiError::KeyRateLimited { .. } => ("rate_limit_error", "rate_limit_exceeded"),
            ApiError::BadRequest { .. } => ("invalid_request_error", "invalid_request"),
            ApiError::PayloadTooLarge { .. } => ("invalid_request_error", "payload_too_large"),
            ApiError::NotFound { .. } => ("invalid_request_error", "not_found"),
            ApiError::ModelNotFound(_) => ("invalid_request_error", "model_not_found"),
            ApiError::MethodNotAllowed { .. } => ("invalid_request_error", "method_not_allowed"),
            ApiError::Exhausted { .. } => ("usage_limit_reached", "usage_limit_reached"),
            ApiError::Unavailable(_) => ("server_error", "no_available_accounts"),
            ApiError::Passthrough { .. } => ("invalid_request_error", "upstream_rejected"),
            ApiError::Upstream { code, .. } => ("server_error", code),
            ApiError::PrematureClose(_) => ("server_error", "upstream_premature_close"),
            ApiError::Timeout(_) => ("server_error", "timeout"),
            ApiError::Internal => ("server_error", "internal_error"),
        }
    }

    /// Seconds for a `Retry-After` header, when the client should come back later.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::KeyRateLimited { retry_after_secs } => Some((*retry_after_secs).max(1)),
            ApiError::Exhausted {
                resets_in_seconds, ..
            } => Some(
                resets_in_seconds
                    .unwrap_or(rotor_actors::quota::DEFAULT_429_BACKOFF.as_secs())
                    .max(1),
            ),
            _ => None,
        }
    }

    /// The headers this error adds to its answer in every protocol: `Retry-After` when the
    /// client should come back later; for a refused key, `x-should-retry: false` (retrying
    /// cannot help) and, on 401, `WWW-Authenticate`.
    pub fn add_headers(&self, headers: &mut HeaderMap) {
        if let Some(secs) = self.retry_after() {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if matches!(self, ApiError::Unauthorized | ApiError::Forbidden(_)) {
            headers.insert("x-should-retry", HeaderValue::from_static("false"));
        }
        if matches!(self, ApiError::Unauthorized) {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"codex-rotor\""),
            );
        }
    }

    /// The OpenAI/Responses-shaped JSON body (not used for [`ApiError::Passthrough`]).
    pub fn openai_body(&self) -> serde_json::Value {
        let (kind, code) = self.kind();
        let message = self.to_string();
        match self {
            ApiError::Exhausted {
                resets_at,
                resets_in_seconds,
            } => json!({"error": {
                "type": kind, "code": code, "message": message,
                "resets_at": resets_at, "resets_in_seconds": resets_in_seconds,
            }}),
            ApiError::BadRequest { param, .. } => {
                json!({"error": {"message": message, "type": kind, "param": param, "code": code}})
            }
            _ => json!({"error": {"message": message, "type": kind, "param": null, "code": code}}),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut extra = HeaderMap::new();
        self.add_headers(&mut extra);
        let mut resp = match self {
            ApiError::Passthrough {
                content_type, body, ..
            } => {
                let mut r = Response::new(Body::from(body));
                if let Some(ct) = content_type {
                    r.headers_mut().insert(header::CONTENT_TYPE, ct);
                }
                r
            }
            other => {
                let mut r = Response::new(Body::from(other.openai_body().to_string()));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                r
            }
        };
        *resp.status_mut() = status;
        resp.headers_mut().extend(extra);
        resp
    }
}

/// A body the daemon would not read: too large (413, naming the limit) or broken (400).
impl From<BodyError> for ApiError {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::TooLarge { limit } => ApiError::PayloadTooLarge {
                limit,
                decoded: false,
            },
            BodyError::Broken(message) => ApiError::BadRequest {
                message,
                param: None,
            },
        }
    }
}

/// A body whose `Content-Encoding` could not be undone: 413 when it inflates past the limit,
/// else 400 saying why.
impl From<DecodeError> for ApiError {
    fn from(e: DecodeError) -> Self {
        match e {
            DecodeError::TooLarge { limit } => ApiError::PayloadTooLarge {
                limit,
                decoded: true,
            },
            other => ApiError::BadRequest {
                message: other.to_string(),
                param: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn render(e: ApiError) -> (u16, Option<String>, serde_json::Value) {
        let r = e.into_response();
        let status = r.status().as_u16();
        let ra = r
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap_or_default().to_owned());
        let body = axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .unwrap_or_default();
        (
            status,
            ra,
            serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
        )
    }

    #[tokio::test]
    async fn exhausted_is_429_with_reset_and_retry_after() {
        let (status, ra, body) =
            render(ApiError::exhausted(Some(1_000_090_500), 1_000_000_000)).await;
        assert_eq!(status, 429);
        assert_eq!(ra.as_deref(), Some("91"));
        assert_eq!(body["error"]["type"], "usage_limit_reached");
        assert_eq!(body["error"]["resets_at"], 1_000_090);
        assert_eq!(body["error"]["resets_in_seconds"], 91);
    }

    #[tokio::test]
    async fn exhausted_without_reset_still_says_when_to_retry() {
        let (status, ra, body) = render(ApiError::exhausted(None, 5)).await;
        assert_eq!(status, 429);
        assert_eq!(ra.as_deref(), Some("60"));
        assert!(body["error"]["resets_at"].is_null());
    }

    #[tokio::test]
    async fn unavailable_is_503_with_reason() {
        let (status, ra, body) =
            render(ApiError::Unavailable("all 3 accounts are disabled".into())).await;
        assert_eq!(status, 503);
        assert_eq!(ra, None);
        assert_eq!(body["error"]["code"], "no_available_accounts");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("disabled")
        );
    }

    #[tokio::test]
    async fn passthrough_keeps_status_and_body() {
        let e = ApiError::Passthrough {
            status: 404,
            content_type: Some(HeaderValue::from_static("application/json")),
            body: Bytes::from_static(br#"{"detail":"model not found"}"#),
            message: "model not found".into(),
            code: None,
        };
        let (status, _, body) = render(e).await;
        assert_eq!(status, 404);
        assert_eq!(body["detail"], "model not found");
    }

    #[tokio::test]
    async fn unauthorized_is_401_invalid_api_key() {
        let (status, _, body) = render(ApiError::Unauthorized).await;
        assert_eq!(status, 401);
        assert_eq!(body["error"]["code"], "invalid_api_key");
        let r = ApiError::Unauthorized.into_response();
        assert_eq!(r.headers()["x-should-retry"], "false");
        assert!(r.headers().contains_key("www-authenticate"));
    }
}
