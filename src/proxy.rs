//! The Responses proxy: `POST /v1/responses` from a client becomes
//! `POST {upstream}/codex/responses` with a leased account. Per request: authenticate the
//! client key from the request head → only then read the body ([`crate::request_body`]) →
//! read model and affinity → pick and lease an account → send upstream, failing over before
//! the first byte ([`failover`]; a streaming client hears heartbeats meanwhile, [`wait`]) →
//! pass the bytes through unchanged, observing them on the side ([`stream`]), or collect them
//! for a `stream: false` client ([`collect`]) → record the request ([`outcome`]).

pub mod auth;
pub mod backfill;
pub mod collect;
pub mod failover;
pub mod models;
pub mod observe;
pub mod outcome;
pub mod request;
pub mod stream;
pub mod upgrade;
pub mod wait;

pub use models::{model, models};

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
    let req = match admit(
        &state,
        &headers,
        body,
        &cfg.models.default_model,
        &permit,
        &mut out,
    ) {
        Ok(req) => req,
        Err(e) => return fail(out, e),
    };
    if !req.client_stream {
        return match failover::send(&state, &req, &headers, &mut out).await {
            Ok(served) => deliver(&state, req, served, permit, out).await,
            Err(e) => fail(out, e),
        };
    }
    match wait::start(&state, req, headers, out).await {
        wait::Start::Ready(done) => match done.served {
            Ok(served) => deliver(&state, done.req, served, permit, done.out).await,
            Err(e) => fail(done.out, e),
        },
        wait::Start::Late(pending) => late(&state, pending, permit),
    }
}

/// Records a failed request and renders its error.
fn fail(mut out: Outcome, e: ApiError) -> Response {
    out.finish(e.status().as_u16(), Some(e.to_string()));
    e.into_response()
}

/// Everything after authentication and before failover: read the request, check the key's
/// models.
fn admit(
    state: &AppState,
    headers: &HeaderMap,
    body: Bytes,
    default_model: &str,
    permit: &Option<auth::Permit>,
    out: &mut Outcome,
) -> Result<request::ResponsesRequest, ApiError> {
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
    Ok(req)
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
    remember_turn(state, &resp_headers, &req);
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
    let pass = stream::PassThrough::new(state, &cfg, served.lease, out, false);
    let body = stream::pass_through(upstream, pass).map(move |chunk| {
        // The key's concurrency permit lives exactly as long as the body.
        let _hold = &permit;
        chunk
    });
    sse_response(resp_headers, body)
}

/// A streaming client whose failover outlasted the first heartbeat: heartbeats, then the
/// pass-through (upstream's headers can no longer be forwarded; the turn state is still
/// remembered for the client's next request).
fn late(state: &AppState, pending: wait::Pending, permit: Option<auth::Permit>) -> Response {
    let state = state.clone();
    let body = wait::late_body(pending, move |served, req, out| {
        let mut head = HeaderMap::new();
        copy_response_headers(served.response.headers(), &mut head);
        remember_turn(&state, &head, &req);
        let upstream: stream::ByteStream = Box::pin(served.response.bytes_stream());
        let pass = stream::PassThrough::new(&state, &state.config(), served.lease, out, false);
        stream::pass_through(upstream, pass)
    })
    .map(move |chunk| {
        let _hold = &permit;
        chunk
    });
    sse_response(HeaderMap::with_capacity(3), body)
}

/// An SSE answer: `headers` plus the three every stream carries.
pub fn sse_response(
    mut headers: HeaderMap,
    body: impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
) -> Response {
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    (headers, Body::from_stream(body)).into_response()
}

/// Remembers which affinity a turn-state token belongs to (from the already bounded
/// `forwarded` headers), so the client's follow-up of the turn reaches the same account.
fn remember_turn(state: &AppState, forwarded: &HeaderMap, req: &request::ResponsesRequest) {
    if let (Some(token), Some(key)) = (
        forwarded
            .get("x-codex-turn-state")
            .and_then(|v| v.to_str().ok()),
        &req.affinity,
    ) {
        state.turns().remember(token, key);
    }
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

/// Longest upstream response header value passed on to a client. What clients read is short
/// (percentages, times, ids, a turn-state token, a promo line), and a client's whole response
/// head must fit in 16 KiB (the default of Node's HTTP parser and of Python's h11): a longer
/// value could only break the client.
pub const MAX_FORWARDED_HEADER: usize = 4 * 1024;

/// Budget of every forwarded header together (names and values), leaving the client's 16 KiB
/// head room for the daemon's own headers.
const MAX_FORWARDED_HEADERS: usize = 12 * 1024;

/// Copies the serving account's `x-codex-*` headers and the few others a client reads; one
/// over [`MAX_FORWARDED_HEADER`], or past the [`MAX_FORWARDED_HEADERS`] budget, is dropped with
/// a log line (name and size only).
pub fn copy_response_headers(from: &reqwest::header::HeaderMap, to: &mut HeaderMap) {
    let mut total = 0;
    for (name, value) in from {
        let n = name.as_str();
        if !(n.starts_with("x-codex-") || FORWARDED_RESPONSE_HEADERS.contains(&n)) {
            continue;
        }
        total += n.len() + value.len();
        if value.len() > MAX_FORWARDED_HEADER || total > MAX_FORWARDED_HEADERS {
            tracing::warn!(
                header = n,
                bytes = value.len(),
                "upstream response header too long to forward to the client; dropped"
            );
            total -= n.len() + value.len();
            continue;
        }
        to.append(name.clone(), value.clone());
    }
}
