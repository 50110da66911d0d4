//! The body of a translated streamed answer ([`super::pipeline`] step 5 for Chat and Messages):
//! the proxy's pass-through stream (upstream Responses
//! SSE, its `: keepalive` comments, and the `response.failed` it writes itself on idle timeout,
//! transport failure, premature close or shutdown) parsed and re-encoded in the client's
//! protocol. Keepalives become the protocol's own (`ping` events for Anthropic, an SSE comment
//! for OpenAI). When the inner stream ends, the translator's `finish` guarantees a terminal
//! frame: a stream that ended without one is reported as a premature close, never as success.
//!
//! An upstream event too long to parse ([`crate::sse::MAX_LINE`]) cannot be translated: the
//! stream ends there with the protocol's error ([`stream::event_too_large`]) — never carries on
//! without it. The pass-through underneath ends right after the same event (it parses the same
//! bytes with the same parser) and records the request; what it still sends is not relayed.

use crate::proxy::stream::{self, KEEPALIVE};
use crate::sse::SseParser;
use crate::translate::StreamEnd;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use serde_json::Value;
use std::pin::Pin;

/// The proxy's pass-through body.
pub type Inner = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

/// What a client protocol's stream encoder does; the translated protocols implement it.
pub trait Encoder: Send + 'static {
    /// Frames for one upstream event.
    fn event(&mut self, ev: &Value) -> Vec<Bytes>;
    /// Frames for a stretch of upstream silence.
    fn keepalive(&mut self) -> Vec<Bytes>;
    /// Closing frames.
    fn finish(&mut self, end: StreamEnd) -> Vec<Bytes>;
}

struct Relay<E> {
    inner: Inner,
    /// Lossless: after an event it had to drop, it yields nothing more.
    parser: SseParser,
    encoder: E,
    /// An event was lost and the error frames went out: everything after is not relayed.
    lost: bool,
}

impl<E: Encoder> Relay<E> {
    fn chunk(&mut self, chunk: &[u8]) -> Vec<Bytes> {
        if self.lost {
            return Vec::new();
        }
        if chunk == KEEPALIVE {
            return self.encoder.keepalive();
        }
        let mut frames = Vec::new();
        for ev in self.parser.feed(chunk) {
            frames.extend(self.event(&ev.data));
        }
        self.check_lost(&mut frames);
        frames
    }

    /// Ends the client stream with the protocol's error once the parser dropped an event.
    fn check_lost(&mut self, frames: &mut Vec<Bytes>) {
        if self.parser.dropped() > 0 && !self.lost {
            self.lost = true;
            let message = stream::event_too_large();
            frames.extend(self.encoder.finish(StreamEnd::Failed { message }));
        }
    }

    fn event(&mut self, data: &[u8]) -> Vec<Bytes> {
        match serde_json::from_slice::<Value>(data) {
            Ok(v) => self.encoder.event(&v),
            Err(_) => Vec::new(),
        }
    }

    fn end(&mut self, end: StreamEnd) -> Vec<Bytes> {
        if self.lost {
            return Vec::new();
        }
        let mut frames = match self.parser.finish() {
            Some(ev) => self.event(&ev.data),
            None => Vec::new(),
        };
        self.check_lost(&mut frames);
        frames.extend(self.encoder.finish(end));
        frames
    }
}

/// Re-encodes the pass-through body for the client.
pub fn relay<E: Encoder>(inner: Inner, encoder: E) -> Inner {
    let relay = Relay {
        inner,
        parser: SseParser::lossless(),
        encoder,
        lost: false,
    };
    Box::pin(futures::stream::unfold(Some(relay), |state| async move {
        let mut r = state?;
        loop {
            let (frames, more) = match r.inner.next().await {
                Some(Ok(chunk)) => (r.chunk(&chunk), true),
                Some(Err(e)) => (
                    r.end(StreamEnd::Failed {
                        message: e.to_string(),
                    }),
                    false,
                ),
                // Upstream's terminal event has normally been translated already and `finish`
                // adds nothing; without one this is a premature close.
                None => (r.end(StreamEnd::PrematureClose), false),
            };
            if !frames.is_empty() {
                return Some((Ok(Bytes::from(frames.concat())), more.then_some(r)));
            }
            if !more {
                return None;
            }
        }
    }))
}
