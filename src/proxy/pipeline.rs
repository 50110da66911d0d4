//! The one serving pipeline of `/v1/responses`, `/v1/chat/completions` and `/v1/messages`:
//!
//! 1. authenticate the client key from the request head, only then read the body
//!    ([`crate::request_body`]; a refused request's body is drained, never held) and undo its
//!    `Content-Encoding` (zstd, bounded by the same limit);
//! 2. parse the client's request into a Responses request ([`ClientProtocol::request`]), route
//!    a known turn ([`super::turns`]) and check the key may use the model;
//! 3. pick and lease an account, failing over before the first byte ([`failover`]; a streaming
//!    client hears heartbeats meanwhile, [`wait`]);
//! 4. pass the bytes through, observing them on the side ([`stream`]) and re-encoding them for
//!    a translated protocol ([`ClientProtocol::encode`], [`super::relay`]), or collect them for
//!    a `stream: false` client ([`collect`], [`ClientProtocol::collected`]);
//! 5. record the request ([`Outcome`]) and render an error in the client's shape
//!    ([`ClientProtocol::render`]).
//!
//! What differs between the protocols is [`ClientProtocol`]: the Responses pass-through
//! (`crate::proxy::Responses`) and the translators (`crate::translate::route`).

use super::auth::{self, Permit};
use super::forward;
use super::outcome::Outcome;
use super::{collect, copy_response_headers, failover, sse_response, stream, wait};
use crate::cluster::forward::Forwarded;
use crate::cluster::traffic::Why;
use crate::config::ModelsConfig;
use crate::http::errors::ApiError;
use crate::http::middleware::RequestId;
use crate::http::state::AppState;
use crate::request_body;
use axum::Extension;
use axum::body::Body;
use axum::extract::OriginalUri;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use serde_json::Value;

/// What a protocol's adapter builds and uses.
pub use super::relay::{Encoder, relay};
pub use super::request::ResponsesRequest;

/// What the pipeline does differently for one client protocol.
pub trait ClientProtocol: Send + Sync + 'static {
    /// What the protocol keeps of the client's request until the answer (the client's model
    /// name, stream options).
    type Ctx: Send + 'static;

    /// The route name in request records and metrics.
    fn route(&self) -> &'static str;

    /// Whether the upstream stream is re-encoded for the client: an event too long to read
    /// then ends it ([`stream::PassThrough::end_on_dropped_event`]).
    fn translated(&self) -> bool;

    /// Whether the client echoes `x-codex-turn-state` (Codex does): the token an answer
    /// carries is then remembered for the client's next request. Other clients never echo it,
    /// and remembering would only cost entries.
    fn echoes_turn_state(&self) -> bool;

    /// The client's request as the Responses request sent upstream.
    fn request(
        &self,
        headers: &HeaderMap,
        body: Bytes,
        models: &ModelsConfig,
    ) -> Result<(ResponsesRequest, Self::Ctx), ApiError>;

    /// The model the client named: the key may use either it or the upstream model, and a
    /// refusal names it.
    fn client_model<'a>(&self, ctx: &'a Self::Ctx, req: &'a ResponsesRequest) -> &'a str;

    /// The answer for a `stream: false` client, from upstream's final response object.
    fn collected(
        &self,
        ctx: &Self::Ctx,
        req: &ResponsesRequest,
        response: Value,
    ) -> Result<Value, ApiError>;

    /// The client's stream from the pass-through body (its heartbeats and the terminal
    /// `response.failed` the daemon writes included).
    fn encode<S>(&self, ctx: Self::Ctx, body: S) -> impl ClientStream
    where
        S: ClientStream;

    /// An error in the protocol's shape.
    fn render(&self, e: ApiError) -> Response;

    /// The frames that end, in the protocol's own shape, a client stream the daemon cannot
    /// finish: a peer's answer it relays broke off (docs/cluster.md "Requests across nodes").
    /// The client then sees a failed stream it can retry, never a silent cut.
    fn broken_stream(&self, message: &str) -> Vec<Bytes>;

    /// The event a late stream's first keepalive opens the client's stream with, if any (an
    /// Anthropic `message_start`): a peer's stream spliced into it after heartbeats
    /// ([`forward::spliced`]) starts with its own, which is dropped.
    fn opened_by_keepalive(&self) -> Option<&'static str>;
}

/// A body stream as the client receives it.
pub trait ClientStream: Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {}

impl<S: Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static> ClientStream for S {}

/// Serves one request of `protocol`, start to end.
pub async fn serve<P: ClientProtocol>(
    state: AppState,
    id: Option<Extension<RequestId>>,
    uri: &OriginalUri,
    headers: HeaderMap,
    body: Body,
    protocol: P,
) -> Response {
    let mut out = Outcome::new(&state, protocol.route(), id);
    // Only a node of a cluster signs or checks the path; a single node never reads it.
    let path = if state.node().is_some() {
        path_of(uri)
    } else {
        ""
    };
    let (body, mut permit, hop) = match admit(&state, path, &headers, body, &mut out).await {
        Ok(x) => x,
        Err(e) => return fail(&protocol, out, e),
    };
    // A cluster node that is not Held (or shuts down) must not act as an owner: 503, so the
    // client (or its reverse proxy) tries another node (docs/cluster.md "How a node runs").
    if let Some(why) = state.cluster_refusal() {
        return fail(&protocol, out, ApiError::Unavailable(why.into()));
    }
    // What the request needs to cross to a peer: only in cluster mode, only before its hop.
    let mut crossing = (hop.is_none() && state.node().is_some()).then(|| Crossing {
        path: path.to_owned(),
        body: body.clone(),
        headers: headers.clone(),
        key: out.rec.client_key.clone(),
        stream: false,
    });
    let (req, ctx) = match parse(&state, &protocol, &headers, body, &permit, &mut out) {
        Ok(x) => x,
        Err(e) => return fail(&protocol, out, e),
    };
    if let Some(fwd) = &hop {
        forward::adopt(&state, fwd, &req);
    }
    if let (Some(c), Some((view, link))) = (&mut crossing, state.node()) {
        c.stream = req.client_stream;
        if let Some((peer, account)) = forward::affinity_peer(&state, view, &req).await {
            let node = (&**view, link);
            let outgoing = c.outgoing();
            let why = Why::Affinity;
            match forward::cross(
                &state,
                node,
                &peer,
                why,
                Some(account),
                outgoing,
                out,
                &mut permit,
                protocol.broken_stream(forward::BROKEN),
            )
            .await
            {
                Ok(resp) => return resp,
                Err(back) => out = back,
            }
        }
    }
    if !req.client_stream {
        let envelope = hop.is_some() && forward::wants_envelope(&headers);
        let st = state.clone();
        let collected = async move {
            match failover::send(&st, &req, &headers, &mut out).await {
                Ok(served) => {
                    let answer = Answer {
                        req,
                        served,
                        out,
                        tick: None,
                    };
                    deliver(&st, protocol, ctx, answer, permit).await
                }
                Err(e) => refuse(&st, &protocol, out, e, crossing, permit).await,
            }
        };
        // The node that forwarded it bounds every silence of this node, not the whole
        // collection: it gets the answer in the envelope (docs/cluster.md).
        return if envelope {
            forward::enveloped(&state, collected)
        } else {
            collected.await
        };
    }
    match wait::start(&state, req, headers, out).await {
        wait::Start::Ready(done, tick) => match done.served {
            Ok(served) => {
                let answer = Answer {
                    req: done.req,
                    served,
                    out: done.out,
                    tick: Some(tick),
                };
                deliver(&state, protocol, ctx, answer, permit).await
            }
            Err(e) => refuse(&state, &protocol, done.out, e, crossing, permit).await,
        },
        wait::Start::Late(pending) => late(&state, protocol, ctx, pending, permit, crossing),
    }
}

/// The path and query a request came to (with any path prefix): what a forward signs and
/// is sent to.
fn path_of(uri: &OriginalUri) -> &str {
    uri.0
        .path_and_query()
        .map_or_else(|| uri.0.path(), |p| p.as_str())
}

/// What a request keeps to be forwarded to a peer (cluster mode, not yet forwarded).
struct Crossing {
    /// The path and query it came to.
    path: String,
    /// The body as the client sent it, decoded.
    body: Bytes,
    /// The client's headers.
    headers: HeaderMap,
    /// The name of the key that admitted it.
    key: Option<String>,
    /// Whether the client streams.
    stream: bool,
}

impl Crossing {
    fn outgoing(&self) -> forward::Outgoing<'_> {
        forward::Outgoing {
            path: &self.path,
            headers: &self.headers,
            body: &self.body,
            key: self.key.clone(),
            stream: self.stream,
        }
    }
}

/// Step 5 for a request no local account served. In cluster mode, one that no local account
/// could take (exhausted or unavailable) spills to the peer whose summary says it can serve;
/// with none, an exhausted answer names the soonest reset of the whole cluster.
async fn refuse<P: ClientProtocol>(
    state: &AppState,
    protocol: &P,
    mut out: Outcome,
    e: ApiError,
    crossing: Option<Crossing>,
    mut permit: Option<Permit>,
) -> Response {
    let (Some(c), Some((view, link)), Some(local_reset)) = (crossing, state.node(), spillable(&e))
    else {
        return fail(protocol, out, e);
    };
    if let Some(peer) = forward::spill_peer(view) {
        let outgoing = c.outgoing();
        match forward::cross(
            state,
            (&**view, link),
            &peer,
            Why::Spill,
            None,
            outgoing,
            out,
            &mut permit,
            protocol.broken_stream(forward::BROKEN),
        )
        .await
        {
            Ok(resp) => return resp,
            Err(back) => out = back,
        }
    }
    fail(protocol, out, unplaced(state, view, local_reset, e))
}

/// [`refuse`] for a streaming request whose head already went out ([`late`]): a spilt
/// request's events continue the open stream (handed on through `to`); otherwise the error
/// comes back for the terminal event.
async fn refuse_open(
    state: &AppState,
    out: Outcome,
    e: ApiError,
    crossing: Option<Crossing>,
    broken: Vec<Bytes>,
    to: tokio::sync::oneshot::Sender<forward::OpenBody>,
) -> wait::Handled {
    let (Some(c), Some((view, link)), Some(local_reset)) = (crossing, state.node(), spillable(&e))
    else {
        return Err((e, out));
    };
    let mut out = out;
    if let Some(peer) = forward::spill_peer(view) {
        let node = (&**view, link);
        match forward::cross_open(
            state,
            node,
            &peer,
            Why::Spill,
            None,
            c.outgoing(),
            out,
            broken,
        )
        .await
        {
            Ok(body) => {
                // The receiver lives in the client's body, which is what is polling this.
                let _ = to.send(body);
                return Ok(());
            }
            Err(back) => out = back,
        }
    }
    Err((unplaced(state, view, local_reset, e), out))
}

/// Whether an error lets a request spill to a peer — no local account could take it — and if
/// so this node's soonest reset (unix ms) that the cluster-wide answer weighs.
fn spillable(e: &ApiError) -> Option<Option<i64>> {
    match e {
        ApiError::Exhausted { resets_at, .. } => Some(resets_at.map(|s| s * 1000)),
        ApiError::Unavailable(_) => Some(None),
        _ => None,
    }
}

/// The answer for a spillable request no peer took: an exhausted one — or an unavailable one
/// when some peer published a reset — becomes a 429 naming the soonest reset of the cluster.
fn unplaced(
    state: &AppState,
    view: &crate::cluster::ClusterView,
    local_reset: Option<i64>,
    e: ApiError,
) -> ApiError {
    crate::cluster::traffic::nowhere();
    let peers_reset = forward::soonest_reset(view, None);
    match forward::soonest_reset(view, local_reset) {
        Some(at) if local_reset.is_some() || peers_reset.is_some() => {
            ApiError::exhausted(Some(at), state.now_ms())
        }
        _ => e,
    }
}

/// Answers a request that needs no account (`count_tokens`): authenticated and read like any
/// other, recorded on `route`, errors in `protocol`'s shape.
pub async fn answer_locally<P: ClientProtocol>(
    state: &AppState,
    id: Option<Extension<RequestId>>,
    headers: &HeaderMap,
    body: Body,
    route: &'static str,
    protocol: &P,
    answer: impl FnOnce(&[u8]) -> Result<Value, ApiError>,
) -> Response {
    let mut out = Outcome::new(state, route, id);
    // Never forwarded (no account is used): a forwarded header here signs no path this node
    // checks, so it is refused.
    let answer = match admit(state, "", headers, body, &mut out).await {
        Ok((body, _permit, _hop)) => answer(&body),
        Err(e) => Err(e),
    };
    match answer {
        Ok(v) => {
            out.finish(200, None);
            axum::Json(v).into_response()
        }
        Err(e) => fail(protocol, out, e),
    }
}

/// Step 1: authenticates from the head, then reads the body. A request another node forwarded
/// is admitted by its signed header instead ([`forward::receive`]), which covers the body.
async fn admit(
    state: &AppState,
    path: &str,
    headers: &HeaderMap,
    body: Body,
    out: &mut Outcome,
) -> Result<(Bytes, Option<Permit>, Option<Forwarded>), ApiError> {
    let limit = state.config().server.max_body_bytes;
    if state.node().is_some() && headers.contains_key(crate::cluster::forward::HEADER) {
        let body = request_body::read(headers, body, limit).await?;
        let body = request_body::decode(headers, body, limit).await?;
        let hop = forward::receive(state, path, headers, &body)?;
        if let Some(fwd) = &hop {
            out.rec.client_key = fwd.key.clone();
            out.rec.forwarded_from = Some(fwd.node.clone());
        }
        return Ok((body, None, hop));
    }
    let permit = match auth::authenticate(state, headers) {
        Ok(p) => p,
        Err(e) => {
            request_body::discard(headers, body, limit);
            return Err(forward::misdirected(headers).unwrap_or(e));
        }
    };
    out.rec.client_key = permit.as_ref().map(auth::permit_name);
    let body = request_body::read(headers, body, limit).await?;
    let body = request_body::decode(headers, body, limit).await?;
    Ok((body, permit, None))
}

/// Step 2: the protocol's request, its turn routed, the key's models checked.
fn parse<P: ClientProtocol>(
    state: &AppState,
    protocol: &P,
    headers: &HeaderMap,
    body: Bytes,
    permit: &Option<Permit>,
    out: &mut Outcome,
) -> Result<(ResponsesRequest, P::Ctx), ApiError> {
    let (mut req, ctx) = protocol.request(headers, body, &state.config().models)?;
    out.rec.model = Some(req.model.clone());
    route_turn(state, &mut req);
    if let Some(p) = permit {
        let keys = state.keys();
        let client = protocol.client_model(&ctx, &req);
        let allowed = keys.model_allowed(p, client)
            || (client != req.model && keys.model_allowed(p, &req.model));
        if !allowed {
            return Err(ApiError::Forbidden(format!(
                "this key may not use model '{client}'"
            )));
        }
    }
    Ok((req, ctx))
}

/// A 2xx upstream answer that came within the first heartbeat, with what its delivery needs.
struct Answer {
    req: ResponsesRequest,
    served: failover::Served,
    out: Outcome,
    /// The heartbeat timer the wait armed, for the pass-through to re-arm.
    tick: Option<stream::Tick>,
}

/// Step 4 from a 2xx upstream answer that came within the first heartbeat: upstream's
/// headers, then the stream or the collected answer.
async fn deliver<P: ClientProtocol>(
    state: &AppState,
    protocol: P,
    ctx: P::Ctx,
    answer: Answer,
    permit: Option<Permit>,
) -> Response {
    let Answer {
        req,
        mut served,
        mut out,
        tick,
    } = answer;
    let cfg = state.config();
    // Sized once: the copied headers plus the three this answer adds, no rehash while filling.
    let mut resp_headers = HeaderMap::with_capacity(served.response.headers().len() + 3);
    copy_response_headers(served.response.headers(), &mut resp_headers);
    if protocol.echoes_turn_state() {
        remember_turn(state, &resp_headers, &req, &served.lease.account_id);
    }
    let upstream: stream::ByteStream = Box::pin(served.response.bytes_stream());
    if !req.client_stream {
        let idle = cfg.upstream.idle_timeout;
        let learn = (!protocol.translated())
            .then(|| super::reasoning::Learner::new(state.minted(), &served.lease.account_id));
        let echo = served.echo.take();
        let collected = collect::collect(upstream, &mut served.lease, idle, &mut out, learn).await;
        drop(served.lease);
        let answer = collected.and_then(|mut v| {
            req.names.restore_value(&mut v);
            if let Some(echo) = &echo {
                echo.restore_value(&mut v);
            }
            protocol.collected(&ctx, &req, v)
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
            Err(e) => fail(&protocol, out, e),
        };
    }
    let echo = served.echo.take();
    let mut pass = stream::PassThrough::new(state, &cfg, served.lease, out, protocol.translated());
    pass.tick = tick;
    pass.names = req.names.clone();
    pass.echo = echo;
    let body = protocol.encode(ctx, stream::pass_through(upstream, pass));
    sse_response(resp_headers, hold(body, permit))
}

/// Step 4 for a streaming client whose failover outlasted the first heartbeat ([`wait`]):
/// heartbeats, then the stream (upstream's headers can no longer be forwarded; the turn state
/// is still remembered for the client's next request), or the terminal error.
fn late<P: ClientProtocol>(
    state: &AppState,
    protocol: P,
    ctx: P::Ctx,
    pending: wait::Pending,
    permit: Option<Permit>,
    crossing: Option<Crossing>,
) -> Response {
    let st = state.clone();
    let (spilt, handed) = tokio::sync::oneshot::channel();
    let (st2, broken) = (state.clone(), protocol.broken_stream(forward::BROKEN));
    let failure =
        move |e, out| async move { refuse_open(&st2, out, e, crossing, broken, spilt).await };
    let (echoes, translated) = (protocol.echoes_turn_state(), protocol.translated());
    let raw = wait::late_body(
        pending,
        move |served, req, out| {
            if echoes {
                let mut head = HeaderMap::new();
                copy_response_headers(served.response.headers(), &mut head);
                remember_turn(&st, &head, &req, &served.lease.account_id);
            }
            let upstream: stream::ByteStream = Box::pin(served.response.bytes_stream());
            let echo = served.echo;
            let mut pass =
                stream::PassThrough::new(&st, &st.config(), served.lease, out, translated);
            pass.names = req.names.clone();
            pass.echo = echo;
            stream::pass_through(upstream, pass)
        },
        failure,
    );
    let repeated = protocol.opened_by_keepalive();
    let body = forward::spliced(protocol.encode(ctx, raw), handed, repeated);
    sse_response(HeaderMap::with_capacity(3), hold(body, permit))
}

/// The body, holding the key's concurrency permit exactly as long as it lives.
fn hold(body: impl ClientStream, permit: Option<Permit>) -> impl ClientStream {
    body.map(move |chunk| {
        let _hold = &permit;
        chunk
    })
}

/// Step 5 for a failed request: renders its error in the client's protocol and records it
/// with the status the client gets.
fn fail<P: ClientProtocol>(protocol: &P, mut out: Outcome, e: ApiError) -> Response {
    let message = e.to_string();
    let resp = protocol.render(e);
    out.finish(resp.status().as_u16(), Some(message));
    resp
}

/// Remembers which affinity and which account a turn-state token belongs to (from the already
/// bounded `forwarded` headers), so the client's follow-up of the turn reaches the same account
/// and no other account is shown the token. A keyless request's token is not remembered: its
/// follow-up goes upstream without it (as a turn's first request does), never to a stranger.
fn remember_turn(state: &AppState, forwarded: &HeaderMap, req: &ResponsesRequest, account: &str) {
    if let (Some(token), Some(key)) = (
        forwarded
            .get("x-codex-turn-state")
            .and_then(|v| v.to_str().ok()),
        &req.affinity,
    ) {
        state.turns().remember(token, key, account);
    }
}

/// Routes a follow-up of a turn by the affinity of the request that received its turn-state
/// token, and notes the account that minted it. Keyless requests get no synthetic key: every
/// one would cost the pool an affinity entry, and the clients that echo turn state (Codex)
/// always send `prompt_cache_key` and `session-id`.
fn route_turn(state: &AppState, req: &mut ResponsesRequest) {
    let Some(turn) = req.turn_state.as_deref().and_then(|t| state.turns().get(t)) else {
        return;
    };
    req.affinity = Some(turn.affinity);
    req.turn_account = Some(turn.account);
}
