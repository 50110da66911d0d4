//! HTTP wiring of the translated protocols — the only part of `translate` that does I/O.
//!
//! `POST /v1/chat/completions`, `POST /v1/messages` (`?beta=true` too: the query does not
//! affect routing), `POST /v1/messages/count_tokens`, and `HEAD /` / `HEAD /api/hello` (Claude
//! Code's liveness probes). Chat and Messages requests go through the proxy's serving pipeline
//! ([`crate::proxy::pipeline`]: authenticate before reading the body, failover before the first
//! byte with heartbeats while it waits, pass-through with idle timeout, usage accounting and
//! drain) with [`Translator`] on both ends: the client body is translated into a Responses
//! request, and the upstream SSE is translated back by the protocol's stream encoder. Errors
//! before the stream starts render in the client's protocol ([`reply`]).

mod reply;

use super::chat::{self, ChatStream};
use super::messages::{self, MessagesStream};
use super::{Protocol, StreamEnd, TranslateError, Translated};
use crate::config::ModelsConfig;
use crate::http::errors::ApiError;
use crate::http::middleware::RequestId;
use crate::http::state::AppState;
use crate::proxy::pipeline::{
    self, ClientProtocol, ClientStream, Encoder, ResponsesRequest, relay,
};
use crate::upstream::names;
use crate::upstream::pseudonym::Spans;
use crate::upstream::shape::Blobs;
use axum::Extension;
use axum::body::Body;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};

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
    uri: OriginalUri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    pipeline::serve(state, id, &uri, headers, body, Translator(Protocol::Chat)).await
}

/// `POST /v1/messages` (and `?beta=true`).
pub async fn messages(
    State(state): State<AppState>,
    id: Option<Extension<RequestId>>,
    uri: OriginalUri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    pipeline::serve(
        state,
        id,
        &uri,
        headers,
        body,
        Translator(Protocol::Messages),
    )
    .await
}

/// `POST /v1/messages/count_tokens`: an estimate computed locally, no account used.
pub async fn count_tokens(
    State(state): State<AppState>,
    id: Option<Extension<RequestId>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let protocol = Translator(Protocol::Messages);
    pipeline::answer_locally(
        &state,
        id,
        &headers,
        body,
        "count_tokens",
        &protocol,
        |body| messages::count_tokens(body).map_err(to_api_error),
    )
    .await
}

/// A translated protocol in the serving pipeline.
pub struct Translator(pub Protocol);

impl ClientProtocol for Translator {
    type Ctx = Translated;

    fn route(&self) -> &'static str {
        match self.0 {
            Protocol::Chat => "chat",
            Protocol::Messages => "messages",
        }
    }

    fn translated(&self) -> bool {
        true
    }

    fn echoes_turn_state(&self) -> bool {
        false
    }

    /// The translated request; a Messages request's `X-Claude-Code-Session-Id` is its
    /// affinity.
    fn request(
        &self,
        headers: &HeaderMap,
        body: Bytes,
        models: &ModelsConfig,
    ) -> Result<(ResponsesRequest, Translated), ApiError> {
        let t = match self.0 {
            Protocol::Chat => chat::request(&body, models),
            Protocol::Messages => messages::request(&body, models),
        }
        .map_err(to_api_error)?;
        let session = headers
            .get("x-claude-code-session-id")
            .and_then(|v| v.to_str().ok())
            .filter(|s| !s.is_empty() && self.0 == Protocol::Messages);
        let mut t = match session {
            Some(s) => t.with_affinity(s),
            None => t,
        };
        let names = names::shorten(&mut t.body);
        let upstream_body = Bytes::from(t.body.to_string());
        let req = ResponsesRequest {
            ids: Spans::find(&upstream_body),
            model: t.model.clone(),
            client_stream: t.client_stream,
            affinity: t.affinity.as_ref().map(|a| format!("conv:{a}")),
            // Chat and Messages clients never echo Codex's turn state.
            turn_state: None,
            turn_account: None,
            review: false,
            upstream_body,
            names,
            // A translated body is read for reasoning when it goes to an account.
            reasoning: Blobs::Unread,
        };
        Ok((req, t))
    }

    fn client_model<'a>(&self, t: &'a Translated, _: &'a ResponsesRequest) -> &'a str {
        &t.client_model
    }

    fn collected(
        &self,
        t: &Translated,
        _: &ResponsesRequest,
        response: Value,
    ) -> Result<Value, ApiError> {
        let done = [json!({"type": "response.completed", "response": response})];
        match self.0 {
            Protocol::Chat => chat::collect(&done, &t.client_model),
            Protocol::Messages => messages::collect(&done, &t.client_model),
        }
        .map_err(to_api_error)
    }

    fn encode<S: ClientStream>(&self, t: Translated, body: S) -> impl ClientStream {
        let raw = Box::pin(body);
        match self.0 {
            Protocol::Chat => relay(raw, ChatStream::new(t.client_model, t.include_usage)),
            Protocol::Messages => relay(raw, MessagesStream::new(t.client_model)),
        }
    }

    fn render(&self, e: ApiError) -> Response {
        reply::render(e, self.0)
    }

    fn broken_stream(&self, message: &str) -> Vec<Bytes> {
        TranslateError::upstream_failed(Some("upstream_premature_close"), message)
            .stream_frames(self.0)
    }

    fn opened_by_keepalive(&self) -> Option<&'static str> {
        match self.0 {
            Protocol::Chat => None,
            Protocol::Messages => Some("message_start"),
        }
    }
}

impl Encoder for ChatStream {
    fn event(&mut self, ev: &Value) -> Vec<Bytes> {
        self.on_event(ev)
    }
    fn keepalive(&mut self) -> Vec<Bytes> {
        vec![ChatStream::keepalive()]
    }
    fn finish(&mut self, end: StreamEnd) -> Vec<Bytes> {
        ChatStream::finish(self, end)
    }
}

impl Encoder for MessagesStream {
    fn event(&mut self, ev: &Value) -> Vec<Bytes> {
        self.on_event(ev)
    }
    fn keepalive(&mut self) -> Vec<Bytes> {
        self.ping()
    }
    fn finish(&mut self, end: StreamEnd) -> Vec<Bytes> {
        MessagesStream::finish(self, end)
    }
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
