//! An empty `output` in the final response, filled from the items the stream carried. The real
//! backend routinely ends with `response.completed` whose `output` is `[]`, the items having
//! come one by one in `response.output_item.done` (`tests/fixtures/upstream/`); the openai SDK's
//! `get_final_response()` reads `output`, so a client would see no text. [`fill_output`] is the
//! rule, used for collected answers ([`crate::proxy::observe::Observer::final_response`]) and,
//! through [`Backfill`], for the `response.completed` event a Responses streaming client gets.
//!
//! [`Backfill`] passes complete events through as the same bytes. It holds back only the
//! unfinished tail of a chunk (so an event is never split around a keepalive or a rewrite),
//! and rewrites one event: a `response.completed` whose `output` is empty while items were
//! seen. It reads nothing itself that the stream's observer already read: the observer, fed
//! each chunk first, keeps the items' bytes and says when and where it read the terminal event
//! ([`Seen`]); only the chunk that holds that event is searched for it.
//!
//! [`Backfill::holding`] only holds the unfinished tail: a translated stream whose answer
//! carries shortened tool names ([`crate::upstream::names`]) gets whole events, so a stand-in is
//! never split across two chunks when it is mapped back.

use bytes::{Bytes, BytesMut};
use memchr::memmem::FinderRev;
use serde_json::Value;
use std::sync::LazyLock;

/// Fills `response.output` with `items` when it is missing, `null` or empty; an `output` that
/// lists items is left as upstream sent it. Returns whether it changed.
pub fn fill_output(response: &mut Value, items: Vec<Value>) -> bool {
    let empty = response
        .get("output")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty);
    match response.as_object_mut() {
        Some(obj) if empty && !items.is_empty() => {
            obj.insert("output".into(), Value::Array(items));
            true
        }
        Some(obj) if empty => {
            obj.entry("output")
                .or_insert_with(|| Value::Array(Vec::new()));
            false
        }
        _ => false,
    }
}

/// Back-fill of one Responses stream on its way to the client.
#[derive(Debug, Default)]
pub struct Backfill {
    /// Bytes after the last complete event, not yet sent.
    pending: BytesMut,
    /// Only hold the unfinished tail; never rewrite an event.
    hold_only: bool,
}

/// The searcher for the terminal event, built once: `memmem::find` builds its searcher on
/// every call, which cost more than the search itself (about 1 300 instructions a call). It
/// runs only over the chunk in which the observer read `response.completed`.
static COMPLETED: LazyLock<FinderRev<'static>> =
    LazyLock::new(|| FinderRev::new(b"\"response.completed\""));

impl Backfill {
    /// Holds unfinished tails and rewrites nothing: complete events only, as upstream sent them.
    pub fn holding() -> Self {
        Self {
            hold_only: true,
            ..Self::default()
        }
    }

    /// What to send for `chunk`: the complete events so far (the terminal one back-filled).
    /// `seen` is what an observer of the same bytes, fed `chunk` first, read of them: the
    /// items, whether the terminal event has come and where its empty `output` is. The
    /// back-fill neither searches for the items nor reads them again.
    pub fn push_seen(&mut self, chunk: Bytes, seen: &Seen) -> Bytes {
        let buf = if self.pending.is_empty() {
            chunk
        } else {
            self.pending.extend_from_slice(&chunk);
            self.pending.split().freeze()
        };
        let cut = last_boundary(&buf);
        let ready = if cut == buf.len() {
            buf
        } else if buf.len() - cut > crate::sse::MAX_LINE {
            // An event too long to hold: it goes on as it comes, like every other byte.
            buf
        } else {
            self.pending.extend_from_slice(&buf[cut..]);
            buf.slice(..cut)
        };
        self.events(ready, seen)
    }

    /// The held tail when the stream ends (an unfinished event, sent as it is).
    pub fn finish(&mut self) -> Bytes {
        self.pending.split().freeze()
    }

    /// Back-fills the terminal event among the complete events of `ready`. Until the observer
    /// has read `response.completed` (every chunk but the last of a routine stream) the bytes
    /// go on untouched and unsearched; then the event is searched for from the end of `ready`,
    /// where it normally is the last frame, and the chunk is copied around it once.
    fn events(&mut self, ready: Bytes, seen: &Seen) -> Bytes {
        if self.hold_only || !seen.completed || seen.count == 0 {
            return ready;
        }
        for hit in COMPLETED.rfind_iter(&ready) {
            let start = frame_start(&ready[..hit]);
            let Some(end) = frame_ends(&ready[hit..]).next().map(|e| hit + e) else {
                continue;
            };
            if let Some(new) = completed(&ready[start..end], seen) {
                let mut out = Vec::with_capacity(ready.len() - (end - start) + new.len());
                out.extend_from_slice(&ready[..start]);
                out.extend_from_slice(&new);
                out.extend_from_slice(&ready[end..]);
                return Bytes::from(out);
            }
        }
        ready
    }
}

/// The `response.completed` frame rewritten with its output back-filled from `seen`'s items,
/// or `None` when it needs no change (it lists items, or it is not the event it seemed).
fn completed(frame: &[u8], seen: &Seen) -> Option<Vec<u8>> {
    let data = data_of(frame);
    if let Some(spliced) = splice(&data, seen) {
        let mut out = Vec::with_capacity(spliced.len() + 40);
        out.extend_from_slice(b"event: response.completed\ndata: ");
        out.extend_from_slice(&spliced);
        out.extend_from_slice(b"\n\n");
        return Some(out);
    }
    // An `output` that is missing or `null`, or an event split over several data lines.
    let mut ev: Value = serde_json::from_slice(&data).ok()?;
    if ev.get("type").and_then(Value::as_str) != Some("response.completed") {
        return None;
    }
    let Value::Array(items) = serde_json::from_slice(&seen.list()).ok()? else {
        return None;
    };
    if !fill_output(ev.get_mut("response")?, items) {
        return None;
    }
    Some(format!("event: response.completed\ndata: {ev}\n\n").into_bytes())
}

/// What an observer of a stream ([`crate::proxy::observe::Observer::seen`]) read for the
/// back-fill of the same bytes, so that the back-fill reads nothing a second time.
#[derive(Debug, Default)]
pub struct Seen {
    /// Whether to keep the items: only a back-filled stream needs them.
    keep: bool,
    /// The `item` of every `response.output_item.done` before the terminal event, as upstream
    /// sent its bytes, joined by commas: the inside of the `output` list to splice in.
    items: Vec<u8>,
    /// How many items `items` holds.
    count: usize,
    /// Whether the terminal `response.completed` has been read (or dropped as too long).
    pub completed: bool,
    /// Where that event's `output` sits when it is an empty list.
    pub empty_output: Option<EmptyOutput>,
}

impl Seen {
    /// A reading that keeps the items when `keep` (the stream is back-filled).
    pub fn keeping(keep: bool) -> Self {
        Self {
            keep,
            ..Self::default()
        }
    }

    /// Notes the `item` of a `response.output_item.done` event's `data`: a borrowed parse,
    /// the item's bytes copied once. An event that does not parse is left out.
    pub fn item_done(&mut self, data: &[u8]) {
        use serde_json::value::RawValue;
        #[derive(serde::Deserialize)]
        struct ItemDone<'a> {
            #[serde(borrow)]
            item: &'a RawValue,
        }
        if !self.keep {
            return;
        }
        let Ok(done) = serde_json::from_slice::<ItemDone<'_>>(data) else {
            return;
        };
        if self.count > 0 {
            self.items.push(b',');
        }
        self.items.extend_from_slice(done.item.get().as_bytes());
        self.count += 1;
    }

    /// The items as a JSON list.
    fn list(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.items.len() + 2);
        out.push(b'[');
        out.extend_from_slice(&self.items);
        out.push(b']');
        out
    }
}

/// Where a `response.completed`'s empty `output` list sits in its `data`, as the observer's one
/// parse of the terminal event found it ([`Seen::empty_output`]):
/// the back-fill then splices there without parsing the event again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmptyOutput {
    /// Length of the event's `data` the offsets are in.
    pub data_len: usize,
    /// The bytes of the `[]` (whitespace inside allowed) in that `data`.
    pub list: std::ops::Range<usize>,
}

impl EmptyOutput {
    /// `output` of the terminal event `data` when it is an empty list (`output` borrows from
    /// `data`, as a parse of it gives).
    pub fn of(data: &[u8], output: &serde_json::value::RawValue) -> Option<Self> {
        let list = output.get().as_bytes();
        if !is_empty_list(list) {
            return None;
        }
        let at = (list.as_ptr() as usize).checked_sub(data.as_ptr() as usize)?;
        (at + list.len() <= data.len()).then(|| Self {
            data_len: data.len(),
            list: at..at + list.len(),
        })
    }
}

fn is_empty_list(v: &[u8]) -> bool {
    v.len() >= 2
        && v.starts_with(b"[")
        && v.ends_with(b"]")
        && v[1..v.len() - 1].iter().all(u8::is_ascii_whitespace)
}

/// The routine case done without building the event: `data` is one line holding a
/// `response.completed` whose `response.output` is an empty list, and that list is replaced by
/// the items' own JSON, every other byte kept as upstream sent it. `seen.empty_output` is where
/// the observer found that list; without it (or if it does not fit `data`) the event is read
/// here. `None` for anything else (the caller then parses the event).
fn splice(data: &[u8], seen: &Seen) -> Option<Vec<u8>> {
    if data.contains(&b'\n') {
        return None;
    }
    let list = match &seen.empty_output {
        Some(s) if s.data_len == data.len() && is_empty_list(data.get(s.list.clone())?) => {
            s.list.clone()
        }
        _ => locate(data)?,
    };
    let mut out = Vec::with_capacity(data.len() + seen.items.len() + 2);
    out.extend_from_slice(&data[..list.start]);
    out.push(b'[');
    out.extend_from_slice(&seen.items);
    out.push(b']');
    out.extend_from_slice(&data[list.end..]);
    Some(out)
}

/// The empty `response.output` list of a one-line `response.completed` `data`, by a borrowed
/// parse.
fn locate(data: &[u8]) -> Option<std::ops::Range<usize>> {
    use serde_json::value::RawValue;
    #[derive(serde::Deserialize)]
    struct Event<'a> {
        #[serde(rename = "type", borrow)]
        kind: &'a str,
        #[serde(borrow)]
        response: Response<'a>,
    }
    #[derive(serde::Deserialize)]
    struct Response<'a> {
        #[serde(borrow)]
        output: &'a RawValue,
    }
    let ev: Event<'_> = serde_json::from_slice(data).ok()?;
    if ev.kind != "response.completed" {
        return None;
    }
    EmptyOutput::of(data, ev.response.output).map(|e| e.list)
}

/// Start of the event `before` ends inside: just after the last blank line in it (0 when none
/// is), the boundary [`frame_ends`] finds.
fn frame_start(before: &[u8]) -> usize {
    memchr::memrchr_iter(b'\n', before)
        .find(|&i| before[..i].ends_with(b"\n") || before[..i].ends_with(b"\n\r"))
        .map_or(0, |i| i + 1)
}

/// End offset of every complete event (after its blank line) in `buf`.
fn frame_ends(buf: &[u8]) -> impl Iterator<Item = usize> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        let rel = memchr::memchr_iter(b'\n', &buf[at..]).find_map(|i| {
            let rest = &buf[at + i + 1..];
            if rest.starts_with(b"\n") {
                Some(i + 2)
            } else if rest.starts_with(b"\r\n") {
                Some(i + 3)
            } else {
                None
            }
        })?;
        at += rel;
        Some(at)
    })
}

/// Offset just after the last complete event in `buf` (0 when none is).
fn last_boundary(buf: &[u8]) -> usize {
    if buf.ends_with(b"\n\n") {
        return buf.len();
    }
    frame_ends(buf).last().unwrap_or(0)
}

/// The `data:` lines of one frame, joined by `\n`.
fn data_of(frame: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in frame.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(d) = line.strip_prefix(b"data:") {
            if !out.is_empty() {
                out.push(b'\n');
            }
            out.extend_from_slice(d.strip_prefix(b" ").unwrap_or(d));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const STREAM: &str = "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"r\"}}\n\n\
        event: response.output_item.done\ndata: {\"type\":\"response.output_item.done\",\"item\":{\"type\":\"message\",\"content\":[{\"type\":\"output_text\",\"text\":\"hello\"}]}}\n\n\
        event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"r\",\"output\":[]}}\n\n";

    /// What the pass-through does: the observer reads each chunk first and the back-fill takes
    /// what it read.
    fn through(stream: &str, cut: usize) -> String {
        let mut obs = crate::proxy::observe::Observer::new(false).backfilling(true);
        let mut b = Backfill::default();
        let mut out = Vec::new();
        let bytes = stream.as_bytes();
        let mut at = 0;
        while at < bytes.len() {
            let end = (at + cut).min(bytes.len());
            let chunk = Bytes::copy_from_slice(&bytes[at..end]);
            obs.push(&chunk);
            out.extend_from_slice(&b.push_seen(chunk, &obs.seen));
            at = end;
        }
        out.extend_from_slice(&b.finish());
        String::from_utf8(out).expect("utf8")
    }

    #[test]
    fn an_empty_completed_output_gets_the_items_however_the_chunks_fall() {
        for cut in [1, 7, 64, STREAM.len()] {
            let out = through(STREAM, cut);
            let last = out.trim_end().rsplit("\n\n").next().expect("last");
            let data = last.split_once("data: ").expect("data").1;
            let v: Value = serde_json::from_str(data).expect("json");
            assert_eq!(
                v["response"]["output"][0]["content"][0]["text"], "hello",
                "{cut}"
            );
            assert!(out.starts_with("event: response.created\n"));
        }
    }

    #[test]
    fn a_stream_that_needs_nothing_passes_as_the_same_bytes() {
        let full = STREAM.replace(
            "\"output\":[]",
            "\"output\":[{\"type\":\"message\",\"content\":[]}]",
        );
        for cut in [3, full.len()] {
            assert_eq!(through(&full, cut), full);
        }
        let chunk = Bytes::from_static(b"event: x\ndata: {}\n\n");
        let mut b = Backfill::default();
        let out = b.push_seen(chunk.clone(), &Seen::keeping(true));
        assert_eq!(out.as_ptr(), chunk.as_ptr(), "not copied");
    }

    #[test]
    fn the_routine_case_keeps_every_other_byte_and_the_rare_ones_still_fill() {
        let out = through(STREAM, STREAM.len());
        let last = out.trim_end().rsplit("\n\n").next().expect("last");
        assert_eq!(
            last,
            "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"r\",\"output\":[{\"type\":\"message\",\"content\":[{\"type\":\"output_text\",\"text\":\"hello\"}]}]}}",
            "upstream's bytes, the list spliced in"
        );
        for rare in ["\"output\":null", "\"status\":\"completed\""] {
            let stream = STREAM.replace("\"output\":[]", rare);
            let out = through(&stream, stream.len());
            let last = out.trim_end().rsplit("\n\n").next().expect("last");
            let v: Value =
                serde_json::from_str(last.split_once("data: ").expect("data").1).expect("json");
            assert_eq!(
                v["response"]["output"][0]["content"][0]["text"], "hello",
                "{rare}"
            );
        }
    }

    /// The back-fill of one whole `STREAM` chunk with `seen` standing in for the observer.
    fn with_seen(seen: &Seen) -> Bytes {
        Backfill::default().push_seen(Bytes::from_static(STREAM.as_bytes()), seen)
    }

    #[test]
    fn the_items_and_the_terminal_event_come_from_the_observer() {
        let mut seen = Seen::keeping(true);
        seen.item_done(br#"{"type":"response.output_item.done","item":{"type":"message","content":[{"type":"output_text","text":"hello"}]}}"#);
        seen.item_done(b"{\"type\":\"response.output_item.done\",\"item\":"); // unreadable: left out
        seen.completed = true;
        assert_eq!(with_seen(&seen), through(STREAM, STREAM.len()).into_bytes());
        // A reading whose offsets do not fit the event (another event's) is not trusted.
        seen.empty_output = Some(EmptyOutput {
            data_len: 3,
            list: 0..2,
        });
        assert_eq!(with_seen(&seen), through(STREAM, STREAM.len()).into_bytes());
        // The terminal event need not be the chunk's last: what follows it is kept as it came.
        let trailing = format!("{STREAM}event: x\r\ndata: {{}}\r\n\r\n");
        let out = through(&trailing, trailing.len());
        assert_eq!(
            out,
            format!(
                "{}event: x\r\ndata: {{}}\r\n\r\n",
                through(STREAM, STREAM.len())
            )
        );
        // Before the observer read the terminal event, or without items, nothing is rewritten.
        seen.completed = false;
        assert_eq!(with_seen(&seen), STREAM.as_bytes());
        let mut none = Seen::keeping(false);
        none.item_done(br#"{"type":"response.output_item.done","item":{"type":"message"}}"#);
        none.completed = true;
        assert_eq!(
            with_seen(&none),
            STREAM.as_bytes(),
            "an observer not keeping items"
        );
    }

    #[test]
    fn an_unfinished_tail_is_sent_at_the_end() {
        assert_eq!(through("event: x\ndata: {", 4), "event: x\ndata: {");
    }

    #[test]
    fn fill_output_leaves_listed_items_alone() {
        let mut r = json!({"output": [1]});
        assert!(!fill_output(&mut r, vec![json!(2)]));
        assert_eq!(r["output"], json!([1]));
        let mut r = json!({"id": "x"});
        assert!(fill_output(&mut r, vec![json!(2)]));
        assert_eq!(r["output"], json!([2]));
    }
}
