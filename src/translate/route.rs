//! HTTP wiring of the translated protocols — the only part of `translate` that does I/O.
//!
//! `POST /v1/chat/completions`, `POST /v1/messages` (`?beta=true` too: the query does not
//! affect routing), `POST /v1/messages/count_tokens`, and `HEAD /` / `HEAD /api/hello` (Claude
//! Code's liveness probes). Each request goes through the proxy's own path — authenticate the
//! client key from the request head before reading the body ([`crate::request_body`]), pick
//! and lease an account with failover before the first byte ([`crate::proxy::failover`], with
//! heartbeats while it waits: [`crate::proxy::wait`]), pass-through with heartbeats, idle
//! timeout, usage accounting
//! and drain ([`crate::proxy::stream`]) — with the translators on both ends: the client body is
//! translated into a Responses request, and the upstream SSE is translated back ([`relay`]).
//! Errors before the stream starts render in the client's protocol ([`reply`]).

mod relay;
mod reply;

use super::chat::{self, ChatStream};
use super::messages::{self, MessagesStream};
use super::{Protocol, TranslateError, Translated};
use crate::errors::ApiError;
use crate::middleware::RequestId;
use crate::proxy::outcome::Outcome;
use crate::proxy::{auth, collect, failover, request::ResponsesRequest, stream, wait};
use crate::request_body;
use crate::state::AppState;
use axum::Extension;
use axum::body::Body;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use serde_json::json;

/// `HEAD /` and `HEAD /api/hello`: Claude Code probes these before its first request.
pub async fn hello() -> StatusCode {
    StatusCode::OK
}

/// Any path no route serves: a 404 that names the path and the endpoints there are, in the
/// protocol the path belongs to ([`protocol_of`]) — a new user's wrong base URL ends here.
pub async fn no_route(method: Method, uri: Uri, OriginalUri(original): OriginalUri) -> Response {
    let e = ApiError::NotFound {
        method: method.to_string(),
        path: original.path().to_owned(),
    };
    reply::render(e, protocol_of(uri.path()))
}

/// A known path with a method it does not serve: 405 in the path's protocol (axum adds the
/// `Allow` header listing the methods it does serve).
pub async fn wrong_method(
    method: Method,
    uri: Uri,
    OriginalUri(original): OriginalUri,
) -> Response {
    let e = ApiError::MethodNotAllowed {
        method: method.to_string(),
        path: original.path().to_owned(),
    };
    reply::render(e, protocol_of(uri.path()))
}

/// Which protocol an error about `path` (relative to the path prefix) is rendered in: the
/// Anthropic shape under `/v1/messages`, where only Anthropic clients go; the OpenAI shape
/// everywhere else.
fn protocol_of(path: &str) -> Protocol {
    if path.starts_with("/v1/messages") {
        Protocol::Messages
    } else {
        Protocol::Chat
    }
}

/// `POST /v1/chat/completions`.
pub async fn chat_completions(
    State(state): State<AppState>,
    id: Option<Extension<RequestId>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    serve(state, id, headers, body, Protocol::Chat).await
}

/// `POST /v1/messages` (and `?beta=true`).
pub async fn messages(
    State(state): State<AppState>,
    id: Option<Extension<RequestId>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    serve(state, id, headers, body, Protocol::Messages).await
}

/// Authenticates from the head, then reads the body (the proxy's order, see the module docs);
/// a refused request's body is drained, never held. Errors render in the caller's protocol.
async fn admit(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    out: &mut Outcome,
) -> Result<(Bytes, Option<auth::Permit>), ApiError> {
    let limit = state.config().server.max_body_bytes;
    let permit = match auth::authenticate(state, headers) {
        Ok(p) => p,
        Err(e) => {
            request_body::discard(headers, body, limit);
            return Err(e);
        }
    };
    out.rec.client_key = permit.as_ref().map(auth::permit_name);
    let body = request_body::read(headers, body, limit).await?;
    Ok((body, permit))
}

/// `POST /v1/messages/count_tokens`: an estimate computed locally, no account used.
pub async fn count_tokens(
    State(state): State<AppState>,
    id: Option<Extension<RequestId>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut out = Outcome::new(&state, "count_tokens", id);
    let answer = match admit(&state, &headers, body, &mut out).await {
        Ok((body, _permit)) => messages::count_tokens(&body).map_err(to_api_error),
        Err(e) => Err(e),
    };
    match answer {
        Ok(v) => {
            out.finish(200, None);
            axum::Json(v).into_response()
        }
        Err(e) => fail(out, e, Protocol::Messages),
    }
}

/// One translated request, start to end.
async fn serve(
    state: AppState,
    id: Option<Extension<RequestId>>,
    headers: HeaderMap,
    body: Body,
    protocol: Protocol,
) -> Response {
    let route = match protocol {
        Protocol::Chat => "chat",
        Protocol::Messages => "messages",
    };
    let mut out = Outcome::new(&state, route, id);
    let (body, permit) = match admit(&state, &headers, body, &mut out).await {
        Ok(x) => x,
        Err(e) => return fail(out, e, protocol),
    };
    let t = match translate(&state, &headers, &body, &permit, protocol, &mut out) {
        Ok(x) => x,
        Err(e) => return fail(out, e, protocol),
    };
    let req = ResponsesRequest {
        model: t.model.clone(),
        client_stream: t.client_stream,
        affinity: t.affinity.as_ref().map(|a| format!("conv:{a}")),
        // Chat and Messages clients never echo Codex's turn state.
        turn_state: None,
        review: false,
        upstream_body: Bytes::from(t.body.to_string()),
    };
    let (mut served, mut out) = if t.client_stream {
        match wait::start(&state, req, headers, out).await {
            wait::Start::Ready(done) => match done.served {
                Ok(s) => (s, done.out),
                Err(e) => return fail(done.out, e, protocol),
            },
            wait::Start::Late(pending) => return late(&state, pending, &t, protocol, permit),
        }
    } else {
        match failover::send(&state, &req, &headers, &mut out).await {
            Ok(s) => (s, out),
            Err(e) => return fail(out, e, protocol),
        }
    };
    let cfg = state.config();
    let idle = cfg.upstream.idle_timeout;
    let mut resp_headers = HeaderMap::new();
    crate::proxy::copy_response_headers(served.response.headers(), &mut resp_headers);
    let upstream: stream::ByteStream = Box::pin(served.response.bytes_stream());
    if !t.client_stream {
        let collected = collect::collect(upstream, &mut served.lease, idle, &mut out).await;
        drop(served.lease);
        let answer = collected.and_then(|v| {
            let done = [json!({"type": "response.completed", "response": v})];
            match protocol {
                Protocol::Chat => chat::collect(&done, &t.client_model),
                Protocol::Messages => messages::collect(&done, &t.client_model),
            }
            .map_err(to_api_error)
        });
        drop(permit);
        return match answer {
            Ok(v) => {
                out.first_byte();
                out.finish(200, None);
                resp_headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                (resp_headers, v.to_string()).into_response()
            }
            Err(e) => fail(out, e, protocol),
        };
    }
    let pass = stream::PassThrough::new(&state, &cfg, served.lease, out, true);
    let raw = Box::pin(stream::pass_through(upstream, pass));
    let body = encode(raw, &t, protocol).map(move |chunk| {
        // The key's concurrency permit lives exactly as long as the body.
        let _hold = &permit;
        chunk
    });
    crate::proxy::sse_response(resp_headers, body)
}

/// The client's stream: the pass-through body re-encoded in its protocol.
fn encode(raw: relay::Inner, t: &Translated, protocol: Protocol) -> relay::Inner {
    match protocol {
        Protocol::Chat => relay::relay(
            raw,
            ChatStream::new(t.client_model.clone(), t.include_usage),
        ),
        Protocol::Messages => relay::relay(raw, MessagesStream::new(t.client_model.clone())),
    }
}

/// A streaming client whose failover outlasted the first heartbeat ([`wait`]): the protocol's
/// heartbeats, then the translated answer or the protocol's error.
fn late(
    state: &AppState,
    pending: wait::Pending,
    t: &Translated,
    protocol: Protocol,
    permit: Option<auth::Permit>,
) -> Response {
    let st = state.clone();
    let raw = Box::pin(wait::late_body(pending, move |served, _req, out| {
        let upstream: stream::ByteStream = Box::pin(served.response.bytes_stream());
        let pass = stream::PassThrough::new(&st, &st.config(), served.lease, out, true);
        stream::pass_through(upstream, pass)
    }));
    let body = encode(raw, t, protocol).map(move |chunk| {
        let _hold = &permit;
        chunk
    });
    crate::proxy::sse_response(HeaderMap::new(), body)
}

/// Translates and checks the key may use the model.
fn translate(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
    permit: &Option<auth::Permit>,
    protocol: Protocol,
    out: &mut Outcome,
) -> Result<Translated, ApiError> {
    let cfg = state.config();
    let t = match protocol {
        Protocol::Chat => chat::request(body, &cfg.models),
        Protocol::Messages => messages::request(body, &cfg.models),
    }
    .map_err(to_api_error)?;
    let session = headers
        .get("x-claude-code-session-id")
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty() && protocol == Protocol::Messages);
    let t = match session {
        Some(s) => t.with_affinity(s),
        None => t,
    };
    out.rec.model = Some(t.model.clone());
    if let Some(p) = permit {
        let keys = state.keys();
        if !keys.model_allowed(p, &t.client_model) && !keys.model_allowed(p, &t.model) {
            return Err(ApiError::Forbidden(format!(
                "this key may not use model '{}'",
                t.client_model
            )));
        }
    }
    Ok(t)
}

/// A translation error as the proxy's error (one rendering path per protocol).
fn to_api_error(e: TranslateError) -> ApiError {
    match e.status {
        400 => ApiError::BadRequest {
            message: e.message,
            param: e.field,
        },
        504 => ApiError::PrematureClose(e.message),
        429 => ApiError::Upstream {
            status: 429,
            code: "rate_limit_exceeded",
            message: e.message,
        },
        status => ApiError::Upstream {
            status,
            code: "codex_api_error",
            message: e.message,
        },
    }
}

/// Records a failed request and renders its error in the client's protocol.
fn fail(mut out: Outcome, e: ApiError, protocol: Protocol) -> Response {
    let message = e.to_string();
    let resp = reply::render(e, protocol);
    out.finish(resp.status().as_u16(), Some(message));
    resp
}
