//! Per-account pseudonyms for the ids a client sends that name its installation, session,
//! thread, turn or request (docs/protocol.md §2 "Identifiers", docs/fidelity.md §3). Sent
//! unchanged, the same Codex installation id and thread id would reach every pool account a
//! conversation fails over to, linking those accounts upstream; the public proxies that met the
//! real backend give each account its own (the risk itself is a guess, so this is built to be
//! safe either way). Every UUID-shaped token in those places is replaced, for the account that
//! serves the request, by a stable derivation: a SHA-256 of a fixed tag, the pool's own account
//! id (random, never sent upstream) and the client id's 16 bytes, written as a version-4 UUID. So one
//! account sees one stable id per client id — its upstream prompt cache, which is per account
//! anyway, keeps working — and two accounts never see the same one. The daemon's own affinity
//! reads the client's ids before any of this (`proxy::request`).
//!
//! Where: the identifier headers ([`HEADERS`]) and, in the body, the values of
//! `prompt_cache_key` and `client_metadata` (Codex repeats its turn metadata there), found as
//! byte ranges by the one borrowed pass that already reads the body ([`Spans::of`]). A
//! pseudonym has the length of the id it replaces, so the body is copied once per attempt and
//! overwritten in place — never parsed again nor re-serialised; a body without such a range is
//! sent as the same bytes. Other UUIDs (in `input`, tool arguments) are the conversation's
//! content and are left alone. `x-codex-turn-state` is upstream's own token and passes as is.

use super::shape::Look;
use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::ops::Range;

/// The forwarded client headers whose UUIDs are replaced (the others carry no client id).
pub const HEADERS: &[&str] = &[
    "session-id",
    "session_id",
    "thread-id",
    "x-client-request-id",
    "x-codex-window-id",
    "x-codex-turn-metadata",
    "x-codex-parent-thread-id",
];

/// Length of a UUID in text (`8-4-4-4-12`).
const UUID_LEN: usize = 36;

/// Byte ranges of an upstream body whose UUIDs are client ids.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Spans(Vec<Range<usize>>);

impl Spans {
    /// The ranges of `body`'s `prompt_cache_key` and `client_metadata` values, as `look` (the
    /// borrowed pass over the same bytes) found them; a value serde had to unescape (never an
    /// id) is left out.
    pub fn of(body: &[u8], look: &Look<'_>) -> Spans {
        let mut out = Vec::new();
        let key = match &look.prompt_cache_key {
            Some(Cow::Borrowed(s)) => Some(*s),
            _ => None,
        };
        let meta = look.client_metadata.map(|r| r.get());
        for s in [key, meta].into_iter().flatten() {
            if let Some(r) = range_in(body, s)
                && r.len() >= UUID_LEN
            {
                out.push(r);
            }
        }
        Spans(out)
    }

    /// The ranges of a body built by the daemon (a translated request, a rewritten one).
    pub fn find(body: &[u8]) -> Spans {
        super::shape::look(body).map_or_else(|_| Spans::default(), |l| Spans::of(body, &l))
    }

    /// Whether there is nothing to replace.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Where `part` (a slice of `whole`) lies in it.
fn range_in(whole: &[u8], part: &str) -> Option<Range<usize>> {
    let start = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    let end = start.checked_add(part.len())?;
    (end <= whole.len()).then_some(start..end)
}

/// The body `account` is sent: `body` itself when `spans` is empty, else a copy whose client
/// ids inside `spans` are that account's pseudonyms.
pub fn body_for(body: &Bytes, spans: &Spans, account: &str) -> Bytes {
    if spans.is_empty() {
        return body.clone();
    }
    let mut out = body.to_vec();
    for r in &spans.0 {
        if let Some(part) = out.get_mut(r.clone()) {
            replace_uuids(part, account);
        }
    }
    Bytes::from(out)
}

/// The value of client header `name` that `account` is sent: its UUIDs replaced when `name` is
/// one of [`HEADERS`], else `value` itself.
pub fn header_for(name: &HeaderName, value: &HeaderValue, account: &str) -> HeaderValue {
    if !HEADERS.contains(&name.as_str()) || value.len() < UUID_LEN {
        return value.clone();
    }
    let mut bytes = value.as_bytes().to_vec();
    if !replace_uuids(&mut bytes, account) {
        return value.clone();
    }
    // Only hex digits were written over hex digits: still a valid header value.
    HeaderValue::from_bytes(&bytes).unwrap_or_else(|_| value.clone())
}

/// Overwrites every UUID-shaped token of `buf` (not part of a longer run of hex digits) with
/// `account`'s pseudonym of it; returns whether any was found. An id met again in `buf` (Codex
/// repeats its thread id) is hashed once.
fn replace_uuids(buf: &mut [u8], account: &str) -> bool {
    let mut seen: Vec<([u8; 16], [u8; UUID_LEN])> = Vec::new();
    let mut from = 0;
    while let Some(dash) = memchr::memchr(b'-', &buf[from..]).map(|d| from + d) {
        from = dash + 1;
        let Some(start) = dash.checked_sub(8) else {
            continue;
        };
        let end = start + UUID_LEN;
        let Some(id) = buf.get(start..end).and_then(uuid_bytes) else {
            continue;
        };
        let hexish = |i: usize| buf.get(i).is_some_and(u8::is_ascii_hexdigit);
        if (start > 0 && hexish(start - 1)) || hexish(end) {
            continue;
        }
        let p = match seen.iter().find(|(k, _)| *k == id) {
            Some((_, p)) => *p,
            None => {
                let p = pseudonym(account, &id);
                seen.push((id, p));
                p
            }
        };
        buf[start..end].copy_from_slice(&p);
        from = end;
    }
    !seen.is_empty()
}

/// The 16 bytes of `s` if it is a UUID in text (`8-4-4-4-12` hex digits, either case).
fn uuid_bytes(s: &[u8]) -> Option<[u8; 16]> {
    if s.len() != UUID_LEN || [8, 13, 18, 23].iter().any(|&i| s[i] != b'-') {
        return None;
    }
    let mut out = [0u8; 16];
    let mut digits = s.iter().filter(|c| **c != b'-');
    for byte in &mut out {
        let hi = hex_value(*digits.next()?)?;
        let lo = hex_value(*digits.next()?)?;
        *byte = (hi << 4) | lo;
    }
    Some(out)
}

fn hex_value(c: u8) -> Option<u8> {
    char::from(c).to_digit(16).map(|d| d as u8)
}

/// `account`'s pseudonym of the client id whose bytes are `id`: a version-4 UUID from a
/// SHA-256 of a fixed tag, the account id and the id's bytes (one compression block for a
/// pool account id; one id in two cases is one pseudonym).
pub fn pseudonym(account: &str, id: &[u8; 16]) -> [u8; UUID_LEN] {
    let mut h = Sha256::new();
    h.update(b"rotor-id");
    h.update(account.as_bytes());
    h.update([0]);
    h.update(id);
    let d = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [b'-'; UUID_LEN];
    let mut pos = 0;
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            pos += 1;
        }
        out[pos] = HEX[usize::from(byte >> 4)];
        out[pos + 1] = HEX[usize::from(byte & 0x0f)];
        pos += 2;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "019a8c2e-7f3b-7c1d-9e2f-0123456789ab";

    fn fake(id: &str) -> [u8; 16] {
        uuid_bytes(id.as_bytes()).expect("a UUID")
    }

    #[test]
    fn one_account_one_stable_pseudonym_two_accounts_two() {
        let a = pseudonym("acct-a", &fake(ID));
        assert_eq!(a, pseudonym("acct-a", &fake(ID)), "stable");
        assert_eq!(a, pseudonym("acct-a", &fake(&ID.to_uppercase())));
        assert_ne!(a, pseudonym("acct-b", &fake(ID)), "per account");
        assert_ne!(&a, ID.as_bytes());
        let s = std::str::from_utf8(&a).expect("ascii");
        assert!(
            uuid_bytes(s.as_bytes()).is_some() && s.as_bytes()[14] == b'4',
            "a v4 UUID: {s}"
        );
        assert_eq!(uuid_bytes(b"019a8c2e-7f3b-7c1d-9e2f-0123456789ag"), None);
    }

    #[test]
    fn only_whole_uuids_are_replaced_and_lengths_kept() {
        let text =
            format!(r#"{{"installation_id":"{ID}","window":"{ID}:3","long":"a{ID}","n":"x-1"}}"#);
        let mut buf = text.clone().into_bytes();
        assert!(replace_uuids(&mut buf, "acct-a"));
        let out = String::from_utf8(buf).expect("utf8");
        assert_eq!(out.len(), text.len());
        let p = String::from_utf8(pseudonym("acct-a", &fake(ID)).to_vec()).expect("utf8");
        assert!(
            out.contains(&format!(r#""installation_id":"{p}""#)),
            "{out}"
        );
        assert!(out.contains(&format!(r#""window":"{p}:3""#)), "{out}");
        assert!(
            out.contains(&format!("a{ID}")),
            "part of a longer hex run: kept"
        );
        let mut none = b"no ids here - at all".to_vec();
        assert!(!replace_uuids(&mut none, "acct-a"));
    }

    #[test]
    fn a_codex_body_gets_its_ids_replaced_in_place_and_nothing_else() {
        let body = format!(
            r#"{{"model":"gpt-5.5","input":[{{"type":"message","role":"user","content":"{ID}"}}],"prompt_cache_key":"{ID}","client_metadata":{{"x-codex-installation-id":"{ID}"}}}}"#
        );
        let body = Bytes::from(body);
        let look = super::super::shape::look(&body).expect("look");
        let spans = Spans::of(&body, &look);
        assert_eq!(spans.0.len(), 2, "{spans:?}");
        let out = body_for(&body, &spans, "acct-a");
        let v: serde_json::Value = serde_json::from_slice(&out).expect("still JSON");
        let p = String::from_utf8(pseudonym("acct-a", &fake(ID)).to_vec()).expect("utf8");
        assert_eq!(v["prompt_cache_key"], p.as_str());
        assert_eq!(v["client_metadata"]["x-codex-installation-id"], p.as_str());
        assert_eq!(
            v["input"][0]["content"], ID,
            "the conversation's content is kept"
        );
        let plain = Bytes::from_static(br#"{"model":"m","prompt_cache_key":"thread-A"}"#);
        let look = super::super::shape::look(&plain).expect("look");
        let spans = Spans::of(&plain, &look);
        assert!(spans.is_empty());
        assert_eq!(
            body_for(&plain, &spans, "a").as_ptr(),
            plain.as_ptr(),
            "same bytes"
        );
    }

    #[test]
    fn only_identifier_headers_are_rewritten() {
        let v = HeaderValue::from_static(ID);
        let session = HeaderName::from_static("session-id");
        let beta = HeaderName::from_static("openai-beta");
        assert_ne!(header_for(&session, &v, "a"), v);
        assert_eq!(header_for(&session, &v, "a"), header_for(&session, &v, "a"));
        assert_eq!(header_for(&beta, &v, "a"), v);
    }
}
