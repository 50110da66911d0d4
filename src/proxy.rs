//! The Responses proxy: `POST /v1/responses` from a client becomes
//! `POST {upstream}/codex/responses` with a leased account. Per request: authenticate the
//! client key from the request head → only then read the body ([`crate::request_body`]) →
//! read model and affinity → pick and lease an account → send upstream, failing
//! over before the first byte ([`failover`]) → pass the bytes through unchanged, observing
//! them on the side ([`stream`]), or collect them for a `stream: false` client ([`collect`]) →
//! record the request ([`outcome`]).

pub mod auth;
pub mod collect;
pub mod failover;
pub mod observe;
pub mod outcome;
pub mod request;
pub mod stream;
pub mod turns;

use crate::errors::ApiError;
use crate::middleware::RequestId;
use crate::request_body;
use crate::state::AppState;
use axum::Extension;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use outcome::Outcome;

/// Upstream response headers the client gets from the serving account besides every
/// `x-codex-*` header (quota, turn state): the served model is passed through, never invented.
const FORWARDED_RESPONSE_HEADERS: &[&str] = &[
    "openai-model",
    "x-reasoning-included",
    "x-models-etag",
    "x-request-id",
    "x-oai-request-id",
];

/// `POST /v1/responses` and `POST /responses`. The body stays unread until the key is
/// accepted: a refused request's body is drained, never held.
pub async fn responses(
    State(state): State<AppState>,
    id: Option<Extension<RequestId>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut out = Outcome::new(&state, "responses", id);
    let cfg = state.config();
    let limit = cfg.server.max_body_bytes;
    let permit = match auth::authenticate(&state, &headers) {
        Ok(p) => p,
        Err(e) => {
            request_body::discard(&headers, body, limit);
            return fail(out, e);
        }
    };
    out.rec.client_key = permit.as_ref().map(auth::permit_name);
    let body = match request_body::read(&headers, body, limit).await {
        Ok(b) => b,
        Err(e) => return fail(out, e.into()),
    };
    let default_model = &cfg.models.default_model;
    match prepare(&state, &headers, body, default_model, &permit, &mut out).await {
        Ok((req, served)) => deliver(&state, req, served, permit, out).await,
        Err(e) => fail(out, e),
    }
}

/// Records a failed request and renders its error.
fn fail(mut out: Outcome, e: ApiError) -> Response {
    out.finish(e.status().as_u16(), Some(e.to_string()));
    e.into_response()
}

/// Everything after authentication up to a 2xx upstream answer: read the request, fail over.
async fn prepare(
    state: &AppState,
    headers: &HeaderMap,
    body: Bytes,
    default_model: &str,
    permit: &Option<auth::Permit>,
    out: &mut Outcome,
) -> Result<(request::ResponsesRequest, failover::Served), ApiError> {
    let mut req = request::parse(headers, body, default_model)?;
    out.rec.model = Some(req.model.clone());
    route_turn(state, &mut req);
    if let Some(p) = permit {
        if !state.keys().model_allowed(p, &req.model) {
            return Err(ApiError::Forbidden(format!(
                "this key may not use model '{}'",
                req.model
            )));
        }
    }
    let served = failover::send(state, &req, headers, out).await?;
    Ok((req, served))
}

/// Answers from a 2xx upstream stream: passed through, or collected for `stream: false`.
async fn deliver(
    state: &AppState,
    req: request::ResponsesRequest,
    mut served: failover::Served,
    permit: Option<auth::Permit>,
    mut out: Outcome,
) -> Response {
    let cfg = state.config();
    let idle = cfg.upstream.idle_timeout;
    // Sized once: the copied headers plus the three this answer adds, no rehash while filling.
    let mut resp_headers = HeaderMap::with_capacity(served.response.headers().len() + 3);
    copy_response_headers(served.response.headers(), &mut resp_headers);
    if let (Some(token), Some(key)) = (
        resp_headers
            .get("x-codex-turn-state")
            .and_then(|v| v.to_str().ok()),
        &req.affinity,
    ) {
        state.turns().remember(token, key);
    }
    let upstream: stream::ByteStream = Box::pin(served.response.bytes_stream());
    if !req.client_stream {
        let collected = collect::collect(upstream, &mut served.lease, idle, &mut out).await;
        drop(served.lease);
        let mut value = match collected {
            Ok(v) => v,
            Err(e) => return fail(out, e),
        };
        if let Some(obj) = value.as_object_mut() {
            obj.entry("model")
                .or_insert_with(|| req.model.clone().into());
        }
        out.first_byte();
        out.finish(200, None);
        drop(permit);
        resp_headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        return (resp_headers, value.to_string()).into_response();
    }
    let pass = stream::PassThrough {
        lease: served.lease,
        outcome: out,
        heartbeat: cfg.server.sse_heartbeat,
        idle_timeout: idle,
        drain: state.drain(),
    };
    let body = stream::pass_through(upstream, pass).map(move |chunk| {
        // The key's concurrency permit lives exactly as long as the body.
        let _hold = &permit;
        chunk
    });
    resp_headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    resp_headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp_headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    (resp_headers, Body::from_stream(body)).into_response()
}

/// Routes a follow-up of a turn by the affinity of the request that received its turn-state
/// token. Keyless requests get no synthetic key: every one would cost the pool an affinity
/// entry, and the clients that echo turn state (Codex) always send `prompt_cache_key` and
/// `session-id`.
fn route_turn(state: &AppState, req: &mut request::ResponsesRequest) {
    if let Some(key) = req
        .turn_state
        .as_deref()
        .and_then(|t| state.turns().affinity_for(t))
    {
        req.affinity = Some(key);
    }
}

/// Copies the serving account's `x-codex-*` headers and the few others a client reads.
pub fn copy_response_headers(from: &reqwest::header::HeaderMap, to: &mut HeaderMap) {
    for (name, value) in from {
        let n = name.as_str();
        if n.starts_with("x-codex-") || FORWARDED_RESPONSE_HEADERS.contains(&n) {
            to.append(name.clone(), value.clone());
        }
    }
}

/// `GET /v1/models` and `GET /models`: the configured model list in the OpenAI shape.
pub async fn models(
    State(state): State<AppState>,
    id: Option<Extension<RequestId>>,
    headers: HeaderMap,
) -> Response {
    let mut out = Outcome::new(&state, "models", id);
    if let Err(e) = auth::authenticate(&state, &headers) {
        out.finish(e.status().as_u16(), Some(e.to_string()));
        return e.into_response();
    }
    let cfg = state.config();
    let data: Vec<serde_json::Value> = cfg
        .models
        .list
        .iter()
        .map(|id| serde_json::json!({"id": id, "object": "model", "created": 0, "owned_by": "openai"}))
        .collect();
    out.finish(200, None);
    axum::Json(serde_json::json!({"object": "list", "data": data})).into_response()
}
