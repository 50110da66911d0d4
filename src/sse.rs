//! Incremental Server-Sent-Events parser used to *observe* a stream that is being passed
//! through byte for byte. The proxy never re-encodes upstream bytes: it hands every chunk to the
//! client unchanged and, on the side, feeds the same chunk to [`SseParser`], which yields the
//! complete events seen so far. Chunk boundaries may fall anywhere (inside a line, between `\r`
//! and `\n`), so the parser keeps the unfinished tail between calls.
//!
//! Only the fields an observer needs are kept: `event:` and the joined `data:` lines. Comments
//! (`: keepalive`), `id:` and `retry:` are skipped. A line longer than [`MAX_LINE`] is dropped
//! with its event, so a hostile upstream cannot make the observer buffer without bound; a drop
//! is never silent — [`SseParser::dropped`] counts them and [`SseParser::last_dropped_type`]
//! says what the event was, read from its first bytes. A consumer that must not miss an event
//! (a translator re-encoding the stream) uses [`SseParser::lossless`], which yields nothing
//! after a drop, so it can end the stream with an error at that point instead of carrying on.
//!
//! The hot path ([`SseParser::push_with`]) hands each event to a callback as an [`EventRef`]
//! borrowed from the parser's reused buffers: observing a stream of deltas allocates nothing
//! per event, and a line wholly inside one chunk is read in place instead of being copied.

use std::borrow::Cow;

/// Longest single line the observer buffers; longer lines are discarded (the bytes still reach
/// the client — only observation of that one event is lost).
pub const MAX_LINE: usize = 8 * 1024 * 1024;

/// One complete SSE event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, if any (Codex ignores it and dispatches on the JSON `type`).
    pub event: Option<String>,
    /// The `data:` lines joined by `\n`, as bytes (normally one JSON document).
    pub data: Vec<u8>,
}

impl SseEvent {
    /// The JSON `type` of the data, read cheaply without parsing the whole document when it is
    /// the first key (as upstream always sends it); falls back to a full parse otherwise.
    pub fn json_type(&self) -> Option<String> {
        json_type(&self.data).map(Cow::into_owned)
    }
}

/// One complete SSE event borrowed from the parser's buffers (valid during the callback of
/// [`SseParser::push_with`] only), so observing an event costs no allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventRef<'a> {
    /// The raw `event:` field, if any.
    pub event: Option<&'a [u8]>,
    /// The `data:` lines joined by `\n`.
    pub data: &'a [u8],
    /// Where `data` starts in the stream (bytes fed before it, over every chunk) when it is one
    /// `data:` line, so that it is a run of the stream's own bytes: a consumer passing the
    /// stream on can then find a part of `data` in the bytes it sends without searching.
    /// `None` for data joined from several lines.
    pub data_at: Option<u64>,
}

impl<'a> EventRef<'a> {
    /// The JSON `type` of the data, borrowed when it is the first key (the usual case), else
    /// read by a full parse (see [`SseEvent::json_type`]).
    pub fn json_type(&self) -> Option<Cow<'a, str>> {
        json_type(self.data)
    }

    /// An owned copy.
    pub fn to_owned_event(&self) -> SseEvent {
        SseEvent {
            event: self.event.map(|e| String::from_utf8_lossy(e).into_owned()),
            data: self.data.to_vec(),
        }
    }
}

fn json_type(data: &[u8]) -> Option<Cow<'_, str>> {
    if let Some(t) = fast_type(data) {
        return Some(Cow::Borrowed(t));
    }
    let v: serde_json::Value = serde_json::from_slice(data).ok()?;
    v.get("type")?.as_str().map(|s| Cow::Owned(s.to_owned()))
}

/// Reads `{"type":"x"` at the start of a JSON document without a parser; `None` when the
/// document is shaped differently (escapes, other first key, whitespace variants).
fn fast_type(data: &[u8]) -> Option<&str> {
    let rest = data
        .strip_prefix(b"{\"type\":\"")
        .or_else(|| data.strip_prefix(b"{\"type\": \""))?;
    plain_json_str(rest)
}

/// The text of a JSON string whose opening quote was just consumed, when it has no escapes
/// (read in place); `None` for an escaped or unterminated string, which needs a real parser.
pub(crate) fn plain_json_str(rest: &[u8]) -> Option<&str> {
    let end = memchr::memchr2(b'"', b'\\', rest)?;
    if rest[end] != b'"' {
        return None;
    }
    std::str::from_utf8(&rest[..end]).ok()
}

/// Initial capacity of the data buffer: a small answer's `response.completed` event, the
/// largest event of most streams, fits.
const DATA_CAPACITY: usize = 2048;

/// How much of an over-long line is kept to name the event it dropped: enough for
/// `data: {"type":"response.output_item.done"`.
const DROPPED_HEAD: usize = 128;

/// Incremental parser state: the unfinished line and the event being assembled. Buffers are
/// cleared, never freed, between events.
#[derive(Debug, Default)]
pub struct SseParser {
    /// Bytes of the current, not yet terminated line (only when it spans chunks).
    line: Vec<u8>,
    /// Set while skipping the rest of an over-long line.
    overflow: bool,
    /// The previous chunk ended in `\r`: a leading `\n` in the next chunk belongs to it.
    pending_cr: bool,
    /// `event:` of the event being assembled (meaningful when `has_event`).
    event: Vec<u8>,
    /// Whether an `event:` line was seen for the event being assembled.
    has_event: bool,
    /// `data:` of the event being assembled.
    data: Vec<u8>,
    /// Whether any `data:` line was seen for the event being assembled.
    has_data: bool,
    /// Yield nothing once an event was dropped (see [`SseParser::lossless`]).
    lossless: bool,
    /// Events dropped so far because a line exceeded [`MAX_LINE`].
    dropped: u64,
    /// The first [`DROPPED_HEAD`] bytes of the over-long line being skipped.
    dropped_head: Vec<u8>,
    /// JSON `type` (else `event:` name) of the last dropped event, when readable.
    last_dropped_type: Option<String>,
    /// Bytes fed before the current chunk.
    fed: u64,
    /// Where the current line starts in the stream.
    line_at: u64,
    /// Where the value of the event's one `data:` line starts ([`EventRef::data_at`]).
    data_at: Option<u64>,
}

impl SseParser {
    /// A parser at the start of a stream. The data buffer starts at the size of a typical
    /// terminal event, so a stream's events do not grow it step by step.
    pub fn new() -> Self {
        Self {
            data: Vec::with_capacity(DATA_CAPACITY),
            ..Self::default()
        }
    }

    /// A parser for a consumer that must see every event or none: after the first dropped
    /// event it yields nothing more, so the events handed out are exactly those before the
    /// loss and the caller can end the stream there ([`SseParser::dropped`] tells it to).
    pub fn lossless() -> Self {
        Self {
            lossless: true,
            ..Self::new()
        }
    }

    /// How many events were dropped so far because one of their lines exceeded [`MAX_LINE`].
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The JSON `type` of the last dropped event (read from the start of its over-long `data:`
    /// line, else its `event:` field), when it could be read.
    pub fn last_dropped_type(&self) -> Option<&str> {
        self.last_dropped_type.as_deref()
    }

    /// Feeds one chunk and appends every event it completed to `out`.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) {
        self.push_with(chunk, |ev| out.push(ev.to_owned_event()));
    }

    /// Feeds one chunk and hands every event it completed to `f`, borrowed.
    pub fn push_with(&mut self, whole: &[u8], mut f: impl FnMut(EventRef<'_>)) {
        let mut chunk = whole;
        let fed = self.fed;
        self.fed += whole.len() as u64;
        // Where `rest`, a tail of this chunk, starts in the stream.
        let at = |rest: &[u8]| fed + (whole.len() - rest.len()) as u64;
        if self.pending_cr && !chunk.is_empty() {
            self.pending_cr = false;
            if let Some(rest) = chunk.strip_prefix(b"\n") {
                chunk = rest;
                self.line_at = at(chunk);
            }
        }
        while let Some(pos) = memchr::memchr2(b'\n', b'\r', chunk) {
            self.line_done(&chunk[..pos], &mut f);
            let after = &chunk[pos + 1..];
            chunk = if chunk[pos] == b'\r' {
                match after.first() {
                    Some(b'\n') => &after[1..],
                    Some(_) => after,
                    None => {
                        self.pending_cr = true;
                        after
                    }
                }
            } else {
                after
            };
            self.line_at = at(chunk);
        }
        self.extend_line(chunk);
    }

    /// Convenience for tests and one-shot bodies: feed and return the completed events.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        let mut out = Vec::new();
        self.push(chunk, &mut out);
        out
    }

    /// Ends the stream: an event whose blank line never came is returned (upstream streams that
    /// stop mid-event are then still observable, e.g. a final `response.completed` without `\n\n`).
    pub fn finish(&mut self) -> Option<SseEvent> {
        let mut last = None;
        self.finish_with(|ev| last = Some(ev.to_owned_event()));
        last
    }

    /// [`SseParser::finish`] handing the last event to `f`, borrowed.
    pub fn finish_with(&mut self, mut f: impl FnMut(EventRef<'_>)) {
        if self.overflow {
            // The stream ended inside an over-long line: its event is lost, not half-observed.
            self.overflow = false;
            self.drop_event();
            return;
        }
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.process(&line, &mut |_| {});
            self.line = line;
            self.line.clear();
        }
        self.dispatch(&mut f);
    }

    fn extend_line(&mut self, bytes: &[u8]) {
        if self.overflow {
            return;
        }
        if self.line.len() + bytes.len() > MAX_LINE {
            self.overflow = true;
            self.keep_head(bytes);
            self.line.clear();
            return;
        }
        self.line.extend_from_slice(bytes);
    }

    /// A line ended with `tail` as its last bytes (the start may be buffered in `line`).
    fn line_done(&mut self, tail: &[u8], f: &mut impl FnMut(EventRef<'_>)) {
        if self.overflow || self.line.len() + tail.len() > MAX_LINE {
            // The event lost a line: drop the whole event rather than observe half of it.
            if !self.overflow {
                self.keep_head(tail);
            }
            self.overflow = false;
            self.line.clear();
            self.drop_event();
            return;
        }
        if self.line.is_empty() {
            self.process(tail, f);
        } else {
            let mut line = std::mem::take(&mut self.line);
            line.extend_from_slice(tail);
            self.process(&line, f);
            self.line = line;
            self.line.clear();
        }
    }

    fn process(&mut self, line: &[u8], f: &mut impl FnMut(EventRef<'_>)) {
        if line.is_empty() {
            self.dispatch(f);
        } else if line[0] != b':' {
            self.field(line);
        }
    }

    fn field(&mut self, line: &[u8]) {
        let (name, value) = match memchr::memchr(b':', line) {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        match name {
            b"data" => {
                if self.has_data {
                    self.data.push(b'\n');
                    self.data_at = None;
                } else {
                    // `value` is the end of `line`.
                    let skipped = line.len() - value.len();
                    self.data_at = Some(self.line_at + skipped as u64);
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            b"event" => {
                self.event.clear();
                self.event.extend_from_slice(value);
                self.has_event = true;
            }
            _ => {}
        }
    }

    /// Keeps the start of the over-long line (`line` so far, then `more`) to name its event.
    fn keep_head(&mut self, more: &[u8]) {
        self.dropped_head.clear();
        for part in [&self.line[..], more] {
            let room = DROPPED_HEAD - self.dropped_head.len();
            self.dropped_head
                .extend_from_slice(&part[..part.len().min(room)]);
        }
    }

    /// Counts the event being assembled as dropped, notes its type, and starts the next one.
    fn drop_event(&mut self) {
        self.dropped += 1;
        let head = &self.dropped_head;
        let from_data = head
            .strip_prefix(b"data:")
            .map(|v| v.strip_prefix(b" ").unwrap_or(v))
            .and_then(fast_type);
        let from_event = self
            .has_event
            .then(|| std::str::from_utf8(&self.event).ok())
            .flatten();
        self.last_dropped_type = from_data.or(from_event).map(str::to_owned);
        self.dropped_head.clear();
        self.reset_event();
    }

    /// Hands over the assembled event (if it has data) and starts the next one.
    fn dispatch(&mut self, f: &mut impl FnMut(EventRef<'_>)) {
        if self.has_data && !(self.lossless && self.dropped > 0) {
            f(EventRef {
                event: self.has_event.then_some(self.event.as_slice()),
                data: &self.data,
                data_at: self.data_at,
            });
        }
        self.reset_event();
    }

    fn reset_event(&mut self) {
        self.event.clear();
        self.has_event = false;
        self.data.clear();
        self.has_data = false;
        self.data_at = None;
    }
}

#[cfg(test)]
mod tests;
