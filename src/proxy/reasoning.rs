//! Conversations survive a failover: reasoning encrypted by one account is sent to no other
//! (docs/protocol.md §15). With `store: false` a client replays each earlier turn's reasoning
//! item with its `encrypted_content`, which only the account that minted it can decrypt; any
//! other account answers `400 invalid_encrypted_content`, and the Codex CLI does not retry
//! that, so without this a conversation would be stuck on every turn after a failover.
//!
//! - **Learn** ([`Learner`]): the pass-through's observer hands every
//!   `response.output_item.done` event here; one carrying a reasoning item's
//!   `encrypted_content` is remembered as minted by the serving account
//!   ([`MintedReasoning`]). Only such an event is read, and only its item's two fields.
//! - **Drop** ([`for_account`]): before a request goes to an account, each reasoning item whose
//!   blob another account minted is dropped whole (an item stripped of its blob would be looked
//!   up by id upstream and refused as not persisted). A blob of unknown origin (forgotten, or
//!   minted before a restart) stays: it most likely belongs to the account the conversation's
//!   affinity keeps it on, and the backstop covers it if not. A body without foreign reasoning
//!   goes on as the same bytes — decided from where the request's one look at the body
//!   ([`crate::upstream::shape::look`]) found each reasoning item's `encrypted_content`
//!   ([`Blobs`]), without reading the body again; one with some is read once (borrowed) and has
//!   those items cut out of its `input` array, the rest of its bytes unchanged.
//! - **Backstop** ([`backstop`]): an upstream `400 invalid_encrypted_content` is retried once on
//!   the same account with every reasoning item that carries a blob dropped; a second refusal
//!   reaches the client. It is the request's fault, so no account is penalised.

use crate::http::errors::ApiError;
use crate::http::state::minted::MintedReasoning;
use crate::upstream::shape::Blobs;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::sync::{Arc, LazyLock};

/// `error.code` of upstream's refusal of reasoning another account encrypted.
pub const INVALID_ENCRYPTED_CONTENT: &str = "invalid_encrypted_content";

/// The key every blob comes under: a body or event without it carries no encrypted reasoning,
/// and nothing more of it is read.
const ENCRYPTED_KEY: &[u8] = b"\"encrypted_content\"";

/// The searcher for [`ENCRYPTED_KEY`], built once (`memmem::find` builds one on every call,
/// which costs more than searching an output item).
static ENCRYPTED: LazyLock<memchr::memmem::Finder<'static>> =
    LazyLock::new(|| memchr::memmem::Finder::new(ENCRYPTED_KEY));

/// Learns, for one streamed answer, the blobs its account mints.
pub struct Learner {
    minted: Arc<MintedReasoning>,
    account: String,
}

impl std::fmt::Debug for Learner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Learner")
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

impl Learner {
    /// A learner recording into `minted` what `account` mints.
    pub fn new(minted: &Arc<MintedReasoning>, account: &str) -> Self {
        Self {
            minted: Arc::clone(minted),
            account: account.to_owned(),
        }
    }

    /// Reads one `response.output_item.done` event's data; a reasoning item's blob is
    /// remembered as this account's.
    pub fn item_done(&self, data: &[u8]) {
        #[derive(Deserialize)]
        struct Done<'a> {
            #[serde(borrow)]
            item: ItemLook<'a>,
        }
        if ENCRYPTED.find(data).is_none() {
            return;
        }
        if let Ok(done) = serde_json::from_slice::<Done<'_>>(data)
            && let Some(blob) = done.item.blob()
        {
            self.minted.remember(blob, &self.account);
        }
    }
}

/// The body `account` gets: `body` without the reasoning items another account minted — the
/// same bytes when there are none. `blobs` is where the body's blobs are, as the look at the
/// request found them ([`Blobs`]): a body without any is not read at all, one whose blobs
/// were placed is read only at those places.
pub fn for_account(minted: &MintedReasoning, body: &Bytes, blobs: &Blobs, account: &str) -> Bytes {
    let foreign = |blob: &str| minted.minter(blob).is_some_and(|a| &*a != account);
    let doomed = match blobs {
        Blobs::None => false,
        Blobs::At(at) => at.iter().any(|r| {
            body.get(r.clone())
                .is_none_or(|b| std::str::from_utf8(b).map_or(true, foreign))
        }),
        Blobs::Unread => may_carry(body, &foreign),
    };
    if !doomed {
        return body.clone();
    }
    match drop_reasoning(body, foreign) {
        Some((shaped, dropped)) => {
            tracing::info!(
                account,
                dropped,
                "dropped reasoning items another account encrypted"
            );
            shaped
        }
        None => body.clone(),
    }
}

/// The body to retry once when upstream refused `sent` with [`INVALID_ENCRYPTED_CONTENT`]:
/// `sent` without any reasoning item carrying a blob. `None` when `refusal` is another answer,
/// or `sent` has no such item (a retry would only be refused again).
pub fn backstop(refusal: &ApiError, sent: &Bytes) -> Option<Bytes> {
    let ApiError::Passthrough {
        status: 400, code, ..
    } = refusal
    else {
        return None;
    };
    if code.as_deref() != Some(INVALID_ENCRYPTED_CONTENT) {
        return None;
    }
    let every = |_: &str| true;
    if !may_carry(sent, &every) {
        return None;
    }
    drop_reasoning(sent, every).map(|(b, _)| b)
}

/// The two fields of an input or output item this module reads.
#[derive(Deserialize)]
struct ItemLook<'a> {
    #[serde(borrow, default, rename = "type")]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    encrypted_content: Option<Cow<'a, str>>,
}

impl ItemLook<'_> {
    /// The blob of a reasoning item that carries one.
    fn blob(&self) -> Option<&str> {
        if self.kind.as_deref() != Some("reasoning") {
            return None;
        }
        self.encrypted_content.as_deref().filter(|b| !b.is_empty())
    }
}

/// Whether `body` may carry a blob that is `doomed`, read without a parse: the string value of
/// every `"encrypted_content"` key is checked in place (the key's quotes cannot occur inside a
/// JSON string, where they are escaped). A value with escapes answers `true`: the parse
/// decides. Most bodies with encrypted reasoning carry only their account's, and end here.
fn may_carry(body: &[u8], doomed: &impl Fn(&str) -> bool) -> bool {
    let trim = |b: &[u8]| -> usize { b.iter().take_while(|c| c.is_ascii_whitespace()).count() };
    for at in ENCRYPTED.find_iter(body) {
        let rest = &body[at + ENCRYPTED_KEY.len()..];
        let Some(rest) = rest[trim(rest)..].strip_prefix(b":") else {
            continue; // the text as a value (in a list), not a key
        };
        let Some(rest) = rest[trim(rest)..].strip_prefix(b"\"") else {
            continue; // `null` or a number: no blob
        };
        match crate::sse::plain_json_str(rest) {
            Some(blob) if !doomed(blob) => {}
            _ => return true,
        }
    }
    false
}

/// `body` with the reasoning items whose blob is `doomed` cut out of its `input` array, and how
/// many; `None` when none is (or `body` has no list `input`: upstream judges it as it is). Called
/// only for a body that may carry such a blob: it parses the body.
fn drop_reasoning(body: &Bytes, doomed: impl Fn(&str) -> bool) -> Option<(Bytes, usize)> {
    #[derive(Deserialize)]
    struct BodyLook<'a> {
        #[serde(borrow, default)]
        input: Option<&'a RawValue>,
    }
    let input = serde_json::from_slice::<BodyLook<'_>>(body).ok()?.input?;
    let items: Vec<&RawValue> = serde_json::from_str(input.get()).ok()?;
    let keep: Vec<&RawValue> = items
        .iter()
        .copied()
        .filter(|raw| {
            let look = serde_json::from_str::<ItemLook<'_>>(raw.get()).ok();
            !look.as_ref().and_then(|l| l.blob()).is_some_and(&doomed)
        })
        .collect();
    let dropped = items.len() - keep.len();
    if dropped == 0 {
        return None;
    }
    // `input` borrows from `body`: its offset there is the distance between the two.
    let start = input.get().as_ptr() as usize - body.as_ptr() as usize;
    let end = start + input.get().len();
    let mut out = Vec::with_capacity(body.len());
    out.extend_from_slice(&body[..start]);
    out.push(b'[');
    for (i, raw) in keep.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(raw.get().as_bytes());
    }
    out.push(b']');
    out.extend_from_slice(&body[end..]);
    Some((Bytes::from(out), dropped))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn body(input: Value) -> Bytes {
        Bytes::from(
            json!({"model": "m", "store": false, "stream": true, "instructions": "i",
                "input": input, "include": ["reasoning.encrypted_content"]})
            .to_string(),
        )
    }

    fn reasoning(blob: &str) -> Value {
        json!({"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": blob})
    }

    fn user(text: &str) -> Value {
        json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]})
    }

    /// What `account` gets of `b`, the same whether the blobs come from the look at the body or
    /// are found by reading it.
    fn for_account(m: &MintedReasoning, b: &Bytes, account: &str) -> Bytes {
        let placed = crate::upstream::shape::look(b).map_or(Blobs::Unread, |l| l.blobs(b));
        let read = super::for_account(m, b, &Blobs::Unread, account);
        let out = super::for_account(m, b, &placed, account);
        assert_eq!(out, read, "{placed:?}");
        assert_eq!(out.as_ptr() == b.as_ptr(), read.as_ptr() == b.as_ptr());
        out
    }

    fn learned(pairs: &[(&str, &str)]) -> Arc<MintedReasoning> {
        let m = Arc::new(MintedReasoning::new());
        for (blob, account) in pairs {
            let event = json!({"type": "response.output_item.done", "output_index": 0,
                "item": reasoning(blob)});
            Learner::new(&m, account).item_done(event.to_string().as_bytes());
        }
        m
    }

    #[test]
    fn the_learner_remembers_reasoning_blobs_only() {
        let m = learned(&[("gAAAAB-a", "acct-a")]);
        assert_eq!(m.minter("gAAAAB-a").as_deref(), Some("acct-a"));
        let l = Learner::new(&m, "acct-b");
        l.item_done(br#"{"type":"response.output_item.done","item":{"type":"message","encrypted_content":"gAAAAB-m"}}"#);
        l.item_done(
            br#"{"type":"response.output_item.done","item":{"type":"reasoning","summary":[]}}"#,
        );
        l.item_done(br#"{"type":"response.output_item.done","item":{"type":"reasoning","encrypted_content":""}}"#);
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn foreign_reasoning_is_cut_out_and_the_rest_kept_byte_for_byte() {
        let m = learned(&[("gAAAAB-a", "acct-a"), ("gAAAAB-b", "acct-b")]);
        let b = body(json!([
            user("one"),
            reasoning("gAAAAB-a"),
            reasoning("gAAAAB-b"),
            reasoning("gAAAAB-unknown"),
            user("two")
        ]));
        let out = for_account(&m, &b, "acct-b");
        let v: Value = serde_json::from_slice(&out).expect("still JSON");
        let blobs: Vec<&str> = v["input"]
            .as_array()
            .expect("input")
            .iter()
            .filter_map(|i| i["encrypted_content"].as_str())
            .collect();
        assert_eq!(
            blobs,
            ["gAAAAB-b", "gAAAAB-unknown"],
            "own and unknown stay"
        );
        assert_eq!(v["input"].as_array().map(Vec::len), Some(4));
        let cut = serde_json::to_string(&reasoning("gAAAAB-a")).expect("json");
        let mut want = String::from_utf8(b.to_vec()).expect("utf-8");
        want = want.replacen(&format!(",{cut}"), "", 1);
        assert_eq!(String::from_utf8_lossy(&out), want, "only the item went");
        let first = for_account(
            &m,
            &body(json!([reasoning("gAAAAB-a"), user("x")])),
            "acct-b",
        );
        let v: Value = serde_json::from_slice(&first).expect("JSON");
        assert_eq!(v["input"], json!([user("x")]));
    }

    #[test]
    fn a_body_without_foreign_reasoning_is_the_same_bytes() {
        let m = learned(&[("gAAAAB-a", "acct-a")]);
        for b in [
            body(json!([user("hi")])),
            body(json!([reasoning("gAAAAB-a"), user("hi")])),
            body(json!([reasoning("gAAAAB-unknown")])),
            body(json!("a string input")),
            Bytes::from_static(b"{\"input\":5,\"encrypted_content\":1}"),
            Bytes::from_static(b"not json \"encrypted_content\""),
        ] {
            let out = for_account(&m, &b, "acct-a");
            assert_eq!(out.as_ptr(), b.as_ptr(), "not copied: {b:?}");
        }
    }

    #[test]
    fn the_in_place_read_defers_to_the_parse_when_it_cannot_tell() {
        let m = learned(&[("gAAAAB-a/x", "acct-a")]);
        let kept = json!([{"type": "message", "role": "user", "content": "x"}]);
        // An escaped `/` cannot be compared in place; the parse reads it.
        let escaped = Bytes::from_static(
            br#"{"input":[{"type":"reasoning","encrypted_content":"gAAAAB-a\/x"},{"type":"message","role":"user","content":"x"}]}"#,
        );
        let pretty = Bytes::from(
            serde_json::to_string_pretty(&json!({"input": [reasoning("gAAAAB-a/x"), kept[0]]}))
                .expect("json"),
        );
        for b in [escaped, pretty] {
            let v: Value = serde_json::from_slice(&for_account(&m, &b, "acct-b")).expect("json");
            assert_eq!(v["input"], kept, "{b:?}");
        }
        let own = |_: &str| false;
        for (b, maybe) in [
            (
                &br#"{"include":["encrypted_content"],"input":[]}"#[..],
                false,
            ),
            (
                br#"{"input":[{"type":"reasoning","encrypted_content":null}]}"#,
                false,
            ),
            (
                br#"{"input":[{"type":"reasoning","encrypted_content":"gAAAAB"}]}"#,
                false,
            ),
            (
                br#"{"input":[{"type":"reasoning","encrypted_content":"gA\u0041"}]}"#,
                true,
            ),
        ] {
            assert_eq!(may_carry(b, &own), maybe, "{}", String::from_utf8_lossy(b));
        }
    }

    #[test]
    fn the_backstop_answers_only_invalid_encrypted_content_and_drops_every_blob() {
        // The refusal as the proxy makes it: the body read once, by the classifier.
        let refusal = |status: u16, body: &'static str| {
            let ev = crate::upstream::evidence::Evidence::from_parts(
                status,
                &http::HeaderMap::new(),
                Bytes::from_static(body.as_bytes()),
                0,
            );
            ApiError::Passthrough {
                status,
                content_type: None,
                body: ev.body.clone(),
                message: ev.message(),
                code: ev.said.code,
            }
        };
        let invalid = refusal(
            400,
            r#"{"error":{"message":"could not be verified","type":"invalid_request_error","param":null,"code":"invalid_encrypted_content"}}"#,
        );
        let sent = body(json!([
            reasoning("gAAAAB-a"),
            user("hi"),
            reasoning("gAAAAB-b")
        ]));
        let retry = backstop(&invalid, &sent).expect("retried");
        let v: Value = serde_json::from_slice(&retry).expect("JSON");
        assert_eq!(v["input"], json!([user("hi")]));
        assert_eq!(v["include"], json!(["reasoning.encrypted_content"]));
        assert!(backstop(&invalid, &body(json!([user("hi")]))).is_none());
        let other = refusal(400, r#"{"error":{"code":"context_length_exceeded"}}"#);
        assert!(backstop(&other, &sent).is_none());
        assert!(backstop(&ApiError::Internal, &sent).is_none());
    }
}
