//! The record of one proxied request, written exactly once when the request is over — whether
//! it ended normally, failed, or the client went away mid-stream (the guard is dropped with the
//! response body). It feeds `/metrics` and the recent-requests list.

use crate::http::middleware::RequestId;
use crate::http::state::AppState;
use crate::recent::RequestRecord;
use axum::Extension;
use rotor_actors::Usage;
use std::time::Instant;

/// Status recorded when the client disconnected before the answer was complete (nginx's code).
pub const CLIENT_CLOSED: u16 = 499;

/// What is known so far about one request; recorded on drop.
pub struct Outcome {
    state: AppState,
    started: Instant,
    /// The record under construction.
    pub rec: RequestRecord,
    /// Set once the answer is complete; a drop before that means the client went away.
    pub finished: bool,
}

impl Outcome {
    /// Starts the record of a request on `route`, under the id the middleware gave it (the
    /// one on its log lines; a fresh one when the request did not pass the middleware).
    pub fn new(state: &AppState, route: &'static str, id: Option<Extension<RequestId>>) -> Self {
        let request_id = id.map_or_else(RequestId::fresh, |Extension(id)| id).0;
        Self {
            state: state.clone(),
            started: Instant::now(),
            rec: blank(state.now_ms(), request_id, route),
            finished: false,
        }
    }

    /// Milliseconds since the request arrived.
    pub fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Marks the first byte sent to the client.
    pub fn first_byte(&mut self) {
        if self.rec.ttfb_ms.is_none() {
            self.rec.ttfb_ms = Some(self.elapsed_ms());
        }
    }

    /// Records usage reported by upstream.
    pub fn usage(&mut self, u: Usage) {
        self.rec.usage = Some(u);
    }

    /// The answer is complete with `status` (and an error text when it failed).
    pub fn finish(&mut self, status: u16, error: Option<String>) {
        self.rec.status = status;
        if error.is_some() {
            self.rec.error = error;
        }
        self.finished = true;
    }
}

impl Drop for Outcome {
    fn drop(&mut self) {
        if !self.finished {
            self.rec.status = CLIENT_CLOSED;
            self.rec
                .error
                .get_or_insert_with(|| "client disconnected".to_owned());
        }
        self.rec.duration_ms = self.elapsed_ms();
        // Moved out, not cloned: the outcome is gone after this.
        let route = self.rec.route;
        let rec = std::mem::replace(&mut self.rec, blank(0, String::new(), route));
        self.state.metrics().observe(&rec);
        self.state.recent().push(rec);
    }
}

/// A record with nothing known yet (allocates nothing beyond `request_id`).
fn blank(at: rotor_actors::UnixMs, request_id: String, route: &'static str) -> RequestRecord {
    RequestRecord {
        at,
        request_id,
        client_key: None,
        route,
        model: None,
        account_id: None,
        status: 0,
        ttfb_ms: None,
        duration_ms: 0,
        usage: None,
        failovers: 0,
        retries: 0,
        upstream_429s: 0,
        error: None,
        forwarded_to: None,
        forwarded_from: None,
    }
}
