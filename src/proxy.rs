//! The Responses proxy: `POST /v1/responses` from a client becomes
//! `POST {upstream}/codex/responses` with a leased account, through the serving pipeline
//! ([`pipeline`]) that the translated protocols share. What is the Responses protocol's own is
//! [`Responses`]: the body is forwarded as the client sent it ([`request`]), the bytes pass
//! through unchanged, and the client's `x-codex-turn-state` keeps a turn on its account
//! ([`turns`]).

pub mod auth;
pub mod backfill;
pub mod collect;
pub mod failover;
pub mod forward;
pub mod models;
pub mod observe;
pub mod outcome;
pub mod pipeline;
pub mod reasoning;
pub mod relay;
pub mod request;
pub mod stream;
pub mod upgrade;
pub mod wait;

pub use models::{model, models};

use crate::config::ModelsConfig;
use crate::http::errors::ApiError;
use crate::http::middleware::RequestId;
use crate::http::state::AppState;
use axum::Extension;
use axum::body::Body;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use pipeline::{ClientProtocol, ClientStream};
use request::ResponsesRequest;

/// Upstream response headers the client gets from the serving account besides every
/// `x-codex-*` header (quota, turn state): the served model is passed through, never invented.
const FORWARDED_RESPONSE_HEADERS: &[&str] = &[
    "openai-model",
    "x-reasoning-included",
    "x-models-etag",
    "x-request-id",
    "x-oai-request-id",
];

/// `POST /v1/responses` and `POST /responses`.
pub async fn responses(
    State(state): State<AppState>,
    id: Option<Extension<RequestId>>,
    uri: OriginalUri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    pipeline::serve(state, id, &uri, headers, body, Responses).await
}

/// The Responses protocol in the pipeline: the upstream protocol itself, so nothing is
/// translated.
pub struct Responses;

impl ClientProtocol for Responses {
    type Ctx = ();

    fn route(&self) -> &'static str {
        "responses"
    }

    fn translated(&self) -> bool {
        false
    }

    fn echoes_turn_state(&self) -> bool {
        true
    }

    fn request(
        &self,
        headers: &HeaderMap,
        body: Bytes,
        models: &ModelsConfig,
    ) -> Result<(ResponsesRequest, ()), ApiError> {
        Ok((request::parse(headers, body, &models.default_model)?, ()))
    }

    fn client_model<'a>(&self, _: &'a (), req: &'a ResponsesRequest) -> &'a str {
        &req.model
    }

    /// The final response object, with the requested model where upstream named none.
    fn collected(
        &self,
        _: &(),
        req: &ResponsesRequest,
        mut response: serde_json::Value,
    ) -> Result<serde_json::Value, ApiError> {
        if let Some(obj) = response.as_object_mut() {
            obj.entry("model")
                .or_insert_with(|| req.model.clone().into());
        }
        Ok(response)
    }

    fn encode<S: ClientStream>(&self, _: (), body: S) -> impl ClientStream {
        body
    }

    /// The OpenAI shape; a client key over its own rpm or concurrency limit answers **503**
    /// (same body, `Retry-After`) rather than 429: the Codex CLI never retries a 429 that is
    /// not a usage limit and fails the turn at once, while it retries a 503 whose code is not
    /// `server_is_overloaded`/`slow_down` with backoff (docs/protocol.md §13.3); the openai SDK
    /// retries both, honouring `Retry-After`.
    fn broken_stream(&self, message: &str) -> Vec<bytes::Bytes> {
        vec![stream::failed_event(
            None,
            "upstream_premature_close",
            message,
        )]
    }

    fn opened_by_keepalive(&self) -> Option<&'static str> {
        None
    }

    fn render(&self, e: ApiError) -> Response {
        let busy = matches!(e, ApiError::KeyRateLimited { .. });
        let mut resp = e.into_response();
        if busy {
            *resp.status_mut() = axum::http::StatusCode::SERVICE_UNAVAILABLE;
        }
        resp
    }
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
