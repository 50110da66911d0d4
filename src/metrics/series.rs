//! A short in-memory time series of traffic for the dashboard's usage-over-time chart: requests,
//! errors, upstream 429s and tokens per fixed-width time slot, for the last couple of hours.
//! Fed from the same [`RequestRecord`]s as the Prometheus counters, so both always agree.

use crate::recent::RequestRecord;
use rotor_actors::UnixMs;
use serde::Serialize;
use std::collections::VecDeque;

/// Traffic in one time slot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct SeriesPoint {
    /// Start of the slot (unix ms).
    pub t: UnixMs,
    /// Requests that arrived in the slot.
    pub requests: u64,
    /// Of those, answered with a status >= 400.
    pub errors: u64,
    /// 429 answers upstream gave while serving them.
    pub upstream_429s: u64,
    /// Input tokens upstream reported.
    pub input_tokens: u64,
    /// Output tokens upstream reported.
    pub output_tokens: u64,
}

/// The slots, oldest first; slots with no traffic are absent and filled in on read.
#[derive(Debug)]
pub struct Series {
    /// Width of one slot in ms.
    slot_ms: i64,
    /// How many slots are kept.
    slots: usize,
    /// Slots with traffic, ascending by `t`.
    points: VecDeque<SeriesPoint>,
}

impl Series {
    /// A series of `slots` slots of `slot_ms` each.
    pub fn new(slot_ms: i64, slots: usize) -> Self {
        Series {
            slot_ms: slot_ms.max(1),
            slots: slots.max(1),
            points: VecDeque::new(),
        }
    }

    /// Adds one request to the slot its arrival time falls in. Records arrive in the order
    /// requests *end*, so a slot a little in the past is found from the back.
    pub fn add(&mut self, r: &RequestRecord) {
        let t = r.at - r.at.rem_euclid(self.slot_ms);
        let idx = match self.points.iter().rposition(|p| p.t <= t) {
            Some(i) if self.points[i].t == t => i,
            Some(i) => {
                self.points.insert(
                    i + 1,
                    SeriesPoint {
                        t,
                        ..Default::default()
                    },
                );
                i + 1
            }
            None if self.points.len() >= self.slots => return, // older than anything kept
            None => {
                self.points.push_front(SeriesPoint {
                    t,
                    ..Default::default()
                });
                0
            }
        };
        let p = &mut self.points[idx];
        p.requests += 1;
        p.errors += u64::from(r.status >= 400);
        p.upstream_429s += u64::from(r.upstream_429s);
        if let Some(u) = &r.usage {
            p.input_tokens += u.input_tokens;
            p.output_tokens += u.output_tokens;
        }
        let newest = self.points.back().map_or(t, |p| p.t);
        let horizon = newest - self.slot_ms * (self.slots as i64 - 1);
        while self.points.front().is_some_and(|p| p.t < horizon) {
            self.points.pop_front();
        }
    }

    /// Every slot of the window ending at `now`, oldest first, empty slots included.
    pub fn points(&self, now: UnixMs) -> Vec<SeriesPoint> {
        let last = now - now.rem_euclid(self.slot_ms);
        let first = last - self.slot_ms * (self.slots as i64 - 1);
        let mut kept = self.points.iter().filter(|p| p.t >= first).peekable();
        (0..self.slots as i64)
            .map(|i| {
                let t = first + i * self.slot_ms;
                match kept.peek() {
                    Some(p) if p.t == t => {
                        let p = **p;
                        kept.next();
                        p
                    }
                    _ => SeriesPoint {
                        t,
                        ..Default::default()
                    },
                }
            })
            .collect()
    }

    /// Width of one slot in ms.
    pub fn slot_ms(&self) -> i64 {
        self.slot_ms
    }
}
