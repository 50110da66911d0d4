//! A WebSocket upgrade on the Responses path answers **426 Upgrade Required**.
//!
//! The Codex CLI opens `GET …/responses` with `Upgrade: websocket` first; only a 426 makes it
//! fall back to `POST` at once, any other status is retried five times with backoff (about
//! 6 s of "Reconnecting…" per session; docs/protocol.md §13.3). codex-rotor serves Responses
//! over HTTP, so the upgrade is refused with 426 and every other wrong method keeps its 405.

use axum::extract::{OriginalUri, Request};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The router's wrong-method fallback: 426 for a WebSocket upgrade of `…/responses`, the
/// protocol's 405 for everything else.
pub async fn or_wrong_method(req: Request) -> Response {
    if is_responses_upgrade(req.method(), req.uri().path(), req.headers()) {
        return upgrade_required();
    }
    let method = req.method().clone();
    let uri = req.uri().clone();
    let original = req
        .extensions()
        .get::<OriginalUri>()
        .cloned()
        .unwrap_or_else(|| OriginalUri(uri.clone()));
    crate::translate::route::wrong_method(method, uri, original).await
}

/// `GET …/responses` asking to become a WebSocket.
fn is_responses_upgrade(method: &Method, path: &str, headers: &HeaderMap) -> bool {
    method == Method::GET
        && path.ends_with("/responses")
        && headers
            .get(header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("websocket"))
}

/// The 426 answer, in the OpenAI error shape, saying what to use instead.
fn upgrade_required() -> Response {
    let body = serde_json::json!({"error": {
        "message": "codex-rotor serves the Responses API over HTTP: send POST …/responses \
                    (WebSocket transport is not supported)",
        "type": "invalid_request_error",
        "param": null,
        "code": "websocket_not_supported",
    }});
    (StatusCode::UPGRADE_REQUIRED, axum::Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn only_a_websocket_get_of_the_responses_path_is_an_upgrade() {
        let mut ws = HeaderMap::new();
        ws.insert(header::UPGRADE, HeaderValue::from_static("WebSocket"));
        assert!(is_responses_upgrade(&Method::GET, "/v1/responses", &ws));
        assert!(is_responses_upgrade(&Method::GET, "/pool/responses", &ws));
        assert!(!is_responses_upgrade(
            &Method::GET,
            "/v1/responses",
            &HeaderMap::new()
        ));
        assert!(!is_responses_upgrade(&Method::DELETE, "/v1/responses", &ws));
        assert!(!is_responses_upgrade(&Method::GET, "/v1/models", &ws));
    }
}
