//! Incremental Server-Sent-Events parser used to *observe* a stream that is being passed
//! through byte for byte. The proxy never re-encodes upstream bytes: it hands every chunk to the
//! client unchanged and, on the side, feeds the same chunk to [`SseParser`], which yields the
//! complete events seen so far. Chunk boundaries may fall anywhere (inside a line, between `\r`
//! and `\n`), so the parser keeps the unfinished tail between calls.
//!
//! Only the fields an observer needs are kept: `event:` and the joined `data:` lines. Comments
//! (`: keepalive`), `id:` and `retry:` are skipped. A line longer than [`MAX_LINE`] is dropped
//! with its event, so a hostile upstream cannot make the observer buffer without bound.

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
        fast_type(&self.data).map(str::to_owned).or_else(|| {
            let v: serde_json::Value = serde_json::from_slice(&self.data).ok()?;
            v.get("type")?.as_str().map(str::to_owned)
        })
    }
}

/// Reads `{"type":"x"` at the start of a JSON document without a parser; `None` when the
/// document is shaped differently (escapes, other first key, whitespace variants).
fn fast_type(data: &[u8]) -> Option<&str> {
    let rest = data
        .strip_prefix(b"{\"type\":\"")
        .or_else(|| data.strip_prefix(b"{\"type\": \""))?;
    let end = memchr::memchr2(b'"', b'\\', rest)?;
    if rest[end] != b'"' {
        return None;
    }
    std::str::from_utf8(&rest[..end]).ok()
}

/// Incremental parser state: the unfinished line and the event being assembled.
#[derive(Debug, Default)]
pub struct SseParser {
    /// Bytes of the current, not yet terminated line.
    line: Vec<u8>,
    /// Set while skipping the rest of an over-long line.
    overflow: bool,
    /// The previous chunk ended in `\r`: a leading `\n` in the next chunk belongs to it.
    pending_cr: bool,
    /// `event:` of the event being assembled.
    event: Option<String>,
    /// `data:` of the event being assembled.
    data: Vec<u8>,
    /// Whether any `data:` line was seen for the event being assembled.
    has_data: bool,
}

impl SseParser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one chunk and appends every event it completed to `out`.
    pub fn push(&mut self, mut chunk: &[u8], out: &mut Vec<SseEvent>) {
        if self.pending_cr && !chunk.is_empty() {
            self.pending_cr = false;
            if let Some(rest) = chunk.strip_prefix(b"\n") {
                chunk = rest;
            }
        }
        while let Some(pos) = memchr::memchr2(b'\n', b'\r', chunk) {
            self.extend_line(&chunk[..pos]);
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
            self.end_line(out);
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
        if !self.line.is_empty() && !self.overflow {
            let mut out = Vec::new();
            self.end_line(&mut out);
        }
        self.take_event()
    }

    fn extend_line(&mut self, bytes: &[u8]) {
        if self.overflow {
            return;
        }
        if self.line.len() + bytes.len() > MAX_LINE {
            self.overflow = true;
            self.line.clear();
            return;
        }
        self.line.extend_from_slice(bytes);
    }

    fn end_line(&mut self, out: &mut Vec<SseEvent>) {
        if self.overflow {
            // The event lost a line: drop the whole event rather than observe half of it.
            self.overflow = false;
            self.event = None;
            self.data.clear();
            self.has_data = false;
            return;
        }
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            if let Some(ev) = self.take_event() {
                out.push(ev);
            }
        } else if line[0] != b':' {
            self.field(&line);
        }
        self.line = line;
        self.line.clear();
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
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            b"event" => self.event = Some(String::from_utf8_lossy(value).into_owned()),
            _ => {}
        }
    }

    fn take_event(&mut self) -> Option<SseEvent> {
        let event = self.event.take();
        if !self.has_data {
            return None;
        }
        self.has_data = false;
        Some(SseEvent {
            event,
            data: std::mem::take(&mut self.data),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &[u8] = b"event: response.created\ndata: {\"type\":\"response.created\"}\n\n: keepalive\n\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"hi\"}\r\n\r\ndata: a\ndata: b\n\n";

    fn all_at_once() -> Vec<SseEvent> {
        SseParser::new().feed(STREAM)
    }

    #[test]
    fn parses_events_comments_and_crlf() {
        let evs = all_at_once();
        assert_eq!(evs.len(), 3);
        assert_eq!(evs[0].event.as_deref(), Some("response.created"));
        assert_eq!(evs[0].json_type().as_deref(), Some("response.created"));
        assert_eq!(evs[1].event, None);
        assert_eq!(
            evs[1].json_type().as_deref(),
            Some("response.output_text.delta")
        );
        assert_eq!(evs[2].data, b"a\nb");
    }

    #[test]
    fn any_chunking_gives_the_same_events() {
        let whole = all_at_once();
        for size in 1..STREAM.len() {
            let mut p = SseParser::new();
            let mut out = Vec::new();
            for c in STREAM.chunks(size) {
                p.push(c, &mut out);
            }
            assert_eq!(out, whole, "chunk size {size}");
        }
    }

    #[test]
    fn cr_only_line_endings_split_across_chunks() {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        p.push(b"data: x\r", &mut out);
        p.push(b"\r", &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].data, b"x");
    }

    #[test]
    fn finish_returns_an_unterminated_event() {
        let mut p = SseParser::new();
        assert!(
            p.feed(b"data: {\"type\":\"response.completed\"}")
                .is_empty()
        );
        let ev = p.finish().expect("event");
        assert_eq!(ev.json_type().as_deref(), Some("response.completed"));
        assert_eq!(p.finish(), None);
    }

    #[test]
    fn type_falls_back_to_a_full_parse() {
        let ev = SseEvent {
            event: None,
            data: br#"{ "sequence_number": 1, "type": "error" }"#.to_vec(),
        };
        assert_eq!(ev.json_type().as_deref(), Some("error"));
        let bad = SseEvent {
            event: None,
            data: b"not json".to_vec(),
        };
        assert_eq!(bad.json_type(), None);
    }

    #[test]
    fn overlong_line_drops_only_its_event() {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        p.push(b"data: ", &mut out);
        let big = vec![b'x'; MAX_LINE + 1];
        p.push(&big, &mut out);
        p.push(b"\n\ndata: ok\n\n", &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].data, b"ok");
    }
}
