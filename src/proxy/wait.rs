//! Waiting for upstream's first byte on behalf of a streaming client (issue 15, item 8).
//!
//! Failover ([`failover::send`]) can take long: a hung upstream holds each attempt for
//! `upstream.first_byte_timeout`, and one request may make several (all bounded together by
//! `upstream.request_deadline`). A client — and every reverse proxy in between — that hears
//! nothing for minutes gives up on its own, without a word of why. So when failover has not
//! answered within `server.sse_heartbeat`, the daemon commits to `200 text/event-stream` and
//! sends a `: keepalive` comment at once and after every further heartbeat, until failover
//! ends:
//!
//! - served → the answer goes on as the usual pass-through ([`super::stream`]), except that
//!   upstream's response headers can no longer reach the client (the head went out already);
//! - failed (no account, the deadline passed …) → what the caller's `failure` hook makes of it:
//!   in cluster mode a spill to a peer, whose events then continue the open stream
//!   (`super::pipeline`, docs/cluster.md "Requests across nodes") — the keepalives go on while
//!   the peer's answer head is awaited, up to `cluster.peer_head_timeout`; else one terminal
//!   `response.failed` carrying the error's code and message, as after any other mid-stream
//!   failure.
//!
//! A failover that answers within the first heartbeat — nearly every one — is answered exactly
//! as before, with its own status and headers. The translated routes wrap the same
//! Responses-level body in their relay: a keepalive becomes an Anthropic `ping` (after
//! `message_start`) or an OpenAI comment, the `response.failed` the protocol's error event.
//! Non-streaming clients cannot be kept alive this way; they just wait, bounded by the deadline.
//!
//! Known gap: when the daemon shuts down during such a wait, the client gets a terminal
//! `server_shutting_down` event but the request is recorded as client-closed (its record lives
//! inside the failover that is cancelled).

use crate::http::errors::ApiError;
use crate::http::state::AppState;
use crate::proxy::failover::{self, Served};
use crate::proxy::outcome::Outcome;
use crate::proxy::request::ResponsesRequest;
use crate::proxy::stream::{KEEPALIVE, Tick, failed_event};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use http::HeaderMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// Failover's answer, with what it needed handed back to the caller.
pub struct Done {
    /// The served answer, or why there is none.
    pub served: Result<Served, ApiError>,
    /// The request it was for.
    pub req: ResponsesRequest,
    /// The request's record.
    pub out: Outcome,
}

/// A failover still running after the first heartbeat, to be owned by the body that waits.
pub struct Pending {
    /// The failover itself.
    failover: Pin<Box<dyn Future<Output = Done> + Send>>,
    /// `server.sse_heartbeat`.
    heartbeat: Duration,
    /// Becomes `true` when the shutdown grace is over.
    drain: watch::Receiver<bool>,
}

/// How failover for a streaming client began.
// `Ready` is nearly every request: boxing it would cost an allocation each, to save a few
// hundred bytes of stack for a moment.
#[allow(clippy::large_enum_variant)]
pub enum Start {
    /// It finished within one heartbeat: answer as usual (its status, upstream's headers). The
    /// heartbeat timer goes on to the pass-through ([`super::stream::PassThrough::tick`]).
    Ready(Done, Tick),
    /// It is still running: answer `200 text/event-stream` with [`late_body`].
    Late(Pending),
}

/// Runs failover for a streaming client; after one `server.sse_heartbeat` of it, stops
/// waiting (not the failover) and hands it over.
pub async fn start(
    state: &AppState,
    req: ResponsesRequest,
    headers: HeaderMap,
    mut out: Outcome,
) -> Start {
    let heartbeat = state.config().server.sse_heartbeat;
    let st = state.clone();
    // Boxed so that, still running, it can move into the response body.
    let mut failover: Pin<Box<dyn Future<Output = Done> + Send>> = Box::pin(async move {
        let served = failover::send(&st, &req, &headers, &mut out).await;
        Done { served, req, out }
    });
    let mut tick: Tick = Box::pin(tokio::time::sleep(heartbeat));
    tokio::select! {
        // The failover first, as a timeout polls it: one that is ready never waits on the timer.
        biased;
        done = &mut failover => Start::Ready(done, tick),
        () = &mut tick => Start::Late(Pending {
            failover,
            heartbeat,
            drain: state.drain(),
        }),
    }
}

/// Where a late body is.
enum Phase<F, G, H, S> {
    /// Failover runs; the next keepalive is due at the instant (`None`: at once, the first).
    Waiting(Pending, F, G, Option<Instant>),
    /// Failover failed and `failure` is handing the request on — a spill waiting for the
    /// peer's answer head, up to `cluster.peer_head_timeout` — with keepalives at the same pace
    /// meanwhile: the next one is due at the instant.
    Handing(Pin<Box<H>>, Instant, Duration, watch::Receiver<bool>),
    /// Upstream answered: its stream, as `then` made it.
    Streaming(Pin<Box<S>>),
    /// The terminal event went out.
    Over,
}

/// What a late body's `failure` hook did with a failed failover.
pub type Handled = Result<(), (ApiError, Outcome)>;

/// One step of a late body.
type Step<F, G, H, S> = Option<(Result<Bytes, std::io::Error>, Phase<F, G, H, S>)>;

fn keepalive() -> Result<Bytes, std::io::Error> {
    Ok(Bytes::from_static(KEEPALIVE))
}

/// The terminal event of a wait the shutdown grace ended.
fn shutting_down() -> Result<Bytes, std::io::Error> {
    let message = "the server is shutting down; retry the request";
    Ok(failed_event(None, "server_shutting_down", message))
}

/// The body of a late answer: a keepalive at once and after every heartbeat while failover
/// runs, then what `then` makes of the served answer; a failed one goes to `failure`, which
/// hands it on (`Ok`: this body then stays open and silent) or gives it back for one terminal
/// `response.failed` — the keepalives going on while it decides.
pub fn late_body<F, G, H, S>(
    pending: Pending,
    then: F,
    failure: G,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static
where
    F: FnOnce(Served, ResponsesRequest, Outcome) -> S + Send + 'static,
    G: FnOnce(ApiError, Outcome) -> H + Send + 'static,
    H: Future<Output = Handled> + Send + 'static,
    S: Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
{
    let start: Phase<F, G, H, S> = Phase::Waiting(pending, then, failure, None);
    futures::stream::unfold(start, move |phase| async move {
        match phase {
            Phase::Waiting(p, then, g, None) => {
                let next = Instant::now() + p.heartbeat;
                Some((keepalive(), Phase::Waiting(p, then, g, Some(next))))
            }
            Phase::Waiting(mut p, then, g, Some(next)) => tokio::select! {
                done = &mut p.failover => match done.served {
                    Ok(served) => {
                        let mut s = Box::pin(then(served, done.req, done.out));
                        let item = s.next().await?;
                        Some((item, Phase::Streaming(s)))
                    }
                    Err(e) => handing(Box::pin(g(e, done.out)), next, p.heartbeat, p.drain).await,
                },
                () = tokio::time::sleep_until(next) => {
                    let next = Instant::now() + p.heartbeat;
                    Some((keepalive(), Phase::Waiting(p, then, g, Some(next))))
                }
                () = drained(&mut p.drain) => Some((shutting_down(), Phase::Over)),
            },
            Phase::Handing(h, next, heartbeat, drain) => handing(h, next, heartbeat, drain).await,
            Phase::Streaming(mut s) => {
                let item = s.next().await?;
                Some((item, Phase::Streaming(s)))
            }
            Phase::Over => None,
        }
    })
}

/// Waits for the `failure` hook's decision, with a keepalive whenever one is due at `next`.
async fn handing<F, G, H, S>(
    mut h: Pin<Box<H>>,
    next: Instant,
    heartbeat: Duration,
    mut drain: watch::Receiver<bool>,
) -> Step<F, G, H, S>
where
    H: Future<Output = Handled>,
{
    tokio::select! {
        handled = &mut h => match handled {
            // Handed on: stays open and silent, for the stream around it to drop
            // (`pipeline::late`).
            Ok(()) => futures::future::pending().await,
            Err((e, out)) => Some((Ok(failed(out, &e)), Phase::Over)),
        },
        () = tokio::time::sleep_until(next) => {
            let next = Instant::now() + heartbeat;
            Some((keepalive(), Phase::Handing(h, next, heartbeat, drain)))
        }
        () = drained(&mut drain) => Some((shutting_down(), Phase::Over)),
    }
}

/// Resolves when the shutdown grace is over (or the daemon's state is gone).
async fn drained(drain: &mut watch::Receiver<bool>) {
    let _ = drain.wait_for(|over| *over).await;
}

/// Records a failover that failed after heartbeats went out, and renders its terminal event:
/// the error's own code (`timeout`, `usage_limit_reached`, `no_available_accounts` …) and
/// message; a refusal upstream blamed on the request also carries upstream's body.
fn failed(mut out: Outcome, e: &ApiError) -> Bytes {
    let body = e.openai_body();
    let code = body["error"]["code"].as_str().unwrap_or("codex_api_error");
    let mut message = e.to_string();
    if let ApiError::Passthrough { body, .. } = e {
        message.push_str(": ");
        message.push_str(&String::from_utf8_lossy(&body[..body.len().min(2000)]));
    }
    let frame = failed_event(None, code, &message);
    out.finish(200, Some(message));
    frame
}
