//! The model routes: `GET /v1/models` (and `/models`) and `GET /v1/models/{id}`.
//!
//! Codex asks for its catalogue with `?client_version=…` and decodes only
//! `{"models":[ModelInfo…]}` (docs/protocol.md §13.3): that request gets upstream's catalogue,
//! fetched with one pool account and cached ([`crate::upstream::catalogue`]), with `ETag` and
//! `x-models-etag`, and 304 to a matching `If-None-Match`. Every other client gets the OpenAI
//! list of the models this daemon advertises (`models.list`); `GET /v1/models/{id}` answers one
//! of those, or an alias or the default model, and 404 `model_not_found` otherwise.

use super::auth;
use super::outcome::Outcome;
use crate::http::errors::ApiError;
use crate::http::middleware::RequestId;
use crate::http::state::AppState;
use crate::upstream::Creds;
use crate::upstream::catalogue::Catalogue;
use axum::Extension;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rotor_actors::PickRequest;
use std::time::Instant;

/// Largest catalogue body read from upstream (the real one is tens of KiB).
const MAX_CATALOGUE_BYTES: usize = 4 << 20;

/// `GET /v1/models`: Codex's catalogue when Codex asks, the OpenAI list otherwise.
pub async fn models(
    State(state): State<AppState>,
    id: Option<Extension<RequestId>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let mut out = Outcome::new(&state, "models", id);
    if let Some(refused) = refuse(&state, &headers, &mut out) {
        return refused;
    }
    if asks_for_codex_catalogue(query.as_deref()) {
        return codex_catalogue(&state, &headers, &mut out).await;
    }
    let cfg = state.config();
    let data: Vec<serde_json::Value> = cfg.models.list.iter().map(|m| model_object(m)).collect();
    out.finish(200, None);
    axum::Json(serde_json::json!({"object": "list", "data": data})).into_response()
}

/// `GET /v1/models/{id}`: one advertised, aliased or default model in the OpenAI shape.
pub async fn model(
    State(state): State<AppState>,
    id: Option<Extension<RequestId>>,
    Path(model): Path<String>,
    headers: HeaderMap,
) -> Response {
    let mut out = Outcome::new(&state, "models", id);
    if let Some(refused) = refuse(&state, &headers, &mut out) {
        return refused;
    }
    let cfg = state.config();
    let m = &cfg.models;
    let known = m.list.contains(&model)
        || m.default_model == model
        || m.aliases
            .keys()
            .any(|pattern| crate::config::pattern::matches(pattern, &model));
    if !known {
        let e = ApiError::ModelNotFound(model);
        out.finish(404, Some(e.to_string()));
        return e.into_response();
    }
    out.finish(200, None);
    axum::Json(model_object(&model)).into_response()
}

/// Authenticates a model route's request: the answer to send instead when refused (recorded).
fn refuse(state: &AppState, headers: &HeaderMap, out: &mut Outcome) -> Option<Response> {
    let e = auth::authenticate(state, headers).err()?;
    out.finish(e.status().as_u16(), Some(e.to_string()));
    Some(e.into_response())
}

/// The OpenAI model object for `id`.
fn model_object(id: &str) -> serde_json::Value {
    serde_json::json!({"id": id, "object": "model", "created": 0, "owned_by": "openai"})
}

/// Codex's catalogue request carries its version (`models?client_version=0.169.0`).
fn asks_for_codex_catalogue(query: Option<&str>) -> bool {
    query.is_some_and(|q| {
        q.split('&')
            .any(|kv| kv.split('=').next() == Some("client_version"))
    })
}

/// Serves the cached catalogue, fetching it first when it is missing or stale; a failed fetch
/// serves the previous one, or fails when there is none (Codex then uses its bundled list).
async fn codex_catalogue(state: &AppState, headers: &HeaderMap, out: &mut Outcome) -> Response {
    let cache = state.upstream().catalogue();
    let mut slot = cache.lock().await;
    if !slot.as_ref().is_some_and(|c| c.fresh(Instant::now())) {
        match fetch(state, out).await {
            Ok(c) => *slot = Some(c),
            Err(e) if slot.is_some() => {
                tracing::warn!(error = %e, "model catalogue refetch failed; serving the previous one");
            }
            Err(e) => {
                out.finish(e.status().as_u16(), Some(e.to_string()));
                return e.into_response();
            }
        }
    }
    let Some(c) = slot.clone() else {
        out.finish(500, Some("no catalogue".into()));
        return ApiError::Internal.into_response();
    };
    drop(slot);
    let tag = HeaderValue::from_str(&c.etag).ok();
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| c.matches(v));
    let mut resp = if not_modified {
        out.finish(304, None);
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        out.finish(200, None);
        let mut r = Response::new(Body::from(c.body));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        r
    };
    if let Some(tag) = tag {
        resp.headers_mut().insert(header::ETAG, tag.clone());
        resp.headers_mut().insert("x-models-etag", tag);
    }
    resp
}

/// One upstream catalogue fetch with a leased account (released when this returns).
async fn fetch(state: &AppState, out: &mut Outcome) -> Result<Catalogue, ApiError> {
    let pick = PickRequest {
        model: state.config().models.default_model.clone(),
        affinity: None,
        exclude: Vec::new(),
        review: false,
    };
    let lease = state
        .pool()
        .pick(pick)
        .await
        .map_err(|e| ApiError::Unavailable(format!("cannot fetch the model catalogue: {e}")))?;
    out.rec.account_id = Some(lease.account_id.clone());
    let creds = Creds {
        account: &lease.account_id,
        access_token: &lease.creds.access_token,
        chatgpt_account_id: lease.creds.chatgpt_account_id.as_deref(),
    };
    let unavailable = |message: String| ApiError::Upstream {
        status: 502,
        code: "catalogue_unavailable",
        message,
    };
    let resp = state
        .upstream()
        .models(creds)
        .await
        .map_err(|e| unavailable(format!("model catalogue fetch failed: {e}")))?;
    let status = resp.status().as_u16();
    let tag = resp
        .headers()
        .get("x-models-etag")
        .or_else(|| resp.headers().get(header::ETAG))
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = state
        .upstream()
        .read_all(resp, MAX_CATALOGUE_BYTES)
        .await
        .map_err(|e| unavailable(format!("model catalogue fetch failed: {e}")))?;
    Catalogue::from_answer(status, tag.as_deref(), body, Instant::now())
        .map_err(|e| unavailable(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::asks_for_codex_catalogue;

    #[test]
    fn only_a_request_with_client_version_asks_for_codex_s_catalogue() {
        assert!(asks_for_codex_catalogue(Some("client_version=0.169.0")));
        assert!(asks_for_codex_catalogue(Some("a=1&client_version")));
        assert!(!asks_for_codex_catalogue(Some("client_versions=1")));
        assert!(!asks_for_codex_catalogue(None));
    }
}
