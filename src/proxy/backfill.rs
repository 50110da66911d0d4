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
//! each chunk first, keeps the `response.output_item.done` events' bytes unread and says where
//! in the stream the terminal event's empty list is ([`Seen`], [`Output`]); the items are read
//! only then, and the list is replaced at that place, without a search.
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
    /// Where `pending` starts in the upstream stream (every byte before it was sent on).
    at: u64,
    /// Only hold the unfinished tail; never rewrite an event.
    hold_only: bool,
}

/// The searcher for the terminal event, built once: `memmem::find` builds its searcher on
/// every call, which cost more than the search itself (about 1 300 instructions a call). It
/// runs only in the rare case that the observer could not say where the empty list is.
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
    /// items, whether the terminal event has come and where in the stream its empty `output`
    /// is. The back-fill neither searches for the items nor reads them again.
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
        let at = self.at;
        self.at += ready.len() as u64;
        self.events(ready, at, seen)
    }

    /// The held tail when the stream ends (an unfinished event, sent as it is).
    pub fn finish(&mut self) -> Bytes {
        self.pending.split().freeze()
    }

    /// Back-fills the terminal event among the complete events of `ready`, which starts at
    /// `at` in the stream. Until the observer has read `response.completed` (every chunk but
    /// the last of a routine stream) the bytes go on untouched and unsearched; then the empty
    /// list, where the observer saw it, is replaced by the items, the chunk copied around it
    /// once. Only an event the observer could not place (its `output` missing or `null`, its
    /// data over several lines) is searched for and rewritten whole.
    fn events(&mut self, ready: Bytes, at: u64, seen: &Seen) -> Bytes {
        if self.hold_only || seen.ends.is_empty() {
            return ready;
        }
        let list = match &seen.output {
            Output::NotYet | Output::Listed => return ready,
            Output::EmptyAt(list) => Some(list),
            Output::Unplaced => None,
        };
        if let Some(list) = list {
            let inside = list.start >= at && list.end <= at + ready.len() as u64;
            if !inside {
                return ready;
            }
            let (start, end) = ((list.start - at) as usize, (list.end - at) as usize);
            if !is_empty_list(&ready[start..end]) {
                return ready;
            }
            let Some(items) = seen.list() else {
                return ready;
            };
            let mut out = Vec::with_capacity(ready.len() + items.len());
            out.extend_from_slice(&ready[..start]);
            out.extend_from_slice(&items);
            out.extend_from_slice(&ready[end..]);
            return Bytes::from(out);
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
/// or `None` when it needs no change (it lists items, or it is not the event it seemed). The
/// rare case: an `output` that is missing or `null`, or an event over several data lines.
fn completed(frame: &[u8], seen: &Seen) -> Option<Vec<u8>> {
    let data = data_of(frame);
    let mut ev: Value = serde_json::from_slice(&data).ok()?;
    if ev.get("type").and_then(Value::as_str) != Some("response.completed") {
        return None;
    }
    let Value::Array(items) = serde_json::from_slice(&seen.list()?).ok()? else {
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
    /// The `data` of every `response.output_item.done` before the terminal event, as upstream
    /// sent it, back to back. Nothing of it is read during the stream: only a terminal event
    /// whose `output` is empty needs the items ([`Seen::list`]).
    done: Vec<u8>,
    /// Where each event's data ends in `done`.
    ends: Vec<usize>,
    /// What the terminal `response.completed`, once read, needs.
    pub output: Output,
}

/// The `output` of the terminal `response.completed` as the observer read it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub enum Output {
    /// Not read yet (or the stream ended otherwise).
    #[default]
    NotYet,
    /// A list with items: the event goes on as upstream sent it.
    Listed,
    /// An empty list at these bytes of the stream: the routine case.
    EmptyAt(std::ops::Range<u64>),
    /// Missing, `null`, in an event whose data spans several lines, or in an event too long
    /// to read: the back-fill finds the event and reads it itself.
    Unplaced,
}

impl Seen {
    /// A reading that keeps the items when `keep` (the stream is back-filled).
    pub fn keeping(keep: bool) -> Self {
        Self {
            keep,
            ..Self::default()
        }
    }

    /// Keeps a `response.output_item.done` event's `data`, as it came: a copy, no parse.
    pub fn item_done(&mut self, data: &[u8]) {
        if self.keep {
            self.done.extend_from_slice(data);
            self.ends.push(self.done.len());
        }
    }

    /// The kept items as a JSON list, each item's bytes as upstream sent them; an event that
    /// does not parse is left out (`None` when none is left).
    fn list(&self) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(self.done.len() + 2);
        out.push(b'[');
        let mut start = 0;
        for &end in &self.ends {
            if let Some(item) = item_of(&self.done[start..end]) {
                if out.len() > 1 {
                    out.push(b',');
                }
                out.extend_from_slice(item);
            }
            start = end;
        }
        out.push(b']');
        (out.len() > 2).then_some(out)
    }
}

/// The `item` of a `response.output_item.done` event's `data`: read in place when the event
/// has upstream's shape ([`item_in_place`]), else by a borrowed parse.
fn item_of(data: &[u8]) -> Option<&[u8]> {
    use serde_json::value::RawValue;
    #[derive(serde::Deserialize)]
    struct ItemDone<'a> {
        #[serde(borrow)]
        item: &'a RawValue,
    }
    if let Some(item) = item_in_place(data) {
        return Some(item);
    }
    let done = serde_json::from_slice::<ItemDone<'_>>(data).ok()?;
    Some(done.item.get().as_bytes())
}

/// The `item` object of `{"type":"response.output_item.done", …, "item":{…}…}` found without a
/// parser, when only `sequence_number` and `output_index` (plain numbers) come before it, as
/// upstream sends the event: the object's end is its matching brace, strings skipped. The
/// event's JSON is upstream's, which the client reads as it is; anything else is parsed.
fn item_in_place(data: &[u8]) -> Option<&[u8]> {
    let mut rest = data.strip_prefix(b"{\"type\":\"response.output_item.done\",")?;
    loop {
        if let Some(item) = rest.strip_prefix(b"\"item\":") {
            return item.get(..object_end(item)?);
        }
        let after = [&b"\"sequence_number\":"[..], b"\"output_index\":"]
            .iter()
            .find_map(|k| rest.strip_prefix(*k))?;
        let digits = after.iter().take_while(|b| b.is_ascii_digit()).count();
        rest = after
            .get(digits..)
            .filter(|_| digits > 0)?
            .strip_prefix(b",")?;
    }
}

/// Length of the JSON object `v` starts with (through its matching `}`), strings skipped;
/// `None` when `v` does not start with `{` or the object does not end.
fn object_end(v: &[u8]) -> Option<usize> {
    if v.first() != Some(&b'{') {
        return None;
    }
    let (mut depth, mut at) = (0usize, 0);
    while let Some(i) = memchr::memchr3(b'"', b'{', b'}', &v[at..]) {
        at += i;
        match v[at] {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(at + 1);
                }
            }
            _ => {
                // A string: its end is the first quote no backslash escapes.
                at += 1;
                loop {
                    let j = memchr::memchr2(b'"', b'\\', &v[at..])?;
                    at += j;
                    if v[at] == b'"' {
                        break;
                    }
                    at += 2;
                }
            }
        }
        at += 1;
    }
    None
}

impl Output {
    /// What `output` of the terminal event `data` needs (`output` borrows from `data`, as a
    /// parse of it gives), given where `data` starts in the stream (`None`: data of several
    /// lines, not a run of the stream's bytes). The observer's one parse of the terminal event
    /// decides it, so the back-fill splices an empty list without searching for the event or
    /// parsing it again.
    pub fn of(
        data: &[u8],
        data_at: Option<u64>,
        output: Option<&serde_json::value::RawValue>,
    ) -> Self {
        let Some(list) = output.map(|o| o.get().as_bytes()) else {
            return Self::Unplaced;
        };
        if !is_empty_list(list) {
            return if list.starts_with(b"[") {
                Self::Listed
            } else {
                Self::Unplaced
            };
        }
        let at = (list.as_ptr() as usize).checked_sub(data.as_ptr() as usize);
        match (at, data_at) {
            (Some(at), Some(data_at)) if at + list.len() <= data.len() => {
                let start = data_at + at as u64;
                Self::EmptyAt(start..start + list.len() as u64)
            }
            _ => Self::Unplaced,
        }
    }
}

fn is_empty_list(v: &[u8]) -> bool {
    v.len() >= 2
        && v.starts_with(b"[")
        && v.ends_with(b"]")
        && v[1..v.len() - 1].iter().all(u8::is_ascii_whitespace)
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

    /// The text of the first item of the last event's `output`.
    fn first_text(out: &[u8]) -> Value {
        let out = std::str::from_utf8(out).expect("utf8");
        let last = out.trim_end().rsplit("\n\n").next().expect("last");
        let v: Value =
            serde_json::from_str(last.split_once("data: ").expect("data").1).expect("json");
        v["response"]["output"][0]["content"][0]["text"].clone()
    }

    #[test]
    fn the_items_and_the_terminal_event_come_from_the_observer() {
        let mut seen = Seen::keeping(true);
        seen.item_done(br#"{"type":"response.output_item.done","item":{"type":"message","content":[{"type":"output_text","text":"hello"}]}}"#);
        seen.item_done(b"{\"type\":\"response.output_item.done\",\"item\":"); // unreadable: left out
        // Where the observer saw the empty list, the items go, every other byte kept.
        let at = STREAM.find("[]").expect("list") as u64;
        seen.output = Output::EmptyAt(at..at + 2);
        assert_eq!(with_seen(&seen), through(STREAM, STREAM.len()).into_bytes());
        // A place that does not hold an empty list (another stream's) is not trusted.
        seen.output = Output::EmptyAt(0..2);
        assert_eq!(with_seen(&seen), STREAM.as_bytes());
        // An event the observer could not place is found and read here.
        seen.output = Output::Unplaced;
        assert_eq!(first_text(&with_seen(&seen)), "hello");
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
        // Before the observer read the terminal event, when it lists items, or without items,
        // nothing is rewritten.
        for output in [Output::NotYet, Output::Listed] {
            seen.output = output;
            assert_eq!(with_seen(&seen), STREAM.as_bytes());
        }
        let mut none = Seen::keeping(false);
        none.item_done(br#"{"type":"response.output_item.done","item":{"type":"message"}}"#);
        none.output = Output::Unplaced;
        assert_eq!(
            with_seen(&none),
            STREAM.as_bytes(),
            "an observer not keeping items"
        );
    }

    /// The empty list is found where the observer saw it in the stream however the chunks fell
    /// before it, and an event whose data spans lines is still filled.
    #[test]
    fn the_place_of_the_empty_list_holds_over_chunks_and_lines() {
        let routine = through(STREAM, STREAM.len());
        for cut in [1, 5, 64, 100] {
            assert_eq!(through(STREAM, cut), routine, "{cut}");
        }
        let split = STREAM.replace(
            "\"response.completed\",\"response\"",
            "\"response.completed\",\ndata: \"response\"",
        );
        for cut in [3, split.len()] {
            assert_eq!(
                first_text(through(&split, cut).as_bytes()),
                "hello",
                "{cut}"
            );
        }
    }

    /// The item read in place is what a parse reads, and any other shape is parsed.
    #[test]
    fn an_item_is_read_in_place_as_a_parse_reads_it() {
        let item = r#"{"id":"m","type":"message","content":[{"type":"output_text","text":"a \"}{\\ b"}],"x":{"y":[{}]}}"#;
        let parsed = |data: &str| {
            let v: Value = serde_json::from_str(data).expect("json");
            v["item"].to_string()
        };
        for data in [
            format!(
                r#"{{"type":"response.output_item.done","sequence_number":7,"output_index":0,"item":{item}}}"#
            ),
            format!(r#"{{"type":"response.output_item.done","item":{item},"output_index":0}}"#),
        ] {
            let read = item_in_place(data.as_bytes()).expect("in place");
            assert_eq!(read, item.as_bytes());
            let v: Value =
                serde_json::from_slice(item_of(data.as_bytes()).expect("item")).expect("json");
            assert_eq!(v.to_string(), parsed(&data));
        }
        for other in [
            format!(r#"{{"type":"response.output_item.done","output_index":"0","item":{item}}}"#),
            format!(r#"{{"sequence_number":1,"type":"response.output_item.done","item":{item}}}"#),
        ] {
            assert_eq!(item_in_place(other.as_bytes()), None, "{other}");
            let v: Value =
                serde_json::from_slice(item_of(other.as_bytes()).expect("parsed")).expect("json");
            assert_eq!(v.to_string(), parsed(&other));
        }
        for cut in [
            r#"{"type":"response.output_item.done","item":{"a":"}"#,
            r#"{"type":"response.output_item.done","item":{"a":{}"#,
        ] {
            assert_eq!(item_in_place(cut.as_bytes()), None, "{cut}");
            assert_eq!(item_of(cut.as_bytes()), None, "{cut}");
        }
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
