//! The pass-through body of a streamed answer. Upstream chunks go to the client unchanged
//! (`Body::from_stream`); each chunk is also fed to the [`Observer`] to learn usage and the
//! terminal event. What only the daemon can say is appended as SSE it generates itself:
//!
//! - `: keepalive` comments after `server.sse_heartbeat` of upstream silence (so reverse
//!   proxies and clients do not time out during long reasoning);
//! - a terminal `response.failed` when upstream ends without a terminal event, when the
//!   transport fails after the first byte, when upstream is silent past
//!   `upstream.idle_timeout`, or when the daemon is shutting down and the grace period is over;
//!   for a translated stream also right after an event too long to observe
//!   ([`EVENT_TOO_LARGE`]: its translator cannot read it either, and the answer would silently
//!   lack it). A Responses client gets such an event's bytes unchanged, so its stream goes on.
//!
//! The terminal event (`response.completed`, `response.failed`, `response.incomplete`) ends the
//! client's stream: the real backend may keep the connection open after it (Codex returns at the
//! terminal event for that reason, `codex-api/src/sse/responses.rs`), so the lease is released
//! and the request recorded right there, the upstream response is dropped, and nothing — no
//! keepalive, no error — is sent after it. Keepalives go only between events, never inside one
//! whose bytes are half sent: a Responses client gets upstream's bytes, so while it holds part
//! of an event (one larger than the back-fill's hold-back, [`crate::sse::MAX_LINE`], split
//! across a pause) no keepalive goes; a translated client gets frames its relay writes from
//! whole events, so its keepalives go on through such a pause.
//!
//! Tool names and call ids the request shortened ([`crate::upstream::names`]) are mapped back in
//! every complete event before it leaves, and so is the `prompt_cache_key` upstream echoes in
//! its response objects when the request's went as a stand-in ([`Echo`]), in the chunks that
//! brought such an event only.
//!
//! The stream owns the lease and the request's [`Outcome`]: when the client disconnects, hyper
//! drops the body, which drops the upstream response (cancelling it), releases the lease
//! (RAII) and records the request as client-closed.

use crate::config::Config;
use crate::http::state::AppState;
use crate::proxy::backfill::Backfill;
use crate::proxy::observe::{Observer, Terminal};
use crate::proxy::outcome::Outcome;
use crate::proxy::reasoning::Learner;
use crate::upstream::chain;
use crate::upstream::names::ToolNames;
use crate::upstream::pseudonym::Echo;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use rotor_actors::{Lease, UpstreamFailure};
use std::pin::Pin;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};

/// The upstream body as a stream of chunks.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, reqwest::Error>> + Send>>;

/// A heartbeat timer, handed on so that one answer arms one timer (see [`PassThrough::tick`]).
pub type Tick = Pin<Box<Sleep>>;

/// The comment sent during upstream silence.
pub const KEEPALIVE: &[u8] = b": keepalive\n\n";

/// `error.code` of the terminal error that ends an answer the daemon cannot deliver whole:
/// upstream sent an event longer than [`crate::sse::MAX_LINE`], which can be neither translated
/// nor collected. No account is blamed: upstream answered, the daemon cannot carry it.
pub const EVENT_TOO_LARGE: &str = "upstream_event_too_large";

/// The message that goes with [`EVENT_TOO_LARGE`].
pub fn event_too_large() -> String {
    format!(
        "upstream sent an event larger than {} MiB, too large to translate or collect; the answer is incomplete",
        crate::sse::MAX_LINE >> 20
    )
}

/// Everything the pass-through needs besides the upstream body.
pub struct PassThrough {
    /// The serving account's lease; dropped when the stream ends or is dropped.
    pub lease: Lease,
    /// The request record, finished when the stream ends.
    pub outcome: Outcome,
    /// Silence after which a keepalive comment is sent.
    pub heartbeat: Duration,
    /// Silence after which the stream is failed.
    pub idle_timeout: Duration,
    /// Becomes `true` when the shutdown grace is over: end with a terminal event now.
    pub drain: watch::Receiver<bool>,
    /// End right after an event too long to observe (a translated stream, whose translator
    /// cannot read it either) instead of passing on (a Responses client gets it unchanged).
    pub end_on_dropped_event: bool,
    /// Back-fill an empty `output` of `response.completed` ([`Backfill`]): a Responses
    /// client reads it; a translator reads the items themselves.
    pub backfill: bool,
    /// The timer the wait for the first byte armed ([`super::wait`]), re-armed here rather
    /// than a second one armed; `None`: arm one.
    pub tick: Option<Tick>,
    /// Learns the reasoning the serving account mints ([`super::reasoning`]); only for a
    /// Responses client, the one that replays it (the translators drop thinking blocks).
    pub learn: Option<Learner>,
    /// The originals of the names the request shortened, mapped back in the answer.
    pub names: ToolNames,
    /// The client's `prompt_cache_key` in place of the stand-in upstream echoes; applied to
    /// whole events only (a back-filled or held stream: a Responses client's).
    pub echo: Option<Echo>,
    /// The client does not get these bytes as they are: a translated stream's relay parses
    /// every event and writes its own frames ([`super::relay`]), so a keepalive between two
    /// upstream chunks — even inside one upstream event — reaches its client between two of
    /// its events. A Responses client gets the bytes themselves: no keepalive may go while it
    /// holds part of an event.
    pub reframed: bool,
}

impl PassThrough {
    /// The pass-through of one answer served on `lease`, with `cfg`'s heartbeat and idle
    /// timeout; `translated` for the Chat and Messages routes (see `end_on_dropped_event`).
    pub fn new(
        state: &AppState,
        cfg: &Config,
        lease: Lease,
        outcome: Outcome,
        translated: bool,
    ) -> Self {
        Self {
            learn: (!translated).then(|| Learner::new(state.minted(), &lease.account_id)),
            lease,
            outcome,
            heartbeat: cfg.server.sse_heartbeat,
            idle_timeout: cfg.upstream.idle_timeout,
            drain: state.drain(),
            end_on_dropped_event: translated,
            backfill: !translated,
            tick: None,
            names: ToolNames::default(),
            echo: None,
            reframed: translated,
        }
    }
}

struct State {
    upstream: ByteStream,
    observer: Observer,
    lease: Option<Lease>,
    outcome: Outcome,
    heartbeat: Duration,
    idle_timeout: Duration,
    drain: watch::Receiver<bool>,
    tick: Tick,
    last_data: Instant,
    usage_sent: bool,
    end_on_dropped_event: bool,
    /// An event was dropped and `end_on_dropped_event` holds: the next item ends the stream.
    ending: bool,
    done: bool,
    backfill: Option<Backfill>,
    names: ToolNames,
    /// [`PassThrough::echo`], when the stream's events arrive whole.
    echo: Option<Echo>,
    /// The observer's [`Observer::responses`] when the last chunk went out.
    responses: u32,
    /// The client has part of an event: no keepalive may go now. Never set for a
    /// [`PassThrough::reframed`] stream.
    mid_event: bool,
    /// [`PassThrough::reframed`].
    reframed: bool,
}

/// Turns an upstream body into the client's body stream.
pub fn pass_through(
    upstream: ByteStream,
    p: PassThrough,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let tick = match p.tick {
        Some(mut tick) => {
            // Later than its deadline so far: tokio moves an armed timer later without
            // re-registering it.
            tick.as_mut().reset(Instant::now() + p.heartbeat);
            tick
        }
        None => Box::pin(tokio::time::sleep(p.heartbeat)),
    };
    let state = State {
        upstream,
        observer: Observer::new(false)
            .learning(p.learn)
            .backfilling(p.backfill),
        lease: Some(p.lease),
        outcome: p.outcome,
        heartbeat: p.heartbeat,
        idle_timeout: p.idle_timeout,
        drain: p.drain,
        tick,
        last_data: Instant::now(),
        usage_sent: false,
        end_on_dropped_event: p.end_on_dropped_event,
        ending: false,
        done: false,
        backfill: if p.backfill {
            Some(Backfill::default())
        } else if !p.names.is_empty() {
            Some(Backfill::holding())
        } else {
            None
        },
        echo: p.echo.filter(|_| p.backfill || !p.names.is_empty()),
        names: p.names,
        responses: 0,
        mid_event: false,
        reframed: p.reframed,
    };
    futures::stream::unfold(state, |mut st| async move {
        let chunk = next(&mut st).await?;
        Some((Ok(chunk), st))
    })
}

async fn next(st: &mut State) -> Option<Bytes> {
    if st.done {
        return None;
    }
    if st.ending {
        tracing::warn!(account = ?st.lease.as_ref().map(|l| &l.account_id), "ending a translated stream after an event too large to translate");
        return Some(st.fail(None, event_too_large(), EVENT_TOO_LARGE));
    }
    if *st.drain.borrow() {
        return Some(st.fail(
            None,
            "the server is shutting down; retry the request".into(),
            "server_shutting_down",
        ));
    }
    loop {
        return tokio::select! {
            biased;
            item = st.upstream.next() => match item {
                Some(Ok(bytes)) => Some(st.on_chunk(bytes)),
                Some(Err(e)) => { let f = st.on_error(&e); st.with_tail(f) }
                None => { let f = st.on_end(); st.with_tail(f) }
            },
            _ = st.drain.changed() => {
                Some(st.fail(None, "the server is shutting down; retry the request".into(), "server_shutting_down"))
            }
            _ = &mut st.tick => {
                if st.last_data.elapsed() >= st.idle_timeout {
                    let reason = format!("upstream sent nothing for {:?}", st.idle_timeout);
                    tracing::warn!(account = ?st.lease.as_ref().map(|l| &l.account_id), %reason, "upstream stream idle");
                    Some(st.fail(Some(UpstreamFailure::AfterFirstByte { reason: reason.clone() }), reason, "upstream_idle_timeout"))
                } else {
                    let wait = st.heartbeat;
                    st.tick.as_mut().reset(Instant::now() + wait);
                    if st.mid_event {
                        continue; // a comment inside an event would corrupt it
                    }
                    st.outcome.first_byte();
                    Some(Bytes::from_static(KEEPALIVE))
                }
            }
        };
    }
}

/// Whether `sent` ends at an event boundary (a blank line).
fn at_boundary(sent: &[u8]) -> bool {
    sent.ends_with(b"\n\n") || sent.ends_with(b"\r\n\r\n")
}

impl State {
    fn on_chunk(&mut self, bytes: Bytes) -> Bytes {
        self.observer.push(&bytes);
        self.ending = self.end_on_dropped_event && self.observer.dropped() > 0;
        self.outcome.first_byte();
        self.last_data = Instant::now();
        let wait = self.heartbeat;
        self.tick.as_mut().reset(self.last_data + wait);
        self.report_usage();
        let out = match self.backfill.as_mut() {
            Some(b) => self
                .names
                .restore_bytes(b.push_seen(bytes, &self.observer.seen)),
            None => bytes,
        };
        let out = match &self.echo {
            Some(echo) if self.observer.responses != self.responses => {
                self.responses = self.observer.responses;
                echo.restore(out)
            }
            _ => out,
        };
        if self.observer.terminal.is_some() && !self.ending {
            // The answer is whole: end here even if upstream keeps the connection open. What
            // the back-fill still holds comes after the terminal event and is not sent. (A
            // translated answer that lost an event ends with its error instead, `ending`.)
            self.complete();
        } else if !out.is_empty() && !self.reframed {
            self.mid_event = !at_boundary(&out);
        }
        out
    }

    /// The last bytes when upstream ended: the daemon's terminal `frame` if any — an
    /// unfinished event the back-fill still holds is dropped before it, so the client can
    /// parse the terminal event — else that unfinished tail as upstream sent it.
    fn with_tail(&mut self, frame: Option<Bytes>) -> Option<Bytes> {
        let tail = self
            .backfill
            .as_mut()
            .map(Backfill::finish)
            .unwrap_or_default();
        match frame {
            None if !tail.is_empty() => Some(tail),
            other => other,
        }
    }

    fn on_error(&mut self, e: &reqwest::Error) -> Option<Bytes> {
        let reason = chain(e);
        tracing::warn!(account = ?self.lease.as_ref().map(|l| &l.account_id), error = %reason, "upstream stream broke after the first byte");
        if self.observer.terminal.is_some() {
            return self.complete();
        }
        let failure = UpstreamFailure::AfterFirstByte {
            reason: reason.clone(),
        };
        Some(self.fail(
            Some(failure),
            format!("upstream stream broke: {reason}"),
            "upstream_stream_error",
        ))
    }

    fn on_end(&mut self) -> Option<Bytes> {
        self.observer.finish();
        self.report_usage();
        if self.observer.terminal.is_some() {
            return self.complete();
        }
        let reason = "upstream closed the stream without a terminal event".to_owned();
        tracing::warn!(account = ?self.lease.as_ref().map(|l| &l.account_id), "{reason}");
        Some(self.fail(
            Some(UpstreamFailure::PrematureClose {
                reason: reason.clone(),
            }),
            reason,
            "upstream_premature_close",
        ))
    }

    fn report_usage(&mut self) {
        if self.usage_sent {
            return;
        }
        if let (Some(u), Some(lease)) = (self.observer.usage, self.lease.as_mut()) {
            lease.usage(u);
            self.outcome.usage(u);
            self.usage_sent = true;
        }
    }

    /// Upstream ended properly: release the lease, record, end the body.
    fn complete(&mut self) -> Option<Bytes> {
        let error = match &self.observer.terminal {
            Some(Terminal::Failed { code, message }) => Some(format!(
                "response.failed: {}",
                message
                    .as_deref()
                    .or(code.as_deref())
                    .unwrap_or("no message")
            )),
            _ => None,
        };
        self.outcome.finish(200, error);
        self.teach_quota();
        self.lease = None;
        self.done = true;
        None
    }

    /// A quota failure upstream reported in the stream (`response.failed`, `error` event)
    /// teaches the account's quota; the client keeps the bytes it has (no failover).
    fn teach_quota(&self) {
        if let (Some(kind), Some(lease)) = (self.observer.quota_fault(), self.lease.as_ref()) {
            lease.quota_failed(kind);
        }
    }

    /// Ends the stream with a terminal `response.failed` the daemon writes itself.
    fn fail(&mut self, failure: Option<UpstreamFailure>, message: String, code: &str) -> Bytes {
        if let (Some(f), Some(lease)) = (failure, self.lease.as_ref()) {
            lease.failed(f);
        }
        self.teach_quota();
        let frame = failed_event(self.observer.response_id.as_deref(), code, &message);
        self.outcome.first_byte();
        self.outcome.finish(200, Some(message));
        self.lease = None;
        self.done = true;
        frame
    }
}

/// A terminal `response.failed` SSE frame in the Responses protocol. Codex treats unknown codes
/// as a retryable stream error, which is what a broken upstream stream is.
pub fn failed_event(response_id: Option<&str>, code: &str, message: &str) -> Bytes {
    let ev = serde_json::json!({
        "type": "response.failed",
        "response": {
            "id": response_id.unwrap_or("resp_rotor_failed"),
            "object": "response",
            "status": "failed",
            "error": {"code": code, "message": message},
        },
    });
    Bytes::from(format!("event: response.failed\ndata: {ev}\n\n"))
}
