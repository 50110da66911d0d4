//! Unit tests of the SSE parser: chunking, line endings, comments, and over-long lines.

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
fn borrowed_events_match_owned_ones_at_any_chunking() {
    let whole = all_at_once();
    for size in 1..STREAM.len() {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        for c in STREAM.chunks(size) {
            p.push_with(c, |ev| out.push(ev.to_owned_event()));
        }
        assert_eq!(out, whole, "chunk size {size}");
    }
    let mut p = SseParser::new();
    let mut types = Vec::new();
    p.push_with(STREAM, |ev| types.push(ev.json_type().map(Cow::into_owned)));
    assert_eq!(
        types,
        [
            Some("response.created".to_owned()),
            Some("response.output_text.delta".to_owned()),
            None
        ]
    );
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
    assert_eq!(p.dropped(), 1, "the drop is counted");
}

/// The dropped event is named from its first bytes however the line arrived (in one chunk
/// or many), and a lossless parser yields nothing after it.
#[test]
fn a_dropped_event_is_named_and_a_lossless_parser_stops_there() {
    let mut line = b"data: {\"type\":\"response.output_text.delta\",\"delta\":\"".to_vec();
    line.resize(MAX_LINE + 10, b'x');
    line.extend_from_slice(b"\"}\n\ndata: {\"type\":\"response.completed\"}\n\n");
    for size in [line.len(), 4096, 7] {
        let mut p = SseParser::new();
        let mut lossless = SseParser::lossless();
        let (mut out, mut strict) = (Vec::new(), Vec::new());
        p.push(b"data: {\"type\":\"response.created\"}\n\n", &mut out);
        lossless.push(b"data: {\"type\":\"response.created\"}\n\n", &mut strict);
        for c in line.chunks(size) {
            p.push(c, &mut out);
            lossless.push(c, &mut strict);
        }
        assert_eq!(
            out.len(),
            2,
            "the lenient parser carries on (chunks of {size})"
        );
        assert_eq!(strict.len(), 1, "the lossless one stops at the loss");
        for parser in [&p, &lossless] {
            assert_eq!(parser.dropped(), 1);
            assert_eq!(
                parser.last_dropped_type(),
                Some("response.output_text.delta")
            );
        }
    }
    let mut p = SseParser::new();
    p.push(
        b"event: response.completed\ndata: {\"x\":\"",
        &mut Vec::new(),
    );
    p.push(&vec![b'y'; MAX_LINE], &mut Vec::new());
    assert_eq!(
        p.finish(),
        None,
        "a stream ending inside the line loses its event"
    );
    assert_eq!(p.dropped(), 1);
    assert_eq!(
        p.last_dropped_type(),
        Some("response.completed"),
        "named by `event:`"
    );
}

/// Where a one-line `data` starts in the stream is known however the chunks fall and whatever
/// ends the lines, so that its bytes can be found in the stream without a search; data joined
/// from several lines has no such place.
#[test]
fn a_one_line_data_is_found_where_it_is_in_the_stream() {
    let stream: &[u8] =
        b"event: x\ndata: {\"a\":1}\n\n:c\r\rdata:{}\r\n\r\ndata: a\ndata: b\n\ndata\n\n";
    for size in 1..=stream.len() {
        let mut p = SseParser::new();
        let mut seen = Vec::new();
        for c in stream.chunks(size) {
            p.push_with(c, |ev| {
                let at = ev.data_at.map(|a| {
                    let a = usize::try_from(a).expect("small");
                    assert_eq!(&stream[a..a + ev.data.len()], ev.data, "chunk size {size}");
                    a
                });
                seen.push(at);
            });
        }
        assert_eq!(
            seen,
            [Some(15), Some(33), None, Some(60)],
            "chunk size {size}"
        );
    }
}
