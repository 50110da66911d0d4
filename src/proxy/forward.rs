//! Requests across nodes (docs/cluster.md "Requests across nodes"), in the serving pipeline.
//!
//! - **Receiving**: a request carrying the signed [`HEADER`] was admitted by another node (key,
//!   limits, model); it is accepted only with a valid signature ([`forward::verify`]), then
//!   served here without checking the key again, recorded under the key's name, and never
//!   forwarded on ([`forward::MAX_HOPS`]).
//! - **Affinity**: a conversation whose account now lives on a live peer (this node remembers
//!   the account the key went to, and the view says a peer owns it) is sent to that peer, so
//!   its prompt cache and encrypted reasoning stay with the account. If the peer fails before
//!   its answer's head, the request is served here instead.
//! - **Spill**: a request no local account can take goes to the peer whose published summary
//!   says the most accounts serve; with none, a 429 names the soonest reset of the whole
//!   cluster ([`soonest_reset`]).
//!   A stream whose head and heartbeats already went out ([`crate::proxy::wait`]) spills too:
//!   the peer's events continue it ([`cross_open`], [`spliced`]).
//!
//! The peer's answer passes through as it arrives — status, headers and body bytes (an SSE
//! stream included) — since the peer already rendered it in the client's protocol. A
//! `stream: false` answer comes in the envelope ([`envelope`], [`enveloped`]) and is unwrapped
//! here, so its head too is bounded by [`head_bound`] however long the peer collects.

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;

use crate::cluster::affinity::Recall;
use crate::cluster::envelope;
use crate::cluster::forward::{self, Forwarded, HEADER, MAX_HOPS};
use crate::cluster::traffic::{self, Sent, Why};
use crate::cluster::{ClusterView, Link, Peer, Placement};
use crate::config::Config;
use crate::http::errors::ApiError;
use crate::http::state::AppState;
use crate::proxy::auth::Permit;
use crate::proxy::outcome::Outcome;
use crate::proxy::request::ResponsesRequest;

mod collected;
mod splice;

pub use collected::{enveloped, wants_envelope};
pub use splice::spliced;

/// Client request headers not sent on to the peer: hop-by-hop ones, those the forwarded body
/// no longer matches (it is sent decoded, its length recomputed), the client key (the signed
/// header stands for it), and a forwarded header the client may have sent itself.
const NOT_FORWARDED: &[&str] = &[
    "host",
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "upgrade",
    "content-length",
    "content-encoding",
    "authorization",
    "x-api-key",
    HEADER,
    envelope::ASK,
];

/// Peer answer headers not passed to the client: hop-by-hop ones, and the length (the body is
/// relayed as a stream).
const NOT_RELAYED: &[&str] = &[
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
];

/// Checks the forwarded header of a request, with its body (read and decoded), against the
/// cluster secret: `Ok(None)` without the header, the sender's claims with a valid one, and
/// 403 saying why otherwise (never the secret). Counted either way.
pub fn receive(
    state: &AppState,
    path: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Option<Forwarded>, ApiError> {
    let Some(value) = headers.get(HEADER) else {
        return Ok(None);
    };
    let checked = match (state.node(), value.to_str()) {
        (None, _) => Err(forward::Refusal::NotClustered),
        (Some(_), Err(_)) => Err(forward::Refusal::Malformed("not ASCII")),
        (Some((_, link)), Ok(v)) => {
            forward::verify(&link.secret, "POST", path, v, body, state.now_ms())
        }
    };
    traffic::received(checked.is_ok());
    match checked {
        Ok(fwd) => Ok(Some(fwd)),
        Err(why) => {
            tracing::warn!(reason = %why, "refused a forwarded request");
            Err(ApiError::Forbidden(format!(
                "forwarded request refused: {why}"
            )))
        }
    }
}

/// A request with a forwarded header on a node outside any cluster gets no credit for it: it
/// needs a client key like any other. When it has none, this says why instead of "invalid key"
/// (a node left out of the cluster's config, most likely); only on that error path, so a
/// single node's requests never look for the header.
pub fn misdirected(headers: &HeaderMap) -> Option<ApiError> {
    headers.contains_key(HEADER).then(|| {
        traffic::received(false);
        ApiError::Forbidden(format!(
            "forwarded request refused: {}",
            forward::Refusal::NotClustered
        ))
    })
}

/// A request arriving forwarded for an account: that account serves its conversation here from
/// now on (the pick prefers it while it can).
pub fn adopt(state: &AppState, fwd: &Forwarded, req: &ResponsesRequest) {
    if let (Some(key), Some(account)) = (&req.affinity, &fwd.account) {
        state.pool().prefer(key, account);
    }
}

/// What a forward needs of the request besides the pipeline's state.
pub struct Outgoing<'a> {
    /// The request path (with any prefix), as the peer's router sees it.
    pub path: &'a str,
    /// The client's headers.
    pub headers: &'a HeaderMap,
    /// The body as the client sent it, decoded.
    pub body: &'a Bytes,
    /// The name of the key that admitted it here.
    pub key: Option<String>,
    /// Whether the client streams (bounds how long the answer's head may take).
    pub stream: bool,
}

/// The peer owning the account this request's conversation went to, if that account now lives
/// on a live peer. A conversation this node does not remember is looked up in the shared
/// affinity table ([`crate::cluster::affinity`]); found on a local account, the pool prefers
/// that account from now on.
pub async fn affinity_peer(
    state: &AppState,
    view: &ClusterView,
    req: &ResponsesRequest,
) -> Option<(Peer, String)> {
    let key = req.affinity.as_deref()?;
    let Some(account) = state.pool().affinity_of(key) else {
        return match state.shared_affinity()?.recall(view, key).await {
            Recall::Peer(p, account) => Some((p, account)),
            Recall::Local(account) => {
                state.pool().prefer(key, &account);
                None
            }
            Recall::Miss | Recall::Failed => None,
        };
    };
    match view.placement(&account) {
        Placement::Peer(p) => Some((p, account)),
        Placement::Local | Placement::Nobody => None,
    }
}

/// The live peer that can take a request none of this node's accounts can: the one whose
/// summary says the most accounts serve.
pub fn spill_peer(view: &ClusterView) -> Option<Peer> {
    view.peers()
        .into_iter()
        .filter(|p| p.summary.serving > 0)
        .max_by_key(|p| p.summary.serving)
}

/// The soonest reset of the whole cluster (unix ms): this node's and every live peer's
/// published one.
pub fn soonest_reset(view: &ClusterView, local: Option<i64>) -> Option<i64> {
    view.peers()
        .iter()
        .filter_map(|p| p.summary.soonest_reset)
        .chain(local)
        .min()
}

/// A relayed body on its way: the peer's chunks, what lives as long as the body, the frames
/// that end it if it breaks, and whether the last chunk ended an event.
struct Relay<S> {
    chunks: S,
    held: Option<(Outcome, Box<dyn Send>)>,
    broken: Vec<Bytes>,
    at_boundary: bool,
}

/// What a client reads when the peer serving its forwarded stream stops mid-answer.
pub const BROKEN: &str =
    "the node serving this request stopped answering mid-stream; retry the request";

/// Sends the request to `peer` and answers the client with the peer's answer, holding the
/// key's permit until it ends; or, when the peer could not be used before its answer's head,
/// hands the record back for the caller to serve or refuse locally.
#[allow(clippy::too_many_arguments)]
pub async fn cross(
    state: &AppState,
    node: (&ClusterView, &Link),
    peer: &Peer,
    why: Why,
    account: Option<String>,
    req: Outgoing<'_>,
    mut out: Outcome,
    permit: &mut Option<Permit>,
    broken: Vec<Bytes>,
) -> Result<Response, Outcome> {
    let stream = req.stream;
    match to_peer(state, node, peer, why, account, req, &mut out).await {
        Ok(answer) => {
            let idle = state.config().upstream.idle_timeout;
            // Only a stream can be ended with frames; a collected body that breaks is cut.
            let broken = if stream { broken } else { Vec::new() };
            Ok(relay(answer, idle, out, permit.take(), broken))
        }
        Err(_) => Err(out),
    }
}

/// A client body already under way.
pub type OpenBody = BoxStream<'static, Result<Bytes, std::io::Error>>;

/// [`cross`] for a stream whose `200 text/event-stream` head already went out, with heartbeats
/// ([`crate::proxy::wait`]): the peer's events continue it, its head is dropped (its headers —
/// the turn-state token too — cannot reach the client any more). Only a 2xx answer can
/// continue a stream; any other, or a peer not usable before its head, hands the record back.
#[allow(clippy::too_many_arguments)]
pub async fn cross_open(
    state: &AppState,
    node: (&ClusterView, &Link),
    peer: &Peer,
    why: Why,
    account: Option<String>,
    req: Outgoing<'_>,
    mut out: Outcome,
    broken: Vec<Bytes>,
) -> Result<OpenBody, Outcome> {
    let Ok(answer) = to_peer(state, node, peer, why, account, req, &mut out).await else {
        return Err(out);
    };
    if !answer.status.is_success() {
        tracing::warn!(peer = %peer.id, status = answer.status.as_u16(), "the peer could not serve a stream whose head already went out either");
        out.rec.forwarded_to = None;
        return Err(out);
    }
    let idle = state.config().upstream.idle_timeout;
    let body = relay(answer, idle, out, (), broken).into_body();
    Ok(body
        .into_data_stream()
        .map(|c| c.map_err(std::io::Error::other))
        .boxed())
}

/// The longest a peer may stay silent before its answer's head: a forwarded stream's head must
/// come within it, and so must every keepalive of an enveloped answer (which the peer sends
/// twice as often, [`enveloped`]). `cluster.peer_head_timeout`, capped by
/// `upstream.request_deadline`.
pub fn head_bound(cfg: &Config) -> Duration {
    cfg.cluster
        .peer_head_timeout
        .min(cfg.upstream.request_deadline)
}

/// The head and body of a peer's answer (an enveloped one unwrapped).
pub struct PeerAnswer {
    status: StatusCode,
    headers: HeaderMap,
    body: BoxStream<'static, reqwest::Result<Bytes>>,
}

impl PeerAnswer {
    fn plain(resp: reqwest::Response) -> Self {
        let status =
            StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        let headers = resp.headers().clone();
        PeerAnswer {
            status,
            headers,
            body: resp.bytes_stream().boxed(),
        }
    }
}

/// Sends the request to `peer`, or says why the peer could not be used before its answer's
/// head. A `stream: false` request asks for the envelope, whose keepalives are bounded as a
/// stream's head is ([`head_bound`]); its answer is unwrapped here.
async fn to_peer(
    state: &AppState,
    (view, link): (&ClusterView, &Link),
    peer: &Peer,
    why: Why,
    account: Option<String>,
    req: Outgoing<'_>,
    out: &mut Outcome,
) -> Result<PeerAnswer, String> {
    let fwd = Forwarded {
        node: view.node_id().to_owned(),
        ts_ms: state.now_ms(),
        hop: MAX_HOPS,
        key: req.key,
        account,
    };
    let signed = forward::sign(&link.secret, "POST", req.path, &fwd, req.body);
    let url = format!("{}{}", peer.advertise.trim_end_matches('/'), req.path);
    let mut builder = link.client.post(&url).header(HEADER, signed);
    for (name, value) in req.headers {
        if !NOT_FORWARDED.contains(&name.as_str()) {
            builder = builder.header(name, value);
        }
    }
    if !req.stream {
        builder = builder.header(envelope::ASK, envelope::ASK_VALUE);
    }
    // A peer commits to a stream's head within its heartbeat, and to an envelope's at once;
    // one that sends none within the bound is paused or wedged, and the request goes on
    // without it.
    let bound = head_bound(&state.config());
    let silent = || {
        format!(
            "no answer head within {}",
            humantime::format_duration(bound)
        )
    };
    let sent = tokio::time::timeout(bound, builder.body(req.body.clone()).send()).await;
    let answer = match sent {
        Ok(Ok(resp)) if collected::is_envelope(resp.headers()) => {
            collected::unwrap(resp, bound).await
        }
        Ok(Ok(resp)) => Ok(PeerAnswer::plain(resp)),
        Ok(Err(e)) => Err(crate::upstream::chain(&e)),
        Err(_) => Err(silent()),
    };
    match &answer {
        Ok(a) => {
            traffic::sent(why, Sent::Answered);
            out.rec.forwarded_to = Some(peer.id.clone());
            tracing::debug!(peer = %peer.id, status = a.status.as_u16(), ?why, "forwarded");
        }
        Err(e) => {
            traffic::sent(why, Sent::Failed);
            tracing::warn!(peer = %peer.id, error = %e, ?why, "forwarding to a peer failed before its answer; serving here");
        }
    }
    answer
}

/// The peer's answer as this node's: its status and headers, then its body as it arrives, each
/// chunk within `idle` of the last (the upstream idle bound). If the body breaks off or goes
/// idle, `broken` (the client protocol's failure frames; empty for a collected answer) ends it
/// at an event boundary, so a streaming client reads a failed stream, not a cut connection.
/// `hold` (the request's record and the key's permit) lives as long as the body.
fn relay(
    answer: PeerAnswer,
    idle: Duration,
    mut out: Outcome,
    hold: impl Send + 'static,
    broken: Vec<Bytes>,
) -> Response {
    let status = answer.status;
    let mut head = HeaderMap::with_capacity(answer.headers.len());
    for (name, value) in &answer.headers {
        if !NOT_RELAYED.contains(&name.as_str()) {
            head.append(name.clone(), value.clone());
        }
    }
    out.first_byte();
    out.finish(status.as_u16(), None);
    let chunks = answer.body;
    let state = Relay {
        chunks,
        held: Some((out, Box::new(hold) as Box<dyn Send>)),
        broken,
        at_boundary: true,
    };
    let stream = futures::stream::unfold(state, move |mut r| async move {
        r.held.as_ref()?;
        let why = match tokio::time::timeout(idle, r.chunks.next()).await {
            Ok(Some(Ok(bytes))) => {
                r.at_boundary = bytes.ends_with(b"\n\n");
                return Some((Ok(bytes), r));
            }
            Ok(None) => return None,
            Ok(Some(Err(e))) => crate::upstream::chain(&e),
            Err(_) => "the peer's answer went idle".to_owned(),
        };
        tracing::warn!(error = %why, "a forwarded answer broke off");
        r.held = None;
        if r.broken.is_empty() {
            return Some((Err(std::io::Error::other(why)), r));
        }
        // Close a half-sent event first, so the failure frames parse as events of their own.
        let mut end = if r.at_boundary {
            Vec::new()
        } else {
            b"\n\n".to_vec()
        };
        for f in std::mem::take(&mut r.broken) {
            end.extend_from_slice(&f);
        }
        Some((Ok(Bytes::from(end)), r))
    });
    let mut resp = Response::new(Body::from_stream(stream));
    *resp.status_mut() = status;
    *resp.headers_mut() = head;
    resp
}
