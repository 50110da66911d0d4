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
//!
//! Cost: a stand-in is a SHA-256, so each is computed once. One attempt's [`StandIns`] gives
//! the headers and the body the same stand-in for the same id (Codex repeats its thread id in
//! four places), and asks a [`Memory`] of stand-ins computed before (the daemon's bounded map,
//! `http::state::pseudonyms`) first, so a conversation's later turns hash only their new ids.
//!
//! Upstream echoes `prompt_cache_key` in the response objects of its events; the client gets
//! its own key back ([`Echo`]).

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

/// Byte ranges of an upstream body whose UUIDs are client ids: the `prompt_cache_key` value's
/// first, when it has one (the range [`Echo::of`] reads).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Spans {
    ranges: Vec<Range<usize>>,
    /// Whether `ranges[0]` is the `prompt_cache_key` value.
    key: bool,
}

impl Spans {
    /// The ranges of `body`'s `prompt_cache_key` and `client_metadata` values, as `look` (the
    /// borrowed pass over the same bytes) found them; a value serde had to unescape (never an
    /// id) is left out.
    pub fn of(body: &[u8], look: &Look<'_>) -> Spans {
        let mut out = Spans::default();
        let key = match &look.prompt_cache_key {
            Some(Cow::Borrowed(s)) => Some(*s),
            _ => None,
        };
        let meta = look.client_metadata.map(|r| r.get());
        for (is_key, s) in [(true, key), (false, meta)] {
            if let Some(r) = s.and_then(|s| range_in(body, s))
                && r.len() >= UUID_LEN
            {
                out.key |= is_key;
                out.ranges.push(r);
            }
        }
        out
    }

    /// The ranges of a body built by the daemon (a translated request, a rewritten one).
    pub fn find(body: &[u8]) -> Spans {
        super::shape::look(body).map_or_else(|_| Spans::default(), |l| Spans::of(body, &l))
    }

    /// Whether there is nothing to replace.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }
}

/// Where `part` (a slice of `whole`) lies in it.
fn range_in(whole: &[u8], part: &str) -> Option<Range<usize>> {
    let start = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    let end = start.checked_add(part.len())?;
    (end <= whole.len()).then_some(start..end)
}

/// Stand-ins computed before, by (account, client id): asked before a SHA-256 is computed,
/// told every one computed. The daemon's is bounded (`http::state::pseudonyms`); `()`
/// remembers nothing.
pub trait Memory: Sync {
    /// `account`'s stand-in for `id`, if remembered.
    fn recall(&self, account: &str, id: &[u8; 16]) -> Option<[u8; UUID_LEN]>;
    /// Remembers `account`'s stand-in for `id`.
    fn keep(&self, account: &str, id: [u8; 16], stand_in: [u8; UUID_LEN]);
}

impl Memory for () {
    fn recall(&self, _: &str, _: &[u8; 16]) -> Option<[u8; UUID_LEN]> {
        None
    }
    fn keep(&self, _: &str, _: [u8; 16], _: [u8; UUID_LEN]) {}
}

/// One account's stand-ins for the ids of one request: each id's looked up in the
/// [`Memory`] or computed once, then reused by the headers and the body of every try.
pub struct StandIns<'a> {
    account: &'a str,
    memory: &'a dyn Memory,
    /// This request's ids met so far and their stand-ins (a handful: a linear search).
    known: Vec<([u8; 16], [u8; UUID_LEN])>,
}

impl<'a> StandIns<'a> {
    /// `account`'s stand-ins, computed ones remembered in `memory`.
    pub fn new(account: &'a str, memory: &'a dyn Memory) -> Self {
        Self {
            account,
            memory,
            known: Vec::new(),
        }
    }

    /// The stand-in for `id`: met before in this request, remembered, or computed (and then
    /// remembered).
    fn of(&mut self, id: &[u8; 16]) -> [u8; UUID_LEN] {
        if let Some((_, p)) = self.known.iter().find(|(k, _)| k == id) {
            return *p;
        }
        let p = match self.memory.recall(self.account, id) {
            Some(p) => p,
            None => {
                let p = pseudonym(self.account, id);
                self.memory.keep(self.account, *id, p);
                p
            }
        };
        self.known.push((*id, p));
        p
    }

    /// The body the account is sent: `body` itself when `spans` is empty, else a copy whose
    /// client ids inside `spans` are the account's stand-ins.
    pub fn body(&mut self, body: &Bytes, spans: &Spans) -> Bytes {
        if spans.is_empty() {
            return body.clone();
        }
        let mut out = body.to_vec();
        for r in &spans.ranges {
            if let Some(part) = out.get_mut(r.clone()) {
                self.replace_uuids(part);
            }
        }
        Bytes::from(out)
    }

    /// The value of client header `name` the account is sent: its UUIDs replaced when `name`
    /// is one of [`HEADERS`], else `value` itself.
    pub fn header(&mut self, name: &HeaderName, value: &HeaderValue) -> HeaderValue {
        if !HEADERS.contains(&name.as_str()) || value.len() < UUID_LEN {
            return value.clone();
        }
        let mut bytes = value.as_bytes().to_vec();
        if !self.replace_uuids(&mut bytes) {
            return value.clone();
        }
        // Only hex digits were written over hex digits: still a valid header value.
        HeaderValue::from_bytes(&bytes).unwrap_or_else(|_| value.clone())
    }

    /// Overwrites every UUID-shaped token of `buf` (not part of a longer run of hex digits)
    /// with its stand-in; returns whether any was found.
    fn replace_uuids(&mut self, buf: &mut [u8]) -> bool {
        let mut found = false;
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
            let p = self.of(&id);
            buf[start..end].copy_from_slice(&p);
            found = true;
            from = end;
        }
        found
    }
}

/// The `prompt_cache_key` an account was sent and the client's own, when they differ: upstream
/// echoes the key it got in its response objects (`response.created`, `response.completed`, …),
/// and the client reads its own back. Both have the same length, so the echo is written over
/// in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Echo {
    /// The key upstream got.
    sent: Box<[u8]>,
    /// The client's key.
    client: Box<[u8]>,
}

/// `"prompt_cache_key":"`, what an echoed key follows in upstream's compact JSON.
const ECHO_FIELD: &[u8] = b"\"prompt_cache_key\":\"";

/// The searcher for [`ECHO_FIELD`], built once (building one costs more than a search).
static ECHO_FINDER: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new(ECHO_FIELD));

impl Echo {
    /// What to map back in the answer to `client_body` (whose client ids are `spans`), sent
    /// as `sent_body`: `None` when its `prompt_cache_key` (the first of `spans`) went upstream
    /// unchanged. Two slices compared: no hash.
    pub fn of(client_body: &[u8], sent_body: &[u8], spans: &Spans) -> Option<Echo> {
        let r = spans.ranges.first().filter(|_| spans.key)?;
        let (client, sent) = (client_body.get(r.clone())?, sent_body.get(r.clone())?);
        (client != sent).then(|| Echo {
            sent: sent.into(),
            client: client.into(),
        })
    }

    /// Writes the client's key over every `"prompt_cache_key":"<sent key>"` of `buf` (only that
    /// field: anywhere else the quotes would be escaped); returns whether it wrote any.
    pub fn restore_in(&self, buf: &mut [u8]) -> bool {
        let mut wrote = false;
        let mut from = 0;
        while let Some(hit) = ECHO_FINDER.find(&buf[from..]) {
            let start = from + hit + ECHO_FIELD.len();
            let end = start + self.sent.len();
            from = start;
            if buf.get(start..end) == Some(&self.sent[..]) && buf.get(end) == Some(&b'"') {
                buf[start..end].copy_from_slice(&self.client);
                wrote = true;
                from = end;
            }
        }
        wrote
    }

    /// [`Echo::restore_in`] on shared bytes: copied only when the key is there.
    pub fn restore(&self, bytes: Bytes) -> Bytes {
        let Some(first) = ECHO_FINDER.find(&bytes) else {
            return bytes;
        };
        let mut out = bytes.to_vec();
        if self.restore_in(&mut out[first..]) {
            Bytes::from(out)
        } else {
            bytes
        }
    }

    /// The client's key in place of the sent one in a response object read whole (a
    /// `stream: false` answer).
    pub fn restore_value(&self, response: &mut serde_json::Value) {
        if let Some(v) = response.get_mut("prompt_cache_key")
            && v.as_str().map(str::as_bytes) == Some(&self.sent[..])
        {
            *v = serde_json::Value::from(String::from_utf8_lossy(&self.client).into_owned());
        }
    }
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
        assert!(StandIns::new("acct-a", &()).replace_uuids(&mut buf));
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
        assert!(!StandIns::new("acct-a", &()).replace_uuids(&mut none));
    }

    #[test]
    fn a_codex_body_gets_its_ids_replaced_in_place_and_nothing_else() {
        let body = format!(
            r#"{{"model":"gpt-5.5","input":[{{"type":"message","role":"user","content":"{ID}"}}],"prompt_cache_key":"{ID}","client_metadata":{{"x-codex-installation-id":"{ID}"}}}}"#
        );
        let body = Bytes::from(body);
        let look = super::super::shape::look(&body).expect("look");
        let spans = Spans::of(&body, &look);
        assert_eq!(spans.ranges.len(), 2, "{spans:?}");
        let out = StandIns::new("acct-a", &()).body(&body, &spans);
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
            StandIns::new("a", &()).body(&plain, &spans).as_ptr(),
            plain.as_ptr(),
            "same bytes"
        );
    }

    /// One stand-in kept: (account, client id, stand-in).
    type Kept = (String, [u8; 16], [u8; UUID_LEN]);

    /// A [`Memory`] that counts what it is asked and told.
    #[derive(Default)]
    struct Counting {
        kept: std::sync::Mutex<Vec<Kept>>,
        recalls: std::sync::atomic::AtomicUsize,
    }

    impl Memory for Counting {
        fn recall(&self, account: &str, id: &[u8; 16]) -> Option<[u8; UUID_LEN]> {
            self.recalls
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let kept = self.kept.lock().expect("lock");
            kept.iter()
                .find(|(a, i, _)| a == account && i == id)
                .map(|(_, _, p)| *p)
        }
        fn keep(&self, account: &str, id: [u8; 16], stand_in: [u8; UUID_LEN]) {
            self.kept
                .lock()
                .expect("lock")
                .push((account.into(), id, stand_in));
        }
    }

    #[test]
    fn each_id_is_computed_once_and_then_remembered() {
        const OTHER: &str = "5f0c1e2d-3b4a-4c5d-8e6f-a1b2c3d4e5f6";
        let body = Bytes::from(format!(
            r#"{{"prompt_cache_key":"{ID}","client_metadata":{{"a":"{ID}","b":"{OTHER}","c":"{ID}"}}}}"#
        ));
        let look = super::super::shape::look(&body).expect("look");
        let spans = Spans::of(&body, &look);
        let header = HeaderName::from_static("session-id");
        let value = HeaderValue::from_static(ID);
        let memory = Counting::default();
        let mut ids = StandIns::new("acct-a", &memory);
        let sent = ids.body(&body, &spans);
        let h = ids.header(&header, &value);
        assert_eq!(h.as_bytes(), &pseudonym("acct-a", &fake(ID))[..]);
        assert_eq!(
            memory.kept.lock().expect("lock").len(),
            2,
            "two distinct ids, two hashes, for the body and the header"
        );
        assert_eq!(
            memory.recalls.load(std::sync::atomic::Ordering::Relaxed),
            2,
            "the memory is asked once per id"
        );
        // A later turn on the same account hashes nothing.
        let mut later = StandIns::new("acct-a", &memory);
        assert_eq!(later.body(&body, &spans), sent);
        assert_eq!(later.header(&header, &value), h);
        assert_eq!(
            memory.kept.lock().expect("lock").len(),
            2,
            "nothing computed"
        );
        // Another account gets its own.
        let mut other = StandIns::new("acct-b", &memory);
        assert_ne!(other.body(&body, &spans), sent);
        assert_eq!(memory.kept.lock().expect("lock").len(), 4);
    }

    #[test]
    fn the_echoed_key_is_mapped_back_only_in_its_field() {
        let body = Bytes::from(format!(r#"{{"prompt_cache_key":"{ID}","input":[]}}"#));
        let look = super::super::shape::look(&body).expect("look");
        let spans = Spans::of(&body, &look);
        let sent = StandIns::new("acct-a", &()).body(&body, &spans);
        let echo = Echo::of(&body, &sent, &spans).expect("a stand-in was sent");
        let p = String::from_utf8(pseudonym("acct-a", &fake(ID)).to_vec()).expect("utf8");
        let sse = format!(
            "event: response.created\ndata: {{\"type\":\"response.created\",\"response\":{{\"id\":\"r\",\"prompt_cache_key\":\"{p}\",\"instructions\":\"say \\\"prompt_cache_key\\\":\\\"{p}\\\"\",\"metadata\":{{\"k\":\"{p}\"}}}}}}\n\n"
        );
        let out = echo.restore(Bytes::from(sse.clone()));
        let out = std::str::from_utf8(&out).expect("utf8");
        assert_eq!(out.len(), sse.len());
        assert!(
            out.contains(&format!(r#","prompt_cache_key":"{ID}","#)),
            "{out}"
        );
        assert_eq!(
            out.matches(&p).count(),
            2,
            "an escaped look-alike and another field are left: {out}"
        );
        let plain = Bytes::from_static(b"data: {\"type\":\"response.output_text.delta\"}\n\n");
        assert_eq!(
            echo.restore(plain.clone()).as_ptr(),
            plain.as_ptr(),
            "same bytes"
        );
        let mut v = serde_json::json!({"id": "r", "prompt_cache_key": p});
        echo.restore_value(&mut v);
        assert_eq!(v["prompt_cache_key"], ID);
        let unchanged = Bytes::from_static(br#"{"prompt_cache_key":"thread-A"}"#);
        let look = super::super::shape::look(&unchanged).expect("look");
        let spans = Spans::of(&unchanged, &look);
        let sent = StandIns::new("acct-a", &()).body(&unchanged, &spans);
        assert_eq!(Echo::of(&unchanged, &sent, &spans), None, "sent as it was");
    }

    #[test]
    fn only_identifier_headers_are_rewritten() {
        let v = HeaderValue::from_static(ID);
        let session = HeaderName::from_static("session-id");
        let beta = HeaderName::from_static("openai-beta");
        assert_ne!(StandIns::new("a", &()).header(&session, &v), v);
        assert_eq!(
            StandIns::new("a", &()).header(&session, &v),
            StandIns::new("a", &()).header(&session, &v)
        );
        assert_eq!(StandIns::new("a", &()).header(&beta, &v), v);
    }
}
