//! Watching a Responses SSE stream on the side: which terminal event ended it, what usage it
//! reported, and — for `stream: false` clients — the pieces needed to rebuild the final
//! response object. The bytes themselves are forwarded elsewhere, unchanged; this only reads.
//!
//! Cheap by construction: events arrive borrowed from the SSE parser's buffers
//! ([`SseParser::push_with`]), every event's `type` is read without a JSON parse (see
//! [`crate::sse::EventRef::json_type`]), deltas cost nothing more, and `response.created` and
//! the terminal events are read into a few typed fields ([`doc`]) rather than a `Value` tree.
//! Only a collecting observer (`stream: false`) builds `Value`s, for the answer it rebuilds.

pub mod doc;

use crate::proxy::backfill::{Output, Seen};
use crate::proxy::reasoning::Learner;
use crate::sse::{EventRef, SseParser};
use rotor_actors::Usage;
use serde_json::Value;

/// How the stream ended, as far as upstream said.
#[derive(Debug, Clone, PartialEq)]
pub enum Terminal {
    /// `response.completed`.
    Completed,
    /// `response.failed` with upstream's error code and message.
    Failed {
        /// `response.error.code`.
        code: Option<String>,
        /// `response.error.message`.
        message: Option<String>,
    },
    /// `response.incomplete` (e.g. `max_output_tokens`): terminal, not an error of the pool.
    Incomplete,
}

/// Observation state of one upstream stream.
#[derive(Debug, Default)]
pub struct Observer {
    parser: SseParser,
    /// Whether to keep what a `stream: false` answer is built from.
    collect: bool,
    /// The terminal event, once seen.
    pub terminal: Option<Terminal>,
    /// Usage reported by the terminal event.
    pub usage: Option<Usage>,
    /// The terminal event's `response` object (kept only when collecting).
    pub response: Option<Value>,
    /// `response.output_item.done` items in order (kept only when collecting).
    pub items: Vec<Value>,
    /// `response.id` from `response.created` or the terminal event.
    pub response_id: Option<String>,
    /// Number of events seen.
    pub events: u64,
    /// The `code` of an upstream `error` event (not a terminal event; the stream then ends
    /// without one).
    pub error_code: Option<String>,
    /// A `stream: false` answer would silently lack something: an event it is rebuilt from
    /// (an output item, the terminal event, or one whose type could not be read) was longer
    /// than [`crate::sse::MAX_LINE`] and could not be observed.
    pub incomplete: bool,
    /// Events seen that carry the response object (`response.created`, `.in_progress` and the
    /// terminal ones), where upstream echoes the request's `prompt_cache_key`: a chunk that
    /// brought none needs no search for it ([`crate::upstream::pseudonym::Echo`]).
    pub responses: u32,
    /// Drops of the parser already accounted for.
    seen_dropped: u64,
    /// Learns which account minted the reasoning the answer carries (docs/protocol.md §15).
    learn: Option<Learner>,
    /// What the back-fill of the same bytes takes from this reading
    /// ([`crate::proxy::backfill::Backfill::push_seen`]): the output items (kept only when
    /// [`Observer::backfilling`]), and where the `response.completed` event's `output` sits
    /// when it is an empty list.
    pub seen: Seen,
}

impl Observer {
    /// An observer; `collect` keeps the final response for a `stream: false` client.
    pub fn new(collect: bool) -> Self {
        Self {
            collect,
            parser: crate::sse::SseParser::new(),
            ..Self::default()
        }
    }

    /// The observer, also telling `learn` every output item (`None`: nobody learns).
    pub fn learning(mut self, learn: Option<Learner>) -> Self {
        self.learn = learn;
        self
    }

    /// The observer, also keeping the output items' bytes for a back-fill of the stream when
    /// `backfill`.
    pub fn backfilling(mut self, backfill: bool) -> Self {
        self.seen = Seen::keeping(backfill);
        self
    }

    /// Feeds one chunk of the upstream body.
    pub fn push(&mut self, chunk: &[u8]) {
        let mut parser = std::mem::take(&mut self.parser);
        parser.push_with(chunk, |ev| self.on_event(ev));
        self.parser = parser;
        self.check_dropped();
    }

    /// The upstream body ended: an unterminated last event still counts.
    pub fn finish(&mut self) {
        let mut parser = std::mem::take(&mut self.parser);
        parser.finish_with(|ev| self.on_event(ev));
        self.parser = parser;
        self.check_dropped();
    }

    /// Events too long to observe so far ([`crate::sse::MAX_LINE`]); their bytes still went
    /// wherever the caller sent them.
    pub fn dropped(&self) -> u64 {
        self.parser.dropped()
    }

    /// Accounts for an event the parser dropped: a terminal one still ends the stream (its
    /// usage is unknown), and a collecting observer notes what its answer now lacks.
    fn check_dropped(&mut self) {
        if self.parser.dropped() == self.seen_dropped {
            return;
        }
        self.seen_dropped = self.parser.dropped();
        let kind = self.parser.last_dropped_type();
        tracing::warn!(event = ?kind, limit = crate::sse::MAX_LINE, "an upstream event is too long to observe");
        let terminal = match kind {
            Some("response.completed") => Some(Terminal::Completed),
            Some("response.incomplete") => Some(Terminal::Incomplete),
            Some("response.failed") => Some(Terminal::Failed {
                code: None,
                message: Some("upstream's response.failed event was too long to read".into()),
            }),
            _ => None,
        };
        let needed = terminal.is_some() || matches!(kind, None | Some("response.output_item.done"));
        self.incomplete |= self.collect && needed;
        if self.terminal.is_none() {
            if terminal == Some(Terminal::Completed) {
                self.seen.output = Output::Unplaced;
            }
            self.terminal = terminal;
        }
    }

    fn on_event(&mut self, ev: EventRef<'_>) {
        self.events += 1;
        if self.terminal.is_some() {
            return;
        }
        let Some(kind) = ev.json_type() else { return };
        if matches!(
            &*kind,
            "response.created"
                | "response.in_progress"
                | "response.completed"
                | "response.failed"
                | "response.incomplete"
        ) {
            self.responses += 1;
        }
        match &*kind {
            "response.completed" | "response.failed" | "response.incomplete" => {
                self.on_terminal(&kind, ev.data, ev.data_at)
            }
            "response.output_item.done" => {
                if let Some(learn) = &self.learn {
                    learn.item_done(ev.data);
                }
                self.seen.item_done(ev.data);
                if self.collect
                    && let Some(item) =
                        parse(ev.data).and_then(|mut v| v.get_mut("item").map(Value::take))
                {
                    self.items.push(item);
                }
            }
            "error" if self.error_code.is_none() => {
                self.error_code = parse(ev.data).and_then(|v| {
                    let e = v.get("error").unwrap_or(&v);
                    e.get("code").and_then(Value::as_str).map(str::to_owned)
                });
            }
            "response.created" if self.response_id.is_none() => {
                self.response_id = match fast_created_id(ev.data) {
                    Some(id) => Some(id.to_owned()),
                    None => doc::event(ev.data).response.get().id.text(),
                };
            }
            _ => {}
        }
    }

    fn on_terminal(&mut self, kind: &str, data: &[u8], data_at: Option<u64>) {
        let resp = doc::event(data).response.get();
        if kind == "response.completed" {
            self.seen.output = Output::of(data, data_at, resp.output);
        }
        self.usage = resp.usage.map(|u| usage_of(u.get()));
        if let Some(id) = resp.id.text() {
            self.response_id = Some(id);
        }
        self.terminal = Some(match kind {
            "response.completed" => Terminal::Completed,
            "response.incomplete" => Terminal::Incomplete,
            _ => {
                let e = resp.error.get();
                Terminal::Failed {
                    code: e.code.text(),
                    message: e.message.text(),
                }
            }
        });
        if self.collect {
            // Only a `stream: false` answer needs the whole object.
            self.response = Some(
                parse(data)
                    .and_then(|mut v| v.get_mut("response").map(Value::take))
                    .unwrap_or(Value::Null),
            );
        }
    }

    /// What the failure that ended the stream teaches the serving account's quota: the
    /// `response.failed` or `error` event's code, when it is a quota code
    /// ([`crate::upstream::classify::stream_fault`]); `None` for everything else, the request's
    /// own faults included.
    pub fn quota_fault(&self) -> Option<rotor_actors::quota::RejectionKind> {
        let code = match &self.terminal {
            Some(Terminal::Failed { code, .. }) => code.as_deref(),
            _ => None,
        };
        crate::upstream::classify::stream_fault(code.or(self.error_code.as_deref())?)
    }

    /// The final response object for a `stream: false` client: the terminal event's
    /// `response`, with `output` filled from the streamed items when upstream left it empty
    /// (the minimal `response.completed` Codex accepts carries only an id).
    pub fn final_response(&mut self) -> Value {
        let mut resp = self
            .response
            .take()
            .unwrap_or_else(|| serde_json::json!({}));
        if !resp.is_object() {
            resp = serde_json::json!({});
        }
        crate::proxy::backfill::fill_output(&mut resp, std::mem::take(&mut self.items));
        if let Some(obj) = resp.as_object_mut() {
            obj.entry("object")
                .or_insert_with(|| Value::from("response"));
            if let Some(id) = &self.response_id {
                obj.entry("id").or_insert_with(|| Value::from(id.as_str()));
            }
        }
        resp
    }
}

/// `response.id` of a `response.created` event read without a parser when the document starts
/// `{"type":"response.created",["sequence_number":N,]"response":{"id":"…"` as upstream sends
/// it (the rest — instructions, tools — can be large and is not needed); `None` for any other
/// shape, which is then parsed.
fn fast_created_id(data: &[u8]) -> Option<&str> {
    let rest = data.strip_prefix(b"{\"type\":\"response.created\",")?;
    let rest = match rest.strip_prefix(b"\"sequence_number\":") {
        Some(r) => {
            let digits = r.iter().take_while(|b| b.is_ascii_digit()).count();
            r.get(digits..).filter(|_| digits > 0)?.strip_prefix(b",")?
        }
        None => rest,
    };
    crate::sse::plain_json_str(rest.strip_prefix(b"\"response\":{\"id\":\"")?)
}

fn parse(data: &[u8]) -> Option<Value> {
    serde_json::from_slice(data).ok()
}

fn usage_of(u: doc::UsageDoc<'_>) -> Usage {
    Usage {
        input_tokens: u.input_tokens.count(),
        cached_tokens: u.input_tokens_details.get().cached_tokens.count(),
        output_tokens: u.output_tokens.count(),
        reasoning_tokens: u.output_tokens_details.get().reasoning_tokens.count(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = concat!(
        "data: {\"type\":\"response.created\",\"response\":{\"id\":\"resp_1\"}}\n\n",
        "data: {\"type\":\"response.output_text.delta\",\"delta\":\"hel\"}\n\n",
        "data: {\"type\":\"response.output_item.done\",\"item\":{\"type\":\"message\",\"role\":\"assistant\",\"content\":[{\"type\":\"output_text\",\"text\":\"hello\"}]}}\n\n",
        "data: {\"type\":\"response.completed\",\"response\":{\"id\":\"resp_1\",\"usage\":{\"input_tokens\":10,\"input_tokens_details\":{\"cached_tokens\":4},\"output_tokens\":7,\"output_tokens_details\":{\"reasoning_tokens\":2},\"total_tokens\":17}}}\n\n",
    );

    #[test]
    fn sees_terminal_usage_and_items() {
        let mut o = Observer::new(true);
        for c in OK.as_bytes().chunks(7) {
            o.push(c);
        }
        o.finish();
        assert_eq!(o.terminal, Some(Terminal::Completed));
        assert_eq!(
            o.usage,
            Some(Usage {
                input_tokens: 10,
                cached_tokens: 4,
                output_tokens: 7,
                reasoning_tokens: 2
            })
        );
        let r = o.final_response();
        assert_eq!(r["id"], "resp_1");
        assert_eq!(r["object"], "response");
        assert_eq!(r["output"][0]["content"][0]["text"], "hello");
    }

    #[test]
    fn created_id_is_read_without_a_parse_only_in_the_usual_shape() {
        let id = |d: &[u8]| fast_created_id(d).map(str::to_owned);
        assert_eq!(
            id(br#"{"type":"response.created","sequence_number":0,"response":{"id":"resp_9","instructions":"x"}}"#).as_deref(),
            Some("resp_9")
        );
        assert_eq!(
            id(br#"{"type":"response.created","response":{"id":"r"}}"#).as_deref(),
            Some("r")
        );
        for other in [
            &br#"{"type":"response.created","sequence_number":,"response":{"id":"r"}}"#[..],
            br#"{"type":"response.created","response":{"object":"response","id":"r"}}"#,
            br#"{"type":"response.created","response":{"id":"r\u0031"}}"#,
        ] {
            assert_eq!(id(other), None);
        }
        let mut o = Observer::new(false);
        o.push(b"data: {\"type\":\"response.created\",\"response\":{\"object\":\"response\",\"id\":\"r\\u0031\"}}\n\n");
        assert_eq!(
            o.response_id.as_deref(),
            Some("r1"),
            "other shapes are parsed"
        );
    }

    #[test]
    fn stream_without_terminal_has_none() {
        let mut o = Observer::new(false);
        o.push(b"data: {\"type\":\"response.created\",\"response\":{\"id\":\"r\"}}\n\ndata: {\"type\":\"response.output_text.delta\"");
        o.finish();
        assert_eq!(o.terminal, None);
        assert_eq!(o.response_id.as_deref(), Some("r"));
    }

    /// An event over the line limit: a terminal one still ends the stream, and a collecting
    /// observer knows its answer would lack an item, but not a delta it never uses.
    #[test]
    fn a_dropped_event_still_counts_when_it_was_terminal_or_needed() {
        let huge = |ty: &str| {
            let mut ev = format!("data: {{\"type\":\"{ty}\",\"x\":\"").into_bytes();
            ev.resize(crate::sse::MAX_LINE + 1, b'x');
            ev.extend_from_slice(b"\"}\n\n");
            ev
        };
        let mut o = Observer::new(false);
        o.push(&huge("response.completed"));
        assert_eq!(o.terminal, Some(Terminal::Completed));
        assert_eq!((o.dropped(), o.usage), (1, None));
        for (ty, incomplete) in [
            ("response.output_text.delta", false),
            ("response.output_item.done", true),
            ("response.completed", true),
        ] {
            let mut o = Observer::new(true);
            o.push(&huge(ty));
            o.finish();
            assert_eq!(o.incomplete, incomplete, "{ty}");
        }
    }

    #[test]
    fn failed_event_keeps_code_and_message() {
        let mut o = Observer::new(false);
        o.push(b"data: {\"type\":\"response.failed\",\"response\":{\"error\":{\"code\":\"server_error\",\"message\":\"boom\"}}}\n\n");
        assert_eq!(
            o.terminal,
            Some(Terminal::Failed {
                code: Some("server_error".into()),
                message: Some("boom".into())
            })
        );
        assert!(o.response.is_none(), "not collecting");
        assert_eq!(
            o.quota_fault(),
            None,
            "server_error says nothing of the account"
        );
    }

    #[test]
    fn quota_codes_of_failed_and_error_events_are_quota_faults() {
        let mut o = Observer::new(false);
        o.push(b"data: {\"type\":\"response.failed\",\"response\":{\"error\":{\"code\":\"insufficient_quota\"}}}\n\n");
        assert_eq!(
            o.quota_fault(),
            Some(rotor_actors::quota::RejectionKind::UsageLimitReached)
        );
        let mut o = Observer::new(false);
        o.push(
            b"data: {\"type\":\"error\",\"code\":\"rate_limit_exceeded\",\"message\":\"slow\"}\n\n",
        );
        assert_eq!(o.terminal, None, "an error event is not terminal");
        assert_eq!(
            o.quota_fault(),
            Some(rotor_actors::quota::RejectionKind::RateLimitExceeded)
        );
        let mut o = Observer::new(false);
        o.push(b"data: {\"type\":\"response.failed\",\"response\":{\"error\":{\"code\":\"context_length_exceeded\"}}}\n\n");
        assert_eq!(o.quota_fault(), None, "the request's fault");
    }
}
