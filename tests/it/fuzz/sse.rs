//! Fuzzing the SSE observer (`codex_rotor::sse::SseParser`): arbitrary bytes cut at arbitrary
//! points must give the same events as the whole body (the proxy sees whatever chunking TCP
//! produced), and generated well-formed streams — any line ending, comments, multi-line data —
//! must come back event for event.

use super::cases;
use codex_rotor::sse::{SseEvent, SseParser};
use proptest::prelude::*;

/// Feeds `bytes` cut at `cuts` (offsets, any order) and returns every event, `finish` included.
fn parse_chunked(bytes: &[u8], cuts: &[usize]) -> Vec<SseEvent> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    cuts.sort_unstable();
    let mut p = SseParser::new();
    let mut out = Vec::new();
    let mut from = 0;
    for c in cuts {
        p.push(&bytes[from..c], &mut out);
        from = c;
    }
    p.push(&bytes[from..], &mut out);
    out.extend(p.finish());
    out
}

/// One generated event: optional name and its data lines.
#[derive(Debug, Clone)]
struct GenEvent {
    name: Option<String>,
    lines: Vec<String>,
    ending: &'static str,
    comment: bool,
}

fn gen_event() -> impl Strategy<Value = GenEvent> {
    (
        prop::option::of("[a-z][a-z._]{0,24}"),
        prop::collection::vec("[^\r\n]{0,40}", 1..4),
        prop::sample::select(&["\n", "\r\n", "\r"][..]),
        any::<bool>(),
    )
        .prop_map(|(name, lines, ending, comment)| GenEvent {
            name,
            lines,
            ending,
            comment,
        })
}

fn encode(events: &[GenEvent]) -> Vec<u8> {
    let mut s = String::new();
    for e in events {
        let nl = e.ending;
        if e.comment {
            s.push_str(&format!(": keepalive{nl}"));
        }
        if let Some(name) = &e.name {
            s.push_str(&format!("event: {name}{nl}"));
        }
        for l in &e.lines {
            s.push_str(&format!("data: {l}{nl}"));
        }
        s.push_str(nl);
    }
    s.into_bytes()
}

proptest! {
    #![proptest_config(cases(2000))]

    #[test]
    fn arbitrary_bytes_parse_the_same_under_any_chunking(
        bytes in prop::collection::vec(any::<u8>(), 0..600),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let whole = parse_chunked(&bytes, &[]);
        let chunked = parse_chunked(&bytes, &cuts);
        prop_assert_eq!(&whole, &chunked);
        for ev in &whole {
            let _ = ev.json_type();
        }
    }

    #[test]
    fn sse_shaped_noise_parses_the_same_under_any_chunking(
        parts in prop::collection::vec(
            prop::sample::select(&["data:", "data: ", "event: x", "\n", "\r", "\r\n", ":c", "{\"type\":\"a\"}", "id: 1", "retry: 5", "data", " "][..]),
            0..60),
        cuts in prop::collection::vec(any::<usize>(), 0..16),
    ) {
        let bytes = parts.concat().into_bytes();
        prop_assert_eq!(parse_chunked(&bytes, &[]), parse_chunked(&bytes, &cuts));
    }

    #[test]
    fn well_formed_streams_round_trip(
        events in prop::collection::vec(gen_event(), 0..8),
        cuts in prop::collection::vec(any::<usize>(), 0..10),
    ) {
        let bytes = encode(&events);
        let got = parse_chunked(&bytes, &cuts);
        prop_assert_eq!(got.len(), events.len(), "one event per generated event");
        for (g, e) in got.iter().zip(&events) {
            prop_assert_eq!(&g.event, &e.name);
            prop_assert_eq!(String::from_utf8_lossy(&g.data), e.lines.join("\n"));
        }
    }

    #[test]
    fn json_type_agrees_with_a_full_parse(
        ty in "[a-z._\\\\\"]{0,20}",
        rest in super::json::object(),
    ) {
        let mut obj = serde_json::json!({"type": ty});
        if let (Some(o), Some(r)) = (obj.as_object_mut(), rest.as_object()) {
            for (k, v) in r {
                if k != "type" {
                    o.insert(k.clone(), v.clone());
                }
            }
        }
        let data = serde_json::to_vec(&obj).expect("serialises");
        let ev = SseEvent { event: None, data };
        prop_assert_eq!(ev.json_type(), Some(ty));
    }
}

/// Found by `sse_shaped_noise_parses_the_same_under_any_chunking`: an empty chunk between a
/// `\r` and its `\n` used to forget the pending `\r`, so the `\n` counted as a blank line and
/// split one event in two.
#[test]
fn an_empty_chunk_between_cr_and_lf_does_not_split_an_event() {
    let mut p = SseParser::new();
    let mut out = Vec::new();
    for chunk in [&b"data: a\r"[..], b"", b"\ndata: b\n\n"] {
        p.push(chunk, &mut out);
    }
    assert_eq!(out.len(), 1, "one event: {out:?}");
    assert_eq!(out[0].data, b"a\nb");
}
